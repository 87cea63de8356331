//! The OpenID Connect provider's rules: clients and their redirect URIs. Knows nothing
//! of HTTP or SQL.

pub mod assertion;
pub mod authorize;
pub mod clients;
pub mod provider;
pub mod redirect;

pub use clients::{AuthMethod, Client, Registration, RegistrationError};
pub use redirect::{RedirectUri, RedirectUriError};
