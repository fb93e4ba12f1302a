//! `SessionManager::validate_session` on a `RedisStore`, N times against a
//! real redis-server, for counting the node's instructions per request
//! under callgrind: `scripts/instructions-redis` runs it at two request
//! counts and reports the difference per request (start-up, connecting and
//! the first 100 requests, which fill the retired list to its depth,
//! cancel out). redis-server's own work is not counted: it is another
//! process. Each call runs in a task of its own on a one-worker runtime,
//! as a request does in the bench servers.
//!
//! ```text
//! cargo bench --features redis --bench redis_instructions -- redis://127.0.0.1:6379 1000
//! ```

use rolling_session::store::RedisStore;
use rolling_session::{KeyRing, SessionContext, SessionManager, TokenKey};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [url, requests] = &args[..] else {
        eprintln!("redis_instructions <redis url> <requests>: nothing to do under cargo bench");
        return;
    };
    let requests: usize = requests.parse().expect("a request count");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let store = RedisStore::connect(url)
            .await
            .expect("redis-server reachable");
        let manager = SessionManager::builder(KeyRing::new(TokenKey::new(
            1,
            b"0123456789abcdefghijklmnopqrstuv",
        )))
        .store(store)
        .build()
        .expect("a valid configuration");
        let created = manager
            .create_session("user-1", SessionContext::default())
            .await
            .expect("a session");
        let mut token = created.token.expose().to_owned();
        for _ in 0..100 + requests {
            let (manager, presented) = (manager.clone(), token.clone());
            let validated = tokio::spawn(async move { manager.validate_session(&presented).await })
                .await
                .expect("the request task")
                .expect("a valid session");
            token = validated
                .next_token
                .expect("a rotation on every request")
                .expose()
                .to_owned();
        }
    });
}
