//! Reconciler run time against the local stack (moto's DynamoDB and SQS, localstripe) with N items
//! in flight, for the README's *Performance* table: `make bench-reconcile [IN_FLIGHT=1000,10000]`.
//!
//! For each N, in a table of its own:
//! - **set aside**: N Adyen charges processing (nothing can resolve them; the first run sets
//!   them all aside), one newer Stripe charge whose answer was lost. Run 1 pages through all of
//!   them, sets the N aside and fixes the Stripe one; run 2 finds nothing in flight.
//! - **unknown**: N Stripe charges whose PaymentIntent Stripe does not know (every look-up is
//!   refused), which stay in flight and are asked about on every run: the steady cost.
//!
//! Numbers are of a debug build on this machine against Python fakes: an upper bound for
//! the real services, and a comparison between runs, not a promise.

use std::time::{Duration, Instant};

use futures::StreamExt;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::adyen::AdyenGateway;
use paybridge::adapters::gateways::stripe::StripeGateway;
use paybridge::adapters::gateways::{GatewayRouter, http_client};
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::{Charge, ChargeId, ChargeStatus, Gateway, Money};
use paybridge::ports::ChargeStore;
use paybridge::secrets::SecretString;
use paybridge::services::reconcile::{ReconcileSettings, Summary, reconcile};
use paybridge_tests::{Stack, stack, unique, unix_now};

fn router(stack: &Stack) -> GatewayRouter {
    let key = stack.secrets.stripe.as_ref().unwrap().api_key.clone();
    GatewayRouter {
        stripe: Some(StripeGateway::new(
            http_client(Duration::from_secs(5)),
            &stack.config.stripe_api_base,
            key,
        )),
        adyen: Some(AdyenGateway::new(
            http_client(Duration::from_secs(2)),
            "http://127.0.0.1:9/v71",
            SecretString::new("adyen-test-key"),
            "PaybridgeTest",
        )),
    }
}

fn in_flight(n: usize, gateway: Gateway, since: i64) -> Vec<Charge> {
    (0..n)
        .map(|i| {
            let amount = Money::parse(1000 + i as i64, "EUR").unwrap();
            let mut c = Charge::pending(
                ChargeId::generate(),
                unique("inv_"),
                amount,
                gateway,
                "pm_card_visa",
                since,
            );
            c.status = ChargeStatus::Processing;
            c.gateway_ref = Some(match gateway {
                Gateway::Adyen => format!("PSP{i:013}"),
                _ => unique("pi_unknown"),
            });
            c.customer = Some("shopper-1".into());
            c
        })
        .collect()
}

async fn seed(store: &Table, charges: &[Charge]) -> Duration {
    let started = Instant::now();
    futures::stream::iter(
        charges
            .iter()
            .map(|c| paybridge_tests::builders::store_charge(store, c)),
    )
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<Result<Vec<()>, _>>()
    .expect("seed");
    started.elapsed()
}

async fn timed(
    stack: &Stack,
    store: &Table,
    queue: &SqsWorkQueue,
    now: i64,
) -> (Summary, Duration) {
    let settings = ReconcileSettings {
        after: Duration::ZERO,
        events_window: Duration::from_secs(60),
        budget: Duration::from_secs(3600),
        ..ReconcileSettings::default()
    };
    let started = Instant::now();
    let summary = reconcile(store, &router(stack), queue, &settings, now)
        .await
        .expect("reconcile");
    (summary, started.elapsed())
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("PAYBRIDGE_BENCH_IN_FLIGHT")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("PAYBRIDGE_BENCH_IN_FLIGHT: numbers")
        })
        .collect();
    // The table is the output; the reconciler's EMF lines would drown it.
    paybridge::telemetry::disable_metrics();
    let stack = stack().await;
    println!("| items in flight | kind | seed | run 1 | run 2 | run 1 summary |");
    println!("|---|---|---|---|---|---|");
    for n in sizes {
        for kind in ["set aside (Adyen)", "unknown (Stripe refuses the look-up)"] {
            let store = Table::from_conf(&stack.aws, stack.new_table().await);
            let queue = SqsWorkQueue::from_conf(&stack.aws, stack.new_queue().await);
            let gateway = if kind.starts_with("set aside") {
                Gateway::Adyen
            } else {
                Gateway::Stripe
            };
            let mut charges = in_flight(n, gateway, unix_now() - 3600);
            // One newer charge a run must still reach: a Stripe one whose PaymentIntent is unknown
            // in the "unknown" kind too, so both kinds page through N + 1.
            charges.extend(in_flight(1, Gateway::Stripe, unix_now() - 60));
            let seeded = seed(&store, &charges).await;
            let now = unix_now() + 2;
            let (first, t1) = timed(&stack, &store, &queue, now).await;
            // The second run comes after the first run's claims ran out (10 minutes).
            let (second, t2) = timed(&stack, &store, &queue, now + 601).await;
            println!(
                "| {n} | {kind} | {:.1} s | {:.1} s | {:.1} s | checked {}, parked {}, unknown {}, pages {} (run 2: checked {}) |",
                seeded.as_secs_f64(),
                t1.as_secs_f64(),
                t2.as_secs_f64(),
                first.checked,
                first.parked,
                first.unknown,
                first.pages,
                second.checked,
            );
        }
    }
}
