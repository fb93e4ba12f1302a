//! `RedisStore` against real `redis-server` processes started by the test:
//! the conformance suite on one server (payload in clear and encrypted) and
//! on a three-master cluster, the hash layout of a lineage, TTLs, what a
//! dump reveals, size per session.
#![cfg(all(feature = "redis", feature = "test-util"))]

mod redis_servers;

use std::sync::Arc;
use std::time::Duration;

use redis_servers::{RedisCluster, RedisServer};
use rolling_session::store::{PayloadKey, PayloadKeys, RedisStore, conformance};
use rolling_session::{
    SessionContext, SessionStore, store::AdvanceRequest, store::Rotate, store::SequenceState,
    store::SessionFlags, store::SessionId, store::SessionMeta, store::SessionRecord,
    store::StoreError, store::Verdict,
};

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
        previous_ids: Box::default(),
        user_id: user.into(),
        created_at: now,
        meta: SessionMeta {
            context: SessionContext {
                ip: Some("198.51.100.23".parse().unwrap()),
                user_agent: Some("SecretBrowser/1.0".into()),
                device_id: None,
                location: None,
            },
            permissions: vec!["payroll:read".into()].into(),
            previous_permissions: Box::default(),
            expires_at: now + 60 * MIN,
            absolute_expires_at: now + 240 * MIN,
            idle_timeout_ms: 10 * MIN,
            renewals: 0,
            flags: SessionFlags::default(),
            seal: None,
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

/// The differential walk (the advance script against the Rust rule) at
/// many seeds, for a change to the script: ignored, run it with
/// `cargo test --all-features --test store_redis -- --ignored
/// differential_walk_at_many_seeds` (`DIFFERENTIAL_SEEDS`, default 50;
/// `DIFFERENTIAL_STEPS`, default 1000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run it after changing the advance script"]
async fn differential_walk_at_many_seeds() {
    let knob = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (seeds, steps) = (
        knob("DIFFERENTIAL_SEEDS", 50),
        knob("DIFFERENTIAL_STEPS", 1000),
    );
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    for seed in 0..seeds {
        conformance::differential(&store, 0xD1FF_0000 + seed, steps).await;
    }
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

/// A request with the token `presented` of `session`: K = 1, T = 10 s,
/// rotation on every request.
fn req(session: SessionId, presented: u64, now_ms: u64) -> AdvanceRequest {
    AdvanceRequest {
        session,
        presented,
        now_ms,
        grace_depth: 1,
        grace_window_ms: 10_000,
        rotate: Rotate::Always,
        new_id: None,
        max_ahead: 0,
    }
}

fn pttl(server: &RedisServer, key: &str) -> u64 {
    server.cmd(&["PTTL", key]).parse::<i64>().unwrap().max(0) as u64
}

fn assert_near(got: u64, want: u64, what: &str) {
    assert!(
        got <= want && got + 5_000 >= want,
        "{what}: TTL {got} ms, expected about {want} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttls_follow_idle_and_absolute_expiry() {
    let server = RedisServer::start();
    let slack = 30_000;
    let store = RedisStore::builder()
        .expiry_slack(Duration::from_millis(slack))
        .connect(&server.url())
        .await
        .unwrap();
    let now = now_ms();
    let mut r = record("ttl", now);
    store.create(&r).await.unwrap();
    let key = store.session_key(&r.id);
    let index = store.user_index_key("ttl");
    // Idle (10 min) ends first.
    assert_near(pttl(&server, &key), 10 * MIN + slack, "idle at creation");
    // The index outlives the session's whole lifetime (60 min).
    assert_near(pttl(&server, &index), 60 * MIN + slack, "user index");

    // A request 5 minutes later (by the application's clock) moves the
    // idle deadline: the TTL counts from the request's time.
    store
        .verify_and_advance(&r.id, &req(r.id, 0, now + 5 * MIN))
        .await
        .unwrap();
    assert_near(
        pttl(&server, &key),
        10 * MIN + slack,
        "idle after a request",
    );
    // A request stamped earlier (a node whose clock is behind) does not
    // move `seen`, so neither the deadlines nor the TTL move: it stays at
    // the idle deadline of the request at 5 minutes (the script used to
    // count it from the earlier time, 4 minutes too long).
    let a = store
        .verify_and_advance(&r.id, &req(r.id, 0, now + MIN))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.verdict, Verdict::Pending);
    assert_near(
        pttl(&server, &key),
        10 * MIN + slack,
        "idle after an earlier request",
    );

    // Near the end of the lifetime, the lifetime ends first.
    for (i, t) in [13, 21, 29, 37, 45, 53, 58].into_iter().enumerate() {
        let a = store
            .verify_and_advance(&r.id, &req(r.id, i as u64 + 1, now + t * MIN))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.verdict, Verdict::Rotated);
    }
    assert_near(pttl(&server, &key), 2 * MIN + slack, "lifetime");

    // Renewal (a longer lifetime through update_meta) extends the key and
    // the index, counting from the last request.
    r.meta.expires_at = now + 120 * MIN;
    r.meta.absolute_expires_at = now + 240 * MIN;
    store.update_meta(&r.id, &r.meta).await.unwrap();
    assert_near(pttl(&server, &key), 10 * MIN + slack, "idle after renewal");
    assert_near(
        pttl(&server, &index),
        62 * MIN + slack,
        "index after renewal",
    );
}

/// A retired list summarized by the previous version of the advance
/// script (`rsum` without the last entry's place) is read whole once, its
/// decisions unchanged, and summarized in the present form; so is a
/// summary that does not fit the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_of_the_earlier_form_is_read_whole_and_rewritten() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let now = now_ms();
    let mut local = record("rsum", now);
    store.create(&local).await.unwrap();
    let key = store.session_key(&local.id);
    let id = local.id;
    let step = |c: u64, t: u64| AdvanceRequest {
        grace_depth: 64,
        ..req(id, c, t)
    };
    let advance = |store: RedisStore, r: AdvanceRequest| async move {
        store
            .verify_and_advance(&r.session, &r)
            .await
            .unwrap()
            .unwrap()
    };
    for c in 0..10 {
        let r = step(c, now + c);
        let want = local.advance(&r);
        let got = advance(store.clone(), r).await;
        assert_eq!((got.verdict, &*got.record), (want, &local), "step {c}");
    }
    let h = hash(&server, &key);
    let (ret, rsum) = (h["ret"].clone(), h["rsum"].clone());
    let parts: Vec<&str> = rsum.split(':').collect();
    assert_eq!(parts.len(), 4, "{rsum}");
    let last = ret.rfind(',').map_or(1, |i| i + 2);
    assert_eq!(parts[3], last.to_string(), "where the last entry starts");
    for stale in [
        format!("{}:{}:{}", parts[0], parts[1], parts[2]),
        format!("{}:{}:{}:1", parts[0], parts[1], parts[2]),
        "junk".to_owned(),
    ] {
        server.cmd(&["HSET", &key, "rsum", &stale]);
        // A grace request (an older token) and a rotation, as the rule has
        // them.
        let c = local.sequence.counter;
        for r in [step(c - 3, now + 20), step(c, now + 21)] {
            let want = local.advance(&r);
            let got = advance(store.clone(), r).await;
            assert_eq!((got.verdict, &*got.record), (want, &local), "after {stale}");
        }
        let rsum = hash(&server, &key)["rsum"].clone();
        assert_eq!(rsum.split(':').count(), 4, "rewritten: {rsum}");
    }
}

fn hash(server: &RedisServer, key: &str) -> std::collections::BTreeMap<String, String> {
    let flat = server.cmd(&["HGETALL", key]);
    let lines: Vec<&str> = flat.split('\n').collect();
    lines
        .chunks(2)
        .filter(|kv| kv.len() == 2)
        .map(|kv| (kv[0].to_owned(), kv[1].to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lineage_is_one_hash_under_its_lineage_key() {
    let server = RedisServer::start();
    let store = RedisStore::builder()
        .key_prefix("lay:")
        .connect(&server.url())
        .await
        .unwrap();
    let now = now_ms();
    let r = record("layout", now);
    store.create(&r).await.unwrap();
    let key = store.session_key(&r.id);
    assert_eq!(key, format!("lay:s:{{{}}}", r.id.lineage()));
    assert_eq!(key, store.lineage_key(&r.lineage()));
    assert_eq!(r.id.lineage().to_string().len(), 16);
    let h = hash(&server, &key);
    let fields: Vec<&str> = h.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        [
            "created", "ctr", "ends", "idle", "ids", "iss", "meta", "pre", "req", "ret", "rev",
            "seen", "uid"
        ],
        "{h:?}"
    );
    let id0 = r.id.to_string();
    assert_eq!(h["ids"], id0);
    assert_eq!(
        (h["ctr"].as_str(), h["pre"].as_str(), h["req"].as_str()),
        ("0", "", "0")
    );
    assert_eq!(
        (h["iss"].clone(), h["seen"].clone()),
        (now.to_string(), now.to_string())
    );
    assert_eq!((h["ret"].as_str(), h["rev"].as_str()), ("", ""));
    assert_eq!(h["ends"], r.meta.ends_at().to_string());
    assert_eq!(h["idle"], r.meta.idle_timeout_ms.to_string());
    assert_eq!(h["uid"], "layout");
    assert_eq!(
        server.cmd(&["ZRANGE", &store.user_index_key("layout"), "0", "-1"]),
        r.id.lineage().to_string(),
        "the user index holds lineage keys"
    );

    // A renewal: the same hash, a new id appended.
    let renewed = r.id.next_generation();
    let a = store
        .verify_and_advance(
            &r.id,
            &AdvanceRequest {
                new_id: Some(renewed),
                ..req(r.id, 0, now + 1)
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.verdict, a.record.id), (Verdict::Rotated, renewed));
    assert_eq!(store.session_key(&renewed), key);
    let h = hash(&server, &key);
    assert_eq!(h["ids"], format!("{id0},{renewed}"));
    assert_eq!(
        (h["ctr"].as_str(), h["pre"].as_str(), h["req"].as_str()),
        ("1", "0", "1")
    );
    assert_eq!(h["iss"], (now + 1).to_string());
    // First use of the new token retires 0.
    let a = store
        .verify_and_advance(&renewed, &req(renewed, 1, now + 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.verdict, Verdict::Rotated);
    let h = hash(&server, &key);
    assert_eq!(h["ret"], format!("0-0@{}", now + 2));
    // The old id's token 1, more than 2T after 2 was issued: 2's response
    // was lost, (1, 2] is abandoned (no retirement: theft if presented)
    // and a fresh token issued.
    let a = store
        .verify_and_advance(&r.id, &req(r.id, 1, now + 30_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.verdict, Verdict::Recovered);
    let h = hash(&server, &key);
    assert_eq!(h["ret"], format!("0-0@{}", now + 2), "2 gets no retirement");
    assert_eq!((h["ctr"].as_str(), h["pre"].as_str()), ("3", "1"));
    // Revoked: a predecessor long after its grace.
    let a = store
        .verify_and_advance(&renewed, &req(renewed, 0, now + 40_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.verdict, Verdict::Reused);
    assert_eq!(hash(&server, &key)["rev"], "token_reused");
    // One hash and one index: nothing per id.
    let mut keys: Vec<String> = server
        .cmd(&["KEYS", "lay:*"])
        .lines()
        .map(str::to_owned)
        .collect();
    keys.sort();
    assert_eq!(keys, [key, store.user_index_key("layout")]);
}

/// A server that lost its scripts (restarted, failed over, `SCRIPT
/// FLUSH`) answers the advance's `EVALSHA` with `NOSCRIPT`: the store
/// loads the script and sends the call again, applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_script_is_given_it() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let now = now_ms();
    let r = record("noscript", now);
    store.create(&r).await.unwrap();
    let sha = |script: &str| {
        use std::fmt::Write as _;
        let digest =
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, script.as_bytes());
        digest.as_ref().iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    };
    let advance = sha(include_str!("../src/store/redis/advance.lua"));
    for presented in 0..3 {
        server.cmd(&["SCRIPT", "FLUSH"]);
        assert_eq!(server.cmd(&["SCRIPT", "EXISTS", &advance]), "0");
        let a = store
            .verify_and_advance(&r.id, &req(r.id, presented, now + presented))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.verdict, a.record.sequence.counter),
            (Verdict::Rotated, presented + 1),
            "applied once"
        );
        assert_eq!(server.cmd(&["SCRIPT", "EXISTS", &advance]), "1");
    }
}

/// A session and what a browser sees of it, through the manager.
async fn browse(
    store: RedisStore,
    key: &[u8; 32],
) -> (rolling_session::SessionManager, Vec<String>) {
    let manager = rolling_session::SessionManager::builder(rolling_session::KeyRing::new(
        rolling_session::TokenKey::new(1, key),
    ))
    .store(store)
    .build()
    .unwrap();
    let ctx = SessionContext {
        ip: Some("198.51.100.23".parse().unwrap()),
        user_agent: Some("SecretBrowser/1.0".into()),
        ..Default::default()
    };
    let login = manager.create_session("dump-user", ctx).await.unwrap();
    let mut tokens = vec![login.token.expose().to_owned()];
    for _ in 0..5 {
        let step = manager
            .validate_session(tokens.last().unwrap())
            .await
            .unwrap();
        tokens.push(step.next_token.unwrap().expose().to_owned());
    }
    (manager, tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_dump_holds_no_token_no_key_and_no_clear_payload_when_encrypted() {
    let server = RedisServer::start();
    let token_key = *b"token-key-that-must-never-leak!!";
    let payload_key = *b"payload-key-that-must-not-leak!!";
    let encrypted = RedisStore::builder()
        .key_prefix("enc:")
        .encrypt(PayloadKeys::new(PayloadKey::new(1, payload_key)))
        .connect(&server.url())
        .await
        .unwrap();
    let (_, enc_tokens) = browse(encrypted, &token_key).await;
    let plain = RedisStore::builder()
        .key_prefix("plain:")
        .connect(&server.url())
        .await
        .unwrap();
    let (_, plain_tokens) = browse(plain, &token_key).await;

    let dump = server.dump();
    assert!(
        dump.contains("enc:s:{") && dump.contains("plain:s:{"),
        "{dump}"
    );
    for token in enc_tokens.iter().chain(&plain_tokens) {
        // Neither the token nor any long piece of it.
        for piece in token.as_bytes().chunks(12) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(
                !dump.contains(piece),
                "a token piece {piece} is in the dump"
            );
        }
    }
    for secret in [&token_key[..], &payload_key[..]] {
        assert!(!dump.contains(std::str::from_utf8(&secret[..16]).unwrap()));
    }
    // In clear, the payload is readable (so the check below can fail);
    // sealed, it is not.
    let sections: Vec<&str> = dump.split("plain:").collect();
    let enc_part: String = sections[0].to_owned();
    let plain_part: String = sections[1..].join("plain:");
    assert!(plain_part.contains("SecretBrowser"));
    assert!(!enc_part.contains("SecretBrowser"), "{enc_part}");
    assert!(!enc_part.contains("198.51.100.23"), "{enc_part}");

    // Bytes per session, for docs/redis.md: MEMORY USAGE of one hash, and
    // used_memory over a thousand sessions of a thousand users, each
    // validated once (hash, index, and Redis's own per-key overhead).
    // SAMPLES 0 counts every field: `meta` is longer than
    // hash-max-listpack-value, so the hash is a hashtable, whose size
    // MEMORY USAGE otherwise estimates from 5 sampled fields.
    for prefix in ["plain:", "enc:"] {
        let keys = server.cmd(&["KEYS", &format!("{prefix}s:*")]);
        let key = keys.lines().next().unwrap();
        let session_bytes: u64 = server
            .cmd(&["MEMORY", "USAGE", key, "SAMPLES", "0"])
            .parse()
            .unwrap();
        let payload = server.cmd(&["HSTRLEN", key, "meta"]);
        println!(
            "{prefix} MEMORY USAGE of one session hash: {session_bytes} B (payload {payload} B)"
        );
        assert!(session_bytes < 2_048, "{prefix}: {session_bytes} B");
    }
    for (name, keys) in [
        ("plain", None),
        (
            "encrypted",
            Some(PayloadKeys::new(PayloadKey::new(1, payload_key))),
        ),
    ] {
        let mut builder = RedisStore::builder().key_prefix(format!("bulk-{name}:"));
        if let Some(k) = keys {
            builder = builder.encrypt(k);
        }
        let store = builder.connect(&server.url()).await.unwrap();
        let manager = rolling_session::SessionManager::builder(rolling_session::KeyRing::new(
            rolling_session::TokenKey::new(1, token_key),
        ))
        .store(store)
        .build()
        .unwrap();
        let used = || -> u64 {
            server
                .cmd(&["INFO", "memory"])
                .lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        let before = used();
        let n = 1_000u64;
        for i in 0..n {
            let ctx = SessionContext {
                ip: Some("198.51.100.23".parse().unwrap()),
                user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0".into()),
                ..Default::default()
            };
            let login = manager
                .create_session(format!("user-{i:06}@example.com"), ctx)
                .await
                .unwrap();
            manager
                .validate_session(login.token.expose())
                .await
                .unwrap();
        }
        let per_session = (used() - before) / n;
        println!("{name}: used_memory per session (hash + user index) = {per_session} B");
        assert!(per_session < 4_096, "{name}: {per_session} B");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_keys_rotate_and_plaintext_needs_an_explicit_migration() {
    let server = RedisServer::start();
    let url = server.url();
    let (k1, k2) = (PayloadKey::new(1, [1; 32]), PayloadKey::new(2, [2; 32]));
    let old = RedisStore::builder()
        .encrypt(PayloadKeys::new(k1.clone()))
        .connect(&url)
        .await
        .unwrap();
    let r = record("rotation", now_ms());
    old.create(&r).await.unwrap();

    // The new key seals, the old one still opens.
    let new = RedisStore::builder()
        .encrypt(PayloadKeys::new(k2.clone()).with_accepted(k1))
        .connect(&url)
        .await
        .unwrap();
    assert_eq!(new.load(&r.id).await.unwrap().as_ref(), Some(&r));
    new.update_meta(&r.id, &r.meta).await.unwrap();
    let meta = server.cmd(&["HGET", &new.session_key(&r.id), "meta"]);
    assert_eq!(meta.as_bytes()[..2], [1, 2], "resealed under key 2");
    // Once key 1 is retired, the resealed session still opens.
    let newest = RedisStore::builder()
        .encrypt(PayloadKeys::new(k2.clone()))
        .connect(&url)
        .await
        .unwrap();
    assert_eq!(newest.load(&r.id).await.unwrap().as_ref(), Some(&r));
    // A store without the key cannot read it.
    let keyless = RedisStore::connect(&url).await.unwrap();
    assert!(matches!(
        keyless.load(&r.id).await,
        Err(StoreError::Corrupt(_))
    ));

    // A plaintext session: refused by an encrypting store, unless it is
    // migrating.
    let p = record("rotation", now_ms());
    keyless.create(&p).await.unwrap();
    assert!(matches!(
        newest.load(&p.id).await,
        Err(StoreError::Corrupt(_))
    ));
    let migrating = RedisStore::builder()
        .encrypt(PayloadKeys::new(k2))
        .accept_plaintext(true)
        .connect(&url)
        .await
        .unwrap();
    assert_eq!(migrating.load(&p.id).await.unwrap().as_ref(), Some(&p));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_or_damaged_data_is_corrupt_never_a_panic() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let damages: [&[&str]; 18] = [
        &["HSET", "K", "ctr", "not-a-number"],
        &["HDEL", "K", "seen"],
        &["HSET", "K", "meta", "{broken json"],
        &["HSET", "K", "ret", "1-x@3"],
        &["HSET", "K", "ret", "1,2,3"],
        &["HSET", "K", "ret", "1-2@3,"],
        &["HSET", "K", "ret", ",1-2@3"],
        &["HSET", "K", "ret", "1-2@3,,4-5@6"],
        &["HSET", "K", "ret", "1-2@34-5@6"],
        &["HSET", "K", "ret", "1-2@3 ,4-5@6"],
        &["HSET", "K", "ret", "1-2@3x4-5@6"],
        &["HSET", "K", "rev", "stolen_by_aliens"],
        &["HSET", "K", "pre", "-1"],
        &["HSET", "K", "pre", "1e3"],
        &["HDEL", "K", "ids"],
        &["HSET", "K", "ids", "ID,not-an-id"],
        &["HSET", "K", "ids", "ID,"],
        &["HSET", "K", "ids", "0000000000000000ffffffffffffffff,ID"],
    ];
    for damage in damages {
        let r = record("damaged", now_ms());
        let req = req(r.id, 0, now_ms());
        store.create(&r).await.unwrap();
        let key = store.session_key(&r.id);
        let id = r.id.to_string();
        let args: Vec<String> = damage
            .iter()
            .map(|a| match *a {
                "K" => key.clone(),
                other => other.replace("ID", &id),
            })
            .collect();
        server.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let advanced = store.verify_and_advance(&r.id, &req).await;
        let loaded = store.load(&r.id).await;
        assert!(
            matches!(advanced, Err(StoreError::Corrupt(_))),
            "{damage:?}: verify_and_advance gave {advanced:?}"
        );
        assert!(
            matches!(loaded, Err(StoreError::Corrupt(_))),
            "{damage:?}: load gave {loaded:?}"
        );
    }
    // A key of another type where a session should be.
    let id = SessionId::generate();
    let req = req(id, 0, now_ms());
    server.cmd(&["SET", &store.session_key(&id), "hello"]);
    assert!(matches!(
        store.verify_and_advance(&id, &req).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(store.load(&id).await, Err(StoreError::Corrupt(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_unavailable_within_the_timeout() {
    let timeout = Duration::from_millis(200);
    // Nobody listens on the port of a stopped server.
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let started = std::time::Instant::now();
    let err = RedisStore::builder()
        .timeout(timeout)
        .connect(&url)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < timeout + Duration::from_millis(500));

    // A lazy store starts anyway, fails closed, and serves once Redis is
    // up.
    let store = RedisStore::builder()
        .timeout(timeout)
        .connect_lazy(&url)
        .unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.load(&SessionId::generate()).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(started.elapsed() < 2 * timeout + Duration::from_millis(500));
    server.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.load(&SessionId::generate()).await.unwrap(), None);
}

/// A manager on `store` with a known key, its events kept.
fn manager_on(
    store: RedisStore,
    config: rolling_session::Config,
) -> (
    rolling_session::SessionManager,
    Arc<rolling_session::events::MemorySink>,
) {
    let events = Arc::new(rolling_session::events::MemorySink::new());
    let manager = rolling_session::SessionManager::builder(rolling_session::KeyRing::new(
        rolling_session::TokenKey::new(1, [0x11; 32]),
    ))
    .store(store)
    .config(config)
    .events(events.clone())
    .build()
    .unwrap();
    (manager, events)
}

/// 16 logins of one user at once through the manager, limit 5, on one
/// server and on the cluster (where the user's index and the sessions are
/// in different slots): with eviction all succeed and exactly 11 are
/// evicted (their tokens get `session_evicted`); with refusal exactly 5
/// succeed. Issue 12 saw 16 live sessions here.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_parallel_logins_never_exceed_the_limit_on_redis_and_the_cluster() {
    use rolling_session::{Config, ErrorKind, config::SessionLimitPolicy};
    let server = RedisServer::start();
    let cluster = RedisCluster::start();
    let single = RedisStore::connect(&server.url()).await.unwrap();
    let clustered = RedisStore::builder()
        .connect_cluster(cluster.urls())
        .await
        .unwrap();
    for (name, store) in [("single", single), ("cluster", clustered)] {
        for policy in [SessionLimitPolicy::EvictOldest, SessionLimitPolicy::Refuse] {
            let config = Config {
                max_concurrent_sessions: 5,
                on_session_limit: policy,
                ..Config::default()
            };
            let (manager, events) = manager_on(store.clone(), config);
            let user = format!("racer-{name}-{policy:?}");
            let logins: Vec<_> = (0..16)
                .map(|_| {
                    let (m, u) = (manager.clone(), user.clone());
                    tokio::spawn(
                        async move { m.create_session(u, SessionContext::default()).await },
                    )
                })
                .collect();
            let mut ok = Vec::new();
            let mut refused = 0;
            for t in logins {
                match t.await.unwrap() {
                    Ok(s) => ok.push(s),
                    Err(e) if e.kind() == &ErrorKind::SessionLimit { max: 5 } => refused += 1,
                    Err(e) => panic!("{name} {policy:?}: {e:?}"),
                }
            }
            let live = manager.active_sessions(&user).await.unwrap();
            assert_eq!(live.len(), 5, "{name} {policy:?}: live sessions");
            let evicted = events
                .events()
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        rolling_session::events::SessionEvent::Terminated {
                            reason: rolling_session::events::TerminationReason::Evicted,
                            ..
                        }
                    )
                })
                .count();
            if policy == SessionLimitPolicy::EvictOldest {
                assert_eq!((ok.len(), evicted), (16, 11), "{name}: logins, evictions");
                let mut told = 0;
                for s in &ok {
                    if let Err(e) = manager.validate_session(s.token.expose()).await {
                        assert_eq!(e.reason(), "session_evicted", "{name}");
                        told += 1;
                    }
                }
                assert_eq!(told, 11, "{name}: evicted tokens are told so");
            } else {
                assert_eq!((ok.len(), refused, evicted), (5, 11, 0), "{name}: refusals");
            }
        }
    }
}

/// Someone with write access to Redis rewrites each field of a session's
/// hash in turn (payload in clear and sealed with AES-256-GCM): the
/// session is refused (401, `session_tampered` for everything the record
/// seal or the payload seal binds) or, where the field is the sequence's,
/// the rule answers as it would (a 401 of its own, or the session unchanged:
/// same user, no more permissions, no longer life). Never a 500, never
/// another user, never a longer session, never more permissions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewriting_any_stored_field_never_serves_a_changed_session() {
    use rolling_session::http::Rejection;
    use rolling_session::{Config, ErrorKind};
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();

    // (field, rewrite of the current value, what the session must answer:
    // a reason, or None for "served unchanged").
    type Rewrite = fn(&[u8]) -> Vec<u8>;
    let clear: Vec<(&str, Rewrite, Option<&str>)> = vec![
        ("uid", |_| b"admin".to_vec(), Some("session_tampered")),
        ("uid", |_| b"".to_vec(), Some("session_tampered")),
        ("created", |v| bump(v, -1), Some("session_tampered")),
        ("created", |_| b"soon".to_vec(), Some("session_tampered")),
        ("ends", |v| bump(v, 3_600_000), Some("session_tampered")),
        ("ends", |v| bump(v, -60_000), Some("session_tampered")),
        ("idle", |v| bump(v, 86_400_000), Some("session_tampered")),
        ("idle", |_| b"x".to_vec(), Some("session_tampered")),
        (
            "meta",
            |v| edit_json(v, |j| j["permissions"] = serde_json::json!(["admin"])),
            Some("session_tampered"),
        ),
        (
            "meta",
            |v| {
                edit_json(v, |j| {
                    j["previous_permissions"] = serde_json::json!(["admin"])
                })
            },
            Some("session_tampered"),
        ),
        (
            "meta",
            |v| edit_json(v, |j| j["renewals"] = serde_json::json!(7)),
            Some("session_tampered"),
        ),
        (
            "meta",
            |v| {
                edit_json(v, |j| {
                    j["absolute_expires_at"] = serde_json::json!(u64::MAX)
                })
            },
            Some("session_tampered"),
        ),
        (
            "meta",
            |v| edit_json(v, |j| j["idle_timeout_ms"] = serde_json::json!(1)),
            Some("session_tampered"),
        ),
        (
            "meta",
            |v| {
                edit_json(v, |j| {
                    j["context"]["user_agent"] = serde_json::json!("Evil/1.0")
                })
            },
            Some("session_tampered"),
        ),
        (
            "meta",
            |v| edit_json(v, |j| j["flags"]["anomaly"] = serde_json::json!(true)),
            Some("session_tampered"),
        ),
        (
            "meta",
            |v| {
                edit_json(v, |j| {
                    j.as_object_mut().unwrap().remove("seal");
                })
            },
            Some("session_tampered"),
        ),
        ("meta", |_| b"{broken".to_vec(), Some("session_tampered")),
        ("ctr", |v| bump(v, 5), Some("token_reused")),
        ("ctr", |_| b"-1".to_vec(), Some("session_tampered")),
        ("pre", |_| b"".to_vec(), None),
        ("pre", |_| b"0".to_vec(), None),
        ("req", |_| b"0".to_vec(), None),
        ("iss", |_| b"0".to_vec(), None),
        ("ret", |_| b"".to_vec(), None),
        ("ret", |_| b"0-0@1".to_vec(), None),
        ("rev", |_| b"token_reused".to_vec(), Some("session_revoked")),
        ("rev", |_| b"evicted".to_vec(), Some("session_evicted")),
        ("rev", |_| b"pending".to_vec(), Some("session_not_found")),
        (
            "rev",
            |_| b"stolen_by_aliens".to_vec(),
            Some("session_tampered"),
        ),
        ("seen", |_| b"0".to_vec(), Some("idle_timeout")),
        (
            "ids",
            |v| [v, b",", &v[..16], b"0123456789abcdef"].concat(),
            None,
        ),
        (
            "ids",
            |v| [&v[..16], b"0123456789abcdef"].concat(),
            Some("session_not_found"),
        ),
        (
            "ids",
            |v| [b"0123456789abcdef0123456789abcdef,", v].concat(),
            Some("session_tampered"),
        ),
    ];
    fn bump(v: &[u8], by: i64) -> Vec<u8> {
        let n: i64 = std::str::from_utf8(v).unwrap().parse().unwrap();
        (n + by).to_string().into_bytes()
    }
    fn edit_json(v: &[u8], f: fn(&mut serde_json::Value)) -> Vec<u8> {
        let mut j: serde_json::Value = serde_json::from_slice(v).unwrap();
        f(&mut j);
        serde_json::to_vec(&j).unwrap()
    }
    // Sealed payloads: any change to `meta` fails its AES-GCM tag.
    let sealed: Vec<(&str, Rewrite, Option<&str>)> = vec![
        (
            "meta",
            |v| {
                let mut v = v.to_vec();
                let i = v.len() / 2;
                v[i] ^= 1;
                v
            },
            Some("session_tampered"),
        ),
        (
            "meta",
            |v| v[..v.len() - 1].to_vec(),
            Some("session_tampered"),
        ),
        (
            "meta",
            |_| {
                br#"{"context":{},"permissions":["admin"],"expires_at":1,"absolute_expires_at":1,"idle_timeout_ms":1,"renewals":0,"flags":{}}"#.to_vec()
            },
            Some("session_tampered"),
        ),
        ("uid", |_| b"admin".to_vec(), Some("session_tampered")),
        ("ctr", |v| bump(v, 5), Some("token_reused")),
    ];
    for (prefix, encrypted, cases) in [("clear:", false, clear), ("sealed:", true, sealed)] {
        let mut builder = RedisStore::builder().key_prefix(prefix);
        if encrypted {
            builder = builder.encrypt(PayloadKeys::new(PayloadKey::new(1, [4; 32])));
        }
        let store = builder.connect(&server.url()).await.unwrap();
        let (manager, events) = manager_on(store.clone(), Config::default());
        for (field, rewrite, expected) in cases {
            let what = format!("{prefix} {field}");
            let ctx = SessionContext {
                user_agent: Some("Browser/1.0".into()),
                ..Default::default()
            };
            let login = manager.create_session("victim", ctx).await.unwrap();
            // The session is elevated first, so "no more permissions" and
            // "previous permissions" mean something.
            let live = manager
                .validate_session(login.token.expose())
                .await
                .unwrap()
                .next_token
                .unwrap();
            let elevated = manager
                .set_session_permissions(live.expose(), vec!["payroll:read".into()])
                .await
                .unwrap();
            let before = store.load(&elevated.session.id()).await.unwrap().unwrap();
            let key = store.session_key(&login.session.id());
            let value: Vec<u8> = redis::cmd("HGET")
                .arg(&key)
                .arg(field)
                .query_async(&mut conn)
                .await
                .unwrap();
            let _: () = redis::cmd("HSET")
                .arg(&key)
                .arg(field)
                .arg(rewrite(&value))
                .query_async(&mut conn)
                .await
                .unwrap();
            let got = manager.validate_session(elevated.token.expose()).await;
            match (&got, expected) {
                (Ok(v), None) => {
                    // The same session: same user, no permission it did
                    // not have (a token the rewrite made a predecessor's
                    // gets the permissions from before the elevation), no
                    // longer life.
                    let (s, m) = (&v.session, &v.session.record().meta);
                    assert_eq!(s.user_id(), "victim", "{what}");
                    assert!(
                        s.permissions().iter().all(|p| p == "payroll:read"),
                        "{what}: {:?}",
                        s.permissions()
                    );
                    assert_eq!(
                        (m.expires_at, m.absolute_expires_at, m.idle_timeout_ms),
                        (
                            before.meta.expires_at,
                            before.meta.absolute_expires_at,
                            before.meta.idle_timeout_ms
                        ),
                        "{what}: same lifetime"
                    );
                    assert_eq!(s.record().created_at, before.created_at, "{what}");
                    assert_eq!(s.record().lineage(), before.lineage(), "{what}");
                }
                (Err(e), Some(reason)) => {
                    let rejection = Rejection::from(e);
                    assert_eq!(
                        (e.reason(), rejection.status.as_u16()),
                        (reason, 401),
                        "{what}: {e}"
                    );
                    if reason == "session_tampered" {
                        assert_eq!(e.kind(), &ErrorKind::RecordTampered);
                        assert!(
                            events.events().iter().any(|ev| matches!(
                                ev,
                                rolling_session::events::SessionEvent::RecordTampered { session_id }
                                    if *session_id == elevated.session.id()
                            )),
                            "{what}: an audit event"
                        );
                    }
                }
                (got, _) => panic!("{what}: expected {expected:?}, got {got:?}"),
            }
            // Nothing the rewrite did is ever served to another user.
            assert!(
                manager.active_sessions("admin").await.unwrap().is_empty(),
                "{what}"
            );
        }
    }
}
