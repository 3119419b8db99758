//! The webhook-intake function: `POST /webhooks/{gateway}`.
//!
//! [`handler`] translates API Gateway requests to the `record_webhook` use case and its result to
//! HTTP. `main.rs` builds the dependencies once per execution environment.

pub mod handler;
