//! A gate that makes an order accept no events after it is closed, and
//! causes that tie each step of the order to the one that led to it.
//!
//! Run with `cargo run --release -p shale-store --example order_gate`.

use std::sync::Arc;

use shale_store::{AppendError, Cause, Coordinate, Gate, GateView, Gates, NewEvent, Options, Proposed, Store, Verdict};

struct ClosedIsFinal;

impl Gate for ClosedIsFinal {
    fn name(&self) -> &str {
        "closed-is-final"
    }

    fn check(&self, proposed: &Proposed<'_>, view: &GateView<'_>) -> Verdict {
        match view.recent(proposed.item.coordinate.entity(), 1) {
            Ok(last) if last.first().is_some_and(|e| e.kind == "closed") => {
                Verdict::Deny(format!("the order is closed; {:?} is refused", proposed.item.kind))
            }
            Ok(_) => Verdict::Allow,
            Err(e) => Verdict::Deny(format!("the order cannot be read: {e}")),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("shale-order-{}", std::process::id()));
    let options = Options { gates: Gates::new().with(Arc::new(ClosedIsFinal)), ..Options::default() };
    let store = Store::open(&dir, options)?;
    let order = Coordinate::new("order-1001", "sales")?;

    let placed = store.append(NewEvent::new(order.clone(), "placed", b"2 widgets".to_vec()))?;
    let paid =
        store.append(NewEvent::new(order.clone(), "paid", b"19.90".to_vec()).caused_by(Cause::Event(placed.id)))?;
    let shipped =
        store.append(NewEvent::new(order.clone(), "shipped", b"".to_vec()).caused_by(Cause::Event(paid.id)))?;
    store.append(NewEvent::new(order.clone(), "closed", b"".to_vec()).caused_by(Cause::Event(shipped.id)))?;

    match store.append(NewEvent::new(order, "item-added", b"1 gadget".to_vec())) {
        Err(AppendError::Denied { gate, reason, .. }) => println!("refused by {gate}: {reason}"),
        other => panic!("a closed order accepted an event: {other:?}"),
    }

    let walk = store.effects(placed.id, 10, 100)?.expect("the order exists");
    let steps: Vec<&str> = walk.events.iter().map(|e| &*e.kind).collect();
    println!("what followed from 'placed': {steps:?} ({:?})", walk.end);
    let history: Vec<String> = store.correlated(placed.id, 100)?.iter().map(|e| e.kind.to_string()).collect();
    println!("the order's correlation, in commit order: {history:?}");
    store.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
