//! A proxy in front of localstripe that behaves like Stripe where localstripe does not, and that
//! injects faults.
//!
//! - **Idempotency** (localstripe ignores `Idempotency-Key`): the first response to a key is
//!   remembered and replayed for every later request with that key, as Stripe documents; a second
//!   request while the first is still in flight gets Stripe's 409 `idempotency_key_in_use`.
//! - **Lost responses**: [`StripeProxy::lose_next_create_responses`] makes the proxy forward the
//!   next PaymentIntent creations to localstripe — so the payment happens — and then hold the
//!   answer past any client timeout, as a network failure after the charge would;
//!   [`StripeProxy::lose_next_capture_responses`] does the same to captures.
//! - **Refusals**: [`StripeProxy::refuse_next_creates`] answers the next creations with a Stripe
//!   error of the given status (401 `authentication_error`, as after a rolled key; 403
//!   `permission_error`) before anything reaches localstripe, as Stripe refuses an unauthenticated
//!   request before it looks at its `Idempotency-Key`.
//! - **Races**: [`StripeProxy::before_next_cancel`] makes the proxy send requests of the test's
//!   own to localstripe just before it forwards the next PaymentIntent cancel — what a customer
//!   completing 3-D Secure in the browser a moment before paybridge's cancel arrives does.
//! - **Counting**: how many POSTs per path (PaymentIntents, refunds) reached localstripe.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::Mutex;

/// A form POST the proxy makes of its own: (path, form fields).
pub type FormPost = (String, Vec<(String, String)>);

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    remembered: Mutex<HashMap<String, (u16, Bytes)>>,
    in_flight: Mutex<HashSet<String>>,
    lose_next: AtomicU32,
    lose_next_captures: AtomicU32,
    /// (how many, with which status) creations to refuse.
    refuse_next: std::sync::Mutex<(u32, u16)>,
    forwarded: std::sync::Mutex<HashMap<String, u32>>,
    /// When set, `GET /v1/events` lists only events about these object ids — playing Stripe's
    /// `delivery_success=false` (localstripe does not track deliveries).
    undelivered_objects: std::sync::Mutex<Option<HashSet<String>>>,
    /// Form POSTs (path, fields) to send to localstripe before the next cancel is forwarded.
    before_cancel: std::sync::Mutex<Vec<FormPost>>,
}

/// A running proxy; it stops with the test's runtime.
pub struct StripeProxy {
    pub url: String,
    state: Arc<ProxyState>,
}

impl StripeProxy {
    /// Starts a proxy to `upstream` (localstripe's base URL) on a free loopback port.
    pub async fn start(upstream: &str) -> StripeProxy {
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            remembered: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashSet::new()),
            lose_next: AtomicU32::new(0),
            lose_next_captures: AtomicU32::new(0),
            refuse_next: std::sync::Mutex::new((0, 401)),
            forwarded: std::sync::Mutex::new(HashMap::new()),
            undelivered_objects: std::sync::Mutex::new(None),
            before_cancel: std::sync::Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(proxy)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StripeProxy { url, state }
    }

    /// The next `n` creations (PaymentIntents or refunds) reach localstripe, but their answers
    /// never arrive in time.
    pub fn lose_next_create_responses(&self, n: u32) {
        self.state.lose_next.store(n, Ordering::SeqCst);
    }

    /// The next `n` captures (`POST /v1/payment_intents/{id}/capture`) reach localstripe — so
    /// the money is taken — but their answers never arrive in time.
    pub fn lose_next_capture_responses(&self, n: u32) {
        self.state.lose_next_captures.store(n, Ordering::SeqCst);
    }

    /// The next `n` creations (PaymentIntents or refunds) are refused with `status` (401 or 403)
    /// and never reach localstripe.
    pub fn refuse_next_creates(&self, n: u32, status: u16) {
        if let Ok(mut r) = self.state.refuse_next.lock() {
            *r = (n, status);
        }
    }

    /// From now on, the event list shows only events about `objects`, as if Stripe had failed to
    /// deliver exactly those.
    pub fn undelivered_events_about(&self, objects: &[&str]) {
        if let Ok(mut set) = self.state.undelivered_objects.lock() {
            *set = Some(objects.iter().map(|o| o.to_string()).collect());
        }
    }

    /// Just before the next `POST /v1/payment_intents/{id}/cancel` is forwarded, the proxy POSTs
    /// each of `requests` (path, form fields) to localstripe, with the cancel's own credentials,
    /// in order.
    pub fn before_next_cancel(&self, requests: Vec<FormPost>) {
        if let Ok(mut r) = self.state.before_cancel.lock() {
            *r = requests;
        }
    }

    /// PaymentIntent creations that reached localstripe.
    pub fn creates_forwarded(&self) -> u32 {
        self.posts_forwarded("/v1/payment_intents")
    }

    /// POSTs to `path` that reached localstripe.
    pub fn posts_forwarded(&self, path: &str) -> u32 {
        self.state
            .forwarded
            .lock()
            .map(|m| m.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

async fn proxy(
    State(s): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let creating =
        method == Method::POST && matches!(uri.path(), "/v1/payment_intents" | "/v1/refunds");
    let refusal = s.refuse_next.lock().ok().and_then(|mut r| {
        (creating && r.0 > 0).then(|| {
            r.0 -= 1;
            r.1
        })
    });
    if let Some(status) = refusal {
        let body = if status == 403 {
            r#"{"error":{"type":"invalid_request_error","code":"secret_key_required","message":"The provided key does not have the required permissions for this endpoint."}}"#
        } else {
            r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****rolled"}}"#
        };
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED),
            [("content-type", "application/json")],
            body,
        )
            .into_response();
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let (true, Some(k)) = (method == Method::POST, &key) {
        if let Some((status, body)) = s.remembered.lock().await.get(k).cloned() {
            return (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                [
                    ("content-type", "application/json"),
                    ("idempotent-replayed", "true"),
                ],
                body,
            )
                .into_response();
        }
        if !s.in_flight.lock().await.insert(k.clone()) {
            let err = r#"{"error":{"type":"invalid_request_error","code":"idempotency_key_in_use","message":"There is currently another in-progress request using this Idempotent Key."}}"#;
            return (
                StatusCode::CONFLICT,
                [("content-type", "application/json")],
                err,
            )
                .into_response();
        }
    }
    let is_cancel = method == Method::POST && uri.path().ends_with("/cancel");
    let first = if is_cancel {
        s.before_cancel
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    for (path, form) in first {
        let mut before = s.http.post(format!("{}{path}", s.upstream)).form(&form);
        for name in ["authorization", "stripe-version"] {
            if let Some(v) = headers.get(name) {
                before = before.header(name, v.as_bytes());
            }
        }
        let _ = before.send().await;
    }
    let is_create =
        method == Method::POST && matches!(uri.path(), "/v1/payment_intents" | "/v1/refunds");
    let mut request = s.http.request(
        method.clone(),
        format!(
            "{}{}",
            s.upstream,
            uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
        ),
    );
    for name in ["authorization", "content-type", "stripe-version"] {
        if let Some(v) = headers.get(name) {
            request = request.header(name, v.as_bytes());
        }
    }
    let result = request.body(body).send().await;
    let (status, body) = match result {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.bytes().await.unwrap_or_default())
        }
        Err(_) => (
            502,
            Bytes::from_static(
                br#"{"error":{"type":"api_error","message":"upstream unreachable"}}"#,
            ),
        ),
    };
    if method == Method::POST
        && let Ok(mut m) = s.forwarded.lock()
    {
        *m.entry(uri.path().to_owned()).or_default() += 1;
    }
    if let (true, Some(k)) = (method == Method::POST, &key) {
        // Stripe remembers every answer except its own 5xx failures.
        if status < 500 {
            s.remembered
                .lock()
                .await
                .insert(k.clone(), (status, body.clone()));
        }
        s.in_flight.lock().await.remove(k);
    }
    let body = if method == Method::GET && uri.path() == "/v1/events" {
        filter_events(&s, body)
    } else {
        body
    };
    let is_capture = method == Method::POST && uri.path().ends_with("/capture");
    let take = |counter: &AtomicU32| {
        (counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))).is_ok()
    };
    if (is_create && take(&s.lose_next)) || (is_capture && take(&s.lose_next_captures)) {
        // The payment happened; the answer is "lost" past every client timeout.
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}

/// Keeps only the listed events about the objects registered with `undelivered_events_about`.
fn filter_events(s: &ProxyState, body: Bytes) -> Bytes {
    let Some(objects) = s.undelivered_objects.lock().ok().and_then(|o| o.clone()) else {
        return body;
    };
    let Ok(mut list) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return body;
    };
    if let Some(data) = list.get_mut("data").and_then(|d| d.as_array_mut()) {
        data.retain(|e| {
            e.pointer("/data/object/id")
                .and_then(|v| v.as_str())
                .is_some_and(|id| objects.contains(id))
        });
    }
    list["has_more"] = serde_json::Value::Bool(false);
    Bytes::from(list.to_string())
}
