//! What a directory holds, decided before anything in it is written.
//!
//! A directory with `META` is a store. One without is a place to create a
//! store only if it holds nothing that could be data: nothing at all, or
//! exactly what a creation that was interrupted leaves behind (creation
//! writes the keyset, then segment 0, then `META`). Such leftovers are
//! proven empty by segment 0 being too short to hold one frame: entity keys
//! and payloads live only in the journal, and the keyset's wrapping keys
//! protect nothing without it. Anything else is refused untouched.

use std::path::Path;

use crate::disk::{Disk, ReadAt};
use crate::error::{IoError, OpenError};
use crate::journal::segment::{segment_name, SEGMENT_TEMP_SUFFIX};
use crate::keyset::{KEYS_COPY_NAME, KEYS_NAME};
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
        let leftover = [KEYS_NAME, KEYS_COPY_NAME, &first_temp]
            .into_iter()
            .flat_map(|n| [n.to_owned(), format!("{n}.tmp")])
            .chain([format!("{META_NAME}.tmp")])
            .any(|n| n == *name);
        let limit = match name.as_str() {
            n if n == first => Some(SEGMENT_HEADER_LEN as u64),
            _ if leftover => None,
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
