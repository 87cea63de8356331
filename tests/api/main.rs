//! One integration-test binary: the real server over HTTP, on every backend.

mod helpers;
mod smtp;

mod admin;
mod architecture;
mod auth;
mod backup;
mod bounds;
mod changes;
mod commands;
mod cors;
mod crash;
mod docs;
mod early_answers;
mod files;
mod json_bounds;
mod limits;
mod lockout;
mod mail;
mod observe;
mod oidc;
mod operations;
mod ownid;
mod passkeys;
mod process;
mod proxy;
mod reauth;
mod rotation;
mod selfkey;
mod session_cookies;
mod sessions;
mod signin_flow;
mod signing_keys;
mod siwe;
mod token_attacks;
mod wallet_emails;
