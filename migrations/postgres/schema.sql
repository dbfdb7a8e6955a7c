-- The schema the migrations in this directory produce (postgres), written by
-- `ledgerd migrate snapshot`. Do not edit: `ledgerd migrate verify` compares it with a fresh
-- apply of the migrations.

CREATE TABLE accounts (
    seq bigint NOT NULL DEFAULT nextval('accounts_seq'::regclass),
    id text COLLATE "C" NOT NULL,
    ledger text COLLATE "C" NOT NULL,
    code integer NOT NULL,
    flags bigint NOT NULL,
    metadata text,
    debits_pending numeric(39,0) NOT NULL,
    debits_posted numeric(39,0) NOT NULL,
    credits_pending numeric(39,0) NOT NULL,
    credits_posted numeric(39,0) NOT NULL,
    created_at_ms bigint NOT NULL
);

CREATE TABLE api_keys (
    id text COLLATE "C" NOT NULL,
    name text NOT NULL,
    scopes bigint NOT NULL,
    hash bytea NOT NULL,
    created_at_ms bigint NOT NULL,
    created_by text NOT NULL,
    revoked_at_ms bigint
);

CREATE TABLE audit_checkpoints (
    seq bigint NOT NULL,
    hash bytea NOT NULL,
    time_unix_ms bigint NOT NULL,
    key_id text NOT NULL,
    signature bytea NOT NULL
);

CREATE TABLE audit_records (
    seq bigint NOT NULL,
    time_unix_ms bigint NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    resource text NOT NULL,
    decision text NOT NULL,
    reason text NOT NULL DEFAULT ''::text,
    request_id text NOT NULL DEFAULT ''::text,
    trace_id text NOT NULL DEFAULT ''::text,
    source text NOT NULL DEFAULT ''::text,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL
);

CREATE TABLE idempotency_keys (
    principal text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    request_digest bytea NOT NULL,
    status integer NOT NULL,
    location text NOT NULL DEFAULT ''::text,
    body bytea NOT NULL,
    created_at_ms bigint NOT NULL,
    expires_at_ms bigint NOT NULL
);

CREATE TABLE pending_transfers (
    transfer_id text COLLATE "C" NOT NULL,
    state smallint NOT NULL,
    expires_at_ms bigint NOT NULL
);

CREATE TABLE transfers (
    seq bigint NOT NULL DEFAULT nextval('transfers_seq'::regclass),
    id text COLLATE "C" NOT NULL,
    debit_account_id text COLLATE "C" NOT NULL,
    credit_account_id text COLLATE "C" NOT NULL,
    amount numeric(39,0) NOT NULL,
    ledger text COLLATE "C" NOT NULL,
    code integer NOT NULL,
    flags bigint NOT NULL,
    pending_id text COLLATE "C",
    timeout_seconds bigint NOT NULL DEFAULT 0,
    metadata text,
    created_at_ms bigint NOT NULL
);

ALTER TABLE accounts ADD CONSTRAINT accounts_code_check CHECK (((code >= 0) AND (code <= 65535)));

ALTER TABLE accounts ADD CONSTRAINT accounts_credits_pending_check CHECK (((credits_pending >= (0)::numeric) AND (credits_pending <= '340282366920938463463374607431768211455'::numeric)));

ALTER TABLE accounts ADD CONSTRAINT accounts_credits_posted_check CHECK (((credits_posted >= (0)::numeric) AND (credits_posted <= '340282366920938463463374607431768211455'::numeric)));

ALTER TABLE accounts ADD CONSTRAINT accounts_debits_pending_check CHECK (((debits_pending >= (0)::numeric) AND (debits_pending <= '340282366920938463463374607431768211455'::numeric)));

ALTER TABLE accounts ADD CONSTRAINT accounts_debits_posted_check CHECK (((debits_posted >= (0)::numeric) AND (debits_posted <= '340282366920938463463374607431768211455'::numeric)));

ALTER TABLE accounts ADD CONSTRAINT accounts_flags_check CHECK (((flags >= 0) AND (flags <= '4294967295'::bigint)));

ALTER TABLE accounts ADD CONSTRAINT accounts_id_key UNIQUE (id);

ALTER TABLE accounts ADD CONSTRAINT accounts_pkey PRIMARY KEY (seq);

ALTER TABLE api_keys ADD CONSTRAINT api_keys_hash_check CHECK ((octet_length(hash) = 32));

ALTER TABLE api_keys ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);

ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_check CHECK (((scopes >= 1) AND (scopes <= '4294967295'::bigint)));

ALTER TABLE audit_checkpoints ADD CONSTRAINT audit_checkpoints_hash_check CHECK ((octet_length(hash) = 32));

ALTER TABLE audit_checkpoints ADD CONSTRAINT audit_checkpoints_pkey PRIMARY KEY (seq);

ALTER TABLE audit_checkpoints ADD CONSTRAINT audit_checkpoints_seq_check CHECK ((seq >= 1));

ALTER TABLE audit_checkpoints ADD CONSTRAINT audit_checkpoints_signature_check CHECK ((octet_length(signature) = 64));

ALTER TABLE audit_records ADD CONSTRAINT audit_records_hash_check CHECK ((octet_length(hash) = 32));

ALTER TABLE audit_records ADD CONSTRAINT audit_records_pkey PRIMARY KEY (seq);

ALTER TABLE audit_records ADD CONSTRAINT audit_records_prev_hash_check CHECK ((octet_length(prev_hash) = 32));

ALTER TABLE audit_records ADD CONSTRAINT audit_records_seq_check CHECK ((seq >= 1));

ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (principal, key);

ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_request_digest_check CHECK ((octet_length(request_digest) = 32));

ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_status_check CHECK (((status >= 100) AND (status <= 599)));

ALTER TABLE pending_transfers ADD CONSTRAINT pending_transfers_pkey PRIMARY KEY (transfer_id);

ALTER TABLE pending_transfers ADD CONSTRAINT pending_transfers_state_check CHECK (((state >= 1) AND (state <= 4)));

ALTER TABLE transfers ADD CONSTRAINT transfers_amount_check CHECK (((amount >= (0)::numeric) AND (amount <= '340282366920938463463374607431768211455'::numeric)));

ALTER TABLE transfers ADD CONSTRAINT transfers_code_check CHECK (((code >= 0) AND (code <= 65535)));

ALTER TABLE transfers ADD CONSTRAINT transfers_flags_check CHECK (((flags >= 0) AND (flags <= '4294967295'::bigint)));

ALTER TABLE transfers ADD CONSTRAINT transfers_id_key UNIQUE (id);

ALTER TABLE transfers ADD CONSTRAINT transfers_pkey PRIMARY KEY (seq);

ALTER TABLE transfers ADD CONSTRAINT transfers_timeout_seconds_check CHECK (((timeout_seconds >= 0) AND (timeout_seconds <= '4294967295'::bigint)));

CREATE INDEX accounts_by_ledger ON public.accounts USING btree (ledger, seq);

CREATE INDEX idempotency_keys_expiry ON public.idempotency_keys USING btree (expires_at_ms);

CREATE INDEX pending_transfers_due ON public.pending_transfers USING btree (expires_at_ms) WHERE ((state = 1) AND (expires_at_ms > 0));

CREATE INDEX transfers_by_credit_account ON public.transfers USING btree (credit_account_id, seq);

CREATE INDEX transfers_by_debit_account ON public.transfers USING btree (debit_account_id, seq);

CREATE SEQUENCE accounts_seq AS bigint START 1 INCREMENT 1 MINVALUE 1 MAXVALUE 9223372036854775807 CACHE 1;

CREATE SEQUENCE transfers_seq AS bigint START 1 INCREMENT 1 MINVALUE 1 MAXVALUE 9223372036854775807 CACHE 1;

CREATE OR REPLACE FUNCTION public.audit_immutable()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    RAISE EXCEPTION 'audit records are immutable';
END;
$function$;

CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON public.audit_checkpoints FOR EACH STATEMENT EXECUTE FUNCTION audit_immutable();

CREATE TRIGGER audit_checkpoints_no_update BEFORE DELETE OR UPDATE ON public.audit_checkpoints FOR EACH ROW EXECUTE FUNCTION audit_immutable();

CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON public.audit_records FOR EACH STATEMENT EXECUTE FUNCTION audit_immutable();

CREATE TRIGGER audit_records_no_update BEFORE DELETE OR UPDATE ON public.audit_records FOR EACH ROW EXECUTE FUNCTION audit_immutable();

