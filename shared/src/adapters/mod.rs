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

use std::time::Duration;

/// The shared AWS configuration: region, credentials and endpoint from the environment, with
/// timeouts short enough that a dead dependency fails a request well inside the function timeout.
pub use aws_config::SdkConfig;

/// The AWS configuration every client is built from.
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
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
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
    let secrets = load_secrets(&aws, &config.secret_id).await?;
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
