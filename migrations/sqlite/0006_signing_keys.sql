-- Signing keys of asymmetric account tokens (`jwt.algorithm` EdDSA or ES256), shared by
-- every node. The public key is published in the JWKS from `created_at`; the key signs
-- from `signs_from` (the newest such key of the algorithm in force signs); it leaves
-- the JWKS at `retires_at`, when every token it signed has expired. The private key is
-- encrypted (AES-256-GCM under a key derived from the JWT secret, the kid and algorithm
-- bound in): a copy of the database signs nothing. Times are Unix seconds (UTC).
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY NOT NULL,  -- the tokens' `kid` header
    algorithm    TEXT NOT NULL,              -- EdDSA or ES256
    public_jwk   TEXT NOT NULL,              -- the JWK the JWKS publishes
    private_key  TEXT NOT NULL,              -- encrypted: v1.<nonce>.<ciphertext>, base64url
    created_at   INTEGER NOT NULL,
    signs_from   INTEGER NOT NULL,
    retires_at   INTEGER                     -- NULL until a successor is published
) STRICT;
