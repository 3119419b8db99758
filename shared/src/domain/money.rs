//! Money as integer minor units of an ISO-4217 currency.
//!
//! Floats never appear: amounts are `i64` minor units, and each currency carries its exponent
//! (EUR 2, JPY 0, KWD 3) so amounts are displayed and compared correctly. Amounts that reach a
//! [`Money`] have been parsed — a `Money` is always positive and within [`Money::MAX_MINOR`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a currency or an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown currency `{0}`: expected a three-letter ISO-4217 code such as `eur`")]
    UnknownCurrency(String),
    #[error("amount must be a positive integer number of minor units, got {0}")]
    NotPositive(i64),
    #[error("amount {0} is above the limit of {max} minor units", max = Money::MAX_MINOR)]
    TooLarge(i64),
    #[error("currencies differ: {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount arithmetic overflowed")]
    Overflow,
}

/// An ISO-4217 currency that paybridge knows the exponent of.
///
/// Stored and serialised as the lower-case code (`"eur"`), the form Stripe uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

/// (code, exponent) for the currencies the supported gateways settle in. Zero-decimal and
/// three-decimal currencies are listed explicitly; everything else here has two decimals.
const CURRENCIES: &[(&str, u8)] = &[
    ("aed", 2),
    ("ars", 2),
    ("aud", 2),
    ("bgn", 2),
    ("bhd", 3),
    ("brl", 2),
    ("cad", 2),
    ("chf", 2),
    ("clp", 0),
    ("cny", 2),
    ("czk", 2),
    ("dkk", 2),
    ("egp", 2),
    ("eur", 2),
    ("gbp", 2),
    ("hkd", 2),
    ("huf", 2),
    ("idr", 2),
    ("ils", 2),
    ("inr", 2),
    ("isk", 0),
    ("jod", 3),
    ("jpy", 0),
    ("krw", 0),
    ("kwd", 3),
    ("mxn", 2),
    ("myr", 2),
    ("ngn", 2),
    ("nok", 2),
    ("nzd", 2),
    ("omr", 3),
    ("php", 2),
    ("pln", 2),
    ("qar", 2),
    ("ron", 2),
    ("sar", 2),
    ("sek", 2),
    ("sgd", 2),
    ("thb", 2),
    ("tnd", 3),
    ("try", 2),
    ("twd", 2),
    ("uah", 2),
    ("ugx", 0),
    ("usd", 2),
    ("vnd", 0),
    ("xaf", 0),
    ("xof", 0),
    ("zar", 2),
];

impl Currency {
    /// Parses a three-letter code, case-insensitively.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let lower = code.to_ascii_lowercase();
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == lower)
            .map(|(c, exponent)| {
                let b = c.as_bytes();
                Currency {
                    code: [b[0], b[1], b[2]],
                    exponent: *exponent,
                }
            })
            .ok_or_else(|| MoneyError::UnknownCurrency(code.chars().take(8).collect()))
    }

    /// Every currency paybridge accepts, in code order.
    pub fn all() -> impl Iterator<Item = Currency> {
        CURRENCIES
            .iter()
            .filter_map(|(c, _)| Currency::parse(c).ok())
    }

    /// The lower-case code, e.g. `"eur"`.
    pub fn code(&self) -> &str {
        // Only ASCII codes from `CURRENCIES` are ever stored.
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// Number of decimal places of the minor unit (EUR 2, JPY 0, KWD 3).
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Currency::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code().to_owned()
    }
}

/// A positive amount of money in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// Largest accepted amount: 10^11 minor units (a billion euros), far above any invoice and far
    /// below overflow when amounts are summed.
    pub const MAX_MINOR: i64 = 100_000_000_000;

    /// Parses an amount in minor units; it must be positive and at most [`Money::MAX_MINOR`].
    pub fn parse(minor: i64, currency: &str) -> Result<Self, MoneyError> {
        Self::new(minor, Currency::parse(currency)?)
    }

    pub fn new(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor <= 0 {
            return Err(MoneyError::NotPositive(minor));
        }
        if minor > Self::MAX_MINOR {
            return Err(MoneyError::TooLarge(minor));
        }
        Ok(Money { minor, currency })
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// `self + other`, refusing different currencies.
    pub fn checked_add(&self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Money::new(sum, self.currency)
    }

    fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        Ok(())
    }
}

impl fmt::Display for Money {
    /// `19.99 EUR`, `500 JPY`, `1.250 KWD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = u32::from(self.currency.exponent);
        let code = self.currency.code().to_ascii_uppercase();
        if exp == 0 {
            return write!(f, "{} {code}", self.minor);
        }
        let unit = 10_i64.pow(exp);
        write!(
            f,
            "{}.{:0width$} {code}",
            self.minor / unit,
            self.minor % unit,
            width = exp as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(Currency::parse("EUR").unwrap().exponent(), 2);
        assert_eq!(Currency::parse("jpy").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("kwd").unwrap().exponent(), 3);
    }

    #[test]
    fn display_respects_the_exponent() {
        assert_eq!(Money::parse(1999, "eur").unwrap().to_string(), "19.99 EUR");
        assert_eq!(Money::parse(500, "jpy").unwrap().to_string(), "500 JPY");
        assert_eq!(Money::parse(1250, "kwd").unwrap().to_string(), "1.250 KWD");
        assert_eq!(Money::parse(5, "usd").unwrap().to_string(), "0.05 USD");
    }

    #[test]
    fn zero_negative_huge_and_unknown_are_refused() {
        assert_eq!(Money::parse(0, "eur"), Err(MoneyError::NotPositive(0)));
        assert_eq!(Money::parse(-1, "eur"), Err(MoneyError::NotPositive(-1)));
        assert!(matches!(
            Money::parse(Money::MAX_MINOR + 1, "eur"),
            Err(MoneyError::TooLarge(_))
        ));
        assert!(matches!(
            Money::parse(1, "xyz"),
            Err(MoneyError::UnknownCurrency(_))
        ));
        assert!(matches!(
            Money::parse(1, "eu"),
            Err(MoneyError::UnknownCurrency(_))
        ));
    }

    #[test]
    fn adding_different_currencies_is_refused() {
        let eur = Money::parse(1, "eur").unwrap();
        let usd = Money::parse(1, "usd").unwrap();
        assert!(matches!(
            eur.checked_add(usd),
            Err(MoneyError::CurrencyMismatch(..))
        ));
    }

    #[test]
    fn currency_serialises_as_lower_case_code() {
        let c: Currency = serde_json::from_str("\"GBP\"").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"gbp\"");
        assert!(serde_json::from_str::<Currency>("\"ABC\"").is_err());
    }

    proptest! {
        #[test]
        fn any_amount_in_range_parses_and_round_trips(minor in 1..=Money::MAX_MINOR) {
            let m = Money::parse(minor, "eur").unwrap();
            prop_assert_eq!(m.minor(), minor);
        }

        #[test]
        fn addition_is_exact_or_refused(a in 1..=Money::MAX_MINOR, b in 1..=Money::MAX_MINOR) {
            let x = Money::parse(a, "eur").unwrap();
            let y = Money::parse(b, "eur").unwrap();
            match x.checked_add(y) {
                Ok(sum) => prop_assert_eq!(sum.minor(), a + b),
                Err(e) => prop_assert_eq!(e, MoneyError::TooLarge(a + b)),
            }
        }
    }
}
