//! Adyen's minor units, both ways: Adyen counts 2 decimals for CLP and ISK (ISO 4217: 0) and 0
//! for IDR (ISO 4217: 2).
//!
//! One place for that fact: the Adyen adapter converts the amounts it sends with
//! [`adyen_minor`], the webhook interpreter converts the amounts Adyen reports with
//! [`iso_minor`]; the adapter imports this module, never the reverse.

use crate::domain::Money;

/// `money` in Adyen's minor units; `None` for an IDR amount with a fractional rupiah, which
/// cannot be sent.
pub(crate) fn adyen_minor(money: Money) -> Option<i64> {
    let minor = money.minor();
    match money.currency().code() {
        // At most Money::MAX_MINOR * 100 = 10^13: no overflow.
        "clp" | "isk" => Some(minor * 100),
        "idr" if minor % 100 == 0 => Some(minor / 100),
        "idr" => None,
        _ => Some(minor),
    }
}

/// Converts an amount in Adyen's minor units back to ISO 4217 minor units (see [`adyen_minor`]).
pub(crate) fn iso_minor(value: i64, currency: &str) -> i64 {
    match currency.to_ascii_lowercase().as_str() {
        "clp" | "isk" => value / 100,
        "idr" => value.saturating_mul(100),
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adyens_minor_units_convert_back_to_iso_4217() {
        for (minor, currency) in [
            (1999, "eur"),
            (5000, "clp"),
            (2790, "isk"),
            (1_500_000, "idr"),
        ] {
            let money = Money::parse(minor, currency).unwrap();
            let at_adyen = adyen_minor(money).unwrap();
            assert_eq!(iso_minor(at_adyen, &currency.to_ascii_uppercase()), minor);
        }
        assert_eq!(adyen_minor(Money::parse(1_500_050, "idr").unwrap()), None);
    }
}
