//! Use cases, one per module, generic over the ports.

pub mod record_webhook;
