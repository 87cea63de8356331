//! One integration-test binary: the real server over HTTP, on every backend.

mod helpers;

mod auth;
mod process;
mod token_attacks;
