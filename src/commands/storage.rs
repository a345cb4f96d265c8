//! `rxchain storage-report <data dir>`: where a stopped node's disk goes.
//!
//! Reads a private copy of the directory (as `rxchain verify` does, see
//! [`crate::store::readonly`]) and counts, for every sled tree and for every
//! key prefix of the `chain` tree (`b/` blocks, `c/` certificates, `s/…`
//! state by kind, `i/…` indexes by index, `t/`, `h/`, `m/…`), the records
//! and their key and value bytes; beside them the files on disk (sled's
//! own, and the snapshot folder) and the bytes per transaction. This is
//! the measurement behind the "bytes per lifecycle" target: what sled
//! stores logically, and what its files take.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::cli::StorageReportArgs;

/// The records under one tree or key prefix.
#[derive(Serialize, Default, Clone, Debug)]
pub struct Part {
    /// Records.
    pub records: u64,
    /// Bytes of their keys.
    pub key_bytes: u64,
    /// Bytes of their values.
    pub value_bytes: u64,
}

impl Part {
    fn add(&mut self, k: usize, v: usize) {
        self.records += 1;
        self.key_bytes += k as u64;
        self.value_bytes += v as u64;
    }

    /// Keys and values together.
    pub fn bytes(&self) -> u64 {
        self.key_bytes + self.value_bytes
    }
}

/// The whole report.
#[derive(Serialize, Debug)]
pub struct Report {
    /// Height of the stored tip.
    pub height: u64,
    /// Transactions on the chain (entries of the `t/` index).
    pub transactions: u64,
    /// Bytes of every file under the data directory.
    pub disk_bytes: u64,
    /// Of which the snapshot folder's.
    pub snapshot_file_bytes: u64,
    /// Keys and values of every tree together.
    pub logical_bytes: u64,
    /// Every sled tree, by name (`__sled__default` is sled's own).
    pub trees: BTreeMap<String, Part>,
    /// The `chain` tree by key prefix.
    pub chain: BTreeMap<String, Part>,
    /// `disk_bytes / transactions`.
    pub disk_bytes_per_tx: u64,
    /// `logical_bytes / transactions`.
    pub logical_bytes_per_tx: u64,
}

/// The prefix a `chain` key is counted under: two components for the
/// indexes, state and metadata (`i/rx/`, `s/rx/`, `m/tip`), one otherwise.
fn prefix(key: &[u8]) -> String {
    let text: String = key
        .iter()
        .take(24)
        .map(|b| {
            if b.is_ascii_graphic() {
                *b as char
            } else {
                '?'
            }
        })
        .collect();
    let mut parts = text.splitn(3, '/');
    let first = parts.next().unwrap_or("");
    match first {
        "i" | "s" | "m" => match parts.next() {
            Some(second) if !second.contains('?') => format!("{first}/{second}"),
            _ => format!("{first}/"),
        },
        _ => format!("{first}/"),
    }
}

fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    if !dir.exists() {
        return Ok(0);
    }
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let meta = e.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&e.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Measures the stopped node's directory `args.data_dir`.
pub fn report(args: &StorageReportArgs) -> anyhow::Result<Report> {
    let (_, copy) = super::open_stopped(&args.data_dir, args.genesis.as_deref())?;
    let disk_bytes = dir_bytes(&args.data_dir)?;
    let snapshot_file_bytes = dir_bytes(&args.data_dir.join(crate::store::sm::SNAPSHOT_DIR))?;
    let db = &copy.storage.db;
    let mut trees = BTreeMap::new();
    let mut chain = BTreeMap::<String, Part>::new();
    for name in db.tree_names() {
        let label = String::from_utf8_lossy(&name).into_owned();
        let tree = db.open_tree(&name)?;
        let mut part = Part::default();
        for kv in tree.iter() {
            let (k, v) = kv?;
            part.add(k.len(), v.len());
            if label == "chain" {
                chain.entry(prefix(&k)).or_default().add(k.len(), v.len());
            }
        }
        trees.insert(label, part);
    }
    let logical_bytes = trees.values().map(Part::bytes).sum();
    let transactions = chain.get("t/").map_or(0, |p| p.records);
    let per = |b: u64| b.checked_div(transactions).unwrap_or(0);
    Ok(Report {
        height: copy.storage.chain.tip().height,
        transactions,
        disk_bytes,
        snapshot_file_bytes,
        logical_bytes,
        trees,
        chain,
        disk_bytes_per_tx: per(disk_bytes),
        logical_bytes_per_tx: per(logical_bytes),
    })
}

/// Prints the report as a table, or as JSON with `--json`.
pub fn run(args: StorageReportArgs) -> anyhow::Result<()> {
    let r = report(&args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "height {}, {} transactions; {} bytes on disk ({} in snapshot files), {} bytes of keys and values",
        r.height, r.transactions, r.disk_bytes, r.snapshot_file_bytes, r.logical_bytes
    );
    println!(
        "per transaction: {} bytes on disk, {} logical",
        r.disk_bytes_per_tx, r.logical_bytes_per_tx
    );
    let rows = |title: &str, parts: &BTreeMap<String, Part>| {
        println!(
            "\n{title:<24} {:>10} {:>12} {:>14} {:>10}",
            "records", "key bytes", "value bytes", "per tx"
        );
        for (name, p) in parts {
            let per = p.bytes().checked_div(r.transactions).unwrap_or(0);
            println!(
                "{name:<24} {:>10} {:>12} {:>14} {:>10}",
                p.records, p.key_bytes, p.value_bytes, per
            );
        }
    };
    rows("tree", &r.trees);
    rows("chain prefix", &r.chain);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::prefix;

    #[test]
    fn keys_are_counted_under_their_kind() {
        assert_eq!(prefix(b"b/\0\0\0\0\0\0\0\x01"), "b/");
        assert_eq!(prefix(b"i/rx/\x01\x02"), "i/rx");
        assert_eq!(prefix(b"s/rx/\x01"), "s/rx");
        assert_eq!(prefix(b"m/tip"), "m/tip");
        assert_eq!(prefix(b"t/\xff\xfe"), "t/");
        assert_eq!(prefix(b"s/\xff/x"), "s/");
    }
}
