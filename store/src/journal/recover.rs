//! Recovery on open: read every segment through the disk, keep whole
//! committed groups, truncate a torn tail, refuse (or, in salvage mode, set
//! aside) corruption that has valid data after it.
//!
//! Telling a torn tail from corruption: the writer issues one write and one
//! fsync per flush and starts the next flush in a segment only after the
//! previous one's fsync succeeded (after a failed write or fsync it moves to
//! a new segment). So if a bad frame lies in flush F of the last segment, a
//! valid begin record of any flush after F proves that F was synced: the
//! damage is to acknowledged data, and recovery refuses to hide it. A bad
//! frame with nothing of a later flush after it is a tail that never became
//! durable, and is cut off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::begin_at;
use super::scan::{scan_segment, ScanOutcome};
use super::segment::{parse_segment_name, segment_name, SegmentHeader};
use crate::disk::{read_exact_at, Disk};
use crate::error::{Corruption, IoError, OpenError};
use crate::limits::SEGMENT_HEADER_LEN;
use crate::state::State;

pub const SALVAGE_DIR: &str = "salvage";

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: u64,
    pub groups: u64,
    pub events: u64,
    /// Torn or uncommitted tails cut off: (file, offset, bytes removed).
    pub truncated: Vec<(PathBuf, u64, u64)>,
    /// Segments whose creation never completed, removed.
    pub removed: Vec<PathBuf>,
    /// Salvage only: what was moved aside (from, to, bytes).
    pub set_aside: Vec<(PathBuf, PathBuf, u64)>,
    /// Salvage only: the corruption that was set aside.
    pub corruption: Option<Corruption>,
}

impl RecoveryReport {
    /// True if recovery had to drop or move anything.
    pub fn lost_anything(&self) -> bool {
        !self.truncated.is_empty() || !self.set_aside.is_empty()
    }
}

/// Where the writer resumes.
#[derive(Debug)]
pub struct Tail<F> {
    pub segment: u64,
    pub file: F,
    pub end: u64,
    pub next_group: u64,
    pub next_flush: u64,
}

pub struct Recovered<F> {
    pub state: State,
    pub report: RecoveryReport,
    /// `None` if the directory holds no segment yet.
    pub tail: Option<Tail<F>>,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> OpenError {
    move |e| OpenError::Io(IoError::new(context, e))
}

struct Loaded<F> {
    number: u64,
    path: PathBuf,
    file: F,
    bytes: Arc<Vec<u8>>,
    header: Option<SegmentHeader>,
}

fn load<D: Disk>(disk: &mut D, dir: &Path, number: u64) -> Result<Loaded<D::File>, OpenError> {
    let path = dir.join(segment_name(number));
    let context = format!("reading {}", path.display());
    let mut file = disk.open(&path).map_err(io(context.clone()))?;
    let len = disk.len(&mut file).map_err(io(context.clone()))?;
    let len = usize::try_from(len).map_err(|_| io(context.clone())(std::io::ErrorKind::FileTooLarge.into()))?;
    let mut bytes = vec![0u8; len];
    read_exact_at(disk, &mut file, 0, &mut bytes).map_err(io(context))?;
    let header = SegmentHeader::decode(&bytes);
    Ok(Loaded { number, path, file, bytes: Arc::new(bytes), header })
}

fn corrupt(path: &Path, offset: usize, reason: impl Into<String>) -> Corruption {
    Corruption { file: path.to_owned(), offset: offset as u64, reason: reason.into() }
}

/// Recovers the journal in `dir` into a fresh state for `store_id`.
pub fn recover<D: Disk>(
    disk: &mut D,
    dir: &Path,
    store_id: u64,
    options: &crate::core::Options,
) -> Result<Recovered<D::File>, OpenError> {
    let salvage = options.salvage;
    #[cfg(feature = "canaries")]
    let keep_uncommitted = options.planted(crate::canary::Canary::KeepUncommittedGroup);
    #[cfg(not(feature = "canaries"))]
    let keep_uncommitted = false;
    let names = disk.list(dir).map_err(io(format!("listing {}", dir.display())))?;
    let numbers: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    let mut state = State::new(store_id);
    let mut report = RecoveryReport::default();
    let mut segments = Vec::with_capacity(numbers.len());
    for &number in &numbers {
        segments.push(load(disk, dir, number)?);
    }
    if let Some(gap) = segments.windows(2).position(|pair| pair[1].number != pair[0].number + 1) {
        let missing = dir.join(segment_name(segments[gap].number + 1));
        let c = corrupt(&missing, 0, "segment missing from the sequence");
        if !salvage {
            return Err(c.into());
        }
        // Everything after the gap is set aside; recovery goes on with the
        // segments before it (this also completes a salvage that an I/O
        // error interrupted half way).
        let after: Vec<Loaded<D::File>> = segments.split_off(gap + 1);
        let aside = salvage_dir(disk, dir)?;
        for seg in after {
            move_aside(disk, dir, &aside, &seg.path, &mut report)?;
        }
        report.corruption = Some(c);
    }
    // A last segment too short to hold its header was being created when the
    // store stopped; nothing was ever committed into it.
    if let Some(last) = segments.last() {
        if last.header.is_none() && last.bytes.len() <= SEGMENT_HEADER_LEN {
            remove_incomplete(disk, dir, &last.path)?;
            report.removed.push(last.path.clone());
            segments.pop();
        }
    }
    let mut tail: Option<Tail<D::File>> = None;
    let mut next_group = 1;
    let mut next_flush = 1;
    let count = segments.len();
    let mut iter = segments.into_iter().enumerate().peekable();
    while let Some((i, seg)) = iter.next() {
        let next_header = iter.peek().and_then(|(_, s)| s.header);
        let Some(header) = seg.header.filter(|h| h.segment == seg.number && h.store_id == store_id) else {
            let c = corrupt(&seg.path, 0, "segment header is damaged or belongs to another store");
            return finish_salvage(disk, dir, salvage, c, tail, iter.map(|(_, s)| s.path), Some(seg), state, report);
        };
        if i == 0 {
            next_group = header.first_group_id;
            next_flush = header.first_flush;
        } else if header.first_group_id != next_group || header.first_flush != next_flush {
            let c = corrupt(&seg.path, 0, "segment does not continue where the previous one ended");
            return finish_salvage(disk, dir, salvage, c, tail, iter.map(|(_, s)| s.path), Some(seg), state, report);
        }
        let is_last = i + 1 == count;
        let limit = match (is_last, next_header) {
            (false, Some(h)) => usize::try_from(h.prev_end).unwrap_or(usize::MAX),
            _ => seg.bytes.len(),
        };
        if limit > seg.bytes.len() || limit < SEGMENT_HEADER_LEN {
            let c =
                corrupt(&seg.path, seg.bytes.len(), format!("segment ends before byte {limit} its successor records"));
            return finish_salvage(disk, dir, salvage, c, tail, iter.map(|(_, s)| s.path), Some(seg), state, report);
        }
        let scan = scan_segment(&seg.bytes, limit, next_group, next_flush, keep_uncommitted, &mut state);
        report.segments += 1;
        report.groups += scan.groups;
        report.events += scan.events;
        next_group = scan.next_group;
        // The flush the first damaged byte (if any) belongs to, and the
        // flush the writer resumes with: always a new one, even if the last
        // flush lost groups to a torn tail.
        let torn_flush = scan.last.map_or(next_flush, |l| l.next_flush());
        next_flush = scan.last.map_or(next_flush, |l| l.flush + 1);
        if let Some(problem) = &scan.problem {
            let damaged = !is_last || later_flush_after(&seg.bytes, &scan, torn_flush);
            if damaged {
                let c = corrupt(&seg.path, problem.offset, problem.reason.clone());
                let here =
                    Tail { segment: seg.number, file: seg.file, end: scan.good_end as u64, next_group, next_flush };
                return finish_salvage_cut(
                    disk,
                    dir,
                    salvage,
                    c,
                    here,
                    &seg.path,
                    iter.map(|(_, s)| s.path),
                    state,
                    report,
                );
            }
        }
        let mut file = seg.file;
        if scan.good_end < seg.bytes.len() {
            // A torn or uncommitted tail, or bytes past the end the next
            // segment records (from a flush that failed): cut them off.
            #[cfg(feature = "canaries")]
            if is_last && options.planted(crate::canary::Canary::PanicOnTornTail) {
                panic!("planted bug: a torn tail in {}", seg.path.display());
            }
            truncate(disk, &mut file, &seg.path, scan.good_end as u64)?;
            if is_last {
                report.truncated.push((
                    seg.path.clone(),
                    scan.good_end as u64,
                    (seg.bytes.len() - scan.good_end) as u64,
                ));
            }
        }
        tail = Some(Tail { segment: seg.number, file, end: scan.good_end as u64, next_group, next_flush });
    }
    Ok(Recovered { state, report, tail })
}

/// True if a valid begin record of a flush later than `torn_flush` lies past
/// the scan's problem: proof that the damaged bytes had been synced.
fn later_flush_after(bytes: &[u8], scan: &ScanOutcome, torn_flush: u64) -> bool {
    (scan.good_end..bytes.len()).any(|at| begin_at(&bytes[at..]).is_some_and(|b| b.flush > torn_flush))
}

fn truncate<D: Disk>(disk: &mut D, file: &mut D::File, path: &Path, len: u64) -> Result<(), OpenError> {
    let context = format!("truncating {} to {len} bytes", path.display());
    disk.set_len(file, len).map_err(io(context.clone()))?;
    disk.sync(file).map_err(io(context))
}

fn remove_incomplete<D: Disk>(disk: &mut D, dir: &Path, path: &Path) -> Result<(), OpenError> {
    let context = format!("removing incomplete segment {}", path.display());
    disk.remove(path).map_err(io(context.clone()))?;
    disk.sync_dir(dir).map_err(io(context))
}

/// Corruption of a whole segment (its header or its place in the
/// sequence): refuse, or set it and every later segment aside.
#[expect(clippy::too_many_arguments, reason = "one call site each; a struct would only rename them")]
fn finish_salvage<D: Disk>(
    disk: &mut D,
    dir: &Path,
    salvage: bool,
    corruption: Corruption,
    tail: Option<Tail<D::File>>,
    later: impl Iterator<Item = PathBuf>,
    damaged: Option<Loaded<D::File>>,
    state: State,
    mut report: RecoveryReport,
) -> Result<Recovered<D::File>, OpenError> {
    if !salvage {
        return Err(corruption.into());
    }
    let aside = salvage_dir(disk, dir)?;
    for path in damaged.map(|d| d.path).into_iter().chain(later) {
        move_aside(disk, dir, &aside, &path, &mut report)?;
    }
    report.corruption = Some(corruption);
    Ok(Recovered { state, report, tail })
}

/// Corruption inside a segment: refuse, or copy the bytes from the cut on
/// aside, truncate there, and set every later segment aside.
#[expect(clippy::too_many_arguments, reason = "one call site each; a struct would only rename them")]
fn finish_salvage_cut<D: Disk>(
    disk: &mut D,
    dir: &Path,
    salvage: bool,
    corruption: Corruption,
    mut tail: Tail<D::File>,
    path: &Path,
    later: impl Iterator<Item = PathBuf>,
    state: State,
    mut report: RecoveryReport,
) -> Result<Recovered<D::File>, OpenError> {
    if !salvage {
        return Err(corruption.into());
    }
    let aside = salvage_dir(disk, dir)?;
    let len = disk.len(&mut tail.file).map_err(io(format!("reading {}", path.display())))?;
    let mut rest = vec![0u8; usize::try_from(len.saturating_sub(tail.end)).unwrap_or(0)];
    read_exact_at(disk, &mut tail.file, tail.end, &mut rest).map_err(io(format!("reading {}", path.display())))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let target = unused_name(disk, &aside, &format!("{name}.from-{}", tail.end))?;
    let context = format!("setting {} aside", target.display());
    let mut copy = disk.create(&target).map_err(io(context.clone()))?;
    disk.write_at(&mut copy, 0, &rest).map_err(io(context.clone()))?;
    disk.sync(&mut copy).map_err(io(context.clone()))?;
    disk.sync_dir(&aside).map_err(io(context))?;
    report.set_aside.push((path.to_owned(), target, rest.len() as u64));
    truncate(disk, &mut tail.file, path, tail.end)?;
    for later_path in later {
        move_aside(disk, dir, &aside, &later_path, &mut report)?;
    }
    report.corruption = Some(corruption);
    Ok(Recovered { state, report, tail: Some(tail) })
}

/// The directory salvage moves things into, created if needed.
fn salvage_dir<D: Disk>(disk: &mut D, dir: &Path) -> Result<PathBuf, OpenError> {
    let aside = dir.join(SALVAGE_DIR);
    disk.create_dir_all(&aside).map_err(io(format!("creating {}", aside.display())))?;
    Ok(aside)
}

/// A name in `aside` that no earlier salvage has used: set-aside data is
/// never overwritten.
fn unused_name<D: Disk>(disk: &mut D, aside: &Path, name: &str) -> Result<PathBuf, OpenError> {
    for n in 0u32.. {
        let candidate = if n == 0 { aside.join(name) } else { aside.join(format!("{name}.{n}")) };
        if !disk.exists(&candidate).map_err(io(format!("looking in {}", aside.display())))? {
            return Ok(candidate);
        }
    }
    unreachable!("some name is free")
}

fn move_aside<D: Disk>(
    disk: &mut D,
    dir: &Path,
    aside: &Path,
    path: &Path,
    report: &mut RecoveryReport,
) -> Result<(), OpenError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let target = unused_name(disk, aside, &name)?;
    let context = format!("setting {} aside", path.display());
    let mut file = disk.open(path).map_err(io(context.clone()))?;
    let len = disk.len(&mut file).map_err(io(context.clone()))?;
    drop(file);
    disk.rename(path, &target).map_err(io(context.clone()))?;
    disk.sync_dir(aside).map_err(io(context.clone()))?;
    disk.sync_dir(dir).map_err(io(context))?;
    report.set_aside.push((path.to_owned(), target, len));
    Ok(())
}
