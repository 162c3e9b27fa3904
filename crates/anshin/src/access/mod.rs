//! Who may do what: principals, their API keys, and the access policy.
//!
//! [`policy`] is the one place a reviewer reads to know what each role may do.
//! [`principals`] creates principals, authenticates API keys and disables them;
//! [`credentials`] covers the keys' lifecycle (expiry, rotation, tenant key
//! policy, allow-lists, with [`cidr`] for the blocks) and [`lockout`] the
//! lockout of sources that keep failing to authenticate; [`proxies`] says
//! whose `X-Forwarded-For` names the client.
//! [`retention`] is the retention window on shipping data, exports and purges.

pub mod cidr;
pub mod credentials;
pub mod lockout;
pub mod policy;
pub mod principals;
pub mod proxies;
pub mod retention;

pub use policy::{Action, Actor, Role};
