//! The committed demo fixtures are exactly what the demo derives: the
//! genesis document and the demo-only keys. Regenerate them after changing
//! `fixtures/demo/consortium.json` with `RXCHAIN_REGENERATE=1 cargo test --test fixtures`.

use std::path::PathBuf;

use rxchain::demo::{admin_key, data_key, node_key, staff_key, Demo};
use serde_json::{json, Value};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/demo")
        .join(name)
}

fn keys_document(demo: &Demo) -> Value {
    let mut orgs = serde_json::Map::new();
    for o in &demo.genesis.orgs {
        orgs.insert(
            o.id.to_string(),
            json!({"admin_secret": hex::encode(admin_key(o.id.as_str()).to_bytes()),
                   "data_secret": hex::encode(data_key(o.id.as_str()).to_bytes())}),
        );
    }
    let nodes: serde_json::Map<String, Value> = demo
        .genesis
        .orgs
        .iter()
        .flat_map(|o| o.nodes.iter())
        .map(|n| {
            (
                n.id.to_string(),
                json!(hex::encode(node_key(n.id).to_bytes())),
            )
        })
        .collect();
    let staff: serde_json::Map<String, Value> = demo
        .staff
        .iter()
        .map(|s| {
            (
                s.username.clone(),
                json!({"org": s.org, "secret": hex::encode(staff_key(&s.username).to_bytes())}),
            )
        })
        .collect();
    json!({
        "note": "DEMO-ONLY KEYS. These secrets are derived publicly from fixtures/demo/consortium.json and are known to everyone. Never use them for real data.",
        "orgs": orgs, "nodes": nodes, "staff": staff,
    })
}

fn check_or_write(name: &str, expected: &Value) {
    let path = fixture(name);
    let text = serde_json::to_string_pretty(expected).unwrap() + "\n";
    if std::env::var_os("RXCHAIN_REGENERATE").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        committed,
        text,
        "{} is stale; regenerate it (see the module docs)",
        path.display()
    );
}

#[test]
fn committed_demo_genesis_matches_the_derived_one() {
    let demo = Demo::load().unwrap();
    check_or_write(
        "genesis.json",
        &serde_json::to_value(&demo.genesis).unwrap(),
    );
    // It also parses back into the same genesis, with the same hash.
    let g: rxchain_contracts::Genesis =
        serde_json::from_str(&std::fs::read_to_string(fixture("genesis.json")).unwrap()).unwrap();
    assert_eq!(g.hash(), demo.genesis.hash());
}

#[test]
fn committed_demo_keys_match_the_derivation_and_genesis() {
    let demo = Demo::load().unwrap();
    check_or_write("keys.json", &keys_document(&demo));
    for o in &demo.genesis.orgs {
        assert_eq!(admin_key(o.id.as_str()).public(), o.admin_key);
        assert_eq!(data_key(o.id.as_str()).public(), o.data_key);
        for n in &o.nodes {
            assert_eq!(node_key(n.id).public(), n.key);
            assert_eq!(rxchain::demo::tls_key(n.id).unwrap().hash, n.tls);
        }
    }
}
