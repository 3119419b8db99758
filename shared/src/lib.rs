//! paybridge: the shared crate of the paybridge Lambda functions.
//!
//! # Layout
//!
//! Modules import downward only — `domain` ← `ports` ← `webhooks` ← `services` ← `adapters` ←
//! the functions — and no two files import each other.
//!
//! - [`domain`]: pure types and rules — money, ids, the gateway names, the charge and refund
//!   state machines (what they share in `transition`), events, idempotency rules,
//!   notifications, PCI masking, work messages. No I/O.
//! - [`webhooks`]: one folder per sender (Stripe, Adyen, Standard Webhooks): signature
//!   verification and parsing, as pure functions with the clock passed in, and `interpret`, what a
//!   recorded event means for charges and refunds.
//! - [`ports`]: the traits use cases depend on, named by role:
//!   - stores: [`EventStore`](ports::EventStore), [`ChargeStore`](ports::ChargeStore),
//!     [`RefundStore`](ports::RefundStore), [`IdempotencyStore`](ports::IdempotencyStore),
//!     [`NotificationStore`](ports::NotificationStore) (the outbox),
//!     [`GatewayRefLookup`](ports::GatewayRefLookup), [`ReconcileStore`](ports::ReconcileStore),
//!     and the compositions [`BillingStore`](ports::BillingStore) and
//!     [`RefundingStore`](ports::RefundingStore);
//!   - the queue: [`WorkQueue`](ports::WorkQueue), [`ReceivedMessages`](ports::ReceivedMessages)
//!     (backoff by visibility), [`DeadLetters`](ports::DeadLetters);
//!   - gateways: [`PaymentGateway`](ports::PaymentGateway), [`RefundGateway`](ports::RefundGateway),
//!     [`UndeliveredEvents`](ports::UndeliveredEvents);
//!   - billing: [`Notifier`](ports::Notifier); the secret: [`SecretSource`](ports::SecretSource).
//! - [`services`]: one use case per module, generic over the ports: `record_webhook`, `charges`,
//!   `refunds`, `apply_event`, `deliver`, `reconcile`, `work` (the retry worker's verdicts); and
//!   what they share: `idempotency` (one preamble for every billing write), `views` (what billing
//!   sees), `notify` (the outbox entries), `retry_policy` (every retry schedule).
//! - [`adapters`]: DynamoDB (`keys` builds every key), SQS and Secrets Manager implementations of
//!   the ports, billing's HTTP notifier, and the gateway connectors
//!   (`adapters::gateways::{stripe, adyen}`, each split into the gateway type, its HTTP client,
//!   its private wire format and its answer mapping).
//! - [`error`]: the one error type, every code in [`error::Code::ALL`], and its one HTTP mapping.
//! - `http` (feature `lambda`): what the HTTP functions share — the request reader,
//!   idempotency-key and deadline extraction, response building.
//! - [`clock`]: the one reading of the wall clock (use cases take `now`).
//! - [`config`], [`secrets`], [`telemetry`]: settings from the environment, the secret's shape,
//!   JSON logs and EMF metrics (every name in [`telemetry::Metric::ALL`]); [`init_phases`], how
//!   long each phase of a cold start took.

pub mod adapters;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
#[cfg(feature = "lambda")]
pub mod http;
pub mod init_phases;
#[cfg(feature = "lambda")]
pub mod invoke;
pub mod ports;
pub mod secrets;
pub mod services;
pub mod telemetry;
pub mod webhooks;

pub use error::{Error, Kind};
