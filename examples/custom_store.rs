//! A session store of your own: sessions in SQLite (rusqlite, bundled),
//! proven by the store conformance suite.
//!
//! ```text
//! cargo run --example custom_store --features test-util
//! ```
//!
//! The recipe for any database:
//!
//! 1. key each record by its lineage ([`SessionRecord::lineage`], the
//!    first 8 bytes of every id the session had), keep the lineage's ids
//!    beside it, and answer for an id only if it is one of them
//!    ([`SessionRecord::has_id`]): renewal and elevation move a session to
//!    a new id of the same lineage, and any other id is an unknown session;
//! 2. keep the record's two halves apart, so `update_meta` can replace the
//!    meta without ever writing the sequence;
//! 3. make `verify_and_advance` one transaction: read the record, call
//!    [`SessionRecord::advance`] (the one sequence rule), write the
//!    sequence and the ids back, commit; here `BEGIN IMMEDIATE` takes
//!    SQLite's write lock first, so two processes sharing the file cannot
//!    both rotate;
//! 4. index sessions by user for `list_by_user` and `delete_by_user`;
//! 5. make `create_limited` one transaction too: read the user's sessions,
//!    apply [`SessionLimit::evictions`] (the one limit rule), revoke the
//!    evicted ones ([`RevocationReason::Evicted`], keeping their rows),
//!    insert the new one, commit; so parallel logins of one user never
//!    exceed the limit;
//! 6. store the meta whole, its `seal` included (the session manager
//!    checks that seal on every record it reads; the store never looks
//!    inside);
//! 7. keep session data per key beside the record (`write_data`: one
//!    transaction that checks the session is live and the size limit
//!    with [`SessionData::size_after`], then writes only the keys named),
//!    return it from `verify_and_advance` for accepted requests, and
//!    delete it with the session;
//! 8. run `rolling_session::store::conformance::run` from a test
//!    (`tests/store_custom.rs` runs this very file).

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rolling_session::store::{
    Advance, Created, DataChanges, DataLimit, SessionData, SessionLimit, conformance,
};
use rolling_session::{
    SessionStore, store::AdvanceRequest, store::RevocationReason, store::SequenceState,
    store::SessionId, store::SessionMeta, store::SessionRecord, store::StoreError,
};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

/// Sessions in one SQLite database. SQLite calls block, so each runs on
/// tokio's blocking pool.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS sessions (
        lineage    BLOB PRIMARY KEY,  -- SessionRecord::lineage: 8 bytes
        ids        BLOB NOT NULL,     -- every id of the lineage, 16 bytes each,
                                      -- oldest first, the current one last
        user_id    TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        meta       TEXT NOT NULL,     -- SessionMeta as JSON
        sequence   TEXT NOT NULL,     -- SequenceState as JSON: counters, never tokens
        purge_at   INTEGER NOT NULL   -- SessionRecord::purge_at, clamped to i64
    );
    CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id);
    CREATE INDEX IF NOT EXISTS sessions_by_purge ON sessions (purge_at);
    CREATE TABLE IF NOT EXISTS session_data (
        lineage    BLOB NOT NULL,     -- the session's lineage
        key        TEXT NOT NULL,
        value      BLOB NOT NULL,     -- the serialized value
        PRIMARY KEY (lineage, key)
    );
";

impl SqliteStore {
    /// A store in a database file (created if missing).
    pub fn open(path: impl AsRef<Path>) -> rusqlite::Result<Self> {
        Self::with(Connection::open(path)?)
    }

    /// A store in memory, gone with the process.
    pub fn open_in_memory() -> rusqlite::Result<Self> {
        Self::with(Connection::open_in_memory()?)
    }

    fn with(conn: Connection) -> rusqlite::Result<Self> {
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(StoreError::unavailable)?
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::unavailable(e)
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::corrupt)
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

type Row = (Vec<u8>, String, i64, String, String);

const SELECT: &str = "SELECT ids, user_id, created_at, meta, sequence FROM sessions";

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

/// The `ids` column: the lineage's ids, 16 bytes each, the current one
/// last.
fn encode_ids(record: &SessionRecord) -> Vec<u8> {
    record.all_ids().flat_map(|id| *id.as_bytes()).collect()
}

fn decode((ids, user_id, created_at, meta, sequence): Row) -> Result<SessionRecord, StoreError> {
    if ids.is_empty() || ids.len() % 16 != 0 {
        return Err(StoreError::corrupt("a lineage's ids are not 16 bytes each"));
    }
    let mut previous_ids: Vec<SessionId> = ids
        .chunks_exact(16)
        .map(|c| SessionId::from_bytes(c.try_into().expect("16 bytes")))
        .collect();
    let id = previous_ids.pop().expect("at least one id");
    Ok(SessionRecord {
        id,
        previous_ids: previous_ids.into(),
        user_id: user_id.into(),
        created_at: u64::try_from(created_at).map_err(StoreError::corrupt)?,
        meta: serde_json::from_str::<SessionMeta>(&meta).map_err(StoreError::corrupt)?,
        sequence: serde_json::from_str::<SequenceState>(&sequence).map_err(StoreError::corrupt)?,
    })
}

/// The lineage key of `id`, as stored.
fn lineage(id: &SessionId) -> [u8; 8] {
    *id.lineage().as_bytes()
}

/// The record `id` is an id of: the one stored under its lineage key, if
/// `id` is one of its ids (another id with the same first 8 bytes is an
/// unknown session).
fn select(conn: &Connection, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
    let record = conn
        .query_row(
            &format!("{SELECT} WHERE lineage = ?1"),
            params![&lineage(id)[..]],
            read_row,
        )
        .optional()
        .map_err(db)?
        .map(decode)
        .transpose()?;
    Ok(record.filter(|r| r.has_id(id)))
}

/// Inserts a new row; a taken lineage key is a conflict.
fn insert(conn: &Connection, r: &SessionRecord) -> Result<(), StoreError> {
    let inserted = conn.execute(
        "INSERT INTO sessions (lineage, ids, user_id, created_at, meta, sequence, purge_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            &lineage(&r.id)[..],
            encode_ids(r),
            r.user_id,
            i64::try_from(r.created_at).map_err(StoreError::corrupt)?,
            json(&r.meta)?,
            json(&r.sequence)?,
            clamp(r.purge_at()),
        ],
    );
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
            Err(StoreError::Conflict)
        }
        Err(e) => Err(db(e)),
    }
}

/// Every stored session of a user.
fn select_data(conn: &Connection, id: &SessionId) -> Result<SessionData, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT key, value FROM session_data WHERE lineage = ?1")
        .map_err(db)?;
    let rows = stmt
        .query_map(params![&lineage(id)[..]], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .map_err(db)?;
    let mut data = SessionData::default();
    for row in rows {
        let (key, value) = row.map_err(db)?;
        data.insert(key, value);
    }
    Ok(data)
}

fn delete_data(conn: &Connection, id: &SessionId) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM session_data WHERE lineage = ?1",
        params![&lineage(id)[..]],
    )
    .map_err(db)?;
    Ok(())
}

fn select_user(conn: &Connection, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
    let mut stmt = conn
        .prepare(&format!("{SELECT} WHERE user_id = ?1"))
        .map_err(db)?;
    let rows = stmt
        .query_map(params![user_id], read_row)
        .map_err(db)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db)?;
    rows.into_iter().map(decode).collect()
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let r = record.clone();
        self.call(move |conn| insert(conn, &r)).await
    }

    async fn create_limited(
        &self,
        record: &SessionRecord,
        limit: &SessionLimit,
    ) -> Result<Created, StoreError> {
        let (r, limit) = (record.clone(), *limit);
        self.call(move |conn| {
            // One transaction, the write lock taken first: two logins of
            // one user (in this process or another sharing the file)
            // never count at the same time.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let evicted = limit.evictions(&select_user(&tx, &r.user_id)?)?;
            // Inserted first, so a taken lineage key evicts nothing (the
            // transaction rolls back when dropped).
            insert(&tx, &r)?;
            for id in &evicted {
                let mut old = select(&tx, id)?.ok_or(StoreError::NotFound)?;
                old.sequence
                    .revoked
                    .get_or_insert(RevocationReason::Evicted);
                tx.execute(
                    "UPDATE sessions SET sequence = ?1 WHERE lineage = ?2",
                    params![json(&old.sequence)?, &lineage(id)[..]],
                )
                .map_err(db)?;
            }
            tx.commit().map_err(db)?;
            Ok(Created::evicting(evicted))
        })
        .await
    }

    async fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let id = *id;
        self.call(move |conn| select(conn, &id)).await
    }

    async fn verify_and_advance(
        &self,
        id: &SessionId,
        request: &AdvanceRequest,
    ) -> Result<Option<Advance>, StoreError> {
        let (id, request) = (*id, *request);
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let Some(mut record) = select(&tx, &id)? else {
                return Ok(None);
            };
            let verdict = record.advance(&request);
            // The ids too: a renewal or an elevation (`new_id`) moved the
            // lineage to a new id.
            tx.execute(
                "UPDATE sessions SET ids = ?1, sequence = ?2, purge_at = ?3 WHERE lineage = ?4",
                params![
                    encode_ids(&record),
                    json(&record.sequence)?,
                    clamp(record.purge_at()),
                    &lineage(&id)[..]
                ],
            )
            .map_err(db)?;
            let data = if verdict.is_accepted() {
                select_data(&tx, &id)?
            } else {
                if record.sequence.revoked.is_some() {
                    delete_data(&tx, &id)?;
                }
                SessionData::default()
            };
            tx.commit().map_err(db)?;
            Ok(Some(Advance {
                verdict,
                record: record.into(),
                data,
            }))
        })
        .await
    }

    async fn write_data(
        &self,
        id: &SessionId,
        changes: &DataChanges,
        limit: &DataLimit,
    ) -> Result<(), StoreError> {
        let (id, changes, limit) = (*id, changes.clone(), *limit);
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            match select(&tx, &id)? {
                Some(record) if record.is_live(limit.now_ms) => {}
                _ => return Err(StoreError::NotFound),
            }
            limit.check(select_data(&tx, &id)?.size_after(&changes))?;
            if changes.clears() {
                delete_data(&tx, &id)?;
            }
            for (key, value) in changes.keys() {
                match value {
                    Some(value) => tx.execute(
                        "INSERT INTO session_data (lineage, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (lineage, key) DO UPDATE SET value = excluded.value",
                        params![&lineage(&id)[..], key, value],
                    ),
                    None => tx.execute(
                        "DELETE FROM session_data WHERE lineage = ?1 AND key = ?2",
                        params![&lineage(&id)[..], key],
                    ),
                }
                .map_err(db)?;
            }
            tx.commit().map_err(db)
        })
        .await
    }

    async fn update_meta(&self, id: &SessionId, meta: &SessionMeta) -> Result<(), StoreError> {
        let (id, meta) = (*id, meta.clone());
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let mut record = select(&tx, &id)?.ok_or(StoreError::NotFound)?;
            record.meta = meta;
            // The sequence column is not written: a request advancing
            // concurrently keeps its counter.
            tx.execute(
                "UPDATE sessions SET meta = ?1, purge_at = ?2 WHERE lineage = ?3",
                params![
                    json(&record.meta)?,
                    clamp(record.purge_at()),
                    &lineage(&id)[..]
                ],
            )
            .map_err(db)?;
            tx.commit().map_err(db)
        })
        .await
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let id = *id;
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            if select(&tx, &id)?.is_none() {
                return Ok(false);
            }
            let n = tx
                .execute(
                    "DELETE FROM sessions WHERE lineage = ?1",
                    params![&lineage(&id)[..]],
                )
                .map_err(db)?;
            delete_data(&tx, &id)?;
            tx.commit().map_err(db)?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let user_id = user_id.to_owned();
        self.call(move |conn| select_user(conn, &user_id)).await
    }

    async fn delete_by_user(&self, user_id: &str) -> Result<u64, StoreError> {
        let user_id = user_id.to_owned();
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            tx.execute(
                "DELETE FROM session_data WHERE lineage IN
                   (SELECT lineage FROM sessions WHERE user_id = ?1)",
                params![user_id],
            )
            .map_err(db)?;
            let n = tx
                .execute("DELETE FROM sessions WHERE user_id = ?1", params![user_id])
                .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(n as u64)
        })
        .await
    }

    async fn sweep_expired(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            tx.execute(
                "DELETE FROM session_data WHERE lineage IN
                   (SELECT lineage FROM sessions WHERE purge_at <= ?1)",
                params![clamp(now_ms)],
            )
            .map_err(db)?;
            let n = tx
                .execute(
                    "DELETE FROM sessions WHERE purge_at <= ?1",
                    params![clamp(now_ms)],
                )
                .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(n as u64)
        })
        .await
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = SqliteStore::open_in_memory()?;
    conformance::run(Arc::new(store.clone())).await;
    println!("SqliteStore passes the rolling-session store conformance suite");

    // And it plugs into the manager like any store.
    let manager = rolling_session::SessionManager::builder(rolling_session::KeyRing::new(
        rolling_session::TokenKey::generate(1),
    ))
    .store(store)
    .build()?;
    let login = manager.create_session("alice", Default::default()).await?;
    let step = manager.validate_session(login.token.expose()).await?;
    println!(
        "alice's session {} validated: {}",
        step.session.id(),
        step.verdict.as_str()
    );
    Ok(())
}
