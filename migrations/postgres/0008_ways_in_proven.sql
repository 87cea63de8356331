-- When the account's address was last proven: a verification link, a reset link or an
-- email change's confirmation followed (Unix seconds; NULL: never — a registration
-- with an address nobody verified proves nothing). A reset or a revert removes every
-- way in added since: wallets (created_at), passkeys (created_at), OwnID data.
ALTER TABLE accounts ADD COLUMN email_proven_at BIGINT;
-- When the account's OwnID data was set.
ALTER TABLE accounts ADD COLUMN ownid_added_at BIGINT;
-- A revert link's: when the old address it puts back had last been proven (NULL:
-- never); the address comes back with the verification it had.
ALTER TABLE mail_tokens ADD COLUMN proven_at BIGINT;

-- What an upgrade finds stays: a verified address counts as proven now, OwnID data as
-- set when its account was created, and a revert link issued before puts its address
-- back verified, as it did.
UPDATE accounts SET email_proven_at = EXTRACT(EPOCH FROM now())::BIGINT
WHERE email_verified;
UPDATE accounts SET ownid_added_at = created_at WHERE ownid_data IS NOT NULL;
UPDATE mail_tokens SET proven_at = EXTRACT(EPOCH FROM now())::BIGINT
WHERE purpose = 'email-revert';
