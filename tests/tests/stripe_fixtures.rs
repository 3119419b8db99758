//! Stripe's own published objects, read the way paybridge reads them.
//!
//! `tests/fixtures/stripe/` holds the PaymentIntent, Charge, Refund and Dispute that Stripe
//! publishes in stripe/openapi's `fixtures3.json` — for the newest API version Stripe's repository
//! has (top level) and for 2024-06-20 (`2024-06-20/`), since a webhook endpoint keeps the version
//! it was created with and paybridge must read both — and `enums.json`, the status, reason and
//! event-type lists of Stripe's spec. Its README says where each file came from.
//!
//! The fixtures are never edited: where a test needs another status or paybridge's metadata it
//! changes a copy here. A refresh that drops or retypes a field paybridge reads, adds a status
//! paybridge does not map, or removes an event type paybridge subscribes to fails here. None of
//! these tests needs the local stack.

use std::collections::BTreeSet;

use paybridge::domain::{
    ChargeId, ChargeStatus, GatewayUpdate, Interpretation, RefundId, RefundStatus,
};
use paybridge::webhooks::stripe::{SUPPORTED_TYPES, interpret};
use serde_json::{Value, json};

/// One vendored object: which API version it is of, and its JSON.
struct Fixture {
    version: &'static str,
    name: &'static str,
    json: Value,
}

fn parse(version: &'static str, name: &'static str, text: &str) -> Fixture {
    let json = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("fixture {version}/{name} is not JSON: {e}"));
    Fixture {
        version,
        name,
        json,
    }
}

/// The newest version Stripe's repository publishes objects for (see the README).
const CURRENT: &str = "2026-07-29.dahlia";
const OLDER: &str = "2024-06-20";

fn payment_intents() -> [Fixture; 2] {
    [
        parse(
            CURRENT,
            "payment_intent",
            include_str!("../fixtures/stripe/payment_intent.json"),
        ),
        parse(
            OLDER,
            "payment_intent",
            include_str!("../fixtures/stripe/2024-06-20/payment_intent.json"),
        ),
    ]
}

fn charges() -> [Fixture; 2] {
    [
        parse(
            CURRENT,
            "charge",
            include_str!("../fixtures/stripe/charge.json"),
        ),
        parse(
            OLDER,
            "charge",
            include_str!("../fixtures/stripe/2024-06-20/charge.json"),
        ),
    ]
}

fn refunds() -> [Fixture; 2] {
    [
        parse(
            CURRENT,
            "refund",
            include_str!("../fixtures/stripe/refund.json"),
        ),
        parse(
            OLDER,
            "refund",
            include_str!("../fixtures/stripe/2024-06-20/refund.json"),
        ),
    ]
}

fn disputes() -> [Fixture; 2] {
    [
        parse(
            CURRENT,
            "dispute",
            include_str!("../fixtures/stripe/dispute.json"),
        ),
        parse(
            OLDER,
            "dispute",
            include_str!("../fixtures/stripe/2024-06-20/dispute.json"),
        ),
    ]
}

fn enums() -> Value {
    serde_json::from_str(include_str!("../fixtures/stripe/enums.json")).expect("enums.json is JSON")
}

/// The values of `list` in enums.json, for the current version or (`older`) 2024-06-20.
fn enum_values(list: &str, older: bool) -> BTreeSet<String> {
    let enums = enums();
    let scope = if older { &enums["2024_06_20"] } else { &enums };
    scope[list]
        .as_array()
        .unwrap_or_else(|| panic!("enums.json has no list {list} (older: {older})"))
        .iter()
        .map(|v| v.as_str().expect("enum values are strings").to_owned())
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    Str,
    Int,
    Bool,
    Object,
    Array,
    /// `null` or the inner shape (Stripe's `nullable: true`).
    NullOr(&'static Shape),
}

fn fits(value: &Value, shape: Shape) -> bool {
    match shape {
        Shape::Str => value.is_string(),
        Shape::Int => value.is_i64(),
        Shape::Bool => value.is_boolean(),
        Shape::Object => value.is_object(),
        Shape::Array => value.is_array(),
        Shape::NullOr(inner) => value.is_null() || fits(value, *inner),
    }
}

const NULL_OR_STR: Shape = Shape::NullOr(&Shape::Str);
const NULL_OR_OBJECT: Shape = Shape::NullOr(&Shape::Object);

/// Asserts each JSON pointer of `fields` is present in the fixture with its shape.
fn assert_fields(f: &Fixture, fields: &[(&str, Shape)]) {
    for (pointer, shape) in fields {
        let value = f.json.pointer(pointer).unwrap_or_else(|| {
            panic!(
                "{} fixture of {} has no {pointer}, which paybridge reads",
                f.name, f.version
            )
        });
        assert!(
            fits(value, *shape),
            "{} fixture of {}: {pointer} is {value}, expected {shape:?}",
            f.name,
            f.version
        );
    }
}

fn assert_in(f: &Fixture, pointer: &str, list: &str) {
    let value = f
        .json
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default();
    let allowed = enum_values(list, f.version == OLDER);
    assert!(
        allowed.contains(value),
        "{} fixture of {}: {pointer} `{value}` is not one of {list} {allowed:?}",
        f.name,
        f.version
    );
}

fn event(event_type: &str, object: &Value) -> String {
    json!({"id": "evt_fixture", "object": "event", "type": event_type, "data": {"object": object}})
        .to_string()
}

#[test]
fn stripe_payment_intents_carry_the_fields_paybridge_reads() {
    for f in payment_intents() {
        assert_fields(
            &f,
            &[
                ("/id", Shape::Str),
                ("/object", Shape::Str),
                ("/status", Shape::Str),
                ("/amount", Shape::Int),
                ("/amount_received", Shape::Int),
                ("/amount_capturable", Shape::Int),
                ("/currency", Shape::Str),
                ("/metadata", Shape::Object),
                ("/capture_method", Shape::Str),
                ("/latest_charge", NULL_OR_STR),
                ("/last_payment_error", NULL_OR_OBJECT),
                ("/cancellation_reason", NULL_OR_STR),
            ],
        );
        assert!(f.json["id"].as_str().unwrap_or_default().starts_with("pi_"));
        assert_in(&f, "/status", "payment_intent.status");
        // Since 2022-11-15 a PaymentIntent names its latest charge instead of listing charges.
        assert!(
            f.json.get("charges").is_none(),
            "{}: a PaymentIntent lists its charges again",
            f.version
        );
    }
}

#[test]
fn stripe_charges_carry_the_fields_paybridge_reads() {
    for f in charges() {
        assert_fields(
            &f,
            &[
                ("/id", Shape::Str),
                ("/status", Shape::Str),
                ("/amount", Shape::Int),
                ("/amount_captured", Shape::Int),
                ("/amount_refunded", Shape::Int),
                ("/currency", Shape::Str),
                ("/metadata", Shape::Object),
                ("/payment_intent", NULL_OR_STR),
                ("/captured", Shape::Bool),
                ("/refunded", Shape::Bool),
                ("/disputed", Shape::Bool),
            ],
        );
        assert!(f.json["id"].as_str().unwrap_or_default().starts_with("ch_"));
        assert_in(&f, "/status", "charge.status");
    }
}

#[test]
fn stripe_refunds_carry_the_fields_paybridge_reads() {
    for f in refunds() {
        assert_fields(
            &f,
            &[
                ("/id", Shape::Str),
                ("/status", Shape::Str),
                ("/amount", Shape::Int),
                ("/currency", Shape::Str),
                ("/charge", Shape::Str),
                ("/payment_intent", NULL_OR_STR),
                ("/metadata", NULL_OR_OBJECT),
                ("/reason", NULL_OR_STR),
                ("/destination_details", Shape::Object),
            ],
        );
        assert!(f.json["id"].as_str().unwrap_or_default().starts_with("re_"));
        assert_in(&f, "/status", "refund.status");
    }
}

#[test]
fn stripe_disputes_carry_the_fields_paybridge_will_read() {
    for f in disputes() {
        assert_fields(
            &f,
            &[
                ("/id", Shape::Str),
                ("/status", Shape::Str),
                ("/reason", Shape::Str),
                ("/amount", Shape::Int),
                ("/currency", Shape::Str),
                ("/charge", Shape::Str),
                ("/payment_intent", NULL_OR_STR),
                ("/metadata", Shape::Object),
                ("/is_charge_refundable", Shape::Bool),
                ("/balance_transactions", Shape::Array),
                ("/evidence_details/due_by", Shape::NullOr(&Shape::Int)),
                ("/evidence_details/has_evidence", Shape::Bool),
                ("/evidence_details/past_due", Shape::Bool),
                ("/payment_method_details", Shape::Object),
            ],
        );
        assert!(f.json["id"].as_str().unwrap_or_default().starts_with("dp_"));
        assert_in(&f, "/status", "dispute.status");
        assert_in(&f, "/reason", "dispute.reason");
    }
}

#[test]
fn the_two_versions_differ_where_stripes_changelog_says() {
    let [pi_now, pi_then] = payment_intents();
    let [ch_now, ch_then] = charges();
    // 2025-03-31.basil removed `invoice` from Charge and PaymentIntent.
    for f in [&pi_then, &ch_then] {
        assert!(f.json.get("invoice").is_some(), "{} of 2024-06-20", f.name);
    }
    for f in [&pi_now, &ch_now] {
        assert!(f.json.get("invoice").is_none(), "{} of {CURRENT}", f.name);
    }
    // Enhanced evidence (Visa CE 3.0 and others) arrived after 2024-06-20.
    let [dp_now, dp_then] = disputes();
    assert!(dp_then.json.get("enhanced_eligibility_types").is_none());
    for t in dp_now.json["enhanced_eligibility_types"]
        .as_array()
        .expect("a current dispute lists its enhanced eligibility types")
    {
        let t = t.as_str().unwrap_or_default();
        assert!(enum_values("dispute.enhanced_eligibility_types", false).contains(t));
    }
    assert!(
        dp_now
            .json
            .pointer("/evidence_details/enhanced_eligibility")
            .is_some()
    );
    // The current dispute status list adds `prevented`; paybridge's dispute model must map it.
    assert!(enum_values("dispute.status", false).contains("prevented"));
    assert!(!enum_values("dispute.status", true).contains("prevented"));
}

/// The charge status paybridge gives each PaymentIntent status (`webhooks/stripe/objects.rs`).
const PAYMENT_INTENT_STATUSES: &[(&str, ChargeStatus)] = &[
    ("succeeded", ChargeStatus::Succeeded),
    ("requires_capture", ChargeStatus::Authorized),
    ("processing", ChargeStatus::Processing),
    ("requires_action", ChargeStatus::RequiresAction),
    ("requires_confirmation", ChargeStatus::RequiresAction),
    ("canceled", ChargeStatus::Canceled),
    ("requires_payment_method", ChargeStatus::Failed),
];

/// The refund status paybridge gives each Stripe refund status.
const REFUND_STATUSES: &[(&str, RefundStatus)] = &[
    ("succeeded", RefundStatus::Succeeded),
    ("pending", RefundStatus::Pending),
    ("requires_action", RefundStatus::Pending),
    ("failed", RefundStatus::Failed),
    ("canceled", RefundStatus::Canceled),
];

#[test]
fn every_payment_intent_status_stripe_publishes_is_mapped() {
    for older in [false, true] {
        let published = enum_values("payment_intent.status", older);
        let mapped: BTreeSet<String> = PAYMENT_INTENT_STATUSES
            .iter()
            .map(|(s, _)| (*s).to_owned())
            .collect();
        assert_eq!(published, mapped, "PaymentIntent statuses (older: {older})");
    }
    for f in payment_intents() {
        for (status, expected) in PAYMENT_INTENT_STATUSES {
            let charge = ChargeId::generate();
            let mut pi = f.json.clone();
            pi["status"] = json!(status);
            pi["metadata"] = json!({"paybridge_charge_id": charge.to_string()});
            let payload = event("payment_intent.updated", &pi);
            match interpret("payment_intent.updated", &payload) {
                Interpretation::Apply(updates) => match &updates[..] {
                    [GatewayUpdate::Payment(u)] => {
                        assert_eq!(u.charge_id.as_ref(), Some(&charge), "{}", f.version);
                        assert_eq!(
                            u.gateway_ref.as_ref(),
                            f.json["id"].as_str().map(str::to_owned).as_ref()
                        );
                        assert_eq!(u.outcome.status, *expected, "{} `{status}`", f.version);
                        assert_eq!(
                            u.outcome.failure.is_some(),
                            *expected == ChargeStatus::Failed
                        );
                    }
                    other => panic!("{} `{status}`: {other:?}", f.version),
                },
                other => panic!("{} `{status}` is not read: {other:?}", f.version),
            }
        }
    }
}

#[test]
fn every_refund_status_stripe_publishes_is_mapped() {
    for older in [false, true] {
        let published = enum_values("refund.status", older);
        let mapped: BTreeSet<String> = REFUND_STATUSES
            .iter()
            .map(|(s, _)| (*s).to_owned())
            .collect();
        assert_eq!(published, mapped, "refund statuses (older: {older})");
    }
    for f in refunds() {
        for (status, expected) in REFUND_STATUSES {
            let refund = RefundId::generate();
            let mut re = f.json.clone();
            re["status"] = json!(status);
            re["metadata"] = json!({"paybridge_refund_id": refund.to_string()});
            match interpret("refund.updated", &event("refund.updated", &re)) {
                Interpretation::Apply(updates) => match &updates[..] {
                    [GatewayUpdate::Refund(u)] => {
                        assert_eq!(u.refund_id.as_ref(), Some(&refund), "{}", f.version);
                        assert_eq!(u.outcome.status, *expected, "{} `{status}`", f.version);
                    }
                    other => panic!("{} `{status}`: {other:?}", f.version),
                },
                other => panic!("{} `{status}` is not read: {other:?}", f.version),
            }
        }
    }
}

#[test]
fn charge_refunded_gives_the_gateways_total_and_any_embedded_refunds() {
    let [ch_now, ch_then] = charges();
    let [re_now, _] = refunds();
    // Without embedded refunds (the default since 2022-11-15) the refund.* events report them;
    // `amount_refunded` is the gateway's total, which they must explain.
    let mut bare = ch_now.json.clone();
    bare["refunds"] = json!(null);
    bare["payment_intent"] = json!("pi_fixture");
    let total = bare["amount_refunded"].as_i64().expect("amount_refunded");
    match interpret("charge.refunded", &event("charge.refunded", &bare)) {
        Interpretation::Apply(updates) => assert!(
            matches!(&updates[..], [GatewayUpdate::RefundedTotal(t)] if t.payment_ref == "pi_fixture" && t.total.amount == total),
            "{updates:?}"
        ),
        other => panic!("{other:?}"),
    }
    // A Charge not made through a PaymentIntent is not one of paybridge's.
    bare["payment_intent"] = json!(null);
    assert!(interpret("charge.refunded", &event("charge.refunded", &bare)).is_ignored());
    // An endpoint that expands them, or Stripe's published Charge with its list filled in.
    let mut with_refund = ch_then.json.clone();
    with_refund["refunds"]["data"] = json!([re_now.json]);
    with_refund["payment_intent"] = json!(null);
    match interpret("charge.refunded", &event("charge.refunded", &with_refund)) {
        Interpretation::Apply(updates) => assert!(
            matches!(&updates[..], [GatewayUpdate::Refund(u)] if u.gateway_ref.as_deref() == re_now.json["id"].as_str()),
            "{updates:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refund_without_paybridge_metadata_names_its_payment_for_adoption() {
    for f in refunds() {
        let mut refund = f.json.clone();
        refund["metadata"] = json!({});
        refund["payment_intent"] = json!("pi_dashboard");
        refund["status"] = json!("succeeded");
        match interpret("refund.created", &event("refund.created", &refund)) {
            Interpretation::Apply(updates) => match &updates[..] {
                [GatewayUpdate::Refund(u)] => {
                    assert_eq!(u.refund_id, None, "{}", f.version);
                    assert_eq!(u.payment_ref.as_deref(), Some("pi_dashboard"));
                    let reported = u.reported.as_ref().expect("the refund's amount");
                    assert_eq!(
                        (reported.amount, reported.currency.as_str()),
                        (
                            f.json["amount"].as_i64().unwrap(),
                            f.json["currency"].as_str().unwrap()
                        )
                    );
                    assert_eq!(u.outcome.status, RefundStatus::Succeeded);
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn every_dispute_status_stripe_publishes_is_read_from_the_dispute_object() {
    for f in disputes() {
        for status in enum_values("dispute.status", f.version == OLDER) {
            for event_type in [
                "charge.dispute.created",
                "charge.dispute.updated",
                "charge.dispute.closed",
            ] {
                let mut dispute = f.json.clone();
                dispute["status"] = json!(status);
                dispute["payment_intent"] = json!("pi_disputed");
                match interpret(event_type, &event(event_type, &dispute)) {
                    Interpretation::Apply(updates) => match &updates[..] {
                        [GatewayUpdate::Dispute(u)] => {
                            assert_eq!(u.observation.status.as_str(), status);
                            assert_eq!(u.payment_ref.as_deref(), Some("pi_disputed"));
                            assert_eq!(u.observation.gateway_ref, f.json["id"].as_str().unwrap());
                            assert_eq!(u.observation.amount, f.json["amount"].as_i64().unwrap());
                            assert_eq!(
                                u.observation.evidence_due_by,
                                f.json["evidence_details"]["due_by"].as_i64()
                            );
                            assert_eq!(u.observation.funds_withdrawn, 0, "no balance transactions");
                        }
                        other => panic!("{other:?}"),
                    },
                    other => panic!("{} {status}: {other:?}", f.version),
                }
            }
        }
    }
}

#[test]
fn funds_withdrawn_and_reinstated_come_from_the_disputes_balance_transactions() {
    let [dp, _] = disputes();
    let amount = dp.json["amount"].as_i64().unwrap();
    let mut dispute = dp.json.clone();
    dispute["payment_intent"] = json!("pi_disputed");
    dispute["status"] = json!("won");
    dispute["balance_transactions"] = json!([{"amount": -amount}, {"amount": amount}]);
    match interpret(
        "charge.dispute.closed",
        &event("charge.dispute.closed", &dispute),
    ) {
        Interpretation::Apply(u) => assert!(
            matches!(&u[..], [GatewayUpdate::Dispute(d)] if (d.observation.funds_withdrawn, d.observation.funds_reinstated) == (amount, amount)),
            "{u:?}"
        ),
        other => panic!("{other:?}"),
    }
    // The funds_withdrawn event says so even if its balance transactions are not expanded.
    dispute["balance_transactions"] = json!([]);
    dispute["status"] = json!("needs_response");
    let e = event("charge.dispute.funds_withdrawn", &dispute);
    match interpret("charge.dispute.funds_withdrawn", &e) {
        Interpretation::Apply(u) => assert!(
            matches!(&u[..], [GatewayUpdate::Dispute(d)] if d.observation.funds_withdrawn == amount),
            "{u:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_stripe_event_type_paybridge_accepts_is_one_stripe_publishes() {
    let published = enum_values("event_types", false);
    for t in SUPPORTED_TYPES {
        assert!(
            published.contains(*t),
            "`{t}` is not in Stripe's list of event types"
        );
    }
}
