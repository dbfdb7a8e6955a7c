-- 0001_ledger: accounts, transfers, pending transfer state and idempotency records.
--
-- Amounts and balances are unsigned 128-bit integers stored as 16-byte big-endian blobs
-- (SQLite integers are signed 64-bit). seq is the commit order that lists page by.
-- Transfers are immutable; the state of a pending transfer lives in pending_transfers.

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
CREATE INDEX accounts_by_ledger ON accounts (ledger, seq);

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
CREATE INDEX transfers_by_debit_account ON transfers (debit_account_id, seq);
CREATE INDEX transfers_by_credit_account ON transfers (credit_account_id, seq);

-- One row per transfer created with the pending flag. state: 1 pending, 2 posted, 3 voided,
-- 4 expired (enum ledger_pending_state). expires_at_ms is 0 when it never expires.
CREATE TABLE pending_transfers (
    transfer_id   TEXT    PRIMARY KEY,
    state         INTEGER NOT NULL CHECK (state BETWEEN 1 AND 4),
    expires_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX pending_transfers_due ON pending_transfers (expires_at_ms)
    WHERE state = 1 AND expires_at_ms > 0;

-- Idempotency records: written in the same transaction as the effect they describe.
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
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at_ms);
