//! The webhook-intake function: `POST /webhooks/{gateway}`, and Stripe events from EventBridge.
//!
//! [`handler`] translates API Gateway requests to the `record_webhook` use case and its result to
//! HTTP; [`bus`] does the same for EventBridge events and tells the two kinds of invocation
//! apart. `main.rs` builds the dependencies once per execution environment.

pub mod bus;
pub mod handler;
