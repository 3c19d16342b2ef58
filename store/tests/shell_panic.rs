//! A panic below the shell (a bug) stops the store cleanly: the request
//! that met it and every later one are answered `Closed`, never left
//! hanging, whether the caller led the commit or was queued behind
//! another, and `close` reports the panic.

mod common;

use common::event;
use common::faulty::FaultyEnv;
use shale_store::{AppendError, CloseError, Options, ShredError, Store};

#[test]
fn a_panic_in_a_commit_closes_the_store_and_close_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let (env, faults) = FaultyEnv::new();
    let store = Store::open_in(env, dir.path(), Options::default()).unwrap();
    store.append(event("a", "k", b"before")).unwrap();
    faults.lock().unwrap().panic_on_sync = true;
    assert!(matches!(store.append(event("a", "k", b"meets the bug")), Err(AppendError::Closed)));
    faults.lock().unwrap().panic_on_sync = false;
    // From several threads at once, so some requests are queued.
    std::thread::scope(|scope| {
        for t in 0..4 {
            let store = &store;
            scope.spawn(move || {
                for n in 0..20 {
                    let result = store.append(event(&format!("t{t}"), "k", format!("{n}").as_bytes()));
                    assert!(matches!(result, Err(AppendError::Closed)), "{result:?}");
                }
            });
        }
    });
    assert!(matches!(store.shred("a"), Err(ShredError::Closed | ShredError::NotEncrypted)));
    match store.close() {
        Err(CloseError::WriterPanicked(message)) => assert!(message.contains("injected panic"), "{message}"),
        other => panic!("close after a panic: {other:?}"),
    }
}
