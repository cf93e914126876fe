//! The hand-made inputs under tests/data/form-*/: every valid one composes and passes the
//! independent checkers; every invalid one is rejected with the path its README documents.

mod common;

use common::*;
use hujjat::compose::{ComposeContext, Composer};
use std::path::{Path, PathBuf};

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

/// README rows `| \`file\` | \`path\`, … |` → (file name, first documented path)
fn documented(readme: &str) -> Vec<(String, String)> {
    readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').collect();
            let file = cols.get(1)?.trim().trim_matches('`').rsplit('/').next()?.to_string();
            let path = cols.get(2)?.split('`').nth(1)?.to_string();
            (file.ends_with(".json") && !path.contains(' ')).then_some((file, path))
        })
        .collect()
}

#[test]
fn hand_made_inputs_behave_as_documented() {
    let composer = Composer::builtin().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut valid = Vec::new();
    let mut rejected = 0;
    for form in ["003", "096"] {
        let dir = project_root().join(format!("tests/data/form-{form}"));
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        let docs = documented(&readme);
        let mut invalid: Vec<PathBuf> = json_files(&dir)
            .into_iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("invalid-"))
            .collect();
        if dir.join("invalid").is_dir() {
            invalid.extend(json_files(&dir.join("invalid")));
        }
        for f in json_files(&dir) {
            if invalid.contains(&f) {
                continue;
            }
            let input = read_json(&f);
            let ctx = ComposeContext::new(uuid::Uuid::new_v4(), chrono::Utc::now().fixed_offset());
            let b = composer.compose_any(&input, &ctx).unwrap_or_else(|e| panic!("{}: {:?}", f.display(), e.issues()));
            let o = out.path().join(format!("{form}-{}", f.file_name().unwrap().to_string_lossy()));
            std::fs::write(&o, serde_json::to_vec(&b).unwrap()).unwrap();
            valid.push(o);
        }
        for f in invalid {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            let input = read_json(&f);
            let ctx = ComposeContext::new(uuid::Uuid::new_v4(), chrono::Utc::now().fixed_offset());
            let err = composer.compose_any(&input, &ctx).err().unwrap_or_else(|| panic!("{name} must be rejected"));
            let exprs: Vec<String> = err.issues().into_iter().filter_map(|i| i.expression).collect();
            let (_, want) = docs
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{name} is not documented in the README"));
            assert!(exprs.contains(want), "{name}: expected an issue at {want}, got {exprs:?}");
            rejected += 1;
        }
    }
    assert!(valid.len() >= 20 && rejected >= 20, "{} valid, {rejected} invalid", valid.len());
    oracle("fhir-validate", &[], &valid);
    oracle("dhp-profile-check", &[], &valid);
}
