-- One row per signature: the version that carries it, and what was signed (for diagnosing a later mismatch).
CREATE TABLE signatures (
    document_id TEXT NOT NULL REFERENCES documents(id),
    version BIGINT NOT NULL,
    signed_content_version BIGINT NOT NULL,
    signer_pinfl TEXT NOT NULL,
    signer_name TEXT NOT NULL,
    signer_role TEXT NOT NULL,
    purpose TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    certificate_serial TEXT NOT NULL,
    certificate_sha256 TEXT NOT NULL,
    leaf_pem TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    provenance_full_url TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (document_id, version)
);
CREATE INDEX signatures_signer ON signatures(signer_pinfl);
