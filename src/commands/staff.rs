//! `rxchain staff add | list | disable | enable | reset-password |
//! rotate-key | revoke`: an organisation's staff admin manages the accounts
//! of their organisation on its node, through the same API as the `/admin/`
//! page ([`crate::http`]'s `/v1/admin/staff`).
//!
//! Authentication: the admin signs in as a person, with the username from
//! the `RXCHAIN_USERNAME` environment variable and the password from
//! `RXCHAIN_PASSWORD` (each prompted for when unset, the password without
//! echo); every change is then signed on the node with that admin's own
//! staff key and audited under their name. New passwords (`add`,
//! `reset-password`) come from `--password-file`, `RXCHAIN_NEW_PASSWORD`
//! or a prompt. `disable` and `enable` also take `--key FILE` instead: the
//! organisation's genesis admin key signs the request (see
//! [`crate::http::cluster::authenticate`]), for scripts and for an
//! organisation with no staff admin yet. The first staff admin is made with
//! `rxchain admin bootstrap` ([`super::admin`]).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value};

use crate::cli::{StaffAction, StaffArgs};
use crate::client::Client;
use crate::http::cluster::{signer_for, Signer};

/// Runs one staff command.
pub async fn run(args: StaffArgs) -> anyhow::Result<()> {
    let base = args.node.trim_end_matches('/').to_string();
    let client = Client::trusting(base.clone(), &args.trust.genesis, args.trust.ca.as_deref())?;
    match (&args.action, &args.key) {
        (StaffAction::Disable { username }, Some(key)) => {
            with_org_key(&client, key, "disable", username, args.json).await
        }
        (StaffAction::Enable { username }, Some(key)) => {
            with_org_key(&client, key, "enable", username, args.json).await
        }
        (_, _) => {
            let admin = match std::env::var("RXCHAIN_USERNAME") {
                Ok(u) if !u.trim().is_empty() => u,
                _ if std::io::stdin().is_terminal() => prompt("Staff admin username: ")?,
                _ => anyhow::bail!(
                    "sign in as a staff admin: set RXCHAIN_USERNAME and RXCHAIN_PASSWORD (or run on a terminal to be asked); `disable` and `enable` also take --key, the organisation's admin key file"
                ),
            };
            let password = secret("RXCHAIN_PASSWORD", None, &format!("Password for {admin}: "))?;
            let session = SessionClient::sign_in(client, admin.trim(), &password).await?;
            as_admin(&session, &args.action, args.json).await
        }
    }
}

/// A signed-in staff session: its cookie and CSRF token.
pub(crate) struct SessionClient {
    client: Client,
    cookie: String,
    csrf: String,
}

impl SessionClient {
    /// Signs in as `username`.
    pub(crate) async fn sign_in(
        client: Client,
        username: &str,
        password: &str,
    ) -> anyhow::Result<SessionClient> {
        let body = json!({"username": username, "password": password}).to_string();
        let (status, headers, v) = client
            .request_with_headers(reqwest::Method::POST, "/v1/session", &[], Some(body))
            .await
            .with_context(|| format!("cannot reach {}", client.base()))?;
        if status >= 300 {
            anyhow::bail!("signing in as {username}: {}", refusal(status, &v));
        }
        let cookie = headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .find_map(|c| c.split(';').next().filter(|p| p.starts_with("rxsession=")))
            .map(str::to_string)
            .context("the node signed in without a session cookie")?;
        let csrf = v["csrf"]
            .as_str()
            .context("the node's session has no CSRF token")?
            .to_string();
        if v["must_change_password"] == true {
            anyhow::bail!(
                "{username} must change the initial password first: sign in on the node's web page"
            );
        }
        Ok(SessionClient {
            client,
            cookie,
            csrf,
        })
    }

    /// Calls the API with the session; an answer of 300 or above is an error
    /// naming its code and sentence.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let headers = [
            ("cookie", self.cookie.clone()),
            ("x-csrf-token", self.csrf.clone()),
        ];
        let (status, _, v) = self
            .client
            .request_with_headers(method, path, &headers, body.map(|b| b.to_string()))
            .await
            .with_context(|| format!("cannot reach {}", self.client.base()))?;
        if status >= 300 {
            anyhow::bail!("{}", refusal(status, &v));
        }
        Ok(v)
    }
}

fn refusal(status: u16, v: &Value) -> String {
    format!(
        "{status} {}: {}",
        v["code"].as_str().unwrap_or(""),
        v["message"].as_str().unwrap_or("")
    )
}

/// A line typed on the terminal, echoed.
fn prompt(text: &str) -> anyhow::Result<String> {
    eprint!("{text}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}

/// A secret from `file` (its first line), else the environment variable
/// `var`, else a prompt on the terminal (not echoed).
pub(crate) fn secret(var: &str, file: Option<&Path>, prompt: &str) -> anyhow::Result<String> {
    if let Some(file) = file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        return Ok(text.lines().next().unwrap_or_default().to_string());
    }
    if let Ok(v) = std::env::var(var) {
        return Ok(v);
    }
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    // `stty` turns echo off on a terminal; piped input is read as is.
    let echo = |on: bool| {
        if tty {
            let _ = std::process::Command::new("stty")
                .arg(if on { "echo" } else { "-echo" })
                .stdin(std::process::Stdio::inherit())
                .status();
        }
    };
    echo(false);
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    echo(true);
    if tty {
        eprintln!();
    }
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn as_admin(s: &SessionClient, action: &StaffAction, json: bool) -> anyhow::Result<()> {
    use reqwest::Method;
    let at = |u: &str, verb: &str| format!("/v1/admin/staff/{}/{verb}", url_escape(u.trim()));
    let v = match action {
        StaffAction::List => {
            let v = s.call(Method::GET, "/v1/admin/staff", None).await?;
            if !json {
                print_list(&v);
                return Ok(());
            }
            v
        }
        StaffAction::Add {
            account,
            name,
            role,
            licence,
            password_file,
        } => {
            let password = secret(
                "RXCHAIN_NEW_PASSWORD",
                password_file.as_deref(),
                &format!("Initial password for {account}: "),
            )?;
            let body = json!({
                "username": account, "name": name, "role": role,
                "licence": licence, "password": password,
            });
            let v = s.call(Method::POST, "/v1/admin/staff", Some(body)).await?;
            if !json {
                println!(
                    "created {} ({}), key {} registered on the chain; the initial password must be changed at first sign-in",
                    v["username"].as_str().unwrap_or(account),
                    v["role"].as_str().unwrap_or(role),
                    v["public_key"].as_str().unwrap_or("?")
                );
                return Ok(());
            }
            v
        }
        StaffAction::Disable { username } | StaffAction::Enable { username } => {
            let verb = if matches!(action, StaffAction::Disable { .. }) {
                "disable"
            } else {
                "enable"
            };
            let v = s.call(Method::POST, &at(username, verb), None).await?;
            if !json {
                print_status(&v, username);
                return Ok(());
            }
            v
        }
        StaffAction::ResetPassword {
            account,
            password_file,
        } => {
            let password = secret(
                "RXCHAIN_NEW_PASSWORD",
                password_file.as_deref(),
                &format!("New initial password for {account}: "),
            )?;
            let v = s
                .call(
                    Method::POST,
                    &at(account, "reset-password"),
                    Some(json!({"password": password})),
                )
                .await?;
            if !json {
                println!("{account}'s password is reset; it must be changed at the next sign-in, and every session ended");
                return Ok(());
            }
            v
        }
        StaffAction::RotateKey { account } => {
            let v = s
                .call(Method::POST, &at(account, "rotate-key"), None)
                .await?;
            if !json {
                println!(
                    "{account} signs with {} now; the old key {} is revoked on the chain",
                    v["new_key"].as_str().unwrap_or("?"),
                    v["old_key"].as_str().unwrap_or("?")
                );
                return Ok(());
            }
            v
        }
        StaffAction::Revoke { account, reason } => {
            let v = s
                .call(
                    Method::POST,
                    &at(account, "revoke"),
                    Some(json!({"reason": reason})),
                )
                .await?;
            if !json {
                println!("{account} is revoked on the chain and disabled for good");
                return Ok(());
            }
            v
        }
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

fn print_list(v: &Value) {
    println!(
        "{:<20} {:<18} {:<13} {:<9} {:<9} {:<7}  last sign-in",
        "username", "role", "chain", "disabled", "password", "keys"
    );
    for a in v["staff"].as_array().into_iter().flatten() {
        let last = a["last_sign_in"]
            .as_u64()
            .map_or_else(|| "never".to_string(), utc_minute);
        println!(
            "{:<20} {:<18} {:<13} {:<9} {:<9} {:<7}  {last}",
            a["username"].as_str().unwrap_or("?"),
            a["role"].as_str().unwrap_or("?"),
            a["chain_status"].as_str().unwrap_or("?"),
            if a["disabled"] == true { "yes" } else { "no" },
            if a["must_change_password"] == true {
                "initial"
            } else {
                "set"
            },
            a["past_keys"].as_array().map_or(0, Vec::len) + 1,
        );
    }
}

/// A block time (ms) as `YYYY-MM-DD HH:MM UTC`, or the raw number when
/// it is out of range.
fn utc_minute(ms: u64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64) else {
        return ms.to_string();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

fn print_status(v: &Value, username: &str) {
    let name = v["account"]["username"].as_str().unwrap_or(username);
    let state = if v["disabled"].as_bool() == Some(true) {
        "disabled"
    } else {
        "enabled"
    };
    let unchanged = if v["unchanged"].as_bool() == Some(true) {
        " (unchanged: it already was)"
    } else {
        ""
    };
    println!(
        "{name} is {state}{unchanged}; {} session(s) ended",
        v["sessions_ended"]
    );
}

/// `disable` or `enable` signed with the organisation's genesis admin key.
async fn with_org_key(
    client: &Client,
    key_file: &Path,
    verb: &str,
    username: &str,
    json: bool,
) -> anyhow::Result<()> {
    let key = crate::keys::read(key_file)?;
    let genesis = client
        .genesis()
        .await
        .context("reading the consortium from the node")?;
    let signer = match signer_for(&genesis, &key) {
        Some(s @ Signer::Operator(_)) => s,
        Some(Signer::Node(id)) => anyhow::bail!(
            "the key is node {id}'s key; accounts are changed with an organisation admin key"
        ),
        None => {
            anyhow::bail!("the key is not an organisation admin key of this consortium's genesis")
        }
    };
    // Usernames have no spaces or slashes that matter in a path once
    // encoded; encode anyway, so an odd name cannot reach another route.
    let path = format!("/v1/accounts/{}/{verb}", url_escape(username.trim()));
    let v = super::signed_admin_call(
        client,
        &genesis,
        &key,
        &signer,
        reqwest::Method::POST,
        &path,
        "{}".to_string(),
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_status(&v, username);
    }
    Ok(())
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
