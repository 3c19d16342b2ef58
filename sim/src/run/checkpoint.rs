//! P9 for opens from the index checkpoint: the index they build must be
//! the one a full scan of the same disk builds.
//!
//! A full scan reads the whole journal, so checking every such open would
//! make a run's cost grow with the square of its length. The check is
//! incremental instead: an open that starts from the same checkpoint file
//! as the last one checked, on a journal that since only grew at its end
//! and took no recorded damage, differs from that one only in the tail it
//! read after the checkpoint. It is checked again when that tail has
//! doubled, so every checkpoint is checked with tails of every scale, and
//! always once the faults have stopped.

use std::collections::BTreeMap;

use shale_store::journal::checkpoint::INDEX_NAME;
use shale_store::journal::segment::parse_segment_name;

use super::*;

/// A tail shorter than this is checked again only once it reaches it.
const TAIL_RECHECK_MIN: u64 = 1024;

/// The last open from the checkpoint that a full scan was shown to match.
#[derive(Clone, Debug)]
pub(super) struct CheckedOpen {
    /// The checkpoint file's inode and the events it holds.
    index: u64,
    events: u64,
    /// Events read after the checkpoint.
    tail: u64,
    /// The disk's durable mark then, and each journal segment by number:
    /// its inode and length.
    mark: u64,
    journal: BTreeMap<u64, (u64, u64)>,
}

impl CheckedOpen {
    /// Whether `now` (an open from the checkpoint, its `mark` unused)
    /// starts where this one did: the same checkpoint file, untouched, of
    /// as many events, a tail not yet twice as long, and every segment of
    /// then still there, durable bytes changed only past its length then
    /// (`changed_since`: the lowest offset of an inode's durable bytes
    /// changed since this one's mark), new segments only after them.
    fn starts(&self, now: &CheckedOpen, changed_since: impl Fn(u64) -> Option<u64>) -> bool {
        let untouched = |inode: u64, len: u64| changed_since(inode).is_none_or(|low| low >= len);
        let grew_at_end = self.journal.iter().all(|(segment, &(inode, len))| {
            now.journal.get(segment).is_some_and(|&(i, l)| i == inode && l >= len) && untouched(inode, len)
        });
        let past_end = self.journal.keys().next_back();
        let only_new_after = now.journal.keys().filter(|n| !self.journal.contains_key(*n)).all(|n| Some(n) > past_end);
        self.events == now.events
            && now.tail < (2 * self.tail).max(TAIL_RECHECK_MIN)
            && self.index == now.index
            && changed_since(self.index).is_none()
            && grew_at_end
            && only_new_after
    }
}

impl Sim {
    /// The journal's segments by number: inode and length.
    fn segments(&self) -> BTreeMap<u64, (u64, u64)> {
        let names = self.disk.names_in(Path::new(STORE_DIR));
        let segments = names.into_iter().filter_map(|(name, inode)| Some((parse_segment_name(&name)?, inode)));
        segments.filter_map(|(segment, inode)| Some((segment, (inode, self.disk.len_of(inode)?)))).collect()
    }

    /// This open from the checkpoint (of `events` events, `tail` read
    /// after it) as the disk holds it now; `None` without a checkpoint file.
    fn open_now(&self, events: u64, tail: u64) -> Option<CheckedOpen> {
        let index = self.disk.inode_of(&Path::new(STORE_DIR).join(INDEX_NAME))?;
        Some(CheckedOpen { index, events, tail, mark: self.disk.durable_mark(), journal: self.segments() })
    }

    /// An open that started from the index checkpoint must build the index
    /// a full scan of the same disk builds (P9): opened again on a copy of
    /// the disk, reading the whole journal, it must give the same
    /// fingerprint (unless it starts as the last checked one did; see the
    /// module's comment). The two may part only where the disk recorded
    /// lossy damage in a journal file the checkpoint may cover (a full scan
    /// reads those bytes; the checkpoint's open does not, and its reads
    /// report the damage when they meet it).
    pub(super) fn check_checkpoint_open(&mut self, core: &Core<SimEnv>, events: u64) -> Result<(), Stop> {
        let tail = core.reader().last_global().saturating_sub(events);
        let now = self.open_now(events, tail);
        let as_checked = match (&self.checked_open, &now) {
            (Some(last), Some(now)) => last.starts(now, |inode| self.disk.durable_changed_since(inode, last.mark)),
            _ => false,
        };
        if as_checked && self.faults_stopped_at.is_none() && !self.journal_damaged() {
            self.note(format!("open from the checkpoint starts as the last one checked did ({tail} events after it)"));
            return Ok(());
        }
        let copy = self.disk.fork();
        let env = SimEnv {
            disk: copy,
            clock: SimClock::new(self.time.clone()),
            entropy: SimEntropy::new(self.entropy_seed, &format!("full-scan-{}", self.recoveries)),
        };
        let options = Options { full_scan: true, salvage: false, ..self.options() };
        let scanned = catching(|| Core::open(env, Path::new(STORE_DIR), &options))
            .map_err(|panic| Stop(Outcome::Panic { panic, step: self.step }))?;
        let difference = match scanned {
            Ok((scan, _)) if scan.reader().index_fingerprint() == core.reader().index_fingerprint() => {
                self.checked_open = now;
                return Ok(());
            }
            Ok((scan, _)) => {
                let (ours, theirs) = (core.reader().index_fingerprint_parts(), scan.reader().index_fingerprint_parts());
                let parts: Vec<&str> = ours.iter().zip(&theirs).filter(|(a, b)| a.1 != b.1).map(|(a, _)| a.0).collect();
                format!(
                    "the index differs from a full scan's in {} ({} events from the checkpoint, {} by the scan)",
                    parts.join(", "),
                    core.reader().last_global(),
                    scan.reader().last_global()
                )
            }
            Err(e) => format!("a full scan of the same disk refuses it: {e}"),
        };
        self.checked_open = None;
        if self.journal_damaged() {
            self.note(format!("open from the checkpoint: {difference}; the journal holds recorded damage"));
            return Ok(());
        }
        Err(self.violation(Promise::P9ModelEquivalence, format!("open from the index checkpoint: {difference}")))
    }

    /// Whether the disk recorded lossy damage on bytes a journal segment
    /// holds now.
    fn journal_damaged(&self) -> bool {
        let segments = crate::excuse::journal_lengths(&self.disk, Path::new(STORE_DIR));
        self.disk.damage().iter().any(|d| segments.get(&d.inode).is_some_and(|&len| d.range.start < len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(events: u64, tail: u64, journal: &[(u64, u64, u64)]) -> CheckedOpen {
        let journal = journal.iter().map(|&(segment, inode, len)| (segment, (inode, len))).collect();
        CheckedOpen { index: 9, events, tail, mark: 0, journal }
    }

    const THEN: &[(u64, u64, u64)] = &[(1, 1, 65536), (2, 2, 4000)];

    #[test]
    fn a_journal_grown_at_its_end_starts_as_before() {
        let last = open(500, 40, THEN);
        let now = open(500, 900, &[(1, 1, 65536), (2, 2, 65536), (3, 3, 100)]);
        assert!(last.starts(&now, |inode| (inode == 2).then_some(4000)));
        assert!(last.starts(&open(500, 40, THEN), |_| None));
    }

    #[test]
    fn anything_else_is_checked_again() {
        let last = open(500, 40, THEN);
        let nothing = |_| None;
        // Another checkpoint, or the same file rewritten.
        assert!(!last.starts(&open(501, 40, THEN), nothing));
        assert!(!last.starts(&CheckedOpen { index: 10, ..open(500, 40, THEN) }, nothing));
        assert!(!last.starts(&open(500, 40, THEN), |inode| (inode == 9).then_some(7)));
        // A tail past the minimum, or twice the last one checked.
        assert!(!last.starts(&open(500, TAIL_RECHECK_MIN, THEN), nothing));
        let long = open(500, 5000, THEN);
        assert!(long.starts(&open(500, 9999, THEN), nothing));
        assert!(!long.starts(&open(500, 10_000, THEN), nothing));
        // A segment shorter, replaced, gone, or changed before its end then.
        assert!(!last.starts(&open(500, 40, &[(1, 1, 65536), (2, 2, 3999)]), nothing));
        assert!(!last.starts(&open(500, 40, &[(1, 7, 65536), (2, 2, 4000)]), nothing));
        assert!(!last.starts(&open(500, 40, &[(2, 2, 4000)]), nothing));
        assert!(!last.starts(&open(500, 40, THEN), |inode| (inode == 2).then_some(3999)));
        // A segment that was not there, before the last one then.
        assert!(!last.starts(&open(500, 40, &[(0, 5, 100), (1, 1, 65536), (2, 2, 4000)]), nothing));
    }
}
