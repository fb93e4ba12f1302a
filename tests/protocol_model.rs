//! Exhaustive exploration of the sequence rule (`SessionRecord::advance`,
//! the real one) against two adversaries, within small bounds.
//!
//! A breadth-first search over every interleaving of: an honest browser
//! sending requests (bursts included) with whatever its cookie jar holds;
//! requests arriving in any order or being lost; handlers finishing at any
//! time (slow requests); responses delivered in any order or lost; time
//! passing in ticks; and, in the theft runs, a thief copying the jar at any
//! moment and using the copy (plain requests or renewals) whenever it
//! likes. With a rollback budget, the store may also lose its last writes
//! (up to [`LOSS_DEPTH`] of them, as a failover with replication lag or a
//! restart from an older snapshot does), at any moment; responses already
//! on their way still arrive. A store that lost writes is one that failed
//! (a primary died, a server crashed): until it is back, requests reaching
//! it are refused (503, the jar is kept: a lost request), and it is back
//! only once nothing is in flight any more: every request and response
//! that was on its way has arrived or been lost, i.e. the outage lasts at
//! least T (A1, A2). `docs/protocol.md` states this as the rule's
//! assumption about failovers.
//!
//! What the network may do is bounded by the protocol's assumptions
//! (`docs/protocol.md`): a request arrives within T of being sent or never
//! (A1); a token leaves in a response at most `D` after it was issued or is
//! dropped (the layer's send deadline), and a response is delivered within
//! `T - D` of leaving or never (A2). Handlers may take any time.
//!
//! Properties checked in every reachable state:
//! - **no false theft**: with no thief, no request is ever `Reused`, and the
//!   jar never holds a token the server will refuse;
//! - **no upgrade of a stale copy**: nobody is issued a token in answer to
//!   a token older than one the other party has already presented, and the
//!   thief is never issued one once the victim has presented a token newer
//!   than the copy;
//! - **no coexistence**: from any quiet state (nothing in flight), if the
//!   two parties take turns (victim, thief, victim, or thief, victim,
//!   thief), each after a pause longer than 2T, one of the three requests is
//!   refused: two holders cannot both keep the session.
//!
//! A store that lost writes forgot what was presented in them: after a
//! rollback, "presented" in the upgrade check means presented to the store
//! as it is now (what a party showed only in the lost writes is
//! forgotten, as the store forgot it). Rollbacks never undo a renewal: a
//! session whose renewal was lost is unknown to the store (its new id is
//! not among the lineage's), which `docs/protocol.md` states as a limit.
//!
//! Time is kept relative (all stored times shifted so that "now" is fixed,
//! and times older than 2T + 2 ticks clamped), so the state space is finite
//! without a bound on elapsed time: pauses of any length are covered.

use std::collections::{HashSet, VecDeque};

use rolling_session::{
    store::AdvanceRequest, store::Rotate, store::SequenceState, store::SessionId,
    store::SessionMeta, store::SessionRecord, store::Verdict,
};

const TICK: u64 = 1_000;
/// The grace window T, in ticks.
const T: u64 = 3;
/// The send deadline: a token leaves at most this many ticks after issue.
const D: u8 = 1;
/// Longest transit of a request, in ticks (assumption A1: T).
const A_REQ: u8 = T as u8;
/// Longest transit of a response, in ticks (assumption A2: T - D).
const A_RESP: u8 = T as u8 - D;
const NOW: u64 = 1_000_000;
/// How many of its last writes the store may lose at once.
const LOSS_DEPTH: usize = 2;
/// N, `token.max_ahead`.
const MAX_AHEAD: u64 = 64;
const FLOOR: u64 = NOW - (2 * T + 2) * TICK;

const VICTIM: u8 = 0;
const THIEF: u8 = 1;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
struct Tok {
    id: u8,
    ctr: u64,
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Msg {
    /// A request in transit: who sent it, the token, renewal or not, age.
    Req(u8, Tok, bool, u8),
    /// A request being handled: who, the token issued for it, its age.
    Handling(u8, Tok, u8),
    /// A response in transit with a token.
    Resp(u8, Tok, u8),
}

/// The projection of a record the rule reads: counter, presented, issued
/// at, retirements, revoked, index of the current id.
type Seq = (u64, Option<u64>, u64, Vec<(u64, u64, u64)>, bool, u8);

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct State {
    /// The projection of the record the rule reads.
    seq: Seq,
    jars: [Option<Tok>; 2],
    budgets: [u8; 2],
    renewals: u8,
    copied: bool,
    msgs: Vec<Msg>,
    /// Highest counter each party had accepted.
    shown: [Option<u64>; 2],
    /// The counter of the thief's copy.
    copy: Option<u64>,
    /// The store's last writes, oldest first (while a rollback may still
    /// happen).
    history: Vec<Seq>,
    /// Rollbacks still allowed.
    rollbacks: u8,
    /// The store failed and lost writes, and is not back yet.
    down: bool,
}

fn ids() -> Vec<SessionId> {
    let first = SessionId::from_bytes([7; 16]);
    (0..8u8)
        .map(|i| {
            let mut b = *first.as_bytes();
            b[15] = i;
            SessionId::from_bytes(b)
        })
        .collect()
}

struct Model {
    ids: Vec<SessionId>,
    thief: bool,
    /// Renewal requests allowed in all.
    renewals: u8,
    /// Times the store may lose its last writes.
    rollbacks: u8,
}

#[derive(Default, Debug)]
struct Report {
    states: usize,
    false_thefts: usize,
    thefts_detected: usize,
    upgrades: usize,
    coexistences: usize,
    example: Option<String>,
}

impl Model {
    fn record(&self, s: &State) -> SessionRecord {
        let (counter, presented, issued_at, retired, revoked, id) = &s.seq;
        SessionRecord {
            id: self.ids[*id as usize],
            previous_ids: self.ids[..*id as usize].into(),
            user_id: "u".into(),
            created_at: 0,
            meta: SessionMeta {
                context: Default::default(),
                permissions: Box::default(),
                previous_permissions: Box::default(),
                seal: None,
                expires_at: u64::MAX / 2,
                absolute_expires_at: u64::MAX / 2,
                idle_timeout_ms: u64::MAX / 4,
                renewals: 0,
                flags: Default::default(),
            },
            sequence: SequenceState {
                counter: *counter,
                presented: *presented,
                requests: 0,
                last_seen_at: NOW,
                issued_at: *issued_at,
                retired: retired
                    .iter()
                    .map(|&(from, to, at)| rolling_session::store::Retirement { from, to, at })
                    .collect(),
                revoked: revoked.then_some(rolling_session::store::RevocationReason::TokenReused),
            },
        }
    }

    fn project(r: &SessionRecord, ids: &[SessionId]) -> Seq {
        let q = &r.sequence;
        let id = ids.iter().position(|i| *i == r.id).expect("known id") as u8;
        (
            q.counter,
            q.presented,
            q.issued_at.max(FLOOR),
            q.retired
                .iter()
                .map(|x| (x.from, x.to, x.at.max(FLOOR)))
                .collect(),
            q.revoked.is_some(),
            id,
        )
    }

    /// Presents `tok` at NOW; returns the verdict, the token issued (if
    /// any) and the new record projection.
    fn present(&self, s: &State, tok: Tok, renew: bool) -> (Verdict, Option<Tok>, State) {
        self.present_with(s, tok, renew, Rotate::Always)
    }

    /// A request as the layer and a renewing handler make it: the layer
    /// validates the client's token; a renewal then moves the lineage with
    /// the token the layer just issued (undelivered, so replaced), or with
    /// the client's own token if none was issued.
    fn request(&self, s: &State, tok: Tok, renew: bool) -> (Verdict, Option<Tok>, State) {
        let (v, issued, n) = self.present(s, tok, false);
        if !renew || !v.is_accepted() {
            return (v, issued, n);
        }
        let (_, renewed, n) = match issued {
            Some(t) => self.present_with(&n, t, true, Rotate::ReplaceUndelivered),
            None => self.present(&n, tok, true),
        };
        (v, renewed.or(issued), n)
    }

    fn present_with(
        &self,
        s: &State,
        tok: Tok,
        renew: bool,
        rotate: Rotate,
    ) -> (Verdict, Option<Tok>, State) {
        let mut r = self.record(s);
        let new_id = (renew && (s.seq.5 as usize) + 1 < self.ids.len())
            .then(|| self.ids[s.seq.5 as usize + 1]);
        let v = r.advance(&AdvanceRequest {
            session: self.ids[tok.id as usize],
            presented: tok.ctr,
            now_ms: NOW,
            grace_depth: 16,
            grace_window_ms: T * TICK,
            rotate,
            new_id,
            max_ahead: MAX_AHEAD,
        });
        let mut next = s.clone();
        next.seq = Self::project(&r, &self.ids);
        if s.rollbacks > 0 && next.seq != s.seq {
            next.history.push(s.seq.clone());
            if next.history.len() > LOSS_DEPTH {
                next.history.remove(0);
            }
        }
        let issued = v.issues_token().then_some(Tok {
            id: next.seq.5,
            ctr: next.seq.0,
        });
        (v, issued, next)
    }

    fn tick(s: &mut State) {
        let shift = |t: &mut u64| *t = t.saturating_sub(TICK).max(FLOOR);
        for seq in std::iter::once(&mut s.seq).chain(&mut s.history) {
            shift(&mut seq.2);
            for r in &mut seq.3 {
                shift(&mut r.2);
            }
        }
        for m in &mut s.msgs {
            match m {
                Msg::Req(.., age) | Msg::Resp(.., age) => *age += 1,
                Msg::Handling(.., age) => *age = (*age + 1).min(D + 1),
            }
        }
    }

    fn successors(&self, s: &State, report: &mut Report) -> Vec<State> {
        let mut out = Vec::new();
        let parties: &[u8] = if self.thief {
            &[VICTIM, THIEF]
        } else {
            &[VICTIM]
        };
        // Send.
        for &p in parties {
            if let (Some(tok), true) = (s.jars[p as usize], s.budgets[p as usize] > 0) {
                for renew in [false, true] {
                    if renew && s.renewals == 0 {
                        continue;
                    }
                    let mut n = s.clone();
                    n.budgets[p as usize] -= 1;
                    if renew {
                        n.renewals -= 1;
                    }
                    n.msgs.push(Msg::Req(p, tok, renew, 0));
                    out.push(n);
                }
            }
        }
        // The store loses its last k writes (never a renewal: see the file
        // docs).
        if s.rollbacks > 0 {
            for k in 1..=s.history.len() {
                let target = &s.history[s.history.len() - k];
                if target.5 != s.seq.5 {
                    continue;
                }
                let mut n = s.clone();
                n.seq = target.clone();
                n.rollbacks -= 1;
                n.history.truncate(s.history.len() - k);
                n.down = true;
                if n.rollbacks == 0 {
                    n.history.clear();
                }
                // What was presented only in the lost writes is forgotten.
                let known = n.seq.1;
                for shown in &mut n.shown {
                    *shown = shown.zip(known).map(|(x, p)| x.min(p));
                }
                out.push(n);
            }
        }
        // Copy.
        if self.thief && !s.copied && s.jars[0].is_some() {
            let mut n = s.clone();
            n.copied = true;
            n.jars[1] = s.jars[0];
            n.copy = s.jars[0].map(|t| t.ctr);
            out.push(n);
        }
        for (i, m) in s.msgs.iter().enumerate() {
            let mut base = s.clone();
            base.msgs.remove(i);
            match *m {
                Msg::Req(p, tok, renew, _) => {
                    // Lost.
                    out.push(base.clone());
                    if s.down {
                        continue;
                    }
                    // Arrives.
                    let (v, issued, mut n) = self.request(&base, tok, renew);
                    if v == Verdict::Reused {
                        if self.thief {
                            report.thefts_detected += 1;
                        } else {
                            report.false_thefts += 1;
                            report
                                .example
                                .get_or_insert_with(|| format!("{s:?} -> {m:?}"));
                        }
                    }
                    if v == Verdict::FastForward && s.rollbacks == self.rollbacks {
                        // Only a store that lost writes sees a minted
                        // counter ahead of its own.
                        report.false_thefts += 1;
                        report
                            .example
                            .get_or_insert_with(|| format!("ahead, no loss: {s:?} -> {m:?}"));
                    }
                    if matches!(v, Verdict::Ahead | Verdict::Unknown) && !self.thief {
                        report.false_thefts += 1;
                        report
                            .example
                            .get_or_insert_with(|| format!("{v:?}: {s:?} -> {m:?}"));
                    }
                    if v.is_accepted() {
                        let other = 1 - p as usize;
                        // Nobody is issued a token in answer to a token older
                        // than one the other has presented, and the thief is
                        // never issued one once the victim has presented a
                        // token newer than the copy.
                        let behind = s.shown[other].is_some_and(|o| o > tok.ctr);
                        let past_copy = p == THIEF
                            && s.shown[VICTIM as usize]
                                .zip(s.copy)
                                .is_some_and(|(v, c)| v > c);
                        if issued.is_some() && self.thief && s.copied && (behind || past_copy) {
                            report.upgrades += 1;
                            report
                                .example
                                .get_or_insert_with(|| format!("upgrade ({v:?}): {s:?} -> {m:?}"));
                        }
                        // With rollbacks, a token the store issued the
                        // thief without upgrading it makes the thief a
                        // holder of it, as if it had copied it: later
                        // checks compare against it. (A rollback forgets
                        // who moved ahead: the store may then mint again a
                        // counter the thief was issued before the loss, or
                        // one of the lost window that the victim holds too.)
                        if let Some(t) = issued
                            && p == THIEF
                            && self.rollbacks > 0
                            && !(behind || past_copy)
                        {
                            n.copy = Some(n.copy.map_or(t.ctr, |c| c.max(t.ctr)));
                        }
                        let shown = &mut n.shown[p as usize];
                        *shown = Some(shown.map_or(tok.ctr, |x| x.max(tok.ctr)));
                    }
                    if let Some(t) = issued {
                        n.msgs.push(Msg::Handling(p, t, 0));
                    }
                    n.msgs.sort();
                    out.push(n);
                }
                Msg::Handling(p, tok, age) => {
                    // Leaves: with its token only before the send deadline.
                    if age <= D {
                        base.msgs.push(Msg::Resp(p, tok, 0));
                        base.msgs.sort();
                    }
                    out.push(base);
                }
                Msg::Resp(p, tok, _) => {
                    out.push(base.clone()); // lost
                    base.jars[p as usize] = Some(tok);
                    out.push(base);
                }
            }
        }
        // Time passes, once everything due has arrived or been lost.
        let due = s.msgs.iter().any(|m| match m {
            Msg::Req(.., age) => *age >= A_REQ,
            Msg::Resp(.., age) => *age >= A_RESP,
            Msg::Handling(..) => false,
        });
        if !due {
            let mut n = s.clone();
            Self::tick(&mut n);
            if n != *s {
                out.push(n);
            }
        }
        for n in &mut out {
            n.msgs.sort();
            if n.down && n.msgs.is_empty() {
                n.down = false;
            }
        }
        out
    }

    /// From a quiet state, the two parties take turns after long pauses;
    /// true if all three turns were accepted.
    fn coexist(&self, s: &State, first: u8) -> bool {
        // A rollback can make a copy's token live again: the store then
        // mints the counters after it once more, the very tokens the other
        // party already holds, and one more turn is needed before one of
        // them is behind (see the file docs).
        let turns = if s.rollbacks < self.rollbacks { 4 } else { 3 };
        let mut s = s.clone();
        for turn in 0..turns {
            let p = if turn % 2 == 0 { first } else { 1 - first };
            for _ in 0..=2 * T + 1 {
                Self::tick(&mut s);
            }
            let Some(tok) = s.jars[p as usize] else {
                return false;
            };
            let (v, issued, n) = self.present(&s, tok, false);
            if !v.is_accepted() {
                return false;
            }
            s = n;
            if let Some(t) = issued {
                s.jars[p as usize] = Some(t);
            }
        }
        true
    }

    fn explore(&self, budgets: [u8; 2], limit: usize) -> Report {
        let mut report = Report::default();
        let start_record = SessionRecord {
            sequence: SequenceState::new(NOW),
            ..self.record(&State {
                seq: (0, None, NOW, vec![], false, 0),
                jars: [None; 2],
                budgets,
                renewals: 0,
                copied: false,
                msgs: vec![],
                shown: [None; 2],
                copy: None,
                history: vec![],
                rollbacks: 0,
                down: false,
            })
        };
        let start = State {
            seq: Self::project(&start_record, &self.ids),
            jars: [Some(Tok { id: 0, ctr: 0 }), None],
            budgets,
            renewals: self.renewals,
            copied: false,
            msgs: vec![],
            shown: [None; 2],
            copy: None,
            history: vec![],
            rollbacks: self.rollbacks,
            down: false,
        };
        let mut seen = HashSet::new();
        let mut queue = VecDeque::new();
        seen.insert(start.clone());
        queue.push_back(start);
        while let Some(s) = queue.pop_front() {
            report.states += 1;
            assert!(report.states <= limit, "state space larger than {limit}");
            if self.thief && s.copied && s.msgs.is_empty() && !s.seq.4 {
                for first in [VICTIM, THIEF] {
                    if self.coexist(&s, first) {
                        report.coexistences += 1;
                        report
                            .example
                            .get_or_insert_with(|| format!("coexist (first {first}): {s:?}"));
                    }
                }
            }
            if !self.thief && s.msgs.is_empty() {
                // The jar must still be good after any pause.
                let mut quiet = s.clone();
                for _ in 0..=2 * T + 1 {
                    Self::tick(&mut quiet);
                }
                if let Some(tok) = quiet.jars[0] {
                    let (v, ..) = self.present(&quiet, tok, false);
                    if !v.is_accepted() {
                        report.false_thefts += 1;
                        report.example.get_or_insert_with(|| {
                            format!("jar refused ({v:?}) after a pause: {s:?}")
                        });
                    }
                }
            }
            for n in self.successors(&s, &mut report) {
                if seen.insert(n.clone()) {
                    queue.push_back(n);
                }
            }
        }
        report
    }
}

fn bound(name: &str, default: u8) -> u8 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn no_honest_browser_is_accused() {
    let model = Model {
        ids: ids(),
        thief: false,
        renewals: bound("MODEL_RENEWALS", 1),
        rollbacks: 0,
    };
    let report = model.explore([bound("MODEL_HONEST_REQUESTS", 5), 0], 20_000_000);
    eprintln!("honest: {report:?}");
    assert!(report.states > 1_000, "the exploration ran: {report:?}");
    assert_eq!(report.false_thefts, 0, "{report:?}");
}

#[test]
fn no_thief_coexists_or_is_upgraded() {
    let model = Model {
        ids: ids(),
        thief: true,
        renewals: bound("MODEL_RENEWALS", 1),
        rollbacks: 0,
    };
    let report = model.explore(
        [
            bound("MODEL_VICTIM_REQUESTS", 2),
            bound("MODEL_THIEF_REQUESTS", 2),
        ],
        20_000_000,
    );
    eprintln!("thief: {report:?}");
    assert!(report.thefts_detected > 0, "theft is reachable: {report:?}");
    assert_eq!(report.upgrades, 0, "{report:?}");
    assert_eq!(report.coexistences, 0, "{report:?}");
}

#[test]
fn no_honest_browser_is_accused_when_the_store_loses_writes() {
    let model = Model {
        ids: ids(),
        thief: false,
        renewals: 0,
        rollbacks: bound("MODEL_ROLLBACKS", 1),
    };
    let report = model.explore([bound("MODEL_LOSS_HONEST_REQUESTS", 4), 0], 20_000_000);
    eprintln!("honest, store losing writes: {report:?}");
    assert!(report.states > 1_000, "the exploration ran: {report:?}");
    assert_eq!(report.false_thefts, 0, "{report:?}");
}

#[test]
fn no_thief_coexists_or_is_upgraded_when_the_store_loses_writes() {
    let model = Model {
        ids: ids(),
        thief: true,
        renewals: 0,
        rollbacks: bound("MODEL_ROLLBACKS", 1),
    };
    let report = model.explore(
        [
            bound("MODEL_VICTIM_REQUESTS", 2),
            bound("MODEL_THIEF_REQUESTS", 2),
        ],
        20_000_000,
    );
    eprintln!("thief, store losing writes: {report:?}");
    assert!(report.thefts_detected > 0, "theft is reachable: {report:?}");
    assert_eq!(report.upgrades, 0, "{report:?}");
    assert_eq!(report.coexistences, 0, "{report:?}");
}
