//! Applying gateway outcomes and refund amounts to a charge.

use super::*;

fn charge() -> Charge {
    example(0)
}

fn outcome(status: ChargeStatus, captured: i64) -> PaymentOutcome {
    PaymentOutcome {
        gateway_ref: "pi_1".into(),
        status,
        captured,
        failure: None,
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
