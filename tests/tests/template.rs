//! The operations side of template.yaml: alarms, dashboard, queues and log groups.
//!
//! The person paged at night relies on these: that each condition worth waking up for has an
//! alarm on the metric that really shows it, that every alarm reaches the alarm topic and says
//! where its runbook section is, that the dashboard graphs metrics the code really emits (with
//! the dimensions it really emits them under — a CloudWatch metric is a name *and* a dimension
//! set, and a wrong one graphs nothing, silently), and that the queue settings keep the retry
//! promises. The catalog in docs/metrics.md is the link between the code and the template.
//!
//! None of them needs the local stack: template.yaml is read by the shared reader
//! (`paybridge_tests::template`), what the code emits is found by `paybridge_tests::sources`.

use std::collections::{BTreeMap, BTreeSet};

use paybridge_tests::sources::{
    METRIC_LIST, emits_metric, metrics_named_in_count_or_value, workspace_root,
};
use paybridge_tests::template::{
    alarms, number, number_and_max, parameters, resource_names, resources, sub_references,
    substituted, template, text,
};
use serde_json::Value;

const CATALOG: &str = include_str!("../../docs/metrics.md");
const RUNBOOK: &str = include_str!("../../docs/runbook.md");

/// The namespace of paybridge's own metrics (`paybridge::telemetry::METRIC_NAMESPACE`).
const NAMESPACE: &str = paybridge::telemetry::METRIC_NAMESPACE;

/// The functions an operator must hear about when they fail or are throttled.
const FUNCTIONS: &[&str] = &[
    "WebhookIntakeFunction",
    "ChargesFunction",
    "RefundsFunction",
    "RetryWorkerFunction",
    "ReconcilerFunction",
];

// ---- the conditions worth paging for ------------------------------------------------------------

/// One metric an alarm must watch: namespace, name and the exact dimensions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MetricRef {
    namespace: String,
    name: String,
    /// Dimension name → value as written (`charges`, `!Ref ChargesFunction`, `!GetAtt Q.QueueName`).
    dims: BTreeMap<String, String>,
}

fn metric(namespace: &str, name: &str, dims: &[(&str, &str)]) -> MetricRef {
    MetricRef {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        dims: dims
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// `(alarm, metric it must watch)`; an alarm over several series appears once per series.
fn paged_conditions() -> Vec<(String, MetricRef)> {
    let mut out = vec![
        (
            "DeadLetterQueueNotEmptyAlarm",
            metric(
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                &[("QueueName", "!GetAtt WorkDeadLetterQueue.QueueName")],
            ),
        ),
        (
            "WorkerLagAlarm",
            metric(
                "AWS/SQS",
                "ApproximateAgeOfOldestMessage",
                &[("QueueName", "!GetAtt WorkQueue.QueueName")],
            ),
        ),
        (
            "SignatureFailureSpikeAlarm",
            metric(
                NAMESPACE,
                "SignatureFailure",
                &[("Function", "webhook-intake")],
            ),
        ),
        (
            "NotificationsFailingAlarm",
            metric(
                NAMESPACE,
                "NotificationFailed",
                &[("Function", "retry-worker")],
            ),
        ),
        (
            "BillingEndpointDownAlarm",
            metric(
                NAMESPACE,
                "BillingSecondsSinceSuccess",
                &[("Function", "retry-worker")],
            ),
        ),
        (
            "NotificationsExhaustedAlarm",
            metric(
                NAMESPACE,
                "NotificationExhausted",
                &[("Function", "retry-worker")],
            ),
        ),
        (
            "ReconcilerUnknownAlarm",
            metric(NAMESPACE, "ReconcileUnknown", &[("Function", "reconciler")]),
        ),
        (
            "NeedsAttentionAlarm",
            metric(NAMESPACE, "NeedsAttention", &[("Function", "reconciler")]),
        ),
        (
            "ReconcilerIncompleteAlarm",
            metric(
                NAMESPACE,
                "ReconcileIncomplete",
                &[("Function", "reconciler")],
            ),
        ),
        (
            "ReconcilerNotRunningAlarm",
            metric(
                "AWS/Lambda",
                "Invocations",
                &[("FunctionName", "!Ref ReconcilerFunction")],
            ),
        ),
        (
            "ApiServerErrorsAlarm",
            metric(
                "AWS/ApiGateway",
                "5xx",
                &[("ApiId", "!Ref PaybridgeHttpApi")],
            ),
        ),
    ];
    for gateway in ["stripe", "adyen"] {
        for name in ["ChargeFailed", "ChargeSucceeded"] {
            out.push((
                "ChargeFailureRateAnomalyAlarm",
                metric(
                    NAMESPACE,
                    name,
                    &[("Function", "charges"), ("Gateway", gateway)],
                ),
            ));
        }
    }
    for gateway in ["stripe", "adyen", "standard"] {
        for (alarm, name) in [
            ("OrphanedEventsAlarm", "EventOrphaned"),
            ("ContradictingEventsAlarm", "EventContradicts"),
        ] {
            out.push((
                alarm,
                metric(
                    NAMESPACE,
                    name,
                    &[("Function", "retry-worker"), ("Gateway", gateway)],
                ),
            ));
        }
    }
    let mut out: Vec<(String, MetricRef)> = out
        .into_iter()
        .map(|(alarm, m)| (alarm.to_owned(), m))
        .collect();
    for function in FUNCTIONS {
        let base = function.trim_end_matches("Function");
        for name in ["Errors", "Throttles"] {
            out.push((
                format!("{base}{name}Alarm"),
                metric(
                    "AWS/Lambda",
                    name,
                    &[("FunctionName", &format!("!Ref {function}"))],
                ),
            ));
        }
    }
    out
}

#[test]
fn every_paged_condition_has_an_alarm_on_the_metric_that_shows_it() {
    let mut problems = Vec::new();
    for (alarm, expected) in paged_conditions() {
        let Some(resource) = resources().get(&alarm) else {
            problems.push(format!("{alarm}: missing"));
            continue;
        };
        if resource["Type"] != "AWS::CloudWatch::Alarm" {
            problems.push(format!("{alarm}: not an AWS::CloudWatch::Alarm"));
            continue;
        }
        let watched = alarm_metrics(&resource["Properties"]);
        if !watched.contains(&expected) {
            problems.push(format!(
                "{alarm}: does not watch {expected:?}; it watches {watched:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_function_has_an_errors_alarm_and_a_throttles_alarm() {
    let functions = resource_names("AWS::Serverless::Function");
    for function in FUNCTIONS {
        assert!(
            functions.contains(&function.to_string()),
            "{function} is not in template.yaml"
        );
    }
    let watched: Vec<MetricRef> = alarms()
        .iter()
        .flat_map(|(_, props)| alarm_metrics(props))
        .collect();
    for function in &functions {
        for name in ["Errors", "Throttles"] {
            let m = metric(
                "AWS/Lambda",
                name,
                &[("FunctionName", &format!("!Ref {function}"))],
            );
            assert!(
                watched.contains(&m),
                "no alarm watches {name} of {function}"
            );
        }
    }
}

#[test]
fn every_alarm_notifies_the_alarm_topic_when_it_fires_and_when_it_clears() {
    assert_eq!(
        resources()["AlarmTopic"]["Type"],
        "AWS::SNS::Topic",
        "AlarmTopic"
    );
    let topic = serde_json::json!({"Ref": "AlarmTopic"});
    for (name, props) in alarms() {
        for actions in ["AlarmActions", "OKActions"] {
            let listed = props[actions].as_array().cloned().unwrap_or_default();
            assert!(
                listed.contains(&topic),
                "{name}: {actions} does not include !Ref AlarmTopic ({listed:?})"
            );
        }
    }
}

#[test]
fn every_alarm_has_a_threshold_or_an_anomaly_band_and_a_missing_data_policy() {
    const STATIC: &[&str] = &[
        "GreaterThanThreshold",
        "GreaterThanOrEqualToThreshold",
        "LessThanThreshold",
        "LessThanOrEqualToThreshold",
    ];
    const BAND: &[&str] = &[
        "GreaterThanUpperThreshold",
        "LessThanLowerThreshold",
        "LessThanLowerOrGreaterThanUpperThreshold",
    ];
    for (name, props) in alarms() {
        let name = name.as_str();
        let operator = text(&props["ComparisonOperator"]);
        let missing = text(&props["TreatMissingData"]);
        assert!(
            ["breaching", "notBreaching", "ignore", "missing"].contains(&missing.as_str()),
            "{name}: TreatMissingData is {missing:?}"
        );
        let evaluation = number(&props["EvaluationPeriods"], name);
        assert!(evaluation >= 1.0, "{name}: EvaluationPeriods");
        if props.get("DatapointsToAlarm").is_some() {
            let (default, max) = number_and_max(&props["DatapointsToAlarm"], name);
            assert!(
                default <= evaluation && max <= evaluation,
                "{name}: DatapointsToAlarm can exceed EvaluationPeriods"
            );
        }
        let queries = props["Metrics"].as_array().cloned().unwrap_or_default();
        let returned = queries
            .iter()
            .filter(|q| text(&q["ReturnData"]) != "false")
            .count();
        match props.get("ThresholdMetricId") {
            Some(id) => {
                let id = text(id);
                assert!(
                    BAND.contains(&operator.as_str()),
                    "{name}: {operator} is not an anomaly-band operator"
                );
                assert!(
                    props.get("Threshold").is_none(),
                    "{name}: both a Threshold and a band"
                );
                let band = query(&queries, &id)
                    .unwrap_or_else(|| panic!("{name}: ThresholdMetricId {id} is no query"));
                let expression = text(&band["Expression"]);
                let argument = band_argument(&expression)
                    .unwrap_or_else(|| panic!("{name}: {id} is not ANOMALY_DETECTION_BAND(…)"));
                assert!(
                    query(&queries, &argument).is_some(),
                    "{name}: the band is around {argument}, which is no query"
                );
                assert_eq!(
                    returned, 2,
                    "{name}: an anomaly alarm returns its series and its band"
                );
            }
            None => {
                assert!(
                    STATIC.contains(&operator.as_str()),
                    "{name}: {operator:?} is not a threshold operator"
                );
                number(&props["Threshold"], name);
                if !queries.is_empty() {
                    assert_eq!(returned, 1, "{name}: a math alarm returns one series");
                }
            }
        }
    }
}

#[test]
fn the_charge_failure_alarm_puts_a_band_around_the_failure_rate_of_both_gateways() {
    let props = &resources()["ChargeFailureRateAnomalyAlarm"]["Properties"];
    let queries = props["Metrics"].as_array().cloned().unwrap_or_default();
    let band = query(&queries, &text(&props["ThresholdMetricId"])).expect("the band query");
    let series = band_argument(&text(&band["Expression"])).expect("ANOMALY_DETECTION_BAND(…)");
    let expression = text(&query(&queries, &series).expect("the series")["Expression"]);
    assert!(
        expression.contains('/'),
        "the band must be around a rate (failed / outcomes), not a count: {expression}"
    );
    // Every metric the series depends on, through the expressions it uses.
    let mut seen = BTreeSet::new();
    let mut todo = vec![series];
    let mut used = Vec::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let q = query(&queries, &id).unwrap_or_else(|| panic!("{id} is no query"));
        if let Some(stat) = q.get("MetricStat") {
            used.push(metric_ref(&stat["Metric"]));
            continue;
        }
        let expression = text(&q["Expression"]);
        for other in &queries {
            let other_id = text(&other["Id"]);
            if mentions(&expression, &other_id) {
                todo.push(other_id);
            }
        }
    }
    for gateway in ["stripe", "adyen"] {
        for name in ["ChargeFailed", "ChargeSucceeded"] {
            let m = metric(
                NAMESPACE,
                name,
                &[("Function", "charges"), ("Gateway", gateway)],
            );
            assert!(used.contains(&m), "the failure rate leaves out {m:?}");
        }
    }
}

#[test]
fn every_alarm_description_points_to_a_runbook_section_that_exists() {
    let anchors = runbook_anchors();
    let mut pointed = BTreeSet::new();
    for (name, props) in alarms() {
        let description = text(&props["AlarmDescription"]);
        assert!(
            description.len() <= 1024,
            "{name}: AlarmDescription over 1024 characters"
        );
        let anchor = description
            .split("docs/runbook.md#")
            .nth(1)
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect::<String>()
            })
            .unwrap_or_else(|| panic!("{name}: the description does not say docs/runbook.md#…"));
        assert!(
            anchors.contains(&anchor),
            "{name}: docs/runbook.md has no section #{anchor} (it has {anchors:?})"
        );
        pointed.insert(anchor);
    }
    assert!(
        pointed.len() >= 10,
        "alarms share too few sections: {pointed:?}"
    );
}

#[test]
fn every_threshold_an_operator_tunes_is_a_parameter_with_a_default_within_its_bounds() {
    let mut tuned = BTreeSet::new();
    for (name, props) in alarms() {
        for key in ["Threshold", "DatapointsToAlarm", "EvaluationPeriods"] {
            if let Some(parameter) = props[key].get("Ref").and_then(Value::as_str) {
                tuned.insert((name.clone(), parameter.to_owned()));
            }
        }
        for q in props["Metrics"].as_array().into_iter().flatten() {
            if let Some(sub) = q["Expression"].get("Fn::Sub").and_then(Value::as_str) {
                for reference in sub_references(sub) {
                    tuned.insert((name.clone(), reference));
                }
            }
        }
    }
    for alarm in [
        "WorkerLagAlarm",
        "SignatureFailureSpikeAlarm",
        "ChargeFailureRateAnomalyAlarm",
        "BillingEndpointDownAlarm",
    ] {
        assert!(
            tuned.iter().any(|(a, _)| a == alarm),
            "{alarm}: its threshold is not a parameter"
        );
    }
    for (alarm, parameter) in &tuned {
        let p = parameters()
            .get(parameter)
            .unwrap_or_else(|| panic!("{alarm}: {parameter} is not a parameter"));
        assert_eq!(p["Type"], "Number", "{parameter}");
        let default = number(&p["Default"], parameter);
        if let Some(min) = p.get("MinValue") {
            assert!(
                default >= number(min, parameter),
                "{parameter}: Default < MinValue"
            );
        }
        if let Some(max) = p.get("MaxValue") {
            assert!(
                default <= number(max, parameter),
                "{parameter}: Default > MaxValue"
            );
        }
        assert!(
            !text(&p["Description"]).is_empty(),
            "{parameter}: say what it tunes"
        );
    }
}

// ---- the metrics exist ------------------------------------------------------------------------

#[test]
fn every_paybridge_metric_the_alarms_and_the_dashboard_use_is_emitted_by_the_code() {
    let missing: BTreeSet<String> = used_paybridge_metrics()
        .into_iter()
        .map(|(_, m)| m.name)
        .filter(|name| !emits_metric(name))
        .collect();
    assert!(
        missing.is_empty(),
        "used by template.yaml but not in {METRIC_LIST}: {missing:?}"
    );
}

#[test]
fn every_paybridge_metric_the_alarms_and_the_dashboard_use_has_the_dimensions_the_catalog_lists() {
    let catalog = catalog();
    let mut problems = Vec::new();
    for (place, m) in used_paybridge_metrics() {
        let Some(entry) = catalog.get(&m.name) else {
            problems.push(format!("{place}: {} is not in docs/metrics.md", m.name));
            continue;
        };
        let names: BTreeSet<&String> = m.dims.keys().collect();
        let documented: BTreeSet<&String> = entry.keys().collect();
        if names != documented {
            problems.push(format!(
                "{place}: {} with dimensions {names:?}; it is emitted with {documented:?}",
                m.name
            ));
            continue;
        }
        for (dim, fixed) in entry {
            let value = &m.dims[dim];
            if let Some(fixed) = fixed
                && value != "*"
                && value != fixed
            {
                problems.push(format!(
                    "{place}: {} with {dim}={value}; it is emitted with {dim}={fixed}",
                    m.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_gateway_and_kind_values_the_template_uses_are_ones_the_code_emits() {
    let work = std::fs::read_to_string(workspace_root().join("shared/src/domain/work.rs"))
        .expect("shared/src/domain/work.rs");
    for (place, m) in used_paybridge_metrics() {
        if let Some(gateway) = m.dims.get("Gateway").filter(|v| *v != "*") {
            let known = paybridge::domain::Gateway::parse(gateway).map(|g| g.as_str());
            assert_eq!(
                known,
                Some(gateway.as_str()),
                "{place}: {} with Gateway={gateway}, which no gateway is called",
                m.name
            );
        }
        if let Some(kind) = m.dims.get("Kind").filter(|v| *v != "*") {
            // The worker's Kind is the first part of WorkMessage::dedup_key ("retry_charge:ch_…").
            assert!(
                work.contains(&format!("\"{kind}:")),
                "{place}: {} with Kind={kind}, which no work message key starts with",
                m.name
            );
        }
    }
}

#[test]
fn every_metric_in_the_catalog_is_emitted_by_the_code() {
    let missing: Vec<String> = catalog()
        .into_keys()
        .filter(|name| !emits_metric(name))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/metrics.md lists metrics no code emits: {missing:?}"
    );
}

#[test]
fn every_metric_the_code_names_in_count_or_value_is_in_the_catalog() {
    let catalog = catalog();
    let missing: BTreeSet<String> = metrics_named_in_count_or_value()
        .into_iter()
        .filter(|(name, _)| !catalog.contains_key(name))
        .map(|(name, file)| format!("{name} ({file})"))
        .collect();
    assert!(
        missing.is_empty(),
        "emitted but not described in docs/metrics.md: {missing:?}"
    );
}

// ---- the dashboard ----------------------------------------------------------------------------

#[test]
fn the_dashboard_is_json_once_substituted_and_shows_the_queues_and_every_function() {
    let body = dashboard();
    let widgets = body["widgets"].as_array().expect("widgets");
    assert!(widgets.len() >= 10, "only {} widgets", widgets.len());
    let mut shown = BTreeSet::new();
    for w in widgets {
        if w["type"] != "metric" {
            continue;
        }
        let title = &w["properties"]["title"];
        assert!(
            w["properties"]["region"] == "eu-west-1",
            "{title}: a metric widget needs \"region\": \"${{AWS::Region}}\""
        );
        for m in w["properties"]["metrics"].as_array().into_iter().flatten() {
            let parts: Vec<&str> = m
                .as_array()
                .into_iter()
                .flatten()
                .map_while(Value::as_str)
                .collect();
            for pair in parts.get(2..).unwrap_or_default().chunks(2) {
                if let [dim, value] = pair {
                    shown.insert((parts[0], parts[1], *dim, *value));
                }
            }
        }
    }
    for queue in ["WorkQueue", "WorkDeadLetterQueue"] {
        for name in [
            "ApproximateNumberOfMessagesVisible",
            "ApproximateAgeOfOldestMessage",
        ] {
            let value = format!("{queue}.QueueName");
            assert!(
                shown.contains(&("AWS/SQS", name, "QueueName", value.as_str())),
                "the dashboard does not show {name} of {queue}"
            );
        }
    }
    for function in resource_names("AWS::Serverless::Function") {
        for name in ["Errors", "Throttles", "Duration"] {
            assert!(
                shown.contains(&("AWS/Lambda", name, "FunctionName", function.as_str())),
                "the dashboard does not show {name} of {function}"
            );
        }
    }
}

#[test]
fn the_dashboard_shows_every_alarm() {
    let body = dashboard();
    let listed: BTreeSet<String> = body["widgets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| {
            w["properties"]["alarms"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|a| text(&a))
        .collect();
    for (name, _) in alarms() {
        assert!(
            listed.contains(&format!("{name}.Arn")),
            "the dashboard's alarm widget leaves out {name}"
        );
    }
}

#[test]
fn the_dashboard_widgets_do_not_overlap() {
    let body = dashboard();
    let mut cells = BTreeMap::new();
    for w in body["widgets"].as_array().expect("widgets") {
        let at = |k: &str| {
            w[k].as_u64()
                .unwrap_or_else(|| panic!("a widget without {k}"))
        };
        let (x, y, width, height) = (at("x"), at("y"), at("width"), at("height"));
        assert!(
            x + width <= 24,
            "{} is wider than the grid",
            w["properties"]["title"]
        );
        for cx in x..x + width {
            for cy in y..y + height {
                if let Some(other) = cells.insert((cx, cy), w["properties"]["title"].clone()) {
                    panic!(
                        "{} overlaps {other} at ({cx}, {cy})",
                        w["properties"]["title"]
                    );
                }
            }
        }
    }
}

#[test]
fn the_stack_outputs_the_dashboard_name() {
    let outputs = template()["Outputs"].as_object().expect("Outputs");
    let dashboards = resource_names("AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one dashboard: {dashboards:?}");
    assert_eq!(
        outputs
            .get("DashboardName")
            .map(|o| o["Value"].clone())
            .unwrap_or_default(),
        serde_json::json!({"Ref": dashboards[0]}),
        "output DashboardName"
    );
}

// ---- queues and logs ------------------------------------------------------------------------

#[test]
fn the_work_queue_hides_a_message_for_six_worker_timeouts_and_allows_five_receives() {
    let worker = &resources()["RetryWorkerFunction"]["Properties"];
    let source = worker["Events"]
        .as_object()
        .expect("the worker's Events")
        .values()
        .find(|e| e["Type"] == "SQS")
        .expect("the worker has an SQS event source");
    let queue_arn = text(&source["Properties"]["Queue"]["Fn::GetAtt"]);
    let queue_name = queue_arn
        .strip_suffix(".Arn")
        .unwrap_or_else(|| panic!("the worker's queue is {queue_arn}, not a queue's .Arn"));
    let queue = &resources()[queue_name]["Properties"];

    let timeout = match worker.get("Timeout") {
        Some(t) => number(t, "RetryWorkerFunction.Timeout"),
        None => number(
            &template()["Globals"]["Function"]["Timeout"],
            "Globals.Function.Timeout",
        ),
    };
    let visibility = number(&queue["VisibilityTimeout"], "VisibilityTimeout");
    assert!(
        visibility >= 6.0 * timeout,
        "{queue_name}: VisibilityTimeout {visibility} s < 6 x the worker's Timeout {timeout} s"
    );

    let receives = &queue["RedrivePolicy"]["maxReceiveCount"];
    let (default, _) = number_and_max(receives, "maxReceiveCount");
    assert!(
        default >= 5.0,
        "{queue_name}: maxReceiveCount {default} < 5"
    );
    if let Some(parameter) = receives.get("Ref").and_then(Value::as_str) {
        let min = parameters()[parameter]
            .get("MinValue")
            .map(|m| number(m, parameter));
        assert!(
            min.is_some_and(|m| m >= 5.0),
            "{parameter} can be set below 5 (MinValue {min:?})"
        );
    }
    let dlq = text(&queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"]);
    assert_eq!(
        dlq, "WorkDeadLetterQueue.Arn",
        "{queue_name} dead-letters into the DLQ the alarm watches"
    );
}

#[test]
fn the_billing_down_alarm_fires_long_before_the_delivery_schedule_runs_out() {
    let props = &resources()["BillingEndpointDownAlarm"]["Properties"];
    let threshold = &props["Threshold"];
    let parameter = threshold["Ref"].as_str().expect("a parameter");
    let (default, max) = number_and_max(threshold, parameter);
    let period = number(&props["Period"], "Period");
    let evaluations = number(&props["EvaluationPeriods"], "EvaluationPeriods");
    let schedule: f64 = paybridge::services::deliver::NOTIFICATION_SCHEDULE
        .iter()
        .map(|d| d.as_secs_f64())
        .sum();
    assert!(
        default + period * evaluations <= 2.0 * 3600.0,
        "fires {} s into an outage by default",
        default + period * evaluations
    );
    assert!(
        max + period * evaluations < schedule / 2.0,
        "{parameter} can be set so high that half the schedule ({schedule} s) passes first"
    );
}

#[test]
fn the_reconciler_expires_charges_waiting_for_their_customer_after_a_parameter_in_hours() {
    let env = &resources()["ReconcilerFunction"]["Properties"]["Environment"]["Variables"];
    let expiry = &env["PAYBRIDGE_ACTION_EXPIRY_HOURS"];
    assert_eq!(
        expiry["Ref"], "ActionExpiryHours",
        "the reconciler reads the expiry from the template's parameter: {expiry}"
    );
    let p = &parameters()["ActionExpiryHours"];
    assert_eq!(p["Type"], "Number");
    let (default, min, max) = (
        number(&p["Default"], "Default"),
        number(&p["MinValue"], "MinValue"),
        number(&p["MaxValue"], "MaxValue"),
    );
    assert_eq!(default, 24.0, "the documented default");
    // Every value the template allows is one the functions' config accepts, and no other.
    let config = |hours: f64| {
        let vars = [
            ("PAYBRIDGE_TABLE", "t".to_owned()),
            ("PAYBRIDGE_WORK_QUEUE_URL", "q".to_owned()),
            ("PAYBRIDGE_SECRET_ID", "s".to_owned()),
            ("PAYBRIDGE_ACTION_EXPIRY_HOURS", format!("{hours}")),
        ];
        paybridge::config::Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
        .map(|c| c.action_expiry.as_secs())
    };
    assert_eq!(config(min).unwrap(), 3600 * min as u64);
    assert_eq!(config(max).unwrap(), 3600 * max as u64);
    assert_eq!(config(default).unwrap(), 24 * 3600);
    assert!(config(min - 1.0).is_err() && config(max + 1.0).is_err());
}

#[test]
fn every_function_has_a_log_group_with_retention() {
    let groups: Vec<&Value> = resources()
        .values()
        .filter(|r| r["Type"] == "AWS::Logs::LogGroup")
        .map(|r| &r["Properties"])
        .collect();
    for function in resource_names("AWS::Serverless::Function") {
        let name = serde_json::json!({"Fn::Sub": format!("/aws/lambda/${{{function}}}")});
        let group = groups
            .iter()
            .find(|g| g["LogGroupName"] == name)
            .unwrap_or_else(|| panic!("{function} has no log group /aws/lambda/${{{function}}}"));
        let retention = group.get("RetentionInDays").unwrap_or_else(|| {
            panic!("{function}: its log group has no RetentionInDays (logs kept forever)")
        });
        let (days, _) = number_and_max(retention, "RetentionInDays");
        assert!(days >= 1.0, "{function}: its logs are kept {days} days");
    }
}

// ---- reading the alarms and the dashboard -------------------------------------------------------

fn metric_ref(metric: &Value) -> MetricRef {
    MetricRef {
        namespace: text(&metric["Namespace"]),
        name: text(&metric["MetricName"]),
        dims: metric["Dimensions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| (text(&d["Name"]), text(&d["Value"])))
            .collect(),
    }
}

/// Every metric an alarm reads: its single metric, or every `MetricStat` of its queries.
fn alarm_metrics(props: &Value) -> Vec<MetricRef> {
    let mut out = Vec::new();
    if props.get("MetricName").is_some() {
        out.push(metric_ref(props));
    }
    for q in props["Metrics"].as_array().into_iter().flatten() {
        if let Some(stat) = q.get("MetricStat") {
            out.push(metric_ref(&stat["Metric"]));
        }
    }
    out
}

fn query(queries: &[Value], id: &str) -> Option<Value> {
    queries.iter().find(|q| q["Id"] == id).cloned()
}

/// `failureRate` of `ANOMALY_DETECTION_BAND(failureRate, 3)` (a `!Sub` already shown as text).
fn band_argument(expression: &str) -> Option<String> {
    let inner = expression
        .trim_start_matches("!Sub ")
        .trim()
        .strip_prefix("ANOMALY_DETECTION_BAND(")?;
    Some(inner.split([',', ')']).next()?.trim().to_owned())
}

/// Whether `expression` uses the query id `id` as a whole word.
fn mentions(expression: &str, id: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    expression
        .split(|c: char| !word(c))
        .any(|token| token == id)
}

/// The dashboard body with its `${…}` substituted: pseudo parameters by example values,
/// parameters by their defaults, resources by their own names (`${WorkQueue.QueueName}` →
/// `WorkQueue.QueueName`), so the tests can see what each widget refers to.
fn dashboard() -> Value {
    let names = resource_names("AWS::CloudWatch::Dashboard");
    let body = names
        .first()
        .map(|name| resources()[name]["Properties"]["DashboardBody"]["Fn::Sub"].clone())
        .and_then(|b| b.as_str().map(str::to_owned))
        .expect("a dashboard whose DashboardBody is a !Sub string");
    let out = substituted(&body, "the dashboard");
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("the dashboard body is not JSON once substituted: {e}\n{out}"))
}

/// Every `Paybridge` metric in the alarms and the dashboard, with where it is used. Dimensions
/// a dashboard `SEARCH` leaves open have the value `*`.
fn used_paybridge_metrics() -> Vec<(String, MetricRef)> {
    let mut out = Vec::new();
    for (name, props) in alarms() {
        for m in alarm_metrics(&props) {
            if m.namespace == NAMESPACE {
                out.push((name.clone(), m));
            }
        }
    }
    for w in dashboard()["widgets"].as_array().into_iter().flatten() {
        let place = format!("dashboard widget {}", w["properties"]["title"]);
        for m in w["properties"]["metrics"].as_array().into_iter().flatten() {
            let entry = m.as_array().cloned().unwrap_or_default();
            if let Some(expression) = entry.first().and_then(|e| e["expression"].as_str()) {
                out.extend(search_metric(expression).map(|m| (place.clone(), m)));
                continue;
            }
            let parts: Vec<&str> = entry.iter().map_while(Value::as_str).collect();
            if parts.first() != Some(&NAMESPACE) {
                continue;
            }
            let dims: Vec<(&str, &str)> = parts[2..]
                .chunks(2)
                .map(|pair| (pair[0], pair.get(1).copied().unwrap_or_default()))
                .collect();
            out.push((place.clone(), metric(NAMESPACE, parts[1], &dims)));
        }
    }
    assert!(
        out.len() > 20,
        "found only {} Paybridge metrics in use; is the reader broken?",
        out.len()
    );
    out
}

/// The metric of `SEARCH('{Paybridge,Function,Reason} Function="x" MetricName="Y"', …)`.
fn search_metric(expression: &str) -> Option<MetricRef> {
    let query = expression.strip_prefix("SEARCH('")?.split('\'').next()?;
    let (schema, terms) = query.strip_prefix('{')?.split_once('}')?;
    let mut schema = schema.split(',').map(str::trim);
    let namespace = schema.next()?;
    let mut dims: BTreeMap<String, String> = schema.map(|d| (d.to_owned(), "*".into())).collect();
    let mut name = None;
    for term in terms.split_whitespace() {
        let (key, value) = term.split_once('=')?;
        let value = value.trim_matches('"').to_owned();
        if key == "MetricName" {
            name = Some(value);
        } else {
            dims.insert(key.to_owned(), value);
        }
    }
    Some(MetricRef {
        namespace: namespace.to_owned(),
        name: name?,
        dims,
    })
}

// ---- reading the catalog and the runbook --------------------------------------------------------

/// docs/metrics.md: metric → dimension → its fixed value (`Function=charges`), or `None` when
/// it varies (`Gateway`). Rows look like
/// ``| `ChargeFailed` | `Function=charges` `Gateway` | Count | … |``.
fn catalog() -> BTreeMap<String, BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    for line in CATALOG.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_owned();
        let dims = cells[2]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|d| match d.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (d.to_owned(), None),
            })
            .collect();
        assert!(
            out.insert(name.clone(), dims).is_none(),
            "docs/metrics.md lists {name} twice"
        );
    }
    assert!(
        out.len() > 20,
        "docs/metrics.md: found only {} rows",
        out.len()
    );
    out
}

/// GitHub's anchors of the runbook's headings.
fn runbook_anchors() -> BTreeSet<String> {
    RUNBOOK
        .lines()
        .filter_map(|l| l.strip_prefix("## ").or_else(|| l.strip_prefix("### ")))
        .map(|heading| {
            heading
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

// ---- Stripe through Amazon EventBridge ----------------------------------------------------------

/// The resources that exist only when `StripeEventBridgeSource` is set.
const STRIPE_EVENTBRIDGE: &[&str] = &[
    "StripeEventBridgeRule",
    "StripeEventBridgeInvokePermission",
    "StripeEventBridgeInvokeConfig",
    "StripeEventBridgeFailurePolicy",
    "StripeEventBridgeFailedQueue",
    "StripeEventBridgeFailedQueuePolicy",
];

#[test]
fn stripe_through_eventbridge_is_off_by_default_and_switched_on_by_its_parameter() {
    let parameter = &parameters()["StripeEventBridgeSource"];
    assert_eq!(
        parameter["Default"], "",
        "off unless an operator names the source"
    );
    assert_eq!(
        template()["Conditions"]["StripeEventBridgeOn"],
        serde_json::json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "StripeEventBridgeSource"}, ""]}]})
    );
    for name in STRIPE_EVENTBRIDGE {
        assert_eq!(
            resources()[*name]["Condition"],
            "StripeEventBridgeOn",
            "{name} exists only when switched on"
        );
    }
    let intake = &resources()["WebhookIntakeFunction"]["Properties"];
    assert_eq!(
        intake["Environment"]["Variables"]["PAYBRIDGE_STRIPE_EVENT_SOURCE"],
        serde_json::json!({"Ref": "StripeEventBridgeSource"}),
        "intake checks the source it is given"
    );
}

#[test]
fn only_the_rule_on_the_stripe_partner_bus_may_invoke_intake_and_what_fails_is_kept() {
    let by_ref = |name: &str| serde_json::json!({"Ref": name});
    let rule = &resources()["StripeEventBridgeRule"]["Properties"];
    assert_eq!(rule["EventBusName"], by_ref("StripeEventBridgeSource"));
    assert_eq!(
        rule["EventPattern"]["source"],
        serde_json::json!([by_ref("StripeEventBridgeSource")])
    );
    let targets = rule["Targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 1, "{targets:?}");
    let target = &targets[0];
    assert_eq!(
        target["Arn"],
        serde_json::json!({"Fn::GetAtt": "WebhookIntakeFunction.Arn"})
    );
    let failed_queue = serde_json::json!({"Fn::GetAtt": "StripeEventBridgeFailedQueue.Arn"});
    assert_eq!(target["DeadLetterConfig"]["Arn"], failed_queue);
    assert!(
        number(
            &target["RetryPolicy"]["MaximumEventAgeInSeconds"],
            "event age"
        ) >= 3600.0
    );

    let permission = &resources()["StripeEventBridgeInvokePermission"]["Properties"];
    assert_eq!(
        (
            &permission["Action"],
            &permission["Principal"],
            &permission["FunctionName"]
        ),
        (
            &serde_json::json!("lambda:InvokeFunction"),
            &serde_json::json!("events.amazonaws.com"),
            &by_ref("WebhookIntakeFunction")
        )
    );
    assert_eq!(
        permission["SourceArn"],
        serde_json::json!({"Fn::GetAtt": "StripeEventBridgeRule.Arn"}),
        "scoped to the rule: no other rule or bus may invoke intake"
    );
    let permissions = resource_names("AWS::Lambda::Permission");
    let for_intake: Vec<_> = permissions
        .iter()
        .filter(|p| {
            resources()[p.as_str()]["Properties"]["FunctionName"] == by_ref("WebhookIntakeFunction")
        })
        .collect();
    assert_eq!(
        for_intake,
        ["StripeEventBridgeInvokePermission"],
        "no broader grant beside it"
    );

    // Invocations that still fail after Lambda's retries land in the same queue.
    let config = &resources()["StripeEventBridgeInvokeConfig"]["Properties"];
    assert_eq!(config["FunctionName"], by_ref("WebhookIntakeFunction"));
    assert_eq!(
        config["DestinationConfig"]["OnFailure"]["Destination"],
        failed_queue
    );
    let queue_policy = &resources()["StripeEventBridgeFailedQueuePolicy"]["Properties"];
    assert_eq!(
        queue_policy["PolicyDocument"]["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"],
        serde_json::json!({"Fn::GetAtt": "StripeEventBridgeRule.Arn"}),
        "only the rule may put dead letters"
    );
}
