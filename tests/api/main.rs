//! One integration-test binary: the real server over HTTP, on every backend.

mod helpers;

mod auth;
mod ownid;
mod process;
mod selfkey;
