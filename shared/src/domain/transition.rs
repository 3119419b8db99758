//! What the state machines share: the meaning of an observed status, and a gateway's reason
//! for a failure.

use serde::{Deserialize, Serialize};

use super::advice::{self, Advice};

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

/// Why a charge failed, in the gateway's words (`card_declined`, `insufficient_funds`, …), and
/// what billing should do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
    /// The advice from everything the gateway said (Stripe's `advice_code` and network advice
    /// beside the decline code); `None`: derived from `code` alone (see [`Failure::advice`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<Advice>,
}

impl Failure {
    /// A failure whose advice follows from its code.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            code: code.into(),
            message: message.into(),
            advice: None,
        }
    }

    /// What billing should do: the advice the gateway's answer gave, else the code's.
    pub fn advice(&self) -> Advice {
        self.advice.unwrap_or_else(|| advice::of_code(&self.code))
    }
}
