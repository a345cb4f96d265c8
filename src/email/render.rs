//! Builds a MIME message from an outbox entry and the `templates/`
//! (English and Simplified Chinese): plain text and HTML alternatives, and
//! for the QR mail the code as an inline PNG (`cid:qr`).

use std::collections::HashMap;
use std::sync::OnceLock;

use figment::providers::{Format, Toml};
use figment::Figment;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use rxchain_contracts::tx::{DeliveryProblem, DeliveryStatus, HandOver};
use serde::Deserialize;

use super::{Event, Lang, Message};
use crate::config::EmailSettings;

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template file does not parse (a build-time mistake, caught by the
    /// unit test).
    #[error("the {0:?} e-mail templates do not parse")]
    Templates(Lang, #[source] Box<figment::Error>),
    /// An event has no template.
    #[error("no {0} template")]
    Missing(&'static str),
    /// An address (`from`, `reply_to` or the patient's) does not parse.
    #[error("the address {0:?} is not valid")]
    Address(String, #[source] lettre::address::AddressError),
    /// The QR code could not be drawn.
    #[error("the QR code could not be drawn")]
    Qr(#[from] crate::qr::QrError),
    /// lettre refused the message.
    #[error("the message could not be built")]
    Build(#[from] lettre::error::Error),
}

/// One event's template.
#[derive(Deserialize)]
struct Template {
    subject: String,
    text: String,
    html: String,
}

type Templates = HashMap<String, Template>;

fn templates(lang: Lang) -> Result<&'static Templates, RenderError> {
    static EN: OnceLock<Result<Templates, figment::Error>> = OnceLock::new();
    static ZH: OnceLock<Result<Templates, figment::Error>> = OnceLock::new();
    let (cell, text) = match lang {
        Lang::En => (&EN, include_str!("../../templates/en.toml")),
        Lang::Zh => (&ZH, include_str!("../../templates/zh.toml")),
    };
    cell.get_or_init(|| Figment::from(Toml::string(text)).extract())
        .as_ref()
        .map_err(|e| RenderError::Templates(lang, Box::new(e.clone())))
}

fn fill(t: &str, vars: &[(&str, String)], html: bool) -> String {
    let mut out = t.to_string();
    for (k, v) in vars {
        let v = if html { escape(v) } else { v.clone() };
        out = out.replace(&format!("{{{k}}}"), &v);
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn delivery_label(s: DeliveryStatus, lang: Lang) -> &'static str {
    match lang {
        // The chain's words, but plainer where a patient reads them alone.
        Lang::En => match s {
            DeliveryStatus::Failed => "delivery failed",
            DeliveryStatus::Returned => "returned to the pharmacy",
            _ => s.label(),
        },
        Lang::Zh => match s {
            DeliveryStatus::ReadyForPickup => "可以取药",
            DeliveryStatus::Packed => "已打包",
            DeliveryStatus::Dispatched => "已发出",
            DeliveryStatus::OutForDelivery => "派送中",
            DeliveryStatus::Delivered => "已送达",
            DeliveryStatus::Failed => "配送失败",
            DeliveryStatus::Returned => "已退回",
        },
    }
}

/// The sentence after a delivery status: why it failed or came back, or
/// how it was handed over; empty when there is neither.
fn delivery_detail(
    problem: Option<DeliveryProblem>,
    hand_over: Option<HandOver>,
    lang: Lang,
) -> String {
    let zh_problem = |p: DeliveryProblem| match p {
        DeliveryProblem::NoOneHome => "无人在家",
        DeliveryProblem::AddressNotFound => "找不到地址",
        DeliveryProblem::Refused => "包裹被拒收",
        DeliveryProblem::Damaged => "包裹在途中损坏",
        DeliveryProblem::NeedsHandOverInPerson => "须当面交付，但无人可以签收",
        DeliveryProblem::Other => "其他原因",
    };
    let zh_hand_over = |h: HandOver| match h {
        HandOver::ToPatient => "已交给您本人",
        HandOver::ToHousehold => "已交给地址处的其他人",
        HandOver::ToNeighbour => "已交给邻居",
        HandOver::SafePlace => "已放在安全的地方",
        HandOver::ParcelLocker => "已放入快递柜",
    };
    match (lang, problem, hand_over) {
        (Lang::En, Some(p), _) => format!(" Reason: {}.", p.label()),
        (Lang::En, None, Some(h)) => format!(" The parcel was {}.", h.label()),
        (Lang::Zh, Some(p), _) => format!("原因：{}。", zh_problem(p)),
        (Lang::Zh, None, Some(h)) => format!("{}。", zh_hand_over(h)),
        (_, None, None) => String::new(),
    }
}

/// The patient link for a payload, under `public_url`.
pub(super) fn patient_link(public_url: &str, payload: &str) -> String {
    format!("{}/patient/#{payload}", public_url.trim_end_matches('/'))
}

/// Builds the MIME message for `m`; `hospital` is the sender organisation's
/// display name.
pub fn render(
    m: &Message,
    settings: &EmailSettings,
    hospital: &str,
) -> Result<lettre::Message, RenderError> {
    let all = templates(m.lang)?;
    let kind = m.event.kind();
    let t = all.get(kind).ok_or(RenderError::Missing(kind))?;
    let footer = all.get("footer").ok_or(RenderError::Missing("footer"))?;
    let base = settings.public_url.trim_end_matches('/');
    let mut vars: Vec<(&str, String)> = vec![
        ("short_id", m.short_id.clone()),
        ("hospital", hospital.to_string()),
        (
            "unsubscribe",
            format!("{base}/v1/email/unsubscribe?rx={}&token={}", m.rx, m.token),
        ),
    ];
    let mut png = None;
    match &m.event {
        Event::Qr {
            payload,
            valid_until,
        } => {
            let payload = payload.as_deref().unwrap_or_default();
            vars.push(("link", patient_link(base, payload)));
            vars.push(("valid_until", valid_until.to_string()));
            png = Some(crate::qr::render_png(payload, 8)?);
        }
        Event::PharmacyChosen { pharmacy, delivery } => {
            vars.push(("pharmacy", pharmacy.clone()));
            let f = match (m.lang, delivery) {
                (Lang::En, true) => "delivery",
                (Lang::En, false) => "pickup",
                (Lang::Zh, true) => "配送",
                (Lang::Zh, false) => "到店取药",
            };
            vars.push(("fulfilment", f.to_string()));
        }
        Event::Claimed { pharmacy } => vars.push(("pharmacy", pharmacy.clone())),
        Event::Delivery {
            status,
            problem,
            hand_over,
        } => {
            vars.push(("status", delivery_label(*status, m.lang).to_string()));
            vars.push(("detail", delivery_detail(*problem, *hand_over, m.lang)));
        }
        Event::PartlyDispensed {
            remaining,
            valid_until,
        } => {
            vars.push(("remaining", remaining.join("\n")));
            vars.push(("valid_until", valid_until.to_string()));
        }
        Event::Dispensed => {}
        Event::Cancelled { reason } => vars.push(("reason", reason.replace('_', " "))),
        Event::Expiring { valid_until } => vars.push(("valid_until", valid_until.to_string())),
    }
    let subject = fill(&t.subject, &vars, false);
    let mut text = fill(&t.text, &vars, false);
    let mut html = fill(&t.html, &vars, true);
    // The QR mail is sent only at the doctor's request and has no
    // unsubscribe link; status mail always has one.
    if png.is_none() {
        text.push_str(&fill(&footer.text, &vars, false));
        html.push_str(&fill(&footer.html, &vars, true));
    }
    let html = format!("<!doctype html><html><body>{html}</body></html>");
    let mailbox = |s: &str| {
        s.parse::<Mailbox>()
            .map_err(|e| RenderError::Address(s.to_string(), e))
    };
    let mut b = lettre::Message::builder()
        .from(mailbox(&settings.from)?)
        .to(mailbox(&m.to)?)
        .subject(subject)
        .message_id(Some(m.message_id.clone()));
    if let Some(r) = &settings.reply_to {
        b = b.reply_to(mailbox(r)?);
    }
    let body = match png {
        Some(png) => MultiPart::alternative()
            .singlepart(SinglePart::plain(text))
            .multipart(
                MultiPart::related()
                    .singlepart(SinglePart::html(html))
                    .singlepart(
                        Attachment::new_inline("qr".to_string()).body(
                            png,
                            ContentType::parse("image/png")
                                .map_err(|_| RenderError::Missing("image/png"))?,
                        ),
                    ),
            ),
        None => MultiPart::alternative_plain_html(text, html),
    };
    Ok(b.multipart(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_every_template() {
        for lang in [Lang::En, Lang::Zh] {
            let t = templates(lang).unwrap();
            for k in [
                "qr",
                "pharmacy_chosen",
                "claimed",
                "delivery",
                "partly_dispensed",
                "dispensed",
                "cancelled",
                "expiring",
                "footer",
            ] {
                assert!(t.contains_key(k), "{lang:?} lacks {k}");
            }
        }
    }
}
