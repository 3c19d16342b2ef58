//! The `META` file: the store's identity and settings, published atomically
//! when the store is created (layout in FORMAT.md).

use std::path::Path;

use crate::disk::{publish_atomically, read_small_file, Disk};
use crate::error::{IoError, OpenError};

pub const META_NAME: &str = "META";
const META_MAGIC: [u8; 8] = *b"SHALEMET";
const META_VERSION: u32 = 1;
pub const META_LEN: usize = 32;

/// Flag bit: payloads are encrypted per entity.
pub const FLAG_ENCRYPTED: u32 = 1;
/// Flag bit: the keyset is sealed under a caller's master key.
pub const FLAG_SEALED: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub store_id: u64,
    pub flags: u32,
}

impl Meta {
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut b = [0u8; META_LEN];
        b[0..8].copy_from_slice(&META_MAGIC);
        b[8..12].copy_from_slice(&META_VERSION.to_le_bytes());
        b[12..20].copy_from_slice(&self.store_id.to_le_bytes());
        b[20..24].copy_from_slice(&self.flags.to_le_bytes());
        let crc = crc32c::crc32c(&b[..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() != META_LEN {
            return Err(format!("META is {} bytes, not {META_LEN}", b.len()));
        }
        if b[0..8] != META_MAGIC {
            return Err("META has the wrong magic".into());
        }
        let crc = u32::from_le_bytes([b[28], b[29], b[30], b[31]]);
        if crc32c::crc32c(&b[..28]) != crc {
            return Err("META fails its checksum".into());
        }
        let version = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        if version != META_VERSION {
            return Err(format!("META format version {version} is not supported"));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[12..20]);
        Ok(Self { store_id: u64::from_le_bytes(id), flags: u32::from_le_bytes([b[20], b[21], b[22], b[23]]) })
    }
}

/// Reads `dir/META`; `Ok(None)` if there is none. Opens it read-only.
pub fn read_meta<D: Disk>(disk: &mut D, dir: &Path) -> Result<Option<Meta>, OpenError> {
    let path = dir.join(META_NAME);
    let io = |e| OpenError::Io(IoError::new(format!("reading {}", path.display()), e));
    if !disk.exists(&path).map_err(io)? {
        return Ok(None);
    }
    let bytes = match read_small_file(disk, &path, META_LEN as u64) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(OpenError::Format { path, reason: format!("META is not {META_LEN} bytes: {e}") });
        }
        Err(e) => return Err(io(e)),
    };
    Meta::decode(&bytes).map(Some).map_err(|reason| OpenError::Format { path, reason })
}

pub fn write_meta<D: Disk>(disk: &mut D, dir: &Path, meta: &Meta) -> Result<(), OpenError> {
    let path = dir.join(META_NAME);
    publish_atomically(disk, &path, &meta.encode())
        .map_err(|e| OpenError::Io(IoError::new(format!("publishing {}", path.display()), e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_rejects_damage() {
        let meta = Meta { store_id: 0xfeed, flags: FLAG_ENCRYPTED };
        let bytes = meta.encode();
        assert_eq!(Meta::decode(&bytes), Ok(meta));
        for i in 0..META_LEN {
            let mut bad = bytes;
            bad[i] ^= 1;
            assert!(Meta::decode(&bad).is_err(), "damage at byte {i} went unnoticed");
        }
    }
}
