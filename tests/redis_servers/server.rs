//! One `redis-server` process, and what the tests read from it: command
//! statistics, `MONITOR`, a dump of the keys.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{free_port, need, query, signal};

/// One `redis-server` process.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    /// A server with no persistence.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// A server with these extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        need("redis-server");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Self {
            port: free_port(),
            child: None,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(pong) = self.try_cmd(&["PING"])
                && pong == "PONG"
            {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("redis-server exited: {status}; log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: the crash of the machine or of the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port with the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGSTOP: a server that accepts connections and never answers.
    pub fn freeze(&self) {
        signal("-STOP", self.pid());
    }

    /// SIGCONT.
    pub fn thaw(&self) {
        signal("-CONT", self.pid());
    }

    pub fn try_cmd(&self, args: &[&str]) -> redis::RedisResult<String> {
        query(&self.url(), args)
    }

    /// Runs a command on a fresh connection and returns its reply as text.
    pub fn cmd(&self, args: &[&str]) -> String {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// Calls per command from `INFO commandstats`, e.g. `evalsha -> 200`.
    pub fn command_stats(&self) -> BTreeMap<String, u64> {
        self.cmd(&["INFO", "commandstats"])
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .collect()
    }

    /// Starts `redis-cli MONITOR`, which prints every command the server
    /// runs: those clients send, and those scripts run (marked `lua]`).
    pub fn monitor(&self) -> Monitor {
        let path = self
            .dir
            .path()
            .join(format!("monitor-{}.log", rand::random::<u32>()));
        let out = std::fs::File::create(&path).expect("monitor log");
        let child = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "monitor"])
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-cli monitor");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&path)
            .unwrap_or_default()
            .starts_with("OK")
        {
            assert!(Instant::now() < deadline, "MONITOR did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Monitor { child, path }
    }

    /// Every key and its content, as one text (a "store dump").
    pub fn dump(&self) -> String {
        let keys = self.cmd(&["KEYS", "*"]);
        let mut out = String::new();
        for key in keys.lines().filter(|k| !k.is_empty()) {
            out.push_str(key);
            out.push('\n');
            let kind = self.cmd(&["TYPE", key]);
            let body = match kind.as_str() {
                "hash" => self.cmd(&["HGETALL", key]),
                "zset" => self.cmd(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
                other => format!("<{other}>"),
            };
            out.push_str(&body);
            out.push('\n');
        }
        out
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            signal("-CONT", child.id());
        }
        self.kill();
    }
}

/// A running `redis-cli MONITOR`.
pub struct Monitor {
    child: Child,
    path: std::path::PathBuf,
}

impl Monitor {
    /// Stops monitoring; returns the commands clients sent (not those run
    /// by scripts), as `(command, line)`.
    pub fn client_commands(mut self) -> Vec<(String, String)> {
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" [") && !l.contains(" lua]"))
            .map(|l| {
                let cmd = l
                    .split("] \"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                (cmd, l.to_owned())
            })
            .collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The commands run between two [`RedisServer::command_stats`], leaving
/// out the measurement's own: `INFO`, `MONITOR`, and what `redis-cli` and
/// the probe's fresh connections send on connecting (`CLIENT SETINFO`,
/// `HELLO`, `COMMAND DOCS`).
pub fn stats_delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(name, _)| !is_probe_command(name))
        .map(|(name, &calls)| (name.clone(), calls - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, d)| *d > 0)
        .collect()
}

fn is_probe_command(name: &str) -> bool {
    matches!(name, "info" | "hello" | "monitor")
        || name.starts_with("client|")
        || name.starts_with("command")
}
