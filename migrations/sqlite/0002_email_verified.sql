-- Whether the account's owner proved they receive mail at its email address. Until
-- then the address is only what someone typed in.
ALTER TABLE accounts ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0
    CHECK (email_verified IN (0, 1));

-- Accounts a SelfKey wallet created took the email the wallet's owner typed in as
-- their identity, unverified. It stays in the wallet's attributes; the account lets
-- it go, so the address's real owner can register it and nobody reaches this account
-- through it (OwnID looks accounts up by email). Such an account has no password (only
-- /auth/register sets one), and either no OwnID data (OwnID registration sets it) or
-- a wallet linked in the second it was created (OwnID data set on it later by email).
UPDATE accounts SET email = NULL, email_key = NULL
WHERE email_key IS NOT NULL AND password_hash IS NULL AND EXISTS (
    SELECT 1 FROM wallets w WHERE w.account_id = accounts.id
        AND (accounts.ownid_data IS NULL OR w.created_at = accounts.created_at));
