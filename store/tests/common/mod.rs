//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use shale_store::{Coordinate, NewEvent, Options};

pub mod faulty;

pub fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, "main").unwrap()
}

pub fn event(entity: &str, kind: &str, payload: &[u8]) -> NewEvent {
    NewEvent::new(coord(entity), kind, payload.to_vec())
}

pub fn small_segments() -> Options {
    Options { segment_size: 4096, ..Options::default() }
}

/// The journal segment files of a store directory, in order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
}

/// Every file under `dir` (recursively) with its bytes: a directory's
/// state, to compare before and after an operation that must change nothing.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    out
}
