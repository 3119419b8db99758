//! The charges function: `POST /charges`, `GET /charges/{id}`, `GET /charges?invoice_id=…`,
//! `POST /charges/{id}/capture`, `POST /charges/{id}/cancel`.
//!
//! [`handler`] routes and translates; the rules are the `services::charges` use cases in the
//! shared crate. `main.rs` builds the dependencies once per execution environment.

pub mod handler;
