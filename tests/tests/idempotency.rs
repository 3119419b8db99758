//! The idempotency layer against DynamoDB on moto: claim, replay, mismatch, in-progress,
//! crash-resume with the same resource id, and release.

use std::time::Duration;

use paybridge::adapters::dynamodb::Table;
use paybridge::domain::idempotency::{IdempotencyKey, StoredResponse};
use paybridge::ports::{IdempotencyStore, StoreError};
use paybridge::services::idempotency::{Begun, Claim, Guard, begin};
use paybridge_tests::{stack, unique};

fn claim<'a>(
    key: &'a IdempotencyKey,
    fingerprint: &str,
    resource: &str,
    now_ms: i64,
    lease_ms: i64,
) -> Claim<'a> {
    Claim {
        operation: "test_op",
        key,
        fingerprint: fingerprint.to_owned(),
        proposed_resource_id: resource.to_owned(),
        now_ms,
        lease_until_ms: now_ms + lease_ms,
        ttl: Duration::from_secs(3600),
    }
}

fn run(begun: Begun) -> Guard {
    match begun {
        Begun::Run(g) => g,
        Begun::Replay(r) => panic!("expected to run, got a replay of {r:?}"),
    }
}

const NOW: i64 = 1_800_000_000_000;

#[tokio::test]
async fn a_completed_key_replays_its_response_and_refuses_a_different_request() {
    let s = stack().await;
    let table = Table::from_conf(&s.aws, &s.config.table);
    let key = IdempotencyKey::parse(&unique("k-")).unwrap();
    let guard = run(begin(&table, claim(&key, "fp1", "res_a", NOW, 30_000))
        .await
        .unwrap());
    assert!(!guard.resumed);
    let response = StoredResponse {
        status: 201,
        body: r#"{"id":"res_a","note":"ünïcode"}"#.into(),
    };
    guard.complete(&table, &response).await;

    match begin(&table, claim(&key, "fp1", "res_b", NOW + 1, 30_000))
        .await
        .unwrap()
    {
        Begun::Replay(r) => assert_eq!(r, response),
        Begun::Run(_) => panic!("a completed key must replay"),
    }
    let err = begin(&table, claim(&key, "fp2", "res_c", NOW + 2, 30_000))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind().status(), err.code()),
        (422, "idempotency_key_reused")
    );
}

#[tokio::test]
async fn a_key_in_use_answers_409_with_a_short_retry_after() {
    let s = stack().await;
    let table = Table::from_conf(&s.aws, &s.config.table);
    let key = IdempotencyKey::parse(&unique("k-")).unwrap();
    let _first = run(begin(&table, claim(&key, "fp", "res_a", NOW, 30_000))
        .await
        .unwrap());
    let err = begin(&table, claim(&key, "fp", "res_b", NOW + 10, 30_000))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind().status(), err.code()),
        (409, "request_in_progress")
    );
    assert!(
        matches!(err.retry_after_secs(), Some(1..=2)),
        "{:?}",
        err.retry_after_secs()
    );
}

#[tokio::test]
async fn a_crashed_request_is_resumed_after_its_deadline_with_the_same_resource_and_the_old_owner_is_locked_out()
 {
    let s = stack().await;
    let table = Table::from_conf(&s.aws, &s.config.table);
    let key = IdempotencyKey::parse(&unique("k-")).unwrap();
    let crashed = run(begin(&table, claim(&key, "fp", "res_first", NOW, 5_000))
        .await
        .unwrap());

    // Before its deadline: wait. After: resume, with the first request's resource id.
    assert!(
        begin(&table, claim(&key, "fp", "res_second", NOW + 4_000, 5_000))
            .await
            .is_err()
    );
    let resumed = run(
        begin(&table, claim(&key, "fp", "res_second", NOW + 5_001, 5_000))
            .await
            .unwrap(),
    );
    assert!(resumed.resumed);
    assert_eq!(resumed.resource_id, "res_first");

    // The crashed request, if it ever wakes up, can no longer complete the key.
    let stale = table
        .complete(
            "test_op",
            key.as_str(),
            "not-the-owner",
            &StoredResponse {
                status: 500,
                body: "{}".into(),
            },
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
    drop(crashed);

    resumed
        .complete(
            &table,
            &StoredResponse {
                status: 201,
                body: "{}".into(),
            },
        )
        .await;
    assert!(matches!(
        begin(&table, claim(&key, "fp", "x", NOW + 6_000, 5_000))
            .await
            .unwrap(),
        Begun::Replay(_)
    ));
}

#[tokio::test]
async fn a_released_key_is_resumed_at_once_by_the_next_request() {
    let s = stack().await;
    let table = Table::from_conf(&s.aws, &s.config.table);
    let key = IdempotencyKey::parse(&unique("k-")).unwrap();
    let failed = run(begin(&table, claim(&key, "fp", "res_1", NOW, 30_000))
        .await
        .unwrap());
    failed.release(&table).await;
    let next = run(begin(&table, claim(&key, "fp", "res_2", NOW + 10, 30_000))
        .await
        .unwrap());
    assert!(next.resumed);
    assert_eq!(next.resource_id, "res_1");
}
