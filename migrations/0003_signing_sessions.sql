-- Issue 4: signing sessions (embedded iframe), oneID/OIDC login states, the webhook queue, and the
-- browser-session store of tower-sessions. Portable SQL (SQLite and PostgreSQL); times are Unix
-- seconds (BIGINT) where they are compared, RFC 3339 text where they are only reported.

CREATE TABLE signing_sessions (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    document_version BIGINT NOT NULL,
    -- SHA-256 (hex) of the exact Bundle bytes of that version: what the page shows and the signer confirms
    payload_sha256 TEXT NOT NULL,
    expected_pinfl TEXT NOT NULL,
    role TEXT NOT NULL,
    embed_origin TEXT NOT NULL,
    locale TEXT NOT NULL,
    -- created, opened, authenticated, signed, cancelled, expired, failed
    status TEXT NOT NULL,
    -- SHA-256 of the one-time launch token (the token itself is never stored)
    launch_hash TEXT NOT NULL UNIQUE,
    launch_expires_at BIGINT NOT NULL,
    launched BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL,
    -- SHA-256 of the browser handle in the page URL (/s/{handle}); set at launch
    handle_hash TEXT UNIQUE,
    csrf_token TEXT,
    -- hash of the tower-sessions id that launched it, once a cookie came back (then required)
    browser_binding TEXT,
    signer_pinfl TEXT,
    signer_name TEXT,
    auth_method TEXT,
    identity_provider TEXT,
    idp_session_hash TEXT,
    signed_version BIGINT,
    error_code TEXT,
    idempotency_key TEXT,
    created_at TEXT NOT NULL,
    opened_at TEXT,
    authenticated_at TEXT,
    finished_at TEXT
);
CREATE UNIQUE INDEX signing_sessions_idempotency ON signing_sessions(client_id, idempotency_key);
CREATE INDEX signing_sessions_open ON signing_sessions(status, expires_at);
CREATE INDEX signing_sessions_document ON signing_sessions(document_id);

-- One row per login attempt: the OAuth `state` (hashed), bound to a signing session and to the
-- browser (popup) that started it; single use, ten minutes.
CREATE TABLE login_states (
    state_hash TEXT PRIMARY KEY,
    signing_session_id TEXT NOT NULL REFERENCES signing_sessions(id) ON DELETE CASCADE,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX login_states_session ON login_states(signing_session_id);

-- Durable webhook queue: at-least-once delivery with exponential back-off; `locked_until` lets
-- several nodes share the queue.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);

-- tower-sessions records (browser sessions): JSON data, expiry in Unix seconds.
CREATE TABLE tower_sessions (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX tower_sessions_expiry ON tower_sessions(expires_at);
