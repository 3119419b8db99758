//! The one JSON secret in AWS Secrets Manager, fetched once per execution environment.
//!
//! The first successful fetch is cached for the life of the Lambda execution environment, so a
//! warm invocation makes no Secrets Manager call. A failed fetch is not cached: the next request
//! tries again. A rotated secret reaches a function when its environment is recycled (or on the
//! next deploy); during that window both secrets verify, which is why secrets come in pairs.

use std::sync::Arc;

use aws_sdk_secretsmanager::Client;
use tokio::sync::OnceCell;

use crate::ports::{SecretError, SecretSource};
use crate::secrets::Secrets;

#[derive(Debug)]
pub struct SecretsManagerSource {
    client: Client,
    secret_id: String,
    cached: OnceCell<Arc<Secrets>>,
}

impl SecretsManagerSource {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerSource {
            client,
            secret_id: secret_id.into(),
            cached: OnceCell::new(),
        }
    }

    pub fn from_conf(conf: &aws_config::SdkConfig, secret_id: impl Into<String>) -> Self {
        Self::new(Client::new(conf), secret_id)
    }

    async fn fetch(&self) -> Result<Arc<Secrets>, SecretError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| SecretError::Unavailable(Box::new(e)))?;
        let json = out.secret_string().ok_or_else(|| {
            SecretError::Invalid(format!("secret {} has no string value", self.secret_id))
        })?;
        Secrets::from_json(json)
            .map(Arc::new)
            .map_err(SecretError::Invalid)
    }
}

impl SecretSource for SecretsManagerSource {
    async fn secrets(&self) -> Result<Arc<Secrets>, SecretError> {
        self.cached.get_or_try_init(|| self.fetch()).await.cloned()
    }
}
