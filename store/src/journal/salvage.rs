//! Salvage's side of recovery: the `salvage/` directory and the moving
//! and copying of damaged journal files (and META, and keyset copies) into
//! it, never over an earlier salvage's files and never deleting anything.
//! The names it gives say where the bytes came from.

use std::path::{Path, PathBuf};

use super::read::read_range;
use super::recover::truncate;
use super::report::{RecoveryReport, SetAside};
use super::segment::parse_segment_name;
use crate::disk::{Disk, ReadAt};
use crate::error::{IoError, OpenError};
use crate::limits::UNREADABLE_GRANULE;

pub const SALVAGE_DIR: &str = "salvage";

fn io(context: String) -> impl FnOnce(std::io::Error) -> OpenError {
    move |e| OpenError::Io(IoError::new(context, e))
}

/// The directory salvage moves things into, created (durably) if needed.
pub(crate) fn salvage_dir<D: Disk>(disk: &mut D, dir: &Path) -> Result<PathBuf, OpenError> {
    let aside = dir.join(SALVAGE_DIR);
    if !disk.exists(&aside).map_err(io(format!("looking for {}", aside.display())))? {
        disk.create_dir_all(&aside).map_err(io(format!("creating {}", aside.display())))?;
        disk.sync_dir(dir).map_err(io(format!("syncing {}", dir.display())))?;
    }
    Ok(aside)
}

/// The name under which salvage sets aside the bytes of journal file
/// `name` from byte `cut` on (a whole file keeps its own name). A name
/// already used gets `.1`, `.2`, ... appended.
pub fn set_aside_name(name: &str, cut: u64) -> String {
    format!("{name}.from-{cut}")
}

/// Which journal file, and from which byte, a file salvage set aside holds:
/// the inverse of [`set_aside_name`] (and of a whole file's own name).
pub fn set_aside_origin(file_name: &str) -> Option<(String, u64)> {
    let base = match file_name.rsplit_once('.') {
        Some((base, n)) if n.parse::<u32>().is_ok() && !n.is_empty() => base,
        _ => file_name,
    };
    match base.rsplit_once(".from-") {
        Some((name, cut)) => Some((name.to_owned(), cut.parse().ok()?)),
        None => parse_segment_name(base).map(|_| (base.to_owned(), 0)),
    }
}

/// A name in `aside` that no earlier salvage has used: set-aside data is
/// never overwritten.
fn unused_name<D: Disk>(disk: &mut D, aside: &Path, name: &str) -> Result<PathBuf, OpenError> {
    for n in 0u32.. {
        let candidate = if n == 0 { aside.join(name) } else { aside.join(format!("{name}.{n}")) };
        if !disk.exists(&candidate).map_err(io(format!("looking in {}", aside.display())))? {
            return Ok(candidate);
        }
    }
    unreachable!("some name is free")
}

/// Copies the whole of `path` into `aside` (zeros where it cannot be read,
/// each such range reported), leaving `path` as it is.
pub(crate) fn copy_aside<D: Disk>(
    disk: &mut D,
    aside: &Path,
    path: &Path,
    report: &mut RecoveryReport,
) -> Result<(), OpenError> {
    let len = disk.open_read(path).and_then(|f| f.len()).map_err(io(format!("reading {}", path.display())))?;
    let rest = read_aside(disk, path, 0, len, report)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    write_aside(disk, aside, path, &name, 0, &rest, report)
}

/// Bytes `from..len` of `path`, zeros where they cannot be read (each such
/// range reported).
fn read_aside<D: Disk>(
    disk: &mut D,
    path: &Path,
    from: u64,
    len: u64,
    report: &mut RecoveryReport,
) -> Result<Vec<u8>, OpenError> {
    let source = disk.open_read(path).map_err(io(format!("reading {}", path.display())))?;
    let mut rest = Vec::with_capacity(usize::try_from(len.saturating_sub(from)).unwrap_or(0));
    let mut at = from;
    while at < len {
        let (bytes, unreadable) = read_range(&source, at..len);
        rest.extend_from_slice(&bytes);
        at += bytes.len() as u64;
        if let Some(u) = unreadable {
            // Zeros up to the end of the unreadable granule, and no further.
            let skip = ((u.offset / UNREADABLE_GRANULE + 1) * UNREADABLE_GRANULE).min(len) - at;
            rest.resize(rest.len() + skip as usize, 0);
            match report.unreadable.last_mut() {
                Some((file, range)) if file == path && range.end == at => range.end += skip,
                _ => report.unreadable.push((path.to_owned(), at..at + skip)),
            }
            at += skip;
        }
    }
    Ok(rest)
}

/// Writes `bytes` (bytes `offset..` of `from`) to a new, durable file in
/// `aside` under `name`, or a variant of it no salvage used before.
fn write_aside<D: Disk>(
    disk: &mut D,
    aside: &Path,
    from: &Path,
    name: &str,
    offset: u64,
    bytes: &[u8],
    report: &mut RecoveryReport,
) -> Result<(), OpenError> {
    let target = unused_name(disk, aside, name)?;
    let context = format!("setting {} aside", target.display());
    let mut copy = disk.create(&target).map_err(io(context.clone()))?;
    disk.write_at(&mut copy, 0, bytes).map_err(io(context.clone()))?;
    disk.sync(&mut copy).map_err(io(context.clone()))?;
    disk.sync_dir(aside).map_err(io(context))?;
    report.set_aside.push(SetAside { from: from.to_owned(), to: target, offset, len: bytes.len() as u64 });
    Ok(())
}

/// Copies bytes `cut..len` of the damaged segment `path` into `aside`
/// (zeros where they cannot be read, each such range reported), then
/// truncates the segment to `cut`.
pub(crate) fn copy_rest_aside<D: Disk>(
    disk: &mut D,
    aside: &Path,
    path: &Path,
    cut: u64,
    len: u64,
    report: &mut RecoveryReport,
) -> Result<(), OpenError> {
    let rest = read_aside(disk, path, cut, len, report)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    write_aside(disk, aside, path, &set_aside_name(&name, cut), cut, &rest, report)?;
    let mut file = disk.open(path).map_err(io(format!("opening {}", path.display())))?;
    truncate(disk, &mut file, path, cut)
}

/// Renames `path` into `aside` under a name never used there before.
pub(crate) fn move_aside<D: Disk>(
    disk: &mut D,
    dir: &Path,
    aside: &Path,
    path: &Path,
    report: &mut RecoveryReport,
) -> Result<(), OpenError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let target = unused_name(disk, aside, &name)?;
    let context = format!("setting {} aside", path.display());
    let len = disk.open_read(path).and_then(|f| f.len()).map_err(io(context.clone()))?;
    disk.rename(path, &target).map_err(io(context.clone()))?;
    disk.sync_dir(aside).map_err(io(context.clone()))?;
    disk.sync_dir(dir).map_err(io(context))?;
    report.set_aside.push(SetAside { from: path.to_owned(), to: target, offset: 0, len });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::segment::segment_name;

    #[test]
    fn set_aside_names_say_where_their_bytes_came_from() {
        let segment = segment_name(7);
        assert_eq!(set_aside_origin(&set_aside_name(&segment, 4096)), Some((segment.clone(), 4096)));
        assert_eq!(set_aside_origin(&format!("{}.2", set_aside_name(&segment, 64))), Some((segment.clone(), 64)));
        assert_eq!(set_aside_origin(&segment), Some((segment.clone(), 0)));
        assert_eq!(set_aside_origin(&format!("{segment}.1")), Some((segment, 0)));
        assert_eq!(set_aside_origin("META"), None);
    }
}
