//! The AWS adapters against moto server: conditional writes, versions, transactions, the work
//! queue and the secret.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use paybridge::adapters::dynamodb::{Item, Table, TableError, Write};
use paybridge::adapters::secrets_manager::SecretsManagerSource;
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::{Gateway, WorkMessage};
use paybridge::ports::{SecretSource, WorkQueue};
use paybridge_tests::{stack, unique};

fn item(pk: &str, version: u64, note: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("sk".to_owned(), AttributeValue::S("TEST".to_owned())),
        ("version".to_owned(), AttributeValue::N(version.to_string())),
        ("note".to_owned(), AttributeValue::S(note.to_owned())),
    ])
}

fn note(item: &Item) -> &str {
    item["note"].as_s().expect("note")
}

#[tokio::test]
async fn a_second_put_of_the_same_key_is_a_typed_conflict_carrying_the_winner() {
    let s = stack().await;
    let table = Table::from_conf(&s.aws, &s.config.table);
    let pk = unique("TEST#");
    table.put_new(item(&pk, 1, "first")).await.unwrap();
    match table.put_new(item(&pk, 1, "second")).await {
        Err(TableError::ConditionFailed {
            existing: Some(existing),
            ..
        }) => assert_eq!(note(&existing), "first"),
        other => panic!("expected a condition failure with the existing item, got {other:?}"),
    }
    assert_eq!(
        note(&table.get(&pk, "TEST").await.unwrap().unwrap()),
        "first"
    );
}

#[tokio::test]
async fn a_write_at_a_stale_version_is_a_typed_conflict_and_changes_nothing() {
    let s = stack().await;
    let table = Table::from_conf(&s.aws, &s.config.table);
    let pk = unique("TEST#");
    table.put_new(item(&pk, 1, "v1")).await.unwrap();
    table.put_at_version(item(&pk, 2, "v2"), 1).await.unwrap();
    let stale = table.put_at_version(item(&pk, 2, "lost update"), 1).await;
    assert!(
        matches!(stale, Err(TableError::ConditionFailed { .. })),
        "{stale:?}"
    );
    assert_eq!(note(&table.get(&pk, "TEST").await.unwrap().unwrap()), "v2");
}

#[tokio::test]
async fn a_transaction_with_one_failed_condition_writes_nothing() {
    let s = stack().await;
    let table = Table::from_conf(&s.aws, &s.config.table);
    let (existing, fresh) = (unique("TEST#"), unique("TEST#"));
    table.put_new(item(&existing, 1, "v1")).await.unwrap();
    let result = table
        .transact(vec![
            Write::PutNew(item(&fresh, 1, "new")),
            Write::PutAtVersion(item(&existing, 2, "v2"), 7),
        ])
        .await;
    match result {
        Err(TableError::ConditionFailed { failed, .. }) => assert_eq!(failed, vec![1]),
        other => panic!("expected the second write's condition to fail, got {other:?}"),
    }
    assert!(
        table.get(&fresh, "TEST").await.unwrap().is_none(),
        "the first write must not have landed"
    );
    assert_eq!(
        note(&table.get(&existing, "TEST").await.unwrap().unwrap()),
        "v1"
    );

    table
        .transact(vec![
            Write::PutNew(item(&fresh, 1, "new")),
            Write::PutAtVersion(item(&existing, 2, "v2"), 1),
        ])
        .await
        .unwrap();
    assert_eq!(
        note(&table.get(&existing, "TEST").await.unwrap().unwrap()),
        "v2"
    );
}

/// moto's threaded server lets two conditional puts on one key both win unless DynamoDB requests
/// are serialised (docs/local-stack.md). This proves the local stack does, so the concurrency tests
/// elsewhere mean something.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_conditional_puts_have_exactly_one_winner_in_each_of_100_rounds() {
    let s = stack().await;
    let table = Arc::new(Table::from_conf(&s.aws, &s.config.table));
    for round in 0..100 {
        let pk = unique("RACE#");
        let writers: Vec<_> = (0..32)
            .map(|w| {
                let (table, pk) = (table.clone(), pk.clone());
                tokio::spawn(
                    async move { table.put_new(item(&pk, 1, &format!("writer {w}"))).await },
                )
            })
            .collect();
        let mut winners = 0;
        for w in writers {
            match w.await.unwrap() {
                Ok(()) => winners += 1,
                Err(TableError::ConditionFailed { .. }) => {}
                Err(e) => panic!("round {round}: unexpected error {e:?}"),
            }
        }
        assert_eq!(
            winners, 1,
            "round {round}: {winners} writers won the same key"
        );
    }
}

#[tokio::test]
async fn a_delayed_message_is_invisible_until_its_delay_then_received_and_deleted() {
    let s = stack().await;
    let url = s.new_queue().await;
    let queue = SqsWorkQueue::from_conf(&s.aws, &url);
    let message = WorkMessage::apply_event(Gateway::Stripe, &unique("evt_"));
    let sent_at = Instant::now();
    queue.send(&message, Duration::from_secs(2)).await.unwrap();
    assert!(
        queue.receive(10, Duration::ZERO).await.unwrap().is_empty(),
        "visible before its delay"
    );

    let received =
        paybridge_tests::eventually(Duration::from_secs(10), "the delayed message", || async {
            let msgs = queue.receive(10, Duration::from_secs(1)).await.unwrap();
            (!msgs.is_empty()).then_some(msgs)
        })
        .await;
    assert!(
        sent_at.elapsed() >= Duration::from_millis(1900),
        "arrived after {:?}",
        sent_at.elapsed()
    );
    assert_eq!(received.len(), 1);
    let body: WorkMessage = serde_json::from_str(received[0].body().unwrap()).unwrap();
    assert_eq!(body, message);

    queue
        .delete(received[0].receipt_handle().unwrap())
        .await
        .unwrap();
    // Make sure it does not come back once its visibility timeout would have ended.
    let attrs = s
        .sqs()
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let count = |name| {
        attrs
            .attributes()
            .and_then(|a| a.get(&name).cloned())
            .unwrap_or_default()
    };
    assert_eq!(
        count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
        "0"
    );
    assert_eq!(
        count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        "0"
    );
}

#[tokio::test]
async fn the_secret_loads_once_and_is_served_from_the_cache_afterwards() {
    let s = stack().await;
    let client = aws_sdk_secretsmanager::Client::new(&s.aws);
    let name = unique("paybridge-test-");
    let first = r#"{"stripe":{"api_key":"sk_test_first","webhook_secrets":["whsec_a"]}}"#;
    client
        .create_secret()
        .name(&name)
        .secret_string(first)
        .send()
        .await
        .unwrap();

    let source = SecretsManagerSource::from_conf(&s.aws, &name);
    let loaded = source.secrets().await.unwrap();
    assert_eq!(
        loaded.stripe.as_ref().unwrap().api_key.expose(),
        "sk_test_first"
    );

    client
        .put_secret_value()
        .secret_id(&name)
        .secret_string(r#"{"stripe":{"api_key":"sk_test_second"}}"#)
        .send()
        .await
        .unwrap();
    let cached = source.secrets().await.unwrap();
    assert!(
        Arc::ptr_eq(&loaded, &cached),
        "the second call must not fetch again"
    );
    assert_eq!(
        cached.stripe.as_ref().unwrap().api_key.expose(),
        "sk_test_first"
    );

    // A new execution environment (a new source) sees the rotated value.
    let fresh = SecretsManagerSource::from_conf(&s.aws, &name)
        .secrets()
        .await
        .unwrap();
    assert_eq!(
        fresh.stripe.as_ref().unwrap().api_key.expose(),
        "sk_test_second"
    );
}

#[tokio::test]
async fn the_local_secret_is_the_one_in_local_secrets_json() {
    let s = stack().await;
    let loaded = SecretsManagerSource::from_conf(&s.aws, &s.config.secret_id)
        .secrets()
        .await
        .unwrap();
    assert_eq!(
        loaded.stripe.as_ref().unwrap().webhook_secrets,
        s.secrets.stripe.as_ref().unwrap().webhook_secrets
    );
}

#[tokio::test]
async fn a_missing_secret_is_an_error_not_a_panic() {
    let s = stack().await;
    let err = SecretsManagerSource::from_conf(&s.aws, unique("missing-"))
        .secrets()
        .await
        .unwrap_err();
    assert!(
        matches!(err, paybridge::ports::SecretError::Unavailable(_)),
        "{err:?}"
    );
}

/// Functions fetch the secret on first use, not at init (issue 15): a secret that cannot be read
/// fails that use clearly, naming it, and the next use fetches again.
#[tokio::test]
async fn a_secret_that_appears_later_is_fetched_on_the_next_use_after_a_failed_one() {
    use paybridge::adapters::{Init, OnFirstUse};
    let s = stack().await;
    let name = unique("paybridge-later-");
    let source = Arc::new(SecretsManagerSource::from_conf(&s.aws, &name));
    let mut config = s.config.clone();
    config.secret_id = name.clone();
    let init = Init {
        config,
        aws: s.aws.clone(),
        secret: source,
    };
    let app = OnFirstUse::new(init, |_, secrets| {
        (secrets
            .stripe
            .as_ref()
            .map(|s| s.api_key.expose().to_owned()))
        .ok_or_else(|| "the secret names no Stripe key".to_owned())
    });

    let err = app.get().await.unwrap_err();
    assert_eq!(err.code(), "temporarily_unavailable", "{}", err.chain());
    assert!(
        err.chain().contains(&format!("loading secret {name}")),
        "the error names the secret: {}",
        err.chain()
    );

    let client = aws_sdk_secretsmanager::Client::new(&s.aws);
    client
        .create_secret()
        .name(&name)
        .secret_string(r#"{"adyen":{"api_key":"k","merchant_account":"m","hmac_keys":["00"]}}"#)
        .send()
        .await
        .unwrap();
    // Readable now, but it lacks what the function needs: a 500 that says so.
    let err = app.get().await.unwrap_err();
    assert_eq!(err.code(), "internal_error", "{}", err.chain());
    assert!(
        err.chain().contains("the secret names no Stripe key"),
        "{}",
        err.chain()
    );

    // Fixed, it reaches this environment on the next use: the unusable read was not kept.
    client
        .put_secret_value()
        .secret_id(&name)
        .secret_string(r#"{"stripe":{"api_key":"sk_test_later","webhook_secrets":["whsec_a"]}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(app.get().await.unwrap(), "sk_test_later");
    assert_eq!(app.get().await.unwrap(), "sk_test_later");
}
