//! Use cases: `GET /charges/{id}/refunds` and `GET /refunds/{id}`.

use serde_json::json;

use super::view;
use crate::domain::RefundId;
use crate::error::{Code, Error};
use crate::ports::{ChargeStore, RefundStore};
use crate::services::ApiResponse;
use crate::services::charges::read::charge_id;

pub async fn get_refund(store: &impl RefundStore, id: &str) -> Result<ApiResponse, Error> {
    let not_found = || Error::new(Code::RefundNotFound, "no refund with this id");
    let id = RefundId::parse(id).map_err(|_| not_found())?;
    let refund = store.get_refund(&id).await?.ok_or_else(not_found)?;
    Ok(ApiResponse::json(200, &view(&refund)))
}

pub async fn list_refunds<S: ChargeStore + RefundStore>(
    store: &S,
    charge: &str,
) -> Result<ApiResponse, Error> {
    let id = charge_id(charge)?;
    if store.get_charge(&id).await?.is_none() {
        return Err(Error::new(Code::ChargeNotFound, "no charge with this id"));
    }
    let refunds = store.refunds_for_charge(&id).await?;
    let data: Vec<_> = refunds.iter().map(view).collect();
    Ok(ApiResponse::json(
        200,
        &json!({ "object": "list", "data": data }),
    ))
}
