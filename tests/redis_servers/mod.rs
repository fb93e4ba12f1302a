//! Real Redis for the store tests: `redis-server` processes on free
//! loopback ports with data in a temporary directory, stopped on drop, as
//! one server ([`RedisServer`]), a Cluster ([`RedisCluster`]) or Sentinels
//! ([`Sentinel`]); and a [`Proxy`] whose link to a server can be cut.
//! `scripts/test` installs `redis-server` and `redis-cli` when they are
//! missing.

#![allow(dead_code)]

mod cluster;
mod proxy;
mod sentinel;
mod server;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

// Each test binary uses a part.
#[allow(unused_imports)]
pub use {
    cluster::RedisCluster,
    proxy::Proxy,
    sentinel::Sentinel,
    server::{Monitor, RedisServer, stats_delta},
};

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

fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Runs a command on a fresh connection to `url`; its reply as text.
fn query(url: &str, args: &[&str]) -> redis::RedisResult<String> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let value: redis::Value = cmd.query(&mut conn)?;
    Ok(value_text(value))
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
