//! Stripe webhooks, from the signed request to what it means for paybridge.
//!
//! - `verify`: the `Stripe-Signature` check, parsing a verified body into a
//!   [`VerifiedEvent`](crate::domain::VerifiedEvent), and signing (tests, demo, reconciler).
//! - `interpret`: a recorded event's payload → [`Interpretation`](crate::domain::Interpretation).
//! - `objects`: Stripe's PaymentIntent and Refund objects and their status mapping, shared with
//!   the Stripe adapter, which reads its API answers the same way.
//! - `amount`: Stripe's minor units both ways, shared with the Stripe adapter.
//! - [`eventbridge`]: the same events delivered by Amazon EventBridge (no signature; the bus and
//!   IAM vouch for them).

pub(crate) mod amount;
pub mod eventbridge;
mod interpret;
pub(crate) mod objects;
mod verify;

pub use interpret::interpret;
pub use verify::{IDENTIFIERS, SUPPORTED_TYPES, parse, sign, verify};
