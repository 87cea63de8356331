//! Gatehouse: an authentication server. Email/password accounts with HS512 JWTs,
//! Login with SelfKey, and OwnID, on one user store (SQLite or PostgreSQL).
//!
//! Layout, outside in, every dependency pointing inward (`tests/api/architecture.rs`
//! refuses import circles and a web framework or database driver named in domain code):
//! - the surfaces: `cli`, and `http`, one module per API with its router and wire types,
//!   and `http::reply` for what they answer alike;
//! - `app`, which wires the parts from `config` (plain settings data, one file per part,
//!   composed into `config::Settings`);
//! - sign-in: `signin::flow`, the one path from a proven first factor to a session, that
//!   every door calls with a typed `Proof`; one home per method under `signin`
//!   (`password`, `selfkey`, `ownid`, `passkeys`, `siwe`);
//! - the rules: `accounts`, `sessions`, `lifecycle`, `lockout`, `signing_keys`, `mail`,
//!   `purge`;
//! - `crypto` and `domain` (values and primitives);
//! - `store`: one narrow trait per concern, one implementation per database.

pub mod accounts;
pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod files;
pub mod http;
pub mod lifecycle;
pub mod lockout;
pub mod mail;
pub mod metrics;
pub mod oidc;
pub mod outbound;
pub mod purge;
pub mod sessions;
pub mod signin;
pub mod signing_keys;
pub mod store;
pub mod ui;
