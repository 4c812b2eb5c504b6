//! `fsck --verify-data=N%`: reads and authenticates a random sample of the packs holding about N%
//! of the stored bytes (to bound download costs on S3), says so, finds damage in what it reads,
//! and never clears a damage mark for a pack it did not read. Bad shares are one line, exit 1.

mod util;

use serde_json::Value;
use util::*;

fn fsck_json(env: &Env, arg: &str) -> (i32, Value) {
    let out = env.run(["--json", "fsck", arg]);
    let v: Value = serde_json::from_str(out.stdout.lines().last().expect("a summary")).unwrap();
    (out.code, v)
}

#[test]
fn a_sample_reads_about_its_share_and_a_full_check_reads_all() {
    let env = Env::new();
    for i in 0..12 {
        write_data(&env.path(format!("d{i}/f")), 100 + i, MIB);
        env.create(&format!("a{i}"), &[&format!("d{i}")]);
    }
    let (code, all) = fsck_json(&env, "--verify-data");
    assert_eq!(code, 0, "{all}");
    let packs = env.repo_files().keys().filter(|k| k.starts_with("packs/")).count() as u64;
    assert!(packs >= 12, "one pack per archive at least: {packs}");
    assert_eq!(all["packs_verified"], Value::Null, "a full check is not a sample: {all}");
    let stored = all["bytes_indexed"].as_u64().unwrap();

    let (code, half) = fsck_json(&env, "--verify-data=50%");
    assert_eq!(code, 0, "{half}");
    let (read, total) = (half["packs_verified"].as_u64().unwrap(), half["packs"].as_u64().unwrap());
    assert_eq!(total, packs);
    assert!((packs / 2 - 1..=packs / 2 + 2).contains(&read), "50% read {read} of {total} packs");
    assert!(half["blocks_verified"].as_u64().unwrap() < all["blocks_verified"].as_u64().unwrap());
    let out = env.ok(["fsck", "--verify-data=25%"]);
    assert!(out.stdout.contains("verified a random sample"), "{}", out.stdout);
    let read = half["bytes_read"].as_u64().unwrap();
    assert!(read < stored, "the plain check reads metadata only: {read} of {stored}");

    for bad in ["--verify-data=0", "--verify-data=101%", "--verify-data=x", "--verify-data=-5%"] {
        env.run(["fsck", bad]).assert_one_line_error(1).assert_stderr_contains("--verify-data");
    }
}

#[test]
fn damage_in_a_sampled_pack_is_found_and_a_sample_never_clears_a_mark() {
    let env = Env::new();
    for i in 0..2 {
        write_data(&env.path(format!("d{i}/f")), 1 + i, 2 * MIB);
        env.create(&format!("a{i}"), &[&format!("d{i}")]);
    }
    let packs: Vec<String> = env.repo_files().into_keys().filter(|k| k.starts_with("packs/")).collect();
    assert_eq!(packs.len(), 2, "{packs:?}");
    flip_bit(&env.repo.join(&packs[0]), 1000);
    let (code, v) = fsck_json(&env, "--verify-data");
    assert_eq!(code, 1, "the damage must be found: {v}");
    assert!(v["blocks_damaged"].as_u64().unwrap() > 0, "{v}");
    // Half the bytes: one of the two packs. Samples that read the damaged one find it; one that
    // reads only the intact pack must leave the recorded damage in place.
    let (mut found, mut missed) = (0, 0);
    for _ in 0..40 {
        let (code, v) = fsck_json(&env, "--verify-data=50%");
        assert_eq!(v["packs_verified"], 1, "{v}");
        match v["blocks_damaged"].as_u64().unwrap() {
            0 => missed += 1,
            _ => found += 1,
        }
        assert_eq!(code, 1, "the recorded damage is reported whether or not the sample read it: {v}");
        if found > 0 && missed > 0 {
            break;
        }
    }
    assert!(found > 0 && missed > 0, "40 samples of one pack in two always chose the same: {found} {missed}");
    assert_eq!(fsck_json(&env, "--verify-data").0, 1, "a full check still finds the damage");
}
