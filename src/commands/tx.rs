//! `rxchain tx …`: build, sign and submit lifecycle transactions.

use anyhow::{bail, Context};
use rxchain_contracts::privacy::{PatientDetails, PrivateContent};
use rxchain_contracts::tx::{CancelReason, DispenseLine, Item, RevokeReason, Role};
use rxchain_contracts::{
    AtcCode, Label, OrgId, PrescriptionId, PublicKey, Quantity, SecretKey, SignedTx,
};

use crate::cli::{TxArgs, TxKind};
use crate::client::{Client, Submitted};
use crate::qr::QrPayload;
use crate::service::submit::ItemStatus;
use crate::txbuild;

fn signer(args: &TxArgs) -> anyhow::Result<SecretKey> {
    match (&args.key, &args.demo_user) {
        (Some(p), None) => Ok(crate::keys::read(p)?),
        (None, Some(u)) => Ok(match u.strip_prefix("admin:") {
            Some(org) => crate::demo::admin_key(org),
            None => crate::demo::staff_key(u),
        }),
        (Some(_), Some(_)) => bail!("give either --key or --demo-user, not both"),
        (None, None) => bail!("this transaction needs a signer: --key FILE or --demo-user NAME"),
    }
}

/// Parses `ATC:name:strength:form:quantity:unit[:controlled]`.
pub fn parse_item(s: &str) -> anyhow::Result<Item> {
    let p: Vec<&str> = s.split(':').collect();
    if p.len() != 6 && p.len() != 7 {
        bail!("an item is ATC:name:strength:form:quantity:unit[:controlled], got {s:?}");
    }
    Ok(Item {
        atc: AtcCode::parse(p[0])?,
        name: Label::parse(p[1])?,
        strength: Label::parse(p[2])?,
        form: Label::parse(p[3])?,
        quantity: Quantity::new(p[4].parse().context("quantity must be a whole number")?)?,
        unit: Label::parse(p[5])?,
        controlled: p.get(6).is_some_and(|c| *c == "controlled"),
    })
}

fn parse_line(s: &str) -> anyhow::Result<DispenseLine> {
    let p: Vec<&str> = s.splitn(3, ':').collect();
    if p.len() != 3 {
        bail!("a dispense line is item:quantity:batch, got {s:?}");
    }
    Ok(DispenseLine {
        item: p[0].parse().context("item must be an index")?,
        quantity: Quantity::new(p[1].parse().context("quantity must be a whole number")?)?,
        batch: Label::parse(p[2])?,
    })
}

fn enum_arg<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> anyhow::Result<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .with_context(|| format!("{s:?} is not a valid {what}"))
}

async fn submit(client: &Client, tx: &SignedTx) -> anyhow::Result<()> {
    match client.submit(tx).await? {
        Submitted::Applied(r) => println!(
            "committed: tx {} in block {} (index {})",
            r.tx_id, r.height, r.index
        ),
        Submitted::Pending(p) => println!("admitted, not yet committed; poll {}{p}", client.base()),
    }
    Ok(())
}

/// Runs `rxchain tx`.
pub async fn run(args: TxArgs) -> anyhow::Result<()> {
    let client = Client::trusting(
        args.node.clone(),
        &args.trust.genesis,
        args.trust.ca.as_deref(),
    )?;
    let genesis = client
        .genesis()
        .await
        .context("reading the consortium from the node")?;
    match &args.kind {
        TxKind::Batch { file } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let list = match v {
                serde_json::Value::Object(mut o) => o.remove("txs").unwrap_or_default(),
                other => other,
            };
            let txs: Vec<SignedTx> = serde_json::from_value(list).with_context(|| {
                format!("{} is not a list of signed transactions", file.display())
            })?;
            let items = client.submit_batch(&txs).await?;
            let mut not_applied = 0;
            for item in &items {
                let id = item
                    .tx_id
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "-".into());
                match &item.receipt {
                    Some(r) if item.status == ItemStatus::Applied => println!(
                        "{}: applied: tx {id} in block {} (index {})",
                        item.index, r.height, r.index
                    ),
                    _ => {
                        not_applied += 1;
                        println!(
                            "{}: {:?}: tx {id}: {} {}",
                            item.index,
                            item.status,
                            item.code.as_deref().unwrap_or(""),
                            item.message
                                .as_deref()
                                .or(item.poll.as_deref())
                                .unwrap_or("")
                        )
                    }
                }
            }
            if not_applied > 0 {
                bail!(
                    "{not_applied} of {} transactions were not applied",
                    items.len()
                );
            }
            return Ok(());
        }
        TxKind::Issue {
            hospital,
            items,
            dosage,
            repeats,
            valid_days,
            patient_name,
            birth_date,
            patient_id,
            qr_png,
        } => {
            let key = signer(&args)?;
            let items = items
                .iter()
                .map(|i| parse_item(i))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let valid_from = crate::clock::now();
            let new = txbuild::issue(
                &genesis,
                &key,
                txbuild::IssueInput {
                    hospital: OrgId::parse(hospital.clone())?,
                    items,
                    repeats: *repeats,
                    valid_from: Some(valid_from),
                    valid_until: valid_days.map(|d| valid_from.plus_days(d)),
                    content: PrivateContent {
                        patient: PatientDetails {
                            name: patient_name.clone(),
                            birth_date: birth_date.clone(),
                            identifier: patient_id.clone(),
                            email: None,
                        },
                        dosage: dosage.clone(),
                        notes: String::new(),
                    },
                },
            )?;
            submit(&client, &new.tx).await?;
            println!(
                "prescription {} ({})",
                new.payload.id,
                new.payload.id.short()
            );
            println!(
                "patient QR payload (secret, give only to the patient): {}",
                new.payload.encode()
            );
            if let Some(p) = qr_png {
                std::fs::write(p, crate::qr::render_png(&new.payload.encode(), 8)?)?;
                println!("QR code written to {}", p.display());
            }
        }
        TxKind::Assign { payload, pharmacy } => {
            let payload = QrPayload::parse(payload)?;
            submit(
                &client,
                &txbuild::assign_pickup(&genesis, &payload, &OrgId::parse(pharmacy.clone())?)?,
            )
            .await?;
        }
        TxKind::Claim { payload, pharmacy } => {
            let payload = QrPayload::parse(payload)?;
            submit(
                &client,
                &txbuild::claim(
                    &genesis,
                    &signer(&args)?,
                    &OrgId::parse(pharmacy.clone())?,
                    &payload,
                ),
            )
            .await?;
        }
        TxKind::Dispense {
            id,
            lines,
            complete,
        } => {
            let lines = lines
                .iter()
                .map(|l| parse_line(l))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let tx = txbuild::dispense(
                &genesis,
                &signer(&args)?,
                PrescriptionId::parse(id)?,
                lines,
                *complete,
            );
            submit(&client, &tx).await?;
        }
        TxKind::Release { id } => {
            submit(
                &client,
                &txbuild::release(&genesis, &signer(&args)?, PrescriptionId::parse(id)?),
            )
            .await?;
        }
        TxKind::Cancel { id, payload } => {
            let tx = match (id, payload) {
                (Some(id), None) => txbuild::cancel(
                    &genesis,
                    &signer(&args)?,
                    PrescriptionId::parse(id)?,
                    CancelReason::PrescriberError,
                ),
                (None, Some(p)) => {
                    let p = QrPayload::parse(p)?;
                    txbuild::cancel(
                        &genesis,
                        &p.secret.signing_key(),
                        p.id,
                        CancelReason::PatientRequest,
                    )
                }
                _ => bail!("give --id (prescriber) or --payload (patient)"),
            };
            submit(&client, &tx).await?;
        }
        TxKind::Delivery {
            id,
            status,
            problem,
            hand_over,
        } => {
            let event = rxchain_contracts::tx::DeliveryEvent {
                id: PrescriptionId::parse(id)?,
                status: enum_arg("delivery status", status)?,
                problem: problem
                    .as_deref()
                    .map(|p| enum_arg("delivery problem", p))
                    .transpose()?,
                hand_over: hand_over
                    .as_deref()
                    .map(|h| enum_arg("hand-over", h))
                    .transpose()?,
            };
            submit(
                &client,
                &txbuild::delivery_event(&genesis, &signer(&args)?, event),
            )
            .await?;
        }
        TxKind::HandToCarrier { id, carrier } => {
            let tx = txbuild::hand_to_carrier(
                &genesis,
                &signer(&args)?,
                PrescriptionId::parse(id)?,
                rxchain_contracts::OrgId::parse(carrier.clone())?,
            );
            submit(&client, &tx).await?;
        }
        TxKind::SetControlled { atc, schedule } => {
            let schedule = schedule
                .as_ref()
                .map(|s| rxchain_contracts::Label::parse(s.clone()))
                .transpose()?;
            let tx = txbuild::set_controlled(
                &genesis,
                &signer(&args)?,
                rxchain_contracts::AtcCode::parse(atc.clone())?,
                schedule,
            );
            submit(&client, &tx).await?;
        }
        TxKind::RegisterStaff {
            org,
            public_key,
            role,
            licence,
            name,
        } => {
            let role: Role = enum_arg("role", role)?;
            let tx = txbuild::register_staff(
                &genesis,
                &signer(&args)?,
                OrgId::parse(org.clone())?,
                PublicKey::parse_hex(public_key)?,
                role,
                Label::parse(licence.clone())?,
                Label::parse(name.clone())?,
            );
            submit(&client, &tx).await?;
        }
        TxKind::RevokeStaff { public_key, reason } => {
            let reason: RevokeReason = enum_arg("revocation reason", reason)?;
            submit(
                &client,
                &txbuild::revoke_staff(
                    &genesis,
                    &signer(&args)?,
                    PublicKey::parse_hex(public_key)?,
                    reason,
                ),
            )
            .await?;
        }
    }
    Ok(())
}
