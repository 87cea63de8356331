//! Signing in: one home per method, each knowing its protocol's rules and the account
//! an identity signs in to, and the flow every method ends in. Nothing here knows HTTP
//! or SQL.
//!
//! - [`flow`]: from "a first factor was proven for this account" to a session; the
//!   only starter of a person's session.
//! - [`password`]: email and password, the lockout, device tokens.
//! - [`selfkey`]: Login with SelfKey (wallet challenges, login tokens, attributes).
//! - [`ownid`]: OwnID's data and the sign-in its cloud asks for.
//! - [`passkeys`]: WebAuthn ceremonies.
//! - [`siwe`]: Sign-In with Ethereum.
//! - [`second_factor`]: TOTP, recovery codes, and a pending sign-in's second step.
//! - [`social`]: upstream OpenID Connect and OAuth 2 providers.

pub mod flow;
pub mod ownid;
pub mod passkeys;
pub mod password;
pub mod second_factor;
pub mod selfkey;
pub mod siwe;
pub mod social;
