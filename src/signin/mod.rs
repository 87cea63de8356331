//! Sign-in methods that have a home of their own: each knows its protocol's rules and
//! the account an identity signs in to, nothing of HTTP or SQL.

pub mod ownid;
pub mod passkeys;
pub mod selfkey;
pub mod siwe;
