//! A first look at shale-store: append, batch, read back, reopen.
//!
//! Run with `cargo run --release -p shale-store --example quickstart`.

use shale_store::{Batch, Coordinate, NewEvent, Options, Region, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("shale-quickstart-{}", std::process::id()));
    let store = Store::open(&dir, Options::default())?;

    // One event: durable when `append` returns.
    let account = Coordinate::new("account-42", "ledger")?;
    let opened = store.append(NewEvent::new(account.clone(), "opened", b"{\"owner\":\"ada\"}".to_vec()))?;
    println!("appended {} (entity seq {})", opened.id, opened.entity_seq);

    // A batch: both events or neither. The version check makes it safe
    // against a concurrent writer to the same account.
    let receipts = store.append_batch(
        Batch::new(vec![
            NewEvent::new(account.clone(), "deposited", b"100".to_vec()).expect_version(1),
            NewEvent::new(account.clone(), "withdrawn", b"30".to_vec()),
        ])
        .with_idempotency_key("transfer-7"),
    )?;
    println!("batch committed as global {}..={}", receipts[0].global_seq, receipts[1].global_seq);

    for event in store.query(&Region::entity("account-42"))? {
        println!("  #{} {} {}", event.entity_seq, event.kind, String::from_utf8_lossy(&event.payload));
    }
    store.close()?;

    // Reopen: recovery rebuilds everything from the journal.
    let store = Store::open(&dir, Options::default())?;
    println!("reopened: {} events recovered", store.recovery_report().events);
    // A retried batch with the same idempotency key writes nothing new.
    let retried = store.append_batch(
        Batch::new(vec![
            NewEvent::new(account.clone(), "deposited", b"100".to_vec()).expect_version(1),
            NewEvent::new(account, "withdrawn", b"30".to_vec()),
        ])
        .with_idempotency_key("transfer-7"),
    )?;
    assert_eq!(retried, receipts);
    println!("retry returned the original receipts; version is still {}", store.version("account-42"));
    store.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
