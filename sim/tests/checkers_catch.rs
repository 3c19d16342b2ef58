//! Every checker fails on the defect it exists for. Real events come from
//! the store over SimDisk; each test plants one defect in what the checker
//! is shown (a lost item, garbled bytes, a batch visible without its ack, a
//! lost acknowledged batch, a hole) and asserts the right promise is named.
//! A checker that passed all of these would be a checker that cannot fail.

use std::path::Path;

use shale_sim::check::{checkers, Checker, Durable, Phase, Promise, Snapshot};
use shale_sim::disk::{SimDisk, SimDiskOptions, SimTime};
use shale_sim::env::{SimClock, SimEntropy, SimEnv};
use shale_sim::model::{payload, Fate, Model, ModelBatch, ModelItem};
use shale_store::{Core, Event, Options, Reader, RecoveryReport};

struct Fixture {
    model: Model,
    events: Vec<Event>,
    reader: Reader,
    _core: Core<SimEnv>,
}

/// Three acknowledged batches of 2, 1 and 2 events.
fn fixture() -> Fixture {
    let time = SimTime::default();
    let disk = SimDisk::new(1, SimDiskOptions::default(), time.clone());
    let env = SimEnv { disk, clock: SimClock::new(time), entropy: SimEntropy::new(1, "e") };
    let (mut core, _) = Core::open(env, Path::new("/s"), &Options::default()).unwrap();
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
            })
            .collect();
        let batch = ModelBatch { uid, items, key: None, fate: Fate::InFlight, maybe_written: false };
        let receipts = core.commit(&[batch.to_batch()]).remove(0).unwrap();
        model.add(batch);
        model.set_fate(uid, Fate::Acked(receipts.iter().map(|r| r.global_seq).collect()));
    }
    let reader = core.reader();
    let events = reader.read_from(1, 100).unwrap();
    assert_eq!(events.len(), 5);
    Fixture { model, events, reader, _core: core }
}

fn only(promise: Promise) -> Vec<Box<dyn Checker>> {
    checkers().into_iter().filter(|c| c.promise() == promise).collect()
}

fn verdict(checkers: &[Box<dyn Checker>], model: &Model, snapshot: &Snapshot<'_>) -> Option<Promise> {
    shale_sim::check::check_all(checkers, model, snapshot).err().map(|v| v.promise)
}

fn step(f: &Fixture, events: &[Event]) -> Option<Promise> {
    let durable = Durable::default();
    let snapshot = Snapshot { phase: Phase::Step, events, reader: &f.reader, durable: &durable };
    verdict(&checkers(), &f.model, &snapshot)
}

fn recovery(f: &Fixture, model: &Model, events: &[Event], lossy: bool, promise: Promise) -> Option<Promise> {
    let report = RecoveryReport::default();
    let durable = Durable { lossy, ..Durable::default() };
    let snapshot =
        Snapshot { phase: Phase::Recovery { report: &report, lossy }, events, reader: &f.reader, durable: &durable };
    verdict(&only(promise), model, &snapshot)
}

#[test]
fn the_true_state_passes_every_checker() {
    let f = fixture();
    assert_eq!(step(&f, &f.events), None);
    for promise in [Promise::P3AckedIsDurable, Promise::P4Prefix, Promise::P8Integrity] {
        assert_eq!(recovery(&f, &f.model, &f.events, false, promise), None);
    }
}

#[test]
fn p1_catches_part_of_a_batch() {
    let f = fixture();
    let partial = &f.events[..1];
    assert_eq!(
        verdict(
            &only(Promise::P1BatchAtomicity),
            &f.model,
            &Snapshot { phase: Phase::Step, events: partial, reader: &f.reader, durable: &Durable::default() }
        ),
        Some(Promise::P1BatchAtomicity)
    );
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
fn p3_catches_acked_loss_on_an_honest_disk_but_allows_it_on_a_lossy_one() {
    let f = fixture();
    let lost_tail = &f.events[..3];
    assert_eq!(recovery(&f, &f.model, lost_tail, false, Promise::P3AckedIsDurable), Some(Promise::P3AckedIsDurable));
    assert_eq!(recovery(&f, &f.model, lost_tail, true, Promise::P3AckedIsDurable), None);
    assert_eq!(recovery(&f, &f.model, lost_tail, true, Promise::P4Prefix), None, "a lost suffix is a prefix");
}

#[test]
fn p4_catches_a_hole() {
    let f = fixture();
    let hole: Vec<Event> = [&f.events[..2], &f.events[3..]].concat();
    assert_eq!(recovery(&f, &f.model, &hole, true, Promise::P4Prefix), Some(Promise::P4Prefix));
}

#[test]
fn p4_does_not_mistake_another_copy_for_the_acknowledged_one() {
    let mut f = fixture();
    for e in &f.events {
        f.model.absorb(vec![e.clone()]);
    }
    // Batch 2 lost; batch 3 back at its position but as another copy.
    let mut events: Vec<Event> = [&f.events[..2], &f.events[3..]].concat();
    for e in &mut events[2..] {
        e.hash[0] ^= 1;
    }
    assert_eq!(recovery(&f, &f.model, &events, true, Promise::P4Prefix), None);
    assert_eq!(
        recovery(&f, &f.model, &f.events[..2], false, Promise::P3AckedIsDurable),
        Some(Promise::P3AckedIsDurable)
    );
}
