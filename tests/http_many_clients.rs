//! One `archiver serve`, eight clients, eight repositories, all at once: each client has its own
//! key file, cache and data (a few MiB: a file with the same content everywhere, a file of its
//! own, small files). All eight `keygen`s, then all eight `create --checkpoint-bytes` run
//! concurrently; then, concurrently again, each client stores a second archive while it
//! extracts the first. Every command succeeds, every archive restores byte-exact, each
//! repository's `fsck --verify-data` is clean, and the server neither died nor panicked.

mod util;

use std::process::Child;
use util::crash::wait_out;
use util::server::Server;
use util::*;

const CLIENTS: u64 = 8;

/// One client: its own environment (key file, cache, data) speaking to repository `repo{i}`.
struct Client {
    env: Env,
    http: Env,
}

fn all_succeed(what: &str, children: Vec<(u64, Child)>) {
    for (i, child) in children {
        let out = wait_out(child);
        out.assert_no_panic();
        assert_eq!(out.code, 0, "client {i}: {what} failed:\n{}", out.stderr);
    }
}

#[test]
fn eight_clients_on_eight_repositories_at_once() {
    let base = Env::bare();
    let mut server = Server::start(&base.path("store"));
    let clients: Vec<Client> = (0..CLIENTS)
        .map(|i| {
            let env = Env::bare();
            write_data(&env.path("data/common.bin"), 1, 2 * MIB);
            write_data(&env.path(format!("data/own-{i}.bin")), 100 + i, MIB + i * 256 * 1024);
            small_tree(&env.path("data/small"), 200 + i, 8, 60_000);
            write_data(&env.path("more/later.bin"), 300 + i, MIB);
            let http = server.client(&env, &format!("repo{i}"));
            Client { env, http }
        })
        .collect();

    let spawn_all = |args: &dyn Fn(&Client) -> Vec<String>| -> Vec<(u64, Child)> {
        clients
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let a = args(c);
                (i as u64, c.http.spawn_with(&[], &a.iter().map(String::as_str).collect::<Vec<_>>()))
            })
            .collect()
    };
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    all_succeed("keygen", spawn_all(&|_| strings(&["keygen"])));
    all_succeed(
        "create one",
        spawn_all(&|_| strings(&["create", "--checkpoint-bytes", "1M", "one", "data"])),
    );

    // A second archive while the first is extracted, by every client at once.
    let outs: Vec<std::path::PathBuf> = clients.iter().map(|c| c.env.fresh_dir("out")).collect();
    let mut running = spawn_all(&|_| strings(&["create", "two", "data", "more"]));
    running.extend(clients.iter().zip(&outs).enumerate().map(|(i, (c, out))| {
        (i as u64, c.http.spawn_with(&[], &["extract", "one", "-C", out.to_str().unwrap()]))
    }));
    all_succeed("create two / extract one", running);

    for (i, (c, out)) in clients.iter().zip(&outs).enumerate() {
        assert_same_tree(&c.env.path("data"), &out.join("data"));
        assert_eq!(c.http.list(), ["one", "two"], "client {i}");
        let two = c.http.extract("two", &[]);
        assert_same_tree(&c.env.path("data"), &two.join("data"));
        assert_same_tree(&c.env.path("more"), &two.join("more"));
        let fsck = c.http.ok(["fsck", "--verify-data"]);
        assert!(fsck.stdout.contains("all intact"), "client {i}: fsck:\n{}", fsck.stdout);
        assert!(!fsck.stdout.contains("nothing references"), "client {i}: fsck:\n{}", fsck.stdout);
    }
    // Each repository holds its own client's data only: eight separate repositories.
    let ids: std::collections::BTreeSet<Vec<u8>> =
        (0..CLIENTS).map(|i| std::fs::read(server.store.join(format!("repo{i}/config"))).unwrap()).collect();
    assert_eq!(ids.len(), CLIENTS as usize, "repositories share a config");
    assert!(server.is_running(), "the server died");
    assert!(!server.log().contains("panicked"), "the server panicked:\n{}", server.log());
}
