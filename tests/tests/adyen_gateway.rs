//! `AdyenGateway` against a fake Adyen Checkout API that each test starts on 127.0.0.1:0.
//!
//! The fake checks every request against Adyen's published shapes (path, method, `X-API-Key`,
//! `Idempotency-Key`, JSON field names, types and values) and answers 422 in Adyen's error format
//! when a check fails, so a wire-shape bug fails the test that sent it. Like Adyen, it rejects
//! unknown top-level fields and replays the first answer for a repeated `Idempotency-Key`. What it
//! answers is chosen by `storedPaymentMethodId` (`stored_ok`, `stored_refused`, …; see
//! [`payments`]). No local AWS stack is needed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use paybridge::adapters::gateways::adyen::AdyenGateway;
use paybridge::adapters::gateways::http_client;
use paybridge::domain::{Charge, ChargeStatus, Failure, Gateway, Money, PaymentOutcome};
use paybridge::ports::{GatewayError, PaymentGateway, PaymentRequest};
use paybridge::secrets::SecretString;
use paybridge_tests::builders::pending_charge;
use serde_json::{Map, Value, json};

const API_KEY: &str = "AQEyhmfxTEST-adyen-api-key-must-never-leak";
const MERCHANT: &str = "PaybridgeECOM";
const API_VERSION: &str = "/v72";

// ---- the fake Adyen ---------------------------------------------------------------------------

/// What the fake received.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// Every request that reached the fake, replays and rejections included.
    requests: usize,
    /// `/payments` bodies that created a payment (replays not counted).
    payments: Vec<Value>,
    /// (payment pspReference, body) of accepted captures and cancels.
    captures: Vec<(String, Value)>,
    cancels: Vec<(String, Value)>,
}

/// An authorised payment the fake knows, for checking modifications against it.
#[derive(Debug, Clone)]
struct Authorised {
    value: i64,
    currency: String,
}

#[derive(Default)]
struct FakeState {
    seen: Mutex<Seen>,
    /// Idempotency-Key → the first successful answer, replayed as Adyen does.
    replays: Mutex<HashMap<String, Reply>>,
    authorised: Mutex<HashMap<String, Authorised>>,
}

struct FakeAdyen {
    /// Includes the API version, as `AdyenGateway::new` expects.
    base_url: String,
    state: Arc<FakeState>,
}

impl FakeAdyen {
    fn seen(&self) -> Seen {
        self.state.seen.lock().unwrap().clone()
    }

    fn gateway(&self, timeout: Duration) -> AdyenGateway {
        AdyenGateway::new(
            http_client(timeout),
            &self.base_url,
            SecretString::new(API_KEY),
            MERCHANT,
        )
    }
}

async fn spawn_fake_adyen() -> FakeAdyen {
    let state = Arc::new(FakeState::default());
    let app = Router::new()
        .route(&format!("{API_VERSION}/payments"), post(payments))
        .route(
            &format!("{API_VERSION}/payments/{{psp}}/captures"),
            post(captures),
        )
        .route(
            &format!("{API_VERSION}/payments/{{psp}}/cancels"),
            post(cancels),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the fake Adyen");
    let addr = listener.local_addr().expect("fake Adyen address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("fake Adyen server");
    });
    FakeAdyen {
        base_url: format!("http://{addr}{API_VERSION}"),
        state,
    }
}

/// An HTTP answer the fake can store and replay.
#[derive(Debug, Clone)]
struct Reply {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Value,
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

fn ok(status: StatusCode, body: Value) -> Reply {
    Reply {
        status,
        retry_after: None,
        body,
    }
}

/// Adyen's error shape.
fn adyen_error(status: StatusCode, code: &str, message: impl Into<String>, kind: &str) -> Reply {
    Reply {
        status,
        retry_after: None,
        body: json!({
            "status": status.as_u16(), "errorCode": code, "message": message.into(),
            "errorType": kind, "pspReference": new_psp(),
        }),
    }
}

fn invalid(message: impl Into<String>) -> Reply {
    adyen_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "702",
        message,
        "validation",
    )
}

/// A 16-character pspReference like Adyen's.
fn new_psp() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_ascii_uppercase()
}

/// Counts the request, checks the headers every Checkout call needs and replays a known
/// `Idempotency-Key`. `Ok` carries the key and the parsed body.
fn admit(state: &FakeState, headers: &HeaderMap, body: &[u8]) -> Result<(String, Value), Reply> {
    state.seen.lock().unwrap().requests += 1;
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return Err(adyen_error(
            StatusCode::UNAUTHORIZED,
            "000",
            "HTTP Status Response - Unauthorized",
            "security",
        ));
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(invalid(format!(
            "Content-Type must be application/json, got `{content_type}`"
        )));
    }
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        Some(Ok(k)) if !k.is_empty() && k.len() <= 64 => k.to_owned(),
        _ => {
            return Err(invalid(
                "this fake requires an Idempotency-Key of 1 to 64 characters",
            ));
        }
    };
    if let Some(first) = state.replays.lock().unwrap().get(&key) {
        return Err(first.clone());
    }
    let body: Value = serde_json::from_slice(body).map_err(|e| {
        adyen_error(
            StatusCode::BAD_REQUEST,
            "000",
            format!("Unable to parse message: {e}"),
            "validation",
        )
    })?;
    Ok((key, body))
}

fn remember(state: &FakeState, key: String, reply: &Reply) {
    state.replays.lock().unwrap().insert(key, reply.clone());
}

/// `POST /payments` for a stored card. Answers by `storedPaymentMethodId`: `stored_ok` →
/// Authorised; `stored_refused` → Refused (reason `Refused`, code `2`); `stored_3ds` →
/// ChallengeShopper; `stored_pending` → Pending; `stored_error` → HTTP 500; `stored_throttled` →
/// HTTP 429 with `Retry-After: 3`; `stored_slow` → Authorised after 3 s; anything else → 422
/// `803 PaymentDetail not found`.
async fn payments(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Reply, Reply> {
    let (key, body) = admit(&state, &headers, &body)?;
    let request = check_payment(&body).map_err(invalid)?;
    let psp = new_psp();
    let reference = request.reference.clone();
    let reply = match request.stored_payment_method_id.as_str() {
        "stored_ok" => ok(
            StatusCode::OK,
            json!({
                "pspReference": psp, "resultCode": "Authorised", "merchantReference": reference,
                "amount": body["amount"],
            }),
        ),
        "stored_slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            ok(
                StatusCode::OK,
                json!({ "pspReference": psp, "resultCode": "Authorised", "merchantReference": reference }),
            )
        }
        "stored_refused" => ok(
            StatusCode::OK,
            json!({
                "pspReference": psp, "resultCode": "Refused", "refusalReason": "Refused",
                "refusalReasonCode": "2", "merchantReference": reference,
            }),
        ),
        "stored_3ds" => ok(
            StatusCode::OK,
            json!({
                "pspReference": psp, "resultCode": "ChallengeShopper", "merchantReference": reference,
                "action": { "type": "threeDS2", "subtype": "challenge", "paymentMethodType": "scheme",
                            "token": "eyJ0aHJlZURTTWV0aG9kTm90aWZpY2F0aW9uVVJMIjoi", "paymentData": "Ab02b4c0..." },
            }),
        ),
        "stored_pending" => ok(
            StatusCode::OK,
            json!({
                "pspReference": psp, "resultCode": "Pending", "merchantReference": reference,
            }),
        ),
        "stored_error" => {
            return Err(adyen_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "000",
                "An unexpected error occurred",
                "internal",
            ));
        }
        "stored_throttled" => {
            let mut reply = adyen_error(
                StatusCode::TOO_MANY_REQUESTS,
                "000",
                "Too many requests",
                "throttling",
            );
            reply.retry_after = Some(3);
            return Err(reply);
        }
        _ => {
            return Err(adyen_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "803",
                "PaymentDetail not found",
                "validation",
            ));
        }
    };
    if reply.body["resultCode"] == "Authorised" {
        state.authorised.lock().unwrap().insert(
            psp,
            Authorised {
                value: request.value,
                currency: request.currency,
            },
        );
    }
    state.seen.lock().unwrap().payments.push(body);
    remember(&state, key, &reply);
    Ok(reply)
}

/// `POST /payments/{psp}/captures`: accepted with 201 `received` for an authorised payment, in its
/// currency and for at most its amount.
async fn captures(
    State(state): State<Arc<FakeState>>,
    Path(psp): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Reply, Reply> {
    let (key, body) = admit(&state, &headers, &body)?;
    let obj =
        check_modification(&body, &["merchantAccount", "amount", "reference"]).map_err(invalid)?;
    let (value, currency) = check_amount(&obj["amount"]).map_err(invalid)?;
    let authorised = state.authorised.lock().unwrap().get(&psp).cloned();
    let Some(authorised) = authorised else {
        return Err(invalid(format!("no authorised payment {psp}")));
    };
    if currency != authorised.currency || value > authorised.value {
        return Err(invalid(format!(
            "cannot capture {value} {currency} of {} {}",
            authorised.value, authorised.currency
        )));
    }
    let reply = ok(
        StatusCode::CREATED,
        json!({
            "merchantAccount": MERCHANT, "paymentPspReference": psp, "pspReference": new_psp(),
            "reference": obj["reference"], "status": "received", "amount": obj["amount"],
        }),
    );
    state.seen.lock().unwrap().captures.push((psp, body));
    remember(&state, key, &reply);
    Ok(reply)
}

/// `POST /payments/{psp}/cancels`: accepted with 201 `received` for an authorised payment.
async fn cancels(
    State(state): State<Arc<FakeState>>,
    Path(psp): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Reply, Reply> {
    let (key, body) = admit(&state, &headers, &body)?;
    let obj = check_modification(&body, &["merchantAccount", "reference"]).map_err(invalid)?;
    if !state.authorised.lock().unwrap().contains_key(&psp) {
        return Err(invalid(format!("no authorised payment {psp}")));
    }
    let reply = ok(
        StatusCode::CREATED,
        json!({
            "merchantAccount": MERCHANT, "paymentPspReference": psp, "pspReference": new_psp(),
            "reference": obj["reference"], "status": "received",
        }),
    );
    state.seen.lock().unwrap().cancels.push((psp, body));
    remember(&state, key, &reply);
    Ok(reply)
}

// ---- request shape checks (Adyen Checkout API v72) --------------------------------------------

/// The parts of a valid payment request the fake answers by.
struct PaymentShape {
    value: i64,
    currency: String,
    reference: String,
    stored_payment_method_id: String,
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{what} must be an object"))
}

/// Adyen rejects fields a structure does not define.
fn only_fields(obj: &Map<String, Value>, structure: &str, allowed: &[&str]) -> Result<(), String> {
    let unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Structure {structure} contains the following unknown fields: {unknown:?}"
        ))
    }
}

fn string<'a>(obj: &'a Map<String, Value>, field: &str, max: usize) -> Result<&'a str, String> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= max => Ok(s),
        Some(Value::String(_)) => Err(format!("{field} must have 1 to {max} characters")),
        Some(_) => Err(format!("{field} must be a string")),
        None => Err(format!("Required field '{field}' is not provided.")),
    }
}

fn equals(obj: &Map<String, Value>, field: &str, expected: &str) -> Result<(), String> {
    let got = string(obj, field, 1000)?;
    if got == expected {
        Ok(())
    } else {
        Err(format!("{field} must be `{expected}`, got `{got}`"))
    }
}

/// `{"value": <positive integer>, "currency": "<3 upper-case letters>"}`.
fn check_amount(v: &Value) -> Result<(i64, String), String> {
    let amount = object(v, "amount")?;
    only_fields(amount, "Amount", &["value", "currency"])?;
    let value = match amount.get("value") {
        Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap_or_default(),
        _ => return Err("amount.value must be an integer number of minor units".into()),
    };
    if value <= 0 {
        return Err(format!("amount.value must be positive, got {value}"));
    }
    let currency = string(amount, "currency", 3)?;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "amount.currency must be an upper-case ISO 4217 code, got `{currency}`"
        ));
    }
    Ok((value, currency.to_owned()))
}

fn check_payment(body: &Value) -> Result<PaymentShape, String> {
    let obj = object(body, "PaymentRequest")?;
    only_fields(
        obj,
        "PaymentRequest",
        &[
            "amount",
            "reference",
            "merchantAccount",
            "paymentMethod",
            "shopperReference",
            "shopperInteraction",
            "recurringProcessingModel",
            "returnUrl",
            "metadata",
            "additionalData",
        ],
    )?;
    let (value, currency) = check_amount(
        obj.get("amount")
            .ok_or("Required object 'amount' is not provided.")?,
    )?;
    let reference = string(obj, "reference", 80)?;
    equals(obj, "merchantAccount", MERCHANT)?;
    let method = object(
        obj.get("paymentMethod")
            .ok_or("Required field 'paymentMethod' is not provided.")?,
        "paymentMethod",
    )?;
    only_fields(
        method,
        "CheckoutPaymentMethod",
        &["type", "storedPaymentMethodId"],
    )?;
    equals(method, "type", "scheme")?;
    let stored = string(method, "storedPaymentMethodId", 64)?;
    string(obj, "shopperReference", 256)?;
    if obj["shopperReference"]
        .as_str()
        .is_some_and(|s| s.len() < 3)
    {
        return Err("shopperReference must have at least 3 characters".into());
    }
    equals(obj, "shopperInteraction", "ContAuth")?;
    equals(obj, "recurringProcessingModel", "UnscheduledCardOnFile")?;
    let return_url = string(obj, "returnUrl", 8000)?;
    if !return_url.starts_with("https://") {
        return Err(format!(
            "returnUrl must be an https URL, got `{return_url}`"
        ));
    }
    if let Some(metadata) = obj.get("metadata") {
        let metadata = object(metadata, "metadata")?;
        if metadata.len() > 20 {
            return Err("metadata takes at most 20 entries".into());
        }
        for (k, v) in metadata {
            match v.as_str() {
                Some(s) if k.chars().count() <= 20 && s.chars().count() <= 80 => {}
                _ => {
                    return Err(format!(
                        "metadata `{k}`: keys of at most 20 and string values of at most 80 characters"
                    ));
                }
            }
        }
    }
    if let Some(additional) = obj.get("additionalData") {
        let additional = object(additional, "additionalData")?;
        if !additional.values().all(Value::is_string) {
            return Err("additionalData values must be strings".into());
        }
        if let Some(manual) = additional.get("manualCapture").and_then(Value::as_str)
            && manual != "true"
            && manual != "false"
        {
            return Err(format!(
                "additionalData.manualCapture must be \"true\" or \"false\", got `{manual}`"
            ));
        }
    }
    Ok(PaymentShape {
        value,
        currency,
        reference: reference.to_owned(),
        stored_payment_method_id: stored.to_owned(),
    })
}

/// A capture or cancel body: `merchantAccount` and `reference` (and `amount` if `allowed` has it).
fn check_modification<'a>(
    body: &'a Value,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    let obj = object(body, "modification request")?;
    only_fields(obj, "PaymentModificationRequest", allowed)?;
    equals(obj, "merchantAccount", MERCHANT)?;
    string(obj, "reference", 80)?;
    if allowed.contains(&"amount") && !obj.contains_key("amount") {
        return Err("Required object 'amount' is not provided.".into());
    }
    Ok(obj)
}

// ---- helpers ----------------------------------------------------------------------------------

fn charge(stored_payment_method: &str, capture: bool) -> Charge {
    Charge {
        invoice_id: "inv_2024_0042".into(),
        payment_method: stored_payment_method.into(),
        customer: Some("shopper_42".into()),
        capture,
        description: Some("June subscription".into()),
        metadata: BTreeMap::from([("billing_run".into(), "2024-06".into())]),
        ..pending_charge(Gateway::Adyen, 0)
    }
}

fn create_request(charge: &Charge) -> PaymentRequest<'_> {
    PaymentRequest {
        charge,
        idempotency_key: charge.gateway_idempotency_key("create"),
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// A charge created with `capture: false` and authorised by the fake, as the service stores it.
async fn authorized_charge(fake: &FakeAdyen, gateway: &AdyenGateway) -> Charge {
    let mut c = charge("stored_ok", false);
    let outcome = gateway
        .create_payment(&create_request(&c))
        .await
        .expect("authorisation");
    assert_eq!(
        (outcome.status, outcome.captured),
        (ChargeStatus::Authorized, 0)
    );
    assert!(c.apply(&outcome, 1));
    assert_eq!(fake.seen().payments.len(), 1);
    c
}

fn assert_unknown(result: Result<PaymentOutcome, GatewayError>) -> Option<Duration> {
    match result {
        Err(GatewayError::Unknown { retry_after, .. }) => retry_after,
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
}

// ---- tests ------------------------------------------------------------------------------------

#[tokio::test]
async fn an_authorised_payment_captured_at_once_succeeds_with_the_psp_reference() {
    let fake = spawn_fake_adyen().await;
    let c = charge("stored_ok", true);
    let outcome = fake
        .gateway(TIMEOUT)
        .create_payment(&create_request(&c))
        .await
        .expect("payment");

    let seen = fake.seen();
    assert_eq!(seen.payments.len(), 1);
    let sent = &seen.payments[0];
    assert_eq!(sent["amount"], json!({"value": 1999, "currency": "EUR"}));
    assert_eq!(sent["reference"], c.id.as_str());
    assert_eq!(sent["paymentMethod"]["storedPaymentMethodId"], "stored_ok");
    assert_eq!(sent["shopperReference"], "shopper_42");
    assert_eq!(
        sent["metadata"],
        json!({"billing_run": "2024-06", "invoice_id": "inv_2024_0042"})
    );
    assert!(sent.get("additionalData").is_none(), "{sent}");
    let psp = fake
        .state
        .authorised
        .lock()
        .unwrap()
        .keys()
        .next()
        .cloned()
        .expect("a psp");
    assert_eq!(
        outcome,
        PaymentOutcome {
            gateway_ref: psp,
            status: ChargeStatus::Succeeded,
            captured: 1999,
            failure: None,
            action: None,
        }
    );
}

#[tokio::test]
async fn a_manual_capture_payment_is_authorized_and_its_capture_is_received_with_the_status_unchanged()
 {
    let fake = spawn_fake_adyen().await;
    let gateway = fake.gateway(TIMEOUT);
    let c = authorized_charge(&fake, &gateway).await;
    assert_eq!(
        fake.seen().payments[0]["additionalData"],
        json!({"manualCapture": "true"})
    );
    let psp = c.gateway_ref.clone().expect("psp");

    let outcome = gateway
        .capture(
            &c,
            Money::parse(1500, "eur").unwrap(),
            &c.gateway_idempotency_key("capture"),
        )
        .await
        .expect("capture");

    assert_eq!(
        outcome,
        PaymentOutcome {
            gateway_ref: psp.clone(),
            status: ChargeStatus::Authorized,
            captured: 0,
            failure: None,
            action: None,
        }
    );
    let seen = fake.seen();
    assert_eq!(
        seen.captures,
        vec![(
            psp,
            json!({"merchantAccount": MERCHANT, "amount": {"value": 1500, "currency": "EUR"}, "reference": c.id.as_str()})
        )]
    );
    assert!(seen.cancels.is_empty());
}

#[tokio::test]
async fn an_authorized_payment_cancel_is_received_with_the_status_unchanged() {
    let fake = spawn_fake_adyen().await;
    let gateway = fake.gateway(TIMEOUT);
    let c = authorized_charge(&fake, &gateway).await;
    let psp = c.gateway_ref.clone().expect("psp");

    let outcome = gateway
        .cancel(&c, &c.gateway_idempotency_key("cancel"))
        .await
        .expect("cancel");

    assert_eq!(
        (
            outcome.gateway_ref.as_str(),
            outcome.status,
            outcome.captured
        ),
        (psp.as_str(), ChargeStatus::Authorized, 0)
    );
    let seen = fake.seen();
    assert_eq!(
        seen.cancels,
        vec![(
            psp,
            json!({"merchantAccount": MERCHANT, "reference": c.id.as_str()})
        )]
    );
    assert!(seen.captures.is_empty());
}

#[tokio::test]
async fn a_refused_payment_fails_with_adyens_refusal_code() {
    let fake = spawn_fake_adyen().await;
    let c = charge("stored_refused", true);
    let outcome = fake
        .gateway(TIMEOUT)
        .create_payment(&create_request(&c))
        .await
        .expect("a decline is an outcome, not an error");
    assert_eq!(
        (outcome.status, outcome.captured),
        (ChargeStatus::Failed, 0)
    );
    assert_eq!(
        outcome.failure,
        Some(Failure {
            code: "2".into(),
            message: "Refused".into(),
            advice: Some(paybridge::domain::Advice::RetryLater)
        })
    );
    assert!(!outcome.gateway_ref.is_empty());
}

#[tokio::test]
async fn a_3ds_challenge_requires_action() {
    let fake = spawn_fake_adyen().await;
    let c = charge("stored_3ds", true);
    let outcome = fake
        .gateway(TIMEOUT)
        .create_payment(&create_request(&c))
        .await
        .expect("payment");
    assert_eq!(
        (outcome.status, outcome.captured, outcome.failure),
        (ChargeStatus::RequiresAction, 0, None)
    );
}

#[tokio::test]
async fn a_pending_payment_is_processing() {
    let fake = spawn_fake_adyen().await;
    let c = charge("stored_pending", true);
    let outcome = fake
        .gateway(TIMEOUT)
        .create_payment(&create_request(&c))
        .await
        .expect("payment");
    assert_eq!(
        (outcome.status, outcome.captured),
        (ChargeStatus::Processing, 0)
    );
}

#[tokio::test]
async fn the_same_idempotency_key_twice_makes_one_payment_and_the_same_answer() {
    let fake = spawn_fake_adyen().await;
    let gateway = fake.gateway(TIMEOUT);
    let c = charge("stored_ok", true);
    let first = gateway
        .create_payment(&create_request(&c))
        .await
        .expect("first");
    let retry = gateway
        .create_payment(&create_request(&c))
        .await
        .expect("retry");
    assert_eq!(first, retry);
    let seen = fake.seen();
    assert_eq!((seen.requests, seen.payments.len()), (2, 1));
}

#[tokio::test]
async fn a_server_error_is_an_unknown_outcome() {
    let fake = spawn_fake_adyen().await;
    let c = charge("stored_error", true);
    let result = fake
        .gateway(TIMEOUT)
        .create_payment(&create_request(&c))
        .await;
    assert_eq!(assert_unknown(result), None);
    assert_eq!(fake.seen().requests, 1);
}

#[tokio::test]
async fn throttling_is_an_unknown_outcome_that_honours_retry_after() {
    let fake = spawn_fake_adyen().await;
    let c = charge("stored_throttled", true);
    let result = fake
        .gateway(TIMEOUT)
        .create_payment(&create_request(&c))
        .await;
    assert_eq!(assert_unknown(result), Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn a_timeout_is_an_unknown_outcome_within_the_client_timeout() {
    let fake = spawn_fake_adyen().await;
    let c = charge("stored_slow", true);
    let started = Instant::now();
    let result = fake
        .gateway(Duration::from_millis(800))
        .create_payment(&create_request(&c))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(assert_unknown(result), None);
    assert!(
        elapsed < Duration::from_millis(2500),
        "the 800 ms client timeout should end the call well before the fake's 3 s answer, took {elapsed:?}"
    );
}

#[tokio::test]
async fn a_validation_error_is_refused_with_adyens_error_code() {
    let fake = spawn_fake_adyen().await;
    let c = charge("stored_card_that_does_not_exist", true);
    match fake
        .gateway(TIMEOUT)
        .create_payment(&create_request(&c))
        .await
    {
        Err(GatewayError::Refused {
            status,
            code,
            message,
        }) => assert_eq!(
            (status, code.as_str(), message.as_str()),
            (422, "803", "PaymentDetail not found")
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_api_key_is_refused_and_not_retried() {
    let fake = spawn_fake_adyen().await;
    let gateway = AdyenGateway::new(
        http_client(TIMEOUT),
        &fake.base_url,
        SecretString::new("not-the-key"),
        MERCHANT,
    );
    let c = charge("stored_ok", true);
    match gateway.create_payment(&create_request(&c)).await {
        Err(GatewayError::Refused { status, .. }) => assert_eq!(status, 401),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(fake.seen().payments.is_empty());
}

#[tokio::test]
async fn a_missing_customer_is_refused_without_any_request() {
    let fake = spawn_fake_adyen().await;
    let mut c = charge("stored_ok", true);
    c.customer = None;
    match fake
        .gateway(TIMEOUT)
        .create_payment(&create_request(&c))
        .await
    {
        Err(GatewayError::Refused { code, .. }) => assert_eq!(code, "customer_required"),
        other => panic!("expected a local refusal, got {other:?}"),
    }
    assert_eq!(fake.seen().requests, 0);
}

#[tokio::test]
async fn a_charge_without_a_psp_reference_cannot_be_captured_or_canceled() {
    let fake = spawn_fake_adyen().await;
    let gateway = fake.gateway(TIMEOUT);
    let c = charge("stored_ok", false);
    let capture = gateway
        .capture(&c, c.amount, "paybridge-test-capture")
        .await;
    let cancel = gateway.cancel(&c, "paybridge-test-cancel").await;
    for result in [capture, cancel] {
        match result {
            Err(GatewayError::Refused { code, .. }) => assert_eq!(code, "no_gateway_reference"),
            other => panic!("expected a local refusal, got {other:?}"),
        }
    }
    assert_eq!(fake.seen().requests, 0);
}

#[tokio::test]
async fn the_api_key_never_appears_in_debug_output() {
    let fake = spawn_fake_adyen().await;
    let gateway = fake.gateway(TIMEOUT);
    for rendered in [format!("{gateway:?}"), format!("{gateway:#?}")] {
        assert!(!rendered.contains(API_KEY), "{rendered}");
        assert!(
            rendered.contains(MERCHANT),
            "Debug should still say which account: {rendered}"
        );
    }
    let c = charge("stored_error", true);
    let error = gateway
        .create_payment(&create_request(&c))
        .await
        .unwrap_err();
    let rendered = format!("{error:?} {error}");
    assert!(!rendered.contains(API_KEY), "{rendered}");
}
