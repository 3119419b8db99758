//! The pointers from a gateway's object id (`pi_…`, `re_…`, a pspReference) to our charge or
//! refund, so a webhook finds its record. Written in the same transaction as the object they
//! point to; never changed afterwards.

use super::{Table, Write, keys, pointer_item};
use crate::domain::{ChargeId, Gateway, RefundId};
use crate::ports::{GatewayObject, GatewayRefLookup, StoreError};

/// The write that records `reference` → `target` (with the object's own save).
pub(super) fn pointer(gateway: Gateway, reference: &str, target: &GatewayObject) -> Write {
    let (kind, id) = match target {
        GatewayObject::Charge(id) => ("charge", id.as_str()),
        GatewayObject::Refund(id) => ("refund", id.as_str()),
    };
    Write::Put(pointer_item(
        keys::gateway_ref(gateway, reference),
        &[("kind", kind), ("target_id", id)],
    ))
}

impl GatewayRefLookup for Table {
    async fn find_gateway_ref(
        &self,
        gateway: Gateway,
        reference: &str,
    ) -> Result<Option<GatewayObject>, StoreError> {
        let Some(item) = self.get_at(keys::gateway_ref(gateway, reference)).await? else {
            return Ok(None);
        };
        let field = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        let target = field("target_id");
        let found = match field("kind").as_str() {
            "charge" => ChargeId::parse(&target).ok().map(GatewayObject::Charge),
            "refund" => RefundId::parse(&target).ok().map(GatewayObject::Refund),
            _ => None,
        };
        found.map(Some).ok_or_else(|| {
            StoreError::Invalid(format!(
                "unreadable gateway reference pointer for {reference}"
            ))
        })
    }
}
