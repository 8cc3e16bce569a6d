//! A wson of a workload's own (`wsbench tls`, `wsbench storm`): a config the workload writes
//! in a fresh folder, the server pinned to its core, its listeners read from its log lines
//! until it says it started; killed, and its folder removed, when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct OwnWson {
    child: Child,
    pub pid: i32,
    /// The `servers` endpoints as logged (`tcp://127.0.0.1:41234`, `tls://...`).
    pub servers: Vec<String>,
    /// The control endpoint as logged.
    pub control: String,
    dir: Dir,
}

impl OwnWson {
    /// Starts `wson` pinned to `core` on `config` (the text of `wson.toml`), in a fresh folder
    /// named after `name`, once `prepare` has written there what the config refers to.
    pub fn start(
        wson: &Path,
        core: usize,
        name: &str,
        config: &str,
        prepare: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<OwnWson, String> {
        let dir = Dir::new(name).map_err(|e| e.to_string())?;
        prepare(dir.path())?;
        let file = dir.path().join("wson.toml");
        std::fs::write(&file, config).map_err(|e| e.to_string())?;
        let mut child = Command::new("taskset")
            .arg("-c")
            .arg(core.to_string())
            .arg(wson)
            .args(["start", "-c"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", wson.display()))?;
        let pid = i32::try_from(child.id()).map_err(|e| e.to_string())?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let (mut servers, mut control) = (Vec::new(), None);
        loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => return Err("wson exited before it started".into()),
            };
            let endpoint = line
                .split(" endpoint=")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .map(str::to_owned);
            match endpoint {
                Some(e) if line.contains("kind=control") => control = Some(e),
                Some(e) => servers.push(e),
                None => {}
            }
            if line.contains(" started pid=") {
                break;
            }
        }
        // The rest of its log is not read: a thread drains it so wson never blocks on stderr.
        std::thread::spawn(move || for _ in lines {});
        let control = control.ok_or("wson did not name its control listener")?;
        Ok(OwnWson {
            child,
            pid,
            servers,
            control,
            dir,
        })
    }

    /// The folder of its config (and of what `prepare` wrote).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The address of its first `scheme://` server.
    pub fn server(&self, scheme: &str) -> Result<String, String> {
        let prefix = format!("{scheme}://");
        self.servers
            .iter()
            .find_map(|endpoint| endpoint.strip_prefix(&prefix))
            .map(str::to_owned)
            .ok_or_else(|| format!("wson did not name a {prefix} listener"))
    }

    /// The address of its control listener (`tcp://` in these workloads).
    pub fn control_addr(&self) -> Result<String, String> {
        self.control
            .strip_prefix("tcp://")
            .map(str::to_owned)
            .ok_or_else(|| format!("control {} is not tcp://", self.control))
    }
}

impl Drop for OwnWson {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A folder in the temp dir, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> std::io::Result<Dir> {
        static MADE: AtomicU32 = AtomicU32::new(0);
        let made = MADE.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{name}-{}-{made}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Dir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
