//! Two stores never open one directory at once: the second gets a typed
//! `Locked` error, and the lock is released on close.

mod common;

use shale_store::{OpenError, Options, Store};

#[test]
fn a_second_open_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path(), Options::default()).unwrap();
    assert!(matches!(Store::open(dir.path(), Options::default()), Err(OpenError::Locked { .. })));
    first.close().unwrap();
    let again = Store::open(dir.path(), Options::default()).unwrap();
    drop(again);
    Store::open(dir.path(), Options::default()).unwrap();
}

#[test]
fn opening_a_missing_store_without_create_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope");
    let options = Options { create_if_missing: false, ..Options::default() };
    assert!(matches!(Store::open(&path, options), Err(OpenError::Missing { .. })));
}

#[test]
fn a_damaged_meta_file_is_a_format_error() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path(), Options::default()).unwrap().close().unwrap();
    std::fs::write(dir.path().join("META"), b"not a store").unwrap();
    assert!(matches!(Store::open(dir.path(), Options::default()), Err(OpenError::Format { .. })));
}
