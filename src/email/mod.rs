//! Patient e-mail: the QR code and status notifications, sent by the issuing
//! hospital's node exactly once per (prescription, event).
//!
//! Where things live: the patient's address is on the chain only inside the
//! sealed content (readable by the hospital's data key and the regulators'),
//! and in plaintext only in this node's own `email` sled tree, which is never
//! part of a block, a snapshot or a backup. Other nodes apply the same blocks
//! but hold no contact record, so they queue nothing.
//!
//! Exactly once: [`Outbox`] is the store's [`ApplyObserver`]; the entries a
//! block brings are written in the same sled transaction as the block, so a
//! crash leaves both or neither. The sender ([`sender::run`]) delivers them
//! with a stable `Message-ID` per (prescription, event), retries temporary
//! failures with doubling delays and marks a message failed after
//! `max_attempts` or at once on a permanent (5xx) answer.
//!
//! Tree layout (`email`): `p/<rx>` what the doctor's request left before the
//! issue committed (address, language, QR payload when the code is to be
//! mailed); `c/<rx>` the contact (address, language, unsubscribe token,
//! subscription); `o/<rx><event>` queued, `s/…` sent, `f/…` failed messages;
//! `q/<rx>` and `e/<rx>` mark the QR mail and the expiry notice as queued.

mod render;
pub mod sender;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use rxchain_contracts::block::Block;
use rxchain_contracts::lifecycle::Outcome;
use rxchain_contracts::model::{OrgId, PrescriptionId, Timestamp};
use rxchain_contracts::privacy::{self, ContentKey};
use rxchain_contracts::state::{PrescriptionRecord, RxStatus};
use rxchain_contracts::tx::{DeliveryProblem, DeliveryStatus, Fulfilment, HandOver, TxBody};
use rxchain_contracts::SecretKey;
use serde::{Deserialize, Serialize};
use sled::Batch;

use crate::config::{EmailSettings, EmailTransport};
use crate::store::chain::{ApplyObserver, ChainStore};

pub use render::{render, RenderError};

/// What can go wrong reading or writing the outbox.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// sled failed.
    #[error("outbox storage")]
    Storage(#[from] sled::Error),
    /// A stored record did not decode.
    #[error("outbox record {key} is corrupt")]
    Corrupt {
        /// The key, hex.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// This node did not issue the prescription, or no address is known.
    #[error("this node holds no e-mail address for the prescription")]
    NoContact,
    /// The unsubscribe token does not match.
    #[error("the unsubscribe link is not valid")]
    BadToken,
}

/// The language of a prescription's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    /// English.
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// Parses `en`/`zh` (anything else is English).
    pub fn parse_or_en(s: &str) -> Lang {
        if s.trim().eq_ignore_ascii_case("zh") || s.trim().to_ascii_lowercase().starts_with("zh-") {
            Lang::Zh
        } else {
            Lang::En
        }
    }
}

/// What the doctor's issue request leaves for the apply of its block.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingIssue {
    /// The patient's address, as typed (checked by `rules::check_issue_form`).
    pub email: String,
    /// The language.
    pub lang: Lang,
    /// The QR payload text, when the doctor asked for the code by e-mail.
    pub qr_payload: Option<String>,
}

/// A patient's contact for one prescription, on the issuing node only.
#[derive(Clone, Serialize, Deserialize)]
struct Contact {
    email: String,
    lang: Lang,
    /// Hex; compared in constant time by [`Outbox::unsubscribe`].
    token: String,
    subscribed: bool,
}

/// One message's event and the facts its template shows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The QR code; the payload is dropped once sent.
    Qr {
        /// The `RX1:` text, until sent.
        payload: Option<String>,
        /// End of validity.
        valid_until: Timestamp,
    },
    /// The patient chose a pharmacy.
    PharmacyChosen {
        /// Its organisation id.
        pharmacy: String,
        /// Delivery rather than pickup.
        delivery: bool,
    },
    /// A pharmacy claimed the prescription.
    Claimed {
        /// Its organisation id.
        pharmacy: String,
    },
    /// A delivery or pickup status.
    Delivery {
        /// Which.
        status: DeliveryStatus,
        /// Why it failed or was returned.
        #[serde(default)]
        problem: Option<DeliveryProblem>,
        /// How it was handed over.
        #[serde(default)]
        hand_over: Option<HandOver>,
    },
    /// Part was dispensed; the rest remains.
    PartlyDispensed {
        /// "name: quantity" per item still open.
        remaining: Vec<String>,
        /// Until when.
        valid_until: Timestamp,
    },
    /// Everything was dispensed.
    Dispensed,
    /// The doctor cancelled it.
    Cancelled {
        /// The reason code.
        reason: String,
    },
    /// Still unfilled, and validity ends soon.
    Expiring {
        /// End of validity.
        valid_until: Timestamp,
    },
}

impl Event {
    /// The template name.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Qr { .. } => "qr",
            Event::PharmacyChosen { .. } => "pharmacy_chosen",
            Event::Claimed { .. } => "claimed",
            Event::Delivery { .. } => "delivery",
            Event::PartlyDispensed { .. } => "partly_dispensed",
            Event::Dispensed => "dispensed",
            Event::Cancelled { .. } => "cancelled",
            Event::Expiring { .. } => "expiring",
        }
    }
}

/// Where a message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Waiting for (another) attempt.
    Queued,
    /// Accepted by the server (or written to the file outbox).
    Sent,
    /// Given up: a permanent answer or too many attempts.
    Failed,
}

/// One outbox message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Message {
    /// The prescription.
    pub rx: PrescriptionId,
    /// Its short id (the subject names nothing else).
    pub short_id: String,
    /// Stable per (prescription, event).
    pub message_id: String,
    /// The address.
    pub to: String,
    /// The language.
    pub lang: Lang,
    /// What happened.
    pub event: Event,
    /// The unsubscribe token, for status messages.
    pub token: String,
    /// Attempts made.
    pub attempts: u32,
    /// Not before this wall-clock time (ms).
    pub next_at_ms: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When queued (ms).
    pub queued_at_ms: u64,
    /// When sent (ms).
    pub sent_at_ms: Option<u64>,
}

/// Prefixes of the `email` tree.
mod keys {
    pub const PENDING: &[u8] = b"p/";
    pub const CONTACT: &[u8] = b"c/";
    pub const QUEUED: &[u8] = b"o/";
    pub const SENT: &[u8] = b"s/";
    pub const FAILED: &[u8] = b"f/";
    pub const QR_MARK: &[u8] = b"q/";
    pub const EXPIRY_MARK: &[u8] = b"e/";

    pub fn of(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
        [prefix, rest].concat()
    }
    /// The event part of a message key: its chain position, so that one
    /// prescription's messages sort in the order of their facts.
    pub fn event(rx: &super::PrescriptionId, height: u64, index: u32, kind: &str) -> Vec<u8> {
        let mut k = rx.as_bytes().to_vec();
        k.extend_from_slice(&height.to_be_bytes());
        k.extend_from_slice(&index.to_be_bytes());
        k.extend_from_slice(kind.as_bytes());
        k
    }
}

/// The issuing node's e-mail outbox (see the module documentation).
pub struct Outbox {
    tree: sled::Tree,
    /// This node's organisation; `None` until declared.
    org: Option<OrgId>,
    data_key: Option<SecretKey>,
    settings: EmailSettings,
    /// Where the file transport writes `.eml` files.
    dir: PathBuf,
    wake: tokio::sync::Notify,
}

impl Outbox {
    /// Opens the `email` tree of `db`.
    pub fn open(
        db: &sled::Db,
        org: Option<OrgId>,
        data_key: Option<SecretKey>,
        settings: EmailSettings,
        data_dir: &std::path::Path,
    ) -> Result<Arc<Outbox>, EmailError> {
        Ok(Arc::new(Outbox {
            tree: db.open_tree("email")?,
            org,
            data_key,
            settings,
            dir: data_dir.join("outbox"),
            wake: tokio::sync::Notify::new(),
        }))
    }

    /// The settings.
    pub fn settings(&self) -> &EmailSettings {
        &self.settings
    }

    /// The `.eml` folder of the file transport.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Whether anything is queued at all.
    pub fn enabled(&self) -> bool {
        self.settings.transport != EmailTransport::Off && self.org.is_some()
    }

    /// Remembers what the doctor's issue request knows, before its
    /// transaction is submitted; the apply of its block turns it into the
    /// contact (and the QR message, if asked for).
    pub fn expect_issue(&self, rx: &PrescriptionId, p: &PendingIssue) -> Result<(), EmailError> {
        if !self.enabled() {
            return Ok(());
        }
        self.tree
            .insert(keys::of(keys::PENDING, rx.as_bytes()), json(p))?;
        Ok(())
    }

    /// Queues the QR mail for a committed prescription this node issued
    /// (the doctor page's e-mail button). Only once per prescription:
    /// answers `false` when it was already queued.
    pub fn queue_qr(
        &self,
        chain: &ChainStore,
        rec: &PrescriptionRecord,
        payload: String,
    ) -> Result<bool, EmailError> {
        let contact = self.contact(&rec.id)?.ok_or(EmailError::NoContact)?;
        let mark = keys::of(keys::QR_MARK, rec.id.as_bytes());
        if self.tree.get(&mark)?.is_some() {
            return Ok(false);
        }
        let tip = chain.tip().height;
        let msg = self.message(
            rec,
            &contact,
            Event::Qr {
                payload: Some(payload),
                valid_until: rec.valid_until,
            },
            tip,
            u32::MAX,
        );
        let mut b = Batch::default();
        b.insert(mark, &[][..]);
        b.insert(keys::of(keys::QUEUED, &msg.0), json(&msg.1));
        self.tree.apply_batch(b)?;
        self.wake.notify_one();
        Ok(true)
    }

    /// Turns status mail for a prescription off (or on again), checking the
    /// token from the unsubscribe link.
    pub fn set_subscribed(
        &self,
        rx: &PrescriptionId,
        token: &str,
        on: bool,
    ) -> Result<(), EmailError> {
        let key = keys::of(keys::CONTACT, rx.as_bytes());
        let mut c: Contact = self.get(&key)?.ok_or(EmailError::NoContact)?;
        use subtle::ConstantTimeEq;
        if !bool::from(c.token.as_bytes().ct_eq(token.as_bytes())) {
            return Err(EmailError::BadToken);
        }
        c.subscribed = on;
        self.tree.insert(key, json(&c))?;
        Ok(())
    }

    /// Turns status mail off or on for the holder of the QR code (the
    /// patient page's switch), the record having checked the secret.
    pub fn set_subscribed_by_holder(
        &self,
        rx: &PrescriptionId,
        on: bool,
    ) -> Result<(), EmailError> {
        let key = keys::of(keys::CONTACT, rx.as_bytes());
        let mut c: Contact = self.get(&key)?.ok_or(EmailError::NoContact)?;
        c.subscribed = on;
        self.tree.insert(key, json(&c))?;
        Ok(())
    }

    /// Whether status mail is on for `rx`; `None` when this node holds no
    /// address for it.
    pub fn subscribed(&self, rx: &PrescriptionId) -> Result<Option<bool>, EmailError> {
        Ok(self.contact(rx)?.map(|c| c.subscribed))
    }

    /// Every message (queued, sent, failed), in key order, newest `limit`.
    pub fn list(&self, limit: usize) -> Result<Vec<(MessageState, Message)>, EmailError> {
        let mut out = Vec::new();
        for (prefix, state) in [
            (keys::QUEUED, MessageState::Queued),
            (keys::FAILED, MessageState::Failed),
            (keys::SENT, MessageState::Sent),
        ] {
            for r in self.tree.scan_prefix(prefix) {
                let (k, v) = r?;
                out.push((state, decode::<Message>(&k, &v)?));
            }
        }
        out.sort_by(|a, b| b.1.queued_at_ms.cmp(&a.1.queued_at_ms));
        out.truncate(limit);
        Ok(out)
    }

    /// (queued, failed) counts, for the metrics.
    pub fn depth(&self) -> (usize, usize) {
        (
            self.tree.scan_prefix(keys::QUEUED).count(),
            self.tree.scan_prefix(keys::FAILED).count(),
        )
    }

    /// Waits until something may have been queued.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    fn contact(&self, rx: &PrescriptionId) -> Result<Option<Contact>, EmailError> {
        self.get(&keys::of(keys::CONTACT, rx.as_bytes()))
    }

    fn get<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, EmailError> {
        self.tree.get(key)?.map(|v| decode(key, &v)).transpose()
    }

    /// A message and its key (without prefix).
    fn message(
        &self,
        rec: &PrescriptionRecord,
        c: &Contact,
        event: Event,
        height: u64,
        index: u32,
    ) -> (Vec<u8>, Message) {
        let kind = event.kind();
        let org = self.org.as_ref().map_or("rxchain", |o| o.as_str());
        let now = crate::clock::now_ms();
        (
            keys::event(&rec.id, height, index, kind),
            Message {
                rx: rec.id,
                short_id: rec.id.short(),
                message_id: format!(
                    "<{}.{height}.{index}.{kind}@{org}.rxchain.invalid>",
                    hex::encode(rec.id.as_bytes())
                ),
                to: c.email.clone(),
                lang: c.lang,
                event,
                token: c.token.clone(),
                attempts: 0,
                next_at_ms: now,
                last_error: None,
                queued_at_ms: now,
                sent_at_ms: None,
            },
        )
    }

    /// The address sealed in an issue, opened with this hospital's data key.
    fn sealed_email(&self, b: &rxchain_contracts::tx::IssueRx) -> Option<String> {
        let key = self.data_key.as_ref()?;
        let ck = privacy::unwrap_with_key(
            key,
            &privacy::content_context(&b.id),
            &b.key_for_hospital,
        )
        .map_err(
            |e| tracing::warn!(rx = %b.id, error = %e, "cannot open the hospital's content key"),
        )
        .ok()?;
        let content = privacy::open_content(&b.id, &b.sealed, &ContentKey::from_bytes(ck))
            .map_err(|e| tracing::warn!(rx = %b.id, error = %e, "cannot open the sealed content"))
            .ok()?;
        content.patient.email
    }

    /// Queues the expiry notice for every subscribed, still unfilled
    /// prescription whose validity ends within `expiry_notice_days`; each
    /// at most once. Returns how many were queued.
    pub fn queue_expiry_notices(
        &self,
        chain: &ChainStore,
        now: Timestamp,
    ) -> Result<usize, EmailError> {
        if !self.enabled() {
            return Ok(0);
        }
        let horizon = now.plus_days(self.settings.expiry_notice_days);
        let mut n = 0;
        for r in self.tree.scan_prefix(keys::CONTACT) {
            let (k, v) = r?;
            let c: Contact = decode(&k, &v)?;
            let Some(rx) = crate::store::chain::keys::parse_rx_suffix(&k) else {
                continue;
            };
            let mark = keys::of(keys::EXPIRY_MARK, rx.as_bytes());
            if !c.subscribed || self.tree.get(&mark)?.is_some() {
                continue;
            }
            let rec = match chain.prescription(&rx) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(%rx, error = %e, "cannot read a prescription for the expiry notice");
                    continue;
                }
            };
            // Claimed but not yet dispensed counts: the medicine still waits.
            let unfilled = matches!(
                rec.status,
                RxStatus::Issued | RxStatus::Assigned | RxStatus::Claimed
            ) && rec.fills.is_empty();
            if unfilled && rec.valid_until > now && rec.valid_until <= horizon {
                let (key, msg) = self.message(
                    &rec,
                    &c,
                    Event::Expiring {
                        valid_until: rec.valid_until,
                    },
                    chain.tip().height,
                    u32::MAX - 1,
                );
                let mut b = Batch::default();
                b.insert(mark, &[][..]);
                b.insert(keys::of(keys::QUEUED, &key), json(&msg));
                self.tree.apply_batch(b)?;
                n += 1;
            }
        }
        if n > 0 {
            self.wake.notify_one();
        }
        Ok(n)
    }

    /// Deletes what the outbox no longer needs (the retention rule in
    /// `docs/rules.md`, "Patient e-mail"): sent and failed messages older
    /// than `retention_days`, and the contact (the patient's address, the
    /// unsubscribe token and the QR and expiry marks) of a prescription that
    /// is closed (completed, cancelled or expired, its delivery finished or
    /// stalled for as long), has nothing queued and no message left.
    /// Returns (messages, contacts) deleted.
    pub fn prune(&self, chain: &ChainStore, now: Timestamp) -> Result<(usize, usize), EmailError> {
        let keep_ms = u64::from(self.settings.retention_days).saturating_mul(86_400_000);
        let cutoff = now.0.saturating_sub(keep_ms);
        let mut messages = 0;
        for prefix in [keys::SENT, keys::FAILED] {
            let mut b = Batch::default();
            for r in self.tree.scan_prefix(prefix) {
                let (k, v) = r?;
                let m: Message = decode(&k, &v)?;
                if m.sent_at_ms.unwrap_or(m.queued_at_ms) <= cutoff {
                    b.remove(k);
                    messages += 1;
                }
            }
            self.tree.apply_batch(b)?;
        }
        let mut contacts = 0;
        for r in self.tree.scan_prefix(keys::CONTACT) {
            let (k, _) = r?;
            let Some(rx) = crate::store::chain::keys::parse_rx_suffix(&k) else {
                continue;
            };
            let rec = match chain.prescription(&rx) {
                Ok(Some(rec)) => rec,
                // Not on this chain (yet): a contact is only made at apply,
                // so this is a chain replaced under us; keep it.
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(%rx, error = %e, "cannot read a prescription for the outbox pruner");
                    continue;
                }
            };
            if rec.public_status(now).is_open() || !delivery_settled(&rec, cutoff) {
                continue;
            }
            let left = [keys::QUEUED, keys::SENT, keys::FAILED].iter().any(|p| {
                self.tree
                    .scan_prefix(keys::of(p, rx.as_bytes()))
                    .next()
                    .is_some()
            });
            if left {
                continue;
            }
            let mut b = Batch::default();
            for p in [
                keys::CONTACT,
                keys::QR_MARK,
                keys::EXPIRY_MARK,
                keys::PENDING,
            ] {
                b.remove(keys::of(p, rx.as_bytes()));
            }
            self.tree.apply_batch(b)?;
            contacts += 1;
        }
        Ok((messages, contacts))
    }

    /// The status event one applied transaction means for its patient.
    fn status_event(body: &TxBody, rec: &PrescriptionRecord) -> Option<Event> {
        Some(match body {
            TxBody::Assign(a) => match &a.fulfilment {
                Fulfilment::Pickup { pharmacy } => Event::PharmacyChosen {
                    pharmacy: pharmacy.to_string(),
                    delivery: false,
                },
                Fulfilment::Delivery { pharmacy, .. } => Event::PharmacyChosen {
                    pharmacy: pharmacy.to_string(),
                    delivery: true,
                },
            },
            TxBody::Claim(c) => Event::Claimed {
                pharmacy: c.pharmacy.to_string(),
            },
            TxBody::Delivery(d) => Event::Delivery {
                status: d.status,
                problem: d.problem,
                hand_over: d.hand_over,
            },
            TxBody::Dispense(_) if rec.status == RxStatus::Completed => Event::Dispensed,
            TxBody::Dispense(_) => Event::PartlyDispensed {
                remaining: rec
                    .items
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| rec.remaining(*i) > 0)
                    .map(|(i, it)| format!("{} {}: {}", it.name, it.strength, rec.remaining(i)))
                    .collect(),
                valid_until: rec.valid_until,
            },
            TxBody::Cancel(c) => Event::Cancelled {
                reason: serde_json::to_value(c.reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            },
            _ => return None,
        })
    }

    /// What an issue brings to the batch: the pending request's removal,
    /// and for an applied issue of this hospital the contact (from the
    /// doctor's request, or the address sealed in the issue) and the QR
    /// message if the doctor asked for it. Answers whether it wrote
    /// anything, and the new contact.
    fn issue_contact(
        &self,
        b: &rxchain_contracts::tx::IssueRx,
        outcome: &Outcome,
        after: &dyn Fn(&PrescriptionId) -> Option<PrescriptionRecord>,
        (h, index): (u64, u32),
        batch: &mut Batch,
    ) -> Result<(bool, Option<Contact>), EmailError> {
        let pkey = keys::of(keys::PENDING, b.id.as_bytes());
        let pending: Option<PendingIssue> = self.get(&pkey)?;
        let wrote = pending.is_some();
        if wrote {
            batch.remove(pkey);
        }
        if !outcome.is_applied() {
            return Ok((wrote, None));
        }
        let Some(rec) = after(&b.id) else {
            return Ok((wrote, None));
        };
        if Some(&rec.hospital) != self.org.as_ref() {
            return Ok((wrote, None));
        }
        let (email, lang, qr) = match pending {
            Some(p) => (p.email, p.lang, p.qr_payload),
            None => match self.sealed_email(b) {
                Some(e) => (e, Lang::parse_or_en(&self.settings.default_lang), None),
                None => return Ok((wrote, None)),
            },
        };
        let mut token = [0u8; 16];
        if let Err(e) = getrandom::fill(&mut token) {
            tracing::warn!(error = %e, "no randomness for an unsubscribe token; no e-mail for this prescription");
            return Ok((wrote, None));
        }
        let c = Contact {
            email,
            lang,
            token: hex::encode(token),
            subscribed: true,
        };
        batch.insert(keys::of(keys::CONTACT, b.id.as_bytes()), json(&c));
        if let Some(payload) = qr {
            let (k, m) = self.message(
                &rec,
                &c,
                Event::Qr {
                    payload: Some(payload),
                    valid_until: rec.valid_until,
                },
                h,
                index,
            );
            batch.insert(keys::of(keys::QR_MARK, b.id.as_bytes()), &[][..]);
            batch.insert(keys::of(keys::QUEUED, &k), json(&m));
        }
        Ok((true, Some(c)))
    }

    /// The messages for blocks a snapshot brought (see
    /// [`ApplyObserver::catch_up`]): contacts and requested QR mails for
    /// every issue, as applying them would have made, but of the status
    /// events only each prescription's newest, and only from a block at
    /// most [`CATCH_UP_MAX_AGE_MS`] old. A patient whose hospital's node was
    /// away hears where things stand now, once, not a burst of old news.
    fn catch_up_inner(
        &self,
        blocks: &mut dyn Iterator<Item = Block>,
        after: &dyn Fn(&PrescriptionId) -> Option<PrescriptionRecord>,
        now: Timestamp,
    ) -> Result<Option<Batch>, EmailError> {
        if self.org.is_none() {
            return Ok(None);
        }
        let mut batch = Batch::default();
        let mut fresh: HashMap<PrescriptionId, Contact> = HashMap::new();
        let mut newest: HashMap<PrescriptionId, (u64, u32, TxBody)> = HashMap::new();
        let mut touched = false;
        for block in blocks {
            let h = block.header.height;
            let recent = block.header.timestamp.0.saturating_add(CATCH_UP_MAX_AGE_MS) >= now.0;
            for (index, (stx, outcome)) in (0u32..).zip(block.txs.iter().zip(&block.outcomes)) {
                let body = &stx.tx.body;
                if let TxBody::Issue(b) = body {
                    let (wrote, c) =
                        self.issue_contact(b, outcome, after, (h, index), &mut batch)?;
                    touched |= wrote;
                    if let Some(c) = c {
                        fresh.insert(b.id, c);
                    }
                } else if let (true, true, Some(id)) = (outcome.is_applied(), recent, body_rx(body))
                {
                    newest.insert(id, (h, index, body.clone()));
                }
            }
        }
        for (id, (h, index, body)) in newest {
            let contact = match fresh.get(&id) {
                Some(c) => Some(c.clone()),
                None => self.contact(&id)?,
            };
            let (Some(c), Some(rec)) = (contact.filter(|c| c.subscribed), after(&id)) else {
                continue;
            };
            if let Some(ev) = Self::status_event(&body, &rec) {
                let (k, m) = self.message(&rec, &c, ev, h, index);
                batch.insert(keys::of(keys::QUEUED, &k), json(&m));
                touched = true;
            }
        }
        Ok(touched.then_some(batch))
    }

    fn plan_inner(
        &self,
        block: &Block,
        outcomes: &[Outcome],
        after: &dyn Fn(&PrescriptionId) -> Option<PrescriptionRecord>,
    ) -> Result<Option<Batch>, EmailError> {
        if self.org.is_none() {
            return Ok(None);
        }
        let mut batch = Batch::default();
        let mut touched = false;
        // Contacts created earlier in this same block.
        let mut fresh: HashMap<PrescriptionId, Contact> = HashMap::new();
        let h = block.header.height;
        for (i, (stx, outcome)) in block.txs.iter().zip(outcomes).enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let body = &stx.tx.body;
            if let TxBody::Issue(b) = body {
                let (wrote, c) = self.issue_contact(b, outcome, after, (h, index), &mut batch)?;
                touched |= wrote;
                if let Some(c) = c {
                    fresh.insert(b.id, c);
                }
                continue;
            }
            if !outcome.is_applied() {
                continue;
            }
            let Some(id) = body_rx(body) else { continue };
            let contact = match fresh.get(&id) {
                Some(c) => Some(c.clone()),
                None => self.contact(&id)?,
            };
            let Some(c) = contact.filter(|c| c.subscribed) else {
                continue;
            };
            let Some(rec) = after(&id) else { continue };
            if let Some(ev) = Self::status_event(body, &rec) {
                let (k, m) = self.message(&rec, &c, ev, h, index);
                batch.insert(keys::of(keys::QUEUED, &k), json(&m));
                touched = true;
            }
        }
        Ok(touched.then_some(batch))
    }
}

/// Whether a closed prescription's delivery, if it has one, will bring no
/// more mail: delivered or returned, or its last step at or before `cutoff`.
fn delivery_settled(rec: &PrescriptionRecord, cutoff: u64) -> bool {
    if !matches!(rec.fulfilment, Some(Fulfilment::Delivery { .. })) {
        return true;
    }
    match rec.delivery.last() {
        Some(d) => {
            matches!(
                d.status,
                DeliveryStatus::Delivered | DeliveryStatus::Returned
            ) || d.at.0 <= cutoff
        }
        // Completed or cancelled before anything was sent out.
        None => true,
    }
}

/// The prescription a transaction is about, for the kinds patients hear of.
fn body_rx(body: &TxBody) -> Option<PrescriptionId> {
    Some(match body {
        TxBody::Assign(a) => a.id,
        TxBody::Claim(c) => c.id,
        TxBody::Dispense(d) => d.id,
        TxBody::Cancel(c) => c.id,
        TxBody::Delivery(d) => d.id,
        _ => return None,
    })
}

impl ApplyObserver for Outbox {
    fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    fn plan(
        &self,
        block: &Block,
        outcomes: &[Outcome],
        after: &dyn Fn(&PrescriptionId) -> Option<PrescriptionRecord>,
    ) -> Option<Batch> {
        if !self.enabled() {
            return None;
        }
        self.plan_inner(block, outcomes, after).unwrap_or_else(|e| {
            tracing::error!(height = block.header.height, error = %e, "the outbox could not plan a block's messages; none queued");
            None
        })
    }

    fn catch_up(
        &self,
        blocks: &mut dyn Iterator<Item = Block>,
        after: &dyn Fn(&PrescriptionId) -> Option<PrescriptionRecord>,
    ) -> Option<Batch> {
        if !self.enabled() {
            return None;
        }
        self.catch_up_inner(blocks, after, crate::clock::now())
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "the outbox could not catch up with a snapshot's blocks; none queued");
                None
            })
    }

    fn applied(&self) {
        self.wake.notify_one();
    }
}

/// How old a block a snapshot brought may be for its status event to be
/// mailed (see [`Outbox::catch_up_inner`]): one day.
pub const CATCH_UP_MAX_AGE_MS: u64 = 86_400_000;

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    // Our own plain structs: serialising them cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], v: &[u8]) -> Result<T, EmailError> {
    serde_json::from_slice(v).map_err(|source| EmailError::Corrupt {
        key: hex::encode(key),
        source,
    })
}
