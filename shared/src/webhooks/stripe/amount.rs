//! Stripe's minor units, both ways, from Stripe's "Supported currencies" page
//! (docs.stripe.com/currencies, sections "Minor units in API amounts" and "Special cases"):
//!
//! - "Currencies are two-decimal currencies unless otherwise specified." — including HUF and TWD,
//!   which Stripe "treats … as a zero-decimal currency for payouts, even though you can charge
//!   two-decimal amounts": paybridge charges and refunds, it never pays out, so they are ISO's 2.
//! - Zero-decimal: "For the following zero-decimal currencies, the charge and the amount are the
//!   same, without requiring multiplication": BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND
//!   VUV XAF XOF XPF — but UGX, on that list, is also a special case, and the special case is the
//!   rule for the `amount` value: "UGX transitioned to a zero-decimal currency, but backwards
//!   compatibility requires you to represent it as a two-decimal value, where the decimal amount
//!   is always `00`. For example, to charge 5 UGX, provide an `amount` value of `500`." (It goes
//!   on: fractional invoice amounts are rounded "to the nearest number evenly divisible by 100",
//!   which only means anything in two-decimal units.) So UGX is two-decimal here.
//! - ISK, likewise: "ISK transitioned to a zero-decimal currency, but backwards compatibility
//!   requires you to represent it as a two-decimal value, where the decimal amount is always
//!   `00`. For example, to charge 5 ISK, provide an `amount` value of `500`." ISO 4217 counts ISK
//!   and UGX in whole units, so they are multiplied by 100 on the way out and divided on the way
//!   in; every whole-unit amount is representable.
//! - Three-decimal (BHD JOD KWD OMR TND): "The API supports three-decimal currencies for the
//!   standard payment flows, including Payment Intents, Refunds, and Disputes. However, to ensure
//!   compatibility with Stripe's payments partners, these API calls require the least-significant
//!   (last) digit to be 0. Your integration must round amounts to the nearest ten." paybridge
//!   does not round billing's money: an amount not ending in 0 is refused.
//!
//! The adapter converts what it sends with [`stripe_minor`]; the PaymentIntent reading it shares
//! with the webhook interpreter converts what Stripe reports with [`iso_minor`].

use crate::domain::{Currency, Gateway, Money};
use crate::webhooks::amount::{NotRepresentable, Units};

/// Stripe's zero-decimal list, less UGX (a special case: see the module documentation).
const ZERO_DECIMAL: [&str; 15] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "vnd", "vuv", "xaf",
    "xof", "xpf",
];

/// Stripe's three-decimal currencies, whose amounts must end in 0.
const THREE_DECIMAL: [&str; 5] = ["bhd", "jod", "kwd", "omr", "tnd"];

/// How Stripe counts `currency`.
fn units(currency: Currency) -> Units {
    let code = currency.code();
    if ZERO_DECIMAL.contains(&code) {
        Units::decimals(0)
    } else if THREE_DECIMAL.contains(&code) {
        Units {
            decimals: 3,
            step: 10,
        }
    } else {
        Units::decimals(2)
    }
}

/// `money` as Stripe's `amount`, or refused (a three-decimal amount not ending in 0).
pub(crate) fn stripe_minor(money: Money) -> Result<i64, NotRepresentable> {
    units(money.currency()).send(Gateway::Stripe, money)
}

/// A Stripe `amount` in `currency` (any case) back in ISO 4217 minor units (see
/// [`stripe_minor`]); a currency paybridge does not know is taken as it is.
pub(crate) fn iso_minor(value: i64, currency: &str) -> i64 {
    crate::webhooks::amount::iso_minor_by(units, value, currency)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_stripe(minor: i64, currency: &str) -> Result<i64, NotRepresentable> {
        stripe_minor(Money::parse(minor, currency).unwrap())
    }

    #[test]
    fn isk_and_ugx_are_two_decimal_at_stripe_in_whole_units() {
        assert_eq!(at_stripe(5000, "isk"), Ok(500_000));
        assert_eq!(iso_minor(500_000, "isk"), 5000);
        assert_eq!(at_stripe(5, "ugx"), Ok(500));
        assert_eq!(iso_minor(500, "UGX"), 5);
    }

    #[test]
    fn jpy_is_zero_decimal_at_stripe_as_in_iso() {
        assert_eq!(at_stripe(500, "jpy"), Ok(500));
        assert_eq!(iso_minor(500, "jpy"), 500);
    }

    #[test]
    fn three_decimal_amounts_reach_stripe_only_when_they_end_in_0() {
        assert_eq!(at_stripe(5120, "kwd"), Ok(5120));
        assert_eq!(iso_minor(5120, "kwd"), 5120);
        for (minor, currency) in [(5124, "kwd"), (5055, "bhd"), (1, "jod"), (9, "omr")] {
            let refused = at_stripe(minor, currency).unwrap_err();
            assert_eq!((refused.gateway, refused.step), (Gateway::Stripe, 10));
        }
        assert_eq!(at_stripe(10, "tnd"), Ok(10));
    }

    #[test]
    fn huf_and_twd_are_two_decimal_for_charges() {
        assert_eq!(at_stripe(1045, "huf"), Ok(1045));
        assert_eq!(iso_minor(1045, "huf"), 1045);
        assert_eq!(at_stripe(80_045, "twd"), Ok(80_045));
    }

    #[test]
    fn every_other_currency_is_its_iso_count() {
        for (minor, currency) in [
            (1999, "eur"),
            (1999, "usd"),
            (1_500_050, "idr"),
            (5000, "clp"),
        ] {
            assert_eq!(at_stripe(minor, currency), Ok(minor), "{currency}");
            assert_eq!(iso_minor(minor, currency), minor, "{currency}");
        }
        assert_eq!(
            iso_minor(1234, "zzz"),
            1234,
            "an unknown currency is left alone"
        );
    }

    /// A zero-decimal currency that Stripe does not list as zero-decimal is two-decimal there:
    /// every currency paybridge accepts with ISO exponent 0 is either on Stripe's list or one of
    /// the special cases this module knows, so adding one to `CURRENCIES` cannot slip through.
    #[test]
    fn every_iso_zero_decimal_currency_is_placed_in_stripes_table() {
        for currency in Currency::all().filter(|c| c.exponent() == 0) {
            let code = currency.code();
            assert!(
                ZERO_DECIMAL.contains(&code) || ["isk", "ugx"].contains(&code),
                "{code}: check Stripe's Supported currencies page and place it"
            );
        }
    }
}
