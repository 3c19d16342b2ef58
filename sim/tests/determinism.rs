//! A seed is a complete description of a run: the same seed gives the same
//! trace hash in this process and in another one, the printed repro command
//! reproduces a failure exactly (violation, step, trace hash), and
//! `--check-determinism` confirms it. Any HashMap order, wall-clock read or
//! unseeded draw reaching the schedule would break this.

mod common;

use std::process::Command;

use shale_sim::scenario::Expect;

fn line_starting<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{text}"))
}

#[test]
fn the_same_seed_gives_the_same_trace_in_process() {
    for (_, scenario) in common::scenarios(Expect::Pass) {
        let a = shale_sim::run::run(&scenario, 42);
        let b = shale_sim::run::run(&scenario, 42);
        assert_eq!(a.trace_hash, b.trace_hash, "{}", scenario.name);
        assert_eq!((a.steps, a.sim_ns), (b.steps, b.sim_ns));
        let c = shale_sim::run::run(&scenario, 43);
        assert_ne!(a.trace_hash, c.trace_hash, "{}: different seeds, different runs", scenario.name);
    }
}

#[test]
fn the_same_seed_gives_the_same_trace_across_processes() {
    let (code_a, a) = common::shale_sim(&["run", "scenarios/swarm.toml", "--seed", "0x5eed"]);
    let (code_b, b) = common::shale_sim(&["run", "scenarios/swarm.toml", "--seed", "24301"]);
    assert_eq!((code_a, code_b), (0, 0), "{a}");
    assert_eq!(line_starting(&a, "PASS"), line_starting(&b, "PASS"), "decimal and hex name the same seed");
    let (code, out) = common::shale_sim(&["run", "scenarios/torn-writes.toml", "--seed", "9", "--check-determinism"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("determinism: the seed ran twice with the same trace"));
}

#[test]
fn the_printed_repro_command_reproduces_the_failure_exactly() {
    let (code, out) = common::shale_sim(&["run", "scenarios/canary-ack-before-fsync.toml", "--seed", "1"]);
    assert_eq!(code, 10, "a correctness violation exits 10:\n{out}");
    assert!(out.starts_with("SEED=0x0000000000000001"), "the seed is printed first");
    let repro = line_starting(&out, "reproduce: ").trim_start_matches("reproduce: ");
    let args: Vec<&str> = repro.split_whitespace().skip_while(|w| *w != "--").skip(1).collect();
    let (code_again, again) = common::shale_sim(&args);
    assert_eq!(code_again, code);
    assert_eq!(line_starting(&out, "VIOLATION"), line_starting(&again, "VIOLATION"), "same violation, same step");
    let hash = |text: &str| line_starting(text, "steps=").split_whitespace().last().unwrap().to_owned();
    assert_eq!(hash(&out), hash(&again), "same trace hash");
}

#[test]
fn the_seed_can_come_from_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_shale-sim"))
        .args(["run", "scenarios/crash-recovery.toml"])
        .env("SHALE_SEED", "0x7")
        .current_dir(common::scenarios_dir().join(".."))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("SEED=0x0000000000000007"), "{text}");
}
