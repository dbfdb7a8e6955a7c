-- The schema the migrations in this directory produce (sqlite), written by
-- `ledgerd migrate snapshot`. Do not edit: `ledgerd migrate verify` compares it with a fresh
-- apply of the migrations.

CREATE TABLE accounts (
    seq             INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    ledger          TEXT    NOT NULL,
    code            INTEGER NOT NULL CHECK (code BETWEEN 0 AND 65535),
    flags           INTEGER NOT NULL,
    metadata        TEXT,
    debits_pending  BLOB    NOT NULL CHECK (length(debits_pending) = 16),
    debits_posted   BLOB    NOT NULL CHECK (length(debits_posted) = 16),
    credits_pending BLOB    NOT NULL CHECK (length(credits_pending) = 16),
    credits_posted  BLOB    NOT NULL CHECK (length(credits_posted) = 16),
    created_at_ms   INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    scopes        INTEGER NOT NULL,
    hash          BLOB    NOT NULL CHECK (length(hash) = 32),
    created_at_ms INTEGER NOT NULL,
    created_by    TEXT    NOT NULL,
    revoked_at_ms INTEGER
);

CREATE TABLE audit_checkpoints (
    seq          INTEGER PRIMARY KEY,
    hash         BLOB    NOT NULL CHECK (length(hash) = 32),
    time_unix_ms INTEGER NOT NULL,
    key_id       TEXT    NOT NULL,
    signature    BLOB    NOT NULL CHECK (length(signature) = 64)
);

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

CREATE TABLE idempotency_keys (
    principal      TEXT    NOT NULL,
    key            TEXT    NOT NULL,
    request_digest BLOB    NOT NULL CHECK (length(request_digest) = 32),
    status         INTEGER NOT NULL,
    location       TEXT    NOT NULL DEFAULT '',
    body           BLOB    NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
) WITHOUT ROWID;

CREATE TABLE pending_transfers (
    transfer_id   TEXT    PRIMARY KEY,
    state         INTEGER NOT NULL CHECK (state BETWEEN 1 AND 4),
    expires_at_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE transfers (
    seq               INTEGER PRIMARY KEY,
    id                TEXT    NOT NULL UNIQUE,
    debit_account_id  TEXT    NOT NULL,
    credit_account_id TEXT    NOT NULL,
    amount            BLOB    NOT NULL CHECK (length(amount) = 16),
    ledger            TEXT    NOT NULL,
    code              INTEGER NOT NULL CHECK (code BETWEEN 0 AND 65535),
    flags             INTEGER NOT NULL,
    pending_id        TEXT,
    timeout_seconds   INTEGER NOT NULL DEFAULT 0,
    metadata          TEXT,
    created_at_ms     INTEGER NOT NULL
);

CREATE INDEX accounts_by_ledger ON accounts (ledger, seq);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at_ms);

CREATE INDEX pending_transfers_due ON pending_transfers (expires_at_ms)
    WHERE state = 1 AND expires_at_ms > 0;

CREATE INDEX transfers_by_credit_account ON transfers (credit_account_id, seq);

CREATE INDEX transfers_by_debit_account ON transfers (debit_account_id, seq);

CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit records are immutable');
END;

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit records are immutable');
END;

CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit records are immutable');
END;

CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit records are immutable');
END;

