//! What the state machines share: the meaning of an observed status, and a gateway's reason
//! for a failure.

use serde::{Deserialize, Serialize};

/// What observing a status means for a charge currently in some other status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A real step forward: write it and notify.
    Advance,
    /// The charge is already there: nothing to do (a duplicate).
    Unchanged,
    /// The observation is older than what we know, or contradicts a final state: ignore it.
    Stale,
}

/// Why a charge failed, in the gateway's words (`card_declined`, `insufficient_funds`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
}
