//! Adyen's minor units, both ways, from Adyen's "Currency codes" page
//! (docs.adyen.com/development-resources/currency-codes): its table gives CLP 2 decimals, CVE 0,
//! IDR 0 and ISK 2, each marked "differs from standard", and says "For CLP, CVE, IDR, and ISK
//! the ISO 4217 standard has a different number of decimals than shown in our currency codes
//! table. When submitting amounts in minor units, the decimals in the table on this page are
//! leading." Every other currency paybridge accepts has ISO's decimals there (BHD, JOD, KWD, OMR
//! and TND 3; JPY, KRW, UGX, VND, XAF and XOF 0; the rest 2). CVE is not one paybridge accepts.
//!
//! So CLP and ISK are multiplied by 100 on the way out; IDR is divided by 100, and an IDR amount
//! with a fraction of a rupiah cannot be sent. The Adyen adapter converts the amounts it sends
//! with [`adyen_minor`], the webhook interpreter converts the amounts Adyen reports with
//! [`iso_minor`]; the adapter imports this module, never the reverse.

use crate::domain::{Currency, Gateway, Money};
use crate::webhooks::amount::{NotRepresentable, Units};

/// How Adyen counts `currency`.
fn units(currency: Currency) -> Units {
    match currency.code() {
        "clp" | "isk" => Units::decimals(2),
        "cve" | "idr" => Units::decimals(0),
        _ => Units::decimals(currency.exponent()),
    }
}

/// `money` in Adyen's minor units; refused for an IDR amount with a fraction of a rupiah.
pub(crate) fn adyen_minor(money: Money) -> Result<i64, NotRepresentable> {
    units(money.currency()).send(Gateway::Adyen, money)
}

/// Converts an amount in Adyen's minor units, in `currency` (any case), back to ISO 4217 minor
/// units (see [`adyen_minor`]); a currency paybridge does not know is taken as it is.
pub(crate) fn iso_minor(value: i64, currency: &str) -> i64 {
    crate::webhooks::amount::iso_minor_by(units, value, currency)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adyens_minor_units_convert_back_to_iso_4217() {
        for (minor, currency, at_adyen) in [
            (1999, "eur", 1999),
            (5000, "clp", 500_000),
            (2790, "isk", 279_000),
            (1_500_000, "idr", 15_000),
            (500, "jpy", 500),
            (5055, "kwd", 5055),
            (5, "ugx", 5),
        ] {
            let money = Money::parse(minor, currency).unwrap();
            assert_eq!(adyen_minor(money), Ok(at_adyen), "{currency}");
            assert_eq!(iso_minor(at_adyen, &currency.to_ascii_uppercase()), minor);
        }
        let refused = adyen_minor(Money::parse(1_500_050, "idr").unwrap()).unwrap_err();
        assert_eq!((refused.gateway, refused.step), (Gateway::Adyen, 100));
    }
}
