//! The AWS SDK's HTTP client in the functions: reqwest, the one the gateway and billing clients
//! use, on the same TLS configuration ([`super::tls`]).
//!
//! The SDK's own client (aws-smithy-http-client: hyper, hyper-rustls, rustls-native-certs) would
//! be a second HTTP stack in every binary, reading and parsing the system's root certificates a
//! second time at every cold start. This one sends what the SDK signed as it is, reads the whole
//! response (the SDK's answers here are small JSON documents) and classifies failures the way the
//! SDK's client does, so its retry rules see the same kinds: a timeout, an I/O failure (connection
//! refused, reset, closed: retried), a user error, anything else. The tests crate and
//! `paybridge-ops` keep the SDK's own client (`default-chains`).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::config::{HttpClient, RuntimeComponents, SharedHttpClient};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;

/// The SDK's HTTP client: one reqwest client per distinct (connect, read) timeout pair the SDK
/// asks for (one, in practice), built on first use, so no root certificate is read before the
/// first AWS request.
pub fn client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestClient::default())
}

#[derive(Default)]
struct ReqwestClient {
    connectors: Mutex<Vec<(Timeouts, SharedHttpConnector)>>,
}

type Timeouts = (Option<Duration>, Option<Duration>);

impl fmt::Debug for ReqwestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReqwestClient")
    }
}

impl HttpClient for ReqwestClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, connector)) = connectors.iter().find(|(k, _)| *k == key) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(Connector { client: build(key) });
        connectors.push((key, connector.clone()));
        connector
    }
}

fn build((connect, read): Timeouts) -> Result<reqwest::Client, String> {
    let tls = super::tls::client_config()?;
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        // The SDK decides about redirects (it follows none), retries and the whole call's time.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(connect) = connect {
        builder = builder.connect_timeout(connect);
    }
    if let Some(read) = read {
        builder = builder.read_timeout(read);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the AWS HTTP client: {e}"))
}

struct Connector {
    /// Or why it could not be built (no TLS configuration): every request fails with that.
    client: Result<reqwest::Client, String>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReqwestConnector")
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|e| ConnectorError::other(e.into(), None))?;
            send(&client, request).await
        })
    }
}

async fn send(
    client: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|e| ConnectorError::user(e.into()))?;
    let (parts, body) = request.into_parts();
    // Every request of DynamoDB, SQS, Secrets Manager and EventBridge has its body in memory.
    let body = body
        .bytes()
        .ok_or_else(|| ConnectorError::user("a streaming request body is not supported".into()))?
        .to_vec();
    let response = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(classify)?;
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.bytes().await.map_err(classify)?;
    let mut out = http::Response::new(SdkBody::from(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    HttpResponse::try_from(out).map_err(|e| ConnectorError::other(e.into(), None))
}

/// The kind the SDK's retry rules need, as its own client would say it: a timeout; a user error
/// (a request that could not be sent as built); an I/O failure or a closed connection (retried);
/// an incomplete answer (retried); anything else.
fn classify(err: reqwest::Error) -> ConnectorError {
    let kind: fn(crate::error::BoxError) -> ConnectorError = if err.is_timeout() {
        ConnectorError::timeout
    } else if err.is_builder() {
        ConnectorError::user
    } else if let Some(hyper) = find::<hyper::Error>(&err) {
        if hyper.is_timeout() {
            ConnectorError::timeout
        } else if hyper.is_user() {
            ConnectorError::user
        } else if hyper.is_closed() || hyper.is_canceled() || find::<std::io::Error>(&err).is_some()
        {
            ConnectorError::io
        } else if hyper.is_incomplete_message() {
            |e| ConnectorError::other(e, Some(ErrorKind::TransientError))
        } else {
            |e| ConnectorError::other(e, None)
        }
    } else if err.is_connect() || find::<std::io::Error>(&err).is_some() {
        ConnectorError::io
    } else {
        |e| ConnectorError::other(e, None)
    };
    kind(err.into())
}

fn find<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = build((Some(Duration::from_secs(1)), None)).unwrap();
        let err = client
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(classify(err).is_io());
    }

    #[tokio::test]
    async fn a_read_past_its_timeout_is_a_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts and never answers.
        let _server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let client = build((None, Some(Duration::from_millis(100)))).unwrap();
        let err = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert!(classify(err).is_timeout());
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_is_an_io_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            drop(socket);
        });
        let client = build((Some(Duration::from_secs(1)), None)).unwrap();
        let err = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        let err = classify(err);
        // Retried either way: an I/O error, or an incomplete answer marked transient.
        assert!(
            err.is_io() || err.as_other() == Some(ErrorKind::TransientError),
            "{err:?}"
        );
    }
}
