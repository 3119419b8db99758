//! Adyen standard notifications, from the signed batch to what each item means for paybridge.
//!
//! - `verify`: basic auth and each item's `hmacSignature`, parsing a verified batch into
//!   [`VerifiedEvent`](crate::domain::VerifiedEvent)s, and signing items (tests, demo).
//! - `interpret`: a recorded item's payload → [`Interpretation`](crate::domain::Interpretation).
//! - `amount`: Adyen's minor units both ways, shared with the Adyen adapter.

pub(crate) mod amount;
mod interpret;
mod verify;

pub use interpret::interpret;
pub use verify::{
    IDENTIFIERS, SUPPORTED_CODES, check_basic_auth, is_psp_reference, sign_item, verify_and_parse,
};
