//! Times each step of a function's init on its own, in one fresh process, against the stack in
//! the environment (`AWS_ENDPOINT_URL`, `PAYBRIDGE_*`): where the init time goes, finer than the
//! functions' `init_phases` line can say. Each step is timed once, in the order a function takes
//! it; a call made twice shows what the first one paid once (connector, TLS roots, credentials,
//! endpoint rules, a connection).
//!
//! `init-probe default` takes the steps the way the SDK and reqwest do by default (one HTTP
//! client and TLS configuration per client, the default credential and region chains);
//! `init-probe paybridge` the way `paybridge::adapters` does. `make bench-lambdas PROBE=1` runs
//! both (docs/performance.md reads them); by hand: `cargo run --release -p init-probe -- default`
//! with a stack's env file sourced.

use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::config::ProvideCredentials;

async fn timed<T, F: std::future::Future<Output = T>>(name: &str, step: F) -> T {
    let started = Instant::now();
    let out = step.await;
    println!(
        "{name:<62} {:>8.3} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let paybridge = match std::env::args().nth(1).as_deref() {
        Some("paybridge") => true,
        Some("default") => false,
        _ => return Err("usage: init-probe default|paybridge".into()),
    };
    println!(
        "# init-probe {}",
        if paybridge { "paybridge" } else { "default" }
    );
    timed("telemetry::init (subscriber, env filter)", async {
        paybridge::telemetry::init()
    })
    .await;
    let config = timed("Config::from_env", async {
        paybridge::config::Config::from_env()
    })
    .await?;
    let aws = if paybridge {
        timed(
            "adapters::aws_config (env region+credentials, one HTTP client)",
            paybridge::adapters::aws_config(),
        )
        .await
    } else {
        timed(
            "aws_config::defaults().load() (default chains)",
            aws_config::defaults(aws_config::BehaviorVersion::latest()).load(),
        )
        .await
    };
    let sm = timed("secretsmanager Client::new", async {
        aws_sdk_secretsmanager::Client::new(&aws)
    })
    .await;
    let ddb = timed("dynamodb Client::new", async {
        aws_sdk_dynamodb::Client::new(&aws)
    })
    .await;
    let sqs = timed("sqs Client::new", async { aws_sdk_sqs::Client::new(&aws) }).await;
    timed("credentials, first resolution", async {
        let provider = aws
            .credentials_provider()
            .ok_or("no credentials provider")?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| e.to_string())
    })
    .await?;
    let fetch = || sm.get_secret_value().secret_id(&config.secret_id).send();
    timed(
        "GetSecretValue, first (connector, TLS roots, connect)",
        fetch(),
    )
    .await?;
    timed("GetSecretValue, second", fetch()).await?;
    timed("DynamoDB DescribeTable, first (another client)", async {
        ddb.describe_table().table_name(&config.table).send().await
    })
    .await?;
    timed("SQS GetQueueAttributes, first (another client)", async {
        sqs.get_queue_attributes()
            .queue_url(&config.work_queue_url)
            .send()
            .await
    })
    .await?;
    let build = || async {
        if paybridge {
            paybridge::adapters::gateways::http_client(Duration::from_secs(10))
        } else {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a reqwest client")
        }
    };
    timed(
        "reqwest client, first (platform verifier: system roots)",
        build(),
    )
    .await;
    timed("reqwest client, second", build()).await;
    Ok(())
}
