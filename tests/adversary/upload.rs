//! Attack: more photo uploads than decode permits, some slow, one declaring
//! more bytes than allowed. Uploads waiting for a permit must hold no body
//! bytes, an oversized declaration must be refused at once without
//! waiting, and honest uploads must still get their verdict.

use std::time::Duration;

use rxchain::client::Submitted;
use rxchain::demo::staff_key;
use rxchain::qr::render_png;
use rxchain::txbuild::{self, IssueInput};
use rxchain_contracts::privacy::{PatientDetails, PrivateContent};
use rxchain_contracts::tx::Item;
use rxchain_contracts::{AtcCode, Label, OrgId, Quantity};

use super::{assert_refused, common, Feed, Raw};

/// The decode permits of `/v1/scan/image`.
const PERMITS: usize = 2;

fn upload_head(pharmacy: &str, len: u64) -> String {
    format!(
        "POST /v1/scan/image?pharmacy={pharmacy} HTTP/1.1\r\ncontent-type: image/png\r\ncontent-length: {len}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_wait_for_a_permit_before_their_bodies_are_read() {
    // 1. A one-node consortium with one issued prescription, its QR code
    //    rendered as a real PNG.
    let t = common::start_demo_node().await;
    let addr = t.node.addr;
    let limit = t.node.service.api.image_limit_bytes as u64;
    let rx = txbuild::issue(
        &t.demo.genesis,
        &staff_key("dr.ada"),
        IssueInput {
            hospital: OrgId::parse("hosp-north").expect("org id"),
            items: vec![Item {
                atc: AtcCode::parse("J01CA04").expect("atc"),
                name: Label::parse("Amoxicillin").expect("label"),
                strength: Label::parse("500 mg").expect("label"),
                form: Label::parse("capsule").expect("label"),
                quantity: Quantity::new(21).expect("quantity"),
                unit: Label::parse("capsules").expect("label"),
                controlled: false,
            }],
            repeats: 0,
            valid_from: None,
            valid_until: None,
            content: PrivateContent {
                patient: PatientDetails {
                    name: "Synthetic Patient Upload".into(),
                    birth_date: "1991-04-05".into(),
                    identifier: "SYNTH-ADV-1".into(),
                    email: None,
                },
                dosage: vec!["one capsule three times a day".into()],
                notes: "synthetic".into(),
            },
        },
    )
    .expect("issue builds");
    match t.client.submit(&rx.tx).await {
        Ok(Submitted::Applied(_)) => {}
        other => panic!("expected the issue to apply, got {other:?}"),
    }
    let png = render_png(&rx.payload.encode(), 6).expect("renders");

    // 2. Two slow uploaders take both decode permits and trickle their
    //    bodies a kilobyte a second.
    let mut slow = Vec::new();
    for _ in 0..PERMITS {
        slow.push(
            Raw::start(
                addr,
                &upload_head("pharm-central", 1024 * 1024),
                Feed::Trickle {
                    bytes: 1024 * 1024,
                    every: Duration::from_secs(1),
                },
            )
            .await,
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 3. An upload declaring one byte over the limit is refused at once
    //    with 413 body_too_large, none of it sent, though no permit is free.
    let a = Raw::start(
        addr,
        &upload_head("pharm-central", limit + 1),
        Feed::Nothing,
    )
    .await
    .answer()
    .await;
    assert_refused(&a, 413, "body_too_large");
    assert_eq!(a.sent_when_answered, 0);

    // 4. An upload declaring an empty body is refused at once: 400 empty_body.
    let a = Raw::start(addr, &upload_head("pharm-central", 0), Feed::Nothing)
        .await
        .answer()
        .await;
    assert_refused(&a, 400, "empty_body");

    // 5. An honest upload waits for a permit while both are held.
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/v1/scan/image?pharmacy=pharm-central");
    let honest = tokio::spawn({
        let (http, url, png) = (http.clone(), url.clone(), png.clone());
        async move {
            let resp = http
                .post(url)
                .header("content-type", "image/png")
                .body(png)
                .send()
                .await
                .expect("sent");
            let status = resp.status().as_u16();
            (
                status,
                resp.json::<serde_json::Value>().await.expect("JSON"),
            )
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !honest.is_finished(),
        "the honest upload waits while both permits are held"
    );

    // 6. The slow uploaders hang up, freeing the permits; the honest upload
    //    decodes and gets a green verdict for its payload.
    for s in slow {
        s.hang_up();
    }
    let (status, v) = tokio::time::timeout(super::ANSWER_WITHIN, honest)
        .await
        .expect("the honest upload is answered once permits are free")
        .expect("task");
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["verdict"].as_str(), v["code"].as_str()),
        (Some("green"), Some("claimable")),
        "{v}"
    );
    assert_eq!(v["payload"].as_str(), Some(rx.payload.encode().as_str()));

    // 7. The answers for bad images are unchanged: bytes that are no image
    //    are 422 not_an_image.
    let resp = http
        .post(&url)
        .header("content-type", "image/png")
        .body(b"definitely not a png".to_vec())
        .send()
        .await
        .expect("sent");
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.expect("JSON");
    assert_eq!(
        (status, v["code"].as_str()),
        (422, Some("not_an_image")),
        "{v}"
    );
    t.node.stop().await;
}
