-- Two-step verification and login challenges (SPEC section 3, seed 002).

CREATE TABLE user_totp (
    user_id       INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret_sealed TEXT NOT NULL,                      -- Fernet ciphertext; never the base32 seed (checklist 14)
    confirmed_at  REAL,                               -- NULL while enrolment waits for its first code
    last_step     INTEGER NOT NULL DEFAULT -1,        -- highest accepted time step: the replay guard
    created_at    REAL NOT NULL
);

CREATE TABLE recovery_codes (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    salt        TEXT NOT NULL,
    code_hash   TEXT NOT NULL,                        -- salted SHA-256 (checklist 15)
    used_at     REAL
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);

-- Password accepted, second factor pending: a short-lived, single-use handle (stored hashed).
CREATE TABLE login_challenges (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    ip          TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    expires_at  REAL NOT NULL
);
