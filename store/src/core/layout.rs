//! What a directory holds, decided before anything in it is written.
//!
//! A directory with `META` is a store. One without is a place to create a
//! store only if it holds nothing that could be data: nothing at all, or
//! exactly what a creation that was interrupted leaves behind (creation
//! writes the keyset, then segment 0, then `META`). Such leftovers are
//! proven empty by their size: a keyset too short to hold one key, a
//! segment too short to hold one frame. Anything else is refused untouched.

use std::path::Path;

use crate::crypto::MasterKey;
use crate::disk::{Disk, ReadAt};
use crate::error::{IoError, OpenError};
use crate::journal::segment::{segment_name, SEGMENT_TEMP_SUFFIX};
use crate::keyset::{Keyset, KEYS_NAME};
use crate::limits::SEGMENT_HEADER_LEN;
use crate::meta::META_NAME;

use super::LOCK_NAME;

/// True if `dir` holds a store (`META`); false if a store may be created
/// there; a refusal if it holds anything else.
pub fn holds_store<D: Disk>(disk: &mut D, dir: &Path) -> Result<bool, OpenError> {
    let io = |e| OpenError::Io(IoError::new(format!("listing {}", dir.display()), e));
    let names = disk.list(dir).map_err(io)?;
    if names.iter().any(|n| n == META_NAME) {
        return Ok(true);
    }
    let first = segment_name(0);
    let first_temp = format!("{first}{SEGMENT_TEMP_SUFFIX}");
    let mut found = Vec::new();
    for name in names.iter().filter(|n| *n != LOCK_NAME) {
        let limit = match name.as_str() {
            n if n == KEYS_NAME => Some(empty_keyset_len_max()),
            n if n == first => Some(SEGMENT_HEADER_LEN as u64),
            n if n == first_temp || n == format!("{KEYS_NAME}.tmp") || n == format!("{META_NAME}.tmp") => None,
            _ => {
                found.push(name.clone());
                continue;
            }
        };
        if let Some(limit) = limit {
            let path = dir.join(name);
            let len = disk
                .open_read(&path)
                .and_then(|f| f.len())
                .map_err(|e| OpenError::Io(IoError::new(format!("reading {}", path.display()), e)))?;
            if len > limit {
                found.push(format!("{name} ({len} bytes)"));
            }
        }
    }
    if found.is_empty() {
        return Ok(false);
    }
    Err(OpenError::NotAStore {
        path: dir.to_owned(),
        reason: format!(
            "it has no META but holds {}; nothing was changed (a store is created only in an empty directory)",
            found.join(", ")
        ),
    })
}

/// The size of the largest keyset that holds no key (sealed or not).
fn empty_keyset_len_max() -> u64 {
    let plain = Keyset::default().encode(0, None, [0; 12]).len();
    let sealed = Keyset::default().encode(0, Some(&MasterKey::from_bytes([0; 32])), [0; 12]).len();
    plain.max(sealed) as u64
}
