//! The pure core: money, ids, state machines, events, PCI masking, work messages.
//!
//! Nothing here performs I/O or knows about AWS or HTTP; everything is synchronous and unit-tested
//! beside the code.

pub mod action;
pub mod advice;
pub mod charge;
pub mod dispute;
pub mod entropy;
pub mod event;
pub mod gateway;
pub mod idempotency;
pub mod ids;
pub mod money;
pub mod notification;
pub mod pci;
pub mod refund;
pub mod transition;
pub mod work;

pub use action::{ActionDetails, CustomerAction};
pub use advice::Advice;
pub use charge::{Charge, ChargeStatus, PaymentOutcome};
pub use dispute::{Dispute, DisputeChange, DisputeObservation, DisputeStatus};
pub use event::{
    DisputeUpdate, EventStatus, GatewayUpdate, Interpretation, PaymentUpdate, RefundUpdate,
    RefundedTotal, Reported, VerifiedEvent,
};
pub use gateway::Gateway;
pub use ids::{ChargeId, DisputeId, IdError, NotificationId, RefundId};
pub use money::{Currency, Money, MoneyError};
pub use notification::{
    DeliveryStatus, EndpointAttempt, EndpointHealth, Notification, Publication, PublicationStatus,
    Series, Targets,
};
pub use refund::{Refund, RefundOutcome, RefundReason, RefundStatus};
pub use transition::{Failure, Transition};
pub use work::WorkMessage;
