//! The formulary search the prescription form uses: `GET /v1/formulary`.

use std::sync::LazyLock;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use rxchain_contracts::{AtcCode, ControlledList};
use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use super::session::Staff;
use super::{ApiError, ApiQuery, AppState};

/// The demo formulary: synthetic drug entries the prescription form offers.
const FORMULARY_JSON: &str = include_str!("../../fixtures/formulary.json");

/// Formulary answers at most this many matches.
const FORMULARY_MATCHES: usize = 20;

/// `GET /v1/formulary`.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/formulary", get(formulary))
}

/// One formulary entry.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FormularyEntry {
    /// ATC code.
    pub atc: String,
    /// Drug name.
    pub name: String,
    /// Strength, e.g. "500 mg".
    pub strength: String,
    /// Dose form, e.g. "capsule".
    pub form: String,
    /// Unit of quantities, e.g. "capsules".
    pub unit: String,
    /// Units in a pack; the form's default quantity.
    pub pack: u32,
    /// A controlled drug.
    pub controlled: bool,
}

/// The formulary, parsed once.
pub fn formulary_entries() -> Result<&'static [FormularyEntry], ApiError> {
    /// The file is a list of entries, or an object holding one (so a
    /// note can sit beside the list).
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum File {
        List(Vec<FormularyEntry>),
        Wrapped {
            #[serde(alias = "entries", alias = "formulary")]
            drugs: Vec<FormularyEntry>,
        },
    }
    static ENTRIES: LazyLock<Result<Vec<FormularyEntry>, String>> = LazyLock::new(|| {
        match serde_json::from_str::<File>(FORMULARY_JSON).map_err(|e| e.to_string())? {
            File::List(v) | File::Wrapped { drugs: v } => Ok(v),
        }
    });
    ENTRIES
        .as_deref()
        .map_err(|e| ApiError::internal(format!("fixtures/formulary.json does not parse: {e}")))
}

/// The formulary search.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FormularyQuery {
    /// Start of a drug name or of an ATC code.
    #[serde(default)]
    pub q: String,
}

/// Matches the start of the name or of the ATC code first, then the start
/// of any later word of the name; at most [`FORMULARY_MATCHES`]. Matches
/// inside a word are left out on purpose: "amox" must not offer tamoxifen,
/// a look-alike name being a classic prescribing error.
pub fn search_formulary(entries: &[FormularyEntry], q: &str) -> Vec<FormularyEntry> {
    let q = q.trim().to_lowercase();
    let mut hits: Vec<(u8, &FormularyEntry)> = entries
        .iter()
        .filter_map(|e| {
            let name = e.name.to_lowercase();
            let rank =
                if q.is_empty() || name.starts_with(&q) || e.atc.to_lowercase().starts_with(&q) {
                    0
                } else if name
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| w.starts_with(&q))
                {
                    1
                } else {
                    return None;
                };
            Some((rank, e))
        })
        .collect();
    hits.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.name.cmp(&b.1.name))
            .then_with(|| a.1.strength.cmp(&b.1.strength))
    });
    hits.into_iter()
        .take(FORMULARY_MATCHES)
        .map(|(_, e)| e.clone())
        .collect()
}

/// Searches the formulary (staff only).
#[utoipa::path(
    get, path = "/v1/formulary", tag = "staff",
    params(FormularyQuery),
    responses(
        (status = 200, description = "At most 20 matches", body = Vec<FormularyEntry>),
        (status = 400, description = "`bad_query`", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn formulary(
    State(s): State<AppState>,
    _staff: Staff,
    ApiQuery(q): ApiQuery<FormularyQuery>,
) -> Result<Json<Vec<FormularyEntry>>, ApiError> {
    if q.q.len() > 100 {
        return Err(ApiError::bad(
            "bad_query",
            "a formulary search has at most 100 characters",
        ));
    }
    // Whether a drug is controlled is the chain's word (its controlled
    // list, which a regulator may change), not the file's: the form then
    // sends the flag the chain will insist on.
    let list =
        ControlledList::current(&s.consortium(), &s.chain.state()).map_err(ApiError::internal)?;
    let mut hits = search_formulary(formulary_entries()?, &q.q);
    for h in &mut hits {
        h.controlled = AtcCode::parse(h.atc.clone()).is_ok_and(|atc| list.contains(&atc));
    }
    Ok(Json(hits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_formulary_parses_and_searches() {
        let f = formulary_entries().expect("fixtures/formulary.json parses");
        assert!(!f.is_empty());
        let first = &f[0];
        let hits = search_formulary(f, &first.name[..3]);
        assert!(hits.iter().any(|h| h.name == first.name));
        assert!(search_formulary(f, "").len() <= FORMULARY_MATCHES);
        let by_atc = search_formulary(f, &first.atc[..3]);
        assert!(by_atc.iter().any(|h| h.atc == first.atc));
        assert!(search_formulary(f, "zzzzzz-no-such-drug").is_empty());
        assert!(
            search_formulary(f, "amox")
                .iter()
                .all(|h| !h.name.to_lowercase().starts_with("tam")),
            "no matches inside a word"
        );
    }
}
