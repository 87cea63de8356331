//! The second factor: TOTP authenticators (RFC 6238), recovery codes, and the second
//! step of a pending sign-in. Knows nothing of HTTP or SQL.
//!
//! TOTP is SHA-1, 6 digits, 30-second steps (the only parameters the common
//! authenticator apps accept), with one step of drift either way. A step is accepted
//! once per account, ever: the store moves the account's `last_step` on in one
//! conditional write, so the code that confirmed the enrolment, a replayed code, or the
//! same code sent twice at once to two nodes, is refused. The secret is sealed
//! (AES-256-GCM, [`crate::crypto::seal`]) and shown once, at enrolment.
//!
//! A pending sign-in ([`super::flow::Finished::SecondFactor`]) takes five codes, right
//! or wrong, counted before each is checked; wrong codes also count against the
//! account (`MAX_ACCOUNT_FAILURES` in `FAILURE_WINDOW_SECS`), so many pending sign-ins
//! give no more guesses. Both counts live in the database.
//!
//! A TOTP code, the common second step, costs one read and one write before the
//! session's: the read brings the pending sign-in, the authenticator and the failure
//! count together, the rules decide which step (if any) the code proves, and one
//! transaction counts the attempt, accepts the step and consumes the pending sign-in
//! ([`crate::store::MfaStore::spend_attempt`]). Each of those stays a conditional
//! write in the database, so the read decides nothing another request could change.

use std::sync::Arc;

use totp_rs::{Algorithm, Builder, Totp};

use super::flow::{PENDING_MAX_ATTEMPTS, Refused, SignInFlow};
use crate::crypto::seal::Sealer;
use crate::crypto::{digest_hex, random_bytes};
use crate::domain::{Account, AccountId, Secret, unix_now};
use crate::sessions::{Device, SignIn};
use crate::store::mfa::{FactorSummary, PendingAttempt, Proof, Spent, StoredTotp};
use crate::store::{DynStore, WindowCount};

/// Digits of a code.
pub const DIGITS: usize = 6;
/// Seconds of a time step.
pub const STEP_SECS: u64 = 30;
/// Steps of drift accepted either side of now.
pub const SKEW_STEPS: u16 = 1;
/// Bytes of a new secret (160 bits, as RFC 4226 recommends).
const SECRET_BYTES: usize = 20;
/// Recovery codes in a set.
pub const RECOVERY_CODES: usize = 10;
/// Wrong second-factor codes an account takes in [`FAILURE_WINDOW_SECS`], over every
/// pending sign-in and route.
pub const MAX_ACCOUNT_FAILURES: i64 = 20;
pub const FAILURE_WINDOW_SECS: i64 = 15 * 60;

/// The RFC 6238 generator of `secret`, labelled for an authenticator app.
pub fn totp(secret: &[u8], issuer: &str, account_name: &str) -> Totp {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECS)
        .with_secret(secret.to_vec())
        .with_issuer(Some(issuer))
        .with_account_name(account_name)
        .build_noncompliant()
}

/// The time step `code` is valid for at `now` (within the drift), if any.
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) || now < 0 {
        return None;
    }
    let step = totp(secret, "", "").check(code, now as u64)?;
    i64::try_from(step).ok()
}

/// A label fit for `otpauth://`: no `:` (the separator of issuer and account).
fn label(text: &str) -> String {
    let cleaned: String = text.chars().filter(|c| *c != ':').collect();
    if cleaned.trim().is_empty() {
        "Gatehouse".to_owned()
    } else {
        cleaned
    }
}

/// What a new enrolment shows, once.
pub struct Enrollment {
    /// Base32, for typing into an app.
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as a QR code.
    pub qr_svg: String,
}

/// A normalised recovery code: lower case, no separators or spaces.
fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The digest a recovery code is stored as, if `code` has a recovery code's shape.
fn recovery_code_digest(code: &str) -> Option<String> {
    let normalised = normalise_code(code);
    (normalised.len() == 12).then(|| digest_hex(&normalised))
}

/// A new set of recovery codes (12 hex digits, 48 bits, shown `xxxx-xxxx-xxxx`) and
/// their digests.
fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw = hex::encode(random_bytes::<6>());
            let shown = format!("{}-{}-{}", &raw[..4], &raw[4..8], &raw[8..]);
            let hash = digest_hex(&raw);
            (shown, hash)
        })
        .unzip()
}

/// Why the second factor was refused.
#[derive(Debug, thiserror::Error)]
pub enum FactorError {
    /// The `mfa_token` is unknown, expired, used, or took its five codes.
    #[error("the sign-in is not pending")]
    NotPending,
    /// The pending sign-in may only enroll a factor (`accounts.require_mfa`).
    #[error("the sign-in must enroll a second factor first")]
    EnrollFirst,
    /// The code is wrong, or its time step was used already.
    #[error("the code is wrong")]
    WrongCode,
    /// The passkey's assertion did not verify, or the passkey is another account's.
    #[error("the passkey was refused")]
    WrongPasskey,
    /// The account took too many wrong codes lately.
    #[error("too many wrong codes")]
    TooManyFailures { retry_after_secs: i64 },
    /// No authenticator (or no enrolment) to act on.
    #[error("no authenticator")]
    NotEnrolled,
    /// The account has a confirmed authenticator: remove it first.
    #[error("an authenticator is enrolled already")]
    AlreadyEnrolled,
    #[error("the account is disabled")]
    Disabled,
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<crate::store::StoreError> for FactorError {
    fn from(e: crate::store::StoreError) -> Self {
        FactorError::Internal(e.into())
    }
}

impl From<Refused> for FactorError {
    fn from(e: Refused) -> Self {
        match e {
            Refused::Disabled => FactorError::Disabled,
            other => FactorError::Internal(other.into()),
        }
    }
}

/// A second step that signed in.
#[derive(Debug)]
pub struct Verified {
    pub sign_in: SignIn,
    pub account: AccountId,
    /// `Some(left)` when a recovery code was used: its owner is to be told.
    pub recovery_code_used: Option<i64>,
}

pub struct SecondFactor {
    store: DynStore,
    sealer: Sealer,
    /// The sealers of `jwt.previous_secrets`: secrets sealed before a rotation open.
    previous: Vec<Sealer>,
    flow: Arc<SignInFlow>,
    issuer: String,
}

/// The HKDF salt of the TOTP secrets' sealing key.
const SEALING: &[u8] = b"gatehouse totp secrets";

impl SecondFactor {
    /// `secret` is the JWT secret (the sealing key is derived from it for this use
    /// alone), `previous` the `jwt.previous_secrets`; `issuer` names the service in
    /// authenticator apps.
    pub fn new<'a>(
        store: DynStore,
        secret: &[u8],
        previous: impl IntoIterator<Item = &'a [u8]>,
        flow: Arc<SignInFlow>,
        issuer: &str,
    ) -> Self {
        SecondFactor {
            store,
            sealer: Sealer::new(secret, SEALING),
            previous: previous
                .into_iter()
                .map(|s| Sealer::new(s, SEALING))
                .collect(),
            flow,
            issuer: label(issuer),
        }
    }

    /// The associated data of an account's sealed secret: it opens for that row only.
    fn aad(account: &AccountId) -> Vec<u8> {
        format!("totp.{}", account.0).into_bytes()
    }

    /// The second step of a pending sign-in, with a TOTP code or a recovery code: one
    /// read, then one transaction that counts the attempt, accepts what the code proves
    /// (if anything), consumes the pending sign-in and starts the session. The
    /// refusals are those of the other second steps, in the same order: not pending,
    /// enrolment only, too many failures (each after the attempt is counted), wrong
    /// code.
    pub async fn verify(
        &self,
        mfa_token: &str,
        code: &str,
        device: &Device,
    ) -> Result<Verified, FactorError> {
        let code = code.trim();
        let second = if is_totp_code(code) {
            Second::Totp
        } else {
            Second::RecoveryCode
        };
        let now = unix_now();
        let id_hash = digest_hex(mfa_token);
        let read = self
            .store
            .mfa()
            .second_step(
                &id_hash,
                now,
                PENDING_MAX_ATTEMPTS,
                FAILURE_KEY_PREFIX,
                FAILURE_WINDOW_SECS,
            )
            .await?
            .ok_or(FactorError::NotPending)?;
        let account = &read.pending.account;
        let refusal = if read.pending.enroll_only {
            Some(FactorError::EnrollFirst)
        } else {
            locked_out(read.failures, now)
        };
        let proof = match (&refusal, second) {
            (Some(_), _) => Proof::Nothing,
            (None, Second::Totp) => self
                .proven_step(account, read.totp.as_ref(), code, now)?
                .map_or(Proof::Nothing, Proof::Step),
            (None, Second::RecoveryCode) => {
                recovery_code_digest(code).map_or(Proof::Nothing, Proof::RecoveryCode)
            }
        };
        // The session to start with the proof: only when there is one to accept, and
        // only for an account that is not disabled.
        let start = match proof {
            Proof::Nothing => None,
            _ => Some(
                self.flow
                    .second_session(&read.pending, second.amr(), device)
                    .await?,
            ),
        };
        let spent = self
            .store
            .mfa()
            .spend_attempt(
                &id_hash,
                now,
                PENDING_MAX_ATTEMPTS,
                proof,
                start.as_ref().map(|(_, session)| session),
            )
            .await?;
        let (attempt, ended, codes_left) = match spent {
            Spent::NotPending => return Err(FactorError::NotPending),
            Spent::Counted(_) => {
                if let Some(refusal) = refusal {
                    return Err(refusal);
                }
                self.failed(account, now).await?;
                return Err(FactorError::WrongCode);
            }
            Spent::Accepted {
                attempt,
                ended,
                codes_left,
            } => (attempt, ended, codes_left),
        };
        let Some((account, session)) = start else {
            // Accepted without a proof: the store accepts nothing without one.
            return Err(FactorError::Internal(anyhow::anyhow!(
                "a second step was accepted without a proof"
            )));
        };
        let sign_in = self.flow.started(&account, &session, ended)?;
        tracing::info!(account = %account.id.0, factor = second.amr(), "second factor given");
        Ok(Verified {
            sign_in,
            account: attempt.account,
            recovery_code_used: codes_left,
        })
    }

    /// The time step `code` proves for the account's confirmed authenticator, if any.
    fn proven_step(
        &self,
        account: &AccountId,
        totp: Option<&StoredTotp>,
        code: &str,
        now: i64,
    ) -> Result<Option<i64>, FactorError> {
        let Some(stored) = totp.filter(|t| t.confirmed) else {
            return Ok(None);
        };
        let secret = self.open(account, &stored.secret)?;
        Ok(matching_step(secret.expose(), code, now))
    }

    /// The second step with a passkey: `passkey_account` is the account whose passkey's
    /// assertion (user verification included) verified, `None` if none did. It counts
    /// as one of the pending sign-in's attempts, and as a wrong code unless it is the
    /// pending sign-in's own account.
    pub async fn verify_passkey(
        &self,
        mfa_token: &str,
        passkey_account: Option<&AccountId>,
        device: &Device,
    ) -> Result<Verified, FactorError> {
        let now = unix_now();
        let id_hash = digest_hex(mfa_token);
        let attempt = self
            .store
            .mfa()
            .attempt_pending(&id_hash, now, PENDING_MAX_ATTEMPTS)
            .await?
            .ok_or(FactorError::NotPending)?;
        if attempt.enroll_only {
            return Err(FactorError::EnrollFirst);
        }
        let account = &attempt.account;
        self.admit(account, now).await?;
        if passkey_account != Some(account) {
            self.failed(account, now).await?;
            return Err(FactorError::WrongPasskey);
        }
        if !self.store.mfa().take_pending(&id_hash).await? {
            return Err(FactorError::NotPending);
        }
        let sign_in = self.flow.complete(&attempt, "hwk", device).await?;
        tracing::info!(account = %account.0, factor = "hwk", "second factor given");
        Ok(Verified {
            sign_in,
            account: account.clone(),
            recovery_code_used: None,
        })
    }

    /// What the pending sign-in of `mfa_token` may do next ([`SignInFlow::methods`]),
    /// `None` when it is not pending (unknown, expired, used, out of attempts). Counts
    /// no attempt and grants nothing: the pages use it to choose what to show.
    pub async fn pending_methods(
        &self,
        mfa_token: &str,
    ) -> Result<Option<Vec<&'static str>>, FactorError> {
        let Some(pending) = self
            .store
            .mfa()
            .peek_pending(&digest_hex(mfa_token), unix_now(), PENDING_MAX_ATTEMPTS)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(
            self.flow
                .methods(&pending.account, pending.enroll_only)
                .await?,
        ))
    }

    /// The pending sign-in of `mfa_token` if it may only enroll (`accounts.require_mfa`,
    /// the account has no factor yet); each use counts as one of its attempts.
    pub async fn enrolling(&self, mfa_token: &str) -> Result<PendingAttempt, FactorError> {
        let attempt = self
            .store
            .mfa()
            .attempt_pending(&digest_hex(mfa_token), unix_now(), PENDING_MAX_ATTEMPTS)
            .await?
            .ok_or(FactorError::NotPending)?;
        if !attempt.enroll_only {
            // A sign-in that owes a factor the account has cannot enroll another.
            return Err(FactorError::NotPending);
        }
        Ok(attempt)
    }

    /// The session of a pending sign-in that just confirmed its enrolment: the code that
    /// confirmed it was its second factor. Used once.
    pub async fn complete_enrollment(
        &self,
        attempt: &PendingAttempt,
        mfa_token: &str,
        device: &Device,
    ) -> Result<SignIn, FactorError> {
        if !self
            .store
            .mfa()
            .take_pending(&digest_hex(mfa_token))
            .await?
        {
            return Err(FactorError::NotPending);
        }
        Ok(self
            .flow
            .complete(attempt, Second::Totp.amr(), device)
            .await?)
    }

    /// Refuses an account that took too many wrong codes lately.
    async fn admit(&self, account: &AccountId, now: i64) -> Result<(), FactorError> {
        let count = self
            .store
            .count(&failure_key(account), now, FAILURE_WINDOW_SECS)
            .await?;
        locked_out(count, now).map_or(Ok(()), Err)
    }

    async fn failed(&self, account: &AccountId, now: i64) -> Result<(), FactorError> {
        self.store
            .hit(&failure_key(account), now, FAILURE_WINDOW_SECS)
            .await?;
        tracing::info!(account = %account.0, "second factor: wrong code");
        Ok(())
    }

    /// The secret sealed for `account`, under the JWT secret or a previous one.
    fn open(&self, account: &AccountId, sealed: &str) -> Result<Secret<Vec<u8>>, FactorError> {
        let aad = Self::aad(account);
        let opened = std::iter::once(&self.sealer)
            .chain(&self.previous)
            .find_map(|sealer| sealer.open(&aad, sealed));
        opened.ok_or_else(|| {
            FactorError::Internal(anyhow::anyhow!(
                "a TOTP secret does not open: sealed under another JWT secret, or altered"
            ))
        })
    }

    /// Starts (or restarts) an enrolment: a new secret, shown once. Refused while a
    /// confirmed authenticator is enrolled.
    pub async fn enroll(&self, account: &Account) -> Result<Enrollment, FactorError> {
        let secret = random_bytes::<SECRET_BYTES>();
        let sealed = self.sealer.seal(&Self::aad(&account.id), &secret);
        if !self
            .store
            .mfa()
            .begin_totp(&account.id, &sealed, unix_now())
            .await?
        {
            return Err(FactorError::AlreadyEnrolled);
        }
        let name = label(account.email.as_deref().unwrap_or(&account.id.0));
        let generator = totp(&secret, &self.issuer, &name);
        let otpauth_uri = generator
            .to_url()
            .map_err(|e| FactorError::Internal(anyhow::anyhow!("otpauth URI: {e}")))?;
        let qr_svg = qrcode::QrCode::new(otpauth_uri.as_bytes())
            .map_err(|e| FactorError::Internal(anyhow::anyhow!("QR code: {e}")))?
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build();
        tracing::info!(account = %account.id.0, "TOTP enrolment started");
        Ok(Enrollment {
            secret: generator.secret().to_base32(),
            otpauth_uri,
            qr_svg,
        })
    }

    /// Confirms the enrolment with a valid code: from then on the account has the
    /// factor. Its step is used (it will not sign in), and the recovery codes are
    /// returned, once.
    pub async fn confirm(
        &self,
        account: &AccountId,
        code: &str,
    ) -> Result<Vec<String>, FactorError> {
        let now = unix_now();
        self.admit(account, now).await?;
        let stored = self
            .store
            .mfa()
            .totp(account)
            .await?
            .ok_or(FactorError::NotEnrolled)?;
        if stored.confirmed {
            return Err(FactorError::AlreadyEnrolled);
        }
        let secret = self.open(account, &stored.secret)?;
        let (codes, hashes) = new_recovery_codes();
        let accepted = match matching_step(secret.expose(), code.trim(), now) {
            Some(step) => {
                self.store
                    .mfa()
                    .accept_step(account, step, Some(&hashes), now)
                    .await?
            }
            None => false,
        };
        if !accepted {
            self.failed(account, now).await?;
            return Err(FactorError::WrongCode);
        }
        tracing::info!(account = %account.0, "TOTP enrolment confirmed");
        Ok(codes)
    }

    /// A new set of recovery codes, voiding the old one.
    pub async fn regenerate_codes(&self, account: &AccountId) -> Result<Vec<String>, FactorError> {
        let (codes, hashes) = new_recovery_codes();
        if !self
            .store
            .mfa()
            .replace_recovery_codes(account, &hashes, unix_now())
            .await?
        {
            return Err(FactorError::NotEnrolled);
        }
        tracing::info!(account = %account.0, "recovery codes replaced");
        Ok(codes)
    }

    /// Removes the authenticator and the recovery codes.
    pub async fn remove(&self, account: &AccountId) -> Result<(), FactorError> {
        if !self.store.mfa().remove_factors(account).await? {
            return Err(FactorError::NotEnrolled);
        }
        tracing::info!(account = %account.0, "second factor removed");
        Ok(())
    }

    pub async fn summary(&self, account: &AccountId) -> Result<FactorSummary, FactorError> {
        Ok(self.store.mfa().factor_summary(account).await?)
    }
}

/// The second factor a code proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Second {
    Totp,
    RecoveryCode,
}

impl Second {
    /// Its RFC 8176 value: both are one-time passwords.
    fn amr(self) -> &'static str {
        "otp"
    }
}

/// Whether `code` has the shape of a TOTP code (else it may be a recovery code).
fn is_totp_code(code: &str) -> bool {
    code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// The refusal of an account whose wrong codes (`failures`, the current window's)
/// reached the limit.
fn locked_out(failures: Option<WindowCount>, now: i64) -> Option<FactorError> {
    failures
        .filter(|c| c.count >= MAX_ACCOUNT_FAILURES)
        .map(|c| FactorError::TooManyFailures {
            retry_after_secs: (c.window_start + FAILURE_WINDOW_SECS - now).max(1),
        })
}

/// The prefix of the counter of an account's wrong codes: the key is the prefix and
/// the account's id.
const FAILURE_KEY_PREFIX: &str = "mfa-failures:";

/// The counter of an account's wrong codes.
fn failure_key(account: &AccountId) -> String {
    format!("{FAILURE_KEY_PREFIX}{}", account.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, the SHA-1 rows (8 digits there; the last 6 are ours, as
    /// truncation takes the low digits).
    #[test]
    fn rfc_6238_appendix_b_vectors() {
        let secret = b"12345678901234567890";
        let rows: [(u64, &str); 6] = [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ];
        let eight = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(8)
            .with_step_duration(30)
            .with_secret(secret.to_vec())
            .build_noncompliant();
        for (time, expected) in rows {
            assert_eq!(eight.generate(time).to_string(), expected, "T = {time}");
            let ours = totp(secret, "x", "y").generate(time).to_string();
            assert_eq!(ours, expected[2..], "T = {time}");
            assert_eq!(
                matching_step(secret, &expected[2..], time as i64),
                Some((time / 30) as i64)
            );
        }
    }

    #[test]
    fn one_step_of_drift_either_side_and_no_more() {
        let secret = b"12345678901234567890";
        let code = totp(secret, "x", "y").generate(1_111_111_111).to_string();
        let step = 1_111_111_111 / 30;
        assert_eq!(matching_step(secret, &code, 1_111_111_111 + 30), Some(step));
        assert_eq!(matching_step(secret, &code, 1_111_111_111 - 30), Some(step));
        assert_eq!(matching_step(secret, &code, 1_111_111_111 + 90), None);
        assert_eq!(matching_step(secret, "12345", 1_111_111_111), None);
        assert_eq!(matching_step(secret, "abcdef", 1_111_111_111), None);
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_stored_as_digests() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
        for (code, hash) in codes.iter().zip(&hashes) {
            assert_eq!(code.len(), 14, "{code}");
            assert_eq!(&digest_hex(&normalise_code(code)), hash);
            assert_eq!(
                normalise_code(&code.to_uppercase().replace('-', " ")).len(),
                12
            );
        }
    }

    #[test]
    fn labels_lose_the_separator() {
        assert_eq!(label("https://id.example.com"), "https//id.example.com");
        assert_eq!(label(":"), "Gatehouse");
    }
}
