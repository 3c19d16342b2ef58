//! The gates the simulator registers when a scenario sets `run.gates`: a
//! balance per entity that may never go negative (whose promise, P7, the
//! checkers verify by replaying the visible history), and a gate with a
//! bug that panics on the kind "explode" (which the store must contain).

use std::sync::Arc;

use shale_store::{Gate, GateView, Gates, Proposed, Verdict};

use crate::model::PAYLOAD_TAG_LEN;

pub const BALANCE_GATE: &str = "balance";
pub const EXPLODING_GATE: &str = "exploding";

fn amount(payload: &[u8]) -> i64 {
    payload.get(PAYLOAD_TAG_LEN..PAYLOAD_TAG_LEN + 8).and_then(|b| b.try_into().ok()).map_or(0, i64::from_le_bytes)
}

fn delta(kind: &str, payload: &[u8]) -> i64 {
    match kind {
        "deposited" => amount(payload),
        "withdrawn" => -amount(payload),
        _ => 0,
    }
}

struct Balance;

impl Gate for Balance {
    fn name(&self) -> &str {
        BALANCE_GATE
    }

    fn check(&self, proposed: &Proposed<'_>, view: &GateView<'_>) -> Verdict {
        let change = delta(&proposed.item.kind, &proposed.item.payload);
        if change >= 0 {
            return Verdict::Allow;
        }
        let history = match view.history(proposed.item.coordinate.entity()) {
            Ok(history) => history,
            Err(e) => return Verdict::Deny(format!("history unreadable: {e}")),
        };
        let balance: i64 = history.iter().map(|e| delta(&e.kind, &e.payload)).sum();
        if balance + change < 0 {
            Verdict::Deny(format!("balance {balance} cannot cover {}", -change))
        } else {
            Verdict::Allow
        }
    }
}

struct Exploding;

impl Gate for Exploding {
    fn name(&self) -> &str {
        EXPLODING_GATE
    }

    fn check(&self, proposed: &Proposed<'_>, _: &GateView<'_>) -> Verdict {
        assert_ne!(proposed.item.kind, "explode", "simulated bug in a caller's gate");
        Verdict::Allow
    }
}

pub fn simulator_gates() -> Gates {
    Gates::new().with(Arc::new(Balance)).with(Arc::new(Exploding))
}
