-- A plain browser login (GET /login?next=…), not tied to a signing session: `login_states` rows
-- now say what they are for. `purpose` = 'signing' (the login popup of a signing session, which
-- it references) or 'browser' (no signing session; `next_path` is the same-origin path to return
-- to). The column cannot lose NOT NULL portably, so the table is rebuilt (rows kept).
-- The archive's interim development login is replaced by these sessions: `archive_sessions` goes.
-- Portable SQL (SQLite and PostgreSQL).

CREATE TABLE login_states_v2 (
    state_hash TEXT PRIMARY KEY,
    signing_session_id TEXT REFERENCES signing_sessions(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL DEFAULT 'signing',
    next_path TEXT,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0,
    CHECK ((purpose = 'signing' AND signing_session_id IS NOT NULL)
        OR (purpose = 'browser' AND signing_session_id IS NULL AND next_path IS NOT NULL))
);
INSERT INTO login_states_v2 (state_hash, signing_session_id, purpose, next_path, nonce, pkce_verifier, expires_at, used)
SELECT state_hash, signing_session_id, 'signing', NULL, nonce, pkce_verifier, expires_at, used FROM login_states;
DROP TABLE login_states;
ALTER TABLE login_states_v2 RENAME TO login_states;
CREATE INDEX login_states_session ON login_states(signing_session_id);
CREATE INDEX login_states_expiry ON login_states(expires_at);

DROP TABLE archive_sessions;
