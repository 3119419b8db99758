//! Adapters: the ports implemented with AWS services and gateway HTTP APIs.
//!
//! Every AWS client is built from [`aws_config()`], which honours `AWS_ENDPOINT_URL`, so the same
//! code talks to AWS in the cloud and to moto server locally.

pub mod aws_http;
pub mod billing;
pub mod dynamodb;
pub mod eventbridge;
pub mod gateways;
pub mod secrets_manager;
pub mod sqs;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

pub use aws_sdk_dynamodb::config::Region;
/// The shared AWS configuration every client is built from.
pub use aws_types::SdkConfig;

/// The AWS configuration every client is built from: region, credentials and endpoint from the
/// environment, with timeouts short enough that a dead dependency fails a request well inside
/// the function timeout, and one HTTP client for every AWS client of the process (one TLS
/// configuration, the system's roots read once, one connection pool).
///
/// In Lambda ([`in_lambda`]) — and in every function's build — it is built from the variables
/// Lambda sets (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`)
/// and `AWS_ENDPOINT_URL`, without aws-config's loader: no credential or region chains (profile,
/// web identity, SSO, ECS, IMDS), no profile files, none of their code in the binary
/// (docs/performance.md). With the `default-chains` feature (tests, `paybridge-ops`), anywhere
/// but Lambda the SDK's default chains apply, as a laptop or a CI runner needs.
pub async fn aws_config() -> SdkConfig {
    #[cfg(feature = "default-chains")]
    if !in_lambda() {
        return aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(timeouts())
            .stalled_stream_protection(stalled_stream_protection())
            .http_client(aws_http_client())
            .load()
            .await;
    }
    from_environment()
}

/// Bounds on every AWS call. PAYBRIDGE_AWS_OPERATION_TIMEOUT_SECS (default 7) bounds a call
/// including its retries; the local stack raises it because moto serialises DynamoDB requests.
fn timeouts() -> aws_sdk_dynamodb::config::timeout::TimeoutConfig {
    let operation = std::env::var("PAYBRIDGE_AWS_OPERATION_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| (1..=300).contains(s))
        .unwrap_or(7);
    aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3).max(Duration::from_secs(operation / 2)))
        .operation_timeout(Duration::from_secs(operation))
        .build()
}

/// The SDK's stalled-stream protection for downloads only. The connector ([`aws_http`]) sends a
/// request's body from memory without polling the SDK's body stream, so the upload monitor would
/// see 0 B/s and fail any call that waits longer than its 5 s grace period for the answer
/// ("minimum throughput was specified at 1 B/s, but throughput of 0 B/s was observed").
fn stalled_stream_protection() -> aws_sdk_dynamodb::config::StalledStreamProtectionConfig {
    aws_sdk_dynamodb::config::StalledStreamProtectionConfig::enabled()
        .upload_enabled(false)
        .build()
}

/// The configuration Lambda's environment gives, and what aws-config's loader would have added
/// to it there: the standard retry mode (3 attempts), the Tokio sleep and the system clock, the
/// latest behaviour version, a lazy identity cache. A variable that is missing leaves its part
/// unset, and [`missing_environment`] says which before a function starts.
fn from_environment() -> SdkConfig {
    use aws_sdk_dynamodb::config::{
        BehaviorVersion, Credentials, IdentityCache, SharedCredentialsProvider, retry::RetryConfig,
    };
    let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .stalled_stream_protection(stalled_stream_protection())
        .retry_config(RetryConfig::standard())
        .http_client(aws_http_client())
        .identity_cache(IdentityCache::lazy().build())
        .time_source(aws_smithy_async::time::SystemTimeSource::new());
    builder.set_sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep());
    builder.set_region(var("AWS_REGION").map(Region::new));
    builder.set_endpoint_url(var("AWS_ENDPOINT_URL"));
    if let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        let credentials =
            Credentials::new(key, secret, var("AWS_SESSION_TOKEN"), None, "Environment");
        builder.set_credentials_provider(Some(SharedCredentialsProvider::new(credentials)));
    }
    builder.build()
}

/// The variables a function's AWS configuration needs that the environment lacks (empty in
/// Lambda, which sets them all), so a function started elsewhere fails at init and says why.
pub fn missing_environment() -> Vec<&'static str> {
    if cfg!(feature = "default-chains") {
        return Vec::new();
    }
    ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        .into_iter()
        .filter(|name| std::env::var_os(name).is_none_or(|v| v.is_empty()))
        .collect()
}

/// True in a Lambda execution environment that carries its credentials in the environment (as
/// Lambda does; `cargo lambda watch` and `make bench` too).
#[cfg(feature = "default-chains")]
fn in_lambda() -> bool {
    let set = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    set("AWS_LAMBDA_FUNCTION_NAME")
        && set("AWS_REGION")
        && set("AWS_ACCESS_KEY_ID")
        && set("AWS_SECRET_ACCESS_KEY")
}

/// The HTTP client of every AWS client of the process: reqwest on the shared TLS configuration
/// ([`aws_http`]), built on the first request.
fn aws_http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_http::client()
}

/// What every function builds at init: nothing that waits on the network or reads a file. The
/// secret is fetched on first use ([`OnFirstUse`]).
pub struct Init {
    pub config: crate::config::Config,
    pub aws: SdkConfig,
    /// The secret, fetched once, on first use.
    pub secret: Arc<secrets_manager::SecretsManagerSource>,
}

impl Init {
    /// The secret (fetched by the first caller, then kept), with an error that names it.
    pub async fn secrets(&self) -> Result<Arc<crate::secrets::Secrets>, crate::ports::SecretError> {
        use crate::ports::SecretSource;
        self.secret.secrets().await
    }
}

/// A function's init: JSON logs, the settings from the environment and the AWS configuration —
/// failing with a clear message (and so failing the init) if any is missing. The secret is not
/// fetched here: the first invocation fetches it ([`OnFirstUse`]) and fails with
/// "loading secret …" if it cannot be had, and the one after tries again.
pub async fn init() -> Result<Init, crate::error::BoxError> {
    use crate::init_phases::phase;
    phase("main");
    crate::telemetry::init();
    phase("telemetry");
    let config = crate::config::Config::from_env()?;
    let missing = missing_environment();
    if !missing.is_empty() {
        return Err(format!("{} must be set (Lambda sets them)", missing.join(", ")).into());
    }
    phase("config");
    let aws = aws_config().await;
    phase("aws_config");
    let secret = Arc::new(secrets_manager::SecretsManagerSource::from_conf(
        &aws,
        &config.secret_id,
    ));
    phase("clients");
    Ok(Init {
        config,
        aws,
        secret,
    })
}

/// What a function builds from its secret (gateway and billing clients), built on first use:
/// the first invocation fetches the secret, builds it, and keeps it for the life of the
/// execution environment. If the secret cannot be had, that invocation fails
/// with "loading secret {id}: …" and the next one tries again — what failing the init did, without
/// a network round trip inside the init.
pub struct OnFirstUse<T> {
    init: Init,
    build: fn(&Init, &crate::secrets::Secrets) -> Result<T, String>,
    built: tokio::sync::OnceCell<T>,
}

impl<T> OnFirstUse<T> {
    pub fn new(
        init: Init,
        build: fn(&Init, &crate::secrets::Secrets) -> Result<T, String>,
    ) -> Self {
        OnFirstUse {
            init,
            build,
            built: tokio::sync::OnceCell::new(),
        }
    }

    /// What init built.
    pub fn init(&self) -> &Init {
        &self.init
    }

    /// The built value, or why it cannot be built: "loading secret {id}: …" (503, retry) when the
    /// secret cannot be fetched, 500 when it does not say what the function needs.
    pub async fn get(&self) -> Result<&T, crate::Error> {
        use crate::ports::SecretError;
        let id = &self.init.config.secret_id;
        // Boxed: the future's type would otherwise be nested inside every handler's.
        self.built
            .get_or_try_init(|| {
                Box::pin(async {
                    let secrets = self.init.secrets().await.map_err(|e| {
                        // The source's errors already say "loading secret {id}: …".
                        let why = crate::error::chain(&e);
                        match e {
                            SecretError::Unavailable(_) => {
                                crate::Error::unavailable("secretsmanager", why)
                            }
                            SecretError::Invalid(_) => crate::Error::internal(
                                "the secret is misconfigured",
                                Some(why.into()),
                            ),
                        }
                    })?;
                    match (self.build)(&self.init, &secrets) {
                        Ok(built) => Ok(built),
                        Err(e) => {
                            // Read again next time: a fixed secret then heals this environment.
                            self.init.secret.forget().await;
                            let why = format!("loading secret {id}: {e}");
                            Err(crate::Error::internal(
                                "the secret is misconfigured",
                                Some(why.into()),
                            ))
                        }
                    }
                })
            })
            .await
    }
}

/// Loads the one JSON secret, with an error that names it.
pub async fn load_secrets(
    aws: &SdkConfig,
    secret_id: &str,
) -> Result<Arc<crate::secrets::Secrets>, String> {
    use crate::ports::SecretSource;
    secrets_manager::SecretsManagerSource::from_conf(aws, secret_id)
        .secrets()
        .await
        .map_err(|e| format!("loading secret {secret_id}: {e}"))
}
