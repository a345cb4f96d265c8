//! Issue 10, test 6: a leader whose clock runs a day ahead cannot move
//! chain time. Three real node processes; node 1 bootstraps (and leads)
//! with a fault-injected clock one day ahead. Block times stay within the
//! chain's leader skew of real time, and the cluster keeps committing.

use std::time::Duration;

use common::issue::{atorvastatin_issue, SyntheticPatient};
use procs::Procs;
use rxchain::demo::staff_key;
use rxchain::txbuild;
use rxchain_contracts::Timestamp;

mod common;
mod procs;

fn wall_ms() -> u64 {
    rxchain::clock::now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_a_day_ahead_cannot_move_chain_time() {
    // 1. Three nodes; node 1's chain clock runs a day ahead.
    let day = Timestamp::DAY_MS as i64;
    let p = Procs::start(&[1, 2, 3], |id| {
        if id == 1 {
            format!("testing_faults = true\ntesting_clock_offset_ms = {day}\n")
        } else {
            String::new()
        }
    })
    .await;
    let skew = p.genesis.params.max_leader_skew_ms;
    let started = wall_ms();

    // 2. The cluster commits transactions: the staff registrations and a
    // few prescriptions, all through node 1.
    let client = rxchain::client::Client::new(p.base(1));
    rxchain::test_support::register_demo_staff(&p.demo, &client)
        .await
        .unwrap();
    for i in 0..3 {
        let input = atorvastatin_issue(
            "hosp-north",
            30,
            0,
            SyntheticPatient {
                name: format!("Skew Synthetic {i}"),
                birth_date: "1970-01-01",
                identifier: format!("SYN-S-{i}"),
            },
            "one tablet daily",
        );
        let tx = txbuild::issue(&p.demo.genesis, &staff_key("dr.ada"), input)
            .unwrap()
            .tx;
        let r = p.commit(1, &tx).await;
        assert_eq!(r["outcome"]["result"], "applied", "{r}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let finished = wall_ms();

    // 3. Node 1 led throughout and proposed the blocks, yet every block time
    // lies within the skew of real time, never a day ahead.
    let blocks = p.blocks(2).await;
    assert!(blocks.len() >= 4, "only {} blocks", blocks.len());
    let mut by_leader = 0;
    for b in &blocks {
        let h = &b["header"];
        let t = h["timestamp"].as_u64().unwrap();
        let bound = h["clock_bound"].as_u64().unwrap();
        assert!(t <= bound, "block time past its bound: {h}");
        assert!(
            t <= finished + skew,
            "block {} time {t} is {} ms past real time",
            h["height"],
            t.saturating_sub(finished)
        );
        if h["proposer"] == 1 {
            by_leader += 1;
            // The skewed leader's own attestation is in the proof, a day
            // ahead, and did not carry the block time with it.
            let own = b["clock"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["node"] == 1)
                .expect("the proposer attests its own clock");
            assert!(own["clock"].as_u64().unwrap() >= started + Timestamp::DAY_MS - 60_000);
        }
    }
    assert_eq!(by_leader, blocks.len(), "node 1 proposed every block");
    // 4. Chain time follows real time: the last block is recent, not stuck.
    let last = blocks.last().unwrap()["header"]["timestamp"]
        .as_u64()
        .unwrap();
    assert!(
        last + 120_000 >= started,
        "chain time {last} lags real time {started}"
    );
}
