//! A linearizability checker for histories of key-value operations (set, get, test-and-set,
//! delete) against a per-key register model.
//!
//! A history is every operation some clients performed, each with the time it was invoked, the
//! time it returned, and its outcome. It is *linearizable* if every operation can be given one
//! instant between its invocation and its return such that, taken in that order, the
//! operations produce exactly the observed outcomes on a single register per key.
//!
//! The search is Wing & Gong's, with Lowe's memoisation of (set of linearized operations,
//! model state) as used by Porcupine and Knossos: walk the history's call/return events in time
//! order; at a call, try to linearize that operation now (if the model accepts its outcome and
//! the resulting configuration was not seen before), else look at the next call; at a return
//! whose call is not yet linearized, backtrack. Keys are independent registers, so each key's
//! sub-history is checked on its own (P-compositionality), which keeps the search small.
//!
//! Operations whose outcome is unknown (a timeout, a 300 error: the write may or may not have
//! been committed) return "at infinity" and accept any outcome: they may take effect at any
//! point after their invocation, or never.
//!
//! On a violation, [`check`] reports the key and the smallest window of operations (by time)
//! that is already not linearizable.

use std::collections::{BTreeMap, HashSet};

/// A register's state: `None` when the key does not exist.
pub type Value = Option<String>;

/// What an operation asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    /// Set the key to a value.
    Set(String),
    /// Read the key.
    Get,
    /// Set the key to `new` only if it holds `expected`.
    TestAndSet {
        /// The value the key must hold.
        expected: String,
        /// The value to set.
        new: String,
    },
    /// Delete the key.
    Delete,
}

/// What an operation observed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Output {
    /// A set or a successful test-and-set.
    Ok,
    /// A read's result (`None`: key not found).
    Read(Value),
    /// A test-and-set that found another value, or none (codes 101 and 100).
    Failed,
    /// A delete: whether the key existed (`false`: code 100).
    Deleted(bool),
    /// Not known: the operation may or may not have taken effect.
    Unknown,
}

/// One operation of a history. Times are in any unit, but comparable across clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Which client performed it (for reports).
    pub client: usize,
    /// The key.
    pub key: String,
    /// What it asked.
    pub input: Input,
    /// What it observed.
    pub output: Output,
    /// When it was invoked.
    pub call: u64,
    /// When it returned (ignored for `Output::Unknown`, which returns at infinity).
    pub ret: u64,
}

/// Why a history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key whose register has no valid order.
    pub key: String,
    /// The shortest prefix (by invocation time) of that key's operations that already has no
    /// valid order: the last one is where it goes wrong.
    pub window: Vec<Op>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "history of key {} is not linearizable; minimal failing window:",
            self.key
        )?;
        for op in &self.window {
            let ret = if op.output == Output::Unknown {
                "?".to_string()
            } else {
                op.ret.to_string()
            };
            writeln!(
                f,
                "  client {} [{}, {}] {:?} -> {:?}",
                op.client, op.call, ret, op.input, op.output
            )?;
        }
        Ok(())
    }
}

/// Applies an operation to a register state: the new state if the observed outcome is
/// possible from `state`, else `None`.
pub fn step(state: &Value, input: &Input, output: &Output) -> Option<Value> {
    let unknown = *output == Output::Unknown;
    match input {
        Input::Set(v) => (unknown || *output == Output::Ok).then(|| Some(v.clone())),
        Input::Get => match output {
            Output::Unknown => Some(state.clone()),
            Output::Read(seen) => (seen == state).then(|| state.clone()),
            _ => None,
        },
        Input::TestAndSet { expected, new } => {
            let matches = state.as_deref() == Some(expected.as_str());
            match output {
                Output::Unknown if matches => Some(Some(new.clone())),
                Output::Unknown => Some(state.clone()),
                Output::Ok => matches.then(|| Some(new.clone())),
                Output::Failed => (!matches).then(|| state.clone()),
                _ => None,
            }
        }
        Input::Delete => match output {
            Output::Unknown => Some(None),
            Output::Deleted(existed) => (*existed == state.is_some()).then_some(None),
            _ => None,
        },
    }
}

/// Checks a whole history, key by key. Every key starts absent.
pub fn check(history: &[Op]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    for (key, ops) in by_key {
        if !linearizable(&ops) {
            return Err(Violation {
                key: key.to_string(),
                window: minimal_window(ops),
            });
        }
    }
    Ok(())
}

/// The shortest prefix by invocation time that is not linearizable (binary search: a prefix of
/// a linearizable history, cut at an invocation, is linearizable once the cut operations that
/// are still running are allowed to be unknown).
fn minimal_window(mut ops: Vec<&Op>) -> Vec<Op> {
    ops.sort_by_key(|o| o.call);
    let prefix = |n: usize| -> Vec<Op> {
        let cut = ops[n - 1].call;
        ops[..n]
            .iter()
            .map(|o| {
                let mut o = (*o).clone();
                // Still running at the cut: its outcome is not known yet.
                if o.output != Output::Unknown && o.ret > cut {
                    o.output = Output::Unknown;
                }
                o
            })
            .collect()
    };
    let (mut lo, mut hi) = (1, ops.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        let p = prefix(mid);
        if linearizable(&p.iter().collect::<Vec<_>>()) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    // Report the real outcomes of the window's operations.
    ops[..lo].iter().map(|o| (*o).clone()).collect()
}

#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
    /// For a call: the index of its return event.
    partner: usize,
}

const NIL: usize = usize::MAX;

/// Wing–Gong–Lowe search over one key's operations.
fn linearizable(ops: &[&Op]) -> bool {
    let n = ops.len();
    if n == 0 {
        return true;
    }
    // Events in time order; at equal times calls come first (the more permissive order).
    let mut order: Vec<(u64, u8, usize, bool)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.call, 0, i, true));
        let ret = if op.output == Output::Unknown {
            u64::MAX
        } else {
            op.ret.max(op.call)
        };
        order.push((ret, 1, i, false));
    }
    order.sort();
    let mut events: Vec<Event> = order
        .iter()
        .map(|&(_, _, op, is_call)| Event {
            op,
            is_call,
            prev: NIL,
            next: NIL,
            partner: NIL,
        })
        .collect();
    let mut ret_of = vec![NIL; n];
    for (i, e) in events.iter().enumerate() {
        if !e.is_call {
            ret_of[e.op] = i;
        }
    }
    let len = events.len();
    for i in 0..len {
        events[i].prev = if i == 0 { NIL } else { i - 1 };
        events[i].next = if i + 1 == len { NIL } else { i + 1 };
        if events[i].is_call {
            events[i].partner = ret_of[events[i].op];
        }
    }
    // A sentinel head makes unlinking uniform.
    let mut head_next = 0usize;

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Value)> = HashSet::new();
    let mut stack: Vec<(usize, Value)> = Vec::new();
    let mut state: Value = None;
    let mut cursor = head_next;

    let unlink = |events: &mut Vec<Event>, head_next: &mut usize, i: usize| {
        let (p, nx) = (events[i].prev, events[i].next);
        if p == NIL {
            *head_next = nx;
        } else {
            events[p].next = nx;
        }
        if nx != NIL {
            events[nx].prev = p;
        }
    };
    let relink = |events: &mut Vec<Event>, head_next: &mut usize, i: usize| {
        let (p, nx) = (events[i].prev, events[i].next);
        if p == NIL {
            *head_next = i;
        } else {
            events[p].next = i;
        }
        if nx != NIL {
            events[nx].prev = i;
        }
    };

    while head_next != NIL {
        if cursor == NIL {
            // Nothing more to try at this level: backtrack.
            let Some((call, prev_state)) = stack.pop() else {
                return false;
            };
            let op = events[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            state = prev_state;
            let ret = events[call].partner;
            relink(&mut events, &mut head_next, ret);
            relink(&mut events, &mut head_next, call);
            cursor = events[call].next;
            continue;
        }
        let e = events[cursor];
        if e.is_call {
            let op = ops[e.op];
            if let Some(next_state) = step(&state, &op.input, &op.output) {
                let mut lin = linearized.clone();
                lin[e.op / 64] |= 1 << (e.op % 64);
                if seen.insert((lin.clone(), next_state.clone())) {
                    stack.push((cursor, state));
                    state = next_state;
                    linearized = lin;
                    unlink(&mut events, &mut head_next, e.partner);
                    unlink(&mut events, &mut head_next, cursor);
                    cursor = head_next;
                    continue;
                }
            }
            cursor = e.next;
        } else {
            // A return whose call is not linearized: this branch is dead.
            cursor = NIL;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, key: &str, input: Input, output: Output, call: u64, ret: u64) -> Op {
        Op {
            client,
            key: key.into(),
            input,
            output,
            call,
            ret,
        }
    }
    fn set(v: &str) -> Input {
        Input::Set(v.into())
    }
    fn read(v: Option<&str>) -> Output {
        Output::Read(v.map(String::from))
    }
    fn tas(e: &str, n: &str) -> Input {
        Input::TestAndSet {
            expected: e.into(),
            new: n.into(),
        }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = vec![
            op(0, "k", Input::Get, read(None), 0, 1),
            op(0, "k", set("a"), Output::Ok, 2, 3),
            op(0, "k", Input::Get, read(Some("a")), 4, 5),
            op(0, "k", tas("a", "b"), Output::Ok, 6, 7),
            op(0, "k", tas("a", "c"), Output::Failed, 8, 9),
            op(0, "k", Input::Delete, Output::Deleted(true), 10, 11),
            op(0, "k", Input::Delete, Output::Deleted(false), 12, 13),
        ];
        assert_eq!(check(&h), Ok(()));
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // Two overlapping writes; reads after them may see either, but both reads must agree
        // with one order.
        let h = vec![
            op(0, "k", set("a"), Output::Ok, 0, 10),
            op(1, "k", set("b"), Output::Ok, 1, 9),
            op(2, "k", Input::Get, read(Some("a")), 11, 12),
            op(3, "k", Input::Get, read(Some("a")), 13, 14),
        ];
        assert_eq!(check(&h), Ok(()));
    }

    #[test]
    fn a_stale_read_is_rejected() {
        let h = vec![
            op(0, "k", set("a"), Output::Ok, 0, 1),
            op(0, "k", set("b"), Output::Ok, 2, 3),
            op(1, "k", Input::Get, read(Some("a")), 4, 5),
        ];
        let v = check(&h).unwrap_err();
        assert_eq!(v.key, "k");
        assert_eq!(v.window.len(), 3, "{v}");
        assert_eq!(v.window[2].output, read(Some("a")));
    }

    #[test]
    fn a_lost_acknowledged_write_is_rejected() {
        let h = vec![
            op(0, "k", set("a"), Output::Ok, 0, 1),
            op(1, "k", Input::Get, read(None), 2, 3),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn two_successful_test_and_sets_from_the_same_value_are_rejected() {
        let h = vec![
            op(0, "k", set("a"), Output::Ok, 0, 1),
            op(1, "k", tas("a", "b"), Output::Ok, 2, 10),
            op(2, "k", tas("a", "c"), Output::Ok, 3, 11),
        ];
        assert!(check(&h).is_err());
        // One success and one failure is fine.
        let h = vec![
            op(0, "k", set("a"), Output::Ok, 0, 1),
            op(1, "k", tas("a", "b"), Output::Ok, 2, 10),
            op(2, "k", tas("a", "c"), Output::Failed, 3, 11),
        ];
        assert_eq!(check(&h), Ok(()));
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_have_happened() {
        // A timed-out write that a later read observes.
        let h = vec![
            op(0, "k", set("a"), Output::Unknown, 0, 0),
            op(1, "k", Input::Get, read(Some("a")), 5, 6),
        ];
        assert_eq!(check(&h), Ok(()));
        // ... or never observes.
        let h = vec![
            op(0, "k", set("a"), Output::Unknown, 0, 0),
            op(1, "k", Input::Get, read(None), 5, 6),
        ];
        assert_eq!(check(&h), Ok(()));
        // But it cannot take effect before it was invoked.
        let h = vec![
            op(1, "k", Input::Get, read(Some("a")), 0, 1),
            op(0, "k", set("a"), Output::Unknown, 5, 0),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn keys_are_checked_independently() {
        let h = vec![
            op(0, "x", set("1"), Output::Ok, 0, 1),
            op(0, "y", set("2"), Output::Ok, 0, 1),
            op(1, "x", Input::Get, read(Some("1")), 2, 3),
            op(1, "y", Input::Get, read(Some("1")), 2, 3),
        ];
        assert_eq!(check(&h).unwrap_err().key, "y");
    }

    #[test]
    fn many_concurrent_clients_check_quickly() {
        // 8 clients, 400 operations on one key, written as a valid sequential order spread
        // into overlapping intervals: must be accepted without blowing up.
        let mut h = Vec::new();
        let mut value: Option<String> = None;
        for i in 0..400u64 {
            let client = (i % 8) as usize;
            let (input, output) = match i % 4 {
                0 => {
                    value = Some(i.to_string());
                    (set(&i.to_string()), Output::Ok)
                }
                1 => (Input::Get, Output::Read(value.clone())),
                2 => match &value {
                    Some(v) => {
                        let (e, n) = (v.clone(), format!("t{i}"));
                        value = Some(n.clone());
                        (tas(&e, &n), Output::Ok)
                    }
                    None => (tas("x", "y"), Output::Failed),
                },
                _ => (Input::Get, Output::Read(value.clone())),
            };
            // Operation i happens at 10*i; its interval spans its neighbours.
            h.push(op(
                client,
                "k",
                input,
                output,
                (10 * i).saturating_sub(15),
                10 * i + 15,
            ));
        }
        assert_eq!(check(&h), Ok(()));
    }
}
