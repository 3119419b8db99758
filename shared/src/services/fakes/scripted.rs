//! The parties outside paybridge, answering from scripts: the payment gateway and billing's
//! endpoint.

use std::sync::Mutex;

use crate::domain::{
    Charge, Money, Notification, NotificationId, PaymentOutcome, Refund, RefundOutcome,
};
use crate::ports::{
    GatewayError, Notifier, NotifyOutcome, PaymentGateway, PaymentRequest, RefundGateway,
};

/// A gateway that answers every call from a script (the last answer repeats) and counts calls.
pub struct ScriptedGateway {
    pub payments: Mutex<Vec<Result<PaymentOutcome, GatewayError>>>,
    pub refunds: Mutex<Vec<Result<RefundOutcome, GatewayError>>>,
    pub calls: Mutex<Vec<String>>,
}

impl ScriptedGateway {
    /// A gateway whose every payment answer is unknown (a timeout).
    pub fn timing_out() -> Self {
        ScriptedGateway {
            payments: Mutex::new(vec![Err(GatewayError::unknown("timed out", None))]),
            refunds: Mutex::new(vec![Err(GatewayError::unknown("timed out", None))]),
            calls: Mutex::new(Vec::new()),
        }
    }

    fn next<T: Clone>(script: &Mutex<Vec<Result<T, GatewayError>>>) -> Result<T, GatewayError> {
        let mut s = script.lock().unwrap();
        if s.len() > 1 {
            s.remove(0)
        } else {
            s[0].clone_answer()
        }
    }
}

trait CloneAnswer {
    fn clone_answer(&self) -> Self;
}

impl<T: Clone> CloneAnswer for Result<T, GatewayError> {
    fn clone_answer(&self) -> Self {
        match self {
            Ok(v) => Ok(v.clone()),
            Err(GatewayError::Unknown {
                message,
                retry_after,
                ..
            }) => Err(GatewayError::Unknown {
                message: message.clone(),
                retry_after: *retry_after,
                source: None,
            }),
            Err(GatewayError::Refused {
                status,
                code,
                message,
            }) => Err(GatewayError::Refused {
                status: *status,
                code: code.clone(),
                message: message.clone(),
            }),
        }
    }
}

impl ScriptedGateway {
    /// Records `call` and answers it from `script`.
    fn called<T: Clone>(
        &self,
        call: String,
        script: &Mutex<Vec<Result<T, GatewayError>>>,
    ) -> Result<T, GatewayError> {
        self.calls.lock().unwrap().push(call);
        Self::next(script)
    }
}

impl PaymentGateway for ScriptedGateway {
    async fn create_payment(&self, r: &PaymentRequest<'_>) -> Result<PaymentOutcome, GatewayError> {
        self.called(format!("create {}", r.idempotency_key), &self.payments)
    }

    async fn capture(
        &self,
        _: &Charge,
        a: Money,
        key: &str,
    ) -> Result<PaymentOutcome, GatewayError> {
        self.called(format!("capture {} {key}", a.minor()), &self.payments)
    }

    async fn cancel(&self, _: &Charge, key: &str) -> Result<PaymentOutcome, GatewayError> {
        self.called(format!("cancel {key}"), &self.payments)
    }

    async fn retrieve(&self, charge: &Charge) -> Result<PaymentOutcome, GatewayError> {
        self.called(format!("retrieve {}", charge.id), &self.payments)
    }
}

impl RefundGateway for ScriptedGateway {
    async fn refund(&self, _: &Charge, refund: &Refund) -> Result<RefundOutcome, GatewayError> {
        self.called(format!("refund {}", refund.id), &self.refunds)
    }

    async fn retrieve_refund(&self, _: &Charge, r: &Refund) -> Result<RefundOutcome, GatewayError> {
        self.called(format!("retrieve_refund {}", r.id), &self.refunds)
    }
}

/// Billing's endpoint, answering from a script (the last answer repeats).
pub struct ScriptedBilling {
    pub answers: Mutex<Vec<NotifyOutcome>>,
    pub received: Mutex<Vec<NotificationId>>,
}

impl ScriptedBilling {
    pub fn answering(answers: Vec<NotifyOutcome>) -> Self {
        ScriptedBilling {
            answers: Mutex::new(answers),
            received: Mutex::new(Vec::new()),
        }
    }
}

impl Notifier for ScriptedBilling {
    async fn send(&self, notification: &Notification, _timestamp: i64) -> NotifyOutcome {
        (self.received.lock().unwrap()).push(notification.id.clone());
        let mut a = self.answers.lock().unwrap();
        if a.len() > 1 {
            a.remove(0)
        } else {
            a[0].clone()
        }
    }
}
