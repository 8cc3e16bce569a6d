//! The `wson` binary: parse the command line, run, exit with the code `cli` chose.

fn main() {
    std::process::exit(wson::cli::main());
}
