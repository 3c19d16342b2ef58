//! The per-entity hash chain: each event's hash covers its header fields,
//! its stored payload bytes and the entity's previous hash.

use crate::journal::record::EventRecord;

/// The link before an entity's first event.
pub const GENESIS: [u8; 32] = [0; 32];

fn update_str(h: &mut blake3::Hasher, s: &[u8]) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s);
}

/// The hash of `event` chained onto `prev`. Ignores `event.hash`.
pub fn chain_hash(prev: &[u8; 32], event: &EventRecord<'_>) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(&event.global_seq.to_le_bytes());
    h.update(&event.entity_seq.to_le_bytes());
    h.update(&event.timestamp_ns.to_le_bytes());
    match event.causation {
        Some(cause) => h.update(&[1]).update(&cause.to_le_bytes()),
        None => h.update(&[0]),
    };
    h.update(&event.correlation.to_le_bytes());
    h.update(&event.key_gen.to_le_bytes());
    update_str(&mut h, event.kind.as_bytes());
    update_str(&mut h, event.entity.as_bytes());
    update_str(&mut h, event.scope.as_bytes());
    update_str(&mut h, &event.payload);
    *h.finalize().as_bytes()
}
