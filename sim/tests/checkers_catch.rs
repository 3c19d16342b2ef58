//! Every checker fails on the defect it exists for. Real events come from
//! the store over SimDisk; each test plants one defect in what the checker
//! is shown (a lost item, garbled bytes, a batch visible without its ack, a
//! lost acknowledged batch with no damage to excuse it or damage elsewhere,
//! a hole, a loss the recovery report leaves out, intact bytes cut off, a
//! set-aside copy that differs, a read error the disk did not cause) and
//! asserts the right promise is named, or that nothing excuses it. A
//! checker that passed all of these would be a checker that cannot fail.

use std::path::Path;

use std::collections::BTreeMap;

use shale_sim::check::{checkers, Checker, Durable, Phase, Promise, RecoveryView, SalvageFile, Snapshot};
use shale_sim::disk::{Damage, FaultClass, SimDisk, SimDiskOptions, SimTime};
use shale_sim::env::{SimClock, SimEntropy, SimEnv};
use shale_sim::excuse::{Before, Excuses};
use shale_sim::journal_map::{JournalMap, Location};
use shale_sim::model::{payload, tag_of, Fate, Model, ModelBatch, ModelCause, ModelItem};
use shale_store::{Core, CutReason, Event, Options, Reader, RecoveryReport, SetAside, Truncation};

struct Fixture {
    model: Model,
    events: Vec<Event>,
    reader: Reader,
    map: JournalMap,
    before: Before,
    _core: Core<SimEnv>,
}

const DIR: &str = "/s";

/// Three acknowledged batches of 2, 1 and 2 events, each seen once.
fn fixture() -> Fixture {
    let time = SimTime::default();
    let disk = SimDisk::new(1, SimDiskOptions::default(), time.clone());
    let env = SimEnv { disk: disk.clone(), clock: SimClock::new(time), entropy: SimEntropy::new(1, "e") };
    let (mut core, _) = Core::open(env, Path::new(DIR), &Options::default()).unwrap();
    let mut model = Model::default();
    for len in [2usize, 1, 2] {
        let uid = model.new_uid();
        let items = (0..len)
            .map(|i| ModelItem {
                entity: format!("e{i}"),
                scope: "main".into(),
                kind: "k".into(),
                payload: payload(uid, i as u32, b"filler"),
                expected_version: None,
                cause: None,
                correlation: None,
            })
            .collect();
        let batch = ModelBatch { uid, items, key: None, fate: Fate::InFlight, maybe_written: false, invalid: None };
        let receipts = core.commit(&[batch.to_batch()]).remove(0).unwrap();
        model.add(batch);
        model.set_fate(uid, Fate::Acked(receipts.iter().map(|r| r.global_seq).collect()));
    }
    let reader = core.reader();
    let events = reader.read_from(1, 100).unwrap();
    assert_eq!(events.len(), 5);
    for e in &events {
        if let Some((uid, 0)) = tag_of(e) {
            model.copy_hash.insert(uid, e.hash);
        }
    }
    let mut map = JournalMap::default();
    map.absorb(&disk.take_writes());
    let before = Before::capture(&disk, Path::new(DIR));
    Fixture { model, events, reader, map, before, _core: core }
}

impl Fixture {
    /// Where batch `uid` was written.
    fn location(&self, uid: u64) -> &Location {
        self.map.copy(&self.model.copy_hash[&uid]).unwrap()
    }

    fn segment(&self) -> std::path::PathBuf {
        Path::new(DIR).join("seg-0000000000000000.log")
    }

    /// Lossy damage on `range` of the segment, after everything was written.
    fn damage(&self, range: std::ops::Range<u64>) -> Damage {
        Damage { inode: self.location(1).inode, range, class: FaultClass::SectorError, fault: 1, op: u64::MAX }
    }

    fn view(&self, damage: Vec<Damage>, report: RecoveryReport) -> RecoveryView {
        RecoveryView {
            report,
            excuses: Excuses::new(self.before.clone(), damage),
            salvaged: BTreeMap::new(),
            interrupted: false,
            earlier_cuts: Vec::new(),
        }
    }
}

fn only(promise: Promise) -> Vec<Box<dyn Checker>> {
    checkers().into_iter().filter(|c| c.promise() == promise).collect()
}

fn verdict(checkers: &[Box<dyn Checker>], model: &Model, snapshot: &Snapshot<'_>) -> Option<Promise> {
    shale_sim::check::check_all(checkers, model, snapshot).err().map(|v| v.promise)
}

fn step(f: &Fixture, events: &[Event]) -> Option<Promise> {
    let durable = Durable::default();
    let snapshot = Snapshot { phase: Phase::Step, events, reader: &f.reader, durable: &durable, map: &f.map };
    verdict(&checkers(), &f.model, &snapshot)
}

fn recovery(f: &Fixture, view: &RecoveryView, events: &[Event], promise: Promise) -> Option<Promise> {
    let durable = Durable::default();
    let snapshot = Snapshot { phase: Phase::Recovery(view), events, reader: &f.reader, durable: &durable, map: &f.map };
    verdict(&only(promise), &f.model, &snapshot)
}

#[test]
fn the_true_state_passes_every_checker() {
    let f = fixture();
    assert_eq!(step(&f, &f.events), None);
    let view = f.view(Vec::new(), RecoveryReport::default());
    for promise in [Promise::P3AckedIsDurable, Promise::P4Prefix, Promise::P8Integrity, Promise::P12LossIsReported] {
        assert_eq!(recovery(&f, &view, &f.events, promise), None);
    }
}

#[test]
fn p1_catches_part_of_a_batch() {
    let f = fixture();
    let partial = &f.events[..1];
    let durable = Durable::default();
    let snapshot = Snapshot { phase: Phase::Step, events: partial, reader: &f.reader, durable: &durable, map: &f.map };
    assert_eq!(verdict(&only(Promise::P1BatchAtomicity), &f.model, &snapshot), Some(Promise::P1BatchAtomicity));
}

#[test]
fn p8_catches_wrong_data() {
    let f = fixture();
    let mut events = f.events.clone();
    let mut bytes = events[1].payload.to_vec();
    *bytes.last_mut().unwrap() ^= 1;
    events[1].payload = bytes.into();
    assert_eq!(step(&f, &events), Some(Promise::P8Integrity));
}

#[test]
fn p9_catches_a_batch_visible_without_its_ack() {
    let mut f = fixture();
    f.model.set_fate(3, Fate::Maybe);
    assert_eq!(step(&f, &f.events), Some(Promise::P9ModelEquivalence));
}

#[test]
fn p9_catches_an_acked_batch_that_is_not_visible() {
    let f = fixture();
    assert_eq!(step(&f, &f.events[..3]), Some(Promise::P9ModelEquivalence));
}

#[test]
fn p3_excuses_a_loss_only_by_damage_to_the_batch_or_before_it() {
    let f = fixture();
    let lost_tail = &f.events[..3];
    let last = f.location(3).range.clone();
    let honest = f.view(Vec::new(), RecoveryReport::default());
    assert_eq!(recovery(&f, &honest, lost_tail, Promise::P3AckedIsDurable), Some(Promise::P3AckedIsDurable));
    let on_it = f.view(vec![f.damage(last.start + 10..last.start + 11)], RecoveryReport::default());
    assert_eq!(recovery(&f, &on_it, lost_tail, Promise::P3AckedIsDurable), None, "damage on its own bytes");
    let before_it = f.view(vec![f.damage(f.location(2).range.clone())], RecoveryReport::default());
    let lost_two = &f.events[..2];
    assert_eq!(recovery(&f, &before_it, lost_two, Promise::P3AckedIsDurable), None, "set aside behind damage");
    let after_it = f.view(vec![f.damage(last.end + 100..last.end + 101)], RecoveryReport::default());
    assert_eq!(
        recovery(&f, &after_it, lost_tail, Promise::P3AckedIsDurable),
        Some(Promise::P3AckedIsDurable),
        "damage elsewhere excuses nothing"
    );
    let earlier = Damage { op: 0, ..f.damage(last.clone()) };
    let stale = f.view(vec![earlier], RecoveryReport::default());
    assert_eq!(
        recovery(&f, &stale, lost_tail, Promise::P3AckedIsDurable),
        None,
        "damage before the write still lies before the batch in the journal"
    );
    assert_eq!(recovery(&f, &on_it, lost_tail, Promise::P4Prefix), None, "a lost suffix is a prefix");
}

#[test]
fn p4_catches_a_hole() {
    let f = fixture();
    let hole: Vec<Event> = [&f.events[..2], &f.events[3..]].concat();
    let view = f.view(vec![f.damage(f.location(2).range.clone())], RecoveryReport::default());
    assert_eq!(recovery(&f, &view, &hole, Promise::P4Prefix), Some(Promise::P4Prefix));
}

#[test]
fn p4_does_not_mistake_another_copy_for_the_acknowledged_one() {
    let f = fixture();
    // Batch 2 lost; batch 3 back at its position but as another copy.
    let mut events: Vec<Event> = [&f.events[..2], &f.events[3..]].concat();
    for e in &mut events[2..] {
        e.hash[0] ^= 1;
    }
    let view = f.view(vec![f.damage(f.location(2).range.clone())], RecoveryReport::default());
    assert_eq!(recovery(&f, &view, &events, Promise::P4Prefix), None);
    let honest = f.view(Vec::new(), RecoveryReport::default());
    assert_eq!(recovery(&f, &honest, &f.events[..2], Promise::P3AckedIsDurable), Some(Promise::P3AckedIsDurable));
}

#[test]
fn p12_catches_a_loss_the_report_leaves_out() {
    let f = fixture();
    let last = f.location(3).range.clone();
    let damage = vec![f.damage(last.start..last.start + 1)];
    let silent = f.view(damage.clone(), RecoveryReport::default());
    assert_eq!(recovery(&f, &silent, &f.events[..3], Promise::P12LossIsReported), Some(Promise::P12LossIsReported));
    let cut =
        Truncation { file: f.segment(), offset: last.start, len: last.end - last.start, reason: CutReason::TornTail };
    let reported = f.view(damage, RecoveryReport { truncated: vec![cut], ..RecoveryReport::default() });
    assert_eq!(recovery(&f, &reported, &f.events[..3], Promise::P12LossIsReported), None);
}

#[test]
fn p12_catches_intact_bytes_cut_off_and_a_set_aside_copy_that_differs() {
    let f = fixture();
    let (second, third) = (f.location(2).range.clone(), f.location(3).range.clone());
    let damage = vec![f.damage(second.start..second.start + 1)];
    let cut = Truncation {
        file: f.segment(),
        offset: second.start,
        len: third.end - second.start,
        reason: CutReason::TornTail,
    };
    let truncated = f.view(damage.clone(), RecoveryReport { truncated: vec![cut], ..RecoveryReport::default() });
    assert_eq!(
        recovery(&f, &truncated, &f.events[..2], Promise::P12LossIsReported),
        Some(Promise::P12LossIsReported),
        "batch 3 was intact: it must be set aside, not cut"
    );
    let to = Path::new(DIR).join("salvage/seg-0000000000000000.log.from-x");
    let aside = SetAside { from: f.segment(), to: to.clone(), offset: second.start, len: third.end - second.start };
    let report = RecoveryReport { set_aside: vec![aside], ..RecoveryReport::default() };
    let mut copy = vec![0u8; (second.end - second.start) as usize];
    copy.extend_from_slice(&f.location(3).bytes);
    let mut view = f.view(damage, report);
    let file = |durable: Vec<u8>| SalvageFile { inode: 999, len: durable.len() as u64, durable: durable.into() };
    view.salvaged.insert(to.clone(), file(copy.clone()));
    assert_eq!(recovery(&f, &view, &f.events[..2], Promise::P12LossIsReported), None, "set aside intact");
    let last = copy.len() - 1;
    copy[last] ^= 1;
    view.salvaged.insert(to, file(copy));
    assert_eq!(recovery(&f, &view, &f.events[..2], Promise::P12LossIsReported), Some(Promise::P12LossIsReported));
}

#[test]
fn p6_catches_a_wrong_cause_or_correlation() {
    let mut f = fixture();
    let p6 = |f: &Fixture, events: &[Event]| {
        let durable = Durable::default();
        let snapshot = Snapshot { phase: Phase::Step, events, reader: &f.reader, durable: &durable, map: &f.map };
        verdict(&only(Promise::P6CausalClosure), &f.model, &snapshot)
    };
    assert_eq!(p6(&f, &f.events), None);

    let mut uncalled = f.events.clone();
    uncalled[2].causation = Some(f.events[0].id);
    assert_eq!(p6(&f, &uncalled), Some(Promise::P6CausalClosure), "a cause nobody named");

    let mut miscorrelated = f.events.clone();
    miscorrelated[2].correlation = f.events[0].id;
    assert_eq!(p6(&f, &miscorrelated), Some(Promise::P6CausalClosure), "a correlation that is not its own id");

    // Batch 3's first item named an id that named nothing yet: committed,
    // it must be that very id, and its correlation is the cause's.
    let named = shale_store::EventId::from_parts(f.events[0].id.store_tag(), f.events[0].id.epoch(), 2);
    f.model.batches.get_mut(&3).unwrap().items[0].cause = Some(ModelCause::Event { id: named, tag: None });
    let mut speculative = f.events.clone();
    speculative[3].causation = Some(f.events[1].id);
    speculative[3].correlation = f.events[1].correlation;
    assert_eq!(p6(&f, &speculative), None, "the id it named, now visible");
    speculative[3].causation = Some(f.events[0].id);
    speculative[3].correlation = f.events[0].correlation;
    assert_eq!(p6(&f, &speculative), Some(Promise::P6CausalClosure), "another event than the id named");
}

#[test]
fn a_failed_read_is_excused_only_by_damage_on_the_bytes_it_names() {
    use shale_sim::excuse::{read_trouble, ReadTrouble};
    use shale_store::Disk;
    use shale_store::ReadError;
    let time = SimTime::default();
    // Every read the disk is asked for while faults are on strikes a
    // latent sector error.
    let options = SimDiskOptions { read_latent_error: 1.0, ..SimDiskOptions::default() };
    let disk = SimDisk::new(1, options, time.clone());
    disk.set_faults(false);
    let env = || SimEnv { disk: disk.clone(), clock: SimClock::new(time.clone()), entropy: SimEntropy::new(1, "e") };
    let (mut core, _) = Core::open(env(), Path::new(DIR), &Options::default()).unwrap();
    for uid in 1..=3u64 {
        let item = ModelItem {
            entity: format!("e{uid}"),
            scope: "main".into(),
            kind: "k".into(),
            payload: payload(uid, 0, &[7; 600]),
            expected_version: None,
            cause: None,
            correlation: None,
        };
        let batch =
            ModelBatch { uid, items: vec![item], key: None, fate: Fate::InFlight, maybe_written: false, invalid: None };
        core.commit(&[batch.to_batch()]).remove(0).unwrap();
    }
    let mut map = JournalMap::default();
    map.absorb(&disk.take_writes());
    let events = core.reader().read_from(1, 10).unwrap();
    let segment = Path::new(DIR).join("seg-0000000000000000.log");
    let claim = |i: usize, range: std::ops::Range<u64>| ReadError::Damaged {
        id: events[i].id,
        file: segment.clone(),
        range,
        reason: "planted: the store says so".into(),
    };
    let group = |i: usize| map.copy(&events[i].hash).unwrap().range.clone();
    // The store calling bytes damaged that the disk never touched.
    let now: &[Damage] = &[];
    assert_eq!(read_trouble(&disk, &map, &claim(1, group(1)), now), None, "no damage, no excuse");
    // A store that reads afresh meets the disk's own damage.
    drop(core);
    let (core, _) = Core::open(env(), Path::new(DIR), &Options::default()).unwrap();
    let before_read = disk.damage_mark();
    disk.set_faults(true);
    let failed = core.reader().read_from(2, 1).unwrap_err();
    disk.set_faults(false);
    let Some(ReadTrouble::Damaged { class, .. }) = read_trouble(&disk, &map, &failed, now) else {
        panic!("{failed} is not excused by the latent error it met: {:?}", disk.damage())
    };
    assert_eq!(class, FaultClass::SectorError);
    // Damage on some bytes excuses no error that names others, nor one
    // that names bytes where the store wrote no group.
    let damaged = disk.damage();
    let clear =
        (0..3).find(|&i| damaged.iter().all(|d| d.range.end <= group(i).start || group(i).end <= d.range.start));
    let clear = clear.expect("a group the damage missed");
    assert_eq!(read_trouble(&disk, &map, &claim(clear, group(clear)), now), None, "damage elsewhere excuses nothing");
    let past = group(2).end + 4096..group(2).end + 4200;
    assert_eq!(read_trouble(&disk, &map, &claim(2, past), now), None, "no group of the store's there");
    // The damaged bytes written anew (as a commit's own write may, before
    // it answers) are healed: only damage that was on the disk when the
    // read could have been made (when the commit began), or recorded since
    // a mark taken then, still excuses it.
    let on_disk = disk.damage();
    let mut seam = disk.clone();
    let mut file = seam.open(&segment).unwrap();
    for d in &damaged {
        let len = (d.range.end - d.range.start) as usize;
        seam.write_at(&mut file, d.range.start, &vec![0; len]).unwrap();
    }
    seam.sync(&mut file).unwrap();
    assert!(disk.damage().is_empty(), "rewritten bytes are healed: {:?}", disk.damage());
    assert_eq!(read_trouble(&disk, &map, &failed, now), None, "healed damage excuses no later read");
    let Some(ReadTrouble::Damaged { .. }) = read_trouble(&disk, &map, &failed, &disk.damage_since(before_read)) else {
        panic!("{failed} is not excused by the damage recorded since the read began")
    };
    let Some(ReadTrouble::Damaged { .. }) = read_trouble(&disk, &map, &failed, &on_disk) else {
        panic!("{failed} is not excused by the damage on the disk before the read")
    };
    disk.power_off();
    assert_eq!(read_trouble(&disk, &map, &claim(1, group(1)), now), Some(ReadTrouble::PowerLost));
}
