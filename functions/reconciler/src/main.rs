//! reconciler: heals what webhooks leave open (see `paybridge::services::reconcile`). Runs on a
//! schedule in AWS; locally, `make reconcile` runs the same use case through `paybridge-ops`.

use lambda_runtime::{LambdaEvent, run, service_fn};
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::GatewayRouter;
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::adapters::{Init, OnFirstUse};
use paybridge::secrets::Secrets;
use paybridge::services::reconcile::{ReconcileSettings, reconcile};

/// What a run needs, built on the first run, which fetches the secret.
struct Clients {
    store: Table,
    gateways: GatewayRouter,
    queue: SqsWorkQueue,
}

fn clients(init: &Init, secrets: &Secrets) -> Result<Clients, String> {
    let (config, aws) = (&init.config, &init.aws);
    Ok(Clients {
        store: Table::from_conf(aws, &config.table),
        gateways: GatewayRouter::from_secrets(config, secrets, std::time::Duration::from_secs(10)),
        queue: SqsWorkQueue::from_conf(aws, &config.work_queue_url),
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let init = paybridge::adapters::init().await?;
    let settings = ReconcileSettings {
        after: init.config.reconcile_after,
        action_expiry: init.config.action_expiry,
        ..ReconcileSettings::default()
    };
    let app = OnFirstUse::new(init, clients);
    paybridge::init_phases::report();
    let (app, base) = (&app, &settings);
    run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move {
            let now_ms = paybridge::clock::now_ms();
            // Page through work in flight until a minute before the function's timeout: what is left
            // waits for the next run, and the run still ends with the outbox sweep and its metrics.
            // (No deadline given: the default budget.)
            let budget = match event.context.deadline {
                0 => base.budget,
                deadline => {
                    let left_ms = u64::try_from(deadline as i64 - now_ms).unwrap_or(0);
                    std::time::Duration::from_millis(left_ms.saturating_sub(60_000))
                        .min(base.budget)
                }
            };
            let settings = ReconcileSettings {
                budget,
                ..base.clone()
            };
            let now = now_ms / 1000;
            let Clients {
                store,
                gateways,
                queue,
            } = app.get().await.map_err(|e| e.chain())?;
            let summary = reconcile(store, gateways, queue, &settings, now)
                .await
                .map_err(|e| e.chain())?;
            Ok::<_, String>(serde_json::to_value(summary).unwrap_or_default())
        },
    ))
    .await
}
