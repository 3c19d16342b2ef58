//! A gate that keeps an account's balance from ever going negative, even
//! with many writers racing: the gate runs inside the writer, against the
//! committed state plus whatever the same commit accepted before.
//!
//! Run with `cargo run --release -p shale-store --example account_gate`.

use std::sync::Arc;

use shale_store::{AppendError, Coordinate, Gate, GateView, Gates, NewEvent, Options, Proposed, Store, Verdict};

/// Deposits and withdrawals carry the amount in cents as an i64.
struct NonNegativeBalance;

fn cents(payload: &[u8]) -> i64 {
    payload.get(..8).and_then(|b| b.try_into().ok()).map_or(0, i64::from_le_bytes)
}

impl Gate for NonNegativeBalance {
    fn name(&self) -> &str {
        "non-negative-balance"
    }

    fn check(&self, proposed: &Proposed<'_>, view: &GateView<'_>) -> Verdict {
        if proposed.item.kind != "withdrawn" {
            return Verdict::Allow;
        }
        let Ok(history) = view.history(proposed.item.coordinate.entity()) else {
            return Verdict::Deny("the account's history cannot be read".into());
        };
        let balance: i64 =
            history.iter().map(|e| if e.kind == "withdrawn" { -cents(&e.payload) } else { cents(&e.payload) }).sum();
        let after = balance - cents(&proposed.item.payload);
        if after < 0 {
            Verdict::Deny(format!("balance {balance} cannot cover {}", cents(&proposed.item.payload)))
        } else {
            Verdict::Allow
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("shale-account-{}", std::process::id()));
    let options = Options { gates: Gates::new().with(Arc::new(NonNegativeBalance)), ..Options::default() };
    let store = Arc::new(Store::open(&dir, options)?);
    let account = Coordinate::new("account-7", "ledger")?;
    store.append(NewEvent::new(account.clone(), "deposited", 10_000i64.to_le_bytes().to_vec()))?;

    // Eight tellers each try to withdraw 25.00 twenty times: 160 attempts
    // against a balance of 100.00, which covers exactly four.
    let granted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (store, account) = (store.clone(), account.clone());
                s.spawn(move || {
                    (0..20)
                        .filter(|_| {
                            let withdrawal =
                                NewEvent::new(account.clone(), "withdrawn", 2_500i64.to_le_bytes().to_vec());
                            match store.append(withdrawal) {
                                Ok(_) => true,
                                Err(AppendError::Denied { .. }) => false,
                                Err(e) => panic!("unexpected error: {e}"),
                            }
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    println!("{granted} of 160 withdrawals of 25.00 granted against a balance of 100.00");
    assert_eq!(granted, 4);
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
