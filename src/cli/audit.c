/*
 * audit.c — `ledgerd audit verify|export|checkpoint`: check the audit trail of the database,
 * write it out as JSON Lines for a SIEM, or sign its last record now; and the helpers every
 * command that writes audit records shares (the actor, the record, the checkpoint when due).
 *
 * verify feeds the streaming verifier (src/audit/audit.h) the records and checkpoints merged by
 * seq from one snapshot of the database, so it runs in constant memory on a trail of any
 * length, and reports the first finding by seq and kind. Exit status: 0 when the trail
 * verifies, 1 on a finding (or when the database cannot be read), 2 on a usage or
 * configuration error (a key file that is missing or holds no key).
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/assert.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/limits.h"
#include "obs/log.h"
#include "store/store.h"

/* A public keys file: every key a verifier can hold, each at its largest. */
#define AUDIT_CLI_KEYS_FILE_BYTES_MAX                                                              \
    ((size_t)LIMIT_AUDIT_VERIFY_KEYS_MAX * LIMIT_AUDIT_KEY_PEM_BYTES_MAX)
#define AUDIT_CLI_PEM_BEGIN "-----BEGIN PUBLIC KEY-----"
#define AUDIT_CLI_PEM_END "-----END PUBLIC KEY-----"

/* ===== Shared helpers ===== */

int cli_store_open(const struct config *cfg, struct store **out)
{
    ASSERT(cfg != NULL && out != NULL);
    *out = NULL;
    log_setup(cfg->log_level, STDERR_FILENO, config_env_name(cfg->env));
    struct buf err;
    buf_init(&err, 4096);
    struct store *s = NULL;
    if (cli_store_connect(cfg, &s, &err) != 0) {
        fprintf(stderr, "ledgerd: cannot open the database: %s\n", err.data ? err.data : "");
        buf_release(&err);
        return CLI_EXIT_FAILURE;
    }
    buf_release(&err);
    struct store_migration_status ms;
    if (store_migration_status(s, &ms) != 0) {
        fprintf(stderr, "ledgerd: cannot read the migration state\n");
        goto out_close;
    }
    if (ms.drift) {
        fprintf(stderr, "ledgerd: migration drift: %s\n", ms.detail);
        goto out_close;
    }
    if (ms.pending > 0) {
        fprintf(stderr,
                "ledgerd: the database has %u pending migration(s): run `ledgerd migrate up`\n",
                ms.pending);
        goto out_close;
    }
    *out = s;
    return 0;

out_close:
    store_close(s);
    return CLI_EXIT_FAILURE;
}

void cli_audit_actor(char *out, size_t len)
{
    ASSERT(out != NULL && len > 0);
    uid_t uid = geteuid();
    struct passwd pw;
    struct passwd *found = NULL;
    char scratch[1024];
    if (getpwuid_r(uid, &pw, scratch, sizeof(scratch), &found) == 0 && found != NULL &&
        found->pw_name != NULL && found->pw_name[0] != '\0') {
        (void)snprintf(out, len, "cli:%s", found->pw_name);
    } else {
        (void)snprintf(out, len, "cli:uid:%u", (unsigned int)uid);
    }
}

int cli_audit_record(struct audit_record *r, const char *action, const char *resource,
                     const char *reason)
{
    ASSERT(r != NULL && action != NULL && resource != NULL && reason != NULL);
    memset(r, 0, sizeof(*r));
    char actor[LIMIT_AUDIT_ACTOR_LEN_MAX + 1];
    cli_audit_actor(actor, sizeof(actor));
    r->time_unix_ms = clock_unix_ms();
    int rc = audit_record_set(r, AUDIT_FIELD_ACTOR, actor, strlen(actor));
    if (rc == 0) {
        rc = audit_record_set(r, AUDIT_FIELD_ACTION, action, strlen(action));
    }
    if (rc == 0) {
        rc = audit_record_set(r, AUDIT_FIELD_RESOURCE, resource, strlen(resource));
    }
    if (rc == 0) {
        rc = audit_record_set(r, AUDIT_FIELD_DECISION, "success", strlen("success"));
    }
    if (rc == 0) {
        rc = audit_record_set(r, AUDIT_FIELD_REASON, reason, strlen(reason));
    }
    return rc;
}

static void hex_of(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Loads the signer of LEDGERD_AUDIT_SIGNING_KEY_FILE; prints why not. */
static int audit_load_signer(const struct config *cfg, struct audit_signer **out)
{
    uint8_t pem[LIMIT_AUDIT_KEY_PEM_BYTES_MAX]; /* a secret: wiped after use */
    size_t len = 0;
    struct buf err;
    buf_init(&err, 1024);
    int rc = config_read_secret_file(cfg->audit_signing_key_file, pem, sizeof(pem), &len, &err);
    if (rc != 0) {
        fprintf(stderr, "ledgerd: LEDGERD_AUDIT_SIGNING_KEY_FILE: %s\n", err.data ? err.data : "");
        buf_release(&err);
        return rc;
    }
    buf_release(&err);
    char reason[160];
    rc = audit_signer_load((const char *)pem, len, out, reason, sizeof(reason));
    explicit_bzero(pem, sizeof(pem));
    if (rc != 0) {
        fprintf(stderr, "ledgerd: LEDGERD_AUDIT_SIGNING_KEY_FILE: %s\n", reason);
    }
    return rc;
}

int cli_audit_checkpoint(struct store *s, const struct config *cfg, bool force, FILE *out)
{
    ASSERT(s != NULL && cfg != NULL && out != NULL);
    if (cfg->audit_signing_key_file[0] == '\0') {
        return 1;
    }
    struct audit_checkpoint cp;
    memset(&cp, 0, sizeof(cp));
    uint64_t last_seq = 0;
    int64_t last_time_ms = 0;
    int rc = store_audit_tail(s, &cp.seq, cp.hash);
    if (rc == 0) {
        rc = store_audit_checkpoint_last(s, &last_seq, &last_time_ms);
    }
    if (rc != 0) {
        fprintf(stderr, "ledgerd: cannot read the audit trail (%s)\n", strerror(-rc));
        return rc;
    }
    cp.time_unix_ms = clock_unix_ms();
    bool due = force ? cp.seq > last_seq
                     : audit_checkpoint_due(cp.seq, last_seq, last_time_ms, cp.time_unix_ms,
                                            cfg->audit_checkpoint_records,
                                            (int64_t)cfg->audit_checkpoint_interval_seconds * 1000);
    if (!due || cp.seq == 0) {
        return 1;
    }
    struct audit_signer *signer = NULL;
    rc = audit_load_signer(cfg, &signer);
    if (rc != 0) {
        return rc;
    }
    rc = audit_checkpoint_sign(signer, &cp);
    audit_signer_free(signer);
    if (rc == 0) {
        rc = store_audit_checkpoint_insert(s, &cp);
    }
    if (rc == -EEXIST) {
        return 1; /* another writer signed the same record meanwhile */
    }
    if (rc != 0) {
        fprintf(stderr, "ledgerd: cannot store the audit checkpoint (%s)\n", strerror(-rc));
        return rc;
    }
    char hash_hex[2 * AUDIT_HASH_BYTES + 1];
    char sig_hex[2 * AUDIT_SIGNATURE_BYTES + 1];
    hex_of(cp.hash, AUDIT_HASH_BYTES, hash_hex);
    hex_of(cp.signature, AUDIT_SIGNATURE_BYTES, sig_hex);
    fprintf(out,
            "audit checkpoint seq=%" PRIu64 " hash=%s time_unix_ms=%" PRId64
            " key_id=%s signature=%s\n",
            cp.seq, hash_hex, cp.time_unix_ms, cp.key_id, sig_hex);
    return 0;
}

/* ===== verify ===== */

/* Adds every key of LEDGERD_AUDIT_PUBLIC_KEYS_FILE: PEM "PUBLIC KEY" blocks, or else one key in
 * 64 hex digits per line. Prints why not. */
static int audit_add_public_keys(const char *path, struct audit_verifier *v)
{
    uint8_t *text = malloc(AUDIT_CLI_KEYS_FILE_BYTES_MAX);
    if (text == NULL) {
        return -ENOMEM;
    }
    size_t len = 0;
    struct buf err;
    buf_init(&err, 1024);
    int rc = config_read_secret_file(path, text, AUDIT_CLI_KEYS_FILE_BYTES_MAX, &len, &err);
    if (rc != 0) {
        fprintf(stderr, "ledgerd: LEDGERD_AUDIT_PUBLIC_KEYS_FILE: %s\n", err.data ? err.data : "");
        goto out_free;
    }
    const char *p = (const char *)text;
    const char *end = p + len;
    size_t keys = 0;
    char reason[160];
    bool pem = memmem(p, len, AUDIT_CLI_PEM_BEGIN, strlen(AUDIT_CLI_PEM_BEGIN)) != NULL;
    while (p < end) {
        const char *item;
        size_t item_len;
        if (pem) {
            item = memmem(p, (size_t)(end - p), AUDIT_CLI_PEM_BEGIN, strlen(AUDIT_CLI_PEM_BEGIN));
            if (item == NULL) {
                break;
            }
            const char *stop =
                memmem(item, (size_t)(end - item), AUDIT_CLI_PEM_END, strlen(AUDIT_CLI_PEM_END));
            if (stop == NULL) {
                fprintf(stderr,
                        "ledgerd: LEDGERD_AUDIT_PUBLIC_KEYS_FILE: key %zu has no end "
                        "line\n",
                        keys + 1);
                rc = -EINVAL;
                goto out_free;
            }
            item_len = (size_t)(stop + strlen(AUDIT_CLI_PEM_END) - item);
        } else {
            item = p;
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            item_len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
            while (item_len > 0 && (item[item_len - 1] == '\r' || item[item_len - 1] == ' ')) {
                item_len--;
            }
            if (item_len == 0) {
                p = nl != NULL ? nl + 1 : end;
                continue;
            }
        }
        rc = audit_verifier_add_key(v, item, item_len, NULL, reason, sizeof(reason));
        if (rc == -EEXIST) {
            rc = 0;
        } else if (rc != 0) {
            fprintf(stderr, "ledgerd: LEDGERD_AUDIT_PUBLIC_KEYS_FILE: key %zu: %s\n", keys + 1,
                    rc == -ENOSPC ? "too many keys" : reason);
            goto out_free;
        }
        keys++;
        p = item + item_len;
    }
    if (keys == 0) {
        fprintf(stderr, "ledgerd: LEDGERD_AUDIT_PUBLIC_KEYS_FILE: the file holds no public key\n");
        rc = -EINVAL;
    }
out_free:
    buf_release(&err);
    free(text);
    return rc;
}

struct audit_verify_run {
    struct audit_verify *v;
};

static int audit_verify_record_cb(void *ctx, const struct audit_record *r)
{
    struct audit_verify_run *run = ctx;
    struct audit_finding f;
    return audit_verify_record(run->v, r, &f);
}

static int audit_verify_checkpoint_cb(void *ctx, const struct audit_checkpoint *cp)
{
    struct audit_verify_run *run = ctx;
    struct audit_finding f;
    return audit_verify_checkpoint(run->v, cp, &f);
}

static int audit_verify_cmd(const struct config *cfg)
{
    struct audit_verifier *keys = NULL;
    if (audit_verifier_new(&keys) != 0) {
        fprintf(stderr, "ledgerd: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    int status = CLI_EXIT_USAGE;
    if (cfg->audit_public_keys_file[0] != '\0' &&
        audit_add_public_keys(cfg->audit_public_keys_file, keys) != 0) {
        goto out_keys;
    }
    if (cfg->audit_signing_key_file[0] != '\0') {
        struct audit_signer *signer = NULL;
        if (audit_load_signer(cfg, &signer) != 0) {
            goto out_keys;
        }
        uint8_t pub[AUDIT_PUBLIC_KEY_BYTES];
        audit_signer_public_key(signer, pub, NULL);
        audit_signer_free(signer);
        int rc = audit_verifier_add_raw(keys, pub, NULL);
        if (rc != 0 && rc != -EEXIST) {
            fprintf(stderr, "ledgerd: cannot use the signing key's public key (%s)\n",
                    strerror(-rc));
            goto out_keys;
        }
    }

    status = CLI_EXIT_FAILURE;
    struct store *store = NULL;
    if (cli_store_open(cfg, &store) != 0) {
        goto out_keys;
    }
    struct audit_verify_run run = {NULL};
    if (audit_verify_new(keys, 0, NULL, &run.v) != 0) {
        fprintf(stderr, "ledgerd: out of memory\n");
        goto out_close;
    }
    int rc = store_audit_trail(store, 0, audit_verify_record_cb, audit_verify_checkpoint_cb, &run);
    if (rc != 0) {
        fprintf(stderr, "ledgerd: cannot read the audit trail (%s)\n", strerror(-rc));
        goto out_verify;
    }
    struct audit_finding first;
    struct audit_verify_stats st;
    (void)audit_verify_finish(run.v, &first, &st);
    if (first.kind != AUDIT_OK) {
        printf("audit trail: FAILED at seq %" PRIu64 ": %s: %s\n", first.seq,
               audit_finding_kind_name(first.kind), first.message);
        printf("findings: %" PRIu64 " in %" PRIu64 " records and %" PRIu64 " checkpoints\n",
               st.findings, st.records, st.checkpoints);
        if (first.kind == AUDIT_FINDING_CHECKPOINT_UNKNOWN_KEY) {
            printf("hint: give every public key the trail was signed with, rotated ones too, in "
                   "LEDGERD_AUDIT_PUBLIC_KEYS_FILE\n");
        }
        goto out_verify;
    }
    printf("audit trail: ok: %" PRIu64 " records (last seq %" PRIu64 "), %" PRIu64
           " checkpoints verified",
           st.records, st.last_seq, st.checkpoints_verified);
    if (st.last_checkpoint_seq > 0) {
        printf(" (last at seq %" PRIu64 ")", st.last_checkpoint_seq);
    }
    printf(", %" PRIu64 " records after the last checkpoint\n", st.records_unsigned);
    if (st.records_unsigned > 0) {
        printf("note: records after the last checkpoint are not covered by a signature; compare "
               "the last seq with the checkpoints kept off this host\n");
    }
    status = CLI_EXIT_OK;
out_verify:
    audit_verify_free(run.v);
out_close:
    store_close(store);
out_keys:
    audit_verifier_free(keys);
    return status;
}

/* ===== export ===== */

static bool is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return n > 0;
}

static int digits_value(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* RFC 3339 date-time ("2026-01-01T00:00:00Z", "2026-01-01T01:00:00.5+01:00") to Unix ms.
 * Fractions past milliseconds are cut. Returns 0 or -EINVAL. */
static int parse_rfc3339_ms(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    if (n < 20 || !is_digits(s, 4) || s[4] != '-' || !is_digits(s + 5, 2) || s[7] != '-' ||
        !is_digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't') || !is_digits(s + 11, 2) ||
        s[13] != ':' || !is_digits(s + 14, 2) || s[16] != ':' || !is_digits(s + 17, 2)) {
        return -EINVAL;
    }
    int year = digits_value(s, 4), month = digits_value(s + 5, 2), day = digits_value(s + 8, 2);
    int hour = digits_value(s + 11, 2), minute = digits_value(s + 14, 2);
    int second = digits_value(s + 17, 2);
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month < 1 || month > 12 || day < 1 || day > mdays[month - 1] ||
        (month == 2 && day == 29 && !leap) || hour > 23 || minute > 59 || second > 60) {
        return -EINVAL;
    }
    size_t i = 19;
    int64_t ms = 0;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (i - start < 3) {
                ms = ms * 10 + (s[i] - '0');
            }
            i++;
        }
        if (i == start) {
            return -EINVAL;
        }
        for (size_t k = i - start; k < 3; k++) {
            ms *= 10;
        }
    }
    int64_t offset_s = 0;
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
        offset_s = 0;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && is_digits(s + i + 1, 2) &&
               s[i + 3] == ':' && is_digits(s + i + 4, 2)) {
        int oh = digits_value(s + i + 1, 2), om = digits_value(s + i + 4, 2);
        if (oh > 23 || om > 59) {
            return -EINVAL;
        }
        offset_s = (int64_t)(oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
    } else {
        return -EINVAL;
    }
    int64_t t = days_from_civil(year, month, day) * 86400 + (int64_t)hour * 3600 +
                (int64_t)minute * 60 + second - offset_s;
    *out = t * 1000 + ms;
    return 0;
}

struct audit_export_run {
    int64_t since_ms; /* INT64_MIN: no filter */
    size_t written;
    int error;
};

static int json_set(json_t *obj, const char *key, json_t *value)
{
    return value != NULL ? json_object_set_new(obj, key, value) : -1;
}

/* One record as one line of JSON: every field, times also as RFC 3339, hashes in hex. */
static int audit_export_record(void *ctx, const struct audit_record *r)
{
    struct audit_export_run *run = ctx;
    if (r->time_unix_ms < run->since_ms) {
        return 0;
    }
    char time_text[CLOCK_RFC3339_MS_LEN + 1];
    (void)clock_format_rfc3339_ms(r->time_unix_ms, time_text);
    char prev_hex[2 * AUDIT_HASH_BYTES + 1], hash_hex[2 * AUDIT_HASH_BYTES + 1];
    hex_of(r->prev_hash, AUDIT_HASH_BYTES, prev_hex);
    hex_of(r->hash, AUDIT_HASH_BYTES, hash_hex);
    json_t *obj = json_object();
    if (obj == NULL) {
        return -ENOMEM;
    }
    int bad = 0;
    bad |= json_set(obj, "seq", json_integer((json_int_t)r->seq));
    bad |= json_set(obj, "time", json_string(time_text));
    bad |= json_set(obj, "time_unix_ms", json_integer(r->time_unix_ms));
    bad |= json_set(obj, "actor", json_string(r->actor));
    bad |= json_set(obj, "action", json_string(r->action));
    bad |= json_set(obj, "resource", json_string(r->resource));
    bad |= json_set(obj, "decision", json_string(r->decision));
    bad |= json_set(obj, "reason", json_string(r->reason));
    bad |= json_set(obj, "request_id", json_string(r->request_id));
    bad |= json_set(obj, "trace_id", json_string(r->trace_id));
    bad |= json_set(obj, "source", json_string(r->source));
    bad |= json_set(obj, "prev_hash", json_string(prev_hex));
    bad |= json_set(obj, "hash", json_string(hash_hex));
    char *line = bad == 0 ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(obj);
    if (line == NULL) {
        fprintf(stderr,
                "ledgerd: audit record %" PRIu64 " cannot be written as JSON (its text is "
                "not UTF-8: run `ledgerd audit verify`)\n",
                r->seq);
        run->error = -EINVAL;
        return -EINVAL;
    }
    int n = printf("%s\n", line);
    free(line);
    if (n < 0) {
        run->error = -EIO;
        return -EIO;
    }
    run->written++;
    return 0;
}

static int audit_export_cmd(int argc, char **argv, const struct config *cfg)
{
    struct audit_export_run run = {INT64_MIN, 0, 0};
    uint64_t after_seq = 0;
    bool have_since = false, have_after = false;
    for (int i = 0; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--since") == 0 && value != NULL && !have_since) {
            if (parse_rfc3339_ms(value, &run.since_ms) != 0) {
                fprintf(stderr,
                        "ledgerd: audit export: --since: not an RFC 3339 date-time "
                        "(2026-01-31T12:00:00Z): %s\n",
                        value);
                return CLI_EXIT_USAGE;
            }
            have_since = true;
            i++;
        } else if (strcmp(argv[i], "--after-seq") == 0 && value != NULL && !have_after) {
            size_t n = strlen(value);
            if (!is_digits(value, n) || n > 16) {
                fprintf(stderr, "ledgerd: audit export: --after-seq: not a record number: %s\n",
                        value);
                return CLI_EXIT_USAGE;
            }
            after_seq = strtoull(value, NULL, 10);
            have_after = true;
            i++;
        } else {
            fprintf(stderr, "usage: ledgerd audit export [--since RFC3339 | --after-seq N]\n");
            return CLI_EXIT_USAGE;
        }
    }
    if (have_since && have_after) {
        fprintf(stderr, "ledgerd: audit export: give --since or --after-seq, not both\n");
        return CLI_EXIT_USAGE;
    }
    struct store *store = NULL;
    if (cli_store_open(cfg, &store) != 0) {
        return CLI_EXIT_FAILURE;
    }
    int status = CLI_EXIT_OK;
    struct store_page page = {.after_seq = after_seq, .limit = LIMIT_LIST_MAX};
    for (;;) {
        int rc = store_audit_records(store, &page, audit_export_record, &run);
        if (rc != 0) {
            if (run.error == 0) {
                fprintf(stderr, "ledgerd: cannot read the audit trail (%s)\n", strerror(-rc));
            }
            status = CLI_EXIT_FAILURE;
            break;
        }
        if (!page.more_out) {
            break;
        }
        page.after_seq = page.last_seq_out;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        status = CLI_EXIT_FAILURE;
    }
    store_close(store);
    return status;
}

/* ===== checkpoint ===== */

static int audit_checkpoint_cmd(const struct config *cfg)
{
    if (cfg->audit_signing_key_file[0] == '\0') {
        fprintf(stderr, "ledgerd: audit checkpoint: LEDGERD_AUDIT_SIGNING_KEY_FILE is not set\n");
        return CLI_EXIT_USAGE;
    }
    struct store *store = NULL;
    if (cli_store_open(cfg, &store) != 0) {
        return CLI_EXIT_FAILURE;
    }
    int rc = cli_audit_checkpoint(store, cfg, true, stdout);
    if (rc == 1) {
        printf("audit checkpoint: nothing to sign (the trail is empty or its last record is "
               "covered)\n");
    }
    store_close(store);
    return rc == -EINVAL ? CLI_EXIT_USAGE : rc < 0 ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

/* ===== The command ===== */

static void audit_usage(FILE *out)
{
    fputs("usage: ledgerd audit verify\n"
          "       ledgerd audit export [--since RFC3339 | --after-seq N]\n"
          "       ledgerd audit checkpoint\n"
          "  verify      check the hash chain and the signed checkpoints of the whole trail;\n"
          "              exit 0 when it verifies, 1 naming the first bad record or checkpoint\n"
          "  export      write the records as JSON Lines (one object per line, every field,\n"
          "              hashes in hex): those made at or after --since, or after --after-seq\n"
          "  checkpoint  sign the last record now (needs LEDGERD_AUDIT_SIGNING_KEY_FILE)\n"
          "Checkpoints are checked with the keys of LEDGERD_AUDIT_PUBLIC_KEYS_FILE and the public\n"
          "key of LEDGERD_AUDIT_SIGNING_KEY_FILE. See docs/security/audit.md.\n",
          out);
}

int cli_audit(int argc, char **argv, const struct config *cfg)
{
    if (argc < 1) {
        audit_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "help") == 0) {
        audit_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[0], "verify") == 0 && argc == 1) {
        return audit_verify_cmd(cfg);
    }
    if (strcmp(argv[0], "export") == 0) {
        return audit_export_cmd(argc - 1, argv + 1, cfg);
    }
    if (strcmp(argv[0], "checkpoint") == 0 && argc == 1) {
        return audit_checkpoint_cmd(cfg);
    }
    audit_usage(stderr);
    return CLI_EXIT_USAGE;
}
