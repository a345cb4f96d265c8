//! The `/metrics` an operator watches (issue 11), on three real node
//! processes:
//!
//! - `rxchain_committed_txs_total` counts transactions whose clients stopped
//!   waiting (the commit wait is 1 ms, so submissions are answered 202);
//! - refusals by code, sign-in failures, mempool bytes, per-peer
//!   replication lag, AppendEntries latency and failures (a follower cut
//!   off by the test-only partition) all appear;
//! - every `rxchain_*` metric that `deploy/grafana-dashboard.json` queries
//!   or `deploy/prometheus-alerts.yml` alerts on is one the nodes export.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rxchain::demo::admin_key;
use rxchain_contracts::tx::Role;
use rxchain_contracts::{Label, OrgId};
use serde_json::Value;

mod common;
mod procs;

/// The value of the sample `name{labels}` (labels as printed, `""` for
/// none) in a Prometheus text exposition.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let key = if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(&key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Every sample of `name`, whatever its labels, as (labels, value).
fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => {
                    let (labels, v) = r.split_once("} ")?;
                    (labels.to_string(), v)
                }
                None => (String::new(), rest.strip_prefix(' ')?),
            };
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// The names of the samples in an exposition.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// The `rxchain_*` metric names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("rxchain_") {
        let start = i + at;
        let before_ok = start == 0 || {
            let c = bytes[start - 1] as char;
            !(c.is_ascii_alphanumeric() || c == '_')
        };
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if before_ok {
            out.push(expr[start..end].to_string());
        }
        i = end;
    }
    out
}

/// Every query of the Grafana dashboard: targets' `expr` and templating
/// `query` strings, wherever they are nested.
fn dashboard_queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query", Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_queries(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

/// Every `expr` of the alert rules.
fn alert_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus-alerts.yml"),
    )
    .unwrap();
    let doc = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
    let mut out = Vec::new();
    for g in doc["groups"].as_vec().expect("groups") {
        for r in g["rules"].as_vec().expect("rules") {
            assert!(
                r["alert"].as_str().is_some(),
                "every rule is an alert: {r:?}"
            );
            assert!(
                r["annotations"]["description"].as_str().is_some(),
                "every alert says what it means: {r:?}"
            );
            out.push(r["expr"].as_str().expect("expr").to_string());
        }
    }
    out
}

async fn metrics(p: &procs::Procs, id: u64) -> String {
    p.http
        .get(format!("{}/metrics", p.base(id)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_operators_watch_are_exported_and_right() {
    // A 1 ms commit wait: clients are answered 202 long before the commit.
    let p = procs::Procs::start(&[1, 2, 3], |_| {
        "testing_faults = true\n[api]\ncommit_wait_ms = 1\n".to_string()
    })
    .await;
    let leader = p.leader().await.expect("a leader");
    let follower = [1, 2, 3].into_iter().find(|&i| i != leader).unwrap();

    // Staff registrations, submitted without waiting for their commit.
    let mut ids = Vec::new();
    let mut unwaited = 0;
    for s in p.demo.staff.iter().take(5) {
        let tx = rxchain::txbuild::register_staff(
            &p.genesis,
            &admin_key(&s.org),
            OrgId::parse(s.org.clone()).unwrap(),
            rxchain::demo::staff_key(&s.username).public(),
            s.role,
            Label::parse(s.licence.clone()).unwrap(),
            Label::parse(s.name.clone()).unwrap(),
        );
        let r = p
            .http
            .post(format!("{}/v1/tx", p.base(leader)))
            .json(&tx)
            .send()
            .await
            .unwrap();
        assert!(
            [200, 202].contains(&r.status().as_u16()),
            "{}",
            r.text().await.unwrap()
        );
        if r.status() == 202 {
            unwaited += 1;
        }
        ids.push(tx.tx.id(p.genesis.chain_id.as_str()));
    }
    assert!(
        unwaited > 0,
        "some clients stopped waiting before the commit"
    );
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = p
                .http
                .get(format!("{}/v1/tx/{id}", p.base(leader)))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            assert!([200, 202].contains(&status.as_u16()), "{status} {v}");
            if status == 200 {
                assert_eq!(v["receipt"]["outcome"]["result"], "applied", "{v}");
                break;
            }
            assert!(Instant::now() < deadline, "{id} never committed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Counted once, where the block was proposed: the sum over the nodes.
    let mut committed = 0.0;
    for id in [1, 2, 3] {
        committed += sample(&metrics(&p, id).await, "rxchain_committed_txs_total", "").unwrap();
    }
    assert_eq!(
        committed,
        ids.len() as f64,
        "every committed transaction counted once"
    );

    // A refusal at admission: a stranger's key signs a registration.
    let stranger = rxchain_contracts::SecretKey::derive("metrics-test", b"stranger");
    let tx = rxchain::txbuild::register_staff(
        &p.genesis,
        &stranger,
        OrgId::parse(p.demo.staff[0].org.clone()).unwrap(),
        stranger.public(),
        Role::Practitioner,
        Label::parse("LIC-X").unwrap(),
        Label::parse("Nobody").unwrap(),
    );
    let r = p
        .http
        .post(format!("{}/v1/tx", p.base(leader)))
        .json(&tx)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "the stranger is refused");
    let body: Value = r.json().await.unwrap();
    let code = body["code"].as_str().unwrap().to_string();

    // A failed sign-in.
    let r = p
        .http
        .post(format!("{}/v1/session", p.base(leader)))
        .json(&serde_json::json!({"username": "nobody", "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Cut the leader off from one follower for a while, with traffic.
    let cut = |blocked: Vec<u64>| {
        let p = &p;
        async move {
            let r = p
                .http
                .post(format!("{}/v1/test/partition", p.base(leader)))
                .json(&serde_json::json!({ "blocked": blocked }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    cut(vec![follower]).await;
    let extra = p.demo.staff.get(5).expect("a sixth demo staff member");
    let tx = rxchain::txbuild::register_staff(
        &p.genesis,
        &admin_key(&extra.org),
        OrgId::parse(extra.org.clone()).unwrap(),
        rxchain::demo::staff_key(&extra.username).public(),
        extra.role,
        Label::parse(extra.licence.clone()).unwrap(),
        Label::parse(extra.name.clone()).unwrap(),
    );
    p.commit(leader, &tx).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let during = loop {
        let m = metrics(&p, leader).await;
        let lag = sample(
            &m,
            "rxchain_raft_replication_lag_entries",
            &format!("peer=\"{follower}\""),
        );
        let failed: f64 = samples(&m, "rxchain_raft_append_failures_total")
            .iter()
            .filter(|(l, _)| {
                l.contains(&format!("peer=\"{follower}\"")) && l.contains("kind=\"unreachable\"")
            })
            .map(|(_, v)| v)
            .sum();
        if lag.is_some_and(|l| l >= 1.0) && failed >= 1.0 {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the cut-off follower shows no lag and no failures: {m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    cut(vec![]).await;
    // Healed: the follower catches up and its lag returns to zero.
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let m = metrics(&p, leader).await;
        let lag = sample(
            &m,
            "rxchain_raft_replication_lag_entries",
            &format!("peer=\"{follower}\""),
        );
        if lag == Some(0.0) {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the follower never caught up: {m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        sample(&after, "rxchain_refused_total", &format!("code=\"{code}\"")) >= Some(1.0),
        "the refusal {code} is counted: {after}"
    );
    assert_eq!(
        sample(
            &after,
            "rxchain_sign_in_failures_total",
            "reason=\"bad_credentials\""
        ),
        Some(1.0)
    );
    let appends = samples(&during, "rxchain_raft_append_seconds_count");
    assert!(
        appends
            .iter()
            .any(|(l, v)| l == &format!("peer=\"{follower}\"") && *v >= 1.0),
        "append latency per peer: {appends:?}"
    );
    assert!(sample(&after, "rxchain_mempool_bytes", "").is_some());

    // Every metric the dashboard and the alerts use is exported.
    let mut exported = BTreeSet::new();
    for id in [1, 2, 3] {
        exported.extend(sample_names(&metrics(&p, id).await));
    }
    exported.extend(sample_names(&during));
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana-dashboard.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    assert!(
        queries.len() >= 10,
        "the dashboard has its queries: {queries:?}"
    );
    let alerts = alert_exprs();
    assert!(alerts.len() >= 10, "{alerts:?}");
    let mut used = BTreeSet::new();
    for q in queries.iter().chain(&alerts) {
        used.extend(metric_names(q));
    }
    assert!(used.len() >= 12, "the queries name the metrics: {used:?}");
    for name in &used {
        let found = exported.contains(name)
            || ["_bucket", "_count", "_sum", "_total"]
                .iter()
                .any(|s| exported.contains(&format!("{name}{s}")));
        assert!(
            found,
            "{name} is used by deploy/ but not exported: {exported:?}"
        );
    }
}
