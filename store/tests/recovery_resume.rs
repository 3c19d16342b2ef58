//! Recovery then more writes then recovery again. Regression tests for
//! bugs the simulator found: (1) after cutting the torn tail of a flush of
//! several groups, the writer resumed with the same flush number and the
//! next recovery called the journal corrupt; (2) a salvage interrupted half
//! way left a missing segment that salvage itself then refused; (3) when
//! the next flush was torn right after its first begin record, recovery
//! took that begin record (of a later flush than the cut one) as proof that
//! the torn bytes had been synced, and refused an honest journal as
//! corrupt.

mod common;

use common::{event, segments, small_segments};
use shale_store::{Batch, Core, OpenError, Options, RealEnv, Store};

#[test]
fn a_torn_multi_group_flush_then_more_writes_recovers_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (mut core, _) = Core::open(RealEnv::default(), dir.path(), &Options::default()).unwrap();
    core.commit(&[Batch::from(event("a", "one", b"1"))]).into_iter().for_each(|r| {
        r.unwrap();
    });
    let segment = segments(dir.path()).pop().unwrap();
    let before = std::fs::metadata(&segment).unwrap().len();
    // One flush, two groups.
    let results = core.commit(&[Batch::from(event("a", "two", b"2")), Batch::from(event("b", "three", b"3"))]);
    assert!(results.iter().all(Result::is_ok));
    drop(core);
    let bytes = std::fs::read(&segment).unwrap();
    // Tear the flush inside its second group.
    let cut = before as usize + (bytes.len() - before as usize) * 3 / 4;
    std::fs::write(&segment, &bytes[..cut]).unwrap();

    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!((store.version("a"), store.version("b")), (2, 0), "the first group of the torn flush survives whole");
    store.append(event("c", "four", b"4")).unwrap();
    store.close().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!((store.version("a"), store.version("b"), store.version("c")), (2, 0, 1));
    assert!(store.recovery_report().truncated.is_empty());
}

#[test]
fn salvage_completes_across_a_missing_segment() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), small_segments()).unwrap();
    for i in 0..300u32 {
        store.append(event("a", "tick", &i.to_le_bytes())).unwrap();
    }
    store.close().unwrap();
    let files = segments(dir.path());
    assert!(files.len() >= 4);
    // As if a salvage had moved segment 1 aside and then failed.
    std::fs::remove_file(&files[1]).unwrap();
    assert!(matches!(Store::open(dir.path(), small_segments()), Err(OpenError::Corrupt(_))));
    let store = Store::open(dir.path(), Options { salvage: true, ..small_segments() }).unwrap();
    let report = store.recovery_report().clone();
    assert_eq!(report.set_aside.len(), files.len() - 2, "every segment after the gap is set aside");
    let kept = store.version("a");
    assert!(kept > 0 && kept < 300);
    store.append(event("a", "after", b"")).unwrap();
    store.close().unwrap();
    let store = Store::open(dir.path(), small_segments()).unwrap();
    assert_eq!(store.version("a"), kept + 1);
}

#[test]
fn salvage_never_overwrites_what_an_earlier_salvage_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let salvage = Options { salvage: true, ..Options::default() };
    for round in 0..2 {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        for i in 0..20u32 {
            store.append(event("a", "tick", format!("{round}-{i}").as_bytes())).unwrap();
        }
        store.close().unwrap();
        let segment = segments(dir.path()).pop().unwrap();
        let mut bytes = std::fs::read(&segment).unwrap();
        let at = bytes.len() - 600;
        bytes[at] ^= 0x40;
        std::fs::write(&segment, &bytes).unwrap();
        let store = Store::open(dir.path(), salvage.clone()).unwrap();
        assert_eq!(store.recovery_report().set_aside.len(), 1, "round {round}");
    }
    let aside: Vec<_> = std::fs::read_dir(dir.path().join("salvage")).unwrap().collect();
    assert_eq!(aside.len(), 2, "both salvages kept their set-aside bytes");
}

#[test]
fn a_flush_torn_after_its_first_begin_record_following_a_cut_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let two = || [Batch::from(event("a", "x", b"1")), Batch::from(event("b", "y", b"2"))];
    let (mut core, _) = Core::open(RealEnv::default(), dir.path(), &Options::default()).unwrap();
    assert!(core.commit(&two()).iter().all(Result::is_ok));
    drop(core);
    let segment = segments(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    // Tear the flush inside its second group: recovery cuts it there.
    std::fs::write(&segment, &bytes[..bytes.len() - 10]).unwrap();
    let (mut core, report) = Core::open(RealEnv::default(), dir.path(), &Options::default()).unwrap();
    assert_eq!(report.truncated.len(), 1);
    let cut = std::fs::metadata(&segment).unwrap().len() as usize;
    assert!(core.commit(&two()).iter().all(Result::is_ok));
    drop(core);
    // Tear the next flush (of a new flush number) right after its first
    // begin record (8 + 45 bytes).
    let bytes = std::fs::read(&segment).unwrap();
    std::fs::write(&segment, &bytes[..cut + 53 + 12]).unwrap();
    let store = Store::open(dir.path(), Options::default()).expect("a torn tail, not corruption");
    assert_eq!(store.recovery_report().truncated.len(), 1);
    assert_eq!(store.read_from(1, 10).unwrap().len(), 1, "the first group survives, the torn flush does not");
}

/// Positions are used again after a cut: a disk that hands back the older
/// group at its old position (a lost write) must not splice two histories.
/// The older group has the right group id, flush and first global sequence
/// and valid checksums, and follows the same group as the one it displaced;
/// the group after it records another commit before it (`follows`, format
/// version 3). That is corruption, never a torn tail to cut: the acked
/// group after it is set aside by salvage, not dropped.
#[test]
fn an_older_group_handed_back_at_a_reused_position_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let commit = |core: &mut Core<RealEnv>, payload: &[u8]| {
        core.commit(&[Batch::from(event("a", "tick", payload))]).remove(0).unwrap();
    };
    let (mut core, _) = Core::open(RealEnv::default(), dir.path(), &Options::default()).unwrap();
    commit(&mut core, b"one");
    let segment = segments(dir.path()).pop().unwrap();
    let first_end = std::fs::metadata(&segment).unwrap().len() as usize;
    commit(&mut core, b"old");
    drop(core);
    let old = std::fs::read(&segment).unwrap()[first_end..].to_vec();
    // The second group is cut off (as a torn tail would be), and the next
    // session writes two groups from the same position.
    std::fs::write(&segment, &std::fs::read(&segment).unwrap()[..first_end]).unwrap();
    let (mut core, _) = Core::open(RealEnv::default(), dir.path(), &Options::default()).unwrap();
    commit(&mut core, b"new");
    commit(&mut core, b"end");
    drop(core);
    let mut bytes = std::fs::read(&segment).unwrap();
    assert_eq!(bytes.len(), first_end + 2 * old.len(), "the new groups take the same room as the old one");
    bytes[first_end..first_end + old.len()].copy_from_slice(&old);
    std::fs::write(&segment, &bytes).unwrap();

    let opened = Core::open(RealEnv::default(), dir.path(), &Options::default());
    let Err(OpenError::Corrupt(corruption)) = opened else {
        panic!("an older group at a reused position was taken for the journal's: {:?}", opened.map(|(_, r)| r))
    };
    assert_eq!(corruption.offset, (first_end + old.len()) as u64, "{corruption}");
    assert!(corruption.reason.contains("follows"), "{}", corruption.reason);
    let store = Store::open(dir.path(), Options { salvage: true, ..Options::default() }).unwrap();
    let aside = &store.recovery_report().set_aside;
    assert_eq!(aside.len(), 1);
    assert_eq!(aside[0].offset, (first_end + old.len()) as u64);
    assert_eq!(std::fs::read(&aside[0].to).unwrap(), bytes[first_end + old.len()..], "the last group is kept aside");
}
