//! How a key declaration becomes code: the `config_keys!` macro that `keys.rs` calls once
//! with every key, the metadata it records about each key ([`KeySpec`]), and the reading and
//! unknown-key reporting the generated code relies on.
//!
//! One entry of `config_keys!` (doc comment, name, type, parser, presence, when it applies)
//! gives the field of [`Config`](super::Config) or of its table's struct, its constant in
//! `defaults`, its parsing with the default or the "missing" error, its [`KeySpec`] in
//! [`KEYS`](super::KEYS) (so unknown keys, the reload classification and the test of
//! `conf/wson.toml` know it), and its comparison in `Config::changed_keys`.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::values::Checker;

/// What is known about one key, from its declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// The table it lives in (`[users]`), `None` at the top level.
    pub table: Option<&'static str>,
    /// Its name inside its table. An entry read from exclusive keys lists each (`secret`,
    /// `secret_file`), the first naming the field.
    pub names: &'static [&'static str],
    /// The key as messages name it: the first name, after `table.` inside a table.
    pub path: &'static str,
    /// Its doc comment, one line per `///` line, each as written after the `///`.
    pub doc: &'static str,
    pub presence: Presence,
    pub apply_on: ApplyOn,
}

/// Whether a key must be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Missing is an error.
    Required,
    /// Missing means its built-in value, the constant of the same name in `defaults`.
    Default,
}

/// When a changed value takes effect in a running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOn {
    /// On SIGHUP (`wson reload`).
    Reload,
    /// Only when the server starts again; a SIGHUP logs that it needs a restart.
    Restart,
}

/// One `[table]` of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    pub name: &'static str,
    pub doc: &'static str,
}

/// Turns a key's declared default into its value: a default path resolves against the config
/// file's folder, as a written one does.
pub(super) trait FromDefault<D> {
    fn from_default(default: D, folder: &Path) -> Self;
}

impl<T> FromDefault<T> for T {
    fn from_default(default: T, _folder: &Path) -> T {
        default
    }
}

impl FromDefault<&'static [&'static str]> for Vec<String> {
    fn from_default(default: &'static [&'static str], _folder: &Path) -> Vec<String> {
        default.iter().map(|item| (*item).to_owned()).collect()
    }
}

impl FromDefault<&'static str> for String {
    fn from_default(default: &'static str, _folder: &Path) -> String {
        default.to_owned()
    }
}

impl FromDefault<&'static str> for PathBuf {
    fn from_default(default: &'static str, folder: &Path) -> PathBuf {
        folder.join(default)
    }
}

/// One table being read (the top level or a `[table]`); each read takes its key out.
pub(super) struct Section {
    /// `None` when the table's value was not a table (already reported): every read then
    /// gives `None` without a further message.
    table: Option<Table>,
}

impl Section {
    pub(super) fn new(table: Table) -> Section {
        Section { table: Some(table) }
    }

    /// The value of `name`, taken out of the table.
    pub(super) fn take(&mut self, name: &str) -> Option<Value> {
        self.table.as_mut()?.remove(name)
    }

    /// The `[name]` table inside this one: empty when absent, unreadable when not a table.
    pub(super) fn table(&mut self, checker: &mut Checker, name: &str) -> Section {
        match self.take(name) {
            None => Section::new(Table::new()),
            Some(Value::Table(table)) => Section::new(table),
            Some(other) => {
                checker.wrong_type::<()>(name, "a table", &other);
                Section { table: None }
            }
        }
    }

    /// The key's value through `parse`, or its default when absent.
    pub(super) fn optional<T>(
        &mut self,
        checker: &mut Checker,
        name: &str,
        path: &str,
        parse: impl FnOnce(&mut Checker, &str, Value) -> Option<T>,
        default: impl FnOnce(&Path) -> T,
    ) -> Option<T> {
        let table = self.table.as_mut()?;
        match table.remove(name) {
            Some(value) => parse(checker, path, value),
            None => Some(default(checker.folder())),
        }
    }

    /// The key's value through `parse`; `missing` is the message when it is absent.
    pub(super) fn required<T>(
        &mut self,
        checker: &mut Checker,
        name: &str,
        path: &str,
        missing: &str,
        parse: impl FnOnce(&mut Checker, &str, Value) -> Option<T>,
    ) -> Option<T> {
        let table = self.table.as_mut()?;
        match table.remove(name) {
            Some(value) => parse(checker, path, value),
            None => {
                checker.error(path, missing);
                None
            }
        }
    }
}

/// Reports and removes every key no declaration knows, at the top level and inside each
/// known table, with a hint where the name is close to a known one or sits at the wrong level.
pub(super) fn report_unknown_keys(
    checker: &mut Checker,
    top: &mut Table,
    keys: &[KeySpec],
    tables: &[TableSpec],
) {
    let names_in = |table: Option<&'static str>| names_in(keys, table);
    let table_names = || tables.iter().map(|table| table.name);

    let unknown: Vec<(String, bool)> = top
        .iter()
        .filter(|(key, _)| {
            !names_in(None).any(|name| name == key.as_str())
                && !table_names().any(|name| name == key.as_str())
        })
        .map(|(key, value)| (key.clone(), value.is_table()))
        .collect();
    for (key, is_table) in unknown {
        let normalized = normalize(&key);
        let message = if let Some(known) = names_in(None).find(|name| *name == normalized) {
            format!("unknown key (did you mean {known}?)")
        } else if let Some(known) = table_names().find(|name| *name == normalized) {
            format!("unknown table (did you mean {known}?)")
        } else if is_table {
            let known: Vec<&str> = table_names().collect();
            format!("unknown table (known: {})", known.join(", "))
        } else if let Some(spec) = keys
            .iter()
            .find(|spec| spec.table.is_some() && spec.names.contains(&normalized.as_str()))
        {
            let table = spec.table.unwrap_or_default();
            format!("unknown key (it belongs in the [{table}] table)")
        } else {
            "unknown key".to_owned()
        };
        top.remove(&key);
        // A quoted key may hold any character; the error stays one printable line.
        checker.error(key.escape_debug().to_string(), message);
    }

    for table_spec in tables {
        let Some(Value::Table(table)) = top.get_mut(table_spec.name) else {
            continue;
        };
        let unknown: Vec<String> = table
            .keys()
            .filter(|key| !names_in(Some(table_spec.name)).any(|name| name == key.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            let normalized = normalize(&key);
            let message = if let Some(known) =
                names_in(Some(table_spec.name)).find(|name| *name == normalized)
            {
                format!("unknown key (did you mean {known}?)")
            } else if let Some(top_level) = names_in(None).find(|name| *name == normalized) {
                // TOML puts every key after a [table] header into that table.
                format!(
                    "unknown key ({top_level} is a top-level key: move it above the first [table])"
                )
            } else {
                "unknown key".to_owned()
            };
            table.remove(&key);
            checker.error(
                format!("{}.{}", table_spec.name, key.escape_debug()),
                message,
            );
        }
    }
}

/// The names of the keys declared in `table` (`None`: the top level).
fn names_in<'a>(
    keys: &'a [KeySpec],
    table: Option<&'static str>,
) -> impl Iterator<Item = &'static str> + 'a {
    keys.iter()
        .filter(move |spec| spec.table == table)
        .flat_map(|spec| spec.names.iter().copied())
}

/// How a near miss is compared with the known names: `Max-Connections` is `max_connections`.
fn normalize(key: &str) -> String {
    key.to_ascii_lowercase().replace('-', "_")
}

/// Declares every key once; see the module doc and `keys.rs`. Each entry reads
///
/// ```text
/// /// Doc comment.
/// name: Type = parser, presence(...), reload|restart;
/// ```
///
/// where `parser` is a [`values`](super::values) parser (`fn(&mut Checker, &str, Value) ->
/// Option<Type>`) and the presence is one of:
/// - `default(CONST = value)`: optional; `defaults::CONST: Type` holds the built-in value.
/// - `default(CONST: D = value)`: the same with a constant of another type `D`, turned into
///   `Type` by `FromDefault` (a `&str` default path is joined with the config's folder).
/// - `required()` or `required("missing: ...")`: an error when absent.
/// - `custom()`: `parser` is `fn(&mut Checker, &mut Section) -> Option<Type>` and takes its
///   keys itself: the entry names them all, `name | other: Type = ...`.
macro_rules! config_keys {
    (
        $(#[doc = $config_doc:literal])*
        top {
            $(
                $(#[doc = $doc:literal])*
                $key:ident $(| $also:ident)*: $ty:ty = $parse:expr,
                    $presence:ident $presence_args:tt, $apply:ident;
            )*
        }
        $(
            $(#[doc = $table_doc:literal])*
            [$table:ident] $Table:ident {
                $(
                    $(#[doc = $tdoc:literal])*
                    $tkey:ident: $tty:ty = $tparse:expr,
                        $tpresence:ident $tpresence_args:tt, $tapply:ident;
                )*
            }
        )*
    ) => {
        /// The built-in value of each optional key; `conf/wson.toml` repeats them (a test
        /// checks it). A table's are in the module of its name.
        pub mod defaults {
            #[allow(unused_imports)]
            use super::*;
            $( config_default!($presence $presence_args, $ty); )*
            $(
                #[doc = concat!("The built-in values of `[", stringify!($table), "]`.")]
                pub mod $table {
                    #[allow(unused_imports)]
                    use super::super::*;
                    $( config_default!($tpresence $tpresence_args, $tty); )*
                }
            )*
        }

        $(#[doc = $config_doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            /// The file this was read from, as given.
            pub file: PathBuf,
            $( $(#[doc = $doc])* pub $key: $ty, )*
            $( $(#[doc = $table_doc])* pub $table: $Table, )*
        }

        $(
            $(#[doc = $table_doc])*
            #[derive(Debug, Clone, PartialEq)]
            pub struct $Table {
                $( $(#[doc = $tdoc])* pub $tkey: $tty, )*
            }
        )*

        /// Every key: the top level's, then each table's, in the order declared (the order
        /// of the error messages).
        pub static KEYS: &[KeySpec] = &[
            $(
                KeySpec {
                    table: None,
                    names: &[stringify!($key) $(, stringify!($also))*],
                    path: stringify!($key),
                    doc: concat!($($doc, "\n"),*),
                    presence: config_presence!($presence),
                    apply_on: config_apply_on!($apply),
                },
            )*
            $($(
                KeySpec {
                    table: Some(stringify!($table)),
                    names: &[stringify!($tkey)],
                    path: concat!(stringify!($table), ".", stringify!($tkey)),
                    doc: concat!($($tdoc, "\n"),*),
                    presence: config_presence!($tpresence),
                    apply_on: config_apply_on!($tapply),
                },
            )*)*
        ];

        /// Every table, in the order declared.
        pub static TABLES: &[TableSpec] = &[
            $(
                TableSpec {
                    name: stringify!($table),
                    doc: concat!($($table_doc, "\n"),*),
                },
            )*
        ];

        /// Each key as read: `None` where it was missing or bad (the problem is recorded), so
        /// that rules across keys see the keys that are valid on their own.
        pub(super) mod parsed {
            #[allow(unused_imports)]
            use super::*;

            pub struct Config {
                $( pub $key: Option<$ty>, )*
                $( pub $table: $Table, )*
            }

            $(
                pub struct $Table {
                    $( pub $tkey: Option<$tty>, )*
                }
            )*
        }

        impl parsed::Config {
            /// Reads every declared key out of `top`, whose unknown keys were removed.
            pub(super) fn read(checker: &mut Checker, top: Table) -> parsed::Config {
                let mut section = Section::new(top);
                parsed::Config {
                    $(
                        $key: config_read!(
                            checker, section, stringify!($key), stringify!($key), $parse,
                            $presence $presence_args, [defaults]
                        ),
                    )*
                    $(
                        $table: {
                            let mut table_section = section.table(checker, stringify!($table));
                            parsed::$Table {
                                $(
                                    $tkey: config_read!(
                                        checker, table_section, stringify!($tkey),
                                        concat!(stringify!($table), ".", stringify!($tkey)),
                                        $tparse, $tpresence $tpresence_args, [defaults::$table]
                                    ),
                                )*
                            }
                        },
                    )*
                }
            }

            /// The config, when every key was valid.
            pub(super) fn finish(self, file: &Path) -> Option<Config> {
                Some(Config {
                    file: file.to_path_buf(),
                    $( $key: self.$key?, )*
                    $( $table: $Table { $( $tkey: self.$table.$tkey?, )* }, )*
                })
            }
        }

        impl Config {
            /// The config a running server goes on with after reading `fresh`: every
            /// reloadable key from `fresh`, every restart-only key as it is now.
            pub fn reloaded(&self, fresh: Config) -> Config {
                Config {
                    file: fresh.file,
                    $( $key: config_pick!($apply, self.$key, fresh.$key), )*
                    $( $table: $Table {
                        $( $tkey: config_pick!($tapply, self.$table.$tkey, fresh.$table.$tkey), )*
                    }, )*
                }
            }

            /// The keys whose values differ between `self` and `other`, in the order of
            /// [`KEYS`] (an entry of several keys, like `secret`, shows as its first).
            pub fn changed_keys(&self, other: &Config) -> Vec<&'static KeySpec> {
                let differs = [
                    $( self.$key != other.$key, )*
                    $($( self.$table.$tkey != other.$table.$tkey, )*)*
                ];
                KEYS.iter()
                    .zip(differs)
                    .filter_map(|(spec, differs)| differs.then_some(spec))
                    .collect()
            }
        }
    };
}

/// The `defaults` constant of one entry, if it has a default.
macro_rules! config_default {
    (default ($name:ident = $value:expr), $ty:ty) => {
        pub const $name: $ty = $value;
    };
    (default ($name:ident: $default_ty:ty = $value:expr), $ty:ty) => {
        pub const $name: $default_ty = $value;
    };
    (required $args:tt, $ty:ty) => {};
    (custom $args:tt, $ty:ty) => {};
}

/// The expression reading one entry out of its section.
macro_rules! config_read {
    ($checker:ident, $section:ident, $name:expr, $path:expr, $parse:expr,
        default ($const:ident $(: $default_ty:ty)? = $value:expr), [$($module:ident)::+]) => {
        $section.optional($checker, $name, $path, $parse, |folder| {
            FromDefault::from_default($($module::)+ $const, folder)
        })
    };
    ($checker:ident, $section:ident, $name:expr, $path:expr, $parse:expr,
        required (), $module:tt) => {
        $section.required($checker, $name, $path, "missing: this key is required", $parse)
    };
    ($checker:ident, $section:ident, $name:expr, $path:expr, $parse:expr,
        required ($missing:literal), $module:tt) => {
        $section.required($checker, $name, $path, $missing, $parse)
    };
    ($checker:ident, $section:ident, $name:expr, $path:expr, $parse:expr,
        custom (), $module:tt) => {
        $parse($checker, &mut $section)
    };
}

macro_rules! config_presence {
    (default) => {
        Presence::Default
    };
    (required) => {
        Presence::Required
    };
    // A custom reader of exclusive keys (the secret) decides for itself; the one there is
    // must be set.
    (custom) => {
        Presence::Required
    };
}

/// Which of two values a reload keeps: the fresh one, or the running one.
macro_rules! config_pick {
    (reload, $running:expr, $fresh:expr) => {
        $fresh
    };
    (restart, $running:expr, $fresh:expr) => {
        $running.clone()
    };
}

macro_rules! config_apply_on {
    (reload) => {
        ApplyOn::Reload
    };
    (restart) => {
        ApplyOn::Restart
    };
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse;
    use crate::config::testing::*;

    fn error(key: &str, message: &str) -> (Option<String>, String) {
        (Some(key.to_owned()), message.to_owned())
    }

    #[test]
    fn unknown_keys_in_a_table_are_named_with_the_table() {
        // Reported table by table, in the order the tables are declared.
        assert_eq!(
            errors(
                &[
                    ("users.foo", "1"),
                    ("topics.max-topics", "5"),
                    ("events.max_connections", "5"),
                    ("events.\"a\\nb\"", "5"),
                ],
                &[],
            ),
            [
                error("users.foo", "unknown key"),
                error(
                    "topics.max-topics",
                    "unknown key (did you mean max_topics?)"
                ),
                error("events.a\\nb", "unknown key"),
                error(
                    "events.max_connections",
                    "unknown key (max_connections is a top-level key: move it above the first \
                     [table])"
                ),
            ]
        );
    }

    #[test]
    fn unknown_tables_list_the_known_ones() {
        assert_eq!(
            errors(&[("foo.bar", "1"), ("Topics.max_topics", "5")], &[]),
            [
                error("Topics", "unknown table (did you mean topics?)"),
                error(
                    "foo",
                    "unknown table (known: users, topics, history, events, authorizer, wamp, access, compression, cluster, tls, http)"
                ),
            ]
        );
    }

    #[test]
    fn a_table_key_at_the_top_level_names_its_table() {
        assert_error(
            &[("token_reuse", r#""share""#)],
            "token_reuse",
            "unknown key (it belongs in the [users] table)",
        );
    }

    #[test]
    fn a_table_that_is_not_a_table_is_one_error() {
        assert_error(
            &[("topics", "5")],
            "topics",
            "expected a table, found integer",
        );
        assert_error(&[("users", "[]")], "users", "expected a table, found array");
    }

    #[test]
    fn errors_inside_a_table_are_each_reported_with_the_table() {
        let text = format!(
            "{}[authorizer]\ntimeout = 0\nfallback_status = 200\nmax_pending = \"many\"\n",
            text(&[], &[])
        );
        let errors: Vec<String> = parse(&text, Path::new(FILE))
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "conf/wson.toml: authorizer.timeout: must be at least 1 (whole seconds)",
                "conf/wson.toml: authorizer.fallback_status: must be at least 400",
                "conf/wson.toml: authorizer.max_pending: expected an integer, found string",
            ]
        );
    }
}
