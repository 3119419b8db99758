//! Direct invocation: the charges and refunds functions also take a small, versioned command
//! envelope by `lambda:InvokeFunction`, for billing systems inside AWS (Step Functions, other
//! Lambdas, containers) that would rather not go through the HTTP API.
//!
//! A command becomes the HTTP request its route would have been — method, path, query,
//! `Idempotency-Key`, body — and goes through the same handler, so every rule (strict parsing,
//! card data refused, idempotency, the use cases) applies unchanged. The answer is the HTTP
//! answer's status, headers and JSON body. An invocation that is not an envelope is an API
//! Gateway event, handled exactly as before. docs/direct-invocation.md has the contract.

use std::collections::HashMap;
use std::future::Future;

use lambda_http::http::{Method, Request as HttpRequest};
use lambda_http::lambda_runtime::{self, LambdaEvent, Service};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Body, Request, RequestExt, Response, service_fn};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Code, Error};

/// The envelope versions this build reads.
pub const VERSION: u64 = 1;

/// Which function serves an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Charges,
    Refunds,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::Charges => "charges",
            Function::Refunds => "refunds",
        }
    }
}

/// Where an id or query value goes in the route's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    ChargeId,
    RefundId,
    DisputeId,
}

impl Param {
    fn field(self) -> &'static str {
        match self {
            Param::ChargeId => "charge_id",
            Param::RefundId => "refund_id",
            Param::DisputeId => "dispute_id",
        }
    }
}

/// One action: the function that serves it, the HTTP route it stands for (`{}` is `param`),
/// and whether it takes a body and an idempotency key (every POST does).
#[derive(Debug, Clone, Copy)]
pub struct Action {
    pub name: &'static str,
    pub function: Function,
    pub method: &'static str,
    pub path: &'static str,
    pub param: Option<Param>,
}

impl Action {
    pub fn is_post(&self) -> bool {
        self.method == "POST"
    }
}

const fn action(
    name: &'static str,
    function: Function,
    method: &'static str,
    path: &'static str,
    param: Option<Param>,
) -> Action {
    Action {
        name,
        function,
        method,
        path,
        param,
    }
}

/// Every action, each standing for one route of openapi.json.
pub const ACTIONS: [Action; 10] = [
    action("create_charge", Function::Charges, "POST", "/charges", None),
    action("list_charges", Function::Charges, "GET", "/charges", None),
    action(
        "get_charge",
        Function::Charges,
        "GET",
        "/charges/{}",
        Some(Param::ChargeId),
    ),
    action(
        "capture_charge",
        Function::Charges,
        "POST",
        "/charges/{}/capture",
        Some(Param::ChargeId),
    ),
    action(
        "cancel_charge",
        Function::Charges,
        "POST",
        "/charges/{}/cancel",
        Some(Param::ChargeId),
    ),
    action(
        "list_disputes",
        Function::Charges,
        "GET",
        "/charges/{}/disputes",
        Some(Param::ChargeId),
    ),
    action(
        "get_dispute",
        Function::Charges,
        "GET",
        "/disputes/{}",
        Some(Param::DisputeId),
    ),
    action(
        "create_refund",
        Function::Refunds,
        "POST",
        "/charges/{}/refunds",
        Some(Param::ChargeId),
    ),
    action(
        "list_refunds",
        Function::Refunds,
        "GET",
        "/charges/{}/refunds",
        Some(Param::ChargeId),
    ),
    action(
        "get_refund",
        Function::Refunds,
        "GET",
        "/refunds/{}",
        Some(Param::RefundId),
    ),
];

/// The envelope: `{"version":1,"action":"create_charge","idempotency_key":"…","body":{…}}`,
/// `{"version":1,"action":"get_charge","charge_id":"ch_…"}`,
/// `{"version":1,"action":"list_charges","invoice_id":"inv_123"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    version: u64,
    action: String,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    charge_id: Option<String>,
    #[serde(default)]
    refund_id: Option<String>,
    #[serde(default)]
    dispute_id: Option<String>,
    #[serde(default)]
    invoice_id: Option<String>,
    #[serde(default)]
    body: Option<Value>,
}

/// Whether an invocation's payload is a command envelope rather than an API Gateway event:
/// an object with an `action` and without API Gateway's `requestContext`.
pub fn is_command(payload: &Value) -> bool {
    payload.get("action").is_some() && payload.get("requestContext").is_none()
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(Code::InvalidRequest, message)
}

/// Path and query text: everything but RFC 3986's unreserved characters percent-encoded, so a
/// value can never add a segment or a parameter.
fn encoded(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The HTTP request `payload` stands for, if it is an envelope for an action `function` serves.
pub fn to_request(function: Function, payload: Value) -> Result<Request, Error> {
    let envelope: Envelope = serde_json::from_value(payload)
        .map_err(|e| invalid(format!("not a paybridge command envelope: {e}")))?;
    if envelope.version != VERSION {
        return Err(invalid(format!(
            "envelope version {} is not one this build reads (it reads {VERSION})",
            envelope.version
        )));
    }
    let Some(action) = ACTIONS.iter().find(|a| a.name == envelope.action) else {
        let known: Vec<_> = ACTIONS.iter().map(|a| a.name).collect();
        return Err(Error::new(
            Code::RouteNotFound,
            format!(
                "no action `{}`; the actions are {}",
                envelope.action,
                known.join(", ")
            ),
        ));
    };
    if action.function != function {
        return Err(Error::new(
            Code::RouteNotFound,
            format!(
                "`{}` is served by the {} function, not by {}",
                action.name,
                action.function.name(),
                function.name()
            ),
        ));
    }
    let given = [
        (Param::ChargeId, &envelope.charge_id),
        (Param::RefundId, &envelope.refund_id),
        (Param::DisputeId, &envelope.dispute_id),
    ];
    for (param, value) in given {
        if value.is_some() && action.param != Some(param) {
            return Err(invalid(format!(
                "`{}` takes no `{}`",
                action.name,
                param.field()
            )));
        }
    }
    let path = match action.param {
        Some(param) => {
            let id = given
                .iter()
                .find(|(p, _)| *p == param)
                .and_then(|(_, v)| v.as_deref())
                .ok_or_else(|| invalid(format!("`{}` needs `{}`", action.name, param.field())))?;
            action.path.replace("{}", &encoded(id))
        }
        None => action.path.to_owned(),
    };
    if envelope.invoice_id.is_some() && action.name != "list_charges" {
        return Err(invalid(format!("`{}` takes no `invoice_id`", action.name)));
    }
    if !action.is_post() && (envelope.body.is_some() || envelope.idempotency_key.is_some()) {
        return Err(invalid(format!(
            "`{}` reads: it takes no `body` or `idempotency_key`",
            action.name
        )));
    }
    let mut query = HashMap::new();
    let uri = match &envelope.invoice_id {
        Some(invoice) => {
            query.insert("invoice_id".to_owned(), invoice.clone());
            format!("{path}?invoice_id={}", encoded(invoice))
        }
        None => path,
    };
    let method = if action.is_post() {
        Method::POST
    } else {
        Method::GET
    };
    let mut builder = HttpRequest::builder().method(method).uri(uri);
    if let Some(key) = &envelope.idempotency_key {
        builder = builder.header("idempotency-key", key.as_str());
    }
    let body = match envelope.body {
        Some(body) => {
            builder = builder.header("content-type", "application/json");
            Body::Text(body.to_string())
        }
        // A POST without a body is an empty JSON object (cancel takes none).
        None if action.is_post() => Body::Text("{}".to_owned()),
        None => Body::Empty,
    };
    let request = builder
        .body(body)
        .map_err(|e| invalid(format!("the command does not make a request: {e}")))?;
    Ok(request.with_query_string_parameters(query))
}

/// The answer to a command: the HTTP answer's status, the headers billing acts on, and its body
/// as JSON.
pub fn to_reply(response: Response<Body>) -> Value {
    let status = response.status().as_u16();
    let headers: serde_json::Map<String, Value> = ["idempotent-replayed", "retry-after"]
        .iter()
        .filter_map(|name| {
            let value = response.headers().get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), Value::String(value.to_owned())))
        })
        .collect();
    let body: &[u8] = response.body().as_ref();
    let body = serde_json::from_slice(body).unwrap_or(Value::Null);
    json!({ "version": VERSION, "status": status, "headers": headers, "body": body })
}

/// Runs `function`: each invocation is a command envelope (answered by [`to_reply`]) or an API
/// Gateway event (answered as `lambda_http` answers it), both through `handler`.
pub async fn run<H, Fut>(function: Function, handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Request) -> Fut + Clone + Send + Sync,
    Fut: Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send,
{
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let handler = handler.clone();
        async move { answer(function, handler, event).await }
    }))
    .await
}

async fn answer<H, Fut>(
    function: Function,
    handler: H,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error>
where
    H: Fn(Request) -> Fut + Clone + Send + Sync,
    Fut: Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send,
{
    let LambdaEvent { payload, context } = event;
    if is_command(&payload) {
        let response = match to_request(function, payload) {
            Ok(request) => {
                let request = request.with_lambda_context(context);
                let Ok(response) = handler(request).await;
                response
            }
            Err(err) => crate::http::error_response(&err, "(command)"),
        };
        return Ok(to_reply(response));
    }
    http_answer(handler, LambdaEvent::new(payload, context)).await
}

/// Answers an API Gateway event through `handler`: exactly what `lambda_http::run` does with it.
/// For functions that take other invocations besides (commands here, EventBridge events in
/// webhook-intake) and so run `lambda_runtime` with a `Value` payload.
pub async fn http_answer<H, Fut>(
    handler: H,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error>
where
    H: Fn(Request) -> Fut + Clone + Send + Sync,
    Fut: Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send,
{
    let LambdaEvent { payload, context } = event;
    let request: LambdaRequest = serde_json::from_value(payload)?;
    let mut adapter = Adapter::from(service_fn(handler));
    let response = adapter.call(LambdaEvent::new(request, context)).await?;
    Ok(serde_json::to_value(response)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(function: Function, payload: Value) -> Result<Request, Error> {
        to_request(function, payload)
    }

    #[test]
    fn each_action_becomes_its_route() {
        let r = request(
            Function::Charges,
            json!({"version": 1, "action": "create_charge", "idempotency_key": "k-1", "body": {"amount": 1}}),
        )
        .unwrap();
        assert_eq!((r.method().as_str(), r.uri().path()), ("POST", "/charges"));
        assert_eq!(r.headers()["idempotency-key"], "k-1");
        assert_eq!(r.body().as_ref(), br#"{"amount":1}"#);

        let r = request(
            Function::Refunds,
            json!({"version": 1, "action": "get_refund", "refund_id": "rf_1"}),
        )
        .unwrap();
        assert_eq!(
            (r.method().as_str(), r.uri().path()),
            ("GET", "/refunds/rf_1")
        );

        let r = request(
            Function::Charges,
            json!({"version": 1, "action": "list_charges", "invoice_id": "inv 1/2"}),
        )
        .unwrap();
        assert_eq!(r.uri().query(), Some("invoice_id=inv%201%2F2"));
        assert_eq!(
            r.query_string_parameters().first("invoice_id"),
            Some("inv 1/2")
        );

        let r = request(
            Function::Charges,
            json!({"version": 1, "action": "cancel_charge", "charge_id": "ch_1", "idempotency_key": "k"}),
        )
        .unwrap();
        assert_eq!(
            (r.uri().path(), r.body().as_ref()),
            ("/charges/ch_1/cancel", &b"{}"[..])
        );
    }

    #[test]
    fn an_id_can_never_reach_another_route() {
        let r = request(
            Function::Charges,
            json!({"version": 1, "action": "get_charge", "charge_id": "ch_1/capture?x=1"}),
        )
        .unwrap();
        assert_eq!(r.uri().path(), "/charges/ch_1%2Fcapture%3Fx%3D1");
        assert_eq!(r.uri().query(), None);
    }

    #[test]
    fn malformed_envelopes_and_unknown_actions_get_the_same_json_errors_as_http() {
        for (function, payload, status, code) in [
            (
                Function::Charges,
                json!({"version": 1, "action": "refund_everything"}),
                404,
                "route_not_found",
            ),
            (
                Function::Charges,
                json!({"version": 1, "action": "get_refund", "refund_id": "rf_1"}),
                404,
                "route_not_found",
            ),
            (
                Function::Charges,
                json!({"version": 2, "action": "get_charge", "charge_id": "ch_1"}),
                400,
                "invalid_request",
            ),
            (
                Function::Charges,
                json!({"version": 1, "action": "get_charge"}),
                400,
                "invalid_request",
            ),
            (
                Function::Charges,
                json!({"version": 1, "action": "get_charge", "charge_id": "ch_1", "body": {}}),
                400,
                "invalid_request",
            ),
            (
                Function::Charges,
                json!({"version": 1, "action": "get_charge", "refund_id": "rf_1"}),
                400,
                "invalid_request",
            ),
            (
                Function::Charges,
                json!({"version": 1, "action": "get_charge", "charge_id": "ch_1", "extra": 1}),
                400,
                "invalid_request",
            ),
            (
                Function::Charges,
                json!({"action": "get_charge"}),
                400,
                "invalid_request",
            ),
            (
                Function::Refunds,
                json!({"version": "1", "action": "list_refunds"}),
                400,
                "invalid_request",
            ),
        ] {
            let err = request(function, payload.clone())
                .err()
                .unwrap_or_else(|| panic!("{payload}"));
            let reply = to_reply(crate::http::error_response(&err, "(command)"));
            assert_eq!(reply["status"], status, "{payload}");
            assert_eq!(reply["body"]["error"]["code"], code, "{payload}");
        }
    }

    #[test]
    fn only_an_object_with_an_action_and_no_request_context_is_a_command() {
        assert!(is_command(&json!({"version": 1, "action": "get_charge"})));
        assert!(!is_command(
            &json!({"version": "2.0", "requestContext": {}, "action": "x"})
        ));
        assert!(!is_command(
            &json!({"version": "2.0", "routeKey": "GET /charges"})
        ));
    }
}

#[cfg(test)]
mod http_events {
    use super::*;

    fn event(raw_path: &str, path: &str) -> Value {
        json!({
            "version": "2.0", "routeKey": "POST /charges/{id}/cancel", "rawPath": raw_path,
            "rawQueryString": "", "headers": {"idempotency-key": "k"},
            "requestContext": {"accountId": "1", "apiId": "a", "domainName": "localhost",
                "domainPrefix": "localhost", "requestId": "r", "routeKey": "POST /charges/{id}/cancel",
                "stage": "$default", "time": "02/Dec/2026:15:14:00 +0000", "timeEpoch": 0,
                "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"}},
            "pathParameters": {"id": "¦"}, "isBase64Encoded": false, "body": ""
        })
    }

    #[tokio::test]
    async fn an_api_gateway_event_with_any_path_is_answered() {
        for (raw, path) in [
            ("/charges/%C2%A6/cancel", "/charges/¦/cancel"),
            ("/charges/ch_1/cancel", "/charges/ch_1/cancel"),
        ] {
            let handler = |req: Request| async move {
                Ok::<_, std::convert::Infallible>(
                    Response::builder()
                        .status(404)
                        .body(Body::from(req.uri().path().to_owned()))
                        .unwrap(),
                )
            };
            let out = answer(
                Function::Charges,
                handler,
                LambdaEvent::new(event(raw, path), Default::default()),
            )
            .await;
            let out = out.unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(out["statusCode"], 404, "{raw}: {out}");
        }
    }
}
