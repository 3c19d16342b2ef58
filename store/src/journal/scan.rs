//! Scanning one segment's bytes into committed groups.
//!
//! A group is `begin [idempotency] key* event* [shred] commit`; a shred
//! record comes only in a group of zero events. The scanner applies each
//! whole, checked group to the state and stops at the first frame that is
//! not valid or does not fit the journal's invariants, reporting where and
//! why. It never panics, whatever the bytes.

use std::ops::Range;

use super::record::{
    chain_after, decode_body, frame_crc, read_frame, Begin, EventRecord, GenerationRecord, IdempotencyRecord,
    KeyRecord, Record,
};
use crate::limits::{FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::state::{FrameLoc, IdempotencyEntry, JournalEnd, State};

/// Where a group sits in its flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushPos {
    pub flush: u64,
    pub index: u32,
    pub count: u32,
}

impl FlushPos {
    /// The flush the next group belonged to when this one was written.
    pub fn next_flush(&self) -> u64 {
        if self.index + 1 < self.count {
            self.flush
        } else {
            self.flush + 1
        }
    }
}

/// Where a scan stopped short, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub offset: usize,
    pub reason: String,
    /// A whole, valid begin record of the group due, that records another
    /// commit before it: bytes of another history at a position used
    /// twice. A crash tears and drops writes, but only a disk that loses
    /// or misplaces written bytes leaves one, so it is never a torn tail.
    pub other_history: bool,
}

#[derive(Debug)]
pub struct ScanOutcome {
    /// End of the last whole committed group (or where the scan started),
    /// as an index into the bytes scanned.
    pub good_end: usize,
    pub next_group: u64,
    pub last: Option<FlushPos>,
    pub groups: u64,
    pub events: u64,
    pub problem: Option<Problem>,
}

/// Which begin records may come next.
#[derive(Clone, Copy)]
struct FlushDue {
    /// (flush, index, count) of the next group of an unfinished flush.
    continuing: Option<(u64, u32, u32)>,
    /// The number of the next new flush (its first group has index 0).
    new_flush: u64,
    /// The planted bug `ReplayPastRecordedEnd`: any flush will do, and a
    /// group need not follow the one before it.
    any: bool,
}

impl FlushDue {
    fn admits(&self, begin: &Begin) -> bool {
        let continues = self.continuing == Some((begin.flush, begin.flush_index, begin.flush_count));
        let starts = begin.flush == self.new_flush && begin.flush_index == 0 && begin.flush_count >= 1;
        continues || starts || self.any
    }
}

/// Planted scanner bugs (simulator canaries only).
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanBugs {
    /// `KeepUncommittedGroup`: a group with no commit record is applied.
    pub keep_uncommitted: bool,
    /// `ReplayPastRecordedEnd`: a group whose id was already applied is
    /// skipped as a duplicate, and any flush number (and any link to the
    /// commit before) is taken.
    pub skip_seen_groups: bool,
}

struct ParsedGroup<'a> {
    begin: Begin,
    idempotency: Option<IdempotencyRecord<'a>>,
    keys: Vec<KeyRecord<'a>>,
    shred: Option<GenerationRecord<'a>>,
    lost: Vec<GenerationRecord<'a>>,
    events: Vec<(EventRecord<'a>, FrameLoc)>,
    /// Where its commit frame starts.
    commit_at: usize,
    end: usize,
}

/// Where a scan starts: the bytes of segment `segment` from byte `origin`
/// of the file, the group and flush due first, and where the group before
/// sits in its flush (`None` at a segment's start: a new flush is due).
#[derive(Clone, Copy, Debug)]
pub struct ScanFrom {
    pub segment: u64,
    pub origin: u64,
    pub next_group: u64,
    pub next_flush: u64,
    pub last: Option<FlushPos>,
}

/// Scans `bytes`, the bytes of a segment from `from.origin` (a segment's
/// start, header included, or the end of a group a checkpoint covers),
/// applying whole groups to `state`.
pub fn scan_segment(bytes: &[u8], from: ScanFrom, bugs: ScanBugs, state: &mut State) -> ScanOutcome {
    let limit = bytes.len();
    let start = if from.origin == 0 { SEGMENT_HEADER_LEN } else { 0 };
    assert!(limit >= start);
    let (segment, origin) = (from.segment, from.origin);
    let mut outcome = ScanOutcome {
        good_end: start,
        next_group: from.next_group,
        last: from.last,
        groups: 0,
        events: 0,
        problem: None,
    };
    let first_flush = from.next_flush;
    while outcome.good_end < limit {
        // The next group continues the last one's flush, or starts the next
        // flush. A flush may end early: recovery cut its torn tail and the
        // writer resumed with a new flush.
        let any = bugs.skip_seen_groups;
        let due = match outcome.last {
            None => FlushDue { continuing: None, new_flush: first_flush, any },
            Some(l) if l.index + 1 < l.count => {
                FlushDue { continuing: Some((l.flush, l.index + 1, l.count)), new_flush: l.flush + 1, any }
            }
            Some(l) => FlushDue { continuing: None, new_flush: l.flush + 1, any },
        };
        if bugs.skip_seen_groups {
            if let Some(end) = seen_group_end(bytes, outcome.good_end, outcome.next_group) {
                outcome.good_end = end;
                continue;
            }
        }
        match parse_group(bytes, (segment, origin), outcome.good_end, outcome.next_group, due, state) {
            Ok(group) => {
                if let Err(reason) = apply_group(&group, state) {
                    outcome.problem = Some(problem(outcome.good_end, reason));
                    break;
                }
                let flush = FlushPos {
                    flush: group.begin.flush,
                    index: group.begin.flush_index,
                    count: group.begin.flush_count,
                };
                let Ok(commit) = bytes[group.commit_at..group.end].try_into() else {
                    unreachable!("a commit frame has a fixed length")
                };
                state.set_journal_end(JournalEnd {
                    segment,
                    end: origin + group.end as u64,
                    group_id: group.begin.group_id,
                    flush,
                    commit,
                });
                outcome.good_end = group.end;
                outcome.next_group += 1;
                outcome.groups += 1;
                outcome.events += group.events.len() as u64;
                outcome.last = Some(flush);
            }
            Err(problem) => {
                if bugs.keep_uncommitted {
                    if let Some(end) = keep_partial_group(bytes, (segment, origin), outcome.good_end, state) {
                        outcome.good_end = end;
                    }
                }
                outcome.problem = Some(problem);
                break;
            }
        }
    }
    outcome
}

/// Applies a whole group, or nothing of it if an event does not follow on.
fn apply_group(group: &ParsedGroup<'_>, state: &mut State) -> Result<(), String> {
    if state.keys().is_none() && (!group.keys.is_empty() || group.shred.is_some() || !group.lost.is_empty()) {
        return Err("key records in a plaintext store".into());
    }
    apply_events(&group.events, state, group.begin.epoch)?;
    if let Some(keys) = state.keys_mut() {
        for key in &group.keys {
            let Some(wrapped) = key.wrapped() else { unreachable!("decode checks the length") };
            keys.read_record(key.entity, key.generation, key.wrap_generation, wrapped);
        }
        if let Some(shred) = &group.shred {
            keys.read_shred(shred.entity, shred.generation);
        }
        for lost in &group.lost {
            keys.read_lost(lost.entity, lost.generation);
        }
    }
    if let Some(idem) = &group.idempotency {
        state.record_idempotency(
            idem.key,
            IdempotencyEntry {
                fingerprint: idem.fingerprint,
                first_global: group.begin.first_global,
                count: group.begin.event_count,
            },
        );
    }
    Ok(())
}

fn apply_events(events: &[(EventRecord<'_>, FrameLoc)], state: &mut State, epoch: u32) -> Result<(), String> {
    // Each entity's head before each event, to undo the group by.
    let mut heads = Vec::with_capacity(events.len());
    for (record, loc) in events {
        let head = state.version_and_head(record.entity).1;
        if let Err(reason) = state.try_apply(record, *loc, epoch) {
            for head in heads.into_iter().rev() {
                state.undo_last(head);
            }
            return Err(reason);
        }
        heads.push(head);
    }
    Ok(())
}

/// The planted bug `ReplayPastRecordedEnd`: where a whole group with an id
/// below `next_group` starts at `start`, the end of its commit record.
fn seen_group_end(bytes: &[u8], start: usize, next_group: u64) -> Option<usize> {
    let (_, Record::Begin(begin), body) = next_record(bytes, start).ok()? else { return None };
    if begin.group_id >= next_group {
        return None;
    }
    let mut at = body.end;
    loop {
        let (_, record, body) = next_record(bytes, at).ok()?;
        if let Record::Commit(_) = record {
            return Some(body.end);
        }
        at = body.end;
    }
}

/// The planted bug `KeepUncommittedGroup`: apply whatever whole event
/// frames follow a begin record, commit record or not, and keep them.
/// The bytes it applied are kept as valid (the end of its last frame).
fn keep_partial_group(bytes: &[u8], at_file: (u64, u64), start: usize, state: &mut State) -> Option<usize> {
    let Ok((_, Record::Begin(begin), body)) = next_record(bytes, start) else { return None };
    let mut at = body.end;
    let mut events = Vec::new();
    while let Ok((header, record, body)) = next_record(bytes, at) {
        match record {
            Record::Event(event) => events.push((event, frame_loc(at_file, at, &header, &body))),
            Record::Idempotency(_) | Record::Key(_) => {}
            _ => break,
        }
        at = body.end;
    }
    let kept = events.last().map(|(_, loc)| (loc.offset + u64::from(loc.len) - at_file.1) as usize);
    apply_events(&events, state, begin.epoch).ok().and(kept)
}

/// Where the frame at `at` of bytes that start at `origin` of `segment`
/// (`at_file`), with `header` and `body`, lies.
fn frame_loc(at_file: (u64, u64), at: usize, header: &[u8; FRAME_HEADER_LEN], body: &Range<usize>) -> FrameLoc {
    let (segment, origin) = at_file;
    let crc = frame_crc(header);
    FrameLoc { segment, offset: origin + at as u64, len: (body.end - at) as u32, crc }
}

fn problem(offset: usize, reason: impl Into<String>) -> Problem {
    Problem { offset, reason: reason.into(), other_history: false }
}

/// Reads one frame at `at`: its header, decoded record and end offset.
fn next_record(bytes: &[u8], at: usize) -> Result<([u8; FRAME_HEADER_LEN], Record<'_>, Range<usize>), Problem> {
    let (header, body) = read_frame(&bytes[at..]).map_err(|e| problem(at, e.describe()))?;
    let record = decode_body(body).map_err(|e| problem(at, e.describe()))?;
    let body_start = at + FRAME_HEADER_LEN;
    Ok((header, record, body_start..body_start + body.len()))
}

fn parse_group<'a>(
    bytes: &'a [u8],
    at_file: (u64, u64),
    start: usize,
    group_id: u64,
    due: FlushDue,
    state: &State,
) -> Result<ParsedGroup<'a>, Problem> {
    let (header, record, body) = next_record(bytes, start)?;
    let Record::Begin(begin) = record else {
        return Err(problem(start, "expected a begin record"));
    };
    if begin.group_id != group_id || !due.admits(&begin) {
        return Err(problem(
            start,
            format!(
                "begin of group {} flush {} ({} of {}) where group {group_id} of flush {:?} or {} was due",
                begin.group_id, begin.flush, begin.flush_index, begin.flush_count, due.continuing, due.new_flush
            ),
        ));
    }
    if begin.first_global != state.last_global() + 1 {
        return Err(problem(start, format!("group starts at global {} out of order", begin.first_global)));
    }
    let follows = state.journal_end().map_or(0, |end| chain_after(&end.commit));
    if begin.follows != follows && !due.any {
        // Another history's group at this position (bytes written here
        // before a cut, handed back by the disk), or the journal's own
        // group after another history's in place of the one before it.
        return Err(Problem {
            offset: start,
            reason: format!(
                "group {group_id} follows commit {:08x}, not the one before it ({follows:08x})",
                begin.follows
            ),
            other_history: true,
        });
    }
    let mut group_crc = crc32c::crc32c(&header);
    let mut at = body.end;
    let mut group = ParsedGroup {
        begin,
        idempotency: None,
        keys: Vec::new(),
        shred: None,
        lost: Vec::new(),
        events: Vec::new(),
        commit_at: 0,
        end: 0,
    };
    loop {
        let (header, record, body) = next_record(bytes, at)?;
        match record {
            Record::Idempotency(idem)
                if group.events.is_empty() && group.keys.is_empty() && group.idempotency.is_none() =>
            {
                group.idempotency = Some(idem);
            }
            Record::Key(key) if group.events.is_empty() && group.shred.is_none() && group.lost.is_empty() => {
                group.keys.push(key);
            }
            Record::Shred(shred) if begin.event_count == 0 && group.shred.is_none() && group.lost.is_empty() => {
                group.shred = Some(shred);
            }
            Record::Lost(lost)
                if begin.event_count == 0
                    && group.keys.is_empty()
                    && group.shred.is_none()
                    && group.idempotency.is_none() =>
            {
                group.lost.push(lost);
            }
            Record::Event(event) if group.events.len() < begin.event_count as usize => {
                group.events.push((event, frame_loc(at_file, at, &header, &body)));
            }
            Record::Commit(commit) => {
                if commit.group_id != group_id
                    || commit.event_count != begin.event_count
                    || group.events.len() != begin.event_count as usize
                {
                    return Err(problem(at, "commit record does not match its group"));
                }
                if commit.group_crc != group_crc {
                    return Err(problem(at, "group checksum mismatch"));
                }
                if let Some(idem) = &group.idempotency {
                    if state.idempotency(idem.key).is_some() {
                        return Err(problem(start, format!("idempotency key {:?} committed twice", idem.key)));
                    }
                }
                group.commit_at = at;
                group.end = body.end;
                return Ok(group);
            }
            _ => return Err(problem(at, "record out of place in its group")),
        }
        group_crc = crc32c::crc32c_append(group_crc, &header);
        at = body.end;
    }
}
