-- 0002_auth_audit: API keys and the tamper-evident audit trail.
--
-- api_keys holds what is needed to check a presented key, never the key: its public id, the
-- HMAC-SHA256 of its secret under the hashing key kept outside the database, and its scopes as
-- a mask of enum scope_bit (src/auth/scope.h). A revoked key keeps its row (revoked_at_ms set)
-- so that its id is never reused and listings show what happened.
--
-- audit_records and audit_checkpoints hold one column per field of struct audit_record and
-- struct audit_checkpoint (src/audit/audit.h), under the names of docs/security/audit.md, so
-- that a trail can be checked by hand with sqlite3. Both are append-only: the triggers below
-- refuse every UPDATE and DELETE. They do not stop someone who can write the file (a trigger
-- can be dropped); the hash chain and the signed checkpoints show that afterwards.

CREATE TABLE api_keys (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    scopes        INTEGER NOT NULL,
    hash          BLOB    NOT NULL CHECK (length(hash) = 32),
    created_at_ms INTEGER NOT NULL,
    created_by    TEXT    NOT NULL,
    revoked_at_ms INTEGER
);

-- seq is the record's place in the chain: 1, 2, 3 ... without gaps. Text fields that may be
-- empty are '' (never NULL): the canonical encoding has every member.
CREATE TABLE audit_records (
    seq          INTEGER PRIMARY KEY,
    time_unix_ms INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    resource     TEXT    NOT NULL,
    decision     TEXT    NOT NULL,
    reason       TEXT    NOT NULL DEFAULT '',
    request_id   TEXT    NOT NULL DEFAULT '',
    trace_id     TEXT    NOT NULL DEFAULT '',
    source       TEXT    NOT NULL DEFAULT '',
    prev_hash    BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash         BLOB    NOT NULL CHECK (length(hash) = 32)
);

-- One checkpoint per record it covers (seq): the Ed25519 signature of that record's hash.
CREATE TABLE audit_checkpoints (
    seq          INTEGER PRIMARY KEY,
    hash         BLOB    NOT NULL CHECK (length(hash) = 32),
    time_unix_ms INTEGER NOT NULL,
    key_id       TEXT    NOT NULL,
    signature    BLOB    NOT NULL CHECK (length(signature) = 64)
);

CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit records are immutable');
END;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit records are immutable');
END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit records are immutable');
END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit records are immutable');
END;
