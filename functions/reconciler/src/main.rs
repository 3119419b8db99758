//! reconciler: heals what webhooks leave open (see `paybridge::services::reconcile`). Runs on a
//! schedule in AWS; locally, `make reconcile` runs the same use case through `paybridge-ops`.

use lambda_runtime::{LambdaEvent, run, service_fn};
use paybridge::adapters::Init;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::GatewayRouter;
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::services::reconcile::{ReconcileSettings, reconcile};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let Init {
        config,
        aws,
        secrets,
        ..
    } = paybridge::adapters::init().await?;
    let store = Table::from_conf(&aws, &config.table);
    let gateways =
        GatewayRouter::from_secrets(&config, &secrets, std::time::Duration::from_secs(10));
    let queue = SqsWorkQueue::from_conf(&aws, &config.work_queue_url);
    let settings = ReconcileSettings {
        after: config.reconcile_after,
        ..ReconcileSettings::default()
    };
    run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        let now = paybridge::clock::now_secs();
        let summary = reconcile(&store, &gateways, &queue, &settings, now)
            .await
            .map_err(|e| e.chain())?;
        Ok::<_, String>(serde_json::to_value(summary).unwrap_or_default())
    }))
    .await
}
