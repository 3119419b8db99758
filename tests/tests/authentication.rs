//! Customers who must authenticate (3-D Secure), against the local stack: charges made through
//! the charges handler and the real Stripe adapter at localstripe (behind the test proxy, which
//! plays Stripe's idempotency and the races), state in moto, Stripe's own events from
//! localstripe's event list applied by the real use case, and the reconciler run at injected
//! times past the action expiry. The Adyen flows go through the whole local stack: the local
//! gateway, the functions, the local Adyen and its signed notifications.
//!
//! The Stripe tests use a table of their own: a reconciler run works on everything in flight in
//! its table, and another test's charge waiting for its customer must not be expired by ours.

use std::time::Duration;

use charges::handler::Charges;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::adyen::AdyenGateway;
use paybridge::adapters::gateways::stripe::StripeGateway;
use paybridge::adapters::gateways::{GatewayRouter, http_client};
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::event::EventRecord;
use paybridge::domain::{ChargeId, ChargeStatus};
use paybridge::ports::{ChargeStore, EventStore, NotificationStore, ReconcileStore};
use paybridge::services::apply_event::apply_event;
use paybridge::services::charges::expire::{Expiry, expire_requires_action};
use paybridge::services::reconcile::{ReconcileSettings, Summary, reconcile};
use paybridge::webhooks::stripe;
use paybridge_tests::openapi::{assert_shape, document, schema};
use paybridge_tests::stripe_proxy::{FormPost, StripeProxy};
use paybridge_tests::{Reply, Stack, eventually, get_event, post_event, stack, unique, unix_now};
use serde_json::{Value, json};

const HOUR: i64 = 3600;
/// localstripe sends its events about a second after the change.
const EVENTS: Duration = Duration::from_secs(20);

struct Harness {
    stack: Stack,
    store: Table,
    gateways: GatewayRouter,
    charges: Charges,
    queue: SqsWorkQueue,
    proxy: StripeProxy,
    http: reqwest::Client,
}

fn router(stack: &Stack, base: &str) -> GatewayRouter {
    GatewayRouter {
        stripe: Some(StripeGateway::new(
            http_client(Duration::from_secs(5)),
            base,
            stack.secrets.stripe.as_ref().unwrap().api_key.clone(),
        )),
        adyen: None,
    }
}

async fn harness() -> Harness {
    let stack = stack().await;
    let proxy = StripeProxy::start(&stack.config.stripe_api_base).await;
    // Nothing counts as undelivered (localstripe lists every event): the runs here are about
    // the charges in flight.
    proxy.undelivered_events_about(&[]);
    let table = stack.new_table().await;
    let queue_url = stack.new_queue().await;
    Harness {
        charges: Charges {
            store: Table::from_conf(&stack.aws, &table),
            gateways: router(&stack, &proxy.url),
            queue: SqsWorkQueue::from_conf(&stack.aws, &queue_url),
            idempotency_ttl: Duration::from_secs(3600),
        },
        store: Table::from_conf(&stack.aws, &table),
        gateways: router(&stack, &proxy.url),
        queue: SqsWorkQueue::from_conf(&stack.aws, &queue_url),
        http: reqwest::Client::new(),
        proxy,
        stack,
    }
}

/// What billing's page does with `customer_action` in the customer's browser.
struct Action {
    payment_intent: String,
    client_secret: String,
    payment_method: String,
}

impl Harness {
    /// `POST /charges` off session with `payment_method`; the answer.
    async fn create(&self, payment_method: &str) -> Reply {
        let body = json!({"invoice_id": unique("inv_"), "amount": 1999, "currency": "eur",
            "gateway": "stripe", "payment_method": payment_method, "capture": true});
        let request = post_event("POST /charges", "/charges", Some(&unique("k-")), &body);
        Reply::from_response(
            charges::handler::handle(&self.charges, request)
                .await
                .unwrap(),
        )
    }

    /// A charge whose card's issuer wants the customer: `requires_action`.
    async fn waiting_charge(&self) -> (ChargeId, Action) {
        let reply = self.create("pm_card_authenticationRequired").await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        let view = reply.json();
        assert_eq!(view["status"], "requires_action", "{view:#}");
        let a = &view["customer_action"];
        let action = Action {
            payment_intent: a["payment_intent"]
                .as_str()
                .expect("a PaymentIntent")
                .into(),
            client_secret: a["client_secret"].as_str().expect("a client secret").into(),
            payment_method: a["payment_method"]
                .as_str()
                .expect("a payment method")
                .into(),
        };
        (
            ChargeId::parse(view["id"].as_str().unwrap()).unwrap(),
            action,
        )
    }

    async fn view(&self, id: &ChargeId) -> Value {
        let path = format!("/charges/{id}");
        let request = get_event("GET /charges/{id}", &path, &[]);
        let reply = Reply::from_response(
            charges::handler::handle(&self.charges, request)
                .await
                .unwrap(),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    async fn status(&self, id: &ChargeId) -> ChargeStatus {
        self.store.get_charge(id).await.unwrap().unwrap().status
    }

    /// A call straight to localstripe, as the customer's browser or Stripe's dashboard would.
    async fn stripe(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let key = self
            .stack
            .secrets
            .stripe
            .as_ref()
            .unwrap()
            .api_key
            .expose()
            .to_owned();
        let response = self
            .http
            .request(
                method,
                format!("{}{path}", self.stack.config.stripe_api_base),
            )
            .basic_auth(key, Some(""))
            .form(form)
            .send()
            .await
            .expect("localstripe answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON"))
    }

    async fn payment_intent(&self, pi: &str) -> Value {
        let (status, body) = self
            .stripe(
                reqwest::Method::GET,
                &format!("/v1/payment_intents/{pi}"),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The requests of Stripe.js `confirmCardPayment(client_secret, {payment_method})` and of the
    /// customer passing (or failing) 3DS (localstripe's `_authenticate`).
    fn authentication(a: &Action, success: bool) -> Vec<FormPost> {
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        vec![
            (
                format!("/v1/payment_intents/{}/confirm", a.payment_intent),
                vec![
                    pair("payment_method", &a.payment_method),
                    pair("client_secret", &a.client_secret),
                ],
            ),
            (
                format!("/v1/payment_intents/{}/_authenticate", a.payment_intent),
                vec![
                    pair("client_secret", &a.client_secret),
                    pair("success", if success { "true" } else { "false" }),
                ],
            ),
        ]
    }

    /// The customer comes back on session and authenticates (or fails to).
    async fn customer_authenticates(&self, a: &Action, success: bool) -> Value {
        let mut last = Value::Null;
        for (path, form) in Self::authentication(a, success) {
            let form: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let (status, body) = self.stripe(reqwest::Method::POST, &path, &form).await;
            assert_eq!(status, 200, "{path}: {body}");
            last = body;
        }
        last
    }

    /// Stripe's events about `pi`, oldest first, once one of type `last` is among them.
    async fn events_about(&self, pi: &str, last: &str) -> Vec<Value> {
        eventually(EVENTS, &format!("{last} about {pi}"), || async {
            let (_, page) = self
                .stripe(reqwest::Method::GET, "/v1/events?limit=100", &[])
                .await;
            let mut about: Vec<Value> = (page["data"].as_array().cloned().unwrap_or_default())
                .into_iter()
                .filter(|e| e.pointer("/data/object/id").and_then(Value::as_str) == Some(pi))
                .collect();
            about.reverse();
            about.iter().any(|e| e["type"] == last).then_some(about)
        })
        .await
    }

    /// Records and applies a Stripe event as intake and the worker would.
    async fn deliver(&self, event: &Value) {
        let parsed = stripe::parse(event.to_string().as_bytes()).expect("a Stripe event");
        let record = EventRecord::new(parsed.clone(), unix_now(), 0, 3600);
        self.store.insert_event(&record).await.unwrap();
        apply_event(
            &self.store,
            &self.queue,
            parsed.gateway,
            &parsed.event_id,
            false,
            unix_now(),
        )
        .await
        .unwrap();
    }

    /// Every event about `pi` once, then again under new event ids (a redelivery after the
    /// record expired, a second endpoint), newest first.
    async fn deliver_all(&self, pi: &str, last: &str) {
        let events = self.events_about(pi, last).await;
        for e in &events {
            self.deliver(e).await;
        }
        for e in events.iter().rev() {
            let mut again = e.clone();
            again["id"] = json!(unique("evt_"));
            self.deliver(&again).await;
        }
    }

    async fn reconcile_at(&self, at: i64) -> Summary {
        let settings = ReconcileSettings {
            after: Duration::ZERO,
            events_window: Duration::from_secs(3600),
            ..ReconcileSettings::default()
        };
        reconcile(&self.store, &self.gateways, &self.queue, &settings, at)
            .await
            .unwrap()
    }

    /// The types of the charge's notifications, oldest first, and each one's `data`.
    async fn notifications(&self, id: &ChargeId) -> Vec<(String, Value)> {
        (self
            .store
            .notifications_for_charge(id)
            .await
            .unwrap()
            .into_iter())
        .map(|n| {
            let body: Value = serde_json::from_str(&n.body).unwrap();
            (n.event_type, body["data"].clone())
        })
        .collect()
    }

    async fn types(&self, id: &ChargeId) -> Vec<String> {
        self.notifications(id)
            .await
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    fn cancels_sent(&self, a: &Action) -> u32 {
        self.proxy
            .posts_forwarded(&format!("/v1/payment_intents/{}/cancel", a.payment_intent))
    }

    async fn in_flight(&self, id: &ChargeId) -> bool {
        let before = unix_now() + 30 * 24 * HOUR;
        let mut after: Option<String> = None;
        loop {
            let page = (self.store)
                .open_charges(before, after.as_deref(), 100)
                .await
                .unwrap();
            if page.items.iter().any(|c| &c.id == id) {
                return true;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return false,
            }
        }
    }
}

#[tokio::test]
async fn an_off_session_charge_that_needs_authentication_waits_with_what_billing_needs_to_bring_the_customer_back()
 {
    let h = harness().await;
    let (id, action) = h.waiting_charge().await;

    let view = h.view(&id).await;
    assert_eq!(
        (&view["status"], &view["failure"], &view["captured"]),
        (&json!("requires_action"), &Value::Null, &json!(0)),
        "{view:#}"
    );
    let ca = &view["customer_action"];
    assert_eq!(ca["type"], "stripe_payment_intent");
    assert_eq!(ca["reason"], "authentication_required");
    assert_eq!(view["gateway_ref"], json!(action.payment_intent));
    assert!(ca["required_at"].is_string());
    assert_shape(
        document(),
        schema(document(), "Charge"),
        &view,
        "GET /charges/{id}",
    );

    // What billing got is Stripe's own: the PaymentIntent's client secret and the payment
    // method Stripe declined off session.
    let pi = h.payment_intent(&action.payment_intent).await;
    assert_eq!(
        (&pi["status"], &pi["last_payment_error"]["code"]),
        (
            &json!("requires_payment_method"),
            &json!("authentication_required")
        )
    );
    assert_eq!(pi["client_secret"], json!(action.client_secret));
    assert_eq!(
        pi["last_payment_error"]["payment_method"]["id"],
        json!(action.payment_method)
    );
    assert_eq!(
        h.proxy.creates_forwarded(),
        1,
        "one PaymentIntent at Stripe"
    );

    // Billing was told once, with the action in the notification.
    let notifications = h.notifications(&id).await;
    assert_eq!(notifications.len(), 1, "{notifications:#?}");
    assert_eq!(notifications[0].0, "charge.requires_action");
    assert_eq!(
        notifications[0].1["customer_action"],
        view["customer_action"]
    );

    // In the work-in-flight index, for the reconciler to expire.
    assert!(h.in_flight(&id).await, "listed among the charges in flight");

    // Stripe's own events about it (payment_intent.payment_failed with authentication_required)
    // change nothing and tell billing nothing more.
    h.deliver_all(&action.payment_intent, "payment_intent.payment_failed")
        .await;
    assert_eq!(h.status(&id).await, ChargeStatus::RequiresAction);
    assert_eq!(h.types(&id).await, ["charge.requires_action"]);
}

#[tokio::test]
async fn the_customer_authenticating_on_session_makes_the_charge_succeeded_and_billing_hears_each_change_once()
 {
    let h = harness().await;
    let (id, action) = h.waiting_charge().await;

    let pi = h.customer_authenticates(&action, true).await;
    assert_eq!(pi["status"], "succeeded", "{pi:#}");
    h.deliver_all(&action.payment_intent, "payment_intent.succeeded")
        .await;

    let view = h.view(&id).await;
    assert_eq!(
        (&view["status"], &view["captured"], &view["customer_action"]),
        (&json!("succeeded"), &json!(1999), &Value::Null),
        "{view:#}"
    );
    assert_eq!(
        h.types(&id).await,
        ["charge.requires_action", "charge.succeeded"]
    );
    assert!(!h.in_flight(&id).await, "no longer in flight");
    // Nothing is left for the reconciler, even past the expiry.
    h.reconcile_at(unix_now() + 48 * HOUR).await;
    assert_eq!(h.cancels_sent(&action), 0);
    assert_eq!(h.types(&id).await.len(), 2);
}

#[tokio::test]
async fn a_customer_who_fails_authentication_leaves_a_failed_charge_with_stripes_code() {
    let h = harness().await;
    let (id, action) = h.waiting_charge().await;
    let pi = h.customer_authenticates(&action, false).await;
    assert_eq!(pi["status"], "requires_payment_method", "{pi:#}");
    h.deliver_all(&action.payment_intent, "payment_intent.requires_action")
        .await;
    // The failure's event comes after the on-session requires_action.
    let events = h
        .events_about(&action.payment_intent, "payment_intent.payment_failed")
        .await;
    let failed = events
        .iter()
        .rfind(|e| {
            e.pointer("/data/object/last_payment_error/code")
                == Some(&json!("payment_intent_authentication_failure"))
        })
        .expect("the failed authentication's event")
        .clone();
    h.deliver(&failed).await;
    let view = h.view(&id).await;
    assert_eq!(
        (
            &view["status"],
            &view["failure"]["code"],
            &view["customer_action"]
        ),
        (
            &json!("failed"),
            &json!("payment_intent_authentication_failure"),
            &Value::Null
        ),
        "{view:#}"
    );
    assert_eq!(
        h.types(&id).await,
        ["charge.requires_action", "charge.failed"]
    );
}

#[tokio::test]
async fn a_charge_whose_customer_never_authenticates_is_canceled_at_stripe_after_the_expiry() {
    let h = harness().await;
    let (id, action) = h.waiting_charge().await;
    let now = unix_now();

    // Three hours on: the customer still has time.
    let summary = h.reconcile_at(now + 3 * HOUR).await;
    assert_eq!((summary.fixed, summary.unknown), (0, 0), "{summary:?}");
    assert_eq!(h.status(&id).await, ChargeStatus::RequiresAction);
    assert_eq!(h.cancels_sent(&action), 0, "nothing asked of Stripe");

    // Past the default 24 hours: canceled at Stripe, and billing told.
    let summary = h.reconcile_at(now + 24 * HOUR + 60).await;
    assert_eq!(
        (summary.checked, summary.fixed, summary.unknown),
        (1, 1, 0),
        "{summary:?}"
    );
    let pi = h.payment_intent(&action.payment_intent).await;
    assert_eq!(pi["status"], "canceled", "{pi:#}");
    assert_eq!(h.cancels_sent(&action), 1);
    let view = h.view(&id).await;
    assert_eq!(
        (&view["status"], &view["customer_action"], &view["captured"]),
        (&json!("canceled"), &Value::Null, &json!(0))
    );
    assert_eq!(
        h.types(&id).await,
        ["charge.requires_action", "charge.canceled"]
    );
    assert!(!h.in_flight(&id).await);

    // The next run finds nothing; Stripe's payment_intent.canceled changes nothing.
    h.reconcile_at(now + 25 * HOUR).await;
    h.deliver_all(&action.payment_intent, "payment_intent.canceled")
        .await;
    assert_eq!(h.cancels_sent(&action), 1);
    assert_eq!(h.types(&id).await.len(), 2);

    // The customer comes back too late: Stripe refuses, nothing is taken.
    let (status, refused) = h
        .stripe(
            reqwest::Method::POST,
            &format!("/v1/payment_intents/{}/confirm", action.payment_intent),
            &[
                ("payment_method", &action.payment_method),
                ("client_secret", &action.client_secret),
            ],
        )
        .await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (400, &json!("payment_intent_unexpected_state")),
        "{refused}"
    );
    assert_eq!(h.status(&id).await, ChargeStatus::Canceled);
}

#[tokio::test]
async fn the_expiry_is_the_configured_one() {
    let h = harness().await;
    let (id, action) = h.waiting_charge().await;
    let settings = |hours: u64| ReconcileSettings {
        after: Duration::ZERO,
        events_window: Duration::from_secs(3600),
        action_expiry: Duration::from_secs(hours * 3600),
        ..ReconcileSettings::default()
    };
    let at = unix_now() + 3 * HOUR;
    reconcile(&h.store, &h.gateways, &h.queue, &settings(4), at)
        .await
        .unwrap();
    assert_eq!(h.status(&id).await, ChargeStatus::RequiresAction);
    // A later run (the first one's claim on the charge lasts ten minutes).
    reconcile(&h.store, &h.gateways, &h.queue, &settings(2), at + 700)
        .await
        .unwrap();
    assert_eq!(h.status(&id).await, ChargeStatus::Canceled);
    assert_eq!(h.cancels_sent(&action), 1);
}

#[tokio::test]
async fn a_customer_who_authenticated_before_the_expiry_run_is_a_success_and_nothing_is_canceled() {
    let h = harness().await;
    let (id, action) = h.waiting_charge().await;
    // The customer paid; Stripe's webhook has not arrived yet.
    h.customer_authenticates(&action, true).await;

    let summary = h.reconcile_at(unix_now() + 25 * HOUR).await;
    assert_eq!((summary.fixed, summary.unknown), (1, 0), "{summary:?}");
    assert_eq!(h.cancels_sent(&action), 0, "a success is never canceled");
    let pi = h.payment_intent(&action.payment_intent).await;
    assert_eq!(pi["status"], "succeeded");
    let view = h.view(&id).await;
    assert_eq!(
        (&view["status"], &view["captured"]),
        (&json!("succeeded"), &json!(1999))
    );

    // The webhooks arrive late: old news.
    h.deliver_all(&action.payment_intent, "payment_intent.succeeded")
        .await;
    assert_eq!(
        h.types(&id).await,
        ["charge.requires_action", "charge.succeeded"]
    );
}

#[tokio::test]
async fn a_customer_who_authenticates_between_the_lookup_and_the_cancel_ends_as_stripes_success() {
    let h = harness().await;
    let (id, action) = h.waiting_charge().await;
    // The lookup still shows the PaymentIntent waiting; a moment later, before paybridge's cancel
    // reaches Stripe, the customer completes 3DS. Stripe then refuses the cancel.
    h.proxy
        .before_next_cancel(Harness::authentication(&action, true));

    let summary = h.reconcile_at(unix_now() + 25 * HOUR).await;
    assert_eq!((summary.fixed, summary.unknown), (1, 0), "{summary:?}");
    assert_eq!(
        h.cancels_sent(&action),
        1,
        "the cancel was sent, and refused"
    );
    let pi = h.payment_intent(&action.payment_intent).await;
    assert_eq!(pi["status"], "succeeded", "{pi:#}");
    let view = h.view(&id).await;
    assert_eq!(
        (&view["status"], &view["captured"]),
        (&json!("succeeded"), &json!(1999)),
        "the gateway's truth"
    );
    h.deliver_all(&action.payment_intent, "payment_intent.succeeded")
        .await;
    assert_eq!(
        h.types(&id).await,
        ["charge.requires_action", "charge.succeeded"]
    );
}

// ---- Adyen, through the whole local stack ---------------------------------------------------

/// The fake's notification, intake and the worker take a few seconds.
const PIPELINE: Duration = Duration::from_secs(90);

struct LocalAdyen {
    stack: Stack,
    gateway: String,
    fake: String,
    http: reqwest::Client,
    table: Table,
}

fn required(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set: run these tests with `make test`"))
}

async fn local_adyen() -> LocalAdyen {
    let stack = stack().await;
    LocalAdyen {
        gateway: required("PAYBRIDGE_GATEWAY_URL"),
        fake: required("PAYBRIDGE_ADYEN_FAKE_URL"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        table: Table::from_conf(&stack.aws, &stack.config.table),
        stack,
    }
}

impl LocalAdyen {
    async fn json(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn charge(&self, stored: &str) -> Value {
        let body = json!({"invoice_id": unique("inv_"), "amount": 1999, "currency": "eur",
            "gateway": "adyen", "payment_method": stored, "customer": "shopper_3ds", "capture": true});
        let (status, view) = self
            .json(
                self.http
                    .post(format!("{}/charges", self.gateway))
                    .header("idempotency-key", unique("adyen-3ds-"))
                    .json(&body),
            )
            .await;
        assert_eq!(status, 201, "{view}");
        view
    }

    async fn view(&self, id: &str) -> Value {
        let (status, view) = self
            .json(self.http.get(format!("{}/charges/{id}", self.gateway)))
            .await;
        assert_eq!(status, 200, "{view}");
        view
    }

    async fn authenticate(&self, reference: &str, success: bool) {
        let (status, body) = self
            .json(
                self.http
                    .post(format!(
                        "{}/_paybridge/payments/{reference}/authenticate",
                        self.fake
                    ))
                    .json(&json!({ "success": success })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }

    async fn status_becomes(&self, id: &str, status: &str) -> Value {
        eventually(PIPELINE, &format!("charge {id} {status}"), || async {
            let view = self.view(id).await;
            (view["status"] == status).then_some(view)
        })
        .await
    }

    async fn types(&self, id: &str) -> Vec<String> {
        let id = ChargeId::parse(id).unwrap();
        (self
            .table
            .notifications_for_charge(&id)
            .await
            .unwrap()
            .into_iter())
        .map(|n| n.event_type)
        .collect()
    }
}

#[tokio::test]
async fn an_adyen_3ds2_charge_surfaces_adyens_action_and_succeeds_when_the_shopper_completes_it() {
    let a = local_adyen().await;
    let view = a.charge("stored_3ds2").await;
    assert_eq!(view["status"], "requires_action", "{view:#}");
    assert_eq!(
        view["gateway_ref"],
        Value::Null,
        "IdentifyShopper has no pspReference"
    );
    let ca = &view["customer_action"];
    assert_eq!(
        (&ca["type"], &ca["result_code"]),
        (&json!("adyen_action"), &json!("IdentifyShopper"))
    );
    assert_eq!(
        (&ca["action"]["type"], &ca["action"]["subtype"]),
        (&json!("threeDS2"), &json!("fingerprint"))
    );
    assert!(ca["action"]["paymentData"].is_string(), "{ca:#}");
    assert_shape(
        document(),
        schema(document(), "Charge"),
        &view,
        "POST /charges",
    );
    let id = view["id"].as_str().unwrap().to_owned();

    // The shopper passes 3DS2; Adyen's AUTHORISATION (found by merchantReference) settles it.
    a.authenticate(&id, true).await;
    let done = a.status_becomes(&id, "succeeded").await;
    assert_eq!(
        (&done["captured"], &done["customer_action"]),
        (&json!(1999), &Value::Null)
    );
    assert!(
        done["gateway_ref"].is_string(),
        "the AUTHORISATION's pspReference: {done:#}"
    );
    assert_eq!(
        a.types(&id).await,
        ["charge.requires_action", "charge.succeeded"]
    );
}

#[tokio::test]
async fn an_adyen_redirect_charge_whose_shopper_fails_is_failed_with_adyens_reason() {
    let a = local_adyen().await;
    let view = a.charge("stored_3ds_redirect").await;
    let ca = &view["customer_action"];
    assert_eq!(
        (&view["status"], &ca["result_code"], &ca["action"]["type"]),
        (
            &json!("requires_action"),
            &json!("RedirectShopper"),
            &json!("redirect")
        ),
        "{view:#}"
    );
    let psp = view["gateway_ref"]
        .as_str()
        .expect("RedirectShopper has a pspReference");
    let id = view["id"].as_str().unwrap().to_owned();
    a.authenticate(psp, false).await;
    let done = a.status_becomes(&id, "failed").await;
    assert_eq!(
        done["failure"]["message"], "3D Not Authenticated",
        "{done:#}"
    );
    assert_eq!(
        a.types(&id).await,
        ["charge.requires_action", "charge.failed"]
    );
}

#[tokio::test]
async fn an_adyen_redirect_charge_past_its_expiry_is_canceled_at_adyen_and_canceled_by_its_webhook()
{
    let a = local_adyen().await;
    let view = a.charge("stored_3ds_redirect").await;
    let id = ChargeId::parse(view["id"].as_str().unwrap()).unwrap();
    let adyen = a.stack.secrets.adyen.as_ref().unwrap();
    let gateways = GatewayRouter {
        stripe: None,
        adyen: Some(AdyenGateway::new(
            http_client(Duration::from_secs(10)),
            &a.stack.config.adyen_api_base,
            adyen.api_key.clone(),
            &adyen.merchant_account,
        )),
    };
    let queue = SqsWorkQueue::from_conf(&a.stack.aws, &a.stack.new_queue().await);
    let charge = a.table.get_charge(&id).await.unwrap().unwrap();
    let day = Duration::from_secs(24 * 3600);

    // What the reconciler does with it, a day and a minute on: a cancel Adyen receives.
    let out = expire_requires_action(
        &a.table,
        &gateways,
        &queue,
        charge,
        unix_now() + 24 * HOUR + 60,
        day,
    )
    .await
    .unwrap();
    assert!(
        matches!(out, Expiry::Waiting { overdue: false, .. }),
        "{out:?}"
    );
    // Adyen's CANCELLATION comes back through the gateway, intake and the worker.
    let done = a.status_becomes(id.as_str(), "canceled").await;
    assert_eq!(done["customer_action"], Value::Null);
    assert_eq!(
        a.types(id.as_str()).await,
        ["charge.requires_action", "charge.canceled"]
    );
    // The shopper can no longer complete it at Adyen.
    let psp = view["gateway_ref"].as_str().unwrap();
    let (status, _) = a
        .json(
            a.http
                .post(format!("{}/_paybridge/payments/{psp}/authenticate", a.fake))
                .json(&json!({"success": true})),
        )
        .await;
    assert_eq!(status, 409);
}
