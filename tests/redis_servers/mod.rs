//! Real Redis servers for the store tests: `redis-server` on free loopback
//! ports, data in a temporary directory, stopped on drop. `scripts/test`
//! installs `redis-server` and `redis-cli` when they are missing.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

fn need(binary: &str) {
    let found = Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{binary}` is not installed: run scripts/test, or `apt-get install redis-server redis-tools`"
    );
}

/// A loopback port that is free now, and whose cluster bus port (+10000)
/// is free too.
fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
        let port = 20_000 + (rand::random::<u16>() % 30_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            return port;
        }
    }
}

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
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let value: redis::Value = cmd.query(&mut conn)?;
        Ok(value_text(value))
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

fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn value_text(v: redis::Value) -> String {
    use redis::Value as V;
    match v {
        V::Nil => String::new(),
        V::Int(i) => i.to_string(),
        V::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        V::SimpleString(s) => s,
        V::Okay => "OK".into(),
        V::VerbatimString { text, .. } => text,
        V::Double(d) => d.to_string(),
        V::Boolean(b) => b.to_string(),
        V::Array(items) | V::Set(items) => items
            .into_iter()
            .map(value_text)
            .collect::<Vec<_>>()
            .join("\n"),
        other => format!("{other:?}"),
    }
}

/// A Redis Cluster of three masters, with or without a replica each.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Three masters, no replicas.
    pub fn start() -> Self {
        Self::start_with_replicas(0)
    }

    /// Three masters with `replicas` replicas each.
    pub fn start_with_replicas(replicas: usize) -> Self {
        need("redis-cli");
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !nodes.iter().all(|n| {
            n.cmd(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
                && n.cmd(&["CLUSTER", "SLOTS"]).lines().count() >= 3
                && (replicas == 0
                    || !n.cmd(&["INFO", "replication"]).contains("role:slave")
                    || n.cmd(&["INFO", "replication"])
                        .contains("master_link_status:up"))
        }) {
            assert!(Instant::now() < deadline, "the cluster never became ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { nodes }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Keys held by each node.
    pub fn keys_per_node(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|n| n.cmd(&["DBSIZE"]).parse().unwrap_or(0))
            .collect()
    }
}

/// A TCP proxy on a free loopback port in front of a server, whose link can
/// be held: while held, no byte moves either way (the kernel buffers them,
/// as on a cut link that TCP keeps retransmitting over), and on release
/// everything held is delivered, late.
pub struct Proxy {
    pub port: u16,
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    pub fn start(target_port: u16) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("proxy address").port();
        let held = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (held.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ] {
                    let (Ok(from), Ok(to)) = (from, to) else {
                        continue;
                    };
                    let (h, s) = (h.clone(), s.clone());
                    std::thread::spawn(move || forward(from, to, &h, &s));
                }
            }
        });
        Self { port, held, stop }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops moving bytes, both ways.
    pub fn hold(&self) {
        self.held.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Delivers everything held, and moves bytes again.
    pub fn release(&self) {
        self.held.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

fn forward(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    held: &std::sync::atomic::AtomicBool,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::io::{ErrorKind, Read, Write};
    use std::sync::atomic::Ordering;
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = [0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        if held.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Bytes read just as the link was cut wait for it too.
                while held.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                // A link dropped while held loses what it held.
                if stop.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One Redis Sentinel (`redis-server <conf> --sentinel`) on a free loopback
/// port, watching the primary `mymaster`; stopped on drop.
pub struct Sentinel {
    pub port: u16,
    child: Child,
    dir: TempDir,
}

impl Sentinel {
    /// A sentinel watching the primary on `primary_port` (quorum 2), which
    /// it takes for down after `down_after_ms`.
    pub fn start(primary_port: u16, down_after_ms: u64) -> Self {
        need("redis-server");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile {dir}/sentinel.log\n\
                 sentinel monitor mymaster 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds mymaster {down_after_ms}\n\
                 sentinel failover-timeout mymaster 10000\n\
                 sentinel parallel-syncs mymaster 1\n",
                dir = dir.path().display()
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server --sentinel");
        let sentinel = Self { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while sentinel.try_cmd(&["PING"]).ok().as_deref() != Some("PONG") {
            assert!(
                Instant::now() < deadline,
                "the sentinel did not answer; log:\n{}",
                sentinel.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sentinel
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }

    pub fn try_cmd(&self, args: &[&str]) -> redis::RedisResult<String> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let value: redis::Value = cmd.query(&mut conn)?;
        Ok(value_text(value))
    }

    /// The port of the primary this sentinel names now.
    pub fn primary_port(&self) -> Option<u16> {
        let addr = self
            .try_cmd(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .ok()?;
        addr.lines().nth(1)?.parse().ok()
    }

    /// A field of `SENTINEL MASTER mymaster`.
    pub fn master_field(&self, field: &str) -> Option<String> {
        let text = self.try_cmd(&["SENTINEL", "MASTER", "mymaster"]).ok()?;
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(2)
            .find(|kv| kv[0] == field)
            .and_then(|kv| kv.get(1).map(|v| v.to_string()))
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
