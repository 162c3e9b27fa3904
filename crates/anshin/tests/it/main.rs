//! anshin's integration tests: one binary, a module per area. Every store and
//! API test runs on SQLite and on PostgreSQL (see `harness::both_backends!`).

mod harness;

mod alerts;
mod api;
mod audit;
mod browser;
mod browser_checkout;
mod checkout;
mod cli;
mod credentials;
mod integrity;
mod integrity_server;
mod integrity_yara;
mod inventory;
mod keys;
mod logs;
mod page_monitor;
mod payment_webhooks;
mod pg_tls;
mod regression;
mod retention;
mod root_change;
mod root_of_trust;
mod scan;
mod scan_compressed;
mod scan_pgdump_formats;
mod scan_support;
mod store;
