//! The `rxchain tx` subcommands that put the review's new transaction
//! kinds on the chain, run as a real process against a real node.

mod common;

use std::process::Command;

use rxchain_contracts::{AtcCode, ControlledList};

/// Runs `rxchain tx …` against `base` and returns its standard output.
fn rxchain_tx(base: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rxchain"))
        .arg("tx")
        .args(["--node", base])
        .args(args)
        .env("RXCHAIN_LOG", "warn")
        .output()
        .expect("the rxchain binary runs");
    assert!(
        out.status.success(),
        "rxchain tx {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regulator_officer_changes_the_controlled_list_from_the_cli() {
    // 1. A demo node; atorvastatin (C10AA05) is not on the demo's list.
    let t = common::start_demo_node().await;
    let atc = AtcCode::parse("C10AA05").unwrap();
    let list = |t: &common::TestNode| {
        ControlledList::current(&t.demo.genesis, &t.node.chain.state()).unwrap()
    };
    let before = list(&t);
    assert!(!before.contains(&atc), "atorvastatin starts off the list");

    // 2. The regulator officer puts it on the list with schedule V: the
    //    command reports the commit, and the chain's list now holds it.
    let base = t.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        rxchain_tx(
            &base,
            &[
                "--demo-user",
                "reg.gail",
                "set-controlled",
                "--atc",
                "C10AA05",
                "--schedule",
                "V",
            ],
        )
    })
    .await
    .unwrap();
    assert!(out.contains("committed"), "{out}");
    let after = list(&t);
    assert!(after.contains(&atc), "atorvastatin is controlled now");
    assert_eq!(
        after.schedule(&atc).map(|s| s.as_str().to_string()),
        Some("V".into())
    );

    // 3. Without --schedule the drug comes off the list again.
    let base = t.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        rxchain_tx(
            &base,
            &[
                "--demo-user",
                "reg.gail",
                "set-controlled",
                "--atc",
                "C10AA05",
            ],
        )
    })
    .await
    .unwrap();
    assert!(out.contains("committed"), "{out}");
    assert!(!list(&t).contains(&atc));
    t.node.stop().await;
}
