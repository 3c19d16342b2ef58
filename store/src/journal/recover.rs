//! Recovery on open, in two phases.
//!
//! [`analyze`] reads the journal through read-only handles, one segment
//! open at a time, keeps whole committed groups and decides what has to
//! change: torn tails to cut, and, if it finds damage, where the valid
//! prefix ends. It writes nothing. Only once the caller has understood and
//! accepted the whole directory (the keyset included) does
//! [`Analysis::apply`] carry out the cuts and, in salvage mode, set the
//! damaged rest aside. A refused open therefore changes no file.
//!
//! Telling a torn tail from corruption: the writer issues one write and one
//! fsync per flush and starts the next flush in a segment only after the
//! previous one's fsync succeeded (after a failed write or fsync it moves to
//! a new segment). So if a bad frame lies in flush F of the last segment, a
//! valid begin record of any flush after F proves that F was synced: the
//! damage is to acknowledged data, and recovery refuses to hide it. A bad
//! frame with nothing of a later flush after it is a tail that never became
//! durable, and is cut off. Bytes that cannot be read at all (a latent
//! sector error) prove nothing either way, and are always damage.
//!
//! A segment file only ever gets its real name once its header is durable
//! (it is written under a temporary name and renamed), so a segment too
//! short for its header, or with a damaged one, is damage too, never a
//! segment "being created".

use std::path::{Path, PathBuf};

use super::read::{read_range_into, read_retrying, Unreadable};
use super::record::{begin_at, Begin};
use super::scan::{scan_segment, ScanBugs, ScanFrom, ScanOutcome};
use super::segment::{
    header_version, parse_segment_name, segment_name, SegmentHeader, FORMAT_VERSION, SEGMENT_TEMP_SUFFIX,
};
use crate::disk::{Disk, ReadAt};
use crate::error::{Corruption, IoError, OpenError};
use crate::limits::SEGMENT_HEADER_LEN;
use crate::state::State;

pub use super::report::{CheckpointUse, CutReason, RecoveryReport, SetAside, Truncation};
pub(crate) use super::salvage::{copy_aside, copy_rest_aside, move_aside, salvage_dir};
pub use super::salvage::{set_aside_name, set_aside_origin, SALVAGE_DIR};

/// Where the writer resumes.
#[derive(Debug)]
pub struct Tail<F> {
    /// The header of every segment kept, in order.
    pub headers: Vec<SegmentHeader>,
    pub segment: u64,
    pub file: F,
    pub end: u64,
    pub next_group: u64,
    pub next_flush: u64,
}

pub struct Recovered<F> {
    pub state: State,
    /// Where the journal the index checkpoint open used covers ends.
    pub checkpoint_end: Option<crate::state::JournalEnd>,
    pub report: RecoveryReport,
    /// `None` if no segment is left (salvage set every one aside): the
    /// writer starts segment 0 afresh.
    pub tail: Option<Tail<F>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DamageKind {
    Corrupt,
    Unreadable,
}

/// The first damage found, and where the valid prefix ends because of it.
#[derive(Debug)]
struct Damage {
    kind: DamageKind,
    corruption: Corruption,
    /// The damaged segment, if it exists: (path, cut, length). The prefix
    /// keeps `..cut` of it; a cut inside the header sets it all aside.
    segment: Option<(PathBuf, u64, u64)>,
}

/// A segment recovery keeps, up to `end`.
#[derive(Debug)]
struct Kept {
    number: u64,
    path: PathBuf,
    end: u64,
}

/// What recovery found, before anything is changed.
pub struct Analysis {
    pub state: State,
    report: RecoveryReport,
    cuts: Vec<Truncation>,
    damage: Option<Damage>,
    kept: Vec<Kept>,
    /// The headers of the segments read, in order (those kept first).
    headers: Vec<SegmentHeader>,
    /// Whole segments after the damage, to set aside with it.
    later: Vec<PathBuf>,
    leftovers: Vec<PathBuf>,
    next_group: u64,
    next_flush: u64,
    /// Planted bug: cuts are made but left out of the report.
    silent_cut: bool,
    /// Where segments are read into, one after the other.
    buffer: Vec<u8>,
    /// The directory listed an index checkpoint.
    index_listed: bool,
    /// Where the journal the checkpoint used covers ends.
    checkpoint_end: Option<crate::state::JournalEnd>,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> OpenError {
    move |e| OpenError::Io(IoError::new(context, e))
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> Corruption {
    Corruption { file: path.to_owned(), offset, reason: reason.into() }
}

/// The planted recovery bugs switched on (simulator canaries only).
#[derive(Clone, Copy, Default)]
struct Planted {
    scan: ScanBugs,
    panic_on_torn_tail: bool,
    silent_cut: bool,
    /// `ReplayPastRecordedEnd`: every segment is read to its end.
    replay_past_end: bool,
}

impl From<&crate::core::Options> for Planted {
    fn from(options: &crate::core::Options) -> Self {
        let planted = options.planted();
        let replay_past_end = planted.is(canary!(ReplayPastRecordedEnd));
        Self {
            scan: ScanBugs {
                keep_uncommitted: planted.is(canary!(KeepUncommittedGroup)),
                skip_seen_groups: replay_past_end,
            },
            panic_on_torn_tail: planted.is(canary!(PanicOnTornTail)),
            silent_cut: planted.is(canary!(SilentCut)),
            replay_past_end,
        }
    }
}

/// A segment header as read.
enum HeaderRead {
    Valid(SegmentHeader),
    /// Intact, of another format version.
    Version(u32),
    Damaged(String),
    Unreadable(Unreadable),
}

fn read_header(file: &impl ReadAt, len: u64) -> HeaderRead {
    if len < SEGMENT_HEADER_LEN as u64 {
        return HeaderRead::Damaged(format!("{len} bytes, too short for a segment header"));
    }
    let bytes = match read_retrying(file, 0, SEGMENT_HEADER_LEN) {
        Ok(bytes) => bytes,
        Err(error) => return HeaderRead::Unreadable(Unreadable { offset: 0, error }),
    };
    match (header_version(&bytes), SegmentHeader::decode(&bytes)) {
        (_, Some(header)) => HeaderRead::Valid(header),
        (Some(version), None) => HeaderRead::Version(version),
        (None, _) => HeaderRead::Damaged("segment header is damaged".into()),
    }
}

/// Reads the journal in `dir` into a fresh state for `store_id` and decides
/// what recovery must change. Writes nothing. Refuses at once, with or
/// without salvage, a segment of another store or another format. Starts
/// from the index checkpoint where one matches the journal (never when
/// salvaging or asked for a full scan).
pub fn analyze<D: Disk>(
    disk: &mut D,
    dir: &Path,
    store_id: u64,
    flags: u32,
    keys: Option<crate::keys::StoreKeys>,
    options: &crate::core::Options,
) -> Result<Analysis, OpenError> {
    let files = std::sync::Arc::new(super::files::SegmentFiles::new(dir.to_owned(), disk.reads()));
    let fresh = || {
        let mut state = State::new(store_id, files.clone());
        state.set_keys(keys.clone());
        state
    };
    let names = disk.list(dir).map_err(io(format!("listing {}", dir.display())))?;
    let index_listed = names.iter().any(|n| n == super::checkpoint::INDEX_NAME);
    let mut checkpoint = CheckpointUse::None;
    if !options.salvage && !options.full_scan && index_listed {
        let loaded = match super::checkpoint::load(disk, dir, flags, fresh()) {
            Ok(loaded) => Some(loaded),
            Err(why) => {
                checkpoint = CheckpointUse::Passed(why);
                None
            }
        };
        if let Some(loaded) = loaded {
            let events = loaded.state.last_global();
            let end = loaded.end;
            match analyze_from(disk, dir, &names, store_id, loaded.state, Some((end, loaded.headers)), options)? {
                Ok(mut a) => {
                    a.report.checkpoint = CheckpointUse::Used { events };
                    a.index_listed = true;
                    a.checkpoint_end = Some(end);
                    return Ok(a);
                }
                Err(why) => checkpoint = CheckpointUse::Passed(why),
            }
        }
    }
    let Ok(mut a) = analyze_from(disk, dir, &names, store_id, fresh(), None, options)? else {
        unreachable!("only a checkpoint can be passed over")
    };
    a.report.checkpoint = checkpoint;
    a.index_listed = index_listed;
    Ok(a)
}

/// [`analyze`] from `state`: fresh, or a checkpoint's with where the
/// journal it covers ends and the segment headers it recorded. `Ok(Err)`:
/// the journal does not match the checkpoint (why).
fn analyze_from<D: Disk>(
    disk: &mut D,
    dir: &Path,
    names: &[String],
    store_id: u64,
    state: State,
    checkpoint: Option<(crate::state::JournalEnd, Vec<SegmentHeader>)>,
    options: &crate::core::Options,
) -> Result<Result<Analysis, String>, OpenError> {
    let planted = Planted::from(options);
    let numbers: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    let leftovers = names
        .iter()
        .filter(|n| n.strip_suffix(SEGMENT_TEMP_SUFFIX).and_then(parse_segment_name).is_some())
        .map(|n| dir.join(n))
        .collect();
    let mut a = Analysis {
        state,
        report: RecoveryReport::default(),
        cuts: Vec::new(),
        damage: None,
        kept: Vec::new(),
        headers: Vec::new(),
        later: Vec::new(),
        leftovers,
        next_group: 1,
        next_flush: 1,
        silent_cut: planted.silent_cut,
        buffer: Vec::new(),
        index_listed: false,
        checkpoint_end: None,
    };
    if numbers.is_empty() {
        if checkpoint.is_some() {
            return Ok(Err("the journal has no segment".into()));
        }
        let first = dir.join(segment_name(0));
        let c = corrupt(&first, 0, "the store's first segment is missing");
        a.damage = Some(Damage { kind: DamageKind::Corrupt, corruption: c, segment: None });
        return Ok(Ok(a));
    }
    if let Some((end, headers)) = &checkpoint {
        let covered = numbers.len() as u64 > end.segment && numbers[end.segment as usize] == end.segment;
        if !covered {
            return Ok(Err(format!("the journal has no segment {}", end.segment)));
        }
        a.report.groups = (end.group_id + 1).saturating_sub(headers[0].first_group_id);
        a.report.events = a.state.last_global();
    }
    let mut ahead: Option<HeaderRead> = None;
    for (i, &number) in numbers.iter().enumerate() {
        let path = dir.join(segment_name(number));
        if number != i as u64 {
            let missing = dir.join(segment_name(i as u64));
            let c = corrupt(&missing, 0, "segment missing from the sequence");
            a.damage = Some(Damage { kind: DamageKind::Corrupt, corruption: c, segment: None });
            a.later = numbers[i..].iter().map(|&n| dir.join(segment_name(n))).collect();
            break;
        }
        let context = || format!("reading {}", path.display());
        let file = disk.open_read(&path).map_err(io(context()))?;
        let len = file.len().map_err(io(context()))?;
        let read = ahead.take().unwrap_or_else(|| read_header(&file, len));
        let header = check_header(read, &path, number, store_id, options.salvage)?;
        // Inside what the checkpoint covers, every header must be the one
        // it recorded, every segment as long as its successor says, and the
        // last one must hold the commit frame that ends it.
        let resume = match &checkpoint {
            Some((end, headers)) if number <= end.segment => {
                if header.as_ref().ok() != headers.get(i) {
                    return Ok(Err(format!("segment {number}'s header is not the one it recorded")));
                }
                if number < end.segment {
                    let limit = headers[i + 1].prev_end;
                    if len < limit {
                        return Ok(Err(format!("segment {number} is shorter than its successor records")));
                    }
                    a.report.segments += 1;
                    a.headers.push(headers[i]);
                    a.kept.push(Kept { number, path, end: limit });
                    continue;
                }
                let commit_at =
                    end.end.checked_sub(end.commit.len() as u64).filter(|&at| at >= SEGMENT_HEADER_LEN as u64);
                let found =
                    commit_at.filter(|_| end.end <= len).and_then(|at| read_retrying(&file, at, end.commit.len()).ok());
                if found.as_deref() != Some(&end.commit[..]) {
                    return Ok(Err(format!("segment {number} does not hold the group it ends with")));
                }
                Some(*end)
            }
            _ => None,
        };
        let header = match header {
            Ok(header) => header,
            Err((kind, c)) => {
                a.damage = Some(Damage { kind, corruption: c, segment: Some((path, 0, len)) });
                a.later = numbers[i + 1..].iter().map(|&n| dir.join(segment_name(n))).collect();
                break;
            }
        };
        if i == 0 || resume.is_some() {
            a.next_group = header.first_group_id;
            a.next_flush = header.first_flush;
        } else if planted.replay_past_end && header.first_group_id <= a.next_group {
            // The planted bug takes any segment that repeats groups.
        } else if header.first_group_id != a.next_group || header.first_flush != a.next_flush {
            let c = corrupt(&path, 0, "segment does not continue where the previous one ended");
            a.damage = Some(Damage { kind: DamageKind::Corrupt, corruption: c, segment: Some((path, 0, len)) });
            a.later = numbers[i + 1..].iter().map(|&n| dir.join(segment_name(n))).collect();
            break;
        }
        let is_last = i + 1 == numbers.len();
        let mut limit = len;
        if let Some(&next) = numbers.get(i + 1).filter(|&&n| n == number + 1) {
            let next_path = dir.join(segment_name(next));
            let next_file = disk.open_read(&next_path).map_err(io(format!("reading {}", next_path.display())))?;
            let next_len = next_file.len().map_err(io(format!("reading {}", next_path.display())))?;
            let next_header = read_header(&next_file, next_len);
            if let (HeaderRead::Valid(h), false) = (&next_header, planted.replay_past_end) {
                limit = h.prev_end;
            }
            ahead = Some(next_header);
        }
        // One buffer serves every segment: the state keeps no byte of it.
        let mut bytes = std::mem::take(&mut a.buffer);
        bytes.clear();
        let from = match resume {
            Some(end) => {
                if limit < end.end {
                    return Ok(Err(format!("segment {number} ends before the group it ends with")));
                }
                a.next_group = end.group_id + 1;
                ScanFrom {
                    segment: number,
                    origin: end.end,
                    next_group: a.next_group,
                    next_flush: a.next_flush,
                    last: Some(end.flush),
                }
            }
            None => {
                bytes.extend_from_slice(&header.encode());
                ScanFrom { segment: number, origin: 0, next_group: a.next_group, next_flush: a.next_flush, last: None }
            }
        };
        let start = from.origin.max(SEGMENT_HEADER_LEN as u64);
        let end = limit.clamp(start, len.max(start));
        let (from, unreadable) = scan_windows(&mut a, &file, &mut bytes, from, end, options.scan_window, planted);
        drop(file);
        a.headers.push(header);
        let found = scan_one(&mut a, &bytes, unreadable, &path, from, len, limit, is_last, planted);
        a.buffer = bytes;
        if let Some(damage) = found {
            a.damage = Some(damage);
            a.later = numbers[i + 1..].iter().map(|&n| dir.join(segment_name(n))).collect();
            break;
        }
    }
    Ok(Ok(a))
}

/// Reads a segment's bytes from `from.origin` up to `end` into `bytes`
/// (which holds the encoded header when the scan starts at the segment's
/// start) a window of `window` bytes at a time, and applies the whole
/// groups of every window before the last to `a`'s state. Returns where
/// the last window starts, its bytes left in `bytes` for [`scan_one`] to
/// scan and judge as if they were the whole rest of the segment (as after
/// a checkpoint: nothing it decides looks before where it starts), and
/// whether reading stopped at an unreadable stretch.
///
/// A window holding no whole group (a group longer than the window, or
/// damage, which only the bytes up to `end` can tell from a torn tail) is
/// read again twice as long. So the memory an open holds for the journal
/// is a window, not a segment.
fn scan_windows(
    a: &mut Analysis,
    file: &impl ReadAt,
    bytes: &mut Vec<u8>,
    mut from: ScanFrom,
    end: u64,
    window: usize,
    planted: Planted,
) -> (ScanFrom, Option<Unreadable>) {
    // A window before the last that ends inside a group cut it, not the
    // disk: the planted bug `KeepUncommittedGroup` acts on the last window
    // only.
    let bugs = ScanBugs { keep_uncommitted: false, ..planted.scan };
    let mut window = window as u64;
    loop {
        let (kept, start) = (bytes.len(), from.origin.max(SEGMENT_HEADER_LEN as u64));
        let stop = end.min(start.saturating_add(window));
        let unreadable = read_range_into(file, start..stop, bytes);
        if unreadable.is_some() || stop == end {
            return (from, unreadable);
        }
        let scan = scan_segment(bytes, from, bugs, &mut a.state);
        if scan.good_end == kept {
            bytes.truncate(kept);
            window = window.saturating_mul(2);
            continue;
        }
        a.report.groups += scan.groups;
        a.report.events += scan.events;
        from = ScanFrom {
            origin: from.origin + scan.good_end as u64,
            next_group: scan.next_group,
            last: scan.last,
            ..from
        };
        bytes.clear();
    }
}

/// A header's verdict: a usable header, damage (with or without salvage
/// the prefix ends here), or a refusal (another store, another format).
type HeaderVerdict = Result<SegmentHeader, (DamageKind, Corruption)>;

fn check_header(
    read: HeaderRead,
    path: &Path,
    number: u64,
    store_id: u64,
    salvage: bool,
) -> Result<HeaderVerdict, OpenError> {
    Ok(match read {
        // Salvage sets a segment of another store aside (a stale header
        // over this store's frames, or a file copied in) with all after it.
        HeaderRead::Valid(h) if h.store_id != store_id && salvage => {
            Err((DamageKind::Corrupt, corrupt(path, 0, format!("the header names store {:016x}", h.store_id))))
        }
        HeaderRead::Valid(h) if h.store_id != store_id => {
            return Err(OpenError::Mismatch {
                path: path.to_owned(),
                reason: format!("segment {number} belongs to store {:016x}, META names {store_id:016x}", h.store_id),
            });
        }
        HeaderRead::Valid(h) if h.segment != number => {
            Err((DamageKind::Corrupt, corrupt(path, 0, format!("the header names segment {}", h.segment))))
        }
        HeaderRead::Valid(h) => Ok(h),
        HeaderRead::Version(version) => {
            return Err(OpenError::Format {
                path: path.to_owned(),
                reason: format!(
                    "journal format version {version}; this build reads version {FORMAT_VERSION} only (nothing was changed)"
                ),
            });
        }
        HeaderRead::Damaged(reason) => Err((DamageKind::Corrupt, corrupt(path, 0, reason))),
        HeaderRead::Unreadable(u) => Err((DamageKind::Unreadable, corrupt(path, 0, u.error.to_string()))),
    })
}

/// Scans one segment whose header is valid into the analysis, from its
/// `bytes` as read (from `from.origin`) (`unreadable`: where reading them stopped short): a
/// kept prefix, maybe a cut, or the damage that ends the valid prefix here.
#[expect(clippy::too_many_arguments, reason = "one call site; the parts of one segment's reading")]
fn scan_one(
    a: &mut Analysis,
    bytes: &[u8],
    unreadable: Option<Unreadable>,
    path: &Path,
    from: ScanFrom,
    len: u64,
    limit: u64,
    is_last: bool,
    planted: Planted,
) -> Option<Damage> {
    let header_len = SEGMENT_HEADER_LEN as u64;
    let scan = scan_segment(bytes, from, planted.scan, &mut a.state);
    a.report.segments += 1;
    a.report.groups += scan.groups;
    a.report.events += scan.events;
    a.next_group = scan.next_group;
    // The damaged group's own begin record, if it survived, and the flush
    // the writer resumes with: always a new one, even if the last flush
    // lost groups to a torn tail.
    let own_begin = begin_at(&bytes[scan.good_end..]).filter(|b| b.group_id == scan.next_group);
    a.next_flush = scan.last.map_or(a.next_flush, |l| l.flush + 1);
    let good_end = from.origin + scan.good_end as u64;
    let damage = |kind, offset: u64, reason: String| {
        Some(Damage {
            kind,
            corruption: corrupt(path, offset, reason),
            segment: Some((path.to_owned(), good_end, len)),
        })
    };
    let kept = Kept { number: from.segment, path: path.to_owned(), end: good_end };
    if let Some(u) = unreadable {
        a.kept.push(kept);
        let why = if u.error.kind() == std::io::ErrorKind::UnexpectedEof {
            format!("the file ends at {len}, before byte {limit} its successor records")
        } else {
            u.error.to_string()
        };
        return damage(DamageKind::Unreadable, u.offset, why);
    }
    if limit < header_len || limit > len {
        a.kept.push(kept);
        return damage(DamageKind::Corrupt, good_end, format!("segment ends at {len}, its successor records {limit}"));
    }
    if let Some(problem) = &scan.problem {
        if !is_last || problem.other_history || later_flush_after(bytes, &scan, own_begin.is_some()) {
            a.kept.push(kept);
            return damage(DamageKind::Corrupt, from.origin + problem.offset as u64, problem.reason.clone());
        }
        if planted.panic_on_torn_tail {
            panic!("planted bug: a torn tail in {}", path.display());
        }
        a.cuts.push(Truncation {
            file: path.to_owned(),
            offset: good_end,
            len: len - good_end,
            reason: CutReason::TornTail,
        });
    } else if limit < len {
        a.cuts.push(Truncation {
            file: path.to_owned(),
            offset: limit,
            len: len - limit,
            reason: CutReason::PastRecordedEnd,
        });
    }
    a.kept.push(kept);
    None
}

/// True if a valid begin record of a flush that began after the damaged
/// group (its first group, `group_id - flush_index`, comes later) lies at
/// or past the damaged group's start: the writer starts a flush only after
/// the one before it synced, so that is proof the damaged bytes had been
/// synced. The damaged group's own begin record (`own_begin`: the group
/// that was due) proves nothing about its own flush and is skipped; so is
/// a later group of the flush the damaged group itself began (after a cut
/// mid-flush the writer resumes with a new flush, whose first group may be
/// the one torn). Flush numbers are not compared: the groups before the
/// damage may be an older history's (a stale frame at a reused position,
/// chained to the same commit), whose flush ended elsewhere.
fn later_flush_after(bytes: &[u8], scan: &ScanOutcome, own_begin: bool) -> bool {
    let from = scan.good_end + usize::from(own_begin);
    let later = |b: &Begin| b.group_id.saturating_sub(u64::from(b.flush_index)) > scan.next_group;
    (from..bytes.len()).any(|at| begin_at(&bytes[at..]).is_some_and(|b| later(&b)))
}

impl Analysis {
    /// Records that the checkpoint was passed over (why), after the fact:
    /// the analysis was made again by a full scan. Apply then removes it.
    pub fn pass_over_checkpoint(&mut self, why: &str) {
        self.report.checkpoint = CheckpointUse::Passed(why.into());
        self.index_listed = true;
    }

    /// Whether the analysis started from the index checkpoint.
    pub fn used_checkpoint(&self) -> bool {
        matches!(self.report.checkpoint, CheckpointUse::Used { .. })
    }

    /// The typed error an open without salvage gives for what was found;
    /// `None` if the journal is whole (torn tails aside).
    pub fn refusal(&self) -> Option<OpenError> {
        let damage = self.damage.as_ref()?;
        Some(match damage.kind {
            DamageKind::Unreadable => OpenError::Unreadable {
                file: damage.corruption.file.clone(),
                offset: damage.corruption.offset,
                reason: damage.corruption.reason.clone(),
            },
            DamageKind::Corrupt => OpenError::Corrupt(damage.corruption.clone()),
        })
    }

    /// Carries out what the analysis decided: cuts torn tails, and with
    /// `salvage` sets the damaged rest aside (never deleting, never
    /// overwriting an earlier salvage). Opens the last kept segment for the
    /// writer.
    pub fn apply<D: Disk>(mut self, disk: &mut D, dir: &Path, salvage: bool) -> Result<Recovered<D::File>, OpenError> {
        if let Some(refusal) = self.refusal().filter(|_| !salvage) {
            return Err(refusal);
        }
        // A checkpoint that does not match the journal, or that may cover
        // bytes about to be cut or set aside, goes first, durably: the
        // journal is about to change under it, and if a cut were undone (a
        // lying disk) its old bytes would match it again under new ones.
        let changes = !self.cuts.is_empty() || self.damage.is_some();
        let stale = match &self.report.checkpoint {
            CheckpointUse::Used { .. } => false,
            CheckpointUse::Passed(_) => true,
            CheckpointUse::None => changes,
        };
        if stale && self.index_listed {
            super::checkpoint::remove(disk, dir).map_err(OpenError::Io)?;
        }
        // The salvage directory first: a failure to make it must come
        // before any cut, or the cut would be in no report.
        let aside = match self.damage.is_some() {
            true => Some(salvage_dir(disk, dir)?),
            false => None,
        };
        let mut synced = Vec::new();
        for cut in std::mem::take(&mut self.cuts) {
            synced.push(cut.file.clone());
            let context = format!("truncating {} to {} bytes", cut.file.display(), cut.offset);
            let mut file = disk.open(&cut.file).map_err(io(context.clone()))?;
            truncate(disk, &mut file, &cut.file, cut.offset)?;
            if !self.silent_cut {
                self.report.truncated.push(cut);
            }
        }
        if let (Some(damage), Some(aside)) = (self.damage.take(), aside) {
            match damage.segment {
                Some((path, cut, len)) if cut >= SEGMENT_HEADER_LEN as u64 => {
                    copy_rest_aside(disk, &aside, &path, cut, len, &mut self.report)?;
                }
                Some((path, _, _)) => {
                    self.kept.retain(|k| k.path != path);
                    move_aside(disk, dir, &aside, &path, &mut self.report)?;
                }
                None => {}
            }
            for path in std::mem::take(&mut self.later) {
                move_aside(disk, dir, &aside, &path, &mut self.report)?;
            }
            self.report.corruption = Some(damage.corruption);
        } else if !self.leftovers.is_empty() && !salvage {
            for path in std::mem::take(&mut self.leftovers) {
                disk.remove(&path).map_err(io(format!("removing {}", path.display())))?;
                self.report.removed.push(path);
            }
            disk.sync_dir(dir).map_err(io(format!("syncing {}", dir.display())))?;
        }
        let mut headers = std::mem::take(&mut self.headers);
        headers.truncate(self.kept.len());
        let tail = match self.kept.pop() {
            None => None,
            Some(kept) => {
                let mut file = disk.open(&kept.path).map_err(io(format!("opening {}", kept.path.display())))?;
                // What this open read of the segment the writer appends to
                // is made durable before anything is added to it: an
                // earlier session may have left it visible and not durable
                // (cut back after a failed fsync, then closed), and a power
                // loss must not bring back bytes this open reported gone.
                if !synced.contains(&kept.path) {
                    disk.sync(&mut file).map_err(io(format!("syncing {}", kept.path.display())))?;
                }
                Some(Tail {
                    headers,
                    segment: kept.number,
                    file,
                    end: kept.end,
                    next_group: self.next_group,
                    next_flush: self.next_flush,
                })
            }
        };
        Ok(Recovered { state: self.state, checkpoint_end: self.checkpoint_end, report: self.report, tail })
    }
}

pub(super) fn truncate<D: Disk>(disk: &mut D, file: &mut D::File, path: &Path, len: u64) -> Result<(), OpenError> {
    let context = format!("truncating {} to {len} bytes", path.display());
    disk.set_len(file, len).map_err(io(context.clone()))?;
    disk.sync(file).map_err(io(context))
}
