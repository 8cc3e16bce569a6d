//! Process life: the pid file, detaching (`start --daemon`), signal wiring, and
//! finding out whether a pid still names a running process.
//!
//! Kept out of the event loop: the loop only sees two flags and a wake-up pipe.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::server::SignalFlags;

#[derive(Debug)]
pub enum DaemonError {
    PidRead {
        path: PathBuf,
        error: io::Error,
    },
    PidContent {
        path: PathBuf,
    },
    AlreadyRunning {
        path: PathBuf,
        pid: i32,
    },
    PidWrite {
        path: PathBuf,
        error: io::Error,
    },
    Detach {
        step: &'static str,
        error: io::Error,
    },
    LogFile {
        path: PathBuf,
        error: io::Error,
    },
    Signals(io::Error),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::PidRead { path, error } => {
                write!(f, "{}: cannot read: {error}", path.display())
            }
            DaemonError::PidContent { path } => {
                write!(f, "{}: does not hold a process id", path.display())
            }
            DaemonError::AlreadyRunning { path, pid } => {
                write!(
                    f,
                    "{}: wson is already running as pid {pid}",
                    path.display()
                )
            }
            DaemonError::PidWrite { path, error } => {
                write!(f, "{}: cannot write: {error}", path.display())
            }
            DaemonError::Detach { step, error } => write!(f, "cannot detach ({step}): {error}"),
            DaemonError::LogFile { path, error } => {
                write!(f, "{}: cannot open log file: {error}", path.display())
            }
            DaemonError::Signals(error) => write!(f, "cannot install signal handlers: {error}"),
        }
    }
}

impl std::error::Error for DaemonError {}

/// The pid in `path`, or `None` when there is no pid file.
pub fn read_pid(path: &Path) -> Result<Option<i32>, DaemonError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(DaemonError::PidRead {
                path: path.to_path_buf(),
                error,
            });
        }
    };
    match text.trim().parse::<i32>() {
        Ok(pid) if pid > 0 => Ok(Some(pid)),
        Ok(_) | Err(_) => Err(DaemonError::PidContent {
            path: path.to_path_buf(),
        }),
    }
}

/// True when `pid` names a live process. A zombie (exited, never reaped: containers
/// whose PID 1 does not reap orphans leave these) counts as gone.
pub fn process_alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        // ESRCH: no such process. EPERM would mean alive but not ours; we only manage
        // our own processes, so treat it as alive to be safe.
        return matches!(
            kill(Pid::from_raw(pid), None),
            Err(nix::errno::Errno::EPERM)
        );
    }
    !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold spaces.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "Z" || state == "X")
}

/// Refuses to start over a live server; removes a stale pid file.
pub fn check_pid_file(path: &Path) -> Result<(), DaemonError> {
    let pid = match read_pid(path) {
        Ok(Some(pid)) => pid,
        Ok(None) => return Ok(()),
        Err(DaemonError::PidContent { .. }) => {
            log::warn!(path:% = path.display(); "removing unreadable pid file");
            let _ = fs::remove_file(path);
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    if pid != i32::try_from(std::process::id()).unwrap_or(0) && process_alive(pid) {
        return Err(DaemonError::AlreadyRunning {
            path: path.to_path_buf(),
            pid,
        });
    }
    log::info!(path:% = path.display(), pid; "removing stale pid file");
    let _ = fs::remove_file(path);
    Ok(())
}

/// The pid file of this process; removed when dropped (on every clean exit path).
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    pub fn create(path: &Path) -> Result<PidFile, DaemonError> {
        let pid_write = |error| DaemonError::PidWrite {
            path: path.to_path_buf(),
            error,
        };
        // Written to a temporary name and renamed, so a reader never sees a half file.
        let temporary = path.with_extension("pid.tmp");
        fs::write(&temporary, format!("{}\n", std::process::id())).map_err(pid_write)?;
        fs::rename(&temporary, path).map_err(pid_write)?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own: a newer server may have replaced a file we thought was ours.
        if read_pid(&self.path).ok().flatten() == i32::try_from(std::process::id()).ok() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Points stdout and stderr at `path`, opened afresh (created when logrotate moved the old
/// file away). `dup2` swaps each descriptor atomically, so a line (one write) goes whole
/// to the old file or to the new one, even from the cluster link's threads.
pub fn reopen_log(path: &Path) -> Result<(), DaemonError> {
    let log_error = |error| DaemonError::LogFile {
        path: path.to_path_buf(),
        error,
    };
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(log_error)?;
    let errno = |error: nix::Error| log_error(io::Error::from(error));
    nix::unistd::dup2_stdout(&log).map_err(errno)?;
    nix::unistd::dup2_stderr(&log).map_err(errno)?;
    Ok(())
}

/// Routes SIGTERM/SIGINT/SIGHUP/SIGUSR1 to flags plus a wake-up byte on a socket pair. The loop
/// polls the returned stream, drains it, then reads the flags (signal-hook's
/// `low_level::pipe` docs explain why this order loses no signal).
pub fn install_signals() -> Result<(SignalFlags, std::os::unix::net::UnixStream), DaemonError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let flags = SignalFlags::default();
    let (wake_rx, wake_tx) =
        std::os::unix::net::UnixStream::pair().map_err(DaemonError::Signals)?;
    wake_tx
        .set_nonblocking(true)
        .map_err(DaemonError::Signals)?;
    for (signal, flag) in [
        (SIGTERM, &flags.terminate),
        (SIGINT, &flags.terminate),
        (SIGHUP, &flags.reload),
        (SIGUSR1, &flags.reopen_log),
    ] {
        signal_hook::flag::register(signal, Arc::clone(flag)).map_err(DaemonError::Signals)?;
        let tx = wake_tx.try_clone().map_err(DaemonError::Signals)?;
        signal_hook::low_level::pipe::register(signal, tx).map_err(DaemonError::Signals)?;
    }
    Ok((flags, wake_rx))
}

/// Tells systemd how the service is doing (sd_notify(3), for `Type=notify`): `READY=1`
/// once the listeners are bound and the loop is about to serve, `STOPPING=1` when a stop
/// begins. Nothing happens without `NOTIFY_SOCKET`; a failed send is logged, never fatal,
/// since serving matters more than telling (systemd then times the start out itself).
pub fn notify_systemd(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send_notify(&socket, state) {
        log::warn!(
            socket:% = socket.to_string_lossy(),
            state,
            error:%;
            "cannot notify systemd"
        );
    }
}

/// One datagram to `socket`: a path, or an abstract name when it starts with '@'.
fn send_notify(socket: &std::ffi::OsStr, state: &str) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let address = match socket.as_bytes().strip_prefix(b"@") {
        Some(name) => abstract_address(name)?,
        None => SocketAddr::from_pathname(socket)?,
    };
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &address)?;
    Ok(())
}

#[cfg(target_os = "linux")]
fn abstract_address(name: &[u8]) -> io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_address(_name: &[u8]) -> io::Result<std::os::unix::net::SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket names exist on Linux only",
    ))
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: i32) -> Result<(), nix::Error> {
    kill(Pid::from_raw(pid), Signal::SIGTERM)
}

/// Sends SIGHUP to `pid`.
pub fn hangup(pid: i32) -> Result<(), nix::Error> {
    kill(Pid::from_raw(pid), Signal::SIGHUP)
}

/// Which side of `detach` this process is on.
pub enum Detached {
    /// The original process: the daemon reported this outcome; exit with it.
    Parent(Result<(), String>),
    /// The daemon: call `Ready::report` once it serves (or failed to start).
    Daemon(Ready),
}

/// The daemon's end of the readiness pipe.
pub struct Ready {
    pipe: io::PipeWriter,
}

impl Ready {
    /// Tells the waiting `start --daemon` how starting went.
    pub fn report(mut self, outcome: Result<(), String>) {
        let message = match outcome {
            Ok(()) => "ok".to_string(),
            Err(reason) => format!("error: {reason}"),
        };
        let _ = self.pipe.write_all(message.as_bytes());
    }
}

/// Double fork and `setsid`, with stdin from /dev/null and stdout/stderr appended to
/// `log_file`. The original process waits until the daemon reports it is serving, so
/// `start --daemon` returns with the real outcome and not before the pid file exists.
pub fn detach(log_file: &Path) -> Result<Detached, DaemonError> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)
        .map_err(|error| DaemonError::LogFile {
            path: log_file.to_path_buf(),
            error,
        })?;
    let null = fs::File::open("/dev/null").map_err(|error| DaemonError::Detach {
        step: "open /dev/null",
        error,
    })?;
    let (mut ready_rx, ready_tx) = io::pipe().map_err(|error| DaemonError::Detach {
        step: "pipe",
        error,
    })?;
    let errno = |step: &'static str| {
        move |error: nix::Error| DaemonError::Detach {
            step,
            error: io::Error::from(error),
        }
    };
    match fork_process().map_err(errno("fork"))? {
        nix::unistd::ForkResult::Parent { child } => {
            drop(ready_tx);
            let mut report = String::new();
            let _ = ready_rx.read_to_string(&mut report);
            // Reap the intermediate child, which exits right after the second fork.
            let _ = nix::sys::wait::waitpid(child, None);
            let outcome = match report.as_str() {
                "ok" => Ok(()),
                "" => Err("the daemon exited before it was ready; see the log file".to_string()),
                other => Err(other.strip_prefix("error: ").unwrap_or(other).to_string()),
            };
            Ok(Detached::Parent(outcome))
        }
        nix::unistd::ForkResult::Child => {
            drop(ready_rx);
            nix::unistd::setsid().map_err(errno("setsid"))?;
            match fork_process().map_err(errno("second fork"))? {
                nix::unistd::ForkResult::Parent { .. } => std::process::exit(0),
                nix::unistd::ForkResult::Child => {}
            }
            nix::unistd::dup2_stdin(&null).map_err(errno("stdin"))?;
            nix::unistd::dup2_stdout(&log).map_err(errno("stdout"))?;
            nix::unistd::dup2_stderr(&log).map_err(errno("stderr"))?;
            Ok(Detached::Daemon(Ready { pipe: ready_tx }))
        }
    }
}

// The one unsafe block in wson. fork() is unsafe because only async-signal-safe calls
// are allowed in the child of a multi-threaded process; wson forks before it starts any
// thread (it never starts one), so the child is an ordinary single-threaded process.
#[allow(unsafe_code)]
fn fork_process() -> nix::Result<nix::unistd::ForkResult> {
    // SAFETY: called from a single-threaded process, see above.
    unsafe { nix::unistd::fork() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_round_trip_and_removal_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wson.pid");
        {
            let _guard = PidFile::create(&path).unwrap();
            assert_eq!(
                read_pid(&path).unwrap(),
                Some(i32::try_from(std::process::id()).unwrap())
            );
        }
        assert!(!path.exists());
    }

    #[test]
    fn garbage_pid_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wson.pid");
        fs::write(&path, "not a pid").unwrap();
        assert!(matches!(
            read_pid(&path),
            Err(DaemonError::PidContent { .. })
        ));
        check_pid_file(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn own_process_is_alive_and_a_missing_one_is_not() {
        assert!(process_alive(i32::try_from(std::process::id()).unwrap()));
        assert!(!process_alive(i32::MAX - 7));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn notify_reaches_a_path_and_an_abstract_socket() {
        use std::os::unix::net::UnixDatagram;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        send_notify(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0; 64];
        let len = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");

        let name = format!("wson-test-{}", std::process::id());
        let receiver =
            UnixDatagram::bind_addr(&abstract_address(name.as_bytes()).unwrap()).unwrap();
        send_notify(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let len = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1");
    }

    #[test]
    fn live_pid_refuses_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wson.pid");
        // PID 1 is always alive.
        fs::write(&path, "1\n").unwrap();
        assert!(matches!(
            check_pid_file(&path),
            Err(DaemonError::AlreadyRunning { pid: 1, .. })
        ));
    }
}
