//! Orderly's composition root and command line: the only crate that knows every layer.
//!
//! `main` parses the command line and calls [`cli::run`]; [`startup::Application`] wires the
//! adapters of `orderly-infrastructure` into the use cases of `orderly-application` and serves
//! them through `orderly-api`.

pub mod cli;
pub mod metrics;
pub mod relay;
pub mod seed;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod webhooks;
