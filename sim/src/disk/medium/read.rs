//! The read path of the medium: reads through the page cache, and the
//! faults a read meets there (transient errors that pass on a retry,
//! latent sector errors that stay, bit rot, short reads).

use std::io;
use std::sync::Arc;

use super::{err, At, Medium, LOGICAL_BLOCK_MIN};
use crate::faults::FaultClass;

/// A transient read error passes when the read is tried again: a read at
/// the same place (file and offset) fails transiently at most this many
/// times before one there succeeds, whatever is read elsewhere in between.
/// A read that keeps failing is a latent sector error, a fault of its own
/// class that marks the bytes it destroyed.
const TRANSIENT_READ_RUN_MAX: u32 = 2;
/// Places whose transient failures are counted at once; past it, the
/// oldest counts are forgotten (a place is counted until a read there
/// succeeds).
const TRANSIENT_PLACES_MAX: usize = 64;

impl Medium {
    /// A read through the page cache, with read faults.
    pub fn read(&mut self, inode: u64, generation: u64, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let latency = self.options.read_latency_ns;
        self.begin(latency, "read", At::Inode(inode))?;
        let sector = self.options.sector_size;
        let len = self.inode_at(inode, generation)?.current.len() as u64;
        if offset >= len || buf.is_empty() {
            return Ok(0);
        }
        let mut n = buf.len().min((len - offset) as usize);
        let place = self.transient_runs.iter().position(|(p, _)| *p == (inode, offset));
        let run = place.map_or(0, |i| self.transient_runs[i].1);
        if run < TRANSIENT_READ_RUN_MAX && self.fault_with(|o| o.read_error, FaultClass::ShortOrTransient) {
            match place {
                Some(i) => self.transient_runs[i].1 += 1,
                None => {
                    if self.transient_runs.len() == TRANSIENT_PLACES_MAX {
                        self.transient_runs.pop_front();
                    }
                    self.transient_runs.push_back(((inode, offset), 1));
                }
            }
            return Err(err(io::ErrorKind::Other, "transient read error"));
        }
        if let Some(i) = place {
            self.transient_runs.remove(i);
        }
        let first = offset / sector;
        let last = (offset + n as u64 - 1) / sector;
        if self.inode_at(inode, generation)?.bad_sectors.range(first..=last).next().is_some() {
            return Err(err(io::ErrorKind::Other, "latent sector error"));
        }
        if self.fault_with(|o| o.read_latent_error, FaultClass::SectorError) {
            // A read fails for a whole logical block, never less than
            // `LOGICAL_BLOCK_MIN` bytes, even where writes tear finer.
            let block = sector.max(LOGICAL_BLOCK_MIN);
            let bad = self.rng.between(offset, offset + n as u64 - 1) / block * block;
            let file = self.inode_at(inode, generation)?;
            file.bad_sectors.extend(bad / sector..(bad + block) / sector);
            self.damaged(inode, bad..bad + block, FaultClass::SectorError);
            return Err(err(io::ErrorKind::Other, "latent sector error"));
        }
        if self.fault_with(|o| o.read_bit_rot, FaultClass::SectorError) {
            let at = self.rng.between(offset, offset + n as u64 - 1);
            let bit = 1u8 << self.rng.below(8);
            // The medium rots, not the page cache: a byte not yet on the
            // medium cannot flip, and a read sees the flip only where the
            // page cache holds the medium's byte (no newer write over it).
            let file = self.inode_at(inode, generation)?;
            let at = at as usize;
            if at < file.durable.len() {
                if file.current.get(at) == Some(&file.durable[at]) {
                    Arc::make_mut(&mut file.current)[at] ^= bit;
                }
                Arc::make_mut(&mut file.durable)[at] ^= bit;
                self.changed(inode, at as u64);
                self.damaged(inode, at as u64..at as u64 + 1, FaultClass::SectorError);
            }
        }
        if n > 1 && self.fault_with(|o| o.read_short, FaultClass::ShortOrTransient) {
            n = self.rng.between(1, n as u64 - 1) as usize;
        }
        let start = offset as usize;
        buf[..n].copy_from_slice(&self.inode_at(inode, generation)?.current[start..start + n]);
        Ok(n)
    }
}
