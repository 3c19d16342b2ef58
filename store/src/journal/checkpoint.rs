//! The index checkpoint, `INDEX`: the index in memory as it was at the end
//! of a whole group, so that open reads it and scans only the journal
//! after it (drawn in FORMAT.md, "INDEX").
//!
//! It is written through the disk seam like every other file: to
//! `INDEX.tmp`, synced, renamed over `INDEX`, the directory synced. It is
//! never the only copy of anything: the journal holds every byte it was
//! made from, so a checkpoint that is missing, damaged, of another store or
//! format, or that does not match the journal found (a journal cut or
//! rewritten since) is passed over and open scans the whole journal. Open
//! uses it only if its checksums hold, every segment header it covers is
//! the one it recorded, and the commit frame that ends it is found where it
//! says. Salvage never uses it.

use std::path::Path;

use super::read::read_retrying;
use super::scan::FlushPos;
use super::segment::{SegmentHeader, FORMAT_VERSION};
use crate::disk::{Disk, ReadAt};
use crate::error::IoError;
use crate::keys::EntityKeyImage;
use crate::keyset::KEY_BUCKETS;
use crate::limits::{CHECKPOINT_IO_CHUNK, SEGMENT_HEADER_LEN};
use crate::state::{ImageError, ImageRead, JournalEnd, State};

pub const INDEX_NAME: &str = "INDEX";
pub const INDEX_TEMP_NAME: &str = "INDEX.tmp";
const MAGIC: [u8; 8] = *b"SHALEIDX";
/// The checkpoint format this build writes and reads; any other is passed
/// over (the journal is scanned), never misread.
pub const CHECKPOINT_VERSION: u32 = 1;
/// Bytes of the header, its own CRC included.
const HEADER_LEN: usize = 128;

/// What a checkpoint says about the journal it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Header {
    store_id: u64,
    flags: u32,
    end: JournalEnd,
    events: u64,
    image_len: u64,
    /// Segments 0..=end.segment.
    segments: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.store_id.to_le_bytes());
        b[24..28].copy_from_slice(&self.flags.to_le_bytes());
        b[28..36].copy_from_slice(&self.end.segment.to_le_bytes());
        b[36..44].copy_from_slice(&self.end.end.to_le_bytes());
        b[44..52].copy_from_slice(&self.end.group_id.to_le_bytes());
        b[52..60].copy_from_slice(&self.end.flush.flush.to_le_bytes());
        b[60..64].copy_from_slice(&self.end.flush.index.to_le_bytes());
        b[64..68].copy_from_slice(&self.end.flush.count.to_le_bytes());
        b[68..93].copy_from_slice(&self.end.commit);
        b[96..104].copy_from_slice(&self.events.to_le_bytes());
        b[104..112].copy_from_slice(&self.image_len.to_le_bytes());
        b[112..120].copy_from_slice(&self.segments.to_le_bytes());
        let crc = crc32c::crc32c(&b[..HEADER_LEN - 4]);
        b[HEADER_LEN - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8; HEADER_LEN]) -> Result<Self, String> {
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
        if b[0..8] != MAGIC {
            return Err("not a checkpoint".into());
        }
        if crc32c::crc32c(&b[..HEADER_LEN - 4]) != u32_at(HEADER_LEN - 4) {
            return Err("its header is damaged".into());
        }
        if u32_at(8) != CHECKPOINT_VERSION || u32_at(12) != FORMAT_VERSION {
            return Err(format!("checkpoint format {} of journal format {}", u32_at(8), u32_at(12)));
        }
        let mut commit = [0u8; crate::journal::record::COMMIT_FRAME_LEN];
        commit.copy_from_slice(&b[68..93]);
        let flush = FlushPos { flush: u64_at(52), index: u32_at(60), count: u32_at(64) };
        let end = JournalEnd { segment: u64_at(28), end: u64_at(36), group_id: u64_at(44), flush, commit };
        let segments = u64_at(112);
        if end.segment.checked_add(1) != Some(segments) || flush.index >= flush.count {
            return Err("its header does not make sense".into());
        }
        Ok(Self { store_id: u64_at(16), flags: u32_at(24), end, events: u64_at(96), image_len: u64_at(104), segments })
    }
}

/// Writes `bytes` at the end of a file being built, keeping its checksum;
/// the first error is kept and ends the writing.
struct Sink<'a, D: Disk> {
    disk: &'a mut D,
    file: D::File,
    at: u64,
    buf: Vec<u8>,
    crc: u32,
    error: Option<std::io::Error>,
}

impl<D: Disk> Sink<'_, D> {
    fn put(&mut self, bytes: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHECKPOINT_IO_CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.error.is_none() && !self.buf.is_empty() {
            match self.disk.write_at(&mut self.file, self.at, &self.buf) {
                Ok(()) => self.at += self.buf.len() as u64,
                Err(e) => self.error = Some(e),
            }
        }
        self.buf.clear();
    }
}

/// What the store adds to the state's image: the headers of the segments
/// it covers, and for an encrypted store the keys' image and the wrapping
/// generations they were wrapped under.
pub struct Extras<'a> {
    pub headers: &'a [SegmentHeader],
    pub keys: Option<(Vec<EntityKeyImage>, [u32; KEY_BUCKETS])>,
}

/// Publishes a checkpoint of `state` in `dir`, atomically. `None` written
/// if the state holds no group yet.
pub fn publish<D: Disk>(
    disk: &mut D,
    dir: &Path,
    flags: u32,
    state: &State,
    extras: &Extras<'_>,
) -> Result<(), IoError> {
    let Some(end) = state.journal_end() else { return Ok(()) };
    let covered = usize::try_from(end.segment + 1).unwrap_or(usize::MAX);
    assert!(extras.headers.len() >= covered, "the writer knows every segment header the state covers");
    let temp = dir.join(INDEX_TEMP_NAME);
    let context = || format!("writing the checkpoint {}", temp.display());
    let file = disk.create(&temp).map_err(|e| IoError::new(context(), e))?;
    let mut sink = Sink { disk, file, at: HEADER_LEN as u64, buf: Vec::new(), crc: 0, error: None };
    for header in &extras.headers[..covered] {
        sink.put(&header.encode());
    }
    if let Some((_, generations)) = &extras.keys {
        for g in generations {
            sink.put(&g.to_le_bytes());
        }
    }
    let body_before_image = sink.at + sink.buf.len() as u64;
    let keys = extras.keys.as_ref().map_or(&[][..], |(image, _)| image.as_slice());
    state.write_image(keys, &mut |bytes| sink.put(bytes));
    let image_len = sink.at + sink.buf.len() as u64 - body_before_image;
    let crc = sink.crc;
    sink.put(&crc.to_le_bytes());
    sink.flush();
    let Sink { disk, mut file, error, .. } = sink;
    let header = Header {
        store_id: state.store_id(),
        flags,
        end,
        events: state.last_global(),
        image_len,
        segments: end.segment + 1,
    };
    let written = match error {
        Some(e) => Err(e),
        None => disk.write_at(&mut file, 0, &header.encode()).and_then(|()| disk.sync(&mut file)),
    };
    drop(file);
    let done = written.and_then(|()| disk.rename(&temp, &dir.join(INDEX_NAME))).and_then(|()| disk.sync_dir(dir));
    done.map_err(|e| {
        let _ = disk.remove(&temp);
        IoError::new(context(), e)
    })
}

/// Removes the checkpoint in `dir` (listed there), durably.
pub fn remove<D: Disk>(disk: &mut D, dir: &Path) -> Result<(), IoError> {
    let path = dir.join(INDEX_NAME);
    let context = || format!("removing the checkpoint {}", path.display());
    match disk.remove(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(IoError::new(context(), e)),
    }
    disk.sync_dir(dir).map_err(|e| IoError::new(context(), e))
}

/// Reads a file's bytes in order, in large pieces, keeping their checksum.
struct Source<'a, F: ReadAt> {
    file: &'a F,
    /// Where the next piece starts, and where the bytes end.
    at: u64,
    limit: u64,
    buf: Vec<u8>,
    pos: usize,
    crc: u32,
}

impl<F: ReadAt> ImageRead for Source<'_, F> {
    fn next(&mut self, n: usize) -> Result<&[u8], ImageError> {
        if self.buf.len() - self.pos < n {
            self.buf.drain(..self.pos);
            self.pos = 0;
            let want = (n - self.buf.len()).max(CHECKPOINT_IO_CHUNK) as u64;
            let len = want.min(self.limit - self.at) as usize;
            if self.buf.len() + len < n {
                return Err(ImageError("the checkpoint ends early".into()));
            }
            let piece = read_retrying(self.file, self.at, len)
                .map_err(|e| ImageError(format!("the checkpoint could not be read: {e}")))?;
            self.crc = crc32c::crc32c_append(self.crc, &piece);
            self.at += len as u64;
            self.buf.extend_from_slice(&piece);
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }
}

/// A checkpoint read and checked on its own: the state it holds, where the
/// journal it covers ends, and the segment headers it recorded.
pub struct Loaded {
    pub state: State,
    pub end: JournalEnd,
    pub headers: Vec<SegmentHeader>,
}

/// Reads the checkpoint in `dir` (listed there) into `state` (fresh, its
/// keys set for an encrypted store). `Err`: why it is not used.
pub fn load<D: Disk>(disk: &mut D, dir: &Path, flags: u32, mut state: State) -> Result<Loaded, String> {
    let path = dir.join(INDEX_NAME);
    let file = disk.open_read(&path).map_err(|e| format!("it could not be opened: {e}"))?;
    let len = file.len().map_err(|e| format!("its length could not be read: {e}"))?;
    let header = read_retrying(&file, 0, HEADER_LEN).map_err(|e| format!("its header could not be read: {e}"))?;
    let Ok(header) = <&[u8; HEADER_LEN]>::try_from(header.as_slice()) else { unreachable!("read in full") };
    let header = Header::decode(header)?;
    if header.store_id != state.store_id() || header.flags != flags {
        return Err(format!("it is of store {:016x} (flags {})", header.store_id, header.flags));
    }
    let keyed = state.keys().is_some();
    let generations_len = if keyed { KEY_BUCKETS as u64 * 4 } else { 0 };
    let expected = header
        .segments
        .checked_mul(SEGMENT_HEADER_LEN as u64)
        .and_then(|h| h.checked_add(HEADER_LEN as u64 + generations_len + 4))
        .and_then(|l| l.checked_add(header.image_len));
    if expected != Some(len) {
        return Err(format!("it is {len} bytes, its header promises {expected:?}"));
    }
    let mut src = Source { file: &file, at: HEADER_LEN as u64, limit: len - 4, buf: Vec::new(), pos: 0, crc: 0 };
    let mut headers = Vec::with_capacity(usize::try_from(header.segments).unwrap_or(0).min(1 << 16));
    for number in 0..header.segments {
        let bytes = src.next(SEGMENT_HEADER_LEN).map_err(|e| e.0)?;
        match SegmentHeader::decode(bytes) {
            Some(h) if h.segment == number && h.store_id == header.store_id => headers.push(h),
            _ => return Err(format!("the header it recorded for segment {number} is not valid")),
        }
    }
    if keyed {
        let mut generations = [0u32; KEY_BUCKETS];
        for g in &mut generations {
            *g = u32::from_le_bytes(src.next(4).map_err(|e| e.0)?.try_into().unwrap_or([0; 4]));
        }
        let keyset = state.keys().map(|k| k.keyset().clone());
        let behind = keyset.iter().flat_map(|k| k.iter()).any(|(b, w)| w.generation < generations[b]);
        if behind {
            return Err("the keyset is older than the one it was written with".into());
        }
    }
    // Each covered segment ends where the next one's header says; the
    // last, at the end of the group the checkpoint ends with.
    let limits: Vec<u64> = headers.iter().skip(1).map(|h| h.prev_end).chain([header.end.end]).collect();
    state.read_image(&mut src, header.events, header.image_len, &header.end, &limits).map_err(|e| e.0)?;
    if src.pos != src.buf.len() || src.at != src.limit {
        return Err("bytes left over after its image".into());
    }
    let crc = read_retrying(&file, len - 4, 4).map_err(|e| format!("its checksum could not be read: {e}"))?;
    if u32::from_le_bytes(crc.try_into().unwrap_or([0; 4])) != src.crc {
        return Err("its checksum does not match".into());
    }
    Ok(Loaded { state, end: header.end, headers })
}
