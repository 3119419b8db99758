//! retry-worker: consumes the SQS work queue (see DESIGN.md and docs/worker.md).

use lambda_runtime::{run, service_fn};
use paybridge::adapters::OnFirstUse;
use retry_worker::handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let init = paybridge::adapters::init().await?;
    // Built on the first batch, which fetches the secret; a batch that cannot have it fails
    // whole ("loading secret …") and SQS delivers it again.
    let worker = OnFirstUse::new(init, handler::worker);
    paybridge::init_phases::report();
    let worker = &worker;
    run(service_fn(|event| async move {
        let worker = worker.get().await.map_err(|e| e.chain())?;
        handler::handle(worker, event).await
    }))
    .await
}
