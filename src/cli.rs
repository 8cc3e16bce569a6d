//! The command line: `wson start|stop|restart|reload|status|check|token`.
//!
//! Every failure ends here as one `wson: ...` line on stderr naming the file, key or
//! socket, and one exit code: 0 success, 1 runtime failure, 2 usage or config error.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::auth;
use crate::config::{self, Config, ConfigError, Endpoint};
use crate::control::codec;
use crate::daemon::{self, Detached, PidFile};
use crate::decoded::Decoded;
use crate::server::listener::socket_groups;
use crate::server::{Bound, Server, StartError};
use crate::token::Token;

/// wson: a WebSocket push server for web backends.
///
/// Browsers and apps hold WebSocket connections to wson; backend scripts push messages
/// to them through the control socket (see COMMANDS.md). Cookie authorization, a pid
/// file, and signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads the config (and the
/// `[tls]` certificate of tls:// listeners), SIGUSR1 reopens the log file of `start
/// --daemon` (for logrotate).
#[derive(Debug, Parser)]
#[command(name = "wson", version, about, long_about)]
pub struct Cli {
    /// Config file (relative paths inside it are relative to its folder).
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        default_value = "conf/wson.toml"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the server (in the foreground unless --daemon).
    Start {
        /// Detach: double fork, new session, output to the configured log_file (reopened
        /// on SIGUSR1).
        #[arg(long)]
        daemon: bool,
    },
    /// Stop the running server (SIGTERM, then wait up to stop_timeout).
    Stop,
    /// Stop the running server if any, then start.
    Restart {
        /// Detach after starting, as `start --daemon`.
        #[arg(long)]
        daemon: bool,
    },
    /// Make the running server re-read its config and TLS certificate (SIGHUP).
    Reload,
    /// Say whether the server runs, with its figures from the control `t` command.
    Status,
    /// Validate the config file (and load its TLS certificate and key); print every problem.
    Check,
    /// Print a valid Cookie header value for testing: token, user, time, digest.
    Token {
        /// The user name signed into the cookies.
        #[arg(long)]
        user: String,
        /// The 32-character token ([0-9A-Za-z_-]); random when omitted.
        #[arg(long)]
        token: Option<String>,
        /// The issue time in Unix seconds; now when omitted.
        #[arg(long)]
        time: Option<u64>,
    },
}

/// A failure and the exit code it maps to.
#[derive(Debug)]
pub enum CliError {
    /// Usage or config problems: exit 2.
    Config(Vec<ConfigError>),
    Usage(String),
    /// Anything that went wrong while doing what was asked: exit 1.
    Runtime(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => 2,
            CliError::Runtime(_) => 1,
        }
    }

    fn print(&self) {
        match self {
            CliError::Config(errors) => {
                for error in errors {
                    eprintln!("wson: {error}");
                }
            }
            CliError::Usage(message) | CliError::Runtime(message) => eprintln!("wson: {message}"),
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Config(errors) => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                f.write_str(&lines.join("; "))
            }
            CliError::Usage(message) | CliError::Runtime(message) => f.write_str(message),
        }
    }
}

fn runtime(error: impl std::fmt::Display) -> CliError {
    CliError::Runtime(error.to_string())
}

/// A config value the host cannot satisfy is a config error (exit 2); the rest, runtime.
fn start_error(error: StartError) -> CliError {
    match error {
        StartError::Config(errors) => CliError::Config(errors),
        StartError::Bind(_) | StartError::Poll(_) | StartError::Cluster(_) | StartError::Tls(_) => {
            runtime(error)
        }
    }
}

/// Parses argv, runs the command, returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { 2 } else { 0 };
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(error) => {
            error.print();
            error.exit_code()
        }
    }
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    // Absolute, so paths stay right after the daemon leaves the working folder.
    let config_path = std::path::absolute(&cli.config)
        .map_err(|error| CliError::Usage(format!("{}: {error}", cli.config.display())))?;
    match cli.command {
        Command::Start { daemon } => start(&config_path, daemon),
        Command::Stop => stop(&load(&config_path)?),
        Command::Restart { daemon } => {
            stop(&load(&config_path)?)?;
            start(&config_path, daemon)
        }
        Command::Reload => reload(&load(&config_path)?),
        Command::Status => status(&load(&config_path)?),
        Command::Check => check(&config_path, &cli.config),
        Command::Token { user, token, time } => {
            print_token(&load(&config_path)?, &user, token.as_deref(), time)
        }
    }
}

fn load(path: &Path) -> Result<Config, CliError> {
    config::load(path).map_err(CliError::Config)
}

fn start(config_path: &Path, detach: bool) -> Result<(), CliError> {
    let config = load(config_path)?;
    crate::logging::init(config.log_level, config.log_format);
    let secret = config::resolve_secret(&config, true).map_err(|e| CliError::Config(vec![e]))?;
    if secret.created
        && let config::Secret::File(path) = &config.secret
    {
        log::info!(path:% = path.display(), mode = "0600"; "created secret file");
    }
    daemon::check_pid_file(&config.pid).map_err(runtime)?;
    // Bound before detaching, so an address in use is reported on the terminal.
    let bound = Bound::bind(&config).map_err(start_error)?;
    let ready = if detach {
        match daemon::detach(&config.log_file) {
            Ok(Detached::Parent(Ok(()))) => {
                println!("wson started (log: {})", config.log_file.display());
                return Ok(());
            }
            Ok(Detached::Parent(Err(reason))) => return Err(CliError::Runtime(reason)),
            Ok(Detached::Daemon(ready)) => Some(ready),
            Err(error) => {
                bound.remove_socket_files();
                return Err(runtime(error));
            }
        }
    } else {
        None
    };
    // From here on this is the serving process.
    let (server, pid_file) = match prepare(config_path, &config, bound, secret.bytes) {
        Ok(pieces) => pieces,
        Err(error) => {
            if let Some(ready) = ready {
                ready.report(Err(error.to_string()));
            }
            return Err(error);
        }
    };
    let server = if let Some(ready) = ready {
        ready.report(Ok(()));
        server.with_log_file(config.log_file.clone())
    } else {
        server
    };
    log::info!(
        pid = std::process::id(),
        version = env!("CARGO_PKG_VERSION"),
        config:% = config_path.display();
        "started"
    );
    daemon::notify_systemd("READY=1");
    let result = server.run().map_err(runtime);
    drop(pid_file);
    result
}

/// Signals, pid file and the server itself, for a process that has its listeners.
fn prepare(
    config_path: &Path,
    config: &Config,
    bound: Bound,
    secret: Vec<u8>,
) -> Result<(Server, PidFile), CliError> {
    let pieces = daemon::install_signals()
        .map_err(runtime)
        .and_then(|signals| Ok((signals, PidFile::create(&config.pid).map_err(runtime)?)));
    let ((signals, wake), pid_file) = match pieces {
        Ok(pieces) => pieces,
        Err(error) => {
            bound.remove_socket_files();
            return Err(error);
        }
    };
    let reload = reloader(config_path.to_path_buf());
    let server =
        Server::new(bound, config.clone(), secret, signals, wake, reload).map_err(runtime)?;
    Ok((server, pid_file))
}

fn stop(config: &Config) -> Result<(), CliError> {
    let Some(pid) = daemon::read_pid(&config.pid).map_err(runtime)? else {
        println!(
            "wson is not running (no pid file at {})",
            config.pid.display()
        );
        return Ok(());
    };
    if !daemon::process_alive(pid) {
        let _ = std::fs::remove_file(&config.pid);
        println!(
            "wson is not running (removed stale pid file {})",
            config.pid.display()
        );
        return Ok(());
    }
    daemon::terminate(pid)
        .map_err(|error| CliError::Runtime(format!("cannot signal pid {pid}: {error}")))?;
    let deadline = Instant::now() + config.stop_timeout;
    while daemon::process_alive(pid) {
        if Instant::now() >= deadline {
            return Err(CliError::Runtime(format!(
                "pid {pid} did not exit within stop_timeout ({}s)",
                config.stop_timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("wson stopped (pid {pid})");
    Ok(())
}

fn reload(config: &Config) -> Result<(), CliError> {
    let pid = running_pid(config)?;
    daemon::hangup(pid)
        .map_err(|error| CliError::Runtime(format!("cannot signal pid {pid}: {error}")))?;
    println!("wson reload requested (pid {pid}); the log says whether the new config was taken");
    Ok(())
}

fn running_pid(config: &Config) -> Result<i32, CliError> {
    match daemon::read_pid(&config.pid).map_err(runtime)? {
        Some(pid) if daemon::process_alive(pid) => Ok(pid),
        Some(_) | None => Err(CliError::Runtime(format!(
            "wson is not running (pid file {})",
            config.pid.display()
        ))),
    }
}

fn status(config: &Config) -> Result<(), CliError> {
    let pid = running_pid(config)?;
    let json = query_status(&config.control, &config.tls).map_err(|error| {
        CliError::Runtime(format!(
            "wson runs as pid {pid} but {} did not answer: {error}",
            config.control
        ))
    })?;
    println!("wson is running (pid {pid})");
    match serde_json::from_str::<serde_json::Value>(&json) {
        Ok(serde_json::Value::Object(fields)) => {
            for (name, value) in fields {
                println!("{name}: {value}");
            }
        }
        Ok(_) | Err(_) => println!("{json}"),
    }
    Ok(())
}

/// Sends `0t` to the control socket and returns the JSON of the `T` reply.
fn query_status(endpoint: &Endpoint, tls: &config::Tls) -> io::Result<String> {
    let timeout = Some(Duration::from_secs(5));
    let mut stream: Box<dyn ReadWrite> = match endpoint {
        Endpoint::Tcp(address) => {
            let stream = std::net::TcpStream::connect(address.as_str())?;
            stream.set_read_timeout(timeout)?;
            Box::new(stream)
        }
        Endpoint::Unix(path) => {
            let stream = std::os::unix::net::UnixStream::connect(path)?;
            stream.set_read_timeout(timeout)?;
            Box::new(stream)
        }
        Endpoint::Tls(address) => {
            let Some(cert) = &tls.cert else {
                return Err(io::Error::other(
                    "a tls:// control socket without [tls] cert",
                ));
            };
            let client = crate::tls::pinned_client(cert).map_err(io::Error::other)?;
            // Any name will do: the pinned certificate is checked, not its names.
            let name =
                rustls::pki_types::ServerName::try_from("localhost").map_err(io::Error::other)?;
            let session = rustls::ClientConnection::new(client, name).map_err(io::Error::other)?;
            let stream = std::net::TcpStream::connect(address.as_str())?;
            stream.set_read_timeout(timeout)?;
            stream.set_write_timeout(timeout)?;
            Box::new(rustls::StreamOwned::new(session, stream))
        }
    };
    stream.write_all(b"0t")?;
    // A TLS stream sends its records here.
    stream.flush()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match codec::decode(&buf, usize::MAX) {
            Ok(Decoded::Done { item, .. }) if item.command == b'T' => {
                return Ok(String::from_utf8_lossy(item.payload).into_owned());
            }
            // Anything else (a keepalive `0p`) is skipped.
            Ok(Decoded::Done { len, .. }) => {
                buf.drain(..len);
                continue;
            }
            Ok(Decoded::Incomplete) => {}
            Err(error) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    error.to_string(),
                ));
            }
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(chunk.get(..read).unwrap_or(&[]));
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn check(config_path: &Path, shown: &Path) -> Result<(), CliError> {
    let config = load(config_path)?;
    match config::resolve_secret(&config, false) {
        Ok(_) => {}
        Err(error) => {
            let missing = matches!(&config.secret, config::Secret::File(path) if !path.exists());
            if !missing {
                return Err(CliError::Config(vec![error]));
            }
            if let config::Secret::File(path) = &config.secret {
                println!(
                    "note: secret_file {} does not exist yet; start creates it",
                    path.display()
                );
            }
        }
    }
    config::resolve_api_key(&config).map_err(|e| CliError::Config(vec![e]))?;
    let groups = socket_groups(&config).map_err(CliError::Config)?;
    for (key, why) in &groups.ignored {
        println!("note: {key} is ignored: {why}");
    }
    println!("{}: ok", shown.display());
    Ok(())
}

fn print_token(
    config: &Config,
    user: &str,
    token: Option<&str>,
    time: Option<u64>,
) -> Result<(), CliError> {
    if user.is_empty() || user.len() > auth::MAX_USER_LEN {
        return Err(CliError::Usage(format!(
            "--user: must be 1 to {} bytes",
            auth::MAX_USER_LEN
        )));
    }
    let token = match token {
        Some(text) => Token::from_slice(text.as_bytes())
            .filter(Token::has_cookie_charset)
            .ok_or_else(|| {
                CliError::Usage("--token: must be exactly 32 characters of [0-9A-Za-z_-]".into())
            })?,
        None => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|error| {
                CliError::Runtime(format!("no randomness from the OS: {error}"))
            })?;
            auth::token_from_random(bytes)
        }
    };
    let secret = config::resolve_secret(config, true).map_err(|e| CliError::Config(vec![e]))?;
    let time = time.unwrap_or_else(auth::unix_now);
    println!(
        "{}",
        auth::cookie_header(&secret.bytes, config.digest, user, &token, time)
    );
    Ok(())
}

/// Builds the SIGHUP reloader: re-reads the file and resolves its secret; the server keeps
/// what needs a restart and applies the rest.
fn reloader(config_path: PathBuf) -> crate::server::Reloader {
    Box::new(move || {
        let fresh = config::load(&config_path).map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let secret = config::resolve_secret(&fresh, true).map_err(|error| error.to_string())?;
        Ok((fresh, secret.bytes))
    })
}
