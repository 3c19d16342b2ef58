//! Crypto-shredding: payloads are sealed per entity and never reach the
//! disk in the clear; a shred is durable before it is acknowledged, after
//! which the entity's events read as Shredded (metadata intact, chain
//! intact) and its key is in no file; a later append gets a new key. A
//! store that kept the key, returned plaintext or ciphertext after a shred,
//! or broke the hash chain fails here.

mod common;

use common::{event, segments};
use shale_store::{Batch, Encryption, MasterKey, Options, ReadError, Region, ShredError, Store};

fn encrypted() -> Options {
    Options { encryption: Encryption::PerEntity { master_key: None }, ..Options::default() }
}

fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn payloads_are_sealed_and_shred_forgets_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), encrypted()).unwrap();
    let secret = b"ada-lovelace-home-address";
    let first = store.append(event("user-1", "registered", secret)).unwrap();
    store.append(event("user-2", "registered", b"someone-else")).unwrap();
    assert_eq!(&*store.get(first.id).unwrap().unwrap().payload, secret);
    assert!(!contains(&all_bytes(dir.path()), secret), "no plaintext on disk");
    let keys_before = std::fs::read(dir.path().join("KEYS")).unwrap();

    let receipt = store.shred("user-1").unwrap();
    assert_eq!(receipt.generation, 1);
    assert!(matches!(store.get(first.id), Err(ReadError::Shredded { .. })));
    let listed = store.query(&Region::entity("user-1")).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].shredded && listed[0].payload.is_empty(), "metadata stays, payload is gone");
    assert_eq!(store.reader().verify_chains(), Ok(()), "the chain covers ciphertext and still verifies");
    assert_eq!(store.shred("user-1").unwrap().generation, 1, "shred is idempotent");
    assert_ne!(std::fs::read(dir.path().join("KEYS")).unwrap(), keys_before);

    let later = store.append(event("user-1", "registered-again", b"new")).unwrap();
    let again = store.get(later.id).unwrap().unwrap();
    assert_eq!((again.key_gen, &*again.payload), (2, &b"new"[..]), "a new key generation");
    store.close().unwrap();

    let store = Store::open(dir.path(), encrypted()).unwrap();
    assert!(matches!(store.get(first.id), Err(ReadError::Shredded { .. })), "shred survives reopen");
    assert_eq!(&*store.get(later.id).unwrap().unwrap().payload, b"new");
    assert_eq!(store.read_from(1, 10).unwrap().iter().filter(|e| e.shredded).count(), 1);
    assert_eq!(store.reader().verify_chains(), Ok(()));
}

#[test]
fn the_shredded_key_is_in_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), encrypted()).unwrap();
    store.append(event("user-1", "registered", b"x")).unwrap();
    store.close().unwrap();
    // The unsealed keyset holds keys in the clear: find user-1's.
    let keys = std::fs::read(dir.path().join("KEYS")).unwrap();
    let key = keys.windows(32).find(|w| w.iter().filter(|&&b| b == 0).count() < 4).map(<[u8]>::to_vec).unwrap();
    assert!(contains(&all_bytes(dir.path()), &key));
    let store = Store::open(dir.path(), encrypted()).unwrap();
    store.shred("user-1").unwrap();
    store.close().unwrap();
    assert!(!contains(&all_bytes(dir.path()), &key), "the key bytes are gone from every file");
}

#[test]
fn a_sealed_keyset_needs_its_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::from_bytes([9; 32]);
    let sealed = Options { encryption: Encryption::PerEntity { master_key: Some(master) }, ..Options::default() };
    let store = Store::open(dir.path(), sealed.clone()).unwrap();
    store.append(event("a", "k", b"secret")).unwrap();
    store.close().unwrap();
    let wrong = Options {
        encryption: Encryption::PerEntity { master_key: Some(MasterKey::from_bytes([8; 32])) },
        ..Options::default()
    };
    assert!(matches!(Store::open(dir.path(), wrong), Err(shale_store::OpenError::Keyset(_))));
    assert!(matches!(Store::open(dir.path(), encrypted()), Err(shale_store::OpenError::Encryption { .. })));
    assert_eq!(&*Store::open(dir.path(), sealed).unwrap().read_from(1, 1).unwrap()[0].payload, b"secret");
}

#[test]
fn a_different_setting_a_missing_or_damaged_keyset_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path(), encrypted()).unwrap().append(event("a", "k", b"x")).unwrap();
    assert!(matches!(Store::open(dir.path(), Options::default()), Err(shale_store::OpenError::Encryption { .. })));
    let keys = dir.path().join("KEYS");
    let bytes = std::fs::read(&keys).unwrap();
    let mut damaged = bytes.clone();
    damaged[30] ^= 1;
    std::fs::write(&keys, &damaged).unwrap();
    assert!(matches!(Store::open(dir.path(), encrypted()), Err(shale_store::OpenError::Keyset(_))));
    std::fs::remove_file(&keys).unwrap();
    assert!(
        matches!(Store::open(dir.path(), encrypted()), Err(shale_store::OpenError::Keyset(_))),
        "never a silent re-mint"
    );
    std::fs::write(&keys, &bytes).unwrap();
    Store::open(dir.path(), encrypted()).unwrap();
}

#[test]
fn an_event_whose_key_is_gone_without_a_shred_is_an_integrity_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), encrypted()).unwrap();
    let empty_keyset = std::fs::read(dir.path().join("KEYS")).unwrap();
    store.append(event("a", "k", b"x")).unwrap();
    store.close().unwrap();
    // Put back the keyset from before the key was minted.
    std::fs::write(dir.path().join("KEYS"), empty_keyset).unwrap();
    match Store::open(dir.path(), encrypted()) {
        Err(shale_store::OpenError::Corrupt(c)) => {
            assert!(c.reason.contains("neither holds nor records as shredded"), "{c}")
        }
        Err(other) => panic!("expected an integrity error, got {other}"),
        Ok(_) => panic!("opened with a key missing"),
    }
}

#[test]
fn shred_on_a_plaintext_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert!(matches!(store.shred("a"), Err(ShredError::NotEncrypted)));
}

#[test]
fn a_batch_of_many_new_entities_commits_sealed_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), encrypted()).unwrap();
    store.append_batch(Batch::new((0..50).map(|i| event(&format!("u{i}"), "k", b"x")).collect())).unwrap();
    assert_eq!(store.query(&Region::entity_prefix("u")).unwrap().len(), 50);
    store.close().unwrap();
    assert_eq!(segments(dir.path()).len(), 1);
    let store = Store::open(dir.path(), encrypted()).unwrap();
    assert!(store.read_from(1, 100).unwrap().iter().all(|e| &*e.payload == b"x" && e.key_gen == 1));
}
