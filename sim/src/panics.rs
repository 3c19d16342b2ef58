//! Panics inside a run: caught wherever they happen (the store's open,
//! commit and shred, its reads and walks, the checkers, the scheduler),
//! reported with the file and line they came from and a backtrace, and
//! classified: a panic in the store is a broken promise (P11), one in the
//! harness is a harness bug. A sweep never loses a seed to a panic.
//!
//! A process-wide hook records each panic of a thread that is running a
//! simulation; panics elsewhere (a failing test's assertion) go to the hook
//! that was there before, unchanged.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use serde::Serialize;

/// Where a panic came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Culprit {
    /// The store under test (`store/src`): P11 is broken.
    Store,
    /// The simulator itself: a harness bug.
    Harness,
}

/// A caught panic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Caught {
    pub message: String,
    /// `file:line:column`.
    pub location: String,
    pub culprit: Culprit,
    #[serde(skip)]
    pub backtrace: String,
}

/// The simulator's own gate that panics on purpose (the store must contain
/// it): its panics are expected and not worth a backtrace.
const DELIBERATE: &str = "sim/src/gates.rs";

thread_local! {
    static IN_RUN: Cell<bool> = const { Cell::new(false) };
    static LAST: RefCell<Option<Caught>> = const { RefCell::new(None) };
}

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_RUN.with(Cell::get) {
                return previous(info);
            }
            let location = info.location().map_or_else(|| "unknown".into(), |l| l.to_string());
            let message = shale_store::error::panic_message(info.payload());
            let deliberate = location.contains(DELIBERATE);
            let culprit = if location.contains("store/src") { Culprit::Store } else { Culprit::Harness };
            let backtrace =
                if deliberate { String::new() } else { std::backtrace::Backtrace::force_capture().to_string() };
            LAST.with(|last| *last.borrow_mut() = Some(Caught { message, location, culprit, backtrace }));
        }));
    });
}

/// Runs `f` inside a simulation run: a panic anywhere in it comes back as
/// `Err` with where it happened.
pub fn catching<T>(f: impl FnOnce() -> T) -> Result<T, Caught> {
    install();
    let outer = IN_RUN.with(|r| r.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_RUN.with(|r| r.set(outer));
    result.map_err(|payload| {
        LAST.with(|last| last.borrow_mut().take()).unwrap_or_else(|| Caught {
            message: shale_store::error::panic_message(&*payload),
            location: "unknown".into(),
            culprit: Culprit::Harness,
            backtrace: String::new(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_comes_back_with_its_place_and_the_culprit() {
        let caught = catching(|| panic!("boom")).unwrap_err();
        assert_eq!(caught.message, "boom");
        assert!(caught.location.contains("sim/src/panics.rs"), "{}", caught.location);
        assert_eq!(caught.culprit, Culprit::Harness);
        assert!(!caught.backtrace.is_empty());
        assert_eq!(catching(|| 7).unwrap(), 7);
    }
}
