//! Building and signing transactions on the client side: sealing a new
//! prescription for its three readers, claim proofs, hand-overs. Used by the
//! CLI, the demo, the benchmark and the web key store.
//!
//! Randomness comes from the operating system here and enters the contracts
//! as an entropy callback.

use rxchain_contracts::privacy::{
    self, seal_content, wrap_for_key, wrap_for_secret, AccessSecret, ContentKey, PrivateContent,
};
use rxchain_contracts::tx::{
    claim_proof_message, AssignRx, CancelReason, CancelRx, ClaimRx, DeliveryEvent, DeliveryStatus,
    DispenseLine, DispenseRx, Fulfilment, GrantAccess, HandToCarrier, IssueRx, Item, RefuseRequest,
    RegisterStaff, ReleaseRx, RequestAccess, RevokeAccess, RevokeReason, RevokeStaff, Role,
    SetControlled, CLAIM_PROOF_TAG,
};
use rxchain_contracts::{
    Genesis, Label, OrgId, PrescriptionId, PublicKey, SecretKey, SignedTx, Timestamp, Transaction,
    TxBody,
};

use crate::clock::now;
use crate::keys::fill_random;
use crate::qr::QrPayload;

fn entropy() -> impl FnMut(&mut [u8]) {
    |b: &mut [u8]| fill_random(b)
}

fn nonce() -> u64 {
    let mut b = [0u8; 8];
    fill_random(&mut b);
    u64::from_be_bytes(b)
}

/// Signs `body` with `key` as a transaction of `genesis`'s chain.
pub fn sign(genesis: &Genesis, key: &SecretKey, body: TxBody) -> SignedTx {
    Transaction {
        signer: key.public(),
        nonce: nonce(),
        created_at: now(),
        body,
    }
    .sign(genesis.chain_id.as_str(), key)
}

/// Why a transaction could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The hospital is not a member.
    #[error("hospital {0} is not in genesis")]
    UnknownHospital(OrgId),
    /// The pharmacy is not a member.
    #[error("pharmacy {0} is not in genesis")]
    UnknownPharmacy(OrgId),
    /// A genesis data key cannot be wrapped for.
    #[error(transparent)]
    Privacy(#[from] privacy::PrivacyError),
}

/// A freshly issued prescription: the transaction and the patient's QR payload.
pub struct NewPrescription {
    /// The signed issue transaction.
    pub tx: SignedTx,
    /// What the QR code carries (id and access secret).
    pub payload: QrPayload,
}

/// What a prescriber fills in.
pub struct IssueInput {
    /// The prescriber's hospital.
    pub hospital: OrgId,
    /// The drugs.
    pub items: Vec<Item>,
    /// Repeat fills.
    pub repeats: u8,
    /// Start of validity (defaults to now).
    pub valid_from: Option<Timestamp>,
    /// End of validity (defaults by kind).
    pub valid_until: Option<Timestamp>,
    /// Patient identity and clinical text, sealed.
    pub content: PrivateContent,
}

/// Builds and signs an issue transaction, sealing the content for the QR
/// holder, the hospital and every regulator.
pub fn issue(
    genesis: &Genesis,
    prescriber: &SecretKey,
    input: IssueInput,
) -> Result<NewPrescription, BuildError> {
    let mut e = entropy();
    let hospital = genesis
        .org(&input.hospital)
        .ok_or_else(|| BuildError::UnknownHospital(input.hospital.clone()))?;
    let mut idb = [0u8; 16];
    e(&mut idb);
    let id = PrescriptionId::from_bytes(idb);
    let secret = AccessSecret::random(&mut e);
    let ck = ContentKey::random(&mut e);
    let ctx = privacy::content_context(&id);
    let body = IssueRx {
        id,
        items: input.items,
        repeats: input.repeats,
        valid_from: input.valid_from.unwrap_or_else(now),
        valid_until: input.valid_until,
        access_key: secret.signing_key().public(),
        sealed: seal_content(&id, &input.content, &ck, &mut e),
        key_for_patient: wrap_for_secret(&secret, &ctx, ck.expose(), &mut e),
        key_for_hospital: wrap_for_key(&hospital.data_key, &ctx, ck.expose(), &mut e)?,
        key_for_regulators: genesis
            .regulators()
            .map(|r| {
                Ok((
                    r.id.clone(),
                    wrap_for_key(&r.data_key, &ctx, ck.expose(), &mut e)?,
                ))
            })
            .collect::<Result<_, privacy::PrivacyError>>()?,
    };
    Ok(NewPrescription {
        tx: sign(genesis, prescriber, TxBody::Issue(body)),
        payload: QrPayload { id, secret },
    })
}

/// A claim by `pharmacist` of `pharmacy`, proving possession of the QR payload.
pub fn claim(
    genesis: &Genesis,
    pharmacist: &SecretKey,
    pharmacy: &OrgId,
    payload: &QrPayload,
) -> SignedTx {
    let mut n = [0u8; 16];
    fill_random(&mut n);
    let msg = claim_proof_message(genesis.chain_id.as_str(), &payload.id, pharmacy, &n);
    let proof = payload.secret.signing_key().sign(CLAIM_PROOF_TAG, &msg);
    sign(
        genesis,
        pharmacist,
        TxBody::Claim(ClaimRx {
            id: payload.id,
            pharmacy: pharmacy.clone(),
            nonce: n,
            proof,
        }),
    )
}

/// The patient's choice of pickup, signed with the access key, handing the
/// secret over to the pharmacy so it can claim ahead of the visit.
pub fn assign_pickup(
    genesis: &Genesis,
    payload: &QrPayload,
    pharmacy: &OrgId,
) -> Result<SignedTx, BuildError> {
    assign(genesis, payload, pharmacy, |_| {
        Ok(Fulfilment::Pickup {
            pharmacy: pharmacy.clone(),
        })
    })
}

/// The patient's choice of home delivery: the address is sealed under the
/// prescription's content key, which the patient recovers with the secret.
pub fn assign_delivery(
    genesis: &Genesis,
    payload: &QrPayload,
    content_key: &ContentKey,
    pharmacy: &OrgId,
    address: &str,
) -> Result<SignedTx, BuildError> {
    assign(genesis, payload, pharmacy, |e| {
        let sealed = privacy::seal(
            content_key.expose(),
            &privacy::address_context(&payload.id),
            address.as_bytes(),
            e,
        );
        Ok(Fulfilment::Delivery {
            pharmacy: pharmacy.clone(),
            address: sealed,
        })
    })
}

/// An assignment to `pharmacy`, signed with the access key: the
/// fulfilment `fulfilment` builds, and the secret handed over to the
/// pharmacy's data key so it can claim without seeing the code.
fn assign(
    genesis: &Genesis,
    payload: &QrPayload,
    pharmacy: &OrgId,
    fulfilment: impl FnOnce(&mut dyn FnMut(&mut [u8])) -> Result<Fulfilment, BuildError>,
) -> Result<SignedTx, BuildError> {
    let org = genesis
        .org(pharmacy)
        .ok_or_else(|| BuildError::UnknownPharmacy(pharmacy.clone()))?;
    let mut e = entropy();
    let fulfilment = fulfilment(&mut e)?;
    let handover = wrap_for_key(
        &org.data_key,
        &privacy::handover_context(&payload.id),
        payload.secret.expose(),
        &mut e,
    )?;
    let body = AssignRx {
        id: payload.id,
        fulfilment,
        handover: Some(handover),
    };
    Ok(sign(
        genesis,
        &payload.secret.signing_key(),
        TxBody::Assign(body),
    ))
}

/// A dispense of `lines` (`(item, quantity, batch)`).
pub fn dispense(
    genesis: &Genesis,
    pharmacist: &SecretKey,
    id: PrescriptionId,
    lines: Vec<DispenseLine>,
    complete: bool,
) -> SignedTx {
    sign(
        genesis,
        pharmacist,
        TxBody::Dispense(DispenseRx {
            id,
            lines,
            complete,
        }),
    )
}

/// A release by the claiming pharmacy.
pub fn release(genesis: &Genesis, pharmacist: &SecretKey, id: PrescriptionId) -> SignedTx {
    sign(genesis, pharmacist, TxBody::Release(ReleaseRx { id }))
}

/// A cancellation by the prescriber (their key) or the patient (the access key).
pub fn cancel(
    genesis: &Genesis,
    key: &SecretKey,
    id: PrescriptionId,
    reason: CancelReason,
) -> SignedTx {
    sign(genesis, key, TxBody::Cancel(CancelRx { id, reason }))
}

/// A delivery or pickup event that takes no detail (every status but
/// `delivered`, `failed` and `returned`; see [`delivery_event`]).
pub fn delivery(
    genesis: &Genesis,
    key: &SecretKey,
    id: PrescriptionId,
    status: DeliveryStatus,
) -> SignedTx {
    delivery_event(
        genesis,
        key,
        DeliveryEvent {
            id,
            status,
            problem: None,
            hand_over: None,
        },
    )
}

/// A delivery or pickup event with its detail: the problem of a failure or
/// return, the hand-over of a delivery.
pub fn delivery_event(genesis: &Genesis, key: &SecretKey, event: DeliveryEvent) -> SignedTx {
    sign(genesis, key, TxBody::Delivery(event))
}

/// The claiming pharmacy hands a home delivery to a logistics member, whose
/// couriers may then record its progress.
pub fn hand_to_carrier(
    genesis: &Genesis,
    pharmacist: &SecretKey,
    id: PrescriptionId,
    carrier: OrgId,
) -> SignedTx {
    sign(
        genesis,
        pharmacist,
        TxBody::HandToCarrier(HandToCarrier { id, carrier }),
    )
}

/// A regulator officer's change of the controlled-drug list: `schedule`
/// puts `atc` on it, `None` takes it off.
pub fn set_controlled(
    genesis: &Genesis,
    officer: &SecretKey,
    atc: rxchain_contracts::AtcCode,
    schedule: Option<Label>,
) -> SignedTx {
    sign(
        genesis,
        officer,
        TxBody::SetControlled(SetControlled { atc, schedule }),
    )
}

/// A staff registration by an org admin.
pub fn register_staff(
    genesis: &Genesis,
    admin: &SecretKey,
    org: OrgId,
    key: PublicKey,
    role: Role,
    licence: Label,
    name: Label,
) -> SignedTx {
    sign(
        genesis,
        admin,
        TxBody::RegisterStaff(RegisterStaff {
            org,
            key,
            role,
            licence,
            name,
        }),
    )
}

/// A revocation by an org admin or regulator.
pub fn revoke_staff(
    genesis: &Genesis,
    by: &SecretKey,
    key: PublicKey,
    reason: RevokeReason,
) -> SignedTx {
    sign(
        genesis,
        by,
        TxBody::RevokeStaff(RevokeStaff { key, reason }),
    )
}

/// Why a grant could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GrantBuildError {
    /// The organisation is not a member.
    #[error("organisation {0} is not a member of the consortium")]
    UnknownOrg(OrgId),
    /// Its data key cannot be wrapped for.
    #[error(transparent)]
    Privacy(#[from] privacy::PrivacyError),
}

/// The patient shares the prescription with `org` until `until`: the
/// content key wrapped for the organisation's data key, signed with the
/// access key.
pub fn grant_access(
    genesis: &Genesis,
    payload: &QrPayload,
    content_key: &ContentKey,
    org: &OrgId,
    until: Timestamp,
) -> Result<SignedTx, GrantBuildError> {
    let decl = genesis
        .org(org)
        .ok_or_else(|| GrantBuildError::UnknownOrg(org.clone()))?;
    let mut e = entropy();
    let key_for_org = wrap_for_key(
        &decl.data_key,
        &privacy::content_context(&payload.id),
        content_key.expose(),
        &mut e,
    )?;
    Ok(sign(
        genesis,
        &payload.secret.signing_key(),
        TxBody::GrantAccess(GrantAccess {
            id: payload.id,
            org: org.clone(),
            until,
            key_for_org,
        }),
    ))
}

/// The patient ends `org`'s access.
pub fn revoke_access(genesis: &Genesis, payload: &QrPayload, org: &OrgId) -> SignedTx {
    sign(
        genesis,
        &payload.secret.signing_key(),
        TxBody::RevokeAccess(RevokeAccess {
            id: payload.id,
            org: org.clone(),
        }),
    )
}

/// The patient refuses `org`'s pending access request.
pub fn refuse_request(genesis: &Genesis, payload: &QrPayload, org: &OrgId) -> SignedTx {
    sign(
        genesis,
        &payload.secret.signing_key(),
        TxBody::RefuseRequest(RefuseRequest {
            id: payload.id,
            org: org.clone(),
        }),
    )
}

/// A staff member asks for access to `id` until `until`.
pub fn request_access(
    genesis: &Genesis,
    staff: &SecretKey,
    id: PrescriptionId,
    until: Timestamp,
) -> SignedTx {
    sign(
        genesis,
        staff,
        TxBody::RequestAccess(RequestAccess { id, until }),
    )
}
