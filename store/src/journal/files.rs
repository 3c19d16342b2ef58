//! Reading committed bytes back from the segments, for readers.
//!
//! The state in memory is an index; every payload stays in its segment and
//! is read through the `Disk` seam when asked for. Segment files are opened
//! on first use and kept open, at most [`READ_FILES_OPEN_MAX`] at a time
//! (the least recently used is closed first). Bytes are read and kept in
//! aligned blocks of [`READ_BLOCK_LEN`], at most [`READ_CACHE_BLOCKS`] of
//! them, so a reader walking the journal in order makes one read per block
//! and a hot entity's events stay in memory.
//!
//! Committed bytes never change in place: the writer only appends, and
//! after a failed write it moves to a new segment instead of writing over
//! the bytes in doubt. A cached block is therefore never stale; one cut
//! short by the end of the file is read again when bytes past its end are
//! asked for. Checking what was read (checksums, identity) is the caller's.

use std::io;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lru::LruCache;

use super::read::{read_up_to, read_up_to_in};
use super::segment::segment_name;
use crate::disk::{OpenRead, ReadAt};
use crate::limits::{READ_BLOCK_LEN, READ_CACHE_BLOCKS, READ_FILES_OPEN_MAX, READ_PAGE_LEN};
use crate::state::FixedHasher;

/// Cached blocks, and buffers of blocks dropped from the cache that no
/// reader holds any more, kept to read the next blocks into: a reader
/// walking the journal then reads into memory it has touched before,
/// instead of fresh pages the system must fault in and zero.
struct Blocks {
    cache: LruCache<(u64, u64), Arc<Vec<u8>>, FixedHasher>,
    spare: Vec<Vec<u8>>,
}

/// Buffers [`Blocks`] keeps for reuse.
const SPARE_BLOCKS_MAX: usize = 8;

impl Blocks {
    /// Caches `bytes` as `key`; the buffer of a block it pushes out (or
    /// replaces) is kept to be read into again if no reader holds it.
    fn put(&mut self, key: (u64, u64), bytes: Arc<Vec<u8>>) {
        if let Some((_, old)) = self.cache.push(key, bytes) {
            if let Ok(buffer) = Arc::try_unwrap(old) {
                if self.spare.len() < SPARE_BLOCKS_MAX {
                    self.spare.push(buffer);
                }
            }
        }
    }
}
type Handles = LruCache<u64, Arc<dyn ReadAt>, FixedHasher>;

/// The block a reader used last, kept across the frames of one read so
/// that neighbouring frames cost no lookup.
pub struct Hot {
    segment: u64,
    block: u64,
    bytes: Arc<Vec<u8>>,
}

/// The segments of one store directory, as readers see them.
pub struct SegmentFiles {
    dir: PathBuf,
    opener: Arc<dyn OpenRead>,
    handles: Mutex<Handles>,
    blocks: Mutex<Blocks>,
}

impl std::fmt::Debug for SegmentFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentFiles").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn capacity(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

impl SegmentFiles {
    pub fn new(dir: PathBuf, opener: Arc<dyn OpenRead>) -> Self {
        Self {
            dir,
            opener,
            handles: Mutex::new(LruCache::with_hasher(capacity(READ_FILES_OPEN_MAX), FixedHasher::default())),
            blocks: Mutex::new(Blocks {
                cache: LruCache::with_hasher(capacity(READ_CACHE_BLOCKS), FixedHasher::default()),
                spare: Vec::new(),
            }),
        }
    }

    /// The bytes `range` of `segment`. A file that ends before `range.end`
    /// is `UnexpectedEof`; a read that keeps failing is its error.
    pub fn read(&self, segment: u64, range: Range<u64>) -> io::Result<Vec<u8>> {
        assert!(range.start <= range.end);
        let mut out = Vec::with_capacity((range.end - range.start) as usize);
        let block_len = READ_BLOCK_LEN as u64;
        let mut at = range.start;
        while at < range.end {
            let block = at / block_len;
            let start = block * block_len;
            let want_end = range.end.min(start + block_len);
            match self.block(segment, block, (want_end - start) as usize)? {
                Some(bytes) => out.extend_from_slice(&bytes[(at - start) as usize..(want_end - start) as usize]),
                // Elsewhere in the block a read fails: the bytes asked for
                // may still read, on their own and uncached.
                None => {
                    let bytes = read_up_to(&*self.handle(segment)?, at, (want_end - at) as usize)?;
                    out.extend_from_slice(&whole(Arc::new(bytes), (want_end - at) as usize)?);
                }
            }
            at = want_end;
        }
        Ok(out)
    }

    /// The bytes `range` of `segment`, as a buffer and where in it they
    /// start: the cached block that holds them all, shared, where one
    /// does (`hot`, the block the caller used last, is tried first and
    /// then kept); else a copy.
    pub fn view(&self, segment: u64, range: Range<u64>, hot: &mut Option<Hot>) -> io::Result<(Arc<Vec<u8>>, usize)> {
        let block_len = READ_BLOCK_LEN as u64;
        let block = range.start / block_len;
        let start = block * block_len;
        if (range.end - 1) / block_len != block || range.is_empty() {
            return Ok((Arc::new(self.read(segment, range)?), 0));
        }
        let need = (range.end - start) as usize;
        let at = (range.start - start) as usize;
        if let Some(h) = hot.as_ref().filter(|h| (h.segment, h.block) == (segment, block) && h.bytes.len() >= need) {
            return Ok((h.bytes.clone(), at));
        }
        match self.block(segment, block, need)? {
            Some(bytes) => {
                *hot = Some(Hot { segment, block, bytes: bytes.clone() });
                Ok((bytes, at))
            }
            None => Ok((Arc::new(self.read(segment, range)?), 0)),
        }
    }

    /// Block `block` of `segment`, holding at least its first `need` bytes;
    /// `None` if reading the whole block fails.
    fn block(&self, segment: u64, block: u64, need: usize) -> io::Result<Option<Arc<Vec<u8>>>> {
        let cached = locked(&self.blocks).cache.get(&(segment, block)).cloned();
        if let Some(hit) = cached.as_ref().filter(|b| b.len() >= need) {
            return Ok(Some(hit.clone()));
        }
        // A block is read only as far as asked (whole pages), and asked
        // for more, at least twice as far as before: the end of a segment
        // being written, or a small one, costs no more than its bytes, and
        // a reader walking a block reads it a few times at most. A reader
        // that read the block before it whole is walking the segment:
        // this one is read whole at once.
        let before = cached.map_or(0, |b| b.len());
        let (walking, buffer) = {
            let mut blocks = locked(&self.blocks);
            let walking =
                block > 0 && blocks.cache.peek(&(segment, block - 1)).is_some_and(|b| b.len() == READ_BLOCK_LEN);
            (walking, blocks.spare.pop().unwrap_or_default())
        };
        let asked = if walking { READ_BLOCK_LEN } else { need.next_multiple_of(READ_PAGE_LEN) };
        let len = asked.max(2 * before).min(READ_BLOCK_LEN);
        let file = self.handle(segment)?;
        let Ok(bytes) = read_up_to_in(&*file, block * READ_BLOCK_LEN as u64, len, buffer) else { return Ok(None) };
        let bytes = Arc::new(bytes);
        locked(&self.blocks).put((segment, block), bytes.clone());
        whole(bytes, need).map(Some)
    }

    fn handle(&self, segment: u64) -> io::Result<Arc<dyn ReadAt>> {
        let mut handles = locked(&self.handles);
        if let Some(file) = handles.get(&segment) {
            return Ok(file.clone());
        }
        let file = self.opener.open_read(&self.dir.join(segment_name(segment)))?;
        handles.put(segment, file.clone());
        Ok(file)
    }

    /// The path of `segment`, for error messages.
    pub fn path(&self, segment: u64) -> PathBuf {
        self.dir.join(segment_name(segment))
    }
}

/// `bytes` if it holds at least `need` bytes; else the file ended first.
fn whole(bytes: Arc<Vec<u8>>, need: usize) -> io::Result<Arc<Vec<u8>>> {
    match bytes.len() >= need {
        true => Ok(bytes),
        false => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the segment ends before the bytes asked for")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{READ_ATTEMPTS, READ_PAGE_LEN};
    use std::path::Path;
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

    /// Files of `len` bytes (byte i holds i as u8) that count their reads
    /// and opens; `flaky` reads fail first.
    #[derive(Default)]
    struct Counting {
        len: u64,
        reads: AtomicUsize,
        opens: AtomicUsize,
        flaky: AtomicU32,
    }

    struct File(Arc<Counting>);

    /// The byte at `at` of every test file: no two blocks alike, so bytes
    /// left over from another block show.
    fn byte_at(at: u64) -> u8 {
        (at ^ (at >> 16).wrapping_mul(0x9d)) as u8
    }

    impl ReadAt for File {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
            self.0.reads.fetch_add(1, Ordering::SeqCst);
            if self.0.flaky.load(Ordering::SeqCst) > 0 {
                self.0.flaky.fetch_sub(1, Ordering::SeqCst);
                return Err(io::Error::other("transient"));
            }
            let end = (offset + buf.len() as u64).min(self.0.len);
            for (i, b) in buf.iter_mut().take(end.saturating_sub(offset) as usize).enumerate() {
                *b = byte_at(offset + i as u64);
            }
            Ok(end.saturating_sub(offset) as usize)
        }
        fn len(&self) -> io::Result<u64> {
            Ok(self.0.len)
        }
    }

    struct Opener(Arc<Counting>);

    impl OpenRead for Opener {
        fn open_read(&self, _: &Path) -> io::Result<Arc<dyn ReadAt>> {
            self.0.opens.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new(File(self.0.clone())))
        }
    }

    fn files(len: u64) -> (SegmentFiles, Arc<Counting>) {
        let counting = Arc::new(Counting { len, ..Counting::default() });
        (SegmentFiles::new(PathBuf::from("store"), Arc::new(Opener(counting.clone()))), counting)
    }

    #[test]
    fn reads_come_back_whole_from_one_read_per_block() {
        let (files, counting) = files(1 << 20);
        let block = READ_BLOCK_LEN as u64;
        for range in [0..10, 5..block + 7, block - 1..3 * block + 1, 3 * block..3 * block] {
            let bytes = files.read(0, range.clone()).unwrap();
            assert_eq!(bytes.len() as u64, range.end - range.start);
            assert!(bytes.iter().enumerate().all(|(i, &b)| b == byte_at(range.start + i as u64)));
        }
        // Block 0 is read in part, then whole; blocks 1, 2 and 3 each whole
        // at once (the block before them was read whole: a walk).
        assert_eq!(counting.reads.load(Ordering::SeqCst), 5);
        let reads_per_block_max = (READ_BLOCK_LEN / READ_PAGE_LEN).ilog2() as usize + 1;
        assert_eq!(counting.opens.load(Ordering::SeqCst), 1);
        // A reader walking frames in order reads the first block a few
        // times, and every later one once (the last frame reaches into a
        // fifth block).
        let (files, counting) = super::tests::files(1 << 20);
        for at in (0..4 * block).step_by(250) {
            assert_eq!(files.read(0, at..at + 250).unwrap().len(), 250);
        }
        assert!(counting.reads.load(Ordering::SeqCst) <= reads_per_block_max + 4, "{:?}", counting.reads);
    }

    #[test]
    fn a_block_cut_short_by_the_end_is_read_again_and_past_the_end_fails() {
        let (files, counting) = files(100);
        assert_eq!(files.read(0, 0..50).unwrap().len(), 50);
        let first = counting.reads.load(Ordering::SeqCst);
        assert_eq!(files.read(0, 10..100).unwrap().len(), 90, "the cached block holds it");
        assert_eq!(counting.reads.load(Ordering::SeqCst), first);
        let error = files.read(0, 90..110).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert!(counting.reads.load(Ordering::SeqCst) > first, "the short block was read again");
    }

    #[test]
    fn transient_errors_pass_and_open_files_are_bounded() {
        let (files, counting) = files(1 << 16);
        counting.flaky.store(READ_ATTEMPTS - 1, Ordering::SeqCst);
        assert_eq!(files.read(0, 0..10).unwrap().len(), 10);
        counting.flaky.store(READ_ATTEMPTS, Ordering::SeqCst);
        assert!(files.read(1, 0..10).is_ok(), "the bytes alone are read when their block fails");
        counting.flaky.store(2 * READ_ATTEMPTS, Ordering::SeqCst);
        assert!(files.read(2, 0..10).is_err(), "a read failing every attempt is an error");
        for segment in 0..READ_FILES_OPEN_MAX as u64 + 10 {
            files.read(segment, 0..1).unwrap();
        }
        assert!(locked(&files.handles).len() <= READ_FILES_OPEN_MAX);
    }

    #[test]
    fn buffers_of_blocks_pushed_out_are_read_into_again_and_hold_only_new_bytes() {
        let block = READ_BLOCK_LEN as u64;
        let blocks = READ_CACHE_BLOCKS as u64 + 2 * SPARE_BLOCKS_MAX as u64;
        // The file ends a little way into its last block.
        let (files, _) = files(blocks * block + 100);
        let mut hot = None;
        for b in 0..blocks {
            let (bytes, at) = files.view(0, b * block..(b + 1) * block, &mut hot).unwrap();
            assert!(bytes[at..at + READ_BLOCK_LEN]
                .iter()
                .enumerate()
                .all(|(i, &x)| x == byte_at(b * block + i as u64)));
        }
        drop(hot);
        assert!(!locked(&files.blocks).spare.is_empty(), "blocks pushed out left their buffers");
        assert!(locked(&files.blocks).spare.len() <= SPARE_BLOCKS_MAX);
        // A short block read into a whole block's buffer is only as long
        // as the file.
        let end = blocks * block;
        let (bytes, at) = files.view(0, end..end + 100, &mut None).unwrap();
        assert_eq!(bytes.len() - at, 100);
        assert!(bytes[at..].iter().enumerate().all(|(i, &x)| x == byte_at(end + i as u64)));
        assert_eq!(files.read(0, end + 50..end + 101).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        // A buffer a reader still holds is never read into.
        let (held, _) = files.view(0, 0..10, &mut None).unwrap();
        let copy = held.to_vec();
        for b in 1..blocks {
            files.read(0, b * block..b * block + 10).unwrap();
        }
        assert_eq!(*held, copy);
    }
}
