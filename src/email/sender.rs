//! The sender task: delivers queued outbox messages, one at a time and in
//! key order (so one prescription's messages go out in the order of their
//! facts), with doubling retry delays for temporary failures and at once
//! marked failed on a permanent (5xx) answer or after `max_attempts`.
//!
//! It runs beside everything else: apply only writes the outbox and wakes
//! it, so an SMTP outage fills the outbox and slows nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rxchain_contracts::model::PrescriptionId;
use sled::Batch;

use super::{decode, json, keys, render, EmailError, Event, Message, Outbox};
use crate::config::{EmailSettings, EmailTransport};
use crate::metrics::Metrics;
use crate::store::chain::ChainStore;

/// Why the transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// `smtp_url` does not parse.
    #[error("email.smtp_url is not valid")]
    Url(#[source] lettre::transport::smtp::Error),
    /// `ca_file` could not be read.
    #[error("cannot read email.ca_file {path}")]
    Ca {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS parameters were refused.
    #[error("the SMTP TLS settings are not valid")]
    Tls(#[source] lettre::transport::smtp::Error),
}

/// Where messages go.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(std::path::PathBuf),
}

/// The outcome of one attempt.
enum Attempt {
    Sent,
    Temporary(String),
    Permanent(String),
}

/// The host part of an `smtp://` or `smtps://` URL.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let end = rest.find([':', '/', '?']).unwrap_or(rest.len());
    &rest[..end]
}

fn transport(
    s: &EmailSettings,
    dir: &std::path::Path,
) -> Result<Option<Transport>, TransportError> {
    match s.transport {
        EmailTransport::Off => Ok(None),
        EmailTransport::File => Ok(Some(Transport::File(dir.to_path_buf()))),
        EmailTransport::Smtp => {
            let mut b = AsyncSmtpTransport::<Tokio1Executor>::from_url(&s.smtp_url)
                .map_err(TransportError::Url)?
                .timeout(Some(Duration::from_secs(s.timeout_secs.max(1))));
            if let Some(path) = &s.ca_file {
                let pem = std::fs::read(path).map_err(|source| TransportError::Ca {
                    path: path.clone(),
                    source,
                })?;
                let cert = Certificate::from_pem(&pem).map_err(TransportError::Tls)?;
                let params = TlsParameters::builder(url_host(&s.smtp_url).to_string())
                    .add_root_certificate(cert)
                    .build_rustls()
                    .map_err(TransportError::Tls)?;
                // The URL's scheme chose implicit TLS or STARTTLS; only the
                // trusted roots change. Opportunistic TLS stays a test-only
                // choice written into the URL.
                let tls = if s.smtp_url.starts_with("smtps://") {
                    Tls::Wrapper(params)
                } else if s.smtp_url.contains("tls=opportunistic") {
                    Tls::Opportunistic(params)
                } else {
                    Tls::Required(params)
                };
                b = b.tls(tls);
            }
            if let (Some(u), Some(p)) = (&s.username, &s.password) {
                b = b.credentials(Credentials::new(u.clone(), p.expose().clone()));
            }
            Ok(Some(Transport::Smtp(b.build())))
        }
    }
}

async fn attempt(t: &Transport, m: &Message, s: &EmailSettings, hospital: &str) -> Attempt {
    let msg = match render(m, s, hospital) {
        Ok(msg) => msg,
        // A message that cannot be built never will be.
        Err(e) => return Attempt::Permanent(error_chain(&e)),
    };
    match t {
        Transport::Smtp(smtp) => match smtp.send(msg).await {
            Ok(_) => Attempt::Sent,
            Err(e) if e.is_permanent() => Attempt::Permanent(error_chain(&e)),
            Err(e) => Attempt::Temporary(error_chain(&e)),
        },
        Transport::File(dir) => {
            let name = format!(
                "{}-{}.eml",
                m.rx,
                m.message_id
                    .trim_matches(['<', '>'])
                    .replace(['@', '/'], "_")
            );
            let bytes = msg.formatted();
            let dir = dir.clone();
            let r = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                std::fs::create_dir_all(&dir)?;
                let tmp = dir.join(format!(".{name}.tmp"));
                std::fs::write(&tmp, &bytes)?;
                std::fs::rename(&tmp, dir.join(&name))
            })
            .await;
            match r {
                Ok(Ok(())) => Attempt::Sent,
                Ok(Err(e)) => Attempt::Temporary(error_chain(&e)),
                Err(e) => Attempt::Temporary(error_chain(&e)),
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The delay before attempt `n + 1` after `n` failures.
fn backoff(initial_ms: u64, attempts: u32) -> u64 {
    initial_ms
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(16))
        .min(300_000)
}

/// The periodic work: the expiry notices due, then the pruning of what the
/// retention rule lets go. Trouble is logged; the sender goes on.
async fn scan(outbox: &Arc<Outbox>, chain: &Arc<ChainStore>, metrics: &Metrics) {
    let (o, c) = (outbox.clone(), chain.clone());
    let r = tokio::task::spawn_blocking(move || {
        let now = crate::clock::now();
        let queued = o.queue_expiry_notices(&c, now)?;
        let pruned = o.prune(&c, now)?;
        Ok::<_, EmailError>((queued, pruned))
    })
    .await;
    match r {
        Ok(Ok((queued, (messages, contacts)))) => {
            if queued > 0 {
                tracing::info!(queued, "expiry notices queued");
            }
            if messages + contacts > 0 {
                tracing::info!(messages, contacts, "outbox pruned");
            }
            metrics.email_scans.inc();
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %error_chain(&e), "the expiry scheduler or pruner failed")
        }
        Err(e) => tracing::warn!(error = %e, "the expiry scheduler or pruner panicked"),
    }
}

/// Runs until `shutdown` changes: sends what is due, then waits to be woken
/// (an applied block), for the next retry, or the next scan (`scan_secs`) of the expiry
/// scheduler and pruner.
pub async fn run(
    outbox: Arc<Outbox>,
    chain: Arc<ChainStore>,
    metrics: Arc<Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let s = outbox.settings().clone();
    let t = match transport(&s, outbox.dir()) {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "patient e-mail is off: the transport could not be set up");
            return;
        }
    };
    if !outbox.enabled() {
        return;
    }
    let hospital = outbox
        .org
        .as_ref()
        .and_then(|o| {
            chain
                .consortium()
                .orgs
                .iter()
                .find(|d| &d.id == o)
                .map(|d| d.name.to_string())
        })
        .unwrap_or_else(|| "rxchain".to_string());
    let min_gap = match s.max_per_minute {
        0 => Duration::ZERO,
        n => Duration::from_millis(60_000 / u64::from(n)),
    };
    let scan_every = Duration::from_secs(s.scan_secs.max(1));
    let mut last_scan = None::<tokio::time::Instant>;
    loop {
        if last_scan.is_none_or(|t: tokio::time::Instant| t.elapsed() >= scan_every) {
            scan(&outbox, &chain, &metrics).await;
            last_scan = Some(tokio::time::Instant::now());
        }
        let next = match pass(&outbox, &t, &s, &hospital, min_gap, &mut shutdown).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "the outbox could not be read");
                Some(crate::clock::now_ms() + 5_000)
            }
        };
        let (q, f) = outbox.depth();
        metrics
            .email_outbox_depth
            .set(i64::try_from(q).unwrap_or(i64::MAX));
        metrics
            .email_failed
            .set(i64::try_from(f).unwrap_or(i64::MAX));
        let scan_ms = u64::try_from(scan_every.as_millis()).unwrap_or(60_000);
        let wait = next.map_or(scan_ms, |at| {
            at.saturating_sub(crate::clock::now_ms()).min(scan_ms)
        });
        tokio::select! {
            _ = outbox.woken() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// One pass over the queue; returns the earliest time a skipped message
/// falls due.
async fn pass(
    outbox: &Outbox,
    t: &Transport,
    s: &EmailSettings,
    hospital: &str,
    min_gap: Duration,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<Option<u64>, EmailError> {
    let mut next: Option<u64> = None;
    // A prescription whose earlier message is waiting: its later ones wait
    // too, so they never overtake it.
    let mut held: HashSet<PrescriptionId> = HashSet::new();
    let queued: Vec<(sled::IVec, sled::IVec)> = outbox
        .tree
        .scan_prefix(keys::QUEUED)
        .collect::<Result<_, _>>()?;
    for (k, v) in queued {
        if *shutdown.borrow() {
            break;
        }
        let mut m: Message = decode(&k, &v)?;
        if held.contains(&m.rx) {
            continue;
        }
        let now = crate::clock::now_ms();
        if m.next_at_ms > now {
            held.insert(m.rx);
            next = Some(next.map_or(m.next_at_ms, |n| n.min(m.next_at_ms)));
            continue;
        }
        let result = attempt(t, &m, s, hospital).await;
        m.attempts += 1;
        let rest = &k[keys::QUEUED.len()..];
        let mut b = Batch::default();
        match result {
            Attempt::Sent => {
                m.sent_at_ms = Some(crate::clock::now_ms());
                m.last_error = None;
                // The secret is not kept once it has left.
                if let Event::Qr { payload, .. } = &mut m.event {
                    *payload = None;
                }
                b.remove(&k);
                b.insert(keys::of(keys::SENT, rest), json(&m));
                tracing::info!(rx = %m.rx, kind = m.event.kind(), message_id = %m.message_id, "patient e-mail sent");
            }
            Attempt::Permanent(e) => {
                tracing::warn!(rx = %m.rx, kind = m.event.kind(), error = %e, "patient e-mail refused for good");
                m.last_error = Some(e);
                b.remove(&k);
                b.insert(keys::of(keys::FAILED, rest), json(&m));
            }
            Attempt::Temporary(e) if m.attempts >= s.max_attempts.max(1) => {
                tracing::warn!(rx = %m.rx, kind = m.event.kind(), error = %e, "patient e-mail given up after its last attempt");
                m.last_error = Some(e);
                b.remove(&k);
                b.insert(keys::of(keys::FAILED, rest), json(&m));
            }
            Attempt::Temporary(e) => {
                m.next_at_ms = crate::clock::now_ms() + backoff(s.retry_initial_ms, m.attempts);
                tracing::info!(rx = %m.rx, kind = m.event.kind(), attempts = m.attempts, error = %e, "patient e-mail will be retried");
                m.last_error = Some(e);
                held.insert(m.rx);
                next = Some(next.map_or(m.next_at_ms, |n| n.min(m.next_at_ms)));
                b.insert(k.clone(), json(&m));
            }
        }
        outbox.tree.apply_batch(b)?;
        if !min_gap.is_zero() {
            tokio::time::sleep(min_gap).await;
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_read_from_the_url() {
        assert_eq!(url_host("smtp://127.0.0.1:2525?tls=required"), "127.0.0.1");
        assert_eq!(
            url_host("smtps://user:pw@mail.example.org"),
            "mail.example.org"
        );
        assert_eq!(url_host("smtp://localhost"), "localhost");
    }

    #[test]
    fn retries_double_up_to_five_minutes() {
        assert_eq!(backoff(1000, 1), 1000);
        assert_eq!(backoff(1000, 2), 2000);
        assert_eq!(backoff(1000, 3), 4000);
        assert_eq!(backoff(1000, 30), 300_000);
    }
}
