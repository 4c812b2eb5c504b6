//! nightly-backup.sh's exit-code table, driven by a stand-in for archiver that exits with each
//! code (tests/nightly_scripts.rs runs the scripts against the real binary).

mod util;

use util::nightly::*;
use util::*;

/// The exit-code table of nightly-backup.sh, driven by a stand-in for archiver that exits with
/// each code: 0 is quiet, everything else alerts with the code and archiver's message, and the
/// script exits with archiver's code. Also: the arguments it passes, and alerts on stderr
/// without ALERT_CMD.
#[test]
fn the_backup_script_alerts_on_every_exit_code() {
    let env = Env::bare();
    let fake = env.path("fake-archiver");
    let args_file = env.path("fake-args");
    write(
        &fake,
        format!(
            r#"#!/bin/sh
printf '%s\n' "$@" >'{args}'
[ "$FAKE_CODE" = 3 ] && printf '%s\n' '{{"message_type":"warning","message":"cannot read \"a\\\\b\": denied"}}'
printf '%s\n' '{{"message_type":"summary","command":"create","warnings":0}}'
[ "$FAKE_CODE" = 137 ] && kill -9 $$
[ "$FAKE_CODE" = 0 ] || [ "$FAKE_CODE" = 3 ] || printf '%s\n' '{{"message_type":"exit_error","code":'"$FAKE_CODE"',"message":"fake failure"}}' >&2
exit "$FAKE_CODE"
"#,
            args = args_file.display()
        )
        .as_bytes(),
    );
    chmod(&fake, 0o755);
    let key = env.path("write.key");
    write(&key, b"# archiver key file (access: only the write key)\naccess-write 00\n");
    let host = Host::new(&env, "host", &key);
    let fake_s = fake.to_str().unwrap();

    for jq in jq_modes() {
        for (code, says) in [
            (0, ""),
            (3, r#"exit 3, stored but incomplete: 1 warning(s): cannot read "a\\b": denied"#),
            (1, "exit 1, failed, the repository is unchanged: fake failure"),
            (2, "exit 2, failed after the repository changed"),
            (130, "exit 130, interrupted by SIGINT"),
            (143, "exit 143, interrupted by SIGTERM"),
            (137, "exit 137, archiver died of signal 9"),
            (42, "exit 42, unexpected exit code: fake failure"),
        ] {
            let before = host.alerts().len();
            let code_s = code.to_string();
            let out = host.backup(3, &[("ARCHIVER", fake_s), ("FAKE_CODE", &code_s), ("JQ", jq)]);
            assert_eq!(out.code, code, "the script exits with archiver's code: {out:?}");
            let alerts = host.alerts();
            if code == 0 {
                assert_eq!(alerts.len(), before, "exit 0 alerted: {alerts:?}");
                continue;
            }
            assert_eq!(alerts.len(), before + 1, "exit {code}: one alert expected: {alerts:?}");
            let a = &alerts[before];
            assert!(a.contains(says), "exit {code} (JQ={jq:?}): the alert should say {says:?}: {a}");
            assert!(a.contains(&name_of(3)) && a.contains("nightly-2026-01-08.jsonl"), "{a}");
            if code == 2 {
                assert!(a.contains(&format!("{}.part", name_of(3))), "{a}");
            }
        }
    }
    let args = std::fs::read_to_string(&args_file).unwrap();
    let time = (NIGHT0 + 3 * DAY).to_string();
    let expected =
        ["--json", "--no-progress", "create", "--checkpoint-bytes", "1G", "--creationtime", &time, "--"];
    assert_eq!(args.lines().collect::<Vec<_>>(), [&expected[..], &[&name_of(3), "data"]].concat());

    // Every run logged, each ending with its job_result; stderr's exit_error objects included.
    let lines = host.log_lines("nightly-");
    let results = of_type(&lines, "job_result");
    assert_eq!(results.len(), 8 * jq_modes().len());
    assert_eq!(of_type(&lines, "exit_error").len(), 5 * jq_modes().len());

    // Without ALERT_CMD the alert goes to stderr (cron mails it).
    let out = host.backup(4, &[("ARCHIVER", fake_s), ("FAKE_CODE", "1"), ("ALERT_CMD", "")]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("ALERT") && out.stderr.contains("exit 1"), "{out:?}");
    // A binary that is not there: 127, alerted.
    let out = host.backup(4, &[("ARCHIVER", "/nonexistent/archiver")]);
    assert_eq!(out.code, 127, "{out:?}");
    assert!(host.alerts().last().unwrap().contains("cannot run archiver"));
}
