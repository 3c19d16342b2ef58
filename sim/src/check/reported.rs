//! P12 loss is reported, after every recovery: recovery never drops or sets
//! aside acknowledged data silently.
//!
//! Every acknowledged batch that did not come back, and whose bytes were on
//! the medium before the recovery, lies in a range the recovery report
//! names: cut off, or set aside. A batch whose own bytes were intact (it is
//! lost only because damage before it ended the journal's valid prefix) may
//! be cut as a torn tail only where nothing on the disk proved that it had
//! been synced: a group of a later flush than the first group lost in the
//! cut is that proof (the writer starts a flush only after the one before
//! it was synced), and then it must have been set aside. And what was set
//! aside must hold it, byte for byte, in the file the report names.
//!
//! An open that was cut short by a crash, or failed half way, leaves no
//! report. After one, a batch its cuts destroyed (damaged bytes) needs no
//! report; an intact one must be found in a salvage file that appeared
//! since, by what the file's name says it holds.

use std::path::{Path, PathBuf};

use shale_store::journal::recover::set_aside_origin;
use shale_store::Truncation;

use super::durability::lost;
use super::{Checker, Phase, Promise, RecoveryView, Snapshot};
use crate::excuse::Excuse;
use crate::model::Model;

/// A range of a journal file that is now in a salvage file.
struct Aside<'a> {
    from: PathBuf,
    offset: u64,
    len: u64,
    to: &'a Path,
    /// Named by a report (else found by its name after an interrupted
    /// recovery).
    reported: bool,
}

/// What the report says was set aside; after an interrupted recovery, also
/// every salvage file that appeared since, by what its name says it holds
/// (that recovery's report was never seen): from the offset its name gives
/// to the end of the file it came from, as far as anyone can tell. Its
/// bytes must then be intact, or damage must have touched them (a lying
/// sync of the copy, say).
fn asides<'a>(view: &'a RecoveryView, dir: &Path) -> Vec<Aside<'a>> {
    let reported = view.report.set_aside.iter().map(|a| Aside {
        from: a.from.clone(),
        offset: a.offset,
        len: a.len,
        to: &a.to,
        reported: true,
    });
    // A file the report names is what the report says it is (a segment
    // moved whole after an interrupted attempt had cut it holds only what
    // was left), not what its name may suggest.
    let named = |to: &PathBuf| view.report.set_aside.iter().any(|a| &a.to == to);
    let new = |to: &&PathBuf| view.interrupted && !view.excuses.salvaged_before(to) && !named(to);
    let found = view.salvaged.iter().filter(|(to, _)| new(to)).filter_map(|(to, _)| {
        let (name, offset) = set_aside_origin(&to.file_name()?.to_string_lossy())?;
        Some(Aside { from: dir.join(name), offset, len: u64::MAX - offset, to, reported: false })
    });
    reported.chain(found).collect()
}

/// Whether cut `t` took the byte at `start` of `file`: a cut takes the
/// bytes the file held from its offset on, and no more (bytes an earlier
/// attempt had already set aside and cut were not there to take).
fn took(t: &Truncation, file: &Path, start: u64) -> bool {
    t.file == file && t.offset <= start && start < t.offset.saturating_add(t.len)
}

pub struct LossIsReported;

impl Checker for LossIsReported {
    fn promise(&self) -> Promise {
        Promise::P12LossIsReported
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        let Phase::Recovery(view) = snapshot.phase else { return Ok(()) };
        let report = &view.report;
        let dir = Path::new(crate::run::STORE_DIR);
        let asides = asides(view, dir);
        let all_lost = lost(model, snapshot);
        // The flush of the first acknowledged group a cut took.
        let first_flush_cut = |t: &Truncation| {
            all_lost
                .iter()
                .filter_map(|l| l.location)
                .filter(|l| {
                    view.excuses.file(l.inode).is_some_and(|f| f.path == t.file) && took(t, &t.file, l.range.start)
                })
                .map(|l| l.flush)
                .min()
        };
        // Where a batch's bytes (those that were on the medium) are now,
        // by this recovery's report: cut off, or in a salvage file that
        // claims them.
        let accounted = |location: &crate::journal_map::Location| {
            let file = view.excuses.file(location.inode)?;
            let start = location.range.start;
            let end = location.range.end.min(file.durable_len);
            let cut = report.truncated.iter().any(|t| took(t, &file.path, start));
            // A file found by its name holds nothing an earlier recovery
            // had cut off (see `RecoveryView::earlier_cuts`).
            let cut_earlier = view.earlier_cuts.iter().any(|t| took(t, &file.path, start));
            let claims = move |a: &Aside<'_>| {
                a.from == file.path && a.offset <= start && end <= a.offset + a.len && (a.reported || !cut_earlier)
            };
            Some((cut, claims))
        };
        for lost in &all_lost {
            let Some(location) = lost.location else { continue };
            let Some(file) = view.excuses.file(location.inode) else { continue };
            if location.range.start >= file.durable_len {
                // Its bytes never reached the medium: nothing to report.
                continue;
            }
            let start = location.range.start;
            // Only the bytes that were on the medium can be reported.
            let end = location.range.end.min(file.durable_len);
            let Some((cut, claims)) = accounted(location) else { continue };
            let aside = asides.iter().find(|a| claims(a));
            let destroyed = matches!(view.excuses.of(location), Some(Excuse::Destroyed(_)));
            if destroyed && view.excuses.len_at_open(location.inode).is_none_or(|len| len <= start) {
                // When the open that finished began, the file held nothing
                // of this batch (a crash since an interrupted open made a
                // cut a lying sync had acknowledged durable, say): this
                // recovery dropped none of it, and an open cut short may
                // drop a destroyed batch.
                continue;
            }
            if view.interrupted && !cut && aside.is_none() {
                // Cut by an attempt that never finished (its report was
                // never seen): allowed if its bytes were damaged, or if it
                // went with a torn tail, in the flush the cut began in (no
                // group of an earlier flush was lost to that cut before it
                // in its file, so nothing proved its flush synced). A batch
                // this report accounts for was still there after that cut.
                let unaccounted = |l: &crate::journal_map::Location| {
                    accounted(l).is_some_and(|(cut, claims)| !cut && !asides.iter().any(claims))
                };
                let same_file = |l: &&crate::journal_map::Location| {
                    view.excuses.file(l.inode).is_some_and(|f| f.path == file.path)
                        && l.range.start <= start
                        && unaccounted(l)
                };
                let first_flush =
                    || all_lost.iter().filter_map(|l| l.location).filter(same_file).map(|l| l.flush).min();
                if destroyed || first_flush().is_none_or(|f| f >= location.flush) {
                    continue;
                }
            }
            let on_medium = &location.bytes[..(end - start) as usize];
            let overwritten = file.overwritten_at(start, on_medium) && view.excuses.kept_through(location.inode, end);
            if destroyed && (file.replaced_at(start, &location.bytes) || overwritten) {
                // A lost or stale write left other valid frames where this
                // batch was (a group of them may begin before it), and the
                // recovery kept the file over them, so it read those groups
                // there (P1, P3, P8 and P9 check what they are) and had
                // nothing of this batch to report.
                continue;
            }
            if !cut && aside.is_none() {
                return Err(format!(
                    "batch {} at {} bytes {start}..{} was dropped, and the recovery report does not say so",
                    lost.uid,
                    file.path.display(),
                    location.range.end
                ));
            }
            if view.excuses.of(location) != Some(Excuse::AfterDamage) {
                continue;
            }
            let cut_by = report.truncated.iter().find(|t| took(t, &file.path, start));
            let proven = cut_by.is_some_and(|t| first_flush_cut(t).is_some_and(|f| f < location.flush));
            if aside.is_none() && !proven {
                // Cut as a torn tail of the flush the damage is in: nothing
                // on the disk told the store it had been synced.
                continue;
            }
            let Some(aside) = aside else {
                return Err(format!(
                    "batch {} was intact at {} bytes {start}..{}, after a group of an earlier flush, yet cut off instead of set aside",
                    lost.uid,
                    file.path.display(),
                    location.range.end
                ));
            };
            // Any file that claims its bytes will do (an interrupted
            // attempt may have left an incomplete copy beside a whole one).
            let intact = |a: &Aside<'_>| {
                let from = (start - a.offset) as usize;
                let copy = view.salvaged.get(a.to);
                let kept = copy.and_then(|f| f.durable.get(from..from + location.bytes.len()));
                let range = from as u64..(from + location.bytes.len()) as u64;
                kept == Some(location.bytes.as_slice()) || copy.is_some_and(|f| view.excuses.touched(f.inode, range))
            };
            if !asides.iter().filter(|a| claims(a)).any(intact) {
                return Err(format!("batch {}'s bytes are not intact in {}", lost.uid, aside.to.display()));
            }
        }
        Ok(())
    }
}
