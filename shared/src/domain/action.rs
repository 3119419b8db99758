//! What a customer must do, on session, before a `requires_action` charge can go on: the
//! gateway's own description of the step (Stripe: confirm the PaymentIntent in the browser with
//! its `client_secret`; Adyen: hand its `action` object to Adyen's checkout components).
//!
//! paybridge charges off session, so a card whose issuer insists on 3-D Secure cannot be charged
//! without the customer. Billing gets this in the charge's `customer_action`, brings the customer
//! back (an email, an in-app prompt) and completes the payment in the customer's browser; the
//! gateway's webhook then tells paybridge how it ended.
//!
//! The values are meant for the customer's browser, so billing may see them, but they let
//! whoever holds them complete the payment: `Debug` shows none of them, and nothing logs them.

use std::fmt;

/// Stripe's code for "the issuer wants the customer to authenticate": on an off-session
/// confirmation it comes as the error's `code` (and `decline_code`) with the PaymentIntent back in
/// `requires_payment_method` — Stripe: "If the payment failed due to an authentication_required
/// decline code, use the declined PaymentIntent's client secret and payment method with
/// confirmCardPayment to allow the customer to authenticate the payment."
pub const AUTHENTICATION_REQUIRED: &str = "authentication_required";

/// A gateway's description of the customer's step, as a gateway answer or event carries it.
#[derive(Clone, PartialEq, Eq)]
pub enum ActionDetails {
    /// A Stripe PaymentIntent the customer confirms on session (Stripe.js
    /// `confirmCardPayment(client_secret, {payment_method})`, or `handleNextAction` while it is in
    /// `requires_action`).
    Stripe {
        payment_intent: String,
        /// The PaymentIntent's `client_secret` (absent if Stripe did not send it).
        client_secret: Option<String>,
        /// The payment method to confirm with: the one Stripe declined off session
        /// (`last_payment_error.payment_method`), or the PaymentIntent's own.
        payment_method: Option<String>,
        /// Stripe's `next_action`, as Stripe sent it, while the PaymentIntent is `requires_action`.
        next_action: Option<serde_json::Value>,
        /// Why: Stripe's `authentication_required` for an off-session decline; `None` when the
        /// PaymentIntent itself is waiting for the action.
        reason: Option<String>,
    },
    /// An Adyen `/payments` answer that needs the shopper (`RedirectShopper`, `IdentifyShopper`,
    /// `ChallengeShopper`, `PresentToShopper`) with its `action` object, unchanged.
    Adyen {
        result_code: String,
        action: serde_json::Value,
    },
}

impl fmt::Debug for ActionDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionDetails::Stripe {
                payment_intent,
                reason,
                ..
            } => f
                .debug_struct("Stripe")
                .field("payment_intent", payment_intent)
                .field("reason", reason)
                .finish_non_exhaustive(),
            ActionDetails::Adyen { result_code, .. } => f
                .debug_struct("Adyen")
                .field("result_code", result_code)
                .finish_non_exhaustive(),
        }
    }
}

impl ActionDetails {
    /// What `newer` (a later observation of the same step) adds: fields it has replace ours,
    /// fields it lacks keep ours (a `payment_intent.requires_action` event names no declined
    /// payment method; an off-session decline has no `next_action`).
    pub fn merged(&self, newer: &ActionDetails) -> ActionDetails {
        match (self, newer) {
            (
                ActionDetails::Stripe {
                    payment_intent,
                    client_secret,
                    payment_method,
                    next_action,
                    reason,
                },
                ActionDetails::Stripe {
                    payment_intent: new_pi,
                    client_secret: new_secret,
                    payment_method: new_pm,
                    next_action: new_next,
                    reason: new_reason,
                },
            ) if payment_intent == new_pi => ActionDetails::Stripe {
                payment_intent: payment_intent.clone(),
                client_secret: new_secret.clone().or_else(|| client_secret.clone()),
                payment_method: new_pm.clone().or_else(|| payment_method.clone()),
                next_action: new_next.clone().or_else(|| next_action.clone()),
                reason: new_reason.clone().or_else(|| reason.clone()),
            },
            _ => newer.clone(),
        }
    }
}

/// The step a `requires_action` charge waits for, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerAction {
    pub details: ActionDetails,
    /// When paybridge first learned the customer must act (unix seconds); the reconciler's
    /// expiry (`PAYBRIDGE_ACTION_EXPIRY_HOURS`) counts from here.
    pub required_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripe(secret: Option<&str>, pm: Option<&str>, next: Option<&str>) -> ActionDetails {
        ActionDetails::Stripe {
            payment_intent: "pi_1".into(),
            client_secret: secret.map(str::to_owned),
            payment_method: pm.map(str::to_owned),
            next_action: next.map(|t| serde_json::json!({ "type": t })),
            reason: None,
        }
    }

    #[test]
    fn debug_shows_neither_the_client_secret_nor_the_adyen_action() {
        let s = format!("{:?}", stripe(Some("pi_1_secret_abc"), Some("pm_1"), None));
        assert!(s.contains("pi_1") && !s.contains("secret_abc"), "{s}");
        let a = ActionDetails::Adyen {
            result_code: "IdentifyShopper".into(),
            action: serde_json::json!({"paymentData": "Ab02b4c0!xyz", "token": "eyJ0"}),
        };
        let s = format!("{a:?}");
        assert!(
            s.contains("IdentifyShopper") && !s.contains("Ab02") && !s.contains("eyJ0"),
            "{s}"
        );
    }

    #[test]
    fn a_later_observation_adds_what_it_has_and_keeps_what_it_lacks() {
        let declined = stripe(Some("pi_1_secret_abc"), Some("pm_1"), None);
        let asked = stripe(Some("pi_1_secret_abc"), None, Some("use_stripe_sdk"));
        assert_eq!(
            declined.merged(&asked),
            stripe(
                Some("pi_1_secret_abc"),
                Some("pm_1"),
                Some("use_stripe_sdk")
            )
        );
        let other = ActionDetails::Stripe {
            payment_intent: "pi_2".into(),
            client_secret: None,
            payment_method: None,
            next_action: None,
            reason: None,
        };
        assert_eq!(
            declined.merged(&other),
            other,
            "another PaymentIntent replaces"
        );
    }
}
