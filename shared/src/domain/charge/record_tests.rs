//! Applying gateway outcomes and refund amounts to a charge.

use super::*;
use crate::domain::ActionDetails;

fn charge() -> Charge {
    example(0)
}

fn outcome(status: ChargeStatus, captured: i64) -> PaymentOutcome {
    PaymentOutcome {
        gateway_ref: "pi_1".into(),
        status,
        captured,
        failure: None,
        action: None,
    }
}

#[test]
fn a_success_records_the_reference_and_the_captured_amount() {
    let mut c = charge();
    assert!(c.apply(&outcome(ChargeStatus::Succeeded, 1999), 5));
    assert_eq!(
        (c.status, c.captured, c.gateway_ref.as_deref(), c.updated_at),
        (ChargeStatus::Succeeded, 1999, Some("pi_1"), 5)
    );
    assert!(
        !c.apply(&outcome(ChargeStatus::Succeeded, 1999), 6),
        "a duplicate changes nothing"
    );
    assert!(
        !c.apply(&outcome(ChargeStatus::Processing, 0), 7),
        "a late event changes nothing"
    );
    assert_eq!(c.status, ChargeStatus::Succeeded);
}

#[test]
fn a_decline_keeps_the_gateway_code() {
    let mut c = charge();
    let declined = PaymentOutcome {
        failure: Some(Failure {
            code: "card_declined".into(),
            message: "Your card was declined.".into(),
            advice: None,
        }),
        ..outcome(ChargeStatus::Failed, 0)
    };
    assert!(c.apply(&declined, 1));
    assert_eq!(c.failure.as_ref().unwrap().code, "card_declined");
    assert_eq!(c.captured, 0);
}

#[test]
fn refund_amounts_move_between_reserved_refunded_and_refundable() {
    let mut c = charge();
    c.apply(&outcome(ChargeStatus::Succeeded, 1999), 1);
    c.refund_reserved = 500;
    assert_eq!(c.refundable(), 1499);
    c.settle_refund(500, true, 2);
    assert_eq!(
        (c.refunded, c.refund_reserved, c.status),
        (500, 0, ChargeStatus::PartiallyRefunded)
    );
    c.refund_reserved = 1499;
    c.settle_refund(1499, true, 3);
    assert_eq!(
        (c.refunded, c.refundable(), c.status),
        (1999, 0, ChargeStatus::Refunded)
    );
    c.reverse_refund(500, 4);
    assert_eq!(
        (c.refunded, c.refundable(), c.status),
        (1499, 500, ChargeStatus::PartiallyRefunded)
    );
    c.refund_reserved = 100;
    c.settle_refund(100, false, 5);
    assert_eq!(
        (c.refunded, c.refundable()),
        (1499, 500),
        "a failed refund releases its amount"
    );
}

#[test]
fn only_a_gateway_moves_a_charge_back_and_only_with_newer_news() {
    let mut c = charge();
    assert!(c.apply_at(&outcome(ChargeStatus::Succeeded, 1999), Some(1_000), 1));
    let failed = PaymentOutcome {
        failure: Some(Failure {
            code: "capture_failed".into(),
            message: "Capture rejected".into(),
            advice: None,
        }),
        ..outcome(ChargeStatus::CaptureFailed, 0)
    };
    assert!(
        !c.apply_at(&failed, Some(999), 2),
        "older than the capture: stale"
    );
    assert!(!c.apply_at(&failed, None, 2), "untimed: stale");
    assert!(c.apply_at(&failed, Some(2_000), 3));
    assert_eq!((c.status, c.captured), (ChargeStatus::CaptureFailed, 0));
    assert!(
        c.apply_at(&outcome(ChargeStatus::Canceled, 0), None, 4),
        "billing voids it"
    );
    assert_eq!(c.status, ChargeStatus::Canceled);
    let mut late = charge();
    late.apply(
        &PaymentOutcome {
            failure: Some(Failure {
                code: "card_declined".into(),
                message: "no".into(),
                advice: None,
            }),
            ..outcome(ChargeStatus::Failed, 0)
        },
        1,
    );
    assert!(
        late.apply(&outcome(ChargeStatus::Succeeded, 1999), 2),
        "money taken wins"
    );
    assert_eq!(
        (late.status, late.failure.clone()),
        (ChargeStatus::Succeeded, None)
    );
}

#[test]
fn gateway_keys_are_stable_per_charge_and_operation() {
    let c = charge();
    assert_eq!(
        c.gateway_idempotency_key("create"),
        c.gateway_idempotency_key("create")
    );
    assert_ne!(
        c.gateway_idempotency_key("create"),
        c.gateway_idempotency_key("capture")
    );
}

fn needs_authentication(next_action: Option<&str>, pm: Option<&str>) -> PaymentOutcome {
    PaymentOutcome {
        action: Some(ActionDetails::Stripe {
            payment_intent: "pi_1".into(),
            client_secret: Some("pi_1_secret_s".into()),
            payment_method: pm.map(str::to_owned),
            next_action: next_action.map(|t| serde_json::json!({ "type": t })),
            reason: pm.map(|_| "authentication_required".to_owned()),
        }),
        ..outcome(ChargeStatus::RequiresAction, 0)
    }
}

#[test]
fn a_charge_that_needs_its_customer_keeps_what_to_do_and_since_when() {
    let mut c = charge();
    assert!(c.apply(&needs_authentication(None, Some("pm_1")), 10));
    assert_eq!(c.status, ChargeStatus::RequiresAction);
    let action = c.customer_action.clone().expect("an action");
    assert_eq!(action.required_at, 10);

    // The webhook of the same decline adds nothing; the customer's own attempt on session
    // adds Stripe's next_action, and the expiry still counts from the first request.
    assert!(!c.apply(&needs_authentication(None, Some("pm_1")), 11));
    assert!(c.apply(&needs_authentication(Some("use_stripe_sdk"), None), 20));
    let action = c.customer_action.clone().unwrap();
    assert_eq!(action.required_at, 10);
    match action.details {
        ActionDetails::Stripe {
            payment_method,
            next_action,
            ..
        } => assert_eq!(
            (payment_method.as_deref(), next_action.is_some()),
            (Some("pm_1"), true)
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_later_success_or_failure_ends_the_wait_and_late_news_never_brings_it_back() {
    for (end, captured) in [
        (ChargeStatus::Succeeded, 1999),
        (ChargeStatus::Authorized, 0),
        (ChargeStatus::Failed, 0),
        (ChargeStatus::Canceled, 0),
    ] {
        let mut c = charge();
        c.apply(&needs_authentication(None, Some("pm_1")), 1);
        assert!(c.apply(&outcome(end, captured), 2), "{end:?}");
        assert_eq!(
            (c.status, c.captured, c.customer_action.as_ref()),
            (end, captured, None),
            "{end:?}"
        );
        assert!(
            !c.apply(&needs_authentication(Some("use_stripe_sdk"), None), 3),
            "a late requires_action after {end:?} changes nothing"
        );
        assert_eq!((c.status, c.customer_action.as_ref()), (end, None));
    }
}

#[test]
fn money_taken_after_an_expiry_failure_still_wins() {
    let mut c = charge();
    c.apply(&needs_authentication(None, Some("pm_1")), 1);
    let expired = PaymentOutcome {
        failure: Some(Failure {
            code: "action_expired".into(),
            message: "the customer did not authenticate".into(),
            advice: None,
        }),
        ..outcome(ChargeStatus::Failed, 0)
    };
    assert!(c.apply(&expired, 2));
    assert!(c.apply(&outcome(ChargeStatus::Succeeded, 1999), 3));
    assert_eq!(
        (c.status, c.captured, c.failure.as_ref()),
        (ChargeStatus::Succeeded, 1999, None)
    );
}
