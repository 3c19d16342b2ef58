//! Crashes, restarts through the faulty disk, the checks after each
//! recovery, and the end of a run (faults stop; P10).

use super::*;
use crate::model::tag_of;
use shale_store::keyset::KeysetError;
use shale_store::{CheckpointUse, EventDigest, RecoveryReport};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `report` with what the `earlier` ones (of recoveries whose checks were
/// cut short) said first: all of it was dropped or moved since the disk
/// the next checks compare with.
fn with_earlier(earlier: Vec<RecoveryReport>, report: RecoveryReport) -> RecoveryReport {
    let mut merged = RecoveryReport::default();
    for r in earlier.into_iter().chain([report]) {
        merged.segments = r.segments;
        merged.groups = r.groups;
        merged.events = r.events;
        merged.truncated.extend(r.truncated);
        merged.removed.extend(r.removed);
        merged.set_aside.extend(r.set_aside);
        merged.unreadable.extend(r.unreadable);
        merged.corruption = r.corruption.or(merged.corruption);
        for key in r.keys_lost {
            if !merged.keys_lost.contains(&key) {
                merged.keys_lost.push(key);
            }
        }
        merged.keyset_repaired.extend(r.keyset_repaired);
        merged.meta_rebuilt = r.meta_rebuilt.or(merged.meta_rebuilt);
    }
    merged
}

impl Sim {
    /// Faults stop: a failed write must not have poisoned the writer, and
    /// after one more crash the store must reopen and accept writes.
    pub(super) fn stop_faults(&mut self) -> Result<(), Stop> {
        self.disk.set_faults(false);
        self.faults_stopped_at = Some(self.time.now());
        self.note("faults stop".into());
        if self.core.is_some() {
            self.probe("after faults stop")?;
        }
        self.crash(Vec::new());
        Ok(())
    }

    pub(super) fn final_checks(&mut self) -> Result<(), Stop> {
        if self.core.is_none() {
            return Err(self.violation(Promise::P10Liveness, "the store never came back after the faults stopped"));
        }
        self.probe("after the final recovery")
    }

    /// Appends one batch with faults off: it must commit.
    pub(super) fn probe(&mut self, when: &str) -> Result<(), Stop> {
        let uid = self.model.new_uid();
        let batch = crate::model::ModelBatch {
            uid,
            items: vec![crate::model::ModelItem {
                entity: "probe".into(),
                scope: "main".into(),
                kind: "probe".into(),
                payload: crate::model::payload(uid, 0, b"probe"),
                expected_version: None,
                cause: None,
                correlation: None,
            }],
            key: None,
            fate: Fate::InFlight,
            maybe_written: false,
            invalid: None,
        };
        let request = batch.to_batch();
        self.model.add(batch);
        let result = self.commit(&[request])?;
        match result.into_iter().next() {
            Some(Ok(receipts)) => {
                self.model.set_fate(uid, Fate::Acked(receipts.iter().map(|r| r.global_seq).collect()));
                self.note(format!("probe {when}: committed"));
                self.observe_step(false)
            }
            Some(Err(e)) => Err(self.violation(Promise::P10Liveness, format!("probe append {when} failed: {e}"))),
            None => Err(self.violation(Promise::P10Liveness, format!("probe append {when} got no answer"))),
        }
    }

    /// The machine loses power: the core dies mid-whatever, the disk applies
    /// its crash semantics, and a restart is scheduled.
    pub(super) fn crash(&mut self, in_flight: Vec<(u32, u64)>) {
        self.learn_unseen_copies();
        self.crashes += 1;
        self.disk.power_off();
        self.core = None;
        self.writer_scheduled = false;
        self.disk.crash();
        self.note(format!("crash #{} (disk op {})", self.crashes, self.disk.ops()));
        self.stopped(in_flight);
    }

    /// The store is closed with nothing in flight and no power lost (its
    /// writes stay in the page cache), and opened again.
    pub(super) fn shut_down(&mut self) {
        self.learn_unseen_copies();
        self.core = None;
        self.writer_scheduled = false;
        self.stopped(Vec::new());
    }

    /// What follows the store going down: the requests it had and had not
    /// taken are settled, and a restart is scheduled.
    fn stopped(&mut self, in_flight: Vec<(u32, u64)>) {
        let mut dropped = Vec::new();
        let queued: Vec<(u32, u64)> = self
            .inbox
            .drain(..)
            .filter_map(|r| match r {
                Req::Append(append) => Some(append),
                Req::Shred((c, _)) => {
                    // Never handed to the store: the client moves on.
                    dropped.push(c);
                    None
                }
            })
            .collect();
        for (c, uid) in in_flight {
            if !matches!(self.model.batch(uid).fate, Fate::Acked(_)) {
                self.model.set_fate(uid, Fate::Maybe);
            }
            self.unanswered(c, uid);
        }
        for c in dropped {
            self.clients[c as usize].waiting = None;
            let at = self.time.now() + self.scenario.run.restart_delay_ns;
            self.schedule(at, Event::Client(c));
        }
        for (c, uid) in queued {
            // Never handed to the store: certainly not written.
            if !matches!(self.model.batch(uid).fate, Fate::Acked(_)) {
                self.model.set_fate(uid, Fate::Refused);
            }
            self.unanswered(c, uid);
        }
        self.model.crash_view();
        for client in &mut self.clients {
            client.cursor = 1;
        }
        if !self.restart_scheduled {
            self.restart_scheduled = true;
            let at = self.time.now() + self.scenario.run.restart_delay_ns;
            self.schedule(at, Event::Restart);
        }
    }

    /// Batches acknowledged and never read back (a read failed before they
    /// were observed): which copy was acknowledged is learned from the
    /// disk's write log, as the last written at its receipt's position.
    fn learn_unseen_copies(&mut self) {
        if self.model.acked_unseen.is_empty() {
            return;
        }
        self.map.absorb(&self.disk.take_writes());
        let unseen: Vec<u64> = self.model.acked_unseen.iter().copied().collect();
        for uid in unseen {
            let Fate::Acked(globals) = &self.model.batch(uid).fate else { continue };
            let Some(&first) = globals.first() else { continue };
            let is_batch = |scope: &str| crate::model::scope_tag(scope) == Some((uid, 0));
            if let Some(hash) = self.map.last_copy(first, is_batch) {
                self.model.copy_hash.insert(uid, hash);
            }
        }
    }

    pub(super) fn env(&self) -> SimEnv {
        SimEnv {
            disk: self.disk.clone(),
            clock: SimClock::new(self.time.clone()),
            entropy: SimEntropy::new(self.entropy_seed, &format!("entropy-{}", self.recoveries)),
        }
    }

    /// Opens the store through the (still faulty) disk and checks what
    /// recovery brought back.
    pub(super) fn restart(&mut self) -> Result<(), Stop> {
        let options = self.options();
        let env = self.env();
        self.recoveries += 1;
        self.map.absorb(&self.disk.take_writes());
        self.note(self.journal_line());
        match &mut self.before {
            Some(before) => before.opening(&self.disk, Path::new(STORE_DIR)),
            None => self.before = Some(Before::capture(&self.disk, Path::new(STORE_DIR))),
        }
        self.faults_before = self.disk.stats();
        let started = self.time.now();
        let opened = catching(|| Core::open(env, Path::new(STORE_DIR), &options))
            .map_err(|panic| Stop(Outcome::Panic { panic, step: self.step }))?;
        if !self.disk.powered() {
            drop(opened);
            self.note("power lost during recovery".into());
            self.crash_point("recovery");
            self.interrupted = true;
            self.count_failed_open();
            self.crash(Vec::new());
            return Ok(());
        }
        match opened {
            Ok((core, report)) => {
                self.note(format!(
                    "recovered {} events ({}), truncated {:?}, set aside {:?}",
                    report.events,
                    match &report.checkpoint {
                        CheckpointUse::None => "full scan".to_owned(),
                        CheckpointUse::Used { events } => format!("checkpoint of {events}"),
                        CheckpointUse::Passed(why) => format!("checkpoint passed over: {why}"),
                    },
                    report.truncated.iter().map(|t| t.len).collect::<Vec<_>>(),
                    report.set_aside.iter().filter_map(|a| a.to.file_name()).collect::<Vec<_>>()
                ));
                if let Some(why) = &report.meta_rebuilt {
                    self.note(why.clone());
                }
                self.stats.latency(Request::Recovery, self.time.now() - started);
                self.noticed_in_recovery(&report);
                if let CheckpointUse::Used { events } = report.checkpoint {
                    self.exercised("checkpoint used");
                    self.check_checkpoint_open(&core, events)?;
                }
                self.salvage_next = false;
                self.full_scan_next = false;
                self.failed_opens = 0;
                let reader = core.reader();
                self.core = Some(core);
                self.map.absorb(&self.disk.take_writes());
                let Some(before) = self.before.clone() else { unreachable!("captured above") };
                let excuses = Excuses::after(before, &self.disk, Path::new(STORE_DIR));
                let interrupted = std::mem::take(&mut self.interrupted);
                let salvaged = self.salvaged_files();
                let earlier = std::mem::take(&mut self.unchecked_reports);
                let earlier_cuts = earlier.iter().flat_map(|r| r.truncated.iter().cloned()).collect();
                let report = with_earlier(earlier, report);
                let view = crate::check::RecoveryView { report, excuses, salvaged, interrupted, earlier_cuts };
                if !self.check_recovery(&reader, &view)? {
                    // A read failed for a reason the run excuses and the
                    // machine went down before the checks were done: the
                    // next recovery is checked against the disk as it was
                    // before this one, with this one's report (seen, so
                    // this recovery was not interrupted).
                    self.interrupted = view.interrupted;
                    self.unchecked_reports.push(view.report);
                    return Ok(());
                }
                self.before = None;
                for c in 0..self.clients.len() as u32 {
                    if self.clients[c as usize].retry.is_some() {
                        let at = self.time.now();
                        self.schedule(at, Event::Client(c));
                    }
                }
                if !self.inbox.is_empty() && !self.writer_scheduled {
                    self.writer_scheduled = true;
                    let at = self.time.now();
                    self.schedule(at, Event::Writer);
                }
                Ok(())
            }
            Err(e) => {
                self.noticed_in_refusal(&e);
                self.open_failed(e)
            }
        }
    }

    /// The journal as a restart finds it: each segment's durable length and
    /// the end its header records for the one before (for the trace).
    fn journal_line(&self) -> String {
        let dir = Path::new(STORE_DIR);
        let mut parts = Vec::new();
        for (name, inode) in self.disk.names_in(dir) {
            let Some(number) = shale_store::journal::segment::parse_segment_name(&name) else { continue };
            let bytes = self.disk.durable_of(inode).unwrap_or_default();
            let header = shale_store::journal::segment::SegmentHeader::decode(&bytes);
            let prev = header.map_or("bad header".to_owned(), |h| format!("prev_end {}", h.prev_end));
            parts.push(format!("{number}: {} bytes, {prev}", bytes.len()));
        }
        format!("restart finds segments [{}]", parts.join("; "))
    }

    /// Every file salvage set aside so far.
    fn salvaged_files(&self) -> BTreeMap<PathBuf, crate::check::SalvageFile> {
        let aside = Path::new(STORE_DIR).join(shale_store::journal::recover::SALVAGE_DIR);
        let mut files = BTreeMap::new();
        for (name, inode) in self.disk.names_in(&aside) {
            let (Some(durable), Some(len)) = (self.disk.durable_of(inode), self.disk.len_of(inode)) else { continue };
            files.insert(aside.join(&name), crate::check::SalvageFile { inode, durable, len });
        }
        files
    }

    /// Reads back what a recovery brought and checks it. Events that came
    /// back exactly as they were seen before the crash (same id, hash and
    /// key state; the hash chains are verified in full by P8) keep their
    /// place in the view and are not checked again; the rest are read in
    /// full and checked as new. So a recovery costs what changed, plus one
    /// pass over digests. Every hash chain is verified (P8). Returns false
    /// if a read failed for a reason the run excuses (the machine went
    /// down; see [`Sim::read_ok`]) before the checks were done.
    pub(super) fn check_recovery(
        &mut self,
        reader: &shale_store::Reader,
        view: &crate::check::RecoveryView,
    ) -> Result<bool, Stop> {
        let Some(keep) = self.unchanged_prefix(reader)? else { return Ok(false) };
        self.model.restore_view(keep);
        if !self.keys_still_open(reader)? {
            return Ok(false);
        }
        let mut events = Vec::new();
        loop {
            let from = (keep + events.len()) as u64 + 1;
            let Some(chunk) = self.read_ok(reader.read_from(from, OBSERVE_CHUNK), true)? else { return Ok(false) };
            if chunk.is_empty() {
                break;
            }
            events.extend(chunk);
        }
        // Events a recovery verified before, and that came back with the
        // same hashes, need no second look: verify from the first of the
        // rest on (each entity's chain from its last verified hash).
        let from = keep.min(self.chains_verified);
        let mut heads: BTreeMap<&str, [u8; 32]> = BTreeMap::new();
        for event in &self.model.view[..from] {
            heads.insert(event.coordinate.entity(), event.hash);
        }
        let verified = reader.verify_chains_from(from as u64 + 1, &|entity| heads.get(entity).copied());
        drop(heads);
        match verified {
            Ok(()) => {}
            Err(e @ shale_store::ReadError::Integrity { .. }) => {
                return Err(self.violation(Promise::P8Integrity, format!("a hash chain does not verify: {e}")));
            }
            Err(e) => {
                if self.read_ok::<()>(Err(e), true)?.is_none() {
                    return Ok(false);
                }
            }
        }
        let search = self.scenario.run.encryption && self.model.acked_shreds().next().is_some();
        // P2 needs no look at the durable keys here: every sealed event was
        // just read back, and opened, from the disk as the crash left it.
        let fresh = self.refresh_durable(reader.store_id(), search, &[]);
        let durable = self.durable(fresh, search);
        let snapshot =
            Snapshot { phase: Phase::Recovery(view), events: &events, reader, durable: &durable, map: &self.map };
        check_all(&self.checkers, &self.model, &snapshot)
            .map_err(|v| Stop(Outcome::Violation { violation: v, step: self.step }))?;
        let excused: Vec<(u64, String)> = crate::check::lost(&self.model, &snapshot)
            .into_iter()
            .map(|lost| {
                let Some(excuse) = lost.location.and_then(|l| view.excuses.of(l)) else { unreachable!("P3 passed") };
                (lost.uid, excuse.reason())
            })
            .collect();
        for (uid, reason) in excused {
            self.note(format!("batch {uid} lost: {reason}"));
            *self.excused.entry(reason).or_default() += 1;
        }
        let lost = events.iter().filter(|e| e.key_lost).map(|e| (e.coordinate.entity().to_owned(), e.key_gen));
        self.model.lost_keys.extend(lost);
        let keys_name = shale_store::keyset::KEYS_NAME;
        let keyset_aside = view.salvaged.keys().any(|path| {
            let keyset = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(keys_name));
            keyset && !view.excuses.salvaged_before(path)
        });
        if view.excuses.keyset_damaged() {
            // An older keyset copy may have come back without the rotation
            // of a shred acknowledged since: those shreds may be undone.
            self.model.shreds_in_doubt();
        }
        if keyset_aside {
            self.note("the keyset was set aside and replaced: key generations start again".into());
            self.model.keyset_replaced();
        }
        self.model.absorb(events);
        self.chains_verified = self.model.view.len();
        let opened = self.model.unverified_keys(&[]);
        self.model.key_checks.verified(opened);
        self.model.settle_after_recovery();
        Ok(true)
    }

    /// How many of the events seen before the crash came back unchanged,
    /// by their digests, cut back to a whole number of batches (`None`: a
    /// read failed for a reason the run excuses).
    fn unchanged_prefix(&mut self, reader: &shale_store::Reader) -> Result<Option<usize>, Stop> {
        let mut keep = 0;
        while keep < self.model.seen_before_crash().len() {
            let Some(chunk) = self.read_ok(reader.digests_from(keep as u64 + 1, OBSERVE_CHUNK), true)? else {
                return Ok(None);
            };
            let before = self.model.seen_before_crash();
            let same = before[keep..].iter().zip(&chunk).take_while(|(e, d)| EventDigest::of(e) == **d).count();
            keep += same;
            if same < chunk.len() || chunk.is_empty() {
                break;
            }
        }
        let before = self.model.seen_before_crash();
        let starts_batch = |e: &shale_store::Event| tag_of(e).is_none_or(|(_, item)| item == 0);
        while keep > 0 && keep < before.len() && !starts_batch(&before[keep]) {
            keep -= 1;
        }
        Ok(Some(keep))
    }

    /// P2 for the events a recovery kept: their ciphertexts are the ones
    /// seen before (their hashes are), so if one event per key still opens
    /// to what was seen, every event under that key does. False if a read
    /// failed for a reason the run excuses.
    fn keys_still_open(&mut self, reader: &shale_store::Reader) -> Result<bool, Stop> {
        let mut first: BTreeMap<(&str, u32), &shale_store::Event> = BTreeMap::new();
        for event in self.model.view.iter().filter(|e| e.key_gen > 0 && !e.shredded && !e.key_lost) {
            first.entry((event.coordinate.entity(), event.key_gen)).or_insert(event);
        }
        let first: Vec<shale_store::Event> = first.into_values().cloned().collect();
        for seen in &first {
            let Some(now) = self.read_ok(reader.read_from(seen.global_seq, 1), true)? else { return Ok(false) };
            if now.first().is_none_or(|now| now.payload != seen.payload) {
                return Err(self.violation(
                    Promise::P8Integrity,
                    format!(
                        "event {} ({}'s key generation {}) came back with its hash unchanged but reads differently",
                        seen.global_seq,
                        seen.coordinate.entity(),
                        seen.key_gen
                    ),
                ));
            }
        }
        Ok(true)
    }

    /// One more open that did not finish; after too many in a row the
    /// faults stop, so that a disk that fails every open cannot keep a run
    /// from ending.
    fn count_failed_open(&mut self) {
        self.failed_opens += 1;
        if self.failed_opens >= FAILED_OPENS_MAX && self.faults_stopped_at.is_none() {
            self.disk.set_faults(false);
            self.faults_stopped_at = Some(self.time.now());
            self.failed_opens = 0;
            self.note("faults stop: the store failed to open too often".into());
        }
    }

    /// An open that failed. Damage the store detected is what a salvage is
    /// for: the next open salvages, as an operator would. I/O errors are
    /// retried; ones that persist on a damaged disk are salvaged too. A
    /// refusal on a disk no lossy fault touched is a broken promise, and so
    /// (P10) is a store that does not come back once the faults stop.
    pub(super) fn open_failed(&mut self, e: OpenError) -> Result<(), Stop> {
        let damaged = self.disk.stats().any_lossy();
        self.note(format!("open failed: {e}"));
        // An open that failed half way may have cut or set aside things
        // that no report will list.
        self.interrupted = true;
        self.count_failed_open();
        match e {
            OpenError::Io(_) if damaged && self.failed_opens >= FAILED_OPENS_MAX / 4 => self.salvage_next = true,
            // Transient read errors that failed every attempt look like an
            // unreadable range: on a disk with no lossy damage, retry.
            OpenError::Io(_) | OpenError::Unreadable { .. } if !damaged => {}
            OpenError::Io(_) => {}
            OpenError::Corrupt(_)
            | OpenError::Unreadable { .. }
            | OpenError::Format { .. }
            | OpenError::NotAStore { .. }
            | OpenError::Mismatch { .. }
            | OpenError::Keyset(KeysetError::Damaged(_) | KeysetError::Missing)
                if damaged =>
            {
                self.salvage_next = true;
            }
            other => {
                return Err(self.violation(Promise::P3AckedIsDurable, format!("the store refused to open: {other}")));
            }
        }
        if !self.restart_scheduled {
            self.restart_scheduled = true;
            let at = self.time.now() + self.scenario.run.restart_delay_ns;
            self.schedule(at, Event::Restart);
        }
        Ok(())
    }
}
