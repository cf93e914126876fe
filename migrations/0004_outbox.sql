-- Submission to the DHP through a durable outbox (src/submit). Portable SQL (SQLite and PostgreSQL).
-- Scheduling times are BIGINT Unix milliseconds (compared in SQL); display times are RFC 3339 text.

-- One row per signed document that has its required signatures. It is inserted in the same
-- transaction that stores the last required signature, so a signed document is never unqueued.
-- state: queued | sending (leased by one node until lease_until) | retrying (next_attempt_at) |
--        submitted (dhp_id, dhp_location, dhp_version) | rejected (outcome = the DHP's OperationOutcome)
CREATE TABLE submissions (
    document_id TEXT PRIMARY KEY REFERENCES documents(id),
    version BIGINT NOT NULL,
    bundle_identifier TEXT NOT NULL,
    client_id TEXT NOT NULL,
    form TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    queued_ms BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_token TEXT,
    lease_until BIGINT,
    patient_match TEXT,
    dhp_patient_id TEXT,
    dhp_id TEXT,
    dhp_location TEXT,
    dhp_version TEXT,
    outcome TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    submitted_at TEXT
);
CREATE INDEX submissions_due ON submissions(state, next_attempt_at);

-- Every attempt (one lease of one item by one node), kept for GET /documents/{id}/submission.
-- result: in-progress | submitted | existing | retry | rejected | abandoned (the node's lease ran out)
CREATE TABLE submission_attempts (
    document_id TEXT NOT NULL REFERENCES documents(id),
    attempt BIGINT NOT NULL,
    node TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    duration_ms BIGINT,
    result TEXT NOT NULL,
    http_status BIGINT,
    detail TEXT,
    outcome TEXT,
    retry_at TEXT,
    PRIMARY KEY (document_id, attempt)
);
