//! What the code emits, found by reading its sources as text: the metric names and the error
//! codes that template.yaml, docs/metrics.md and openapi.json must agree with.
//!
//! This is the one place the tests grep Rust sources. It is meant to go: once the shared crate
//! lists its error codes and metric names in enums with an `ALL` list, the functions below
//! enumerate those instead, and the tests that call them do not change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use paybridge::Error;
use paybridge::services::charges::MAX_REQUEST_BYTES;

/// Where the metrics are emitted: every `.rs` file under these (tests excluded).
pub const METRIC_SOURCE_DIRS: &[&str] = &["shared/src", "functions"];

/// The service folders whose every file is in [`ERROR_SOURCES`].
pub const SERVICE_DIRS: &[&str] = &["shared/src/services/charges", "shared/src/services/refunds"];

/// The sources whose `Error` constructors make the error codes the documented routes answer with.
pub const ERROR_SOURCES: &[(&str, &str)] = &[
    (
        "functions/charges/src/handler.rs",
        include_str!("../../functions/charges/src/handler.rs"),
    ),
    (
        "shared/src/http.rs",
        include_str!("../../shared/src/http.rs"),
    ),
    (
        "shared/src/services/idempotency.rs",
        include_str!("../../shared/src/services/idempotency.rs"),
    ),
    (
        "shared/src/services/request.rs",
        include_str!("../../shared/src/services/request.rs"),
    ),
    (
        "shared/src/services/charges/mod.rs",
        include_str!("../../shared/src/services/charges/mod.rs"),
    ),
    (
        "shared/src/services/charges/create.rs",
        include_str!("../../shared/src/services/charges/create.rs"),
    ),
    (
        "shared/src/services/charges/read.rs",
        include_str!("../../shared/src/services/charges/read.rs"),
    ),
    (
        "shared/src/services/charges/capture.rs",
        include_str!("../../shared/src/services/charges/capture.rs"),
    ),
    (
        "shared/src/services/charges/cancel.rs",
        include_str!("../../shared/src/services/charges/cancel.rs"),
    ),
    (
        "shared/src/services/charges/retry.rs",
        include_str!("../../shared/src/services/charges/retry.rs"),
    ),
    (
        "functions/refunds/src/handler.rs",
        include_str!("../../functions/refunds/src/handler.rs"),
    ),
    (
        "shared/src/services/refunds/mod.rs",
        include_str!("../../shared/src/services/refunds/mod.rs"),
    ),
    (
        "shared/src/services/refunds/create.rs",
        include_str!("../../shared/src/services/refunds/create.rs"),
    ),
    (
        "shared/src/services/refunds/read.rs",
        include_str!("../../shared/src/services/refunds/read.rs"),
    ),
    (
        "shared/src/services/refunds/retry.rs",
        include_str!("../../shared/src/services/refunds/retry.rs"),
    ),
    (
        "shared/src/services/refunds/apply.rs",
        include_str!("../../shared/src/services/refunds/apply.rs"),
    ),
];

/// The workspace: the folder that holds template.yaml.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

// ---- metrics ----------------------------------------------------------------------------------

/// `(path, code)` of every source file that emits metrics, with comments and unit-test modules
/// left out (a name in a doc example or a test is not an emitted metric).
pub fn metric_emitting_sources() -> &'static [(String, String)] {
    static SCANNED: OnceLock<Vec<(String, String)>> = OnceLock::new();
    SCANNED.get_or_init(scan_metric_sources)
}

/// Whether the code emits the metric `name`: some emitting source names it as a string literal.
pub fn emits_metric(name: &str) -> bool {
    let literal = format!("\"{name}\"");
    metric_emitting_sources()
        .iter()
        .any(|(_, code)| code.contains(&literal))
}

/// `(name, file)` of every metric named by a string literal in a `.count(…)` or `.value(…)` call.
pub fn metrics_named_in_count_or_value() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (file, source) in metric_emitting_sources() {
        for call in [".count(", ".value("] {
            for (at, _) in source.match_indices(call) {
                let name = source[at + call.len()..]
                    .trim_start()
                    .strip_prefix('"')
                    .and_then(|rest| rest.split_once('"'))
                    .map(|(name, _)| name);
                if let Some(name) = name {
                    out.insert((name.to_owned(), file.clone()));
                }
            }
        }
    }
    out
}

fn scan_metric_sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                out.push(path);
            }
        }
    }
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in METRIC_SOURCE_DIRS {
        walk(&root.join(dir), &mut files);
    }
    let mut out = Vec::new();
    for path in files {
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        let mut code = String::new();
        let mut lines = source.lines().peekable();
        while let Some(line) = lines.next() {
            let trimmed = line.trim_start();
            if trimmed == "#[cfg(test)]"
                && lines
                    .peek()
                    .is_some_and(|l| l.trim_start().starts_with("mod "))
            {
                break;
            }
            if !trimmed.starts_with("//") {
                code.push_str(line);
                code.push('\n');
            }
        }
        if code.contains("Metrics") {
            let name = path.strip_prefix(&root).unwrap_or(&path);
            out.push((name.display().to_string(), code));
        }
    }
    assert!(
        !out.is_empty(),
        "no source emits metrics; is the scan broken?"
    );
    out
}

// ---- error codes ------------------------------------------------------------------------------

/// `(status, code)` of every error code the documented routes (charges, refunds) can answer
/// with: the codes of [`ERROR_SOURCES`]' `Error` constructors, and those the error module fixes.
pub fn documented_route_error_codes() -> BTreeSet<(u16, String)> {
    let mut codes: BTreeSet<(u16, String)> = ERROR_SOURCES
        .iter()
        .flat_map(|(file, source)| constructor_codes(file, source))
        .collect();
    codes.extend(fixed_codes());
    codes
}

/// `(status, code)` of every `Error::bad_request|not_found|conflict|unprocessable("code", …)`.
fn constructor_codes(file: &str, source: &str) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for (constructor, status) in [
        ("bad_request", 400),
        ("not_found", 404),
        ("conflict", 409),
        ("unprocessable", 422),
    ] {
        let needle = format!("Error::{constructor}(");
        for (at, _) in source.match_indices(&needle) {
            let code = source[at + needle.len()..]
                .trim_start()
                .strip_prefix('"')
                .and_then(|rest| rest.split_once('"'))
                .map(|(code, _)| code)
                .unwrap_or_else(|| {
                    panic!("{file}: an Error::{constructor}(…) whose code is not a string literal; this scan reads codes as literals")
                });
            out.push((status, code.to_owned()));
        }
    }
    out
}

/// Codes fixed by the error module's own constructors that the documented routes reach.
fn fixed_codes() -> Vec<(u16, String)> {
    [
        Error::payload_too_large(MAX_REQUEST_BYTES),
        Error::unavailable("dynamodb", "down"),
        Error::bad_gateway("no answer", None),
        Error::internal("bug", None),
    ]
    .iter()
    .map(|e| (e.kind().status(), e.code().to_owned()))
    .collect()
}
