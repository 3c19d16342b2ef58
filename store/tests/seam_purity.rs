//! Determinism guard: outside the real-environment files, the store's
//! source never touches the file system, the wall clock, threads or an
//! unseeded random source directly. Code that did would behave differently
//! in the simulator than in production, and fail here.

use std::path::Path;

/// Each forbidden token, and the only files allowed to use it.
const RULES: &[(&str, &[&str])] = &[
    ("std::fs", &["disk.rs"]),
    ("SystemTime", &["env.rs"]),
    ("Instant", &[]),
    ("thread::spawn", &[]),
    // The shell has no thread of its own; its wake-up slot's tests do.
    ("std::thread", &["shell/wake.rs"]),
    ("thread::sleep", &[]),
    ("getrandom", &["env.rs"]),
    ("thread_rng", &[]),
    ("rand::random", &[]),
    // Hash maps only with fixed-key SipHash and only for lookups, never
    // iterated where order could reach an answer or the disk.
    ("HashMap", &["state.rs", "plan.rs", "keys.rs"]),
    ("RandomState", &[]),
    // (An image's reader interns its pair names in the state's set.)
    ("HashSet", &["state.rs", "state/image.rs"]),
];

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_real_environment_touches_the_world() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() > 10, "found the sources");
    let mut violations = Vec::new();
    for file in &files {
        let name = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(file).unwrap();
        for (token, allowed) in RULES {
            if text.contains(token) && !allowed.contains(&name.as_str()) {
                violations.push(format!("{name} uses {token}"));
            }
        }
    }
    assert!(violations.is_empty(), "nondeterminism outside the seam:\n{}", violations.join("\n"));
}

#[test]
fn the_guard_itself_catches_a_violation() {
    let text = "fn f() { let _ = std::time::Instant::now(); }";
    assert!(RULES.iter().any(|(token, allowed)| text.contains(token) && allowed.is_empty()));
}
