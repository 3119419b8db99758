//! What the code emits, from the shared crate's own lists: the metric names ([`Metric::ALL`]) and
//! the error codes ([`Code::ALL`]) that template.yaml, docs/metrics.md and openapi.json must agree
//! with. A metric can only be emitted, and an error only made, from those enums, so the lists are
//! complete by construction — no test reads Rust sources as text.

use std::collections::BTreeSet;
use std::path::PathBuf;

use paybridge::error::Code;
use paybridge::telemetry::Metric;

/// Where the emitted metrics are listed (for assertion messages).
pub const METRIC_LIST: &str = "paybridge::telemetry::Metric::ALL";

/// The workspace root (the tests crate's parent).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

// ---- metrics ----------------------------------------------------------------------------------

/// Whether the code emits the metric `name`.
pub fn emits_metric(name: &str) -> bool {
    Metric::ALL.iter().any(|m| m.name() == name)
}

/// `(name, where it is listed)` of every metric the code can emit.
pub fn metrics_named_in_count_or_value() -> BTreeSet<(String, String)> {
    (Metric::ALL.iter())
        .map(|m| (m.name().to_owned(), METRIC_LIST.to_owned()))
        .collect()
}

// ---- error codes ------------------------------------------------------------------------------

/// `(status, code)` of every error code the documented routes (charges, refunds) can answer with.
pub fn documented_route_error_codes() -> BTreeSet<(u16, String)> {
    (Code::ALL.iter())
        .filter(|c| c.on_billing_routes())
        .map(|c| (c.kind().status(), c.as_str().to_owned()))
        .collect()
}
