//! The cap on all sessions (issue 13, item 6) through the manager: never
//! exceeded by parallel logins, and refused at build time on a store that
//! cannot count.

use rolling_session::{
    Config, ErrorKind, KeyRing, MemoryStore, SessionContext, SessionManager, SessionStore,
    TokenKey, store::AdvanceRequest, store::SessionId, store::SessionMeta, store::SessionRecord,
    store::StoreError,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_logins_never_exceed_the_cap() {
    let mut config = Config::default();
    config.admission.max_sessions = Some(10);
    let store = std::sync::Arc::new(MemoryStore::new());
    let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
        .shared_store(store.clone())
        .config(config)
        .build()
        .unwrap();
    let stored = || store.session_count().unwrap();
    for wave in 0..3 {
        let logins: Vec<_> = (0..32)
            .map(|i| {
                let manager = manager.clone();
                tokio::spawn(async move {
                    manager
                        .create_session(format!("user{wave}-{i}"), SessionContext::default())
                        .await
                })
            })
            .collect();
        let mut admitted = 0;
        for login in logins {
            match login.await.unwrap() {
                Ok(_) => admitted += 1,
                Err(e) => assert!(matches!(e.kind(), ErrorKind::AtCapacity { .. }), "{e}"),
            }
        }
        assert!(stored() <= 10, "wave {wave}: {} stored", stored());
        assert!(wave > 0 || admitted >= 1, "some logins are admitted");
    }
    // Sequential logins fill the cap exactly, and stop there.
    let mut n = 0;
    while manager
        .create_session(format!("late{n}"), SessionContext::default())
        .await
        .is_ok()
    {
        n += 1;
        assert!(n <= 10);
    }
    assert_eq!(stored(), 10);
}

/// A store that does not count its sessions.
struct Uncounted(MemoryStore);

#[async_trait::async_trait]
impl SessionStore for Uncounted {
    async fn create(&self, r: &SessionRecord) -> Result<(), StoreError> {
        self.0.create(r).await
    }
    async fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.0.load(id).await
    }
    async fn verify_and_advance(
        &self,
        id: &SessionId,
        req: &AdvanceRequest,
    ) -> Result<Option<rolling_session::store::Advance>, StoreError> {
        self.0.verify_and_advance(id, req).await
    }
    async fn update_meta(&self, id: &SessionId, m: &SessionMeta) -> Result<(), StoreError> {
        self.0.update_meta(id, m).await
    }
    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.0.delete(id).await
    }
    async fn list_by_user(&self, user: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.0.list_by_user(user).await
    }
    async fn delete_by_user(&self, user: &str) -> Result<u64, StoreError> {
        self.0.delete_by_user(user).await
    }
    async fn sweep_expired(&self, now: u64) -> Result<u64, StoreError> {
        self.0.sweep_expired(now).await
    }
}

#[test]
fn the_cap_needs_a_store_that_counts() {
    let mut config = Config::default();
    config.admission.max_sessions = Some(10);
    let err = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
        .store(Uncounted(MemoryStore::new()))
        .config(config.clone())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("admission.max_sessions"), "{err}");
    // Without the cap, the same store is fine.
    config.admission.max_sessions = None;
    SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
        .store(Uncounted(MemoryStore::new()))
        .config(config)
        .build()
        .unwrap();
}
