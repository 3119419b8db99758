//! The work queue as SQS behaves: at-least-once, a visibility timeout per receive, backoff by
//! visibility change, redelivery after a crash or a failure, any visible message next (no order),
//! occasionally the same message to two consumers, maxReceiveCount and a dead-letter queue that an
//! operator redrives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use paybridge::domain::WorkMessage;
use paybridge::ports::{DeadLetters, QueueError, ReceivedMessages, WorkQueue};

use crate::faults::Faults;
use crate::rng::Rng;

#[derive(Debug, Clone)]
pub struct Message {
    pub id: u64,
    pub body: String,
    pub visible_at_ms: i64,
    pub receive_count: u32,
    pub sent_at_ms: i64,
    /// Of the latest receive.
    pub receipt: String,
}

#[derive(Default)]
pub struct Queues {
    pub work: Vec<Message>,
    pub dead: Vec<(String, String)>,
    next_id: u64,
    pub sent: u64,
}

#[derive(Clone)]
pub struct SimQueue {
    pub queues: Arc<Mutex<Queues>>,
    pub faults: Arc<Faults>,
    pub now_ms: Arc<std::sync::atomic::AtomicI64>,
}

pub const VISIBILITY: Duration = Duration::from_secs(360);
pub const MAX_RECEIVES: u32 = 5;

fn down(why: &'static str) -> QueueError {
    QueueError(why.into())
}

impl SimQueue {
    fn now(&self) -> i64 {
        self.now_ms.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn push(&self, body: String, delay: Duration) {
        let now = self.now();
        let mut q = self.queues.lock().unwrap();
        q.next_id += 1;
        q.sent += 1;
        let id = q.next_id;
        q.work.push(Message {
            id,
            body,
            visible_at_ms: now + delay.as_millis() as i64,
            receive_count: 0,
            sent_at_ms: now,
            receipt: String::new(),
        });
    }

    /// Receives one visible message, chosen at random (SQS keeps no order), hiding it for the
    /// visibility timeout — or, rarely, not (a second consumer may get it too). A message past
    /// maxReceiveCount moves to the dead-letter queue instead.
    pub fn receive(&self, rng: &mut Rng) -> Option<Message> {
        let now = self.now();
        let mut q = self.queues.lock().unwrap();
        loop {
            let visible: Vec<usize> = (0..q.work.len())
                .filter(|i| q.work[*i].visible_at_ms <= now)
                .collect();
            let &at = rng.pick(&visible)?;
            if q.work[at].receive_count >= MAX_RECEIVES {
                let m = q.work.remove(at);
                q.dead.push((m.body, "maxReceiveCount".into()));
                continue;
            }
            let m = &mut q.work[at];
            m.receive_count += 1;
            m.receipt = format!("{}-{}", m.id, m.receive_count);
            if !rng.chance(0.03) {
                m.visible_at_ms = now + VISIBILITY.as_millis() as i64;
            }
            return Some(m.clone());
        }
    }

    /// The batch response said done: SQS deletes it (a stale receipt deletes nothing).
    pub fn delete(&self, receipt: &str) {
        (self.queues.lock().unwrap().work).retain(|m| m.receipt != receipt);
    }

    /// An operator's redrive: every dead letter back on the queue, counts reset.
    pub fn redrive(&self) -> usize {
        let dead = std::mem::take(&mut self.queues.lock().unwrap().dead);
        let n = dead.len();
        for (body, _) in dead {
            self.push(body, Duration::ZERO);
        }
        n
    }

    /// When the next message becomes visible (unix ms), if any is queued.
    pub fn next_visible(&self) -> Option<i64> {
        (self.queues.lock().unwrap().work.iter())
            .map(|m| m.visible_at_ms)
            .min()
    }

    pub fn is_empty(&self) -> bool {
        let q = self.queues.lock().unwrap();
        q.work.is_empty() && q.dead.is_empty()
    }
}

impl WorkQueue for SimQueue {
    async fn send(&self, message: &WorkMessage, delay: Duration) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).expect("a work message serialises");
        let effect = async {
            self.push(body, delay.min(Duration::from_secs(900)));
            Ok(())
        };
        self.faults.call("queue", effect, down).await
    }
}

impl ReceivedMessages for SimQueue {
    async fn redeliver_after(&self, receipt: &str, after: Duration) -> Result<(), QueueError> {
        let effect = async {
            let at = self.now() + after.min(Duration::from_secs(12 * 3600)).as_millis() as i64;
            let mut q = self.queues.lock().unwrap();
            if let Some(m) = q.work.iter_mut().find(|m| m.receipt == receipt) {
                m.visible_at_ms = at;
            }
            Ok(())
        };
        self.faults.call("queue", effect, down).await
    }
}

impl DeadLetters for SimQueue {
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        let effect = async {
            (self.queues.lock().unwrap().dead).push((body.to_owned(), reason.to_owned()));
            Ok(())
        };
        self.faults.call("queue", effect, down).await
    }
}
