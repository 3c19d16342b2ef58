//! The per-entity hash chain: each event's hash covers its header fields
//! (the epoch of the session that wrote it included), its stored payload
//! bytes and the entity's previous hash.

use crate::journal::record::EventRecord;

/// The link before an entity's first event.
pub const GENESIS: [u8; 32] = [0; 32];

fn update_str(h: &mut blake3::Hasher, s: &[u8]) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s);
}

/// Bytes of the fixed-size fields, hashed in one piece.
const FIXED_LEN: usize = 32 + 8 + 8 + 8 + 9 + 16 + 4 + 4;

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
    let mut h = blake3::Hasher::new();
    h.update(&fixed);
    update_str(&mut h, event.kind.as_bytes());
    update_str(&mut h, event.entity.as_bytes());
    update_str(&mut h, event.scope.as_bytes());
    update_str(&mut h, &event.payload);
    *h.finalize().as_bytes()
}
