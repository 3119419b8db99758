//! Stripe events delivered by Amazon EventBridge instead of a signed webhook.
//!
//! A Stripe *event destination* of type Amazon EventBridge puts every event on a partner event
//! bus in the operator's AWS account, in EventBridge's envelope (AWS: "AWS service event
//! metadata", docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html; Stripe:
//! docs.stripe.com/event-destinations/eventbridge):
//!
//! ```json
//! { "version": "0", "id": "<EventBridge's UUID>", "detail-type": "payment_intent.succeeded",
//!   "source": "aws.partner/stripe.com/ed_…", "account": "<12 digits>", "time": "…Z",
//!   "region": "eu-west-1", "resources": ["arn:aws:events:…::event-source/aws.partner/stripe.com/ed_…"],
//!   "detail": { …the Stripe Event object, as a webhook body would carry it… } }
//! ```
//!
//! There is no signature: trust comes from the bus (only Stripe can put events on the partner
//! event bus of its partner event source) and from IAM (only the rule on that bus may invoke the
//! function, besides principals of the account). What is checked here is that the event says it
//! comes from a Stripe partner event source — the one configured, when one is — and that `detail`
//! is a Stripe event of the *snapshot* kind (the v1 Event object a webhook carries). `detail` then
//! goes through the same parser as a verified webhook body ([`super::parse`]): the same event id,
//! so one `evt_…` over HTTP and over the bus is one record, and the same card-number masking.

use serde_json::Value;

use crate::domain::VerifiedEvent;
use crate::webhooks::VerifyError;

/// Every Stripe partner event source is named `aws.partner/stripe.com/<destination id>`, and the
/// `source` of the events on its bus is that name.
pub const PARTNER_SOURCE_PREFIX: &str = "aws.partner/stripe.com/";

/// Why an EventBridge event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// `source` is not a Stripe partner event source, or not the configured one.
    #[error("the event's source is not the Stripe partner event source paybridge trusts")]
    UntrustedSource,
    /// The envelope or its `detail` is not a Stripe event paybridge can record.
    #[error("the EventBridge event is not a Stripe event: {0}")]
    Malformed(&'static str),
}

/// Whether an invocation's payload is an EventBridge event rather than an API Gateway request:
/// an object with EventBridge's `detail-type`, `source` and `detail`, and without API Gateway's
/// `requestContext`.
pub fn is_bus_event(payload: &Value) -> bool {
    payload.get("detail-type").is_some()
        && payload.get("source").is_some()
        && payload.get("detail").is_some()
        && payload.get("requestContext").is_none()
}

/// Checks the envelope's `source` against [`PARTNER_SOURCE_PREFIX`] and `expected_source` (the
/// configured partner event source name, if any), and parses its `detail` as a Stripe event.
pub fn parse(envelope: &Value, expected_source: Option<&str>) -> Result<VerifiedEvent, BusError> {
    let source = envelope
        .get("source")
        .and_then(Value::as_str)
        .ok_or(BusError::UntrustedSource)?;
    let destination = source
        .strip_prefix(PARTNER_SOURCE_PREFIX)
        .ok_or(BusError::UntrustedSource)?;
    if destination.is_empty() || expected_source.is_some_and(|expected| expected != source) {
        return Err(BusError::UntrustedSource);
    }
    let detail = envelope
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or(BusError::Malformed("`detail` is not an object"))?;
    if detail.get("object").and_then(Value::as_str) == Some("v2.core.event") {
        return Err(BusError::Malformed(
            "a thin (v2) event; give the event destination the snapshot payload",
        ));
    }
    let detail_type = envelope
        .get("detail-type")
        .and_then(Value::as_str)
        .ok_or(BusError::Malformed("`detail-type` is not a string"))?;
    if detail.get("type").and_then(Value::as_str) != Some(detail_type) {
        return Err(BusError::Malformed(
            "`detail-type` is not the type of the event in `detail`",
        ));
    }
    let body = detail.to_string();
    super::parse(body.as_bytes()).map_err(|e| match e {
        VerifyError::MalformedPayload(what) => BusError::Malformed(what),
        _ => BusError::Malformed("not a Stripe event"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SOURCE: &str =
        "aws.partner/stripe.com/ed_test_61Rc9ZIzCyVXIv5LR16Rc9WfUF9EoLgTRM8Gp72SOKAi";

    /// The envelope as EventBridge delivers it, around a Stripe event shaped like the webhook
    /// body of the same event.
    fn envelope(source: &str, event: Value) -> Value {
        json!({
            "version": "0", "id": "a5745004-fd1a-e96c-91a8-9f9cefcaa4ff",
            "detail-type": event["type"], "source": source, "account": "111122223333",
            "time": "2026-12-02T18:00:00Z", "region": "eu-west-1",
            "resources": [format!("arn:aws:events:eu-west-1::event-source/{source}")],
            "detail": event
        })
    }

    fn event(id: &str) -> Value {
        json!({
            "id": id, "object": "event", "api_version": "2024-06-20", "created": 1_764_698_400,
            "livemode": false, "pending_webhooks": 0, "type": "payment_intent.succeeded",
            "request": {"id": null, "idempotency_key": null},
            "data": {"object": {"id": "pi_3MtwBwLkdIwHu7ix28a3tqPa", "object": "payment_intent",
                "description": "card 4242424242424242"}}
        })
    }

    #[test]
    fn a_stripe_event_on_the_bus_is_the_event_its_webhook_would_be() {
        let e = parse(&envelope(SOURCE, event("evt_1")), None).unwrap();
        let over_http =
            crate::webhooks::stripe::parse(event("evt_1").to_string().as_bytes()).unwrap();
        assert_eq!(e, over_http);
        assert_eq!(
            (e.event_id.as_str(), e.object_ref.as_deref(), e.supported),
            ("evt_1", Some("pi_3MtwBwLkdIwHu7ix28a3tqPa"), true)
        );
        assert!(!e.payload.contains("4242424242424242"), "{}", e.payload);
    }

    #[test]
    fn only_a_stripe_partner_source_and_the_configured_one_is_trusted() {
        let other = "aws.partner/stripe.com/ed_other";
        assert!(parse(&envelope(SOURCE, event("evt_1")), Some(SOURCE)).is_ok());
        for (source, expected) in [
            (other, Some(SOURCE)),
            ("aws.partner/stripe.com/", None),
            ("aws.partner/stripe.com", None),
            ("aws.partner/stripe.comx/ed_1", None),
            ("aws.partner/example.com/stripe.com/ed_1", None),
            ("my.app", None),
            ("aws.events", None),
        ] {
            assert_eq!(
                parse(&envelope(source, event("evt_1")), expected),
                Err(BusError::UntrustedSource),
                "{source}"
            );
        }
        let mut no_source = envelope(SOURCE, event("evt_1"));
        no_source["source"] = json!(7);
        assert_eq!(parse(&no_source, None), Err(BusError::UntrustedSource));
    }

    #[test]
    fn a_detail_that_is_not_a_snapshot_stripe_event_is_refused() {
        let thin = json!({"id": "evt_test_789", "object": "v2.core.event",
            "type": "v2.core.event_destination.ping", "created": "2024-03-07T18:27:56.000Z",
            "livemode": true, "related_object": {"id": "ed_123", "type": "v2.core.event_destination"}});
        let mut mismatched = envelope(SOURCE, event("evt_1"));
        mismatched["detail-type"] = json!("charge.refunded");
        let mut not_object = envelope(SOURCE, event("evt_1"));
        not_object["detail"] = json!("{\"id\":\"evt_1\"}");
        let mut no_data = envelope(SOURCE, event("evt_1"));
        no_data["detail"]["data"] = json!(null);
        let mut card_id = envelope(SOURCE, event("evt_4111111111111111"));
        card_id["detail-type"] = json!("payment_intent.succeeded");
        for bad in [
            envelope(SOURCE, thin),
            mismatched,
            not_object,
            no_data,
            card_id,
            envelope(
                SOURCE,
                json!({"id": "", "type": "x", "data": {"object": {}}}),
            ),
        ] {
            assert!(
                matches!(parse(&bad, None), Err(BusError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_an_eventbridge_envelope_is_a_bus_event() {
        assert!(is_bus_event(&envelope(SOURCE, event("evt_1"))));
        assert!(!is_bus_event(
            &json!({"version": "2.0", "routeKey": "POST /webhooks/{gateway}",
            "requestContext": {}, "body": "{}"})
        ));
        let mut gateway_like = envelope(SOURCE, event("evt_1"));
        gateway_like["requestContext"] = json!({});
        assert!(!is_bus_event(&gateway_like));
        assert!(!is_bus_event(
            &json!({"version": 1, "action": "get_charge"})
        ));
    }
}
