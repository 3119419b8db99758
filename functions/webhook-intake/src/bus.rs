//! Stripe events from Amazon EventBridge in, the same use case as a signed webhook, a JSON
//! answer (or an error EventBridge's asynchronous invocation retries) out.
//!
//! The function takes two kinds of invocation: API Gateway requests (`POST /webhooks/{gateway}`,
//! [`crate::handler`]) and EventBridge events from the rule on the Stripe partner event bus.
//! [`dispatch`] tells them apart; an invocation that is not an EventBridge event is answered
//! exactly as `lambda_http::run` answered it before.

use std::time::Instant;

use lambda_runtime::LambdaEvent;
use paybridge::Error;
use paybridge::domain::Gateway;
use paybridge::error::Code;
use paybridge::services::record_webhook::{self, Outcome};
use paybridge::telemetry::{Metric, Metrics, Unit};
use paybridge::webhooks::stripe::eventbridge::{self, BusError};
use serde_json::{Value, json};

use crate::handler::{self, Intake};

const FUNCTION: &str = "webhook-intake";

/// Answers one invocation: an EventBridge event goes to [`handle`], anything else is an API
/// Gateway request for [`handler::handle`].
pub async fn dispatch(
    app: &Intake,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    if eventbridge::is_bus_event(&event.payload) {
        return match handle(app, event.payload).await {
            Ok(answer) => Ok(answer),
            // A refusal is final: answered, not failed, so neither Lambda's retries nor the
            // failure queue keep a copy of an unmasked payload (the log line and
            // `WebhookRejected` say what was refused). Only what may work later fails.
            Err(e) if !e.is_retryable() => Ok(json!({
                "recorded": false,
                "refused": {"code": e.code(), "message": e.public_message()},
            })),
            Err(e) => Err(e.into()),
        };
    }
    paybridge::invoke::http_answer(|req| handler::handle(app, req), event).await
}

/// Records the Stripe event of one EventBridge event, as a verified webhook is recorded.
///
/// `Ok` (`{"recorded": true|false, "event_id", "type", "outcome"}`) when the event is durable —
/// new (`recorded: true`) or seen before over either channel (`false`, no new work). `Err` when
/// it is refused (switched off, untrusted source, malformed: nothing written; [`dispatch`]
/// answers it as refused) or could not be recorded (DynamoDB or SQS down: retryable, so the
/// invocation fails, Lambda's asynchronous retries try it again and, after the last, the failure
/// queue keeps it).
pub async fn handle(app: &Intake, envelope: Value) -> Result<Value, Error> {
    let started = Instant::now();
    let metrics = || Metrics::new(FUNCTION).dimension("Gateway", Gateway::Stripe.as_str());
    metrics().count(Metric::EventBridgeReceived).emit();
    let bus_id = envelope.get("id").and_then(Value::as_str).unwrap_or("");
    let source = envelope.get("source").and_then(Value::as_str).unwrap_or("");
    let size = envelope.get("detail").map_or(0, |d| d.to_string().len());
    let parsed = if app.settings.stripe_event_source.is_none() {
        // Off unless the operator named the partner event source: an invoker with
        // lambda:InvokeFunction on intake must not be able to feed it events.
        Err(Error::new(
            Code::UntrustedSource,
            "Stripe events from EventBridge are switched off (StripeEventBridgeSource is not set)",
        ))
    } else if size > app.max_body_bytes {
        Err(Error::payload_too_large(app.max_body_bytes))
    } else {
        eventbridge::parse(&envelope, app.settings.stripe_event_source.as_deref()).map_err(refusal)
    };
    let event = match parsed {
        Ok(event) => event,
        Err(err) => {
            // The source is the operator's to see (it names a partner event source, never
            // payload data); kept short so a hostile invoker cannot flood the log line.
            let source: String = source.chars().take(120).collect();
            tracing::warn!(bus_event_id = %bus_id, source = %source, code = err.code(), error = %err, "EventBridge event refused");
            metrics()
                .dimension("Reason", err.code())
                .count(Metric::WebhookRejected)
                .emit();
            return Err(err);
        }
    };
    let now = paybridge::clock::now_secs();
    match record_webhook::record(&app.store, &app.queue, &app.settings, vec![event], now).await {
        Ok(recorded) => {
            let latency = started.elapsed().as_secs_f64() * 1000.0;
            let mut m = metrics().count(Metric::WebhookVerified).value(
                Metric::IntakeLatency,
                latency,
                Unit::Milliseconds,
            );
            let (id, ty, outcome) = recorded
                .events
                .first()
                .cloned()
                .ok_or_else(|| Error::internal("recorded no event", None))?;
            m = match outcome {
                Outcome::Queued => m.count(Metric::WebhookQueued),
                Outcome::Requeued => m.count(Metric::WebhookRequeued),
                Outcome::Duplicate => m.count(Metric::WebhookDuplicate),
                Outcome::Ignored => m.count(Metric::WebhookIgnored),
            };
            m.emit();
            tracing::info!(bus_event_id = %bus_id, event_id = %id, outcome = outcome.as_str(), "EventBridge event recorded");
            Ok(json!({
                "recorded": matches!(outcome, Outcome::Queued | Outcome::Ignored),
                "event_id": id,
                "type": ty,
                "outcome": outcome.as_str(),
            }))
        }
        Err(err) => {
            tracing::error!(bus_event_id = %bus_id, code = err.code(), error = %err.chain(), "EventBridge event not recorded");
            metrics().count(Metric::WebhookFailed).emit();
            Err(err)
        }
    }
}

fn refusal(e: BusError) -> Error {
    match e {
        BusError::UntrustedSource => Error::new(Code::UntrustedSource, e.to_string()),
        BusError::Malformed(what) => Error::new(
            Code::MalformedPayload,
            format!("the EventBridge event is not a Stripe event: {what}"),
        ),
    }
}
