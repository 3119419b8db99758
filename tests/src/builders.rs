//! Test objects built from the domain's own constructors, so a test names only what it cares
//! about and a new field of `Charge` is added in one place.

use paybridge::domain::{Charge, ChargeId, Gateway, Money};

use crate::unique;

/// A pending 19.99 EUR charge through `gateway` for a fresh invoice, paid with `pm_card_visa`,
/// captured at once, created at `now` (set other fields with struct update syntax).
pub fn pending_charge(gateway: Gateway, now: i64) -> Charge {
    Charge::pending(
        ChargeId::generate(),
        unique("inv_"),
        Money::parse(1999, "eur").expect("a valid amount"),
        gateway,
        "pm_card_visa",
        now,
    )
}
