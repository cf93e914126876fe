-- Portable SQL: runs unchanged on SQLite and PostgreSQL (TEXT ids, BIGINT numbers, RFC 3339 text times).

CREATE TABLE clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_salt TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    embed_origins TEXT NOT NULL DEFAULT '[]',
    webhook_url TEXT,
    webhook_secret TEXT,
    scopes TEXT NOT NULL DEFAULT 'documents',
    created_at TEXT NOT NULL
);

CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX access_tokens_expiry ON access_tokens(expires_at);

CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    form TEXT NOT NULL,
    client_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    state TEXT NOT NULL,
    patient_pinfl TEXT,
    composition_date TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX documents_client ON documents(client_id);
CREATE INDEX documents_patient ON documents(patient_pinfl);
CREATE INDEX documents_form_date ON documents(form, composition_date);

CREATE TABLE document_versions (
    document_id TEXT NOT NULL REFERENCES documents(id),
    version BIGINT NOT NULL,
    bundle_identifier TEXT NOT NULL,
    input TEXT NOT NULL,
    bundle TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (document_id, version)
);
-- A signed version keeps the Bundle.identifier of the content it signs.
CREATE INDEX document_versions_identifier ON document_versions(bundle_identifier);
