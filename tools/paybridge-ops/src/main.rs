//! paybridge-ops: what the person on call runs (see docs/runbook.md).
//!
//! It reads the same environment as the functions (`PAYBRIDGE_TABLE`, `PAYBRIDGE_WORK_QUEUE_URL`,
//! `PAYBRIDGE_DLQ_URL`, AWS credentials and region — locally `.stack/dev/env`, which the Makefile
//! targets load):
//!
//! ```text
//! paybridge-ops redrive [--max N]            move dead-lettered work back to the work queue
//! paybridge-ops resend <ntf_…>               deliver a billing notification again (a fresh series)
//! paybridge-ops deliveries <ch_…>            a charge's notifications and their delivery log
//! paybridge-ops undelivered [--status S] [--since T] [--limit N]
//!                                            notifications billing does not have, across charges
//! paybridge-ops recover --since T [--dry-run] resend every one not delivered created since T
//! paybridge-ops index-notifications          one-off: list notifications stored before the upgrade
//! paybridge-ops sweep-outbox [--older-than S] queue pending notifications nothing will deliver
//! paybridge-ops reconcile [--after S]        one reconciliation run (what the scheduled function does)
//! paybridge-ops attention                    charges and refunds the reconciler set aside for a person
//! paybridge-ops unpark <ch_…|rf_…>           put one back into the work in flight (after a look)
//! ```
//!
//! `T` is RFC 3339 (`2026-12-01T09:00:00Z`) or unix seconds; `S` for `--status` is `pending`,
//! `failed` or `exhausted` (all three if not given).

use std::time::Duration;

use anyhow::{Context, bail};
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::GatewayRouter;
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::{ChargeId, DeliveryStatus, Notification, NotificationId, RefundId};
use paybridge::ports::{NotificationStore, ReconcileItem, ReconcileStore, RefundStore};
use paybridge::services::deliver::sweep_outbox;
use paybridge::services::reconcile::{ReconcileSettings, reconcile};
use paybridge::services::recover::{recover, resend, undelivered};
use paybridge::services::views::rfc3339;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const USAGE: &str = "usage: paybridge-ops redrive [--max N] | resend <ntf_id> | deliveries <charge_id> | undelivered [--status pending|failed|exhausted] [--since T] [--limit N] | recover --since T [--dry-run] | index-notifications | sweep-outbox [--older-than SECONDS] | reconcile [--after SECONDS] | attention | unpark <charge_id|refund_id>   (T: RFC 3339 or unix seconds)";

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set (locally: set -a; . .stack/dev/env; set +a)"))
}

fn flag(args: &[String], name: &str, default: u64) -> anyhow::Result<u64> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} needs a number")),
    }
}

/// The value after `name`, if given.
fn value<'a>(args: &'a [String], name: &str) -> anyhow::Result<Option<&'a str>> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => match args.get(i + 1) {
            Some(v) => Ok(Some(v.as_str())),
            None => bail!("{name} needs a value"),
        },
    }
}

/// A point in time: RFC 3339 (`2026-12-01T09:00:00Z`) or unix seconds.
fn instant(raw: &str) -> anyhow::Result<i64> {
    if let Ok(secs) = raw.parse::<i64>() {
        return Ok(secs);
    }
    OffsetDateTime::parse(raw, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .with_context(|| {
            format!("`{raw}` is neither RFC 3339 (2026-12-01T09:00:00Z) nor unix seconds")
        })
}

/// One line per notification, for the person on call.
fn line(n: &Notification) -> String {
    let next = n
        .series
        .next_attempt_at
        .map(rfc3339)
        .unwrap_or_else(|| "-".into());
    format!(
        "{}  {}  {:<26} {:<9} created={} series={} attempts={}/{} next={} last_status={} last_error={}",
        n.id,
        n.charge_id,
        n.event_type,
        n.status.as_str(),
        rfc3339(n.created_at),
        n.series.number,
        n.series.attempts,
        n.attempts,
        next,
        n.last_status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into()),
        n.last_error.as_deref().unwrap_or("-"),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        bail!(USAGE)
    };
    // Output is for the person on call; metrics come from the functions.
    paybridge::telemetry::disable_metrics();
    let aws = paybridge::adapters::aws_config().await;
    let now = paybridge::clock::now_secs();
    match command.as_str() {
        "redrive" => {
            let max = flag(&args, "--max", 10_000)? as usize;
            let dlq = SqsWorkQueue::from_conf(&aws, env("PAYBRIDGE_DLQ_URL")?);
            let work = SqsWorkQueue::from_conf(&aws, env("PAYBRIDGE_WORK_QUEUE_URL")?);
            let report = dlq.redrive_to(&work, max).await.context("redrive")?;
            println!(
                "moved {} message(s) from the dead-letter queue back to the work queue",
                report.moved
            );
            for reason in &report.unreadable {
                println!(
                    "  note: one was dead-lettered as unreadable ({reason}); it returns to the DLQ unless this worker version reads it"
                );
            }
        }
        "resend" => {
            let id = args.get(1).context(USAGE)?;
            let id = NotificationId::parse(id).context("not a notification id")?;
            let table = Table::from_conf(&aws, env("PAYBRIDGE_TABLE")?);
            let queue = SqsWorkQueue::from_conf(&aws, env("PAYBRIDGE_WORK_QUEUE_URL")?);
            let n = resend(&table, &queue, &id, now)
                .await
                .map_err(|e| anyhow::anyhow!(e.chain()))?;
            println!(
                "queued {} ({}) for delivery: series {} starts now; {} earlier attempt(s)",
                n.id, n.event_type, n.series.number, n.attempts
            );
        }
        "deliveries" => {
            let id = args.get(1).context(USAGE)?;
            let id = ChargeId::parse(id).context("not a charge id")?;
            let table = Table::from_conf(&aws, env("PAYBRIDGE_TABLE")?);
            let log = table
                .notifications_for_charge(&id)
                .await
                .map_err(|e| anyhow::anyhow!(e.to_string()))?;
            if log.is_empty() {
                println!("no notifications for {id}");
            }
            for n in log {
                println!("{}", line(&n));
            }
        }
        "undelivered" => {
            let statuses = match value(&args, "--status")? {
                None => DeliveryStatus::UNDELIVERED.to_vec(),
                Some(s) => match DeliveryStatus::parse(s) {
                    Some(d) if d != DeliveryStatus::Delivered => vec![d],
                    _ => bail!("--status is pending, failed or exhausted"),
                },
            };
            let since = value(&args, "--since")?
                .map(instant)
                .transpose()?
                .unwrap_or(0);
            let limit = flag(&args, "--limit", 1000)? as usize;
            let table = Table::from_conf(&aws, env("PAYBRIDGE_TABLE")?);
            let list = undelivered(&table, &statuses, since, limit)
                .await
                .map_err(|e| anyhow::anyhow!(e.chain()))?;
            for n in &list {
                println!("{}", line(n));
            }
            println!("{} notification(s) not delivered", list.len());
        }
        "recover" => {
            let since = value(&args, "--since")?
                .context("recover needs --since T (RFC 3339 or unix seconds)")?;
            let since = instant(since)?;
            let table = Table::from_conf(&aws, env("PAYBRIDGE_TABLE")?);
            if args.iter().any(|a| a == "--dry-run") {
                let list = undelivered(&table, &DeliveryStatus::UNDELIVERED, since, usize::MAX)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.chain()))?;
                for n in &list {
                    println!("{}", line(n));
                }
                println!(
                    "would resend {} notification(s) created since {}",
                    list.len(),
                    rfc3339(since)
                );
                return Ok(());
            }
            let queue = SqsWorkQueue::from_conf(&aws, env("PAYBRIDGE_WORK_QUEUE_URL")?);
            let report = recover(&table, &queue, since, now)
                .await
                .map_err(|e| anyhow::anyhow!(e.chain()))?;
            for id in &report.ids {
                println!("{id}");
            }
            println!(
                "queued {} notification(s) created since {} with a fresh series: {}",
                report.total(),
                rfc3339(since),
                serde_json::to_string(&report.resent)?
            );
        }
        "index-notifications" => {
            let table = Table::from_conf(&aws, env("PAYBRIDGE_TABLE")?);
            let n = table
                .index_undelivered_notifications()
                .await
                .map_err(|e| anyhow::anyhow!(e.to_string()))?;
            println!("indexed {n} undelivered notification(s) stored before the upgrade");
        }
        "sweep-outbox" => {
            let older = Duration::from_secs(flag(&args, "--older-than", 60)?);
            let table = Table::from_conf(&aws, env("PAYBRIDGE_TABLE")?);
            let queue = SqsWorkQueue::from_conf(&aws, env("PAYBRIDGE_WORK_QUEUE_URL")?);
            let n = sweep_outbox(&table, &queue, older, now, 1000)
                .await
                .map_err(|e| anyhow::anyhow!(e.chain()))?;
            println!("queued {n} pending notification(s)");
        }
        "reconcile" => {
            let config = paybridge::config::Config::from_env()?;
            let secrets = paybridge::adapters::load_secrets(&aws, &config.secret_id)
                .await
                .map_err(anyhow::Error::msg)?;
            let after =
                Duration::from_secs(flag(&args, "--after", config.reconcile_after.as_secs())?);
            let settings = ReconcileSettings {
                after,
                action_expiry: config.action_expiry,
                ..ReconcileSettings::default()
            };
            let table = Table::from_conf(&aws, &config.table);
            let queue = SqsWorkQueue::from_conf(&aws, &config.work_queue_url);
            let gateways = GatewayRouter::from_secrets(&config, &secrets, Duration::from_secs(10));
            let summary = reconcile(&table, &gateways, &queue, &settings, now)
                .await
                .map_err(|e| anyhow::anyhow!(e.chain()))?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        "attention" => {
            let table = Table::from_conf(&aws, env("PAYBRIDGE_TABLE")?);
            let parked = table.parked().await.context("list what needs attention")?;
            println!("{} set aside for a person", parked.len());
            println!("kind\tid\tcharge\tgateway\tgateway_ref\tstatus\treason\tsince\tage_hours");
            for p in parked {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.1}",
                    p.kind,
                    p.id,
                    p.charge_id,
                    p.gateway,
                    p.gateway_ref.as_deref().unwrap_or("-"),
                    p.status,
                    p.reason,
                    p.since,
                    (now - p.created_at) as f64 / 3600.0,
                );
            }
        }
        "unpark" => {
            let id = args
                .get(1)
                .context("usage: paybridge-ops unpark <ch_…|rf_…>")?;
            let table = Table::from_conf(&aws, env("PAYBRIDGE_TABLE")?);
            let moved = if let Ok(charge) = ChargeId::parse(id) {
                table.unpark(ReconcileItem::Charge(&charge)).await?
            } else {
                let refund = RefundId::parse(id)
                    .ok()
                    .context("not a charge or refund id")?;
                let found = table.get_refund(&refund).await?;
                let found = found.with_context(|| format!("refund {id} does not exist"))?;
                table
                    .unpark(ReconcileItem::Refund(&found.charge_id, &refund))
                    .await?
            };
            if moved {
                println!("{id} is back in the work in flight: the next reconciler run looks at it");
            } else {
                println!("{id} was not set aside (settled, or never parked); nothing changed");
            }
        }
        _ => bail!(USAGE),
    }
    Ok(())
}
