//! Minor units per gateway: what an amount in ISO 4217 minor units becomes at a gateway, what a
//! gateway's amount is back in ISO minor units, and which amounts a gateway cannot take.
//!
//! paybridge's API, its records and billing count ISO 4217 minor units ([`Money`]). Each gateway
//! publishes its own table of decimals per currency, and for some currencies it is not ISO's:
//! Stripe keeps ISK and UGX two-decimal (so 5000 ISK is `amount=500000`), Adyen keeps CLP and ISK
//! two-decimal and IDR zero-decimal. Some amounts a gateway refuses outright: Stripe takes
//! three-decimal currencies only in amounts ending in 0, Adyen takes IDR only in whole rupiah.
//!
//! Each gateway's table lives beside its webhooks (`stripe::amount`, `adyen::amount`) as
//! [`Units`] per currency, and is used at the edge both ways: the adapters convert what they
//! send, the answer mappings and webhook interpreters convert what the gateway reports.
//! [`gateway_amount`] is the one question the use cases ask before they store anything or call a
//! gateway, so an amount the gateway cannot take is refused with 422 `amount_not_representable`
//! instead of failing — or being rounded — at the gateway.

use std::fmt;

use super::{adyen, stripe};
use crate::domain::{Currency, Gateway, Money};

/// An amount a gateway cannot take: it counts this currency in steps of `step` ISO minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRepresentable {
    pub gateway: Gateway,
    pub money: Money,
    /// The gateway takes only multiples of this many ISO minor units of the currency.
    pub step: i64,
}

impl std::error::Error for NotRepresentable {}

impl fmt::Display for NotRepresentable {
    /// `Stripe takes KWD only in multiples of 10 minor units; 5055 (5.055 KWD) is not one: 5050
    /// or 5060 is`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.gateway {
            Gateway::Stripe => "Stripe",
            Gateway::Adyen => "Adyen",
            Gateway::Standard => "the gateway",
        };
        let minor = self.money.minor();
        let code = self.money.currency().code().to_ascii_uppercase();
        let below = minor - minor % self.step;
        let above = below + self.step;
        write!(
            f,
            "{name} takes {code} only in multiples of {} minor units; {minor} ({}) is not one: ",
            self.step, self.money
        )?;
        if below > 0 {
            write!(f, "{below} or {above} is")
        } else {
            write!(f, "{above} is the smallest it takes")
        }
    }
}

/// How one gateway counts one currency: its number of decimals, and — for a gateway that refuses
/// some amounts its decimals could express — the step it takes them in, in its own units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Units {
    pub(crate) decimals: u8,
    pub(crate) step: i64,
}

impl Units {
    /// `decimals` decimals, every amount taken.
    pub(crate) const fn decimals(decimals: u8) -> Units {
        Units { decimals, step: 1 }
    }

    /// The smallest step the gateway takes, in ISO minor units of `currency`.
    fn iso_step(self, currency: Currency) -> i64 {
        let iso = currency.exponent();
        // Steps are powers of ten, so the coarser of the two is the one that binds.
        let own = if self.decimals < iso {
            10_i64.pow(u32::from(iso - self.decimals))
        } else {
            1
        };
        let stepped = if self.step > 1 {
            rescale_exact(self.step, self.decimals, iso).unwrap_or(1)
        } else {
            1
        };
        own.max(stepped)
    }

    /// `money` in these units, or refused when the gateway cannot take it.
    pub(crate) fn send(self, gateway: Gateway, money: Money) -> Result<i64, NotRepresentable> {
        let currency = money.currency();
        let step = self.iso_step(currency);
        let refused = NotRepresentable {
            gateway,
            money,
            step,
        };
        if money.minor() % step != 0 {
            return Err(refused);
        }
        // At most Money::MAX_MINOR * 10^3: no overflow, but never panic on it either.
        rescale_exact(money.minor(), currency.exponent(), self.decimals).ok_or(refused)
    }

    /// A gateway's `value` in these units back in ISO minor units of `currency`. A fraction of an
    /// ISO minor unit cannot come from an amount paybridge sent; if a gateway reports one anyway
    /// it is dropped (never reporting more than was taken).
    pub(crate) fn receive(self, value: i64, currency: Currency) -> i64 {
        let iso = currency.exponent();
        if self.decimals >= iso {
            value / 10_i64.pow(u32::from(self.decimals - iso))
        } else {
            value.saturating_mul(10_i64.pow(u32::from(iso - self.decimals)))
        }
    }
}

/// A gateway's `value` in `currency` (its code in any case) back in ISO 4217 minor units, with
/// the gateway's table `units`; a currency paybridge does not know is taken as it is.
pub(crate) fn iso_minor_by(units: fn(Currency) -> Units, value: i64, currency: &str) -> i64 {
    match Currency::parse(currency) {
        Ok(c) => units(c).receive(value, c),
        Err(_) => value,
    }
}

/// `value` counted in units of 10^-`from` recounted in units of 10^-`to`; `None` if that would
/// drop a fraction or overflow.
fn rescale_exact(value: i64, from: u8, to: u8) -> Option<i64> {
    if to >= from {
        value.checked_mul(10_i64.pow(u32::from(to - from)))
    } else {
        let unit = 10_i64.pow(u32::from(from - to));
        (value % unit == 0).then_some(value / unit)
    }
}

/// What `money` is at `gateway`, in the gateway's own minor units — or why the gateway cannot
/// take it. Pure; the use cases ask it before any write or gateway call. Standard Webhooks
/// senders have no API paybridge calls, so every amount stands as it is.
pub fn gateway_amount(gateway: Gateway, money: Money) -> Result<i64, NotRepresentable> {
    match gateway {
        Gateway::Stripe => stripe::amount::stripe_minor(money),
        Gateway::Adyen => adyen::amount::adyen_minor(money),
        Gateway::Standard => Ok(money.minor()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GATEWAYS: [Gateway; 3] = [Gateway::Stripe, Gateway::Adyen, Gateway::Standard];

    /// A gateway's amount back in ISO minor units, as its answers and webhooks are read.
    fn iso_minor_of(gateway: Gateway, value: i64, currency: &str) -> i64 {
        match gateway {
            Gateway::Stripe => stripe::amount::iso_minor(value, currency),
            Gateway::Adyen => adyen::amount::iso_minor(value, currency),
            Gateway::Standard => value,
        }
    }

    fn currencies() -> Vec<Currency> {
        Currency::all().collect()
    }

    #[test]
    fn every_accepted_currency_is_listed() {
        let all = currencies();
        assert!(all.len() >= 40, "{}", all.len());
        for code in [
            "eur", "isk", "jpy", "kwd", "ugx", "idr", "clp", "huf", "twd",
        ] {
            assert!(all.iter().any(|c| c.code() == code), "{code}");
        }
    }

    #[test]
    fn a_refusal_names_the_gateway_the_step_and_the_nearest_amounts_it_takes() {
        let kwd = Money::parse(5055, "kwd").unwrap();
        let err = gateway_amount(Gateway::Stripe, kwd).unwrap_err();
        assert_eq!(err.step, 10);
        assert_eq!(
            err.to_string(),
            "Stripe takes KWD only in multiples of 10 minor units; 5055 (5.055 KWD) is not one: 5050 or 5060 is"
        );
        let idr = Money::parse(50, "idr").unwrap();
        assert_eq!(
            gateway_amount(Gateway::Adyen, idr).unwrap_err().to_string(),
            "Adyen takes IDR only in multiples of 100 minor units; 50 (0.50 IDR) is not one: 100 is the smallest it takes"
        );
    }

    #[test]
    fn standard_webhooks_senders_take_every_amount_as_it_is() {
        for currency in currencies() {
            let m = Money::new(12_345, currency).unwrap();
            assert_eq!(gateway_amount(Gateway::Standard, m), Ok(12_345));
        }
    }

    proptest! {
        /// For every currency paybridge accepts and every gateway: an amount the gateway takes
        /// comes back from it as the same amount, in either case of the currency code; an amount
        /// it refuses is off its step, and the nearest amounts on the step are taken.
        #[test]
        fn billing_to_gateway_to_billing_is_the_identity_or_a_refusal(
            // Any amount, and amounts in whole units (which most currencies' gateways take).
            minor in prop_oneof![1..=Money::MAX_MINOR, (1..=100_000_000_i64).prop_map(|k| k * 1000)],
            index in any::<prop::sample::Index>(),
        ) {
            let all = currencies();
            let currency = all[index.index(all.len())];
            let money = Money::new(minor, currency).unwrap();
            for gateway in GATEWAYS {
                match gateway_amount(gateway, money) {
                    Ok(at_gateway) => {
                        prop_assert!(at_gateway > 0);
                        let code = currency.code();
                        prop_assert_eq!(iso_minor_of(gateway, at_gateway, code), minor);
                        prop_assert_eq!(
                            iso_minor_of(gateway, at_gateway, &code.to_ascii_uppercase()),
                            minor
                        );
                    }
                    Err(refused) => {
                        prop_assert_eq!((refused.gateway, refused.money), (gateway, money));
                        prop_assert!(refused.step > 1 && minor % refused.step != 0);
                        let below = minor - minor % refused.step;
                        for near in [below, below + refused.step] {
                            if let Ok(m) = Money::new(near, currency) {
                                prop_assert!(gateway_amount(gateway, m).is_ok(), "{} {}", gateway, m);
                            }
                        }
                    }
                }
            }
        }
    }
}
