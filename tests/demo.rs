//! The demo (examples/demo.rs) over loopback: the peer address is recorded
//! and checked (issue 12, item 4), and the audit events are served to the
//! machine itself only.
#![cfg(feature = "axum")]

#[allow(dead_code)]
#[path = "../examples/demo.rs"]
mod demo;

use std::net::{IpAddr, Ipv4Addr};

use reqwest::StatusCode;
use serde_json::{Value, json};

/// A client whose connections come from `ip` (any 127.0.0.0/8 address is
/// this machine's loopback on Linux).
fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_peer_ip_is_recorded_and_checked_and_events_stay_local() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { demo::serve(listener).await.unwrap() });

    let here = client_from(Ipv4Addr::LOCALHOST);
    let login = here
        .post(format!("{base}/login"))
        .json(&json!({"user": "ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("rs_session="))
        .expect("the login cookie");

    // The same cookie from another address: served (the demo allows a
    // mismatch) and reported with both addresses.
    let elsewhere = client_from(Ipv4Addr::new(127, 0, 0, 2));
    let me = elsewhere
        .get(format!("{base}/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);

    let events: Vec<Value> = here
        .get(format!("{base}/demo/events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mismatch = events
        .iter()
        .find(|e| e["event"] == "context_mismatch")
        .unwrap_or_else(|| panic!("no context_mismatch in {events:?}"));
    assert_eq!(mismatch["fields"], json!(["ip"]));
    assert_eq!(mismatch["session_context"]["ip"], "127.0.0.1");
    assert_eq!(mismatch["request_context"]["ip"], "127.0.0.2");

    // The events name every user's sessions: not for other machines.
    let refused = elsewhere
        .get(format!("{base}/demo/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "events_local_only");
    server.abort();
}
