//! The retry worker: consumes the SQS work queue (batches, partial failures).
//!
//! [`handler`] reads each message, dispatches it to its use case in the shared crate, and turns
//! the result into "done" (SQS deletes it), "retry after a backoff" (the message's visibility is
//! set to the delay and it is reported failed) or "failed" (SQS retries it and, after
//! maxReceiveCount, moves it to the dead-letter queue).

pub mod handler;
