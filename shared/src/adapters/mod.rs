//! Adapters: the ports implemented with AWS services and gateway HTTP APIs.
//!
//! Every AWS client is built from [`aws_config()`], which honours `AWS_ENDPOINT_URL`, so the same
//! code talks to AWS in the cloud and to moto server locally.

pub mod billing;
pub mod dynamodb;
pub mod eventbridge;
pub mod gateways;
pub mod secrets_manager;
pub mod sqs;
pub mod tls;

use std::time::Duration;

/// The shared AWS configuration: region, credentials and endpoint from the environment, with
/// timeouts short enough that a dead dependency fails a request well inside the function timeout.
pub use aws_config::SdkConfig;

/// The AWS configuration every client is built from.
///
/// One HTTP client for every AWS client of the process: one TLS configuration (the system's
/// roots read once, not once per service), one connection pool. In Lambda ([`in_lambda`]) the
/// region and the credentials are read from the environment Lambda sets, without building the
/// default chains (profile, web identity, SSO, ECS and IMDS providers, each with its own
/// clients) that would only be tried after the environment anyway; anywhere else (tests,
/// `paybridge-ops` on a laptop) the default chains apply. (The profile files are still looked
/// for, for the other settings: aws-config refuses an empty set, and Lambda has none to read.)
pub async fn aws_config() -> aws_config::SdkConfig {
    // PAYBRIDGE_AWS_OPERATION_TIMEOUT_SECS (default 7) bounds a call including its retries; the
    // local stack raises it because moto serialises DynamoDB requests.
    let operation = std::env::var("PAYBRIDGE_AWS_OPERATION_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| (1..=300).contains(s))
        .unwrap_or(7);
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3).max(Duration::from_secs(operation / 2)))
        .operation_timeout(Duration::from_secs(operation))
        .build();
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .http_client(aws_http_client());
    let loader = if in_lambda() {
        use aws_config::environment::{
            EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
        };
        loader
            .region(EnvironmentVariableRegionProvider::new())
            .credentials_provider(EnvironmentVariableCredentialsProvider::new())
    } else {
        loader
    };
    loader.load().await
}

/// True in a Lambda execution environment that carries its credentials in the environment (as
/// Lambda does; `cargo lambda watch` and `make bench` too).
fn in_lambda() -> bool {
    let set = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    set("AWS_LAMBDA_FUNCTION_NAME")
        && set("AWS_REGION")
        && set("AWS_ACCESS_KEY_ID")
        && set("AWS_SECRET_ACCESS_KEY")
}

/// The SDK's HTTPS client (hyper 1 on rustls, the proxy settings of the environment), built once
/// for all the clients of an [`SdkConfig`] instead of once per client. Its crypto is ring, as for
/// the reqwest clients ([`tls`]), not the SDK's default aws-lc: one crypto library in the binary
/// instead of two, about a megabyte less to ship and load (docs/performance.md).
fn aws_http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut builder =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    })
}

/// What every function builds once at init, before its first invocation.
pub struct Init {
    pub config: crate::config::Config,
    pub aws: SdkConfig,
    pub secrets: std::sync::Arc<crate::secrets::Secrets>,
}

/// A function's init: JSON logs, the settings from the environment, the AWS configuration and
/// the secret — failing with a clear message (and so failing the init) if any is missing.
pub async fn init() -> Result<Init, crate::error::BoxError> {
    use crate::init_phases::phase;
    phase("main");
    crate::telemetry::init();
    phase("telemetry");
    let config = crate::config::Config::from_env()?;
    phase("config");
    let aws = aws_config().await;
    phase("aws_config");
    // The system roots for the gateways' and billing's HTTPS clients are read on a blocking thread
    // while the secret is on its way.
    let tls = tokio::task::spawn_blocking(tls::warm);
    let secrets = load_secrets(&aws, &config.secret_id).await;
    let _ = tls.await;
    let secrets = secrets?;
    phase("secret");
    Ok(Init {
        config,
        aws,
        secrets,
    })
}

/// Loads the one JSON secret at init, with an error that names it (functions fail at init, with
/// this message, rather than inside a handler).
pub async fn load_secrets(
    aws: &SdkConfig,
    secret_id: &str,
) -> Result<std::sync::Arc<crate::secrets::Secrets>, String> {
    use crate::ports::SecretSource;
    secrets_manager::SecretsManagerSource::from_conf(aws, secret_id)
        .secrets()
        .await
        .map_err(|e| format!("loading secret {secret_id}: {e}"))
}
