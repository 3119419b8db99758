//! Helpers for the integration tests: the local stack's settings, unique names, API Gateway
//! events, and queue inspection.
//!
//! Layout: [`template`] reads template.yaml, [`openapi`] reads openapi.json and checks values
//! against its schemas, [`sources`] finds what the code emits (metric names, error codes),
//! [`stripe_proxy`] stands between the tests and localstripe; the stack helpers are here.
//!
//! The tests run against the real local stack that `make test` starts (moto server for DynamoDB,
//! SQS and Secrets Manager; localstripe). Its settings arrive in the environment, exactly as the
//! functions get them; without them the tests stop with a message saying how to run them.

pub mod builders;
pub mod openapi;
pub mod sources;
pub mod stripe_proxy;
pub mod template;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use paybridge::adapters::SdkConfig;
use paybridge::config::Config;
use paybridge::secrets::Secrets;
use serde_json::json;

/// The local stack as the tests see it.
pub struct Stack {
    pub aws: SdkConfig,
    pub config: Config,
    pub secrets: Secrets,
}

/// Connects to the local stack named by the environment.
pub async fn stack() -> Stack {
    // Read without installing the process's notification targets: use cases run in a test
    // write for billing's endpoint only, unless the test sets a notification's targets itself
    // (the functions of the stack run with the targets of its env file).
    let config = Config::from_lookup(|name| std::env::var(name).ok()).unwrap_or_else(|e| {
        panic!("{e}\nThe integration tests need the local stack: run them with `make test`.")
    });
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1"),
        "AWS_ENDPOINT_URL must point at the local moto server (got `{endpoint}`); run the tests with `make test`"
    );
    let aws = paybridge::adapters::aws_config().await;
    let secrets = Secrets::from_json(include_str!("../../local/secrets.json"))
        .expect("local/secrets.json parses");
    Stack {
        aws,
        config,
        secrets,
    }
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    // 32 random hex digits hold a Luhn-valid run of 13+ decimal digits about once in 150 draws;
    // paybridge rightly refuses such an id in a request and masks it in a stored payload, so a
    // test id is drawn again until it holds none (as paybridge's own ids are).
    loop {
        let id = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
        if !paybridge::domain::pci::contains_pan(&id) {
            return id;
        }
    }
}

/// Unix seconds now (tests that need a later time add to it; none sleeps through a schedule).
pub fn unix_now() -> i64 {
    paybridge::clock::now_secs()
}

impl Stack {
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.aws)
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.aws)
    }

    /// A fresh queue for one test, so it can count exactly the messages it caused.
    pub async fn new_queue(&self) -> String {
        let out = self
            .sqs()
            .create_queue()
            .queue_name(unique("test-"))
            .attributes(QueueAttributeName::VisibilityTimeout, "30")
            .send()
            .await
            .expect("create test queue");
        out.queue_url.expect("queue url")
    }

    /// A fresh table with the same keys and indexes as the stack's (which comes from
    /// template.yaml), for tests that must see only their own data — the reconciler reads
    /// everything in flight in its table.
    pub async fn new_table(&self) -> String {
        use aws_sdk_dynamodb::types::{
            BillingMode, GlobalSecondaryIndex, Projection, ProjectionType,
        };
        let ddb = self.dynamodb();
        let described = ddb
            .describe_table()
            .table_name(&self.config.table)
            .send()
            .await
            .expect("describe table");
        let table = described.table.expect("table description");
        let name = unique("test-table-");
        let mut create = ddb
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(table.attribute_definitions)
            .set_key_schema(table.key_schema);
        for gsi in table.global_secondary_indexes.unwrap_or_default() {
            create = create.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .set_index_name(gsi.index_name)
                    .set_key_schema(gsi.key_schema)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .expect("index"),
            );
        }
        create.send().await.expect("create test table");
        name
    }

    /// Every message currently on `queue_url`, received and deleted.
    pub async fn drain(&self, queue_url: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let out = self
                .sqs()
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let msgs = out.messages.unwrap_or_default();
            if msgs.is_empty() {
                return bodies;
            }
            for m in msgs {
                bodies.push(m.body.unwrap_or_default());
                if let Some(h) = m.receipt_handle {
                    self.sqs()
                        .delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(h)
                        .send()
                        .await
                        .expect("delete");
                }
            }
        }
    }
}

/// An API Gateway HTTP API (v2) request event for `method path`, as AWS would send it.
pub fn api_request(
    route_key: &str,
    path: &str,
    path_parameters: &[(&str, &str)],
    headers: &[(&str, &str)],
    body: &[u8],
    base64: bool,
) -> lambda_http::Request {
    api_request_with_query(route_key, path, path_parameters, &[], headers, body, base64)
}

/// [`api_request`] with a query string.
pub fn api_request_with_query(
    route_key: &str,
    path: &str,
    path_parameters: &[(&str, &str)],
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    body: &[u8],
    base64: bool,
) -> lambda_http::Request {
    use base64::Engine;
    let (method, _) = route_key.split_once(' ').unwrap_or(("POST", ""));
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    let params: HashMap<&str, &str> = path_parameters.iter().copied().collect();
    let body = if base64 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        String::from_utf8(body.to_vec()).expect("non-base64 bodies must be UTF-8")
    };
    let raw_query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let query_params: HashMap<&str, &str> = query.iter().copied().collect();
    let event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query.join("&"),
        "queryStringParameters": query_params,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "127.0.0.1",
            "domainPrefix": "local", "requestId": unique("req-"), "routeKey": route_key,
            "stage": "$default", "time": "27/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "paybridge-tests" }
        },
        "pathParameters": params,
        "body": body,
        "isBase64Encoded": base64,
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event")
}

/// Polls `check` until it returns `Some`, or panics after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A handler's HTTP answer, read for assertions.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// `Idempotent-Replayed: true` was set.
    pub replayed: bool,
    pub retry_after: Option<u64>,
}

impl Reply {
    pub fn from_response(resp: lambda_http::Response<lambda_http::Body>) -> Reply {
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let body = match resp.body() {
            lambda_http::Body::Text(t) => t.clone(),
            lambda_http::Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        Reply {
            status: resp.status().as_u16(),
            replayed: header("idempotent-replayed").as_deref() == Some("true"),
            retry_after: header("retry-after").and_then(|v| v.parse().ok()),
            body,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("JSON body: {}", self.body))
    }

    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A billing-route POST as API Gateway would deliver it (JSON body, optional Idempotency-Key).
pub fn post_event(
    route_key: &str,
    path: &str,
    key: Option<&str>,
    body: &serde_json::Value,
) -> lambda_http::Request {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    api_request(
        route_key,
        path,
        &[],
        &headers,
        body.to_string().as_bytes(),
        false,
    )
}

/// A billing-route GET as API Gateway would deliver it.
pub fn get_event(route_key: &str, path: &str, query: &[(&str, &str)]) -> lambda_http::Request {
    api_request_with_query(route_key, path, &[], query, &[], b"", false)
}

/// Plays the SQS event source mapping once: receives up to 10 messages from `queue_url` (with
/// their system attributes) and returns them as the `SqsEvent` Lambda would deliver, plus each
/// message's receipt handle by message id, so the caller can delete what the handler did not
/// report as failed.
pub async fn receive_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    wait: Duration,
) -> (
    aws_lambda_events::event::sqs::SqsEvent,
    HashMap<String, String>,
) {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait.as_secs() as i32)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive");
    let mut receipts = HashMap::new();
    let records: Vec<serde_json::Value> = out
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let id = m.message_id.clone().unwrap_or_default();
            receipts.insert(id.clone(), m.receipt_handle.clone().unwrap_or_default());
            let attributes: HashMap<String, String> = m
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v))
                .collect();
            json!({
                "messageId": id, "receiptHandle": m.receipt_handle, "body": m.body,
                "attributes": attributes, "messageAttributes": {}, "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:test", "awsRegion": "us-east-1"
            })
        })
        .collect();
    let event = serde_json::from_value(json!({ "Records": records })).expect("an SQS event");
    (event, receipts)
}
