//! paybridge: the shared crate of the paybridge Lambda functions.
//!
//! # Layout
//!
//! - [`domain`]: pure types and rules — money, ids, charge/refund state machines, events, PCI
//!   masking, work messages. No I/O.
//! - [`webhooks`]: one folder per sender (Stripe, Adyen, Standard Webhooks): signature
//!   verification and parsing, as pure functions with the clock passed in, and `interpret`, what a
//!   recorded event means for charges and refunds.
//! - [`ports`]: the traits use cases depend on (`EventStore`, `WorkQueue`, `SecretSource`).
//! - [`services`]: one use case per module (`record_webhook`, …), generic over the ports.
//! - [`adapters`]: DynamoDB, SQS and Secrets Manager implementations of the ports, and the
//!   gateway connectors (`adapters::gateways::{stripe, adyen}`, each split into the gateway type,
//!   its HTTP client, its private wire format and its answer mapping).
//! - [`error`]: the one error type and its one HTTP mapping.
//! - `http` (feature `lambda`): what the HTTP functions share — idempotency-key and deadline
//!   extraction, response building.
//! - [`config`], [`secrets`], [`telemetry`]: settings from the environment, the secret's shape,
//!   JSON logs and EMF metrics.

pub mod adapters;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
#[cfg(feature = "lambda")]
pub mod http;
pub mod ports;
pub mod secrets;
pub mod services;
pub mod telemetry;
pub mod webhooks;

pub use error::{Error, Kind};
