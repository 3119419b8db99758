//! Use cases: `GET /charges/{id}` and `GET /charges?invoice_id=…`.

use serde_json::json;

use super::view;
use crate::domain::{Charge, ChargeId};
use crate::error::{Code, Error};
use crate::ports::ChargeStore;
use crate::services::ApiResponse;

/// Parses a charge id from a path, answering 404 for anything that is not one.
pub fn charge_id(raw: &str) -> Result<ChargeId, Error> {
    ChargeId::parse(raw).map_err(|_| Error::new(Code::ChargeNotFound, "no charge with this id"))
}

/// The stored charge `id`, or 404.
pub async fn load_charge(store: &impl ChargeStore, id: &ChargeId) -> Result<Charge, Error> {
    (store.get_charge(id).await?)
        .ok_or_else(|| Error::new(Code::ChargeNotFound, "no charge with this id"))
}

pub async fn get_charge(store: &impl ChargeStore, id: &str) -> Result<ApiResponse, Error> {
    let charge = load_charge(store, &charge_id(id)?).await?;
    Ok(ApiResponse::json(200, &view(&charge)))
}

pub async fn list_charges(
    store: &impl ChargeStore,
    invoice_id: Option<&str>,
) -> Result<ApiResponse, Error> {
    let invoice_id = invoice_id
        .filter(|i| !i.is_empty() && i.len() <= 255)
        .ok_or_else(|| {
            Error::new(
                Code::InvoiceIdRequired,
                "list charges with ?invoice_id=<the invoice>",
            )
        })?;
    let charges = store.charges_for_invoice(invoice_id).await?;
    let data: Vec<_> = charges.iter().map(view).collect();
    Ok(ApiResponse::json(
        200,
        &json!({ "object": "list", "data": data }),
    ))
}
