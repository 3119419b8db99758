//! The expiry of charges whose customer never acted, against in-memory ports: when it is due,
//! what is asked of the gateway, and that the gateway's truth wins over paybridge's cancel.

use super::*;
use crate::domain::{ActionDetails, CustomerAction};
use crate::ports::ChargeStore;
use crate::services::fakes::{MemQueue, MemStore, ScriptedGateway};

const NOW: i64 = 1_700_000_000;
const HOUR: i64 = 3600;
const DAY: Duration = Duration::from_secs(24 * 3600);

/// A `requires_action` charge at `gateway` whose customer was asked `age` seconds before NOW.
fn waiting(gateway: Gateway, gateway_ref: Option<&str>, age: i64) -> Charge {
    let mut c = Charge {
        gateway,
        ..crate::domain::charge::example(NOW - age)
    };
    c.status = ChargeStatus::RequiresAction;
    c.gateway_ref = gateway_ref.map(str::to_owned);
    c.customer_action = Some(CustomerAction {
        details: match gateway {
            Gateway::Adyen => ActionDetails::Adyen {
                result_code: "IdentifyShopper".into(),
                action: serde_json::json!({"type": "threeDS2", "subtype": "fingerprint"}),
            },
            _ => ActionDetails::Stripe {
                payment_intent: gateway_ref.unwrap_or_default().to_owned(),
                client_secret: Some("pi_1_secret_x".into()),
                payment_method: Some("pm_1".into()),
                next_action: None,
                reason: Some("authentication_required".into()),
            },
        },
        required_at: NOW - age,
    });
    c
}

async fn stored(store: &MemStore, charge: &Charge) {
    store.put_charge(charge).await;
}

fn answer(status: ChargeStatus, captured: i64) -> Result<PaymentOutcome, GatewayError> {
    Ok(PaymentOutcome {
        gateway_ref: "pi_1".into(),
        status,
        captured,
        failure: None,
        action: None,
    })
}

fn refused(code: &str) -> Result<PaymentOutcome, GatewayError> {
    Err(GatewayError::Refused {
        status: 400,
        code: code.into(),
        message: "no".into(),
    })
}

fn gateway(answers: Vec<Result<PaymentOutcome, GatewayError>>) -> ScriptedGateway {
    let g = ScriptedGateway::timing_out();
    *g.payments.lock().unwrap() = answers;
    g
}

fn calls(g: &ScriptedGateway) -> Vec<String> {
    g.calls.lock().unwrap().clone()
}

async fn notification_types(store: &MemStore, charge: &Charge) -> Vec<String> {
    use crate::ports::NotificationStore;
    let mut list = store.notifications_for_charge(&charge.id).await.unwrap();
    list.sort_by_key(|n| n.id.to_string());
    list.into_iter().map(|n| n.event_type).collect()
}

#[test]
fn the_expiry_counts_from_when_the_customer_was_asked_and_overdue_after_the_grace() {
    let c = waiting(Gateway::Stripe, Some("pi_1"), 0);
    assert_eq!(due(&c, NOW, DAY), Due::NotYet);
    assert_eq!(due(&c, NOW + 24 * HOUR - 1, DAY), Due::NotYet);
    assert_eq!(
        due(&c, NOW + 24 * HOUR, DAY),
        Due::Expired,
        "exactly at the expiry"
    );
    assert_eq!(due(&c, NOW + 25 * HOUR - 1, DAY), Due::Expired);
    assert_eq!(due(&c, NOW + 25 * HOUR, DAY), Due::Overdue);
    let short = Duration::from_secs(2 * 3600);
    assert_eq!(due(&c, NOW + 2 * HOUR, short), Due::Expired, "configurable");

    // A charge that waits without a described action counts from its creation.
    let mut bare = waiting(Gateway::Stripe, Some("pi_1"), 0);
    bare.customer_action = None;
    bare.created_at = NOW - 30 * HOUR;
    assert_eq!(asked_at(&bare), NOW - 30 * HOUR);
    assert_eq!(due(&bare, NOW, DAY), Due::Overdue);
}

#[tokio::test]
async fn a_charge_whose_customer_still_has_time_is_not_touched() {
    let (store, queue) = (MemStore::default(), MemQueue::default());
    let c = waiting(Gateway::Stripe, Some("pi_1"), 23 * HOUR);
    stored(&store, &c).await;
    let g = gateway(vec![answer(ChargeStatus::Canceled, 0)]);
    let out = expire_requires_action(&store, &g, &queue, c.clone(), NOW, DAY)
        .await
        .unwrap();
    assert_eq!(out, Expiry::Untouched(c));
    assert!(calls(&g).is_empty(), "nothing asked of the gateway");

    // Nor is a charge that is not waiting for its customer.
    let mut pending = waiting(Gateway::Stripe, Some("pi_1"), 48 * HOUR);
    pending.status = ChargeStatus::Pending;
    let out = expire_requires_action(&store, &g, &queue, pending, NOW, DAY)
        .await
        .unwrap();
    assert!(matches!(out, Expiry::Untouched(_)));
    assert!(calls(&g).is_empty());
}

#[tokio::test]
async fn an_expired_stripe_charge_is_canceled_at_stripe_with_its_cancel_key_and_billing_told() {
    let (store, queue) = (MemStore::default(), MemQueue::default());
    let c = waiting(Gateway::Stripe, Some("pi_1"), 24 * HOUR);
    stored(&store, &c).await;
    let g = gateway(vec![
        answer(ChargeStatus::RequiresAction, 0),
        answer(ChargeStatus::Canceled, 0),
    ]);
    let out = expire_requires_action(&store, &g, &queue, c.clone(), NOW, DAY)
        .await
        .unwrap();
    let Expiry::Settled(after) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        (after.status, after.customer_action.as_ref()),
        (ChargeStatus::Canceled, None)
    );
    assert_eq!(
        calls(&g),
        vec![
            format!("retrieve {}", c.id),
            format!("cancel paybridge-{}-cancel", c.id)
        ]
    );
    let stored = store.get_charge(&c.id).await.unwrap().unwrap();
    assert_eq!(stored.status, ChargeStatus::Canceled);
    assert_eq!(notification_types(&store, &c).await, ["charge.canceled"]);
}

#[tokio::test]
async fn a_customer_who_authenticated_before_the_expiry_run_is_a_success_not_a_cancel() {
    for (late, captured) in [
        (ChargeStatus::Succeeded, 1999),
        (ChargeStatus::Authorized, 0),
    ] {
        let (store, queue) = (MemStore::default(), MemQueue::default());
        let c = waiting(Gateway::Stripe, Some("pi_1"), 30 * HOUR);
        stored(&store, &c).await;
        let g = gateway(vec![
            answer(late, captured),
            answer(ChargeStatus::Canceled, 0),
        ]);
        let out = expire_requires_action(&store, &g, &queue, c.clone(), NOW, DAY)
            .await
            .unwrap();
        let Expiry::Settled(after) = out else {
            panic!("{out:?}")
        };
        assert_eq!((after.status, after.captured), (late, captured));
        assert_eq!(
            calls(&g).len(),
            1,
            "no cancel after the lookup: {:?}",
            calls(&g)
        );
        assert_eq!(
            notification_types(&store, &c).await,
            [format!("charge.{}", late.as_str())]
        );
    }
}

#[tokio::test]
async fn a_cancel_refused_because_the_customer_paid_meanwhile_ends_as_the_gateways_success() {
    let (store, queue) = (MemStore::default(), MemQueue::default());
    let c = waiting(Gateway::Stripe, Some("pi_1"), 24 * HOUR);
    stored(&store, &c).await;
    let g = gateway(vec![
        answer(ChargeStatus::RequiresAction, 0),
        refused("payment_intent_unexpected_state"),
        answer(ChargeStatus::Succeeded, 1999),
    ]);
    let out = expire_requires_action(&store, &g, &queue, c.clone(), NOW, DAY)
        .await
        .unwrap();
    let Expiry::Settled(after) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        (after.status, after.captured),
        (ChargeStatus::Succeeded, 1999)
    );
    assert_eq!(calls(&g).len(), 3, "{:?}", calls(&g));
    assert_eq!(notification_types(&store, &c).await, ["charge.succeeded"]);
}

#[tokio::test]
async fn an_unanswered_cancel_waits_for_the_next_run_and_is_overdue_after_the_grace() {
    let (store, queue) = (MemStore::default(), MemQueue::default());
    let c = waiting(Gateway::Stripe, Some("pi_1"), 24 * HOUR);
    stored(&store, &c).await;
    let g = gateway(vec![
        answer(ChargeStatus::RequiresAction, 0),
        Err(GatewayError::unknown("timed out", None)),
    ]);
    let out = expire_requires_action(&store, &g, &queue, c.clone(), NOW, DAY)
        .await
        .unwrap();
    assert!(
        matches!(out, Expiry::Waiting { overdue: false, .. }),
        "{out:?}"
    );
    let out = expire_requires_action(&store, &g, &queue, c.clone(), NOW + 2 * HOUR, DAY)
        .await
        .unwrap();
    assert!(
        matches!(out, Expiry::Waiting { overdue: true, .. }),
        "{out:?}"
    );
    let stored = store.get_charge(&c.id).await.unwrap().unwrap();
    assert_eq!(
        stored.status,
        ChargeStatus::RequiresAction,
        "never failed on an unknown answer"
    );
    assert!(notification_types(&store, &c).await.is_empty());
}

#[tokio::test]
async fn an_adyen_charge_without_a_psp_reference_fails_as_expired_and_a_later_authorisation_still_wins()
 {
    let (store, queue) = (MemStore::default(), MemQueue::default());
    let c = waiting(Gateway::Adyen, None, 24 * HOUR);
    stored(&store, &c).await;
    let g = gateway(vec![refused("not_supported")]);
    let out = expire_requires_action(&store, &g, &queue, c.clone(), NOW, DAY)
        .await
        .unwrap();
    let Expiry::Settled(after) = out else {
        panic!("{out:?}")
    };
    assert_eq!(after.status, ChargeStatus::Failed);
    assert_eq!(after.failure.as_ref().unwrap().code, EXPIRED_CODE);
    assert_eq!(
        after.failure.as_ref().unwrap().advice(),
        crate::domain::Advice::AuthenticateCustomer,
        "billing brings the customer back"
    );
    assert_eq!(
        calls(&g),
        vec![format!("retrieve {}", c.id)],
        "nothing to cancel"
    );

    // The shopper completes after all: Adyen's AUTHORISATION is the truth.
    let authorised = PaymentOutcome {
        gateway_ref: "8815".into(),
        status: ChargeStatus::Succeeded,
        captured: 1999,
        failure: None,
        action: None,
    };
    let after = settle(&store, &queue, after, &authorised, NOW + 60)
        .await
        .unwrap();
    assert_eq!(
        (after.status, after.captured),
        (ChargeStatus::Succeeded, 1999)
    );
    assert_eq!(
        notification_types(&store, &c).await,
        ["charge.failed", "charge.succeeded"]
    );
}

#[tokio::test]
async fn an_adyen_cancel_waits_for_its_webhook_and_fails_as_expired_if_it_never_comes() {
    let (store, queue) = (MemStore::default(), MemQueue::default());
    let c = waiting(Gateway::Adyen, Some("8815"), 24 * HOUR);
    stored(&store, &c).await;
    // Adyen: no status API; the cancel is `received` (the charge as it was).
    let g = gateway(vec![
        refused("not_supported"),
        answer(ChargeStatus::RequiresAction, 0),
    ]);
    let out = expire_requires_action(&store, &g, &queue, c.clone(), NOW, DAY)
        .await
        .unwrap();
    assert!(
        matches!(out, Expiry::Waiting { overdue: false, .. }),
        "{out:?}"
    );
    assert_eq!(
        calls(&g)[1],
        format!("cancel paybridge-{}-cancel", c.id),
        "{:?}",
        calls(&g)
    );
    // Runs later, no CANCELLATION: asked again with the same key, then failed past the grace.
    *g.payments.lock().unwrap() = vec![
        refused("not_supported"),
        answer(ChargeStatus::RequiresAction, 0),
    ];
    let out = expire_requires_action(&store, &g, &queue, c.clone(), NOW + 2 * HOUR, DAY)
        .await
        .unwrap();
    let Expiry::Settled(after) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        (after.status, after.failure.map(|f| f.code)),
        (ChargeStatus::Failed, Some(EXPIRED_CODE.to_owned()))
    );
    let keys: Vec<String> = calls(&g)
        .into_iter()
        .filter(|c| c.starts_with("cancel"))
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "one cancel key");
}
