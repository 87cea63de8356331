//! Sign-in methods that have a home of their own.

pub mod passkeys;
