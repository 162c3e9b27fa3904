//! anshin: keeps shoppers' card numbers and personal data out of the hands of the
//! shops that sell to them, and proves every access to that data.
//!
//! This crate is the application; the cryptography lives in `anshin-crypto`.
//!
//! - [`app`]: the [`app::App`] that ties storage and keys together.
//! - [`vault`]: (1) cards and personal data, encrypted at rest, tokens, masks.
//! - [`access`]: principals, API keys, the access policy.
//! - [`audit`]: (4) the tamper-evident audit log of every access.
//! - [`tenancy`], [`orders`]: tenants, shops and orders.
//! - [`proxy`]: (5) checkout sessions and the payment proxy to card processors.
//! - [`db`]: one store over SQLite and PostgreSQL.
//! - [`http`]: the HTTP API; [`cmd`] and [`cli`]: the command line.

pub mod access;
pub mod app;
pub mod audit;
pub mod browser;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod db;
pub mod demo;
pub mod demo_shop;
pub mod error;
pub mod http;
pub mod ids;
pub mod integrity;
pub mod inventory;
pub mod net;
pub mod orders;
pub mod proxy;
pub mod tenancy;
pub mod text;
pub mod vault;
pub mod webhook;
