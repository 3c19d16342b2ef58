//! Payload sealing: AES-256-GCM-SIV under a per-entity key, a fresh nonce
//! per event, and the event's identity bound in as associated data, so a
//! ciphertext moved to another event fails to open.

use std::ops::Range;
use std::sync::OnceLock;

use aes_gcm_siv::aead::inout::InOutBuf;
use aes_gcm_siv::aead::{Aead, AeadInOut, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use zeroize::{Zeroize, Zeroizing};

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// 256 bits of key material: zeroized on drop, never printed. Its cipher
/// (the AES key schedule and POLYVAL key, about 500 bytes on the heap,
/// zeroized on drop too) is built the first time the key seals or opens,
/// and kept: a key held by the store's state opens every event sealed
/// under it without building the schedule again. Only keys used since
/// the store opened carry one.
#[derive(Clone)]
pub struct Key(Zeroizing<[u8; KEY_LEN]>, OnceLock<Box<Aes256GcmSiv>>);

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Key {}

impl Key {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes), OnceLock::new())
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The raw key material, for key escrow and for tests that prove a
    /// shredded key is gone from every file. Handle with care.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn cipher(&self) -> &Aes256GcmSiv {
        self.1.get_or_init(|| match Aes256GcmSiv::new_from_slice(&self.0[..]) {
            Ok(cipher) => Box::new(cipher),
            Err(_) => unreachable!("a {KEY_LEN}-byte key has the right length"),
        })
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// A caller's key that seals the keyset file itself.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MasterKey(pub(crate) Key);

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Key::from_bytes(bytes))
    }
}

/// Sealing failed to open: wrong key, wrong associated data, or damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFailed;

/// `nonce || ciphertext || tag` of `plaintext` under `key` and `aad`.
pub fn seal(key: &Key, nonce: [u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let Ok(ciphertext) = key.cipher().encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad }) else {
        unreachable!("payloads are far below the AES-GCM-SIV length limit")
    };
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    sealed
}

/// The plaintext of `sealed` (as made by [`seal`]).
pub fn open(key: &Key, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenFailed> {
    let mut plain = Vec::with_capacity(sealed.len().saturating_sub(NONCE_LEN + TAG_LEN));
    open_into(key, aad, sealed, &mut plain)?;
    Ok(plain)
}

/// [`open`], the plaintext appended to `out` straight from `sealed` (no
/// copy of the ciphertext, no buffer of its own); where in `out` it lies.
/// If `sealed` does not open, `out` is as it was (what was decrypted
/// before the tag failed is wiped, never left behind).
pub fn open_into(key: &Key, aad: &[u8], sealed: &[u8], out: &mut Vec<u8>) -> Result<Range<usize>, OpenFailed> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenFailed);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let (Ok(nonce), Ok(tag)) = (<[u8; NONCE_LEN]>::try_from(nonce), <[u8; TAG_LEN]>::try_from(tag)) else {
        unreachable!("split at their lengths")
    };
    let start = out.len();
    out.resize(start + ciphertext.len(), 0);
    let Ok(buffer) = InOutBuf::new(ciphertext, &mut out[start..]) else { unreachable!("one length") };
    match key.cipher().decrypt_inout_detached(&Nonce::from(nonce), aad, buffer, &Tag::from(tag)) {
        Ok(()) => Ok(start..out.len()),
        Err(_) => {
            out[start..].zeroize();
            out.truncate(start);
            Err(OpenFailed)
        }
    }
}

/// Bytes of an entity key wrapped under a wrapping key: nonce, the sealed
/// key, tag.
pub const WRAPPED_KEY_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// `key` sealed under `wrap_key`, bound by `aad` (see [`wrap_aad`]).
pub fn wrap(wrap_key: &Key, nonce: [u8; NONCE_LEN], aad: &[u8], key: &Key) -> [u8; WRAPPED_KEY_LEN] {
    let sealed = Zeroizing::new(seal(wrap_key, nonce, aad, key.bytes()));
    let mut out = [0u8; WRAPPED_KEY_LEN];
    out.copy_from_slice(&sealed);
    out
}

/// The entity key inside `wrapped`, if it opens under `wrap_key` and `aad`.
pub fn unwrap(wrap_key: &Key, aad: &[u8], wrapped: &[u8; WRAPPED_KEY_LEN]) -> Result<Key, OpenFailed> {
    let plain = Zeroizing::new(open(wrap_key, aad, wrapped)?);
    let mut bytes = [0u8; KEY_LEN];
    bytes.copy_from_slice(&plain);
    let key = Key::from_bytes(bytes);
    bytes.iter_mut().for_each(|b| *b = 0);
    Ok(key)
}

/// The associated data that binds a wrapped key to its store, entity,
/// generation and wrapping-key generation.
pub fn wrap_aad(store_id: u64, entity: &str, generation: u32, wrap_generation: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(entity.len() + 32);
    aad.extend_from_slice(b"shale-key");
    aad.extend_from_slice(&store_id.to_le_bytes());
    aad.extend_from_slice(&(entity.len() as u64).to_le_bytes());
    aad.extend_from_slice(entity.as_bytes());
    aad.extend_from_slice(&generation.to_le_bytes());
    aad.extend_from_slice(&wrap_generation.to_le_bytes());
    aad
}

/// The associated data that binds a sealed payload to its event.
pub fn event_aad(entity: &str, scope: &str, id: u128, entity_seq: u64, kind: &str, key_gen: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(entity.len() + scope.len() + kind.len() + 64);
    event_aad_into(&mut aad, entity, scope, id, entity_seq, kind, key_gen);
    aad
}

/// [`event_aad`] into `aad` (emptied first), so that a reader opening
/// many events uses one buffer.
pub fn event_aad_into(
    aad: &mut Vec<u8>,
    entity: &str,
    scope: &str,
    id: u128,
    entity_seq: u64,
    kind: &str,
    key_gen: u32,
) {
    aad.clear();
    for part in [entity, scope, kind] {
        aad.extend_from_slice(&(part.len() as u64).to_le_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad.extend_from_slice(&id.to_le_bytes());
    aad.extend_from_slice(&entity_seq.to_le_bytes());
    aad.extend_from_slice(&key_gen.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_payloads_open_only_with_their_key_and_identity() {
        let key = Key::from_bytes([7; KEY_LEN]);
        let aad = event_aad("acct", "main", 5, 1, "deposited", 1);
        let sealed = seal(&key, [1; NONCE_LEN], &aad, b"secret");
        assert_eq!(open(&key, &aad, &sealed).unwrap(), b"secret");
        assert!(!sealed.windows(6).any(|w| w == b"secret"), "the plaintext is not in the ciphertext");
        let moved = event_aad("acct", "main", 6, 2, "deposited", 1);
        assert_eq!(open(&key, &moved, &sealed), Err(OpenFailed), "moved to another event");
        assert_eq!(open(&Key::from_bytes([8; KEY_LEN]), &aad, &sealed), Err(OpenFailed), "another key");
        assert_eq!(open(&key, &aad, &sealed[..10]), Err(OpenFailed));
    }

    #[test]
    fn a_payload_opens_into_the_end_of_a_buffer_and_a_failed_one_leaves_nothing() {
        let key = Key::from_bytes([7; KEY_LEN]);
        let aad = event_aad("acct", "main", 5, 1, "deposited", 1);
        let mut reused = b"garbage".to_vec();
        event_aad_into(&mut reused, "acct", "main", 5, 1, "deposited", 1);
        assert_eq!(reused, aad, "the buffer is emptied first");
        let sealed = seal(&key, [1; NONCE_LEN], &aad, b"secret payload");
        let mut out = b"before".to_vec();
        assert_eq!(open_into(&key, &aad, &sealed, &mut out), Ok(6..20));
        assert_eq!(out, b"beforesecret payload");
        for (aad, sealed) in [(&event_aad("acct", "main", 6, 1, "deposited", 1), &sealed[..]), (&aad, &sealed[..27])] {
            let mut out = b"before".to_vec();
            assert_eq!(open_into(&key, aad, sealed, &mut out), Err(OpenFailed));
            assert_eq!(out, b"before", "nothing of a payload that did not open is left");
        }
    }

    /// Each part of an event's identity binds its payload on its own:
    /// changed alone, by any amount, the payload no longer opens. (Parts
    /// whose text shifts into a neighbour's cannot alias: each is prefixed
    /// with its length.)
    #[test]
    fn every_part_of_the_identity_binds_the_payload_alone() {
        let key = Key::from_bytes([7; KEY_LEN]);
        let base = ("acct", "main", 5u128, 1u64, "deposited", 1u32);
        let aad = |(e, s, id, seq, k, g): (&str, &str, u128, u64, &str, u32)| event_aad(e, s, id, seq, k, g);
        let sealed = seal(&key, [1; NONCE_LEN], &aad(base), b"secret");
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut other = base;
            let (name_a, name_b) = (format!("acct{x}"), format!("ma{}", x % 7));
            match round % 8 {
                0 => other.0 = &name_a,
                1 => other.1 = &name_b,
                2 => other.2 ^= u128::from(x | 1) << (x % 64),
                3 => other.3 ^= x | 1,
                4 => other.4 = "withdrawn",
                5 => other.5 ^= (x as u32) | 1,
                // Text moved from one part into the next.
                6 => (other.0, other.1) = ("acctm", "ain"),
                _ => (other.1, other.4) = ("maind", "eposited"),
            }
            assert_ne!(aad(other), aad(base), "round {round}");
            assert_eq!(open(&key, &aad(other), &sealed), Err(OpenFailed), "round {round}: {other:?}");
        }
        assert_eq!(open(&key, &aad(base), &sealed).unwrap(), b"secret");
    }

    #[test]
    fn wrapped_keys_open_only_under_their_wrapping_key_and_binding() {
        let wrapping = Key::from_bytes([3; KEY_LEN]);
        let key = Key::from_bytes([4; KEY_LEN]);
        let aad = wrap_aad(1, "acct", 2, 7);
        let wrapped = wrap(&wrapping, [5; NONCE_LEN], &aad, &key);
        assert!(!wrapped.windows(KEY_LEN).any(|w| w == [4; KEY_LEN]), "the key is not in the clear");
        assert_eq!(unwrap(&wrapping, &aad, &wrapped).unwrap(), key);
        assert!(unwrap(&Key::from_bytes([6; KEY_LEN]), &aad, &wrapped).is_err());
        assert!(unwrap(&wrapping, &wrap_aad(1, "acct", 3, 7), &wrapped).is_err(), "another generation");
        assert!(unwrap(&wrapping, &wrap_aad(1, "other", 2, 7), &wrapped).is_err(), "another entity");
    }

    #[test]
    fn keys_never_print() {
        let key = Key::from_bytes([0xab; KEY_LEN]);
        let shown = format!("{key:?} {:?}", MasterKey::from_bytes([0xab; KEY_LEN]));
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
    }
}
