-- bench/pgledger.sql: the reference ledger of bench/pg.sh, written the way users build a ledger
-- directly in PostgreSQL (in the style of pgledger): two tables and plpgsql functions, called
-- once per transfer (or once per batch) by the application. No HTTP, JSON, idempotency keys or
-- audit trail: the floor of what a transfer costs on this cluster.
--
-- The same semantics as a ledgerd transfer without flags: both accounts must exist, be distinct
-- and on the transfer's ledger; an account flagged debits_must_not_exceed_credits refuses a debit
-- that would take its debits past its credits; the transfer id is unique (a retry with the same
-- id fails on the primary key instead of applying twice). Account rows are locked in id order
-- (SELECT ... ORDER BY id FOR UPDATE), so two transfers over the same accounts never deadlock.
-- Amounts and balances are NUMERIC(39,0), ids TEXT COLLATE "C", as in ledgerd's schema.
-- There is no foreign key from transfers to accounts: the rows are locked and checked anyway.

CREATE TABLE accounts (
    id                             TEXT COLLATE "C" PRIMARY KEY,
    ledger                         TEXT COLLATE "C" NOT NULL,
    debits_posted                  NUMERIC(39, 0)   NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted                 NUMERIC(39, 0)   NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_must_not_exceed_credits BOOLEAN          NOT NULL DEFAULT false,
    created_at                     TIMESTAMPTZ      NOT NULL DEFAULT now()
);

CREATE TABLE transfers (
    id                TEXT COLLATE "C" PRIMARY KEY,
    debit_account_id  TEXT COLLATE "C" NOT NULL,
    credit_account_id TEXT COLLATE "C" NOT NULL,
    amount            NUMERIC(39, 0)   NOT NULL CHECK (amount > 0),
    ledger            TEXT COLLATE "C" NOT NULL,
    created_at        TIMESTAMPTZ      NOT NULL DEFAULT now()
);
-- An account's history, as ledgerd keeps one (GET /v1/accounts/{id}/transfers).
CREATE INDEX transfers_by_debit_account ON transfers (debit_account_id, created_at);
CREATE INDEX transfers_by_credit_account ON transfers (credit_account_id, created_at);

-- The body of a transfer, for a caller that already holds both account rows locked.
CREATE FUNCTION transfer_locked(p_from TEXT, p_to TEXT, p_amount NUMERIC, p_id TEXT,
                                p_ledger TEXT)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    d accounts%ROWTYPE;
    c accounts%ROWTYPE;
BEGIN
    IF p_from = p_to THEN
        RAISE EXCEPTION 'accounts_must_be_different' USING ERRCODE = 'check_violation';
    END IF;
    IF p_amount IS NULL OR p_amount <= 0 THEN
        RAISE EXCEPTION 'amount_must_be_positive' USING ERRCODE = 'check_violation';
    END IF;
    SELECT * INTO d FROM accounts WHERE id = p_from;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'debit_account_not_found: %', p_from USING ERRCODE = 'no_data_found';
    END IF;
    SELECT * INTO c FROM accounts WHERE id = p_to;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credit_account_not_found: %', p_to USING ERRCODE = 'no_data_found';
    END IF;
    IF d.ledger <> p_ledger OR c.ledger <> p_ledger THEN
        RAISE EXCEPTION 'ledger_mismatch' USING ERRCODE = 'check_violation';
    END IF;
    IF d.debits_must_not_exceed_credits
       AND d.debits_posted + p_amount > d.credits_posted THEN
        RAISE EXCEPTION 'exceeds_credits: %', p_from USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, ledger)
    VALUES (p_id, p_from, p_to, p_amount, p_ledger);
    UPDATE accounts SET debits_posted = debits_posted + p_amount WHERE id = p_from;
    UPDATE accounts SET credits_posted = credits_posted + p_amount WHERE id = p_to;
END
$$;

-- One transfer: locks the two account rows in id order, then checks, inserts and updates.
CREATE FUNCTION transfer(p_from TEXT, p_to TEXT, p_amount NUMERIC, p_id TEXT,
                         p_ledger TEXT DEFAULT 'USD')
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM accounts WHERE id IN (p_from, p_to) ORDER BY id FOR UPDATE;
    PERFORM transfer_locked(p_from, p_to, p_amount, p_id, p_ledger);
END
$$;

-- A batch, all or nothing, in one call: element i of each array is one transfer. Every account
-- the batch touches is locked first, in id order: locking pair by pair instead would let two
-- concurrent batches take the same rows in opposite orders and deadlock.
CREATE FUNCTION transfer_batch(p_ids TEXT[], p_from TEXT[], p_to TEXT[], p_amounts NUMERIC[],
                               p_ledger TEXT DEFAULT 'USD')
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer := cardinality(p_ids);
BEGIN
    IF cardinality(p_from) <> n OR cardinality(p_to) <> n OR cardinality(p_amounts) <> n THEN
        RAISE EXCEPTION 'arrays_of_different_lengths' USING ERRCODE = 'check_violation';
    END IF;
    PERFORM 1 FROM accounts WHERE id = ANY (p_from || p_to) ORDER BY id FOR UPDATE;
    FOR i IN 1 .. n LOOP
        PERFORM transfer_locked(p_from[i], p_to[i], p_amounts[i], p_ids[i], p_ledger);
    END LOOP;
    RETURN n;
END
$$;
