//! Gates: checked inside the writer against the committed state plus what
//! the same commit already accepted, so check and commit are one step. A
//! denial fails the whole batch naming gate, item and reason; a panicking
//! gate is a typed failure and the writer stays healthy. A gate that saw a
//! stale state would let racing withdrawals overdraw the account here.

mod common;

use std::sync::Arc;

use common::event;
use shale_store::{AppendError, Batch, Gate, GateView, Gates, Options, Proposed, Store, Verdict};

/// Payload: a signed amount (i64 LE); the balance may never go negative.
struct NoOverdraft;

fn amount(payload: &[u8]) -> i64 {
    i64::from_le_bytes(payload[..8].try_into().unwrap())
}

impl Gate for NoOverdraft {
    fn name(&self) -> &str {
        "no-overdraft"
    }
    fn check(&self, p: &Proposed<'_>, view: &GateView<'_>) -> Verdict {
        let entity = p.item.coordinate.entity();
        let history = view.history(entity).unwrap();
        let balance: i64 = history.iter().map(|e| amount(&e.payload)).sum::<i64>() + amount(&p.item.payload);
        if balance < 0 {
            Verdict::Deny(format!("balance would be {balance}"))
        } else {
            Verdict::Allow
        }
    }
}

struct Explodes;

impl Gate for Explodes {
    fn name(&self) -> &str {
        "explodes"
    }
    fn check(&self, p: &Proposed<'_>, _: &GateView<'_>) -> Verdict {
        assert_ne!(p.item.kind, "boom", "the gate has a bug");
        Verdict::Allow
    }
}

fn options() -> Options {
    Options { gates: Gates::new().with(Arc::new(NoOverdraft)).with(Arc::new(Explodes)), ..Options::default() }
}

fn money(entity: &str, cents: i64) -> shale_store::NewEvent {
    event(entity, if cents >= 0 { "deposited" } else { "withdrawn" }, &cents.to_le_bytes())
}

#[test]
fn a_denial_fails_the_whole_batch_and_names_gate_item_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    store.append(money("acct", 100)).unwrap();
    let result = store.append_batch(Batch::new(vec![money("other", 5), money("acct", -60), money("acct", -60)]));
    match result {
        Err(AppendError::Denied { gate, item, reason }) => {
            assert_eq!((gate.as_str(), item), ("no-overdraft", 2), "the second withdrawal sees the first");
            assert!(reason.contains("-20"), "{reason}");
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(store.version("other"), 0, "nothing of the batch was written");
    store.append(money("acct", -100)).unwrap();
}

#[test]
fn racing_withdrawals_never_overdraw() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), options()).unwrap());
    store.append(money("acct", 1_000)).unwrap();
    let granted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                s.spawn(move || (0..40).filter(|_| store.append(money("acct", -7)).is_ok()).count())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(granted, 1_000 / 7, "exactly as many withdrawals as the balance allows");
    let events = store.read_from(1, 1_000).unwrap();
    let mut balance = 0;
    for e in events {
        balance += amount(&e.payload);
        assert!(balance >= 0, "overdrawn at event {}", e.global_seq);
    }
}

#[test]
fn a_panicking_gate_is_contained_and_the_writer_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let result = store.append_batch(Batch::new(vec![money("a", 1), event("a", "boom", &0i64.to_le_bytes())]));
    match result {
        Err(AppendError::GateFailed { gate, item, message }) => {
            assert_eq!((gate.as_str(), item), ("explodes", 1));
            assert!(message.contains("the gate has a bug"));
        }
        other => panic!("expected a gate failure, got {other:?}"),
    }
    assert_eq!(store.version("a"), 0);
    store.append(money("a", 1)).unwrap();
    assert_eq!(store.version("a"), 1);
}
