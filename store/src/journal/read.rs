//! Reading a file in the face of a failing medium.
//!
//! A read that fails is tried again (transient errors pass); one that keeps
//! failing marks its bytes unreadable (a latent sector error). Recovery
//! then needs to know exactly where the readable bytes end, so a failing
//! stretch is narrowed down by halving to the first granule that cannot be
//! read. Everything before it is returned; nothing is guessed.

use std::io;
use std::ops::Range;

use crate::disk::ReadAt;
use crate::limits::{READ_ATTEMPTS, RECOVERY_READ_CHUNK, UNREADABLE_GRANULE};

/// Bytes that could not be read, however often they were tried.
#[derive(Debug)]
pub struct Unreadable {
    /// The first unreadable byte.
    pub offset: u64,
    pub error: io::Error,
}

/// Reads `len` bytes at `offset`. A read that fails is tried again where it
/// failed, keeping what was read before it (short reads advance it); the
/// bytes there count as unreadable only after `READ_ATTEMPTS` failures in a
/// row at that place. End of file is not retried.
pub fn read_retrying(file: &impl ReadAt, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let buf = read_up_to(file, offset, len)?;
    match buf.len() == len {
        true => Ok(buf),
        false => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

/// Reads up to `len` bytes at `offset`, as [`read_retrying`] does, but
/// fewer where the file ends.
pub fn read_up_to(file: &(impl ReadAt + ?Sized), offset: u64, len: usize) -> io::Result<Vec<u8>> {
    read_up_to_in(file, offset, len, Vec::new())
}

/// [`read_up_to`] into `buf`, a buffer used before: its bytes are
/// overwritten (or cut off), never returned, and its memory is reused.
pub fn read_up_to_in(file: &(impl ReadAt + ?Sized), offset: u64, len: usize, mut buf: Vec<u8>) -> io::Result<Vec<u8>> {
    buf.resize(len, 0);
    let done = read_into(file, offset, &mut buf)?;
    buf.truncate(done);
    Ok(buf)
}

/// Reads into `buf` from `offset` until it is full or the file ends; how
/// many bytes were read.
fn read_into(file: &(impl ReadAt + ?Sized), offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let len = buf.len();
    let mut done = 0;
    let mut failures = 0;
    while done < len {
        match file.read_at(offset + done as u64, &mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                failures = 0;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                failures += 1;
                if failures == READ_ATTEMPTS {
                    return Err(e);
                }
            }
        }
    }
    Ok(done)
}

/// Reads `range` of `file`: the bytes readable from its start, and where
/// and why reading stopped short of its end, if it did. A file that ends
/// before `range.end` stops the read there as unreadable (with
/// `UnexpectedEof`).
pub fn read_range(file: &impl ReadAt, range: Range<u64>) -> (Vec<u8>, Option<Unreadable>) {
    let mut out = Vec::new();
    let unreadable = read_range_into(file, range, &mut out);
    (out, unreadable)
}

/// [`read_range`], appending to `out` (a buffer used again and again
/// costs no fresh memory).
pub fn read_range_into(file: &impl ReadAt, range: Range<u64>, out: &mut Vec<u8>) -> Option<Unreadable> {
    assert!(range.start <= range.end);
    let base = out.len();
    out.reserve(usize::try_from(range.end - range.start).unwrap_or(0));
    let mut at = range.start;
    while at < range.end {
        let len = (range.end - at).min(RECOVERY_READ_CHUNK as u64) as usize;
        let start = out.len();
        out.resize(start + len, 0);
        if let Err(error) = read_exact_retrying(file, at, &mut out[start..]) {
            out.truncate(start);
            let (good, bad) = narrow(file, at, len, error);
            out.extend_from_slice(&good);
            return Some(bad);
        }
        at += len as u64;
    }
    assert_eq!((out.len() - base) as u64, range.end - range.start);
    None
}

/// Fills `buf` from `offset`, retrying as [`read_up_to`] does; a file that
/// ends first is `UnexpectedEof`.
fn read_exact_retrying(file: &(impl ReadAt + ?Sized), offset: u64, buf: &mut [u8]) -> io::Result<()> {
    match read_into(file, offset, buf)? == buf.len() {
        true => Ok(()),
        false => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

/// Within `len` bytes at `offset` that failed to read as a whole: the
/// readable bytes before the first granule that fails, and that granule.
fn narrow(file: &impl ReadAt, offset: u64, len: usize, error: io::Error) -> (Vec<u8>, Unreadable) {
    let mut good = Vec::new();
    let (mut lo, mut hi) = (offset, offset + len as u64);
    let mut first_error = error;
    // Invariant: [offset, lo) is read into `good`, and [lo, hi) fails.
    // Splits fall on granule boundaries, so the search ends inside the
    // one aligned granule that holds the first bad byte.
    let g = UNREADABLE_GRANULE;
    while lo / g != (hi - 1) / g {
        let mut mid = (lo + (hi - lo) / 2) / g * g;
        if mid <= lo {
            mid = (lo / g + 1) * g;
        }
        match read_retrying(file, lo, (mid - lo) as usize) {
            Ok(bytes) => {
                good.extend_from_slice(&bytes);
                lo = mid;
            }
            Err(e) => {
                first_error = e;
                hi = mid;
            }
        }
    }
    assert_eq!(good.len() as u64, lo - offset);
    (good, Unreadable { offset: lo, error: first_error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A file of `len` bytes whose bytes in `bad` never read; `flaky`
    /// failures first, then success.
    struct Medium {
        len: u64,
        bad: Range<u64>,
        flaky: AtomicU32,
    }

    impl ReadAt for Medium {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
            if self.flaky.load(Ordering::SeqCst) > 0 {
                self.flaky.fetch_sub(1, Ordering::SeqCst);
                return Err(io::Error::other("transient"));
            }
            let end = (offset + buf.len() as u64).min(self.len);
            if offset >= end {
                return Ok(0);
            }
            if offset < self.bad.end && self.bad.start < end {
                return Err(io::Error::other("latent sector error"));
            }
            for (i, b) in buf[..(end - offset) as usize].iter_mut().enumerate() {
                *b = (offset + i as u64) as u8;
            }
            Ok((end - offset) as usize)
        }
        fn len(&self) -> io::Result<u64> {
            Ok(self.len)
        }
    }

    #[test]
    fn the_readable_prefix_ends_at_the_first_bad_granule() {
        for bad_at in [64u64, 512, 5_000, 100_000, 4 << 20, (4 << 20) + 1_024] {
            let medium = Medium { len: 6 << 20, bad: bad_at..bad_at + 10, flaky: AtomicU32::new(0) };
            let (bytes, unreadable) = read_range(&medium, 64..medium.len);
            let unreadable = unreadable.expect("the bad bytes are found");
            let granule_start = bad_at / UNREADABLE_GRANULE * UNREADABLE_GRANULE;
            assert!(
                unreadable.offset <= bad_at && unreadable.offset >= granule_start.max(64),
                "bad at {bad_at}, reported at {}",
                unreadable.offset
            );
            assert_eq!(bytes.len() as u64, unreadable.offset - 64);
            assert!(bytes.iter().enumerate().all(|(i, &b)| b == (64 + i as u64) as u8), "bytes are the file's");
        }
    }

    #[test]
    fn transient_errors_are_retried_and_a_short_file_is_reported() {
        let medium = Medium { len: 10_000, bad: 0..0, flaky: AtomicU32::new(READ_ATTEMPTS - 1) };
        let (bytes, unreadable) = read_range(&medium, 0..10_000);
        assert!(unreadable.is_none());
        assert_eq!(bytes.len(), 10_000);
        let (bytes, unreadable) = read_range(&medium, 0..12_000);
        assert_eq!(unreadable.map(|u| u.error.kind()), Some(io::ErrorKind::UnexpectedEof));
        assert!(bytes.len() <= 10_000);
    }
}
