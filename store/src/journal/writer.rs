//! Appending flushes to the journal, and the rule for failed I/O.
//!
//! One flush is one `write_at` of every frame of every group in it, then
//! one `sync`. If either fails, the bytes past the last synced flush are in
//! doubt: Linux may have dropped the dirty pages and marked them clean, so a
//! later fsync would "succeed" without them. The writer therefore never
//! writes behind them. It starts a new segment whose header records where
//! the old one's durable bytes end, syncs it and its directory, and carries
//! on there; recovery reads the old segment only up to that point. Until the
//! new segment is durable every commit fails as `Unavailable`.
//!
//! A segment is started under a temporary name: create, write the header,
//! fsync, rename into place, fsync the directory. A segment file with its
//! real name therefore always had a durable header, and recovery can call
//! any shorter or headerless one damage.

use std::path::{Path, PathBuf};

use super::segment::{segment_name, SegmentHeader, SEGMENT_TEMP_SUFFIX};

use crate::disk::Disk;
use crate::error::IoError;
use crate::limits::{SEGMENTS_MAX, SEGMENT_HEADER_LEN};

pub struct JournalWriter<D: Disk> {
    dir: PathBuf,
    store_id: u64,
    segment_size: u64,
    segment: u64,
    file: Option<D::File>,
    /// End of the durable, committed bytes of the current segment.
    end: u64,
    /// Bytes past `end` may be in doubt, or the current segment was never
    /// made durable: start a new segment before writing.
    broken: bool,
    pub next_group: u64,
    pub next_flush: u64,
    /// The epoch written in every begin record: the writer session's, and
    /// a fresh one after each flush whose outcome is unknown.
    pub epoch: u32,
    /// A flush failed since the last [`JournalWriter::take_failed_flush`].
    failed_flush: bool,
    /// The header of every segment, in order (a checkpoint records those
    /// it covers).
    headers: Vec<SegmentHeader>,
    planted: crate::Planted,
}

impl<D: Disk> JournalWriter<D> {
    /// Resumes after recovery at `end` of `segment`.
    pub fn resume(
        dir: &Path,
        store_id: u64,
        segment_size: u64,
        epoch: u32,
        tail: super::recover::Tail<D::File>,
    ) -> Self {
        assert!(tail.end >= SEGMENT_HEADER_LEN as u64);
        assert_ne!(epoch, 0, "epoch 0 is never written");
        Self {
            dir: dir.to_owned(),
            store_id,
            segment_size,
            segment: tail.segment,
            file: Some(tail.file),
            end: tail.end,
            broken: false,
            next_group: tail.next_group,
            next_flush: tail.next_flush,
            epoch,
            failed_flush: false,
            headers: tail.headers,
            planted: crate::Planted::default(),
        }
    }

    /// A writer for a directory with no segment: segment 0 is created by
    /// the first [`JournalWriter::ready`].
    pub fn empty(dir: &Path, store_id: u64, segment_size: u64, epoch: u32) -> Self {
        assert_ne!(epoch, 0, "epoch 0 is never written");
        Self {
            dir: dir.to_owned(),
            store_id,
            segment_size,
            // `ready` starts segment `segment + 1`.
            segment: u64::MAX,
            file: None,
            end: 0,
            broken: true,
            next_group: 1,
            next_flush: 1,
            epoch,
            failed_flush: false,
            headers: Vec::new(),
            planted: crate::Planted::default(),
        }
    }

    pub(crate) fn plant(&mut self, planted: crate::Planted) {
        self.planted = planted;
    }

    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// The header of every segment so far, in order.
    pub fn headers(&self) -> &[SegmentHeader] {
        &self.headers
    }

    /// Whether a flush failed since the last call: its positions are used
    /// again, and its bytes may yet come back (see `Core::commit`).
    pub fn take_failed_flush(&mut self) -> bool {
        std::mem::take(&mut self.failed_flush)
    }

    /// Where the next flush goes in the current segment.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Makes sure a durable segment is there to append to.
    pub fn ready(&mut self, disk: &mut D) -> Result<(), IoError> {
        if self.broken && self.planted.is(canary!(PoisonedWriter)) {
            return Err(IoError::new("the writer is poisoned (planted bug)", std::io::Error::other("poisoned")));
        }
        if self.broken {
            self.start_segment(disk, self.segment.wrapping_add(1))?;
        }
        Ok(())
    }

    fn start_segment(&mut self, disk: &mut D, number: u64) -> Result<(), IoError> {
        let path = self.dir.join(segment_name(number));
        if number >= SEGMENTS_MAX {
            let full =
                std::io::Error::new(std::io::ErrorKind::StorageFull, "the store has as many segments as it can number");
            return Err(IoError::new(format!("starting segment {}", path.display()), full));
        }
        let temp = self.dir.join(format!("{}{SEGMENT_TEMP_SUFFIX}", segment_name(number)));
        let context = || format!("starting segment {}", path.display());
        let header = SegmentHeader {
            segment: number,
            store_id: self.store_id,
            prev_end: if self.file.is_some() { self.end } else { 0 },
            first_group_id: self.next_group,
            first_flush: self.next_flush,
        };
        let mut file = disk.create(&temp).map_err(|e| IoError::new(context(), e))?;
        disk.write_at(&mut file, 0, &header.encode()).map_err(|e| IoError::new(context(), e))?;
        disk.sync(&mut file).map_err(|e| IoError::new(context(), e))?;
        disk.rename(&temp, &path).map_err(|e| IoError::new(context(), e))?;
        disk.sync_dir(&self.dir).map_err(|e| IoError::new(context(), e))?;
        self.segment = number;
        self.headers.truncate(usize::try_from(number).unwrap_or(usize::MAX));
        assert_eq!(self.headers.len() as u64, number, "segment headers are kept in order");
        self.headers.push(header);
        self.file = Some(file);
        self.end = SEGMENT_HEADER_LEN as u64;
        self.broken = false;
        Ok(())
    }

    /// Writes and syncs one flush. On error the flush's outcome is unknown
    /// and the writer moves to a new segment before the next one.
    pub fn write_flush(&mut self, disk: &mut D, bytes: &[u8]) -> Result<(), IoError> {
        assert!(!self.broken, "write_flush without ready");
        assert!(!bytes.is_empty());
        let write_behind = self.planted.is(canary!(WriteBehindFailedSync));
        let ack_early = self.planted.is(canary!(AckBeforeFsync));
        let Some(file) = self.file.as_mut() else {
            unreachable!("a writer that is not broken has a segment");
        };
        let path = || self.dir.join(segment_name(self.segment));
        if let Err(e) = disk.write_at(file, self.end, bytes) {
            self.failed_flush = true;
            self.broken = !write_behind;
            if !write_behind {
                drop_unsynced(disk, file, self.end);
            }
            return Err(IoError::new(format!("writing {}", path().display()), e));
        }
        if ack_early {
            self.end += bytes.len() as u64;
            self.next_flush += 1;
            return Ok(());
        }
        if let Err(e) = disk.sync(file) {
            self.failed_flush = true;
            if write_behind {
                self.end += bytes.len() as u64;
                self.next_flush += 1;
            } else {
                self.broken = true;
                drop_unsynced(disk, file, self.end);
            }
            return Err(IoError::new(format!("syncing {}", path().display()), e));
        }
        self.end += bytes.len() as u64;
        self.next_flush += 1;
        Ok(())
    }

    /// Starts the next segment once this one is full. A failure here loses
    /// nothing: the flushes so far are durable, and the next `ready` tries
    /// again.
    pub fn rotate_if_full(&mut self, disk: &mut D) {
        if !self.broken && self.end >= self.segment_size && self.start_segment(disk, self.segment + 1).is_err() {
            self.broken = true;
        }
    }
}

/// Cuts a segment back to `end`, its durable end, after a flush beyond it
/// failed. After a failed fsync the page cache still holds the flush's
/// bytes, marked clean, and may never write them back: a store reopened in
/// the same process (no crash to empty the cache) would read them as a
/// valid group and append after them, over a hole the disk may never fill.
/// Best effort: if the cut fails too, the error already returned stands,
/// and the writer moves to a new segment before writing again.
fn drop_unsynced<D: Disk>(disk: &mut D, file: &mut D::File, end: u64) {
    if disk.set_len(file, end).is_ok() {
        let _ = disk.sync(file);
    }
}
