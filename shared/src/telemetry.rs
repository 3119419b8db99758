//! Logs and metrics.
//!
//! Logs are JSON lines (tracing-subscriber) at the level Lambda asks for (`AWS_LAMBDA_LOG_LEVEL`,
//! or `RUST_LOG` for finer filters: a level and `target=level` pairs, e.g.
//! `info,paybridge::init_phases=debug` — tracing-subscriber's `Targets` syntax, without the
//! span-field filters of its regex-based `EnvFilter`, which would add ~250 KB to every binary). Metrics are CloudWatch Embedded Metric Format lines written
//! straight to stdout: CloudWatch turns them into metrics without an API call from the function.

use std::io::Write;

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every paybridge metric.
pub const METRIC_NAMESPACE: &str = "Paybridge";

static METRICS_OFF: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stops EMF lines for the rest of the process: for command-line tools, whose stdout is for the
/// person running them (CloudWatch reads EMF only from Lambda's log stream anyway).
pub fn disable_metrics() {
    METRICS_OFF.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Installs the JSON log subscriber. Call once, first thing in `main`.
pub fn init() {
    let filter = std::env::var("RUST_LOG").ok().unwrap_or_else(|| {
        let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").unwrap_or_else(|_| "INFO".into());
        match level.to_ascii_uppercase().as_str() {
            "TRACE" => "trace",
            "DEBUG" => "debug",
            "WARN" => "warn",
            "ERROR" | "FATAL" => "error",
            _ => "info",
        }
        .to_owned()
    });
    let _ = tracing::subscriber::set_global_default(subscriber(&filter, std::io::stdout));
}

/// The filter of a `RUST_LOG`-style string: `level`, `target=level` and `target` (everything from
/// it), comma-separated. Directives it cannot read are left out, with a line on stderr saying
/// which, so a typo never silences the logs.
fn targets(filter: &str) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::Targets;
    let readable: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter(|d| {
            let ok = d.parse::<Targets>().is_ok();
            if !ok {
                eprintln!("RUST_LOG: ignoring `{d}`: not a level, a target or target=level");
            }
            ok
        })
        .collect();
    match readable.join(",").parse::<Targets>() {
        Ok(targets) if !readable.is_empty() => targets,
        _ => Targets::new().with_default(tracing::Level::INFO),
    }
}

/// The log subscriber `init` installs, writing to `writer` (tests capture its lines): JSON lines,
/// flattened, without time (Lambda stamps every line), and every line masked of card numbers
/// before it is written ([`MaskedWriter`]).
pub fn subscriber<W>(filter: &str, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    let lines = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .without_time()
        .with_writer(MaskedWriter(writer))
        .with_filter(targets(filter));
    tracing_subscriber::registry().with(lines)
}

/// Makes writers that mask card numbers ([`crate::domain::pci::mask_bytes`]) in everything
/// written through them, with no exemption: whatever a log line carries — a gateway's error text,
/// a request path, an id — no card number reaches the log. The formatter writes each line whole,
/// so a number is never split between two writes.
pub struct MaskedWriter<W>(pub W);

impl<'a, W: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for MaskedWriter<W>
{
    type Writer = Masked<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Masked(self.0.make_writer())
    }
}

/// One writer of [`MaskedWriter`].
pub struct Masked<W>(W);

impl<W: Write> Write for Masked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match crate::domain::pci::mask_bytes(buf) {
            Some(masked) => self.0.write_all(&masked)?,
            None => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Unit of a metric value, as CloudWatch names it.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Count,
    Milliseconds,
    Bytes,
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
            Unit::Seconds => "Seconds",
        }
    }
}

/// Every metric paybridge emits (docs/metrics.md describes each; the template's alarms and
/// dashboard use them by these names). Emitting a metric takes one of these, so [`Metric::ALL`]
/// is the complete list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    BatchFailures,
    BatchSize,
    BillingConsecutiveFailures,
    BillingSecondsSinceSuccess,
    ChargeCreated,
    ChargeActionExpired,
    ChargeFailed,
    ChargeFailedByCode,
    ChargePending,
    ChargeRequiresAction,
    ChargeRetryExhausted,
    ChargeSucceeded,
    DeadLettered,
    DeliveryLatency,
    DisputeChanged,
    EventApplied,
    EventBridgeReceived,
    EventContradicts,
    EventIgnored,
    EventLeftOpen,
    EventOrphaned,
    GatewayLatency,
    IntakeLatency,
    InvoiceAlreadyCharged,
    KeyWindowPassed,
    NeedsAttention,
    NotificationDelivered,
    NotificationExhausted,
    NotificationFailed,
    NotificationPublished,
    NotificationPublishFailed,
    NotificationRetried,
    OldestMessageAge,
    OutboxSwept,
    ReconcileChecked,
    ReconcileEventsRecovered,
    ReconcileEventsRequeued,
    ReconcileFixed,
    ReconcileIncomplete,
    ReconcileParked,
    ReconcileUnknown,
    RefundAmount,
    RefundAdopted,
    RefundFailed,
    RefundedOverCaptured,
    RefundRequested,
    RefundRetryExhausted,
    RefundSucceeded,
    Retry,
    SignatureFailure,
    WebhookDuplicate,
    WebhookFailed,
    WebhookIgnored,
    WebhookQueued,
    WebhookReceived,
    WebhookRejected,
    WebhookRequeued,
    WebhookVerified,
    WorkFailed,
}

impl Metric {
    pub const ALL: [Metric; 59] = [
        Metric::BatchFailures,
        Metric::BatchSize,
        Metric::BillingConsecutiveFailures,
        Metric::BillingSecondsSinceSuccess,
        Metric::ChargeCreated,
        Metric::ChargeActionExpired,
        Metric::ChargeFailed,
        Metric::ChargeFailedByCode,
        Metric::ChargePending,
        Metric::ChargeRequiresAction,
        Metric::ChargeRetryExhausted,
        Metric::ChargeSucceeded,
        Metric::DeadLettered,
        Metric::DeliveryLatency,
        Metric::DisputeChanged,
        Metric::EventApplied,
        Metric::EventBridgeReceived,
        Metric::EventContradicts,
        Metric::EventIgnored,
        Metric::EventLeftOpen,
        Metric::EventOrphaned,
        Metric::GatewayLatency,
        Metric::IntakeLatency,
        Metric::InvoiceAlreadyCharged,
        Metric::KeyWindowPassed,
        Metric::NeedsAttention,
        Metric::NotificationDelivered,
        Metric::NotificationExhausted,
        Metric::NotificationFailed,
        Metric::NotificationPublished,
        Metric::NotificationPublishFailed,
        Metric::NotificationRetried,
        Metric::OldestMessageAge,
        Metric::OutboxSwept,
        Metric::ReconcileChecked,
        Metric::ReconcileEventsRecovered,
        Metric::ReconcileEventsRequeued,
        Metric::ReconcileFixed,
        Metric::ReconcileIncomplete,
        Metric::ReconcileParked,
        Metric::ReconcileUnknown,
        Metric::RefundAmount,
        Metric::RefundAdopted,
        Metric::RefundFailed,
        Metric::RefundedOverCaptured,
        Metric::RefundRequested,
        Metric::RefundRetryExhausted,
        Metric::RefundSucceeded,
        Metric::Retry,
        Metric::SignatureFailure,
        Metric::WebhookDuplicate,
        Metric::WebhookFailed,
        Metric::WebhookIgnored,
        Metric::WebhookQueued,
        Metric::WebhookReceived,
        Metric::WebhookRejected,
        Metric::WebhookRequeued,
        Metric::WebhookVerified,
        Metric::WorkFailed,
    ];

    /// The CloudWatch metric name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::BatchFailures => "BatchFailures",
            Metric::BatchSize => "BatchSize",
            Metric::BillingConsecutiveFailures => "BillingConsecutiveFailures",
            Metric::BillingSecondsSinceSuccess => "BillingSecondsSinceSuccess",
            Metric::ChargeCreated => "ChargeCreated",
            Metric::ChargeActionExpired => "ChargeActionExpired",
            Metric::ChargeFailed => "ChargeFailed",
            Metric::ChargeFailedByCode => "ChargeFailedByCode",
            Metric::ChargePending => "ChargePending",
            Metric::ChargeRequiresAction => "ChargeRequiresAction",
            Metric::ChargeRetryExhausted => "ChargeRetryExhausted",
            Metric::ChargeSucceeded => "ChargeSucceeded",
            Metric::DeadLettered => "DeadLettered",
            Metric::DeliveryLatency => "DeliveryLatency",
            Metric::DisputeChanged => "DisputeChanged",
            Metric::EventApplied => "EventApplied",
            Metric::EventBridgeReceived => "EventBridgeReceived",
            Metric::InvoiceAlreadyCharged => "InvoiceAlreadyCharged",
            Metric::EventContradicts => "EventContradicts",
            Metric::EventIgnored => "EventIgnored",
            Metric::EventLeftOpen => "EventLeftOpen",
            Metric::EventOrphaned => "EventOrphaned",
            Metric::GatewayLatency => "GatewayLatency",
            Metric::IntakeLatency => "IntakeLatency",
            Metric::KeyWindowPassed => "KeyWindowPassed",
            Metric::NeedsAttention => "NeedsAttention",
            Metric::NotificationDelivered => "NotificationDelivered",
            Metric::NotificationExhausted => "NotificationExhausted",
            Metric::NotificationFailed => "NotificationFailed",
            Metric::NotificationPublished => "NotificationPublished",
            Metric::NotificationPublishFailed => "NotificationPublishFailed",
            Metric::NotificationRetried => "NotificationRetried",
            Metric::OldestMessageAge => "OldestMessageAge",
            Metric::OutboxSwept => "OutboxSwept",
            Metric::ReconcileChecked => "ReconcileChecked",
            Metric::ReconcileEventsRecovered => "ReconcileEventsRecovered",
            Metric::ReconcileEventsRequeued => "ReconcileEventsRequeued",
            Metric::ReconcileFixed => "ReconcileFixed",
            Metric::ReconcileIncomplete => "ReconcileIncomplete",
            Metric::ReconcileParked => "ReconcileParked",
            Metric::ReconcileUnknown => "ReconcileUnknown",
            Metric::RefundAmount => "RefundAmount",
            Metric::RefundAdopted => "RefundAdopted",
            Metric::RefundFailed => "RefundFailed",
            Metric::RefundedOverCaptured => "RefundedOverCaptured",
            Metric::RefundRequested => "RefundRequested",
            Metric::RefundRetryExhausted => "RefundRetryExhausted",
            Metric::RefundSucceeded => "RefundSucceeded",
            Metric::Retry => "Retry",
            Metric::SignatureFailure => "SignatureFailure",
            Metric::WebhookDuplicate => "WebhookDuplicate",
            Metric::WebhookFailed => "WebhookFailed",
            Metric::WebhookIgnored => "WebhookIgnored",
            Metric::WebhookQueued => "WebhookQueued",
            Metric::WebhookReceived => "WebhookReceived",
            Metric::WebhookRejected => "WebhookRejected",
            Metric::WebhookRequeued => "WebhookRequeued",
            Metric::WebhookVerified => "WebhookVerified",
            Metric::WorkFailed => "WorkFailed",
        }
    }
}

/// One EMF record: a set of dimensions and the metrics measured under them.
///
/// ```
/// use paybridge::telemetry::{Metric, Metrics};
/// Metrics::new("webhook-intake").dimension("Gateway", "stripe").count(Metric::WebhookReceived).emit();
/// ```
#[derive(Debug, Clone)]
pub struct Metrics {
    dimensions: Vec<(&'static str, String)>,
    values: Vec<(&'static str, f64, Unit)>,
}

impl Metrics {
    /// Metrics of one function (`Function` dimension).
    pub fn new(function: &str) -> Self {
        Metrics {
            dimensions: vec![("Function", function.to_owned())],
            values: Vec::new(),
        }
    }

    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.dimensions.push((name, value.into()));
        self
    }

    pub fn count(self, metric: Metric) -> Self {
        self.value(metric, 1.0, Unit::Count)
    }

    /// A count of `n` (a run's or a batch's total).
    pub fn tally(self, metric: Metric, n: usize) -> Self {
        self.value(metric, n as f64, Unit::Count)
    }

    pub fn value(mut self, metric: Metric, value: f64, unit: Unit) -> Self {
        self.values.push((metric.name(), value, unit));
        self
    }

    /// The EMF JSON for this record at `timestamp_ms`.
    pub fn to_json(&self, timestamp_ms: u128) -> Value {
        let mut root = Map::new();
        let dims: Vec<&str> = self.dimensions.iter().map(|(k, _)| *k).collect();
        let metrics: Vec<Value> = self
            .values
            .iter()
            .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms as u64,
                "CloudWatchMetrics": [{
                    "Namespace": METRIC_NAMESPACE,
                    "Dimensions": [dims],
                    "Metrics": metrics,
                }]
            }),
        );
        for (k, v) in &self.dimensions {
            root.insert((*k).into(), Value::String(v.clone()));
        }
        for (name, value, _) in &self.values {
            root.insert((*name).into(), json!(value));
        }
        Value::Object(root)
    }

    /// Writes the record as one stdout line.
    pub fn emit(self) {
        if self.values.is_empty() || METRICS_OFF.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let line = self.to_json(crate::clock::now_ms() as u128).to_string();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_takes_a_level_and_target_levels_and_skips_what_it_cannot_read() {
        let t = targets("warn,paybridge::init_phases=debug");
        assert!(t.would_enable("paybridge::init_phases", &Level::DEBUG));
        assert!(!t.would_enable("paybridge::adapters", &Level::INFO));
        assert!(t.would_enable("paybridge::adapters", &Level::WARN));
        // A typo does not silence the rest, and nothing readable means INFO.
        let t = targets("paybridge=debug,=nonsense=,");
        assert!(t.would_enable("paybridge::services", &Level::DEBUG));
        let t = targets("=nonsense=");
        assert!(t.would_enable("anything", &Level::INFO));
        assert!(!t.would_enable("anything", &Level::DEBUG));
        assert!(targets("").would_enable("anything", &Level::INFO));
    }

    #[test]
    fn emf_records_declare_every_metric_and_dimension() {
        let v = Metrics::new("webhook-intake")
            .dimension("Gateway", "stripe")
            .count(Metric::WebhookReceived)
            .value(Metric::IntakeLatency, 3.5, Unit::Milliseconds)
            .to_json(1_700_000_000_000);
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Paybridge");
        assert_eq!(cw["Dimensions"][0], json!(["Function", "Gateway"]));
        assert_eq!(
            cw["Metrics"][1],
            json!({"Name": "IntakeLatency", "Unit": "Milliseconds"})
        );
        assert_eq!(v["Gateway"], "stripe");
        assert_eq!(v["WebhookReceived"], 1.0);
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000u64);
    }
}
