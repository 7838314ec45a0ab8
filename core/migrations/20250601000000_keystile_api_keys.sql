-- keystile API keys: only the SHA-256 digest of a key is stored.
-- Times are Unix seconds, read through keystile's injectable clock.
CREATE TABLE IF NOT EXISTS keystile_api_keys (
    id           TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    digest       BYTEA   NOT NULL CHECK (octet_length(digest) = 32),
    owner        TEXT    NOT NULL,
    scopes       TEXT[]  NOT NULL DEFAULT '{}',
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);

-- Every request looks a key up by digest: the unique index is the lookup.
CREATE UNIQUE INDEX IF NOT EXISTS keystile_api_keys_digest ON keystile_api_keys (digest);

-- Listing an owner's keys.
CREATE INDEX IF NOT EXISTS keystile_api_keys_owner ON keystile_api_keys (owner, created_at);
