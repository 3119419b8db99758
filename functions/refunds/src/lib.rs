//! The refunds function: `POST /charges/{id}/refunds`, `GET /charges/{id}/refunds`,
//! `GET /refunds/{id}`.
//!
//! [`handler`] routes and translates; the rules are the `services::refunds` use cases in the
//! shared crate. `main.rs` builds the dependencies once per execution environment.

pub mod handler;
