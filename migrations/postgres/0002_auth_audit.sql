-- 0002_auth_audit: API keys and the tamper-evident audit trail.
--
-- api_keys holds what is needed to check a presented key, never the key: its public id, the
-- HMAC-SHA256 of its secret under the hashing key kept outside the database, and its scopes as
-- a mask of enum scope_bit (src/auth/scope.h). A revoked key keeps its row (revoked_at_ms set)
-- so that its id is never reused and listings show what happened.
--
-- audit_records and audit_checkpoints hold one column per field of struct audit_record and
-- struct audit_checkpoint (src/audit/audit.h), under the names of docs/security/audit.md, so
-- that a trail can be checked by hand with psql. Both are append-only: the triggers below
-- refuse every UPDATE, DELETE and TRUNCATE. They do not stop a superuser (a trigger can be
-- dropped); the hash chain and the signed checkpoints show that afterwards.

CREATE TABLE api_keys (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT   NOT NULL,
    scopes        BIGINT NOT NULL CHECK (scopes BETWEEN 1 AND 4294967295),
    hash          BYTEA  NOT NULL CHECK (octet_length(hash) = 32),
    created_at_ms BIGINT NOT NULL,
    created_by    TEXT   NOT NULL,
    revoked_at_ms BIGINT
);

-- seq is the record's place in the chain: 1, 2, 3 ... without gaps (ledgerd appends under its
-- ledger lock). Text fields that may be empty are '' (never NULL): the canonical encoding has
-- every member.
CREATE TABLE audit_records (
    seq          BIGINT PRIMARY KEY CHECK (seq >= 1),
    time_unix_ms BIGINT NOT NULL,
    actor        TEXT   NOT NULL,
    action       TEXT   NOT NULL,
    resource     TEXT   NOT NULL,
    decision     TEXT   NOT NULL,
    reason       TEXT   NOT NULL DEFAULT '',
    request_id   TEXT   NOT NULL DEFAULT '',
    trace_id     TEXT   NOT NULL DEFAULT '',
    source       TEXT   NOT NULL DEFAULT '',
    prev_hash    BYTEA  NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash         BYTEA  NOT NULL CHECK (octet_length(hash) = 32)
);

-- One checkpoint per record it covers (seq): the Ed25519 signature of that record's hash.
CREATE TABLE audit_checkpoints (
    seq          BIGINT PRIMARY KEY CHECK (seq >= 1),
    hash         BYTEA  NOT NULL CHECK (octet_length(hash) = 32),
    time_unix_ms BIGINT NOT NULL,
    key_id       TEXT   NOT NULL,
    signature    BYTEA  NOT NULL CHECK (octet_length(signature) = 64)
);

CREATE FUNCTION audit_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are immutable';
END;
$$;

CREATE TRIGGER audit_records_no_update BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_immutable();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_immutable();
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_immutable();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_immutable();
