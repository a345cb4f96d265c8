//! The courier's list: `GET /v1/staff/courier/deliveries`.
//!
//! A courier carries parcels and records their progress (through
//! `POST /v1/staff/delivery`, the same rule as for pharmacists, see
//! `lifecycle/delivery.rs`). What a courier sees is the least a delivery
//! needs: the short id, the pharmacy, the delivery address and the trail of
//! delivery events. Never the QR payload, the patient's name or the
//! medicines: with the payload one could open the patient's identity, or
//! cancel and reassign as if one were the patient.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rxchain_contracts::state::{DeliveryRecord, PrescriptionRecord, PublicStatus};
use rxchain_contracts::tx::{DeliveryStatus, Fulfilment, Role};
use rxchain_contracts::{OrgId, PrescriptionId};
use serde::Serialize;

use super::common::{blocking, list_limit, no_store, ListQuery};
use super::error::ErrorBody;
use super::session::Staff;
use super::{ApiError, ApiQuery, AppState};
use crate::clock::now;

/// The courier's routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/staff/courier/deliveries", get(deliveries))
}

/// A home delivery a courier may carry.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CourierDelivery {
    /// The prescription's id (to record events).
    pub id: PrescriptionId,
    /// Its short id, written on the parcel.
    pub short_id: String,
    /// The pharmacy that packs and sends it.
    pub pharmacy: OrgId,
    /// That pharmacy's display name.
    pub pharmacy_name: String,
    /// The delivery address, when this node can open it (it holds the
    /// pharmacy's data key, with which the patient handed the delivery over).
    pub address: Option<String>,
    /// The delivery events so far, oldest first.
    pub events: Vec<DeliveryRecord>,
    /// The step the courier records next, if the order allows one: the one
    /// the page preselects.
    pub next: Option<DeliveryStatus>,
    /// Whether a medicine in it is controlled: then it is handed over in
    /// person only (`hand_over_in_person`).
    pub controlled: bool,
    /// Every step the chain's delivery order allows a courier now (the
    /// contracts' `delivery_follows`), `failed` and `returned` included.
    pub allowed: Vec<DeliveryStatus>,
}

/// Whether a delivery's trail has ended (delivered, or returned to the pharmacy).
fn finished(rec: &PrescriptionRecord) -> bool {
    matches!(
        rec.delivery.last().map(|d| d.status),
        Some(DeliveryStatus::Delivered | DeliveryStatus::Returned)
    )
}

/// The next step in the delivery order after `last`, for a courier (who
/// never packs: only the pharmacy packs).
fn next_step(last: Option<DeliveryStatus>) -> Option<DeliveryStatus> {
    use DeliveryStatus::*;
    match last {
        Some(Packed) => Some(Dispatched),
        Some(Dispatched) => Some(OutForDelivery),
        Some(OutForDelivery) => Some(Delivered),
        Some(Failed) => Some(Returned),
        _ => None,
    }
}

/// What a courier may record after `last`, by the chain's own order.
fn allowed_steps(last: Option<DeliveryStatus>) -> Vec<DeliveryStatus> {
    use DeliveryStatus::*;
    [Dispatched, OutForDelivery, Delivered, Failed, Returned]
        .into_iter()
        .filter(|s| rxchain_contracts::lifecycle::delivery_follows(last, *s))
        .collect()
}

/// The open home deliveries a courier may record events for: those handed
/// to the courier's logistics organisation, or, for a pharmacy's own
/// couriers, those claimed by that pharmacy; packed, not yet delivered or
/// returned; newest first.
#[utoipa::path(
    get, path = "/v1/staff/courier/deliveries", tag = "pharmacy",
    params(ListQuery),
    responses(
        (status = 200, description = "Open deliveries, newest first", body = Vec<CourierDelivery>),
        (status = 400, description = "`bad_query`, `bad_limit`", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`wrong_role`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
pub(super) async fn deliveries(
    State(s): State<AppState>,
    staff: Staff,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    staff.require(&[Role::Courier], "list deliveries to carry")?;
    let limit = list_limit(&q)?;
    let org = staff.org().clone();
    let st = s.clone();
    let rows = blocking(move || {
        let t = now();
        let mut recs = Vec::new();
        for id in st.chain.by_pharmacy(&org)? {
            let Some(r) = st.chain.prescription(&id)? else {
                continue;
            };
            let Some(claim) = &r.claim else { continue };
            let carries = r.carrier.as_ref() == Some(&org) || claim.pharmacy == org;
            let delivery = matches!(r.fulfilment, Some(Fulfilment::Delivery { .. }));
            let live = !matches!(
                r.public_status(t),
                PublicStatus::Cancelled | PublicStatus::Expired
            );
            if carries && delivery && live && !r.delivery.is_empty() && !finished(&r) {
                recs.push(r);
            }
        }
        recs.sort_by(|a, b| b.issued_at.cmp(&a.issued_at));
        recs.truncate(limit);
        let mut out = Vec::with_capacity(recs.len());
        for rec in recs {
            let Some(pharmacy) = rec.claim.as_ref().map(|c| c.pharmacy.clone()) else {
                continue;
            };
            // The address is opened with the pharmacy's data key, from the
            // patient's hand-over to that pharmacy; the payload it also
            // yields is dropped here.
            let address = match st.accounts.data_key(&pharmacy) {
                Some(k) => super::pharmacy::open_handover(&st, &rec, &pharmacy, &k)?.1,
                None => None,
            };
            out.push(CourierDelivery {
                id: rec.id,
                short_id: rec.id.short(),
                pharmacy_name: st
                    .consortium()
                    .org(&pharmacy)
                    .map(|o| o.name.to_string())
                    .unwrap_or_default(),
                pharmacy,
                address,
                next: next_step(rec.delivery.last().map(|d| d.status)),
                controlled: rec.controlled,
                allowed: allowed_steps(rec.delivery.last().map(|d| d.status)),
                events: rec.delivery,
            });
        }
        Ok(out)
    })
    .await?;
    // Addresses are personal data.
    Ok(no_store(Json(rows).into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_courier_is_offered_the_next_step_in_the_delivery_order() {
        use DeliveryStatus::*;
        assert_eq!(next_step(None), None, "only the pharmacy packs");
        assert_eq!(next_step(Some(Packed)), Some(Dispatched));
        assert_eq!(next_step(Some(Dispatched)), Some(OutForDelivery));
        assert_eq!(next_step(Some(OutForDelivery)), Some(Delivered));
        assert_eq!(next_step(Some(Failed)), Some(Returned));
        assert_eq!(next_step(Some(Delivered)), None);
        // Every step offered is one the chain accepts after the last.
        for last in [Packed, Dispatched, OutForDelivery, Failed] {
            let next = next_step(Some(last)).unwrap();
            assert!(allowed_steps(Some(last)).contains(&next));
        }
        assert_eq!(allowed_steps(Some(Dispatched)), [OutForDelivery, Failed]);
        assert_eq!(allowed_steps(Some(Failed)), [Returned]);
        assert!(allowed_steps(Some(Delivered)).is_empty());
    }
}
