//! Redis Sentinel processes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{free_port, need, query};

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
        query(&self.url(), args)
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
