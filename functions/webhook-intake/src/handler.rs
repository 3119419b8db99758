//! HTTP in, use case, HTTP out. No business rule lives here.

use std::sync::Arc;
use std::time::Instant;

use lambda_http::{Body, Request, RequestExt, Response};
use paybridge::Error;
use paybridge::adapters::Init;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::secrets_manager::SecretsManagerSource;
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::Gateway;
use paybridge::error::Code;
use paybridge::services::record_webhook::{self, IntakeSettings, Outcome};
use paybridge::telemetry::{Metric, Metrics, Unit};

const FUNCTION: &str = "webhook-intake";

/// Everything a request needs, built once at init.
pub struct Intake {
    pub store: Table,
    pub queue: SqsWorkQueue,
    pub secrets: Arc<SecretsManagerSource>,
    pub settings: IntakeSettings,
    pub max_body_bytes: usize,
}

impl Intake {
    pub fn new(init: &Init) -> Self {
        let (config, aws) = (&init.config, &init.aws);
        Intake {
            store: Table::from_conf(aws, &config.table),
            queue: SqsWorkQueue::from_conf(aws, &config.work_queue_url),
            secrets: Arc::clone(&init.secret),
            settings: IntakeSettings {
                tolerance: config.webhook_tolerance,
                retention: config.event_retention,
                stripe_event_source: config.stripe_event_source.clone(),
                ..IntakeSettings::default()
            },
            max_body_bytes: config.max_body_bytes,
        }
    }
}

/// The `{gateway}` path parameter; from the raw path when invoked without API Gateway routing
/// (a function URL under `cargo lambda watch`).
fn gateway_param(req: &Request) -> Option<String> {
    if let Some(g) = req.path_parameters().first("gateway") {
        return Some(g.to_owned());
    }
    let path = req.uri().path();
    path.trim_end_matches('/')
        .rsplit_once("/webhooks/")
        .map(|(_, g)| g.to_owned())
}

/// Handles one delivery. Never fails: every error becomes its HTTP answer.
pub async fn handle(
    app: &Intake,
    req: Request,
) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let gateway_name = gateway_param(&req).unwrap_or_default();
    let result = run(app, &req, &gateway_name).await;
    let latency = started.elapsed().as_secs_f64() * 1000.0;
    let metrics = Metrics::new(FUNCTION).dimension("Gateway", gateway_metric_name(&gateway_name));
    let response = match result {
        Ok((gateway, recorded)) => {
            let mut m = metrics.count(Metric::WebhookVerified).value(
                Metric::IntakeLatency,
                latency,
                Unit::Milliseconds,
            );
            for (_, _, outcome) in &recorded.events {
                m = match outcome {
                    Outcome::Queued => m.count(Metric::WebhookQueued),
                    Outcome::Requeued => m.count(Metric::WebhookRequeued),
                    Outcome::Duplicate => m.count(Metric::WebhookDuplicate),
                    Outcome::Ignored => m.count(Metric::WebhookIgnored),
                };
            }
            m.emit();
            accepted(gateway, &recorded)
        }
        Err(err) => {
            let status = err.kind().status();
            if status >= 500 {
                tracing::error!(gateway = %gateway_name, code = err.code(), error = %err.chain(), "webhook not recorded");
                metrics.count(Metric::WebhookFailed).emit();
            } else {
                tracing::warn!(gateway = %gateway_name, code = err.code(), "webhook rejected");
                // One series for the signature-failure alarm, whatever the gateway or reason.
                if matches!(
                    err.code(),
                    "missing_signature"
                        | "malformed_signature"
                        | "invalid_signature"
                        | "timestamp_out_of_tolerance"
                        | "unauthorized"
                ) {
                    Metrics::new(FUNCTION)
                        .count(Metric::SignatureFailure)
                        .emit();
                }
                Metrics::new(FUNCTION)
                    .dimension("Gateway", gateway_metric_name(&gateway_name))
                    .dimension("Reason", err.code())
                    .count(Metric::WebhookRejected)
                    .emit();
            }
            err.to_response().map(Body::from)
        }
    };
    Ok(response)
}

/// Unknown gateway names are not echoed into metric dimensions (unbounded cardinality).
fn gateway_metric_name(name: &str) -> &str {
    Gateway::parse(name)
        .map(|g| g.as_str())
        .unwrap_or("unknown")
}

async fn run(
    app: &Intake,
    req: &Request,
    gateway_name: &str,
) -> Result<(Gateway, record_webhook::Recorded), Error> {
    let gateway = Gateway::parse(gateway_name).ok_or_else(|| {
        Error::new(
            Code::UnknownGateway,
            "no such gateway; expected stripe, adyen or standard",
        )
    })?;
    Metrics::new(FUNCTION)
        .dimension("Gateway", gateway.as_str())
        .count(Metric::WebhookReceived)
        .emit();
    // lambda_http has already base64-decoded the body when API Gateway flagged it so.
    let body: &[u8] = req.body().as_ref();
    if body.len() > app.max_body_bytes {
        return Err(Error::payload_too_large(app.max_body_bytes));
    }
    tracing::debug!(gateway = %gateway, bytes = body.len(), "webhook received");
    let now = paybridge::clock::now_secs();
    let events = record_webhook::verify(
        app.secrets.as_ref(),
        gateway,
        req.headers(),
        body,
        now,
        app.settings.tolerance,
    )
    .await?;
    let recorded =
        record_webhook::record(&app.store, &app.queue, &app.settings, events, now).await?;
    Ok((gateway, recorded))
}

/// The 2xx answer: Adyen wants the literal `[accepted]`; others get a small JSON summary.
fn accepted(gateway: Gateway, recorded: &record_webhook::Recorded) -> Response<Body> {
    let (content_type, body) = match gateway {
        Gateway::Adyen => ("text/plain", "[accepted]".to_owned()),
        _ => {
            let events: Vec<_> = recorded
                .events
                .iter()
                .map(|(id, ty, outcome)| serde_json::json!({"id": id, "type": ty, "outcome": outcome.as_str()}))
                .collect();
            (
                "application/json",
                serde_json::json!({"received": true, "events": events}).to_string(),
            )
        }
    };
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap_or_default()
}
