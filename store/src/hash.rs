//! The per-entity hash chain: each event's hash (SHA-256, see FORMAT.md
//! for why not BLAKE3) covers its header fields (the epoch of the session
//! that wrote it included), its stored payload bytes and the entity's
//! previous hash. Also [`RunHasher`], for digests
//! of streams fed in small pieces (the index fingerprint).

use sha2::{Digest, Sha256};

use crate::journal::record::EventRecord;

/// The link before an entity's first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// Bytes of the fixed-size fields, hashed in one piece.
const FIXED_LEN: usize = 32 + 8 + 8 + 8 + 9 + 16 + 4 + 4;

/// Events whose hashed bytes fit this many are hashed from a buffer on the
/// stack, in one call (most events: the names are short, and so are most
/// payloads).
const STACK_HASH_LEN: usize = 1024;

/// The hash of `event`, written in `epoch`, chained onto `prev`. Ignores
/// `event.hash`.
pub fn chain_hash(prev: &[u8; 32], event: &EventRecord<'_>, epoch: u32) -> [u8; 32] {
    let mut fixed = [0u8; FIXED_LEN];
    fixed[..32].copy_from_slice(prev);
    fixed[32..40].copy_from_slice(&event.global_seq.to_le_bytes());
    fixed[40..48].copy_from_slice(&event.entity_seq.to_le_bytes());
    fixed[48..56].copy_from_slice(&event.timestamp_ns.to_le_bytes());
    if let Some(cause) = event.causation {
        fixed[56] = 1;
        fixed[57..65].copy_from_slice(&cause.to_le_bytes());
    }
    fixed[65..81].copy_from_slice(&event.correlation.to_le_bytes());
    fixed[81..85].copy_from_slice(&event.key_gen.to_le_bytes());
    fixed[85..89].copy_from_slice(&epoch.to_le_bytes());
    let parts = [event.kind.as_bytes(), event.entity.as_bytes(), event.scope.as_bytes(), &event.payload[..]];
    let len = FIXED_LEN + parts.iter().map(|p| 8 + p.len()).sum::<usize>();
    // The hashed stream: the fixed fields, then each part as a u64 length
    // and its bytes (gathered in one buffer: faster than feeding SHA-256
    // the pieces).
    let fill = |out: &mut [u8]| {
        out[..FIXED_LEN].copy_from_slice(&fixed);
        let mut at = FIXED_LEN;
        for part in parts {
            out[at..at + 8].copy_from_slice(&(part.len() as u64).to_le_bytes());
            out[at + 8..at + 8 + part.len()].copy_from_slice(part);
            at += 8 + part.len();
        }
    };
    if len <= STACK_HASH_LEN {
        let mut buf = [0u8; STACK_HASH_LEN];
        fill(&mut buf[..len]);
        Sha256::digest(&buf[..len]).into()
    } else {
        let mut buf = vec![0u8; len];
        fill(&mut buf);
        Sha256::digest(&buf).into()
    }
}

/// Bytes a [`RunHasher`] gathers before it hashes them.
const HASH_RUN_LEN: usize = 64 * 1024;

/// A BLAKE3 hasher for a stream fed in small pieces (integers, names):
/// it gathers them and hashes long runs, which BLAKE3 does many chunks at
/// a time. The digest is the one the same bytes give fed in any pieces.
pub struct RunHasher {
    hasher: blake3::Hasher,
    run: Vec<u8>,
}

impl Default for RunHasher {
    fn default() -> Self {
        RunHasher { hasher: blake3::Hasher::new(), run: Vec::with_capacity(HASH_RUN_LEN) }
    }
}

impl RunHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        if self.run.len() + bytes.len() > HASH_RUN_LEN {
            self.hasher.update(&self.run);
            self.run.clear();
        }
        match bytes.len() >= HASH_RUN_LEN {
            true => _ = self.hasher.update(bytes),
            false => self.run.extend_from_slice(bytes),
        }
    }

    pub fn finalize(mut self) -> [u8; 32] {
        self.hasher.update(&self.run);
        *self.hasher.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// FORMAT.md's definition, fed to the hasher piece by piece.
    fn streamed(prev: &[u8; 32], e: &EventRecord<'_>, epoch: u32) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(prev);
        for n in [e.global_seq, e.entity_seq, e.timestamp_ns] {
            h.update(n.to_le_bytes());
        }
        match e.causation {
            Some(cause) => {
                h.update([1]);
                h.update(cause.to_le_bytes());
            }
            None => h.update([0; 9]),
        };
        h.update(e.correlation.to_le_bytes());
        h.update(e.key_gen.to_le_bytes());
        h.update(epoch.to_le_bytes());
        for part in [e.kind.as_bytes(), e.entity.as_bytes(), e.scope.as_bytes(), &e.payload[..]] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    #[test]
    fn a_run_hasher_digests_the_bytes_however_they_are_fed() {
        let bytes: Vec<u8> = (0..3 * HASH_RUN_LEN as u32 + 17).map(|i| (i * 7 + i / 251) as u8).collect();
        for piece in [1, 8, 33, 4096, HASH_RUN_LEN - 1, HASH_RUN_LEN, 2 * HASH_RUN_LEN + 5] {
            let mut h = RunHasher::default();
            for part in bytes.chunks(piece) {
                h.update(part);
            }
            assert_eq!(h.finalize(), *blake3::hash(&bytes).as_bytes(), "pieces of {piece} bytes");
        }
        assert_eq!(RunHasher::default().finalize(), *blake3::hash(&[]).as_bytes());
    }

    #[test]
    fn the_hash_is_the_formats_byte_stream_for_short_and_long_events() {
        for (n, payload_len) in [0usize, 1, 200, 900, 1000, 5000].into_iter().enumerate() {
            let payload = vec![n as u8; payload_len];
            let record = EventRecord {
                global_seq: 7 + n as u64,
                entity_seq: 3,
                timestamp_ns: 1_700_000_000,
                causation: (n % 2 == 0).then_some(5),
                correlation: 0xabcd << n,
                kind: "deposited",
                entity: "account-42",
                scope: "main/1/0",
                key_gen: n as u32,
                hash: [0; 32],
                payload: Cow::Borrowed(&payload),
            };
            let prev = [n as u8 + 1; 32];
            assert_eq!(chain_hash(&prev, &record, 9), streamed(&prev, &record, 9), "payload of {payload_len} bytes");
        }
    }
}
