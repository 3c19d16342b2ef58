//! Which lost acknowledged batches a lossy fault excuses, and nothing else.
//!
//! A fault excuses a batch in exactly two ways. It **destroyed** it: the
//! disk recorded lossy damage (a write a lying fsync acknowledged and a
//! crash then lost, bit rot, an unreadable sector, a misdirected, lost or
//! stale write) on the batch's own bytes, after they were written. Or the
//! batch was **set aside** behind it: the damage lies earlier in the
//! journal, and a store may keep only a prefix of its journal (P4), so a
//! salvage moves everything from the damage on aside. The second kind must
//! then be found, intact, where the recovery report says it was put (P12).
//! Every other lost acknowledged batch is a broken promise (P3).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use shale_store::journal::segment::parse_segment_name;
use shale_store::keyset::{KEYS_COPY_NAME, KEYS_NAME};

use crate::disk::{Damage, FaultClass, SimDisk};
use crate::journal_map::{JournalMap, Location};

/// A journal segment as it was before a recovery.
#[derive(Clone, Debug)]
pub struct JournalFile {
    pub segment: u64,
    pub path: PathBuf,
    /// Its durable length then: bytes past it were never on the medium.
    pub durable_len: u64,
    /// Its durable bytes then.
    pub durable: crate::disk::Bytes,
}

impl JournalFile {
    /// Whether the disk left a valid frame other than the one at the start
    /// of `bytes` (what was written at `at`) in its place: a lost or stale
    /// write put an older group's frame there, and a recovery reads that
    /// group, not the one written.
    pub fn replaced_at(&self, at: u64, bytes: &[u8]) -> bool {
        let Some(there) = self.durable.get(at as usize..) else { return false };
        match shale_store::journal::record::read_frame(there) {
            Ok((_, body)) => {
                let len = shale_store::limits::FRAME_HEADER_LEN + body.len();
                there.get(..len) != bytes.get(..len)
            }
            Err(_) => false,
        }
    }

    /// Whether the disk holds other bytes, all of them, where `bytes` were
    /// written at `at`: a lost or stale write left older frames over the
    /// whole range (a group of them may begin before `at`).
    pub fn overwritten_at(&self, at: u64, bytes: &[u8]) -> bool {
        let range = at as usize..at as usize + bytes.len();
        self.durable.get(range).is_some_and(|there| there != bytes)
    }
}

/// The disk just before a recovery: the journal's files and the damage on
/// the medium. When recoveries are interrupted (a crash mid-open, a failed
/// open) the first capture since the last recovery that finished stands:
/// the journal as it was before any of them touched it.
#[derive(Clone, Debug, Default)]
pub struct Before {
    damage: Vec<Damage>,
    journal: BTreeMap<u64, JournalFile>,
    keysets: BTreeSet<u64>,
    /// The disk's damage log mark at the capture.
    mark: usize,
    /// The files salvage had set aside by then.
    salvaged: BTreeSet<PathBuf>,
    /// Each journal file's length when the last open began (inode to
    /// length): the same files as above unless opens were cut short in
    /// between, and a crash since may have changed them (made a cut a
    /// lying sync had acknowledged durable, say).
    at_last_open: BTreeMap<u64, u64>,
}

/// Each journal segment in `dir` now, by inode, with its length as reads
/// see it.
pub fn journal_lengths(disk: &SimDisk, dir: &Path) -> BTreeMap<u64, u64> {
    disk.names_in(dir)
        .into_iter()
        .filter(|(name, _)| parse_segment_name(name).is_some())
        .filter_map(|(_, inode)| Some((inode, disk.len_of(inode)?)))
        .collect()
}

impl Before {
    /// Notes the journal's lengths as another open begins.
    pub fn opening(&mut self, disk: &SimDisk, dir: &Path) {
        self.at_last_open = journal_lengths(disk, dir);
    }

    /// The disk as an open begins.
    pub fn capture(disk: &SimDisk, dir: &Path) -> Self {
        let aside = dir.join(shale_store::journal::recover::SALVAGE_DIR);
        let salvaged = disk.names_in(&aside).into_iter().map(|(n, _)| aside.join(n)).collect();
        let mut before = Before { damage: disk.damage(), mark: disk.damage_mark(), salvaged, ..Before::default() };
        for (name, inode) in disk.names_in(dir) {
            let path = dir.join(&name);
            if let Some(segment) = parse_segment_name(&name) {
                let durable = disk.durable_of(inode).unwrap_or_default();
                let durable_len = durable.len() as u64;
                before.journal.insert(inode, JournalFile { segment, path, durable_len, durable });
            } else if name == KEYS_NAME || name == KEYS_COPY_NAME {
                before.keysets.insert(inode);
            }
        }
        before.opening(disk, dir);
        before
    }
}

/// Why a lost acknowledged batch is excused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Excuse {
    /// Lossy damage on its own bytes.
    Destroyed(FaultClass),
    /// Set aside behind damage earlier in the journal.
    AfterDamage,
}

impl Excuse {
    pub fn reason(self) -> String {
        match self {
            Excuse::Destroyed(class) => format!("destroyed by {class:?}"),
            Excuse::AfterDamage => "set aside after damage".into(),
        }
    }
}

/// The excuses a recovery may claim.
#[derive(Clone, Debug)]
pub struct Excuses {
    damage: Vec<Damage>,
    journal: BTreeMap<u64, JournalFile>,
    keysets: BTreeSet<u64>,
    salvaged: BTreeSet<PathBuf>,
    /// Writes a lying fsync acknowledged that are still pending after the
    /// recovery (inode, range): not durable, though reported so.
    tainted: Vec<(u64, std::ops::Range<u64>)>,
    /// The earliest damaged position in the journal: (segment, offset).
    first_damage: Option<(u64, u64)>,
    /// Each journal file's length after the recovery (inode to length):
    /// what it kept of the bytes it read.
    kept: BTreeMap<u64, u64>,
    /// Each journal file's length when the recovery's open began.
    at_open: BTreeMap<u64, u64>,
}

impl Excuses {
    /// From the disk as it was before the recovery, and the damage done
    /// since (during it, or during recoveries it interrupted), healed or not.
    /// A keyset copy written since (an interrupted recovery republished it)
    /// counts as a keyset too, where it is now: in `dir`, or set aside.
    pub fn after(mut before: Before, disk: &SimDisk, dir: &Path) -> Self {
        let during = disk.damage_since(before.mark);
        let aside = dir.join(shale_store::journal::recover::SALVAGE_DIR);
        for (name, inode) in disk.names_in(dir).into_iter().chain(disk.names_in(&aside)) {
            if name.starts_with(KEYS_NAME) {
                before.keysets.insert(inode);
            }
        }
        let kept = before.journal.keys().filter_map(|&inode| Some((inode, disk.len_of(inode)?))).collect();
        Self { tainted: disk.tainted(), kept, ..Self::new(before, during) }
    }

    /// From the disk as it was before the recovery, and the damage done
    /// during it.
    pub fn new(before: Before, during: Vec<Damage>) -> Self {
        let mut damage = before.damage;
        for d in during {
            if !damage.contains(&d) {
                damage.push(d);
            }
        }
        let first_damage =
            damage.iter().filter_map(|d| Some((before.journal.get(&d.inode)?.segment, d.range.start))).min();
        Self {
            damage,
            journal: before.journal,
            keysets: before.keysets,
            salvaged: before.salvaged,
            tainted: Vec::new(),
            first_damage,
            kept: BTreeMap::new(),
            at_open: before.at_last_open,
        }
    }

    /// The length of journal file `inode` when the recovery's open began,
    /// if it was in the store's directory then.
    pub fn len_at_open(&self, inode: u64) -> Option<u64> {
        self.at_open.get(&inode).copied()
    }

    /// Whether the recovery left the journal file `inode` at least `end`
    /// bytes long: it kept what it read there (as far as the harness
    /// knows the length after it; not at all without one).
    pub fn kept_through(&self, inode: u64, end: u64) -> bool {
        self.kept.get(&inode).is_some_and(|&len| len >= end)
    }

    /// The excuse for losing the batch copy at `loc`, if any.
    pub fn of(&self, loc: &Location) -> Option<Excuse> {
        let destroyed = self.damage.iter().find(|d| {
            d.inode == loc.inode && d.range.start < loc.range.end && loc.range.start < d.range.end && d.op >= loc.op
        });
        if let Some(d) = destroyed {
            return Some(Excuse::Destroyed(d.class));
        }
        let position = (loc.segment, loc.range.start);
        self.first_damage.filter(|&first| first <= position).map(|_| Excuse::AfterDamage)
    }

    /// Whether lossy damage touched `range` of `inode` (any file), or a
    /// lying fsync left it pending.
    pub fn touched(&self, inode: u64, range: std::ops::Range<u64>) -> bool {
        let overlaps = |i: u64, r: &std::ops::Range<u64>| i == inode && r.start < range.end && range.start < r.end;
        self.damage.iter().any(|d| overlaps(d.inode, &d.range)) || self.tainted.iter().any(|(i, r)| overlaps(*i, r))
    }

    /// The journal file `inode` was before the recovery.
    pub fn file(&self, inode: u64) -> Option<&JournalFile> {
        self.journal.get(&inode)
    }

    /// Whether salvage had set `path` aside before the recovery.
    pub fn salvaged_before(&self, path: &Path) -> bool {
        self.salvaged.contains(path)
    }

    /// Lossy damage hit a copy of the keyset.
    pub fn keyset_damaged(&self) -> bool {
        self.damage.iter().any(|d| self.keysets.contains(&d.inode))
    }

    /// Lossy damage lies somewhere in the journal.
    pub fn journal_damaged(&self) -> bool {
        self.first_damage.is_some()
    }
}

/// Why a read the store failed broke no promise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadTrouble {
    /// The power went out during it.
    PowerLost,
    /// The disk damaged the bytes it names (lossy damage of this class is
    /// recorded on the medium there), and they are where the store wrote a
    /// group: a failed read is all the store may make of them.
    Damaged { class: FaultClass, inode: u64, range: std::ops::Range<u64> },
}

/// What excuses `e`, a read error from the store, if anything does. An
/// error that names no bytes, or bytes no fault touched or no group of the
/// store's lies in, is excused by nothing. Damage counts if it is on the
/// disk now or is in `earlier` (what was on the disk when the read could
/// have been made, or recorded since): a read that failed inside a commit
/// may find its bytes rewritten, and healed, by the time the commit
/// answers.
pub fn read_trouble(
    disk: &SimDisk,
    map: &JournalMap,
    e: &shale_store::ReadError,
    earlier: &[Damage],
) -> Option<ReadTrouble> {
    use shale_store::ReadError;
    if !disk.powered() {
        return Some(ReadTrouble::PowerLost);
    }
    let (ReadError::Io { file, range, .. } | ReadError::Damaged { file, range, .. }) = e else { return None };
    let name = file.file_name()?.to_string_lossy();
    let (_, inode) = disk.names_in(file.parent()?).into_iter().find(|(n, _)| *n == name)?;
    if !map.holds(inode, range) {
        return None;
    }
    let damage = disk.damage().into_iter().chain(earlier.iter().cloned()).collect::<Vec<_>>();
    let hit = damage.iter().find(|d| d.inode == inode && d.range.start < range.end && range.start < d.range.end)?;
    Some(ReadTrouble::Damaged { class: hit.class, inode, range: range.clone() })
}
