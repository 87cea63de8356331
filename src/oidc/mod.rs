//! The OpenID Connect provider's rules: clients and their redirect URIs, the token
//! endpoint's grants, back-channel logout. Knows nothing of HTTP or SQL.

pub mod assertion;
pub mod authorize;
pub mod clients;
pub mod logout;
pub mod provider;
pub mod redirect;

pub use clients::{AuthMethod, Client, Registration, RegistrationError};
pub use redirect::{RedirectUri, RedirectUriError};
