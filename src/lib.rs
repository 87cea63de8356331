//! Gatehouse: an authentication server. Email/password accounts with HS512 JWTs,
//! Login with SelfKey, and OwnID, on one user store (SQLite or PostgreSQL).
//!
//! Layout, outside in: `cli` and `http` (the surfaces), `accounts` and `sessions` (the rules),
//! `crypto` and `domain` (values and primitives), `store` (persistence).

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
pub mod sessions;
pub mod signin;
pub mod signing_keys;
pub mod store;
