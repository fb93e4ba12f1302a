//! The session data as one request sees it: what it read with its
//! validation, with what it has written since and what it will write on
//! top, each layer shadowing the one below.
//!
//! The data read is never copied: a change is recorded once, in the layer
//! of pending changes, which is also what the store is sent. A request that
//! changes one key of a large session pays for that key only.

use std::sync::Arc;

use crate::data::{DataChanges, SessionData, Value};

#[derive(Debug, Default)]
pub(super) struct DataView {
    /// As read with the validation (shared with the store).
    read: SessionData,
    /// Written by this request's earlier saves.
    saved: DataChanges,
    /// Not written yet.
    pending: DataChanges,
}

impl DataView {
    pub(super) fn new(read: SessionData) -> Self {
        Self {
            read,
            ..Self::default()
        }
    }

    /// Another reading of the store; this request's changes stay on top.
    pub(super) fn reread(&mut self, read: SessionData) {
        self.read = read;
    }

    /// The value of `key` as the request sees it.
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        match self.pending.lookup(key) {
            Some(value) => value,
            None => match self.saved.lookup(key) {
                Some(value) => value,
                None => self.read.get_shared(key),
            },
        }
    }

    /// Each key and value as the request sees them.
    fn for_each(&self, mut f: impl FnMut(&str, &Value)) {
        if !self.saved.clears() && !self.pending.clears() {
            for (key, value) in self.read.iter_shared() {
                if self.saved.lookup(key).is_none() && self.pending.lookup(key).is_none() {
                    f(key, value);
                }
            }
        }
        if !self.pending.clears() {
            for (key, value) in self.saved.sets() {
                if self.pending.lookup(key).is_none() {
                    f(key, value);
                }
            }
        }
        for (key, value) in self.pending.sets() {
            f(key, value);
        }
    }

    /// The size the limit counts ([`SessionData::size`]).
    pub(super) fn size(&self) -> usize {
        let mut size = 0;
        self.for_each(|key, value| size += key.len() + value.len());
        size
    }

    /// Whether the request sees no key.
    pub(super) fn is_empty(&self) -> bool {
        let mut empty = true;
        self.for_each(|_, _| empty = false);
        empty
    }

    pub(super) fn set(&mut self, key: &str, value: Value) {
        self.pending.set(key, value);
    }

    /// Removes `key`; whether it was there.
    pub(super) fn remove(&mut self, key: &str) -> bool {
        let present = self.get(key).is_some();
        if present {
            self.pending.remove(key);
        }
        present
    }

    /// Removes every key; whether there was any.
    pub(super) fn clear(&mut self) -> bool {
        let present = !self.is_empty();
        if present {
            self.pending.clear();
        }
        present
    }

    /// Lets go of the data read, keeping the changes: for a view no one
    /// reads again (see `Session::save_last`).
    pub(super) fn forget_read(&mut self) {
        self.read = SessionData::default();
    }

    /// Forgets everything: no data read, nothing to write (a logout).
    pub(super) fn reset(&mut self) {
        *self = Self::default();
    }

    /// The whole view as changes to write to a new session (a login
    /// carrying the visitor's data over), the data read dropped.
    pub(super) fn carry_over(&mut self) {
        let mut carried = DataChanges::default();
        self.for_each(|key, value| carried.set(key, Arc::clone(value)));
        *self = Self {
            pending: carried,
            ..Self::default()
        };
    }

    pub(super) fn is_modified(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The pending changes, to write; [`saved`](Self::saved) or
    /// [`requeue`](Self::requeue) says how that went.
    pub(super) fn take_pending(&mut self) -> DataChanges {
        std::mem::take(&mut self.pending)
    }

    /// `changes` were written.
    pub(super) fn saved(&mut self, changes: DataChanges) {
        if self.saved.is_empty() {
            self.saved = changes;
        } else {
            self.saved.then(&changes);
        }
    }

    /// `changes` failed to be written: pending again, before any made
    /// since, so a retry writes them.
    pub(super) fn requeue(&mut self, mut changes: DataChanges) {
        changes.then(&self.pending);
        self.pending = changes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> SessionData {
        let mut data = SessionData::default();
        for (k, v) in pairs {
            data.insert(*k, v.as_bytes());
        }
        data
    }

    fn seen(view: &DataView) -> Vec<(String, String)> {
        let mut out = Vec::new();
        view.for_each(|k, v| out.push((k.to_owned(), String::from_utf8_lossy(v).into_owned())));
        out.sort();
        out
    }

    /// The view is what applying every layer to the data read gives, at
    /// every step of a request that reads, saves halfway, and changes more.
    #[test]
    fn the_view_is_the_data_read_with_the_changes_applied() {
        let mut view = DataView::new(read(&[("a", "1"), ("b", "22")]));
        let mut expected = read(&[("a", "1"), ("b", "22")]);
        let check = |view: &DataView, expected: &SessionData| {
            let want: Vec<(String, String)> = expected
                .iter()
                .map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into_owned()))
                .collect();
            assert_eq!(seen(view), want);
            assert_eq!(view.size(), expected.size());
            assert_eq!(view.is_empty(), expected.is_empty());
            for key in ["a", "b", "c"] {
                assert_eq!(view.get(key).map(|v| &**v), expected.get(key), "{key}");
            }
        };
        let apply = |expected: &mut SessionData, f: &dyn Fn(&mut DataChanges)| {
            let mut c = DataChanges::default();
            f(&mut c);
            expected.apply(&c);
        };

        view.set("c", Arc::from(&b"333"[..]));
        apply(&mut expected, &|c| c.set("c", &b"333"[..]));
        check(&view, &expected);
        assert!(view.remove("a"));
        assert!(!view.remove("absent"));
        apply(&mut expected, &|c| c.remove("a"));
        check(&view, &expected);

        let written = view.take_pending();
        assert!(!view.is_modified());
        view.saved(written);
        check(&view, &expected);

        view.set("a", Arc::from(&b"4"[..]));
        apply(&mut expected, &|c| c.set("a", &b"4"[..]));
        check(&view, &expected);
        assert!(view.clear());
        apply(&mut expected, &|c| c.clear());
        check(&view, &expected);
        assert!(!view.clear(), "nothing left to clear");
        view.set("d", Arc::from(&b"5"[..]));
        apply(&mut expected, &|c| c.set("d", &b"5"[..]));
        check(&view, &expected);

        let failed = view.take_pending();
        view.set("e", Arc::from(&b"6"[..]));
        view.requeue(failed);
        apply(&mut expected, &|c| c.set("e", &b"6"[..]));
        check(&view, &expected);

        view.carry_over();
        check(&view, &expected);
        assert!(view.is_modified());
    }
}
