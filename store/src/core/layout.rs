//! What a directory holds, decided before anything in it is written.
//!
//! A directory with `META` is a store. One without is a place to create a
//! store only if it holds nothing that could be data: nothing at all, or
//! exactly what a creation that was interrupted leaves behind (creation
//! writes the keyset, then segment 0, then `META`). Such leftovers are
//! proven empty by segment 0 being too short to hold one frame: entity keys
//! and payloads live only in the journal, and the keyset's wrapping keys
//! protect nothing without it. Store files beyond that, without `META`, are
//! a partial store: refused untouched, unless salvaging. Files no store
//! makes are refused untouched, always.

use std::path::Path;

use crate::disk::{Disk, ReadAt};
use crate::error::{IoError, OpenError};
use crate::journal::checkpoint::INDEX_NAME;
use crate::journal::recover::SALVAGE_DIR;
use crate::journal::segment::{parse_segment_name, segment_name, SEGMENT_TEMP_SUFFIX};
use crate::keyset::{KEYS_COPY_NAME, KEYS_NAME};
use crate::limits::SEGMENT_HEADER_LEN;
use crate::meta::META_NAME;

use super::LOCK_NAME;

/// What a directory holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A store: it has `META`.
    Store,
    /// Nothing that could be data: a store may be created here.
    Empty,
    /// Files of a store but no `META` (named, with what could be data).
    /// Refused without salvage; salvage rebuilds `META` from the segments,
    /// or, if no segment header names a store, sets the files aside.
    Partial(Vec<String>),
}

/// Whether `name` is a file a store (or its creation) makes.
fn store_file(name: &str) -> bool {
    let base = name.strip_suffix(".tmp").unwrap_or(name);
    let base = base.strip_suffix(SEGMENT_TEMP_SUFFIX).unwrap_or(base);
    [KEYS_NAME, KEYS_COPY_NAME, META_NAME, SALVAGE_DIR, INDEX_NAME].contains(&base)
        || parse_segment_name(base).is_some()
}

/// What `dir` holds; a refusal if it holds files no store makes.
pub fn classify<D: Disk>(disk: &mut D, dir: &Path) -> Result<Layout, OpenError> {
    let io = |e| OpenError::Io(IoError::new(format!("listing {}", dir.display()), e));
    let names = disk.list(dir).map_err(io)?;
    if names.iter().any(|n| n == META_NAME) {
        return Ok(Layout::Store);
    }
    let foreign: Vec<&String> = names.iter().filter(|n| *n != LOCK_NAME && !store_file(n)).collect();
    if !foreign.is_empty() {
        return Err(OpenError::NotAStore {
            path: dir.to_owned(),
            reason: format!(
                "it holds {} and no store META; nothing was changed (a store is created only in an empty directory)",
                foreign.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let first = segment_name(0);
    let mut found = Vec::new();
    for name in names.iter().filter(|n| *n != LOCK_NAME) {
        let segment = parse_segment_name(name).is_some();
        if !segment && name != SALVAGE_DIR {
            continue; // keysets and temporary files: never data on their own
        }
        let len = match segment {
            true => {
                let path = dir.join(name);
                let file = disk.open_read(&path);
                file.and_then(|f| f.len())
                    .map_err(|e| OpenError::Io(IoError::new(format!("reading {}", path.display()), e)))?
            }
            false => u64::MAX,
        };
        if *name != first || len > SEGMENT_HEADER_LEN as u64 {
            found.push(if segment { format!("{name} ({len} bytes)") } else { name.clone() });
        }
    }
    Ok(if found.is_empty() { Layout::Empty } else { Layout::Partial(found) })
}
