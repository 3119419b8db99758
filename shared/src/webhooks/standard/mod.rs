//! Standard Webhooks, from the signed request to what it means for paybridge.
//!
//! - `verify`: the `webhook-signature` check, parsing a verified delivery into a
//!   [`VerifiedEvent`](crate::domain::VerifiedEvent), and signing (billing notifications use it).
//! - `interpret`: a recorded event's payload → [`Interpretation`](crate::domain::Interpretation).

mod interpret;
mod verify;

pub use interpret::interpret;
pub use verify::{Headers, IDENTIFIERS, SUPPORTED_PREFIXES, parse, secret_key, sign, verify};
