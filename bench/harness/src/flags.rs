//! The `--flag value` arguments of the subcommands that parse their own (`wsbench tls`,
//! `wsbench storm`): every flag takes a value.

use std::path::PathBuf;

/// One flag and its value.
pub struct Flag<'a> {
    pub name: &'a str,
    value: &'a str,
}

impl Flag<'_> {
    pub fn number(&self) -> Result<usize, String> {
        self.value
            .parse::<usize>()
            .map_err(|_| format!("{}: not a number", self.name))
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(self.value)
    }
}

/// Hands each flag of `args`, with its value, to `apply`, in order.
pub fn each(
    args: &[String],
    mut apply: impl FnMut(Flag<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let mut args = args.iter();
    while let Some(name) = args.next() {
        let value = args.next().ok_or_else(|| format!("{name} needs a value"))?;
        apply(Flag { name, value })?;
    }
    Ok(())
}
