//! Node processes that bind port 0: the node writes the address it bound
//! into its `addr_file`, and the harness reads the port from there.
//!
//! Choosing a free port in the test, releasing it and handing it to a
//! process races with every other socket on the machine (a connection of
//! another test can take the port in between, and the node then fails to
//! bind). Binding port 0 in the node itself cannot collide.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// The settings lines for a node that binds an ephemeral loopback port and
/// writes it into `node{id}.addr` (relative to its settings file).
pub fn listen_any(id: u64) -> String {
    format!("listen = \"127.0.0.1:0\"\naddr_file = \"node{id}.addr\"\n")
}

/// The address file [`listen_any`] names, under the settings' directory.
pub fn addr_file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("node{id}.addr"))
}

/// The log file a harness sends node `id`'s stderr to, under `dir`.
pub fn log_file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("node{id}.log"))
}

/// The last lines of node `id`'s log, for a failure message.
pub fn log_tail(dir: &Path, id: u64) -> String {
    let text = std::fs::read_to_string(log_file(dir, id)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Opens node `id`'s log file for its stderr (appending across restarts).
pub fn log_sink(dir: &Path, id: u64) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file(dir, id))
        .expect("node log file")
}

/// Waits until node `id`, spawned as `child` with its settings in `dir`,
/// has written its address file, and returns the port it bound. Panics,
/// with the tail of its log, if the process exits first or after a minute.
pub fn wait_bound(child: &mut Child, dir: &Path, id: u64) -> u16 {
    let file = addr_file(dir, id);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            if let Some(addr) = text
                .lines()
                .next()
                .and_then(|l| l.parse::<std::net::SocketAddr>().ok())
            {
                return addr.port();
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "node {id} exited before it listened ({status}):\n{}",
                log_tail(dir, id)
            );
        }
        assert!(
            Instant::now() < deadline,
            "node {id} did not listen within a minute:\n{}",
            log_tail(dir, id)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Rewrites the `listen` line of the settings file `cfg` to the port the
/// node first bound, so that a restart comes back on the address its peers
/// know it by.
pub fn pin_listen(cfg: &Path, id: u64, port: u16) {
    let text = std::fs::read_to_string(cfg).expect("node settings");
    let text = text.replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(cfg, text).expect("rewrite node settings");
    forget_addr(cfg.parent().expect("settings dir"), id);
}

/// Removes node `id`'s address file, so that [`wait_bound`] waits for the
/// next process to listen rather than reading the last one's address.
pub fn forget_addr(dir: &Path, id: u64) {
    match std::fs::remove_file(addr_file(dir, id)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot remove node {id}'s address file: {e}"),
    }
}

/// Spawns `rxchain node --config cfg` for node `id` (the binary `bin`),
/// with its stderr in [`log_file`] at the level `CLUSTER_TEST_LOG` gives
/// (default `warn`). Its old address file is removed first, so
/// [`wait_bound`] waits for this process.
pub fn spawn_node(bin: &str, cfg: &Path, id: u64) -> Child {
    let dir = cfg.parent().expect("settings dir");
    forget_addr(dir, id);
    std::process::Command::new(bin)
        .args(["node", "--config"])
        .arg(cfg)
        // The node reads every RXCHAIN_ variable as a setting; the soak
        // switch is the tests', not the node's.
        .env_remove("RXCHAIN_SOAK")
        .env(
            "RXCHAIN_LOG",
            std::env::var("CLUSTER_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(log_sink(dir, id))
        .spawn()
        .expect("spawn rxchain node")
}
