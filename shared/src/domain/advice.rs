//! Decline advice: what billing's dunning should do after a failed charge, mapped from what the
//! gateway said, so billing can act without knowing gateways.
//!
//! Sources (docs/charges.md has the table):
//! - Stripe: the decline codes and their next steps (docs.stripe.com/declines/codes), the
//!   `advice_code` of a card error (`try_again_later`, `do_not_try_again`, `confirm_card_data`:
//!   docs.stripe.com/declines/card, "Retrying issuer declines"), and `network_advice_code`, the
//!   card network's merchant advice code passed through (Mastercard MAC: 01 new account
//!   information, 02 try again later, 03 do not try again, 21 payment cancelled, 24–30 retry after
//!   a stated time).
//! - Adyen: `refusalReasonCode` / `refusalReason` (docs.adyen.com/development-resources/refusal-reasons).
//!
//! The rules: a hard decline is never advised for retry — any signal that says "do not try again"
//! wins over every other; a code paybridge does not know is `do_not_retry` (retrying blind costs
//! network fees and can get a merchant flagged); only `retry_later` is `retryable`.

use serde::{Deserialize, Serialize};

/// What to do after a failed charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Advice {
    /// A soft decline (insufficient funds, issuer unavailable, processing error): the same
    /// payment method may succeed later, within the card networks' retry limits.
    RetryLater,
    /// A hard decline (fraud, revoked authorization, not permitted) or a refusal of paybridge's
    /// own: do not charge this payment method again for this.
    DoNotRetry,
    /// The payment method will not work (expired, lost, wrong CVC, blocked): ask the customer
    /// for another one.
    UpdatePaymentMethod,
    /// The issuer wants the customer to authenticate (3-D Secure): bring the customer back on
    /// session.
    AuthenticateCustomer,
}

impl Advice {
    pub const ALL: [Advice; 4] = [
        Advice::RetryLater,
        Advice::DoNotRetry,
        Advice::UpdatePaymentMethod,
        Advice::AuthenticateCustomer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Advice::RetryLater => "retry_later",
            Advice::DoNotRetry => "do_not_retry",
            Advice::UpdatePaymentMethod => "update_payment_method",
            Advice::AuthenticateCustomer => "authenticate_customer",
        }
    }

    /// Whether trying the same payment method again later may succeed.
    pub fn retryable(self) -> bool {
        self == Advice::RetryLater
    }

    /// The advice for a Stripe card error: its `advice_code` and the network's advice first
    /// (a "do not try again" from either wins), then the decline code (or the error code when
    /// Stripe sent no decline code).
    pub fn stripe(
        code: &str,
        advice_code: Option<&str>,
        network_advice_code: Option<&str>,
    ) -> Advice {
        let from_advice = advice_code.and_then(|a| match a {
            "do_not_try_again" => Some(Advice::DoNotRetry),
            "try_again_later" => Some(Advice::RetryLater),
            "confirm_card_data" => Some(Advice::UpdatePaymentMethod),
            _ => None,
        });
        let from_network = network_advice_code.and_then(network);
        let signals = [from_advice, from_network];
        if signals.contains(&Some(Advice::DoNotRetry)) {
            return Advice::DoNotRetry;
        }
        let by_code = of_code(code);
        if by_code == Advice::DoNotRetry && KNOWN_HARD.contains(&code) {
            return Advice::DoNotRetry;
        }
        from_advice.or(from_network).unwrap_or(by_code)
    }

    /// The advice for an Adyen refusal, by `refusalReasonCode` or, where only the text came (a
    /// webhook's `reason`), by `refusalReason`.
    pub fn adyen(code_or_reason: &str) -> Advice {
        ADYEN
            .iter()
            .find(|(code, reason, _)| {
                *code == code_or_reason || reason.eq_ignore_ascii_case(code_or_reason)
            })
            .map_or(Advice::DoNotRetry, |(_, _, advice)| *advice)
    }
}

/// A Mastercard merchant advice code as Stripe passes it in `network_advice_code`.
fn network(code: &str) -> Option<Advice> {
    match code {
        "01" => Some(Advice::UpdatePaymentMethod),
        "02" | "24" | "25" | "26" | "27" | "28" | "29" | "30" => Some(Advice::RetryLater),
        "03" | "21" => Some(Advice::DoNotRetry),
        _ => None,
    }
}

/// Stripe decline codes that are hard declines: an `advice_code` of `try_again_later` does not
/// override them.
const KNOWN_HARD: &[&str] = &[
    "fraudulent",
    "merchant_blacklist",
    "security_violation",
    "stop_payment_order",
    "revocation_of_authorization",
    "revocation_of_all_authorizations",
    "transaction_not_allowed",
    "not_permitted",
    "service_not_allowed",
    "duplicate_transaction",
    "do_not_try_again",
];

/// The advice for a failure code alone: Stripe's decline and error codes, Adyen's refusal
/// reason codes, and paybridge's own.
pub fn of_code(code: &str) -> Advice {
    if code.bytes().all(|b| b.is_ascii_digit()) && !code.is_empty() {
        return Advice::adyen(code);
    }
    match code {
        // Stripe: soft declines. A generic decline is the issuer's "not now"; the networks'
        // retry limits apply (docs/charges.md).
        "insufficient_funds"
        | "processing_error"
        | "try_again_later"
        | "issuer_not_available"
        | "reenter_transaction"
        | "approve_with_id"
        | "card_velocity_exceeded"
        | "withdrawal_count_limit_exceeded"
        | "generic_decline"
        | "do_not_honor"
        | "card_declined"
        | "no_action_taken"
        // Adyen's resultCode `Error`, and a charge paybridge found was never created at the
        // gateway (nothing was taken; charging again is safe).
        | "adyen_error"
        | "payment_not_created" => Advice::RetryLater,
        // Stripe: the card will not work; the customer must give another or fix its data.
        "expired_card"
        | "incorrect_cvc"
        | "invalid_cvc"
        | "incorrect_number"
        | "invalid_number"
        | "invalid_expiry_month"
        | "invalid_expiry_year"
        | "incorrect_zip"
        | "incorrect_address"
        | "card_not_supported"
        | "currency_not_supported"
        | "lost_card"
        | "stolen_card"
        | "pickup_card"
        | "restricted_card"
        | "invalid_account"
        | "new_account_information_available"
        | "call_issuer"
        | "pin_try_exceeded"
        | "payment_method_not_available" => Advice::UpdatePaymentMethod,
        // The customer must authenticate on session; or did not, and the action expired.
        "authentication_required" | "authentication_not_handled" | "action_expired" => {
            Advice::AuthenticateCustomer
        }
        // Hard declines, paybridge's own refusals (`gateway_not_configured`, a 401/403 from the
        // gateway's API), and anything unknown.
        _ => Advice::DoNotRetry,
    }
}

/// Adyen's refusal reasons: (refusalReasonCode, refusalReason, advice), from
/// docs.adyen.com/development-resources/refusal-reasons.
const ADYEN: &[(&str, &str, Advice)] = &[
    ("2", "Refused", Advice::RetryLater),
    ("3", "Referral", Advice::UpdatePaymentMethod),
    ("4", "Acquirer Error", Advice::RetryLater),
    ("5", "Blocked Card", Advice::UpdatePaymentMethod),
    ("6", "Expired Card", Advice::UpdatePaymentMethod),
    ("7", "Invalid Amount", Advice::DoNotRetry),
    ("8", "Invalid Card Number", Advice::UpdatePaymentMethod),
    ("9", "Issuer Unavailable", Advice::RetryLater),
    ("10", "Not supported", Advice::UpdatePaymentMethod),
    ("11", "3D Not Authenticated", Advice::AuthenticateCustomer),
    ("12", "Not enough balance", Advice::RetryLater),
    ("14", "Acquirer Fraud", Advice::DoNotRetry),
    ("15", "Cancelled", Advice::DoNotRetry),
    ("16", "Shopper Cancelled", Advice::DoNotRetry),
    ("17", "Invalid Pin", Advice::UpdatePaymentMethod),
    ("18", "Pin tries exceeded", Advice::UpdatePaymentMethod),
    ("19", "Pin validation not possible", Advice::RetryLater),
    ("20", "FRAUD", Advice::DoNotRetry),
    ("21", "Not Submitted", Advice::RetryLater),
    ("22", "FRAUD-CANCELLED", Advice::DoNotRetry),
    ("23", "Transaction Not Permitted", Advice::DoNotRetry),
    ("24", "CVC Declined", Advice::UpdatePaymentMethod),
    ("25", "Restricted Card", Advice::UpdatePaymentMethod),
    ("26", "Revocation Of Auth", Advice::DoNotRetry),
    ("27", "Declined Non Generic", Advice::DoNotRetry),
    ("28", "Withdrawal amount exceeded", Advice::RetryLater),
    ("29", "Withdrawal count exceeded", Advice::RetryLater),
    ("31", "Issuer Suspected Fraud", Advice::DoNotRetry),
    ("32", "AVS Declined", Advice::UpdatePaymentMethod),
    (
        "33",
        "Card requires online pin",
        Advice::UpdatePaymentMethod,
    ),
    (
        "38",
        "Authentication required",
        Advice::AuthenticateCustomer,
    ),
    (
        "42",
        "3DS Authentication Error",
        Advice::AuthenticateCustomer,
    ),
    (
        "46",
        "Transaction blocked by Adyen to prevent excessive retry fees",
        Advice::DoNotRetry,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_decline_class_has_its_advice_and_only_soft_declines_are_retryable() {
        for (code, advice) in [
            ("insufficient_funds", Advice::RetryLater),
            ("processing_error", Advice::RetryLater),
            ("generic_decline", Advice::RetryLater),
            ("expired_card", Advice::UpdatePaymentMethod),
            ("lost_card", Advice::UpdatePaymentMethod),
            ("stolen_card", Advice::UpdatePaymentMethod),
            ("incorrect_cvc", Advice::UpdatePaymentMethod),
            ("authentication_required", Advice::AuthenticateCustomer),
            ("action_expired", Advice::AuthenticateCustomer),
            ("fraudulent", Advice::DoNotRetry),
            ("gateway_not_configured", Advice::DoNotRetry),
            ("a_code_nobody_knows", Advice::DoNotRetry),
            ("12", Advice::RetryLater),
            ("6", Advice::UpdatePaymentMethod),
            ("20", Advice::DoNotRetry),
            ("11", Advice::AuthenticateCustomer),
            ("99", Advice::DoNotRetry),
        ] {
            assert_eq!(of_code(code), advice, "{code}");
            assert_eq!(of_code(code).retryable(), advice == Advice::RetryLater);
        }
    }

    #[test]
    fn a_do_not_try_again_from_stripe_or_the_network_wins_over_a_soft_decline_code() {
        let soft = "insufficient_funds";
        assert_eq!(Advice::stripe(soft, None, None), Advice::RetryLater);
        assert_eq!(
            Advice::stripe(soft, Some("do_not_try_again"), None),
            Advice::DoNotRetry
        );
        assert_eq!(Advice::stripe(soft, None, Some("03")), Advice::DoNotRetry);
        assert_eq!(
            Advice::stripe(soft, Some("try_again_later"), Some("21")),
            Advice::DoNotRetry
        );
        assert_eq!(
            Advice::stripe("generic_decline", Some("confirm_card_data"), None),
            Advice::UpdatePaymentMethod
        );
        assert_eq!(
            Advice::stripe("do_not_honor", None, Some("01")),
            Advice::UpdatePaymentMethod
        );
    }

    #[test]
    fn a_hard_decline_is_never_advised_for_retry_whatever_else_is_said() {
        for hard in KNOWN_HARD {
            for advice in [None, Some("try_again_later"), Some("confirm_card_data")] {
                for network in [None, Some("02"), Some("01")] {
                    assert_eq!(
                        Advice::stripe(hard, advice, network),
                        Advice::DoNotRetry,
                        "{hard} {advice:?} {network:?}"
                    );
                }
            }
        }
        for (code, reason, advice) in ADYEN {
            assert_eq!(Advice::adyen(code), *advice);
            assert_eq!(Advice::adyen(reason), *advice, "{reason}");
            assert_eq!(Advice::adyen(&reason.to_lowercase()), *advice);
        }
    }

    #[test]
    fn advice_reads_as_its_snake_case_name() {
        for a in Advice::ALL {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
    }
}
