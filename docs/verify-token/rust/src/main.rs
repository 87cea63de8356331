//! Verifying a Gatehouse account token in a Rust backend with `jsonwebtoken`.
//! GATEHOUSE_JWT_SECRET: the server's secret, exactly as configured (the file's exact
//! bytes). GATEHOUSE_ISSUER: the server's `issuer` setting.
//! Run: `cargo run --release -- TOKEN` (docs/verify-token/rust: a project of its own).

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Claims {
    /// The account id.
    sub: String,
    email: Option<String>,
    exp: u64,
}

fn verify_gatehouse_token(
    token: &str,
    secret: &[u8],
    issuer: &str,
) -> jsonwebtoken::errors::Result<Claims> {
    // Checks the signature, `exp` (60 s of leeway by default) and `iss`; HS512 only.
    let mut validation = Validation::new(Algorithm::HS512);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let data = decode::<Claims>(token, &DecodingKey::from_secret(secret)?, &validation)?;
    Ok(data.claims)
}

fn main() -> std::process::ExitCode {
    let token = std::env::args().nth(1).unwrap_or_default();
    let secret = std::env::var("GATEHOUSE_JWT_SECRET").unwrap_or_default();
    let issuer = std::env::var("GATEHOUSE_ISSUER").unwrap_or_default();
    match verify_gatehouse_token(&token, secret.as_bytes(), &issuer) {
        Ok(claims) => {
            println!("{}", claims.sub);
            eprintln!("email {:?}, expires at {}", claims.email, claims.exp);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rejected: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
