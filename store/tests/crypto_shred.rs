//! Crypto-shredding: payloads are sealed per entity and never reach the
//! disk in the clear; a shred is durable before it is acknowledged, after
//! which the entity's events read as Shredded (metadata intact, chain
//! intact) and its key is in no file; a later append gets a new key. A
//! store that kept the key, returned plaintext or ciphertext after a shred,
//! or broke the hash chain fails here.

mod common;

use common::{event, segments};
use shale_store::crypto::Key;
use shale_store::keyset::{bucket_of, Keyset};
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
    assert_eq!(keys_before, std::fs::read(dir.path().join("KEYS.copy")).unwrap(), "two copies");

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

/// The store id, read from META.
fn store_id(dir: &std::path::Path) -> u64 {
    let meta = std::fs::read(dir.join("META")).unwrap();
    u64::from_le_bytes(meta[12..20].try_into().unwrap())
}

#[test]
fn after_a_shred_nothing_on_disk_opens_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), encrypted()).unwrap();
    store.append(event("user-1", "registered", b"x")).unwrap();
    // Another entity of the same bucket: its key must survive the shred.
    let bucket = bucket_of("user-1");
    let neighbour = (0..).map(|i| format!("n{i}")).find(|n| bucket_of(n) == bucket).unwrap();
    let kept = store.append(event(&neighbour, "registered", b"kept")).unwrap();
    store.close().unwrap();
    let keyset = Keyset::decode(&std::fs::read(dir.path().join("KEYS")).unwrap(), store_id(dir.path()), None).unwrap();
    let wrapping = keyset.bucket(bucket).key.expose_secret().to_vec();
    assert!(contains(&all_bytes(dir.path()), &wrapping), "the bucket's wrapping key is in the keyset");

    let store = Store::open(dir.path(), encrypted()).unwrap();
    store.shred("user-1").unwrap();
    store.close().unwrap();
    assert!(!contains(&all_bytes(dir.path()), &wrapping), "the wrapping key of the shredded key is in no file");
    let store = Store::open(dir.path(), encrypted()).unwrap();
    assert_eq!(&*store.get(kept.id).unwrap().unwrap().payload, b"kept", "the neighbour's key was rewrapped");
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
fn one_damaged_keyset_copy_loses_nothing_both_are_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path(), encrypted()).unwrap().append(event("a", "k", b"x")).unwrap();
    assert!(matches!(Store::open(dir.path(), Options::default()), Err(shale_store::OpenError::Encryption { .. })));
    let (keys, copy) = (dir.path().join("KEYS"), dir.path().join("KEYS.copy"));
    let bytes = std::fs::read(&keys).unwrap();
    let mut damaged = bytes.clone();
    damaged[40] ^= 1;
    std::fs::write(&keys, &damaged).unwrap();
    let store = Store::open(dir.path(), encrypted()).unwrap();
    assert_eq!(store.recovery_report().keyset_repaired.len(), 1, "the damaged copy is written again");
    assert!(!store.recovery_report().lost_anything());
    assert_eq!(&*store.read_from(1, 1).unwrap()[0].payload, b"x");
    store.close().unwrap();
    assert_eq!(std::fs::read(&keys).unwrap(), bytes, "repaired");

    for path in [&keys, &copy] {
        std::fs::write(path, &damaged).unwrap();
    }
    assert!(matches!(Store::open(dir.path(), encrypted()), Err(shale_store::OpenError::Keyset(_))));
    for path in [&keys, &copy] {
        std::fs::remove_file(path).unwrap();
    }
    assert!(
        matches!(Store::open(dir.path(), encrypted()), Err(shale_store::OpenError::Keyset(_))),
        "never a silent re-mint"
    );
    std::fs::write(&copy, &bytes).unwrap();
    assert_eq!(&*Store::open(dir.path(), encrypted()).unwrap().read_from(1, 1).unwrap()[0].payload, b"x");
}

#[test]
fn a_key_nothing_opens_is_refused_and_salvage_reports_it_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), encrypted()).unwrap();
    let lost = store.append(event("a", "k", b"x")).unwrap();
    store.close().unwrap();
    // Keysets of the same store with other wrapping keys: nothing opens
    // the journal's key record of "a".
    let mut n = 0u8;
    let other = Keyset::fresh(|| {
        n += 1;
        Key::from_bytes([n; 32])
    });
    let bytes = other.encode(store_id(dir.path()), None, [0; 12]);
    for name in ["KEYS", "KEYS.copy"] {
        std::fs::write(dir.path().join(name), &bytes).unwrap();
    }
    match Store::open(dir.path(), encrypted()) {
        Err(shale_store::OpenError::Corrupt(c)) => assert!(c.reason.contains("no key record opens"), "{c}"),
        Err(other) => panic!("expected an integrity error, got {other}"),
        Ok(_) => panic!("opened with a key missing"),
    }
    let store = Store::open(dir.path(), Options { salvage: true, ..encrypted() }).unwrap();
    assert_eq!(store.recovery_report().keys_lost, vec![("a".to_owned(), 1)]);
    assert!(store.recovery_report().lost_anything());
    assert!(matches!(store.get(lost.id), Err(ReadError::Integrity { .. })), "never returned as data");
    let later = store.append(event("a", "k", b"y")).unwrap();
    assert_eq!(store.get(later.id).unwrap().unwrap().key_gen, 2, "a new generation");
    store.close().unwrap();

    // The salvage recorded the loss: a plain open now accepts the store,
    // reads the event as lost (not shredded, not refused) and the new one
    // as data, and reports nothing new.
    let store = Store::open(dir.path(), encrypted()).unwrap();
    assert!(!store.recovery_report().lost_anything(), "{:?}", store.recovery_report());
    let events = store.read_from(1, 10).unwrap();
    assert!(events[0].key_lost && !events[0].shredded && events[0].payload.is_empty());
    assert_eq!(&*events[1].payload, b"y");
}

/// One read opens many payloads into buffers it shares out a block at a
/// time: every event gets its own bytes, in order, across buffers, with
/// shredded events (no payload) among them, and an event kept alone keeps
/// its bytes after the others are dropped.
#[test]
fn a_read_of_many_sealed_payloads_gives_each_event_its_own_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), encrypted()).unwrap();
    let payload = |i: usize| format!("{i:06}-").repeat(i % 97 + 1).into_bytes();
    // About 400 KiB of plaintext: several block-sized buffers.
    for chunk in (0..1_200).collect::<Vec<_>>().chunks(100) {
        let batch = chunk.iter().map(|&i| event(&format!("u{}", i % 13), "k", &payload(i))).collect();
        store.append_batch(Batch::new(batch)).unwrap();
    }
    store.shred("u5").unwrap();
    let check = |store: &Store| {
        let events = store.read_from(1, 1_200).unwrap();
        assert_eq!(events.len(), 1_200);
        for (i, e) in events.iter().enumerate() {
            match i % 13 == 5 {
                true => assert!(e.shredded && e.payload.is_empty(), "event {i}"),
                false => assert_eq!(&*e.payload, &payload(i)[..], "event {i}"),
            }
        }
        let kept = events[1_199].clone();
        drop(events);
        assert_eq!(&*kept.payload, &payload(1_199)[..]);
    };
    check(&store);
    store.close().unwrap();
    check(&Store::open(dir.path(), encrypted()).unwrap());
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

#[test]
fn a_shred_whose_keyset_publish_fails_takes_effect_and_the_keyset_goes_out_first() {
    use common::faulty::FaultyEnv;
    let dir = tempfile::tempdir().unwrap();
    let (env, faults) = FaultyEnv::new();
    let store = Store::open_in(env, dir.path(), encrypted()).unwrap();
    let gone = store.append(event("user-1", "registered", b"x")).unwrap();
    let bucket = bucket_of("user-1");
    let neighbour = (0..).map(|i| format!("n{i}")).find(|n| bucket_of(n) == bucket).unwrap();
    let kept = store.append(event(&neighbour, "registered", b"kept")).unwrap();
    // The rewrap flush syncs; the keyset's first copy fails at its
    // directory fsync.
    faults.lock().unwrap().fail_dir_syncs = 1;
    assert!(matches!(store.shred("user-1"), Err(ShredError::OutcomeUnknown(_))));
    assert!(matches!(store.get(gone.id), Err(ReadError::Shredded { .. })), "the shred took effect");
    store.append(event("other", "k", b"y")).unwrap();
    assert_eq!(store.shred("user-1").unwrap().generation, 1, "the retry finds it done");
    store.close().unwrap();
    let store = Store::open(dir.path(), encrypted()).unwrap();
    assert!(matches!(store.get(gone.id), Err(ReadError::Shredded { .. })));
    assert_eq!(&*store.get(kept.id).unwrap().unwrap().payload, b"kept");
    assert_eq!(
        std::fs::read(dir.path().join("KEYS")).unwrap(),
        std::fs::read(dir.path().join("KEYS.copy")).unwrap(),
        "the dirty keyset went out again, to both copies"
    );
}

/// Digests list what full reads list, key state included, without opening
/// a payload; a wrong limit is refused like `read_from`'s.
#[test]
fn digests_agree_with_full_reads_before_and_after_a_shred_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), encrypted()).unwrap();
    for n in 0..6 {
        store.append(event(&format!("user-{}", n % 3), "registered", b"payload")).unwrap();
    }
    let agree = |store: &Store| {
        let full: Vec<_> = store.read_from(1, 100).unwrap().iter().map(shale_store::EventDigest::of).collect();
        assert_eq!(store.reader().digests_from(1, 100).unwrap(), full);
        assert_eq!(store.reader().digests_from(3, 2).unwrap(), full[2..4]);
        full
    };
    assert!(agree(&store).iter().all(|d| !d.shredded && d.key_gen == 1));
    store.shred("user-1").unwrap();
    let after = agree(&store);
    assert_eq!(after.iter().filter(|d| d.shredded).count(), 2, "user-1's two events");
    store.close().unwrap();
    let store = Store::open(dir.path(), encrypted()).unwrap();
    assert_eq!(agree(&store), after, "the same digests after a reopen");
    assert!(store.reader().digests_from(1, 0).is_err());
}
