//! openapi.json is the contract billing systems code against; these tests keep it true.
//!
//! Each test compares the document with the code it describes — the routes in template.yaml, the
//! charge and refund views, `ChargeStatus` and `RefundStatus`, `NewCharge::parse` and
//! `NewRefund::parse`, the currencies `Money` knows, the error codes in the sources and the charges
//! and refunds handlers' own answers — so a change to one that is not made to the other fails
//! here. None of them needs the local stack. The document is read, and values are checked
//! against its schemas (JSON Schema 2020-12), by `paybridge_tests::openapi`; the error codes the
//! code can answer with come from `paybridge_tests::sources`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use charges::handler::Charges;
use lambda_http::{Body, Request, Response};
use paybridge::Error;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::GatewayRouter;
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::{
    ActionDetails, Charge, ChargeId, ChargeStatus, Currency, CustomerAction, Failure, Gateway,
    Money, Refund, RefundId, RefundReason, RefundStatus,
};
use paybridge::services::charges::create::{
    MAX_METADATA_KEY_LEN, MAX_METADATA_KEYS, MAX_METADATA_VALUE_LEN, NewCharge,
};
use paybridge::services::charges::{MAX_REQUEST_BYTES, view};
use paybridge::services::refunds::create::NewRefund;
use paybridge::services::refunds::view as refund_view;
use paybridge_tests::api_request_with_query;
use paybridge_tests::builders::pending_charge;
use paybridge_tests::openapi::{
    allows_null, assert_shape, document, media_examples, operations, own_types, pointee, refs,
    resolve, schema, shape,
};
use paybridge_tests::sources::documented_route_error_codes;
use paybridge_tests::template::http_api_routes;
use refunds::handler::Refunds;
use serde_json::{Map, Value, json};

/// The template.yaml functions whose `HttpApi` routes the document describes.
const DOCUMENTED_FUNCTIONS: &[&str] = &["ChargesFunction", "RefundsFunction"];

// ---- samples and parsers ------------------------------------------------------------------

fn sample_charge(full: bool) -> Charge {
    Charge {
        invoice_id: "inv_123".into(),
        gateway_ref: full.then(|| "pi_123".into()),
        status: if full {
            ChargeStatus::Failed
        } else {
            ChargeStatus::Pending
        },
        failure: full.then(|| Failure {
            code: "card_declined".into(),
            message: "Your card was declined.".into(),
            advice: None,
        }),
        customer: full.then(|| "cus_123".into()),
        description: full.then(|| "Invoice 123".into()),
        metadata: if full {
            BTreeMap::from([("plan".into(), "pro".into())])
        } else {
            BTreeMap::new()
        },
        updated_at: 1_773_480_414,
        ..pending_charge(Gateway::Stripe, 1_773_480_413)
    }
}

fn sample_refund(full: bool, status: RefundStatus) -> Refund {
    let gateway = if full {
        Gateway::Stripe
    } else {
        Gateway::Adyen
    };
    let amount = Money::parse(500, "eur").expect("a valid amount");
    Refund {
        gateway_ref: full.then(|| "re_123".into()),
        status,
        reason: full.then_some(RefundReason::RequestedByCustomer),
        failure: full.then(|| Failure {
            code: "expired_or_canceled_card".into(),
            message: "the gateway could not complete the refund".into(),
            advice: None,
        }),
        metadata: if full {
            BTreeMap::from([("ticket".into(), "T-42".into())])
        } else {
            BTreeMap::new()
        },
        updated_at: 1_773_569_522,
        ..Refund::pending(
            RefundId::generate(),
            &ChargeId::generate(),
            amount,
            gateway,
            1_773_569_521,
        )
    }
}

/// Every refund reason. The domain keeps no list of them; the match in [`reason_names`] stops
/// compiling when one is added, so this list cannot fall behind.
const REFUND_REASONS: [RefundReason; 3] = [
    RefundReason::Duplicate,
    RefundReason::Fraudulent,
    RefundReason::RequestedByCustomer,
];

fn reason_names() -> BTreeSet<&'static str> {
    REFUND_REASONS
        .into_iter()
        .map(|r| match r {
            RefundReason::Duplicate
            | RefundReason::Fraudulent
            | RefundReason::RequestedByCustomer => r.as_str(),
        })
        .collect()
}

fn object_keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

fn parse(body: &Value) -> Result<NewCharge, Error> {
    NewCharge::parse(body.to_string().as_bytes()).map(|(c, _)| c)
}

fn parse_refund(body: &Value) -> Result<NewRefund, Error> {
    NewRefund::parse(body.to_string().as_bytes()).map(|(r, _)| r)
}

/// `metadata` values at and over each limit of the `Metadata` schema: (value, accepted, what).
fn metadata_cases() -> Vec<(Value, bool, &'static str)> {
    let keys = |n: usize| -> Value {
        (0..n)
            .map(|i| (format!("k{i}"), json!("v")))
            .collect::<Map<_, _>>()
            .into()
    };
    let one = |k: String, v: String| json!({ k: v });
    vec![
        (keys(MAX_METADATA_KEYS), true, "the most keys"),
        (keys(MAX_METADATA_KEYS + 1), false, "one key too many"),
        (
            one("k".repeat(MAX_METADATA_KEY_LEN), "v".into()),
            true,
            "the longest key",
        ),
        (
            one("k".repeat(MAX_METADATA_KEY_LEN + 1), "v".into()),
            false,
            "a key too long",
        ),
        (
            one("k".into(), "v".repeat(MAX_METADATA_VALUE_LEN)),
            true,
            "the longest value",
        ),
        (
            one("k".into(), "v".repeat(MAX_METADATA_VALUE_LEN + 1)),
            false,
            "a value too long",
        ),
        (one(String::new(), "v".into()), false, "an empty key"),
        (one("a[b]".into(), "v".into()), false, "a key with brackets"),
        (
            one("invoice_id".into(), "v".into()),
            false,
            "paybridge's invoice key",
        ),
        (
            one("paybridge_charge_id".into(), "v".into()),
            false,
            "a paybridge_ key",
        ),
        (
            one("invoice".into(), "v".into()),
            true,
            "a key like, not equal to, ours",
        ),
    ]
}

/// Checks the `Metadata` schema's limits against the parser's constants.
fn assert_metadata_limits(doc: &Value, metadata: &Value) {
    let metadata = resolve(doc, metadata);
    assert_eq!(
        metadata["maxProperties"].as_u64(),
        Some(MAX_METADATA_KEYS as u64)
    );
    assert_eq!(
        metadata["propertyNames"]["maxLength"].as_u64(),
        Some(MAX_METADATA_KEY_LEN as u64)
    );
    assert_eq!(
        metadata["additionalProperties"]["maxLength"].as_u64(),
        Some(MAX_METADATA_VALUE_LEN as u64)
    );
}

// ---- the tests --------------------------------------------------------------------------------

#[test]
fn the_document_is_openapi_3_1_and_every_ref_resolves() {
    let doc = document();
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi is {version:?}");

    let all = refs(doc);
    assert!(!all.is_empty(), "the document uses components through $ref");
    let broken: Vec<&&str> = all.iter().filter(|r| pointee(doc, r).is_none()).collect();
    assert!(
        broken.is_empty(),
        "$refs that resolve to nothing: {broken:?}"
    );

    let ids: Vec<&str> = operations(doc)
        .iter()
        .map(|o| {
            o.op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{} has no operationId", o.name()))
        })
        .collect();
    let unique: BTreeSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "operationIds repeat: {ids:?}");

    for (at, schema, value) in media_examples(doc) {
        assert_shape(doc, schema, value, &at);
    }
}

#[test]
fn the_documented_routes_are_exactly_the_template_routes_of_the_documented_functions() {
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(doc)
        .into_iter()
        .map(|o| (o.method, o.path))
        .collect();
    let mut served = BTreeSet::new();
    for function in DOCUMENTED_FUNCTIONS {
        let routes = http_api_routes(function);
        assert!(
            !routes.is_empty(),
            "{function} has no HttpApi routes in template.yaml"
        );
        served.extend(routes);
    }
    assert_eq!(
        documented, served,
        "openapi.json paths vs template.yaml routes of {DOCUMENTED_FUNCTIONS:?}"
    );
}

/// A charge waiting for its customer, with the action each gateway describes.
fn waiting_charges() -> Vec<Charge> {
    let details = [
        ActionDetails::Stripe {
            payment_intent: "pi_123".into(),
            client_secret: Some("pi_123_secret_abc".into()),
            payment_method: Some("pm_123".into()),
            next_action: Some(json!({"type": "use_stripe_sdk", "use_stripe_sdk": {}})),
            reason: None,
        },
        ActionDetails::Stripe {
            payment_intent: "pi_123".into(),
            client_secret: None,
            payment_method: None,
            next_action: None,
            reason: Some("authentication_required".into()),
        },
        ActionDetails::Adyen {
            result_code: "IdentifyShopper".into(),
            action: serde_json::from_str::<Value>(include_str!(
                "../fixtures/adyen/payments-3ds2-identify-shopper.json"
            ))
            .unwrap()["action"]
                .clone(),
        },
    ];
    details
        .into_iter()
        .map(|details| Charge {
            status: ChargeStatus::RequiresAction,
            customer_action: Some(CustomerAction {
                details,
                required_at: 1_773_480_413,
            }),
            ..sample_charge(false)
        })
        .collect()
}

#[test]
fn the_charge_schema_has_exactly_the_fields_of_the_charge_view_with_their_json_types() {
    let doc = document();
    let charge = schema(doc, "Charge");
    let properties = &charge["properties"];
    let samples = [sample_charge(true), sample_charge(false)]
        .into_iter()
        .chain(waiting_charges());
    for sample in samples {
        let sample = view(&sample);
        let keys = object_keys(&sample);
        assert_eq!(object_keys(properties), keys, "Charge.properties vs view()");
        assert_eq!(
            strings(&charge["required"]),
            keys,
            "Charge.required vs view()"
        );
        for (key, value) in sample.as_object().expect("the view is an object") {
            let property = &properties[key];
            if let Err(e) = shape(doc, property, value, &format!("Charge.{key}")) {
                panic!("view() gives `{key}` = {value}, which the schema does not allow: {e}");
            }
        }
        assert_shape(doc, charge, &sample, "view()");
    }

    // Every documented charge has exactly the view's fields, in lists too.
    let keys = object_keys(&view(&sample_charge(true)));
    let charge_ref = json!({"$ref": "#/components/schemas/Charge"});
    let list_ref = json!({"$ref": "#/components/schemas/ChargeList"});
    let mut seen = 0;
    for (at, schema, value) in media_examples(doc) {
        let charges: Vec<&Value> = if *schema == charge_ref {
            vec![value]
        } else if *schema == list_ref {
            value["data"]
                .as_array()
                .expect("a list has data")
                .iter()
                .collect()
        } else {
            continue;
        };
        for c in charges {
            assert_eq!(object_keys(c), keys, "{at}");
            seen += 1;
        }
    }
    assert!(
        seen >= 5,
        "the document shows charges in its examples ({seen} found)"
    );
}

#[test]
fn the_status_enum_is_every_charge_status() {
    let doc = document();
    let status = resolve(doc, &schema(doc, "Charge")["properties"]["status"]);
    let documented = status["enum"].as_array().expect("status has an enum");
    let expected: BTreeSet<String> = ChargeStatus::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    assert_eq!(strings(&status["enum"]), expected);
    assert_eq!(
        documented.len(),
        expected.len(),
        "no status is listed twice"
    );
}

#[test]
fn the_refund_schema_has_exactly_the_fields_of_the_refund_view_with_their_json_types() {
    let doc = document();
    let refund = schema(doc, "Refund");
    let properties = &refund["properties"];
    let mut samples = Vec::new();
    for status in RefundStatus::ALL {
        samples.push(sample_refund(true, status));
        samples.push(sample_refund(false, status));
    }
    for reason in REFUND_REASONS {
        let mut r = sample_refund(true, RefundStatus::Succeeded);
        r.reason = Some(reason);
        samples.push(r);
    }
    for sample in &samples {
        let sample = refund_view(sample);
        let keys = object_keys(&sample);
        assert_eq!(object_keys(properties), keys, "Refund.properties vs view()");
        assert_eq!(
            strings(&refund["required"]),
            keys,
            "Refund.required vs view()"
        );
        for (key, value) in sample.as_object().expect("the view is an object") {
            let property = &properties[key];
            if let Err(e) = shape(doc, property, value, &format!("Refund.{key}")) {
                panic!("view() gives `{key}` = {value}, which the schema does not allow: {e}");
            }
        }
        assert_shape(doc, refund, &sample, "view()");
    }
    // The optional parts are `null` in the view exactly where the schema allows `null`.
    let minimal = refund_view(&sample_refund(false, RefundStatus::Pending));
    for (key, value) in minimal.as_object().expect("the view is an object") {
        if value.is_null() {
            assert!(
                allows_null(doc, &properties[key]),
                "`{key}` is null in the view"
            );
        }
    }

    // Every documented refund has exactly the view's fields, in lists too.
    let keys = object_keys(&minimal);
    let refund_ref = json!({"$ref": "#/components/schemas/Refund"});
    let list_ref = json!({"$ref": "#/components/schemas/RefundList"});
    let mut seen = 0;
    for (at, schema, value) in media_examples(doc) {
        let refunds: Vec<&Value> = if *schema == refund_ref {
            vec![value]
        } else if *schema == list_ref {
            value["data"]
                .as_array()
                .expect("a list has data")
                .iter()
                .collect()
        } else {
            continue;
        };
        for r in refunds {
            assert_eq!(object_keys(r), keys, "{at}");
            seen += 1;
        }
    }
    assert!(
        seen >= 5,
        "the document shows refunds in its examples ({seen} found)"
    );
}

#[test]
fn the_refund_status_enum_is_every_refund_status() {
    let doc = document();
    let status = resolve(doc, &schema(doc, "Refund")["properties"]["status"]);
    let documented = status["enum"].as_array().expect("status has an enum");
    let expected: BTreeSet<String> = RefundStatus::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    assert_eq!(strings(&status["enum"]), expected);
    assert_eq!(
        documented.len(),
        expected.len(),
        "no status is listed twice"
    );
    // The description explains every status.
    let description = status["description"].as_str().unwrap_or_default();
    for s in &expected {
        assert!(
            description.contains(&format!("- `{s}` — ")),
            "RefundStatus does not explain `{s}`"
        );
    }
}

#[test]
fn the_refund_conflict_names_every_charge_status_that_cannot_be_refunded() {
    let doc = document();
    let create = operations(doc)
        .into_iter()
        .find(|o| o.method == "POST" && o.path == "/charges/{id}/refunds")
        .expect("POST /charges/{id}/refunds is documented");
    let conflict = create.response(doc, 409).expect("a 409");
    let description = conflict["description"].as_str().unwrap_or_default();
    let line = description
        .lines()
        .find(|l| l.starts_with("- `charge_not_refundable`"))
        .expect("the 409 describes charge_not_refundable");
    for status in ChargeStatus::ALL {
        assert_eq!(
            line.contains(&format!("`{}`", status.as_str())),
            !status.is_captured(),
            "charge_not_refundable vs a `{}` charge: {line}",
            status.as_str()
        );
    }
}

#[test]
fn the_create_request_schema_accepts_exactly_what_new_charge_parse_accepts() {
    let doc = document();
    let request = schema(doc, "CreateChargeRequest");
    assert_eq!(
        request["additionalProperties"],
        json!(false),
        "unknown fields are refused"
    );
    let properties = request["properties"].as_object().expect("properties");
    let required = strings(&request["required"]);

    // Every documented example parses, and the fullest one uses every property.
    let mut examples: Vec<Value> = request["examples"].as_array().cloned().unwrap_or_default();
    let create = operations(doc)
        .into_iter()
        .find(|o| o.method == "POST" && o.path == "/charges")
        .expect("POST /charges is documented");
    for example in create.op["requestBody"]["content"]["application/json"]["examples"]
        .as_object()
        .into_iter()
        .flat_map(Map::values)
    {
        examples.push(resolve(doc, example)["value"].clone());
    }
    assert!(!examples.is_empty(), "the create request has examples");
    for example in &examples {
        if let Err(e) = parse(example) {
            panic!("the documented request {example} does not parse: {e}");
        }
    }
    let full = examples
        .iter()
        .max_by_key(|e| e.as_object().map_or(0, Map::len))
        .expect("an example")
        .clone();
    assert_eq!(
        object_keys(&full),
        properties.keys().cloned().collect(),
        "one example uses every property"
    );

    let with = |key: &str, value: Value| {
        let mut body = full.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = full.clone();
        body.as_object_mut().expect("an object").remove(key);
        body
    };

    // A property the schema does not list is refused as malformed: any name, and every field of a
    // charge that is not a request field.
    let mut strangers: BTreeSet<String> = object_keys(&view(&sample_charge(true)));
    strangers.retain(|k| !properties.contains_key(k));
    strangers.insert("not_in_the_schema".into());
    for key in &strangers {
        match parse(&with(key, json!("x"))) {
            Err(e) => assert_eq!(
                (e.kind().status(), e.code()),
                (400, "invalid_request"),
                "adding `{key}`"
            ),
            Ok(_) => panic!("`{key}` is not in the schema, yet the request parses with it"),
        }
    }

    // Exactly the required properties are needed.
    for key in properties.keys() {
        let result = parse(&without(key));
        assert_eq!(
            result.is_err(),
            required.contains(key),
            "removing `{key}`: {:?}",
            result.err()
        );
    }
    let capture_default = request["properties"]["capture"]["default"].as_bool();
    assert_eq!(
        parse(&without("capture")).map(|c| c.capture).ok(),
        capture_default,
        "`capture` defaults as documented"
    );

    // `null` is accepted exactly where the schema's type allows it.
    for (key, property) in properties {
        let allows_null = own_types(resolve(doc, property)).is_some_and(|t| t.contains("null"));
        let result = parse(&with(key, Value::Null));
        assert_eq!(
            result.is_ok(),
            allows_null,
            "`{key}: null`: {:?}",
            result.err()
        );
    }

    // String length limits are the parser's.
    for (key, property) in properties {
        let property = resolve(doc, property);
        if let Some(max) = property["maxLength"].as_u64() {
            let at_max = "a".repeat(max as usize);
            assert!(
                parse(&with(key, json!(at_max))).is_ok(),
                "`{key}` of {max} characters"
            );
            let over = "a".repeat(max as usize + 1);
            assert!(
                parse(&with(key, json!(over))).is_err(),
                "`{key}` of {} characters",
                max + 1
            );
        }
        if property["minLength"].as_u64() == Some(1) {
            assert!(parse(&with(key, json!(""))).is_err(), "an empty `{key}`");
        }
    }

    // The amount's bounds.
    let amount = &properties["amount"];
    assert_eq!(amount["minimum"].as_i64(), Some(1));
    assert_eq!(amount["maximum"].as_i64(), Some(Money::MAX_MINOR));
    for (n, ok) in [
        (0, false),
        (1, true),
        (Money::MAX_MINOR, true),
        (Money::MAX_MINOR + 1, false),
    ] {
        assert_eq!(parse(&with("amount", json!(n))).is_ok(), ok, "amount {n}");
    }

    // Exactly the documented gateways are accepted, of those the domain knows.
    let gateways = strings(&resolve(doc, &properties["gateway"])["enum"]);
    for name in ["stripe", "adyen", "standard"] {
        assert!(Gateway::parse(name).is_some(), "the domain knows {name}");
        let result = parse(&with("gateway", json!(name)));
        assert_eq!(
            result.is_ok(),
            gateways.contains(name),
            "gateway {name}: {:?}",
            result.err()
        );
    }

    // Metadata limits are the parser's.
    assert_metadata_limits(doc, &properties["metadata"]);
    for (body, ok, what) in metadata_cases() {
        assert_eq!(
            parse(&with("metadata", body)).is_ok(),
            ok,
            "metadata: {what}"
        );
    }
}

#[test]
fn the_refund_request_schema_accepts_exactly_what_new_refund_parse_accepts() {
    let doc = document();
    let request = schema(doc, "CreateRefundRequest");
    assert_eq!(
        request["additionalProperties"],
        json!(false),
        "unknown fields are refused"
    );
    assert!(
        request.get("required").is_none(),
        "every field of a refund request is optional"
    );
    let properties = request["properties"].as_object().expect("properties");
    let create = operations(doc)
        .into_iter()
        .find(|o| o.method == "POST" && o.path == "/charges/{id}/refunds")
        .expect("POST /charges/{id}/refunds is documented");
    assert_eq!(
        create.op["requestBody"]["required"],
        json!(false),
        "the body is optional"
    );

    // No body at all is `{}`: refund everything that remains.
    let everything = NewRefund {
        amount: None,
        currency: None,
        reason: None,
        metadata: BTreeMap::new(),
    };
    for body in [&b""[..], b"  \n", b"{}"] {
        let parsed = NewRefund::parse(body).map(|(r, _)| r);
        assert_eq!(parsed.ok().as_ref(), Some(&everything), "body {body:?}");
    }

    // Every documented example parses to what it says, and the fullest one uses every property.
    let mut examples: Vec<Value> = request["examples"].as_array().cloned().unwrap_or_default();
    for example in create.op["requestBody"]["content"]["application/json"]["examples"]
        .as_object()
        .into_iter()
        .flat_map(Map::values)
    {
        examples.push(resolve(doc, example)["value"].clone());
    }
    assert!(examples.len() >= 2, "the refund request has examples");
    for example in &examples {
        let parsed = parse_refund(example)
            .unwrap_or_else(|e| panic!("the documented request {example} does not parse: {e}"));
        assert_eq!(parsed.amount, example["amount"].as_i64(), "{example}");
        assert_eq!(
            parsed.currency.as_deref(),
            example["currency"].as_str(),
            "{example}"
        );
        assert_eq!(
            parsed.reason.map(RefundReason::as_str),
            example["reason"].as_str(),
            "{example}"
        );
        assert_eq!(
            json!(parsed.metadata),
            example.get("metadata").cloned().unwrap_or(json!({})),
            "{example}"
        );
    }
    let full = examples
        .iter()
        .max_by_key(|e| e.as_object().map_or(0, Map::len))
        .expect("an example")
        .clone();
    assert_eq!(
        object_keys(&full),
        properties.keys().cloned().collect(),
        "one example uses every property"
    );

    let with = |key: &str, value: Value| {
        let mut body = full.clone();
        body[key] = value;
        body
    };
    let refused = |body: &Value| {
        parse_refund(body)
            .err()
            .map(|e| (e.kind().status(), e.code()))
    };

    // A property the schema does not list is refused as malformed: any name, and every field of a
    // refund that is not a request field.
    let mut strangers = object_keys(&refund_view(&sample_refund(true, RefundStatus::Pending)));
    strangers.retain(|k| !properties.contains_key(k));
    strangers.insert("not_in_the_schema".into());
    assert!(strangers.len() > 5, "{strangers:?}");
    for key in &strangers {
        assert_eq!(
            refused(&with(key, json!("x"))),
            Some((400, "invalid_request")),
            "adding `{key}`"
        );
    }
    // A body that is JSON but not an object is malformed too.
    for body in [json!("x"), json!(500), json!(null), json!(true)] {
        assert_eq!(
            refused(&body),
            Some((400, "invalid_request")),
            "the body {body}"
        );
    }

    // Each property may be left out, and `null` is accepted exactly where the schema allows it.
    for (key, property) in properties {
        let mut body = full.clone();
        body.as_object_mut().expect("an object").remove(key);
        assert!(
            parse_refund(&body).is_ok(),
            "removing `{key}`: {:?}",
            refused(&body)
        );
        let result = parse_refund(&with(key, Value::Null));
        assert_eq!(
            result.is_ok(),
            allows_null(doc, property),
            "`{key}: null`: {:?}",
            result.err()
        );
    }

    // The amount's bounds; a fraction is malformed.
    let amount = &properties["amount"];
    assert_eq!(amount["minimum"].as_i64(), Some(1));
    assert_eq!(amount["maximum"].as_i64(), Some(Money::MAX_MINOR));
    for (n, answer) in [
        (-1, Some((422, "invalid_amount"))),
        (0, Some((422, "invalid_amount"))),
        (1, None),
        (Money::MAX_MINOR, None),
        (Money::MAX_MINOR + 1, Some((422, "invalid_amount"))),
    ] {
        assert_eq!(refused(&with("amount", json!(n))), answer, "amount {n}");
    }
    assert_eq!(
        refused(&with("amount", json!(1.5))),
        Some((400, "invalid_request"))
    );

    // The reasons are exactly the domain's, spelled as documented.
    let reasons = strings(&schema(doc, "RefundReason")["enum"]);
    let known: BTreeSet<String> = reason_names().into_iter().map(String::from).collect();
    assert_eq!(reasons, known, "RefundReason vs the domain");
    for name in &reasons {
        let parsed = parse_refund(&with("reason", json!(name)));
        assert_eq!(
            parsed.ok().and_then(|r| r.reason).map(RefundReason::as_str),
            Some(name.as_str())
        );
    }
    for other in ["other", "Duplicate", ""] {
        assert_eq!(
            refused(&with("reason", json!(other))),
            Some((400, "invalid_request")),
            "reason {other:?}"
        );
    }

    // The currency is only compared with the charge's later, as sent (in any case).
    for code in ["eur", "EUR", "Jpy"] {
        let parsed = parse_refund(&with("currency", json!(code)));
        assert_eq!(parsed.ok().and_then(|r| r.currency).as_deref(), Some(code));
    }
    assert_eq!(
        refused(&with("currency", json!(978))),
        Some((400, "invalid_request"))
    );

    // Metadata limits are the charges' (one `Metadata` schema), and a card number is refused.
    assert_eq!(
        properties["metadata"],
        json!({"$ref": "#/components/schemas/Metadata"})
    );
    assert_metadata_limits(doc, &properties["metadata"]);
    for (body, ok, what) in metadata_cases() {
        assert_eq!(
            refused(&with("metadata", body)),
            (!ok).then_some((422, "invalid_metadata")),
            "metadata: {what}"
        );
    }
    assert_eq!(
        refused(&with("metadata", json!({"note": "4242424242424242"}))),
        Some((422, "card_data_refused"))
    );
    for (status, code) in [
        (400, "invalid_request"),
        (422, "invalid_amount"),
        (422, "invalid_metadata"),
        (422, "card_data_refused"),
    ] {
        assert!(
            create.documents(doc, status, code),
            "POST /charges/{{id}}/refunds {status} does not name `{code}`"
        );
    }
}

#[test]
fn the_currency_enum_is_exactly_the_currencies_money_knows() {
    let doc = document();
    let documented = strings(&schema(doc, "CurrencyCode")["enum"]);
    // Every three-letter code, asked of the domain: the enum is complete and has nothing extra.
    let mut known = BTreeSet::new();
    for a in b'a'..=b'z' {
        for b in b'a'..=b'z' {
            for c in b'a'..=b'z' {
                let code = String::from_utf8(vec![a, b, c]).expect("ASCII");
                if let Ok(currency) = Currency::parse(&code) {
                    assert_eq!(currency.code(), code, "charges carry the lower-case code");
                    known.insert(code);
                }
            }
        }
    }
    assert_eq!(documented, known);

    // The request takes them in any case (in an amount every gateway can take in every currency:
    // Stripe's three-decimal amounts end in 0, Adyen's IDR is whole rupiah).
    let mut full = schema(doc, "CreateChargeRequest")["examples"][0].clone();
    full["amount"] = json!(20_000);
    for code in &documented {
        for spelled in [code.clone(), code.to_ascii_uppercase()] {
            let mut body = full.clone();
            body["currency"] = json!(spelled);
            let parsed = parse(&body).unwrap_or_else(|e| panic!("currency {spelled}: {e}"));
            assert_eq!(parsed.amount.currency().code(), code);
        }
    }
}

#[test]
fn every_error_code_the_code_can_answer_with_is_documented_with_its_status() {
    let doc = document();
    let error_code = schema(doc, "ErrorCode");
    let documented = strings(&error_code["enum"]);
    let table = error_code["description"].as_str().unwrap_or_default();
    let codes = documented_route_error_codes();
    assert!(
        codes.len() >= 20,
        "the billing routes' codes are listed ({} found)",
        codes.len()
    );
    let operations = operations(doc);
    for (status, code) in &codes {
        assert!(
            documented.contains(code),
            "`{code}` ({status}) is not in ErrorCode's enum"
        );
        assert!(
            table.contains(&format!("| `{code}` | {status} |")),
            "ErrorCode's table has no row for `{code}` with status {status}"
        );
        // The fallback route answers only paths API Gateway does not route to the function, so no
        // documented operation can return it; the table above documents it.
        if code == "route_not_found" {
            continue;
        }
        assert!(
            operations.iter().any(|o| o.documents(doc, *status, code)),
            "no operation's {status} response names `{code}`"
        );
    }
    let produced: BTreeSet<String> = codes.iter().map(|(_, c)| c.clone()).collect();
    let stale: Vec<&String> = documented.difference(&produced).collect();
    assert!(
        stale.is_empty(),
        "documented codes that nothing produces: {stale:?}"
    );

    // An example error is one its response names.
    for op in &operations {
        for (status, response) in op.op["responses"].as_object().into_iter().flatten() {
            let response = resolve(doc, response);
            let description = response["description"].as_str().unwrap_or_default();
            let examples = response.pointer("/content/application~1json/examples");
            for example in examples
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(_, e)| e)
            {
                if let Some(code) = resolve(doc, example)["value"]["error"]["code"].as_str() {
                    assert!(
                        description.contains(&format!("`{code}`")),
                        "{} {status} shows `{code}` without describing it",
                        op.name()
                    );
                }
            }
        }
    }
}

#[test]
fn every_post_route_documents_the_idempotency_contract() {
    let doc = document();
    for op in operations(doc) {
        let key = op
            .parameters(doc)
            .into_iter()
            .find(|p| p["in"] == "header" && p["name"] == "Idempotency-Key");
        if op.method != "POST" {
            assert!(key.is_none(), "{} takes no Idempotency-Key", op.name());
            continue;
        }
        let key = key.unwrap_or_else(|| panic!("{} documents no Idempotency-Key", op.name()));
        assert_eq!(key["required"], json!(true), "{}", op.name());
        assert_eq!(
            (
                key["schema"]["minLength"].as_u64(),
                key["schema"]["maxLength"].as_u64()
            ),
            (Some(1), Some(255))
        );
        for (status, code) in [
            (400, "idempotency_key_required"),
            (400, "invalid_idempotency_key"),
            (409, "request_in_progress"),
            (422, "idempotency_key_reused"),
        ] {
            assert!(
                op.documents(doc, status, code),
                "{} {status} does not name `{code}`",
                op.name()
            );
        }
        let conflict = op.response(doc, 409).expect("a 409");
        assert!(
            conflict["headers"].get("Retry-After").is_some(),
            "{} 409 has Retry-After",
            op.name()
        );
        let successes = op.op["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(s, _)| s.starts_with('2'));
        let mut n = 0;
        for (status, response) in successes {
            let response = resolve(doc, response);
            assert!(
                response["headers"].get("Idempotent-Replayed").is_some(),
                "{} {status} documents no Idempotent-Replayed header",
                op.name()
            );
            n += 1;
        }
        assert!(n > 0, "{} documents a success", op.name());
    }
}

/// The documented functions with clients that are never reached: every request below is answered
/// before any I/O (one that got as far as DynamoDB would fail there, with another answer).
struct Offline {
    charges: Charges,
    refunds: Refunds,
}

impl Offline {
    fn new() -> Self {
        let aws = paybridge::adapters::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .build();
        let store = || Table::from_conf(&aws, "unused");
        let gateways = || GatewayRouter {
            stripe: None,
            adyen: None,
        };
        let queue = || SqsWorkQueue::from_conf(&aws, "http://127.0.0.1:9/unused");
        Offline {
            charges: Charges {
                store: store(),
                gateways: gateways(),
                queue: queue(),
                idempotency_ttl: Duration::from_secs(60),
            },
            refunds: Refunds {
                store: store(),
                gateways: gateways(),
                queue: queue(),
                idempotency_ttl: Duration::from_secs(60),
            },
        }
    }

    /// Hands `req` to the handler of `function` (a template.yaml resource name).
    async fn handle(&self, function: &str, req: Request) -> Response<Body> {
        let answer = match function {
            "ChargesFunction" => charges::handler::handle(&self.charges, req).await,
            "RefundsFunction" => refunds::handler::handle(&self.refunds, req).await,
            other => panic!("no handler for {other}"),
        };
        answer.expect("the handler never fails")
    }
}

/// A request the handler refuses before any I/O, and how.
struct Refused {
    id: &'static str,
    key: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

#[tokio::test]
async fn the_answers_the_handlers_give_before_any_io_are_documented() {
    const ID: &str = "ch_0193a1b2c3d47e8f9a0b1c2d3e4f5a6b";
    const REFUND_ID: &str = "rf_0193a5f0b1c27d3e8f4a5b6c7d8e9f01";
    let refused = |id, key, body: &[u8], status, code| Refused {
        id,
        key,
        body: body.to_vec(),
        status,
        code,
    };
    let doc = document();
    let app = Offline::new();
    // The function template.yaml sends each documented route to.
    let mut function_of = BTreeMap::new();
    for function in DOCUMENTED_FUNCTIONS {
        for route in http_api_routes(function) {
            function_of.insert(route, *function);
        }
    }
    let error = schema(doc, "Error");
    let too_big = vec![b'a'; MAX_REQUEST_BYTES + 1];
    let card = br#"{"invoice_id":"i","amount":1,"currency":"eur","gateway":"stripe","payment_method":"4242424242424242"}"#;
    let mut checked = 0;
    let mut functions = BTreeSet::new();
    for op in operations(doc) {
        let function = function_of
            .get(&(op.method.clone(), op.path.clone()))
            .unwrap_or_else(|| panic!("template.yaml does not route {}", op.name()));
        functions.insert(*function);
        let mut cases = vec![refused(ID, Some("k-1"), &too_big, 413, "payload_too_large")];
        match (op.method.as_str(), op.path.as_str()) {
            ("POST", path) => {
                cases.push(refused(ID, None, b"{}", 400, "idempotency_key_required"));
                cases.push(refused(
                    ID,
                    Some(" padded"),
                    b"{}",
                    400,
                    "invalid_idempotency_key",
                ));
                if path.contains("{id}") {
                    cases.push(refused(
                        "ch_nope",
                        Some("k-1"),
                        b"",
                        404,
                        "charge_not_found",
                    ));
                }
                if !path.ends_with("/cancel") {
                    cases.push(refused(ID, Some("k-1"), b"{", 400, "invalid_json"));
                    cases.push(refused(
                        ID,
                        Some("k-1"),
                        br#"{"amount":1,"x":1}"#,
                        400,
                        "invalid_request",
                    ));
                }
                if path == "/charges" {
                    cases.push(refused(ID, Some("k-1"), card, 422, "card_data_refused"));
                }
                if path.ends_with("/refunds") {
                    cases.extend([
                        // The charge id is checked before the body.
                        refused(
                            REFUND_ID,
                            Some("k-1"),
                            br#"{"amount":500}"#,
                            404,
                            "charge_not_found",
                        ),
                        refused(
                            ID,
                            Some("k-1"),
                            br#"{"reason":"because"}"#,
                            400,
                            "invalid_request",
                        ),
                        refused(ID, Some("k-1"), b"[1", 400, "invalid_json"),
                        refused(
                            ID,
                            Some("k-1"),
                            br#"{"metadata":{"note":"4242424242424242"}}"#,
                            422,
                            "card_data_refused",
                        ),
                        refused(ID, Some("k-1"), br#"{"amount":0}"#, 422, "invalid_amount"),
                        refused(
                            ID,
                            Some("k-1"),
                            br#"{"metadata":{"a[b]":"v"}}"#,
                            422,
                            "invalid_metadata",
                        ),
                    ]);
                }
            }
            ("GET", "/charges") => cases.push(refused(ID, None, b"", 400, "invoice_id_required")),
            ("GET", "/refunds/{id}") => {
                cases.push(refused("rf_nope", None, b"", 404, "refund_not_found"));
                cases.push(refused(ID, None, b"", 404, "refund_not_found"));
            }
            ("GET", "/disputes/{id}") => {
                cases.push(refused("dp_nope", None, b"", 404, "dispute_not_found"));
                cases.push(refused(ID, None, b"", 404, "dispute_not_found"));
            }
            ("GET", _) => {
                cases.push(refused("ch_nope", None, b"", 404, "charge_not_found"));
                cases.push(refused(REFUND_ID, None, b"", 404, "charge_not_found"));
            }
            _ => {}
        }
        for case in cases {
            let path = op.path.replace("{id}", case.id);
            let params: Vec<(&str, &str)> = if op.path.contains("{id}") {
                vec![("id", case.id)]
            } else {
                vec![]
            };
            let headers: Vec<(&str, &str)> = case
                .key
                .map(|k| ("Idempotency-Key", k))
                .into_iter()
                .collect();
            let route_key = format!("{} {}", op.method, op.path);
            let req = api_request_with_query(
                &route_key,
                &path,
                &params,
                &[],
                &headers,
                &case.body,
                false,
            );
            let resp = app.handle(function, req).await;
            let text = String::from_utf8_lossy(resp.body().as_ref()).into_owned();
            let (status, code) = (case.status, case.code);
            assert_eq!(
                resp.status().as_u16(),
                status,
                "{} ({code}): {text}",
                op.name()
            );
            let body: Value = serde_json::from_str(&text).expect("an error body is JSON");
            assert_eq!(body["error"]["code"], json!(code), "{}", op.name());
            assert_shape(doc, error, &body, &format!("{} {status}", op.name()));
            assert!(
                op.documents(doc, status, code),
                "{} answers {status} `{code}`, which its responses do not document",
                op.name()
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} answers checked");
    assert_eq!(
        functions,
        DOCUMENTED_FUNCTIONS.iter().copied().collect(),
        "every documented function was asked"
    );

    // The limit the 413 documents is the handler's.
    let too_large = doc["components"]["responses"]["PayloadTooLarge"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        too_large.contains(&MAX_REQUEST_BYTES.to_string()),
        "{too_large}"
    );
}

#[test]
fn the_metadata_schema_refuses_exactly_what_the_parser_refuses() {
    let doc = document();
    let metadata = json!({"$ref": "#/components/schemas/Metadata"});
    for (value, ok, what) in metadata_cases() {
        assert_eq!(
            shape(doc, &metadata, &value, "metadata").is_ok(),
            ok,
            "metadata: {what}"
        );
    }
}

/// The disguises that went through `POST /charges` before the detector read every window of a
/// digit sequence (a PAN then its CVV, then its expiry, dotted, glued to letters), and two more.
/// Visa's 4111 1111 1111 1111 and Stripe's 4242 4242 4242 4242 test card numbers.
const CARD_DISGUISES: &[&str] = &[
    "card 4111 1111 1111 1111 123",
    "4111111111111111 12/26",
    "4111.1111.1111.1111",
    "pan4111111111111111",
    "00424242424242424242",
    "4242-4242 - 4242..4242",
];

/// Where the card number is, and the request: (part, path id, query, Idempotency-Key, body).
type CardCase<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str, Vec<u8>);

/// `text` with what a path or query string cannot carry percent-encoded.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn every_route_refuses_a_card_number_in_its_path_query_key_or_any_body_field_before_any_io() {
    const ID: &str = "ch_0193a1b2c3d47e8f9a0b1c2d3e4f5a6b";
    let doc = document();
    let app = Offline::new();
    let mut function_of = BTreeMap::new();
    for function in DOCUMENTED_FUNCTIONS {
        for route in http_api_routes(function) {
            function_of.insert(route, *function);
        }
    }
    let mut checked = 0;
    for op in operations(doc) {
        let function = function_of[&(op.method.clone(), op.path.clone())];
        assert!(
            op.documents(doc, 422, "card_data_refused"),
            "{} does not document 422 card_data_refused",
            op.name()
        );
        for card in CARD_DISGUISES {
            let encoded = percent_encoded(card);
            let glued_id = format!("ch_{encoded}");
            // (where, path id, query, Idempotency-Key, body)
            let mut cases: Vec<CardCase> = vec![
                ("query", ID, vec![("invoice_id", &encoded)], "k-1", vec![]),
                ("query key", ID, vec![(&encoded, "x")], "k-1", vec![]),
                ("Idempotency-Key", ID, vec![], card, vec![]),
            ];
            if op.path.contains("{id}") {
                cases.push(("path", &glued_id, vec![], "k-1", vec![]));
            }
            for body in [
                json!({ "description": card }),
                json!({ "metadata": { "note": card } }),
                json!({ "metadata": { *card: "x" } }),
                json!({ "invoice_id": card, "amount": 1999 }),
                json!({ "payment_method": card }),
                json!({ "amount": 300, "customer": card }),
                json!({ "reason": card }),
                json!([{ "deep": [card] }]),
            ] {
                cases.push(("body", ID, vec![], "k-1", body.to_string().into_bytes()));
            }
            // A malformed body and a JSON number.
            cases.push((
                "body",
                ID,
                vec![],
                "k-1",
                format!("{{\"x\": \"{card}\"").into_bytes(),
            ));
            cases.push((
                "body",
                ID,
                vec![],
                "k-1",
                br#"{"amount": 4111111111111111123}"#.to_vec(),
            ));
            for (part, id, query, key, body) in cases {
                let path = op.path.replace("{id}", id);
                let params: Vec<(&str, &str)> = if op.path.contains("{id}") {
                    vec![("id", id)]
                } else {
                    vec![]
                };
                let req = api_request_with_query(
                    &format!("{} {}", op.method, op.path),
                    &path,
                    &params,
                    &query,
                    &[("Idempotency-Key", key)],
                    &body,
                    false,
                );
                let resp = app.handle(function, req).await;
                let text = String::from_utf8_lossy(resp.body().as_ref()).into_owned();
                assert_eq!(
                    resp.status().as_u16(),
                    422,
                    "{} with a card number in its {part} ({card}): {text}",
                    op.name()
                );
                let answer: Value = serde_json::from_str(&text).expect("JSON");
                assert_eq!(answer["error"]["code"], "card_data_refused", "{text}");
                assert!(
                    !text.contains("4111") && !text.contains("4242"),
                    "the number is never echoed: {text}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "{checked} requests checked");
}

/// Direct invocation (docs/direct-invocation.md): every action of the command envelope stands for
/// one documented route, served by the function the template routes it to, and every route
/// has its action.
#[test]
fn every_route_has_a_direct_invocation_action_served_by_the_routes_function() {
    use paybridge::invoke::{ACTIONS, Function};
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(doc)
        .into_iter()
        .map(|o| (o.method, o.path))
        .collect();
    let resource = |f: Function| match f {
        Function::Charges => "ChargesFunction",
        Function::Refunds => "RefundsFunction",
    };
    let mut acted = BTreeSet::new();
    for action in ACTIONS {
        let route = (action.method.to_owned(), action.path.replace("{}", "{id}"));
        assert!(
            documented.contains(&route),
            "`{}` stands for {route:?}, which openapi.json does not document",
            action.name
        );
        assert!(
            http_api_routes(resource(action.function)).contains(&route),
            "`{}` is served by {}, but the template routes {route:?} elsewhere",
            action.name,
            resource(action.function)
        );
        assert_eq!(
            action.param.is_some(),
            route.1.contains("{id}"),
            "{}",
            action.name
        );
        acted.insert(route);
    }
    assert_eq!(acted, documented, "every documented route has an action");
    assert_eq!(
        ACTIONS
            .iter()
            .map(|a| a.name)
            .collect::<BTreeSet<_>>()
            .len(),
        ACTIONS.len()
    );
}
