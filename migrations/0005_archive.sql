-- The archive (issue 6): search columns, document relations and lifecycle, role grants by PINFL,
-- interim archive sessions, and the append-only, hash-chained audit trail. Portable SQL.

-- Composition.date normalized to UTC `YYYY-MM-DDTHH:MM:SS.sssZ` (text that sorts as time; '' when the
-- Composition has no date) and the document's organization (its tax id, input `organization.taxId`).
-- Filled in the same transaction as every write of a version (src/archive/mod.rs `on_write`).
ALTER TABLE documents ADD COLUMN composition_at TEXT;
ALTER TABLE documents ADD COLUMN organization TEXT;
CREATE INDEX documents_composition_at ON documents(composition_at, id);
CREATE INDEX documents_client_composition_at ON documents(client_id, composition_at, id);
CREATE INDEX documents_form_composition_at ON documents(form, composition_at, id);
CREATE INDEX documents_patient_composition_at ON documents(patient_pinfl, composition_at, id);
CREATE INDEX documents_updated_at ON documents(updated_at, id);
CREATE INDEX documents_state ON documents(state);
CREATE INDEX documents_organization ON documents(organization);
CREATE INDEX signatures_document_signer ON signatures(document_id, signer_pinfl);

-- An amendment replaces one earlier document (Composition.relatesTo `replaces`).
CREATE TABLE document_relations (
    document_id TEXT PRIMARY KEY REFERENCES documents(id),
    replaces_id TEXT NOT NULL REFERENCES documents(id),
    created_at TEXT NOT NULL
);
CREATE INDEX document_relations_replaces ON document_relations(replaces_id);

-- State changes that are not new versions: superseded by an amendment, entered in error.
CREATE TABLE document_lifecycle (
    id TEXT PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents(id),
    event TEXT NOT NULL,
    previous_state TEXT NOT NULL,
    new_state TEXT NOT NULL,
    reason TEXT,
    related_id TEXT,
    agent TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX document_lifecycle_document ON document_lifecycle(document_id, at);

-- Roles of people, by PINFL (`hujjat users grant`): archivist, admin. `organizations` is a
-- space-separated list of organization tax ids the grant is limited to; empty = every document.
CREATE TABLE role_grants (
    pinfl TEXT NOT NULL,
    role TEXT NOT NULL,
    organizations TEXT NOT NULL DEFAULT '',
    display_name TEXT,
    granted_by TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (pinfl, role)
);

-- Interim browser sessions of the archive's development login (until the identity module of
-- issue 4 provides sessions). Only hashes of the cookie tokens are stored.
CREATE TABLE archive_sessions (
    token_hash TEXT PRIMARY KEY,
    pinfl TEXT NOT NULL,
    name TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- The audit trail: append-only; each record carries the hash of the one before it. `seq` is
-- assigned under the chain head's lock, so it has no gaps; `audit_chain_head` (one row) holds the
-- last seq and hash and is updated in the same transaction as the append.
CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    recorded TEXT NOT NULL,
    action TEXT NOT NULL,
    subtype TEXT NOT NULL,
    outcome TEXT NOT NULL,
    outcome_detail TEXT,
    agent_type TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    agent_name TEXT,
    agent_role TEXT,
    client_id TEXT,
    source_address TEXT,
    entity_id TEXT,
    entity_version BIGINT,
    query TEXT,
    detail TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_events_entity ON audit_events(entity_id, seq);
CREATE INDEX audit_events_agent ON audit_events(agent_id, seq);
CREATE INDEX audit_events_client ON audit_events(client_id, seq);
CREATE INDEX audit_events_recorded ON audit_events(recorded, seq);

CREATE TABLE audit_chain_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
