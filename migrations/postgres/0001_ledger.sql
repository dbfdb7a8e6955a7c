-- 0001_ledger: accounts, transfers, pending transfer state and idempotency records.
--
-- The same tables, columns and names as the SQLite schema, in PostgreSQL's types. Amounts and
-- balances are unsigned 128-bit integers: NUMERIC(39,0) within [0, 2^128 - 1]. Ids are TEXT
-- with the "C" collation, so that ORDER BY id (the order rows are locked in) is byte order.
-- seq is the commit order that lists page by: it comes from a sequence, and ledgerd draws it
-- under its ledger lock (an advisory lock held to COMMIT), so that a row committed late never
-- gets a seq below one already visible. Transfers are immutable; the state of a pending
-- transfer lives in pending_transfers.

CREATE SEQUENCE accounts_seq AS BIGINT;
CREATE TABLE accounts (
    seq             BIGINT        PRIMARY KEY DEFAULT nextval('accounts_seq'),
    id              TEXT COLLATE "C" NOT NULL UNIQUE,
    ledger          TEXT COLLATE "C" NOT NULL,
    code            INTEGER       NOT NULL CHECK (code BETWEEN 0 AND 65535),
    flags           BIGINT        NOT NULL CHECK (flags BETWEEN 0 AND 4294967295),
    metadata        TEXT,
    debits_pending  NUMERIC(39,0) NOT NULL
        CHECK (debits_pending >= 0 AND debits_pending <= 340282366920938463463374607431768211455),
    debits_posted   NUMERIC(39,0) NOT NULL
        CHECK (debits_posted >= 0 AND debits_posted <= 340282366920938463463374607431768211455),
    credits_pending NUMERIC(39,0) NOT NULL
        CHECK (credits_pending >= 0 AND credits_pending <= 340282366920938463463374607431768211455),
    credits_posted  NUMERIC(39,0) NOT NULL
        CHECK (credits_posted >= 0 AND credits_posted <= 340282366920938463463374607431768211455),
    created_at_ms   BIGINT        NOT NULL
);
ALTER SEQUENCE accounts_seq OWNED BY accounts.seq;
CREATE INDEX accounts_by_ledger ON accounts (ledger, seq);

CREATE SEQUENCE transfers_seq AS BIGINT;
CREATE TABLE transfers (
    seq               BIGINT        PRIMARY KEY DEFAULT nextval('transfers_seq'),
    id                TEXT COLLATE "C" NOT NULL UNIQUE,
    debit_account_id  TEXT COLLATE "C" NOT NULL,
    credit_account_id TEXT COLLATE "C" NOT NULL,
    amount            NUMERIC(39,0) NOT NULL
        CHECK (amount >= 0 AND amount <= 340282366920938463463374607431768211455),
    ledger            TEXT COLLATE "C" NOT NULL,
    code              INTEGER       NOT NULL CHECK (code BETWEEN 0 AND 65535),
    flags             BIGINT        NOT NULL CHECK (flags BETWEEN 0 AND 4294967295),
    pending_id        TEXT COLLATE "C",
    timeout_seconds   BIGINT        NOT NULL DEFAULT 0
        CHECK (timeout_seconds BETWEEN 0 AND 4294967295),
    metadata          TEXT,
    created_at_ms     BIGINT        NOT NULL
);
ALTER SEQUENCE transfers_seq OWNED BY transfers.seq;
CREATE INDEX transfers_by_debit_account ON transfers (debit_account_id, seq);
CREATE INDEX transfers_by_credit_account ON transfers (credit_account_id, seq);

-- One row per transfer created with the pending flag. state: 1 pending, 2 posted, 3 voided,
-- 4 expired (enum ledger_pending_state). expires_at_ms is 0 when it never expires.
CREATE TABLE pending_transfers (
    transfer_id   TEXT COLLATE "C" PRIMARY KEY,
    state         SMALLINT NOT NULL CHECK (state BETWEEN 1 AND 4),
    expires_at_ms BIGINT   NOT NULL
);
CREATE INDEX pending_transfers_due ON pending_transfers (expires_at_ms)
    WHERE state = 1 AND expires_at_ms > 0;

-- Idempotency records: written in the same transaction as the effect they describe.
CREATE TABLE idempotency_keys (
    principal      TEXT COLLATE "C" NOT NULL,
    key            TEXT COLLATE "C" NOT NULL,
    request_digest BYTEA   NOT NULL CHECK (octet_length(request_digest) = 32),
    status         INTEGER NOT NULL CHECK (status BETWEEN 100 AND 599),
    location       TEXT    NOT NULL DEFAULT '',
    body           BYTEA   NOT NULL,
    created_at_ms  BIGINT  NOT NULL,
    expires_at_ms  BIGINT  NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at_ms);
