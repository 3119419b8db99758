//! webhook-intake: `POST /webhooks/{gateway}` for Stripe, Adyen and Standard Webhooks senders,
//! and Stripe events from an Amazon EventBridge partner event bus.

use lambda_runtime::{LambdaEvent, run, service_fn};
use serde_json::Value;
use webhook_intake::bus;
use webhook_intake::handler::Intake;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // The secret is fetched by the first delivery; one that cannot have it is answered 503,
    // which the gateway retries.
    let init = paybridge::adapters::init().await?;
    let app = Intake::new(&init);
    paybridge::init_phases::report();
    let app = &app;
    run(service_fn(|event: LambdaEvent<Value>| {
        bus::dispatch(app, event)
    }))
    .await
}
