//! The stored-record decoder: the fields of a Redis lineage hash (`ids`,
//! `uid`, `created`, `meta` in clear or sealed with AES-256-GCM, the
//! sequence, `ends`, `idle`) as every read decodes them, then the manager's
//! record seal check.
//!
//! The data fields of an advance reply (`d:<key>`, value pairs) are
//! decoded too, from the raw input and from edits of genuine sealed
//! values: data or an error, never a panic; an edited sealed value never
//! opens, nor does a genuine one under another key or lineage.
//!
//! The first input byte picks a mode:
//!
//! - even: the rest is split at NUL bytes into the fields, decoded with no
//!   payload key, with one, and with one accepting plaintext: a record or
//!   an error, never a panic; a decoded record encodes and decodes back
//!   equal.
//! - odd: edits (field, offset, byte) applied to a genuine sealed record,
//!   its payload in clear or sealed: whatever decodes and still passes the
//!   record seal names the same user, lineage, creation time, lifetimes and
//!   permissions as the genuine record (a store cannot rewrite them).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rolling_session::store::{PayloadKey, PayloadKeys, RedisStore};
use rolling_session::{
    KeyRing, SessionContext, TokenKey, store::Retirement, store::SequenceState,
    store::SessionFlags, store::SessionId, store::SessionMeta, store::SessionRecord,
};

struct Genuine {
    ring: KeyRing,
    keys: PayloadKeys,
    record: SessionRecord,
    plain: Vec<Vec<u8>>,
    sealed: Vec<Vec<u8>>,
}

static GENUINE: LazyLock<Genuine> = LazyLock::new(|| {
    let ring = KeyRing::new(TokenKey::new(2, &[7; 32])).with_accepted(TokenKey::new(1, &[8; 32]));
    let keys = PayloadKeys::new(PayloadKey::new(1, [9; 32]));
    let first = SessionId::from_bytes([0x42; 16]);
    let mut record = SessionRecord {
        id: first.next_generation(),
        previous_ids: vec![first].into(),
        user_id: "alice@example.com".into(),
        created_at: 1_700_000_000_000,
        meta: SessionMeta {
            context: SessionContext {
                ip: Some("198.51.100.7".parse().unwrap()),
                user_agent: Some("Mozilla/5.0".into()),
                device_id: None,
                location: Some("eu".into()),
            },
            permissions: vec!["read".into(), "write".into()].into(),
            previous_permissions: vec!["read".into()].into(),
            expires_at: 1_700_028_800_000,
            absolute_expires_at: 1_700_604_800_000,
            idle_timeout_ms: 1_800_000,
            renewals: 1,
            flags: SessionFlags {
                elevated: true,
                ..SessionFlags::default()
            },
            seal: None,
        },
        sequence: SequenceState {
            counter: 7,
            presented: Some(6),
            requests: 9,
            last_seen_at: 1_700_000_100_000,
            issued_at: 1_700_000_100_000,
            retired: vec![Retirement {
                from: 5,
                to: 5,
                at: 1_700_000_090_000,
            }]
            .into(),
            revoked: None,
        },
    };
    record.meta.seal = Some(ring.seal_record(&record));
    let plain = RedisStore::encode_hash(None, &record).unwrap();
    let sealed = RedisStore::encode_hash(Some(keys.clone()), &record).unwrap();
    Genuine {
        ring,
        keys,
        record,
        plain,
        sealed,
    }
});

fn raw(data: &[u8]) {
    let g = &*GENUINE;
    let fields: Vec<Vec<u8>> = data.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    let lineage = g.record.lineage();
    for (keys, accept_plaintext) in [
        (None, false),
        (Some(g.keys.clone()), false),
        (Some(g.keys.clone()), true),
    ] {
        let _ = RedisStore::decode_data_fields(keys, accept_plaintext, &lineage, &fields);
    }
    for (keys, accept_plaintext) in [
        (None, false),
        (Some(g.keys.clone()), false),
        (Some(g.keys.clone()), true),
    ] {
        if let Ok(record) = RedisStore::decode_hash(keys, accept_plaintext, &fields) {
            let _ = g.ring.verify_record(&record);
            let again = RedisStore::encode_hash(None, &record).expect("a decoded record encodes");
            let back = RedisStore::decode_hash(None, false, &again).expect("and decodes again");
            assert_eq!(back, record);
        }
    }
}

fn edited(data: &[u8]) {
    let g = &*GENUINE;
    let Some((&choice, edits)) = data.split_first() else {
        return;
    };
    let sealed = choice & 1 == 1;
    let mut fields = if sealed {
        g.sealed.clone()
    } else {
        g.plain.clone()
    };
    // Each edit: field, operation, offset, byte.
    for edit in edits.chunks_exact(4) {
        let field = &mut fields[edit[0] as usize % 13];
        let at = edit[2] as usize;
        match edit[1] % 4 {
            0 if !field.is_empty() => {
                let i = at % field.len();
                field[i] = edit[3];
            }
            1 => field.insert(at.min(field.len()), edit[3]),
            2 if !field.is_empty() => {
                field.remove(at % field.len());
            }
            3 => field.truncate(at),
            _ => {}
        }
    }
    data_value(sealed, edits);
    let keys = sealed.then(|| g.keys.clone());
    let Ok(record) = RedisStore::decode_hash(keys, false, &fields) else {
        return;
    };
    if g.ring.verify_record(&record).is_ok() {
        let genuine = &g.record;
        assert_eq!(record.user_id, genuine.user_id);
        assert_eq!(record.lineage(), genuine.lineage());
        assert_eq!(record.created_at, genuine.created_at);
        assert_eq!(record.meta, genuine.meta, "every meta field is bound");
    }
}

/// A genuine sealed data value, edited: it opens only unedited, and only
/// under its own key name and lineage.
fn data_value(flip: bool, edits: &[u8]) {
    let g = &*GENUINE;
    let lineage = g.record.lineage();
    let value = br#"{"cart":["apple"]}"#;
    let mut sealed =
        RedisStore::encode_data_value(Some(g.keys.clone()), &lineage, "cart", value).unwrap();
    let genuine = sealed.clone();
    for edit in edits.chunks_exact(2) {
        if sealed.is_empty() {
            break;
        }
        let i = edit[0] as usize % sealed.len();
        sealed[i] ^= edit[1];
    }
    let key: &[u8] = if flip { b"d:cart" } else { b"d:other" };
    let opened = RedisStore::decode_data_fields(
        Some(g.keys.clone()),
        false,
        &lineage,
        &[key.to_vec(), sealed.clone()],
    );
    if let Ok(data) = opened {
        assert!(flip && sealed == genuine, "a changed or moved value opened");
        assert_eq!(data.get("cart"), Some(&value[..]));
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode & 1 == 0 => raw(rest),
        Some((_, rest)) => edited(rest),
        None => {}
    }
});
