//! `RedisStore` against real `redis-server` processes started by the test:
//! the conformance suite on one server (payload in clear and encrypted) and
//! on a three-master cluster, TTLs, what a dump reveals, size per session.
#![cfg(all(feature = "redis", feature = "test-util"))]

mod support;

use std::sync::Arc;
use std::time::Duration;

use rolling_session::store::{PayloadKey, PayloadKeys, RedisStore, conformance};
use rolling_session::{
    AdvanceRequest, Rotate, SequenceState, SessionContext, SessionFlags, SessionId, SessionMeta,
    SessionRecord, SessionStore, StoreError,
};
use support::{RedisCluster, RedisServer};

const MIN: u64 = 60_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn record(user: &str, now: u64) -> SessionRecord {
    SessionRecord {
        id: SessionId::generate(),
        user_id: user.into(),
        created_at: now,
        meta: SessionMeta {
            context: SessionContext {
                ip: Some("198.51.100.23".parse().unwrap()),
                user_agent: Some("SecretBrowser/1.0".into()),
                device_id: None,
                location: None,
            },
            permissions: vec!["payroll:read".into()],
            expires_at: now + 60 * MIN,
            absolute_expires_at: now + 240 * MIN,
            idle_timeout_ms: 10 * MIN,
            renewals: 0,
            flags: SessionFlags::default(),
            renewed_from: None,
            superseded_by: None,
        },
        sequence: SequenceState::new(now),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_passes_the_conformance_suite() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    conformance::run(Arc::new(store.clone())).await;
    for seed in 1..6 {
        conformance::differential(&store, seed, 300).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn encrypted_redis_store_passes_the_conformance_suite() {
    let server = RedisServer::start();
    let store = RedisStore::builder()
        .key_prefix("enc:")
        .encrypt(PayloadKeys::new(PayloadKey::new(1, [3; 32])))
        .connect(&server.url())
        .await
        .unwrap();
    conformance::run(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_passes_the_conformance_suite() {
    let cluster = RedisCluster::start();
    let store = RedisStore::builder()
        .connect_cluster(cluster.urls())
        .await
        .unwrap();
    conformance::run(Arc::new(store.clone())).await;
    conformance::differential(&store, 7, 300).await;
    // Sessions and indexes really are spread over the three masters.
    let user = "cluster-spread";
    for _ in 0..30 {
        store.create(&record(user, now_ms())).await.unwrap();
    }
    let per_node = cluster.keys_per_node();
    assert!(
        per_node.iter().all(|&n| n > 0),
        "keys per node: {per_node:?}"
    );
    assert_eq!(store.list_by_user(user).await.unwrap().len(), 30);
    assert_eq!(store.delete_by_user(user).await.unwrap(), 30);
}
