//! The charges function: billing-facing charge routes.
