/*
 * apikey.c — `ledgerd apikey create|list|revoke`: issue, list and revoke API keys in the
 * database named by LEDGERD_DB, each change together with its audit record.
 *
 * A new key is printed once, on the last line of standard output, and never again: only its
 * id and the HMAC of its secret under the hashing key of LEDGERD_APIKEY_HASH_KEY_FILE are
 * stored (docs/security/auth.md). Keys are never read from the command line (argv is visible
 * to every user of the host); revoke takes the public id.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "auth/apikey.h"
#include "auth/scope.h"
#include "cli/cli.h"
#include "core/assert.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/limits.h"
#include "store/store.h"

/* A duplicate id is one chance in 2^64 per pair of keys; a few tries are plenty. */
#define APIKEY_CLI_CREATE_ATTEMPTS 3

static void apikey_usage(FILE *out)
{
    fputs("usage: ledgerd apikey create --name NAME --scopes SCOPE[,SCOPE...]\n"
          "       ledgerd apikey list\n"
          "       ledgerd apikey revoke ID\n"
          "  create  make a key with these scopes; the key is printed once, on the last line\n"
          "  list    every key: id, name, scopes, created, revoked (never a key or its hash)\n"
          "  revoke  revoke the key with this id (16 hex digits); a revoked key stays listed\n"
          "Scopes: ledger:read ledger:write flags:read flags:write audit:read admin.\n"
          "The database is LEDGERD_DB; create needs LEDGERD_APIKEY_HASH_KEY_FILE.\n",
          out);
}

/* Scopes as "a,b,c" (the form the command line takes). */
static void scopes_text(uint32_t mask, char *out, size_t len)
{
    int rc = scope_format(mask & SCOPE_ALL, out, len);
    ASSERT(rc == 0);
    for (char *p = out; *p != '\0'; p++) {
        if (*p == ' ') {
            *p = ',';
        }
    }
}

static bool is_id(const char *s)
{
    size_t n = strlen(s);
    if (n != APIKEY_ID_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* A name: 1..STORE_APIKEY_NAME_LEN_MAX bytes of UTF-8 without control characters (the rules of
 * an audit record's text, which the name goes into). */
static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > STORE_APIKEY_NAME_LEN_MAX) {
        return false;
    }
    struct audit_record probe;
    memset(&probe, 0, sizeof(probe));
    return audit_record_set(&probe, AUDIT_FIELD_REASON, name, n) == 0;
}

/* Reads the hashing key and prepares the hasher; prints why not. */
static int apikey_hasher_load(const struct config *cfg, struct apikey_hasher *h)
{
    if (cfg->apikey_hash_key_file[0] == '\0') {
        fprintf(stderr, "ledgerd: apikey create: LEDGERD_APIKEY_HASH_KEY_FILE is not set (API "
                        "keys are hashed with the key it holds; see docs/security/auth.md)\n");
        return -EINVAL;
    }
    uint8_t key[LIMIT_APIKEY_HASH_KEY_BYTES_MAX];
    size_t len = 0;
    struct buf err;
    buf_init(&err, 1024);
    int rc = config_read_secret_file(cfg->apikey_hash_key_file, key, sizeof(key), &len, &err);
    if (rc != 0) {
        fprintf(stderr, "ledgerd: LEDGERD_APIKEY_HASH_KEY_FILE: %s\n", err.data ? err.data : "");
        buf_release(&err);
        return rc;
    }
    buf_release(&err);
    char reason[160];
    rc = apikey_hasher_init(h, key, len, reason, sizeof(reason));
    explicit_bzero(key, sizeof(key));
    if (rc != 0) {
        fprintf(stderr, "ledgerd: LEDGERD_APIKEY_HASH_KEY_FILE: %s\n", reason);
    }
    return rc;
}

static int apikey_create(int argc, char **argv, const struct config *cfg)
{
    const char *name = NULL, *scopes = NULL;
    for (int i = 0; i < argc; i++) {
        const char **slot = strcmp(argv[i], "--name") == 0     ? &name
                            : strcmp(argv[i], "--scopes") == 0 ? &scopes
                                                               : NULL;
        if (slot == NULL || *slot != NULL || i + 1 >= argc) {
            fprintf(stderr, "ledgerd: apikey create: %s\n",
                    slot == NULL ? "unknown option" : "option given twice or without a value");
            apikey_usage(stderr);
            return CLI_EXIT_USAGE;
        }
        *slot = argv[++i];
    }
    if (name == NULL || scopes == NULL) {
        fprintf(stderr, "ledgerd: apikey create: %s is required\n",
                name == NULL ? "--name" : "--scopes");
        apikey_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (!name_ok(name)) {
        fprintf(stderr,
                "ledgerd: apikey create: --name must be 1..%d bytes of UTF-8 without "
                "control characters\n",
                STORE_APIKEY_NAME_LEN_MAX);
        return CLI_EXIT_USAGE;
    }
    uint32_t mask = 0;
    char reason[160];
    if (scope_parse_list(scopes, strlen(scopes), &mask, reason, sizeof(reason)) != 0) {
        fprintf(stderr, "ledgerd: apikey create: --scopes: %s\n", reason);
        return CLI_EXIT_USAGE;
    }
    if (mask == 0) {
        fprintf(stderr, "ledgerd: apikey create: --scopes: at least one scope is needed (a key "
                        "without scopes can do nothing)\n");
        return CLI_EXIT_USAGE;
    }

    struct apikey_hasher hasher;
    memset(&hasher, 0, sizeof(hasher));
    if (apikey_hasher_load(cfg, &hasher) != 0) {
        return CLI_EXIT_USAGE;
    }
    int status = CLI_EXIT_FAILURE;
    struct store *store = NULL;
    if (cli_store_open(cfg, &store) != 0) {
        goto out_hasher;
    }

    char scope_list[SCOPE_TEXT_LEN_MAX + 1];
    scopes_text(mask, scope_list, sizeof(scope_list));
    char audit_reason[LIMIT_AUDIT_REASON_LEN_MAX + 1];
    (void)snprintf(audit_reason, sizeof(audit_reason), "scopes %s; name %s", scope_list, name);
    struct apikey_new fresh;
    memset(&fresh, 0, sizeof(fresh));
    int rc = -EEXIST;
    for (int attempt = 0; attempt < APIKEY_CLI_CREATE_ATTEMPTS && rc == -EEXIST; attempt++) {
        rc = apikey_generate(&hasher, &fresh);
        if (rc != 0) {
            fprintf(stderr, "ledgerd: apikey create: cannot generate a key (%s)\n", strerror(-rc));
            goto out_close;
        }
        struct store_apikey k;
        memset(&k, 0, sizeof(k));
        memcpy(k.id, fresh.id, sizeof(k.id));
        memcpy(k.name, name, strlen(name) + 1);
        k.scopes = mask;
        memcpy(k.hash, fresh.hash, sizeof(k.hash));
        char resource[LIMIT_AUDIT_RESOURCE_LEN_MAX + 1];
        (void)snprintf(resource, sizeof(resource), "apikey:%s", fresh.id);
        struct audit_record r;
        rc = cli_audit_record(&r, "apikey.create", resource, audit_reason);
        ASSERT(rc == 0); /* every part was checked above */
        memcpy(k.created_by, r.actor, sizeof(k.created_by));
        k.created_at_ms = r.time_unix_ms;
        rc = store_apikey_insert(store, &k, &r);
    }
    if (rc != 0) {
        fprintf(stderr, "ledgerd: apikey create: cannot store the key (%s)\n", strerror(-rc));
        goto out_close;
    }
    (void)cli_audit_checkpoint(store, cfg, false, stderr);
    fprintf(stderr, "ledgerd: the key is shown once, below: store it now, it cannot be shown "
                    "again\n");
    printf("created API key id=%s scopes=%s name=%s\n", fresh.id, scope_list, name);
    printf("%s\n", fresh.key);
    status = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
out_close:
    apikey_new_clear(&fresh);
    store_close(store);
out_hasher:
    apikey_hasher_release(&hasher);
    return status;
}

static int apikey_list_one(void *ctx, const struct store_apikey *k)
{
    (void)ctx;
    char scope_list[SCOPE_TEXT_LEN_MAX + 1];
    scopes_text(k->scopes, scope_list, sizeof(scope_list));
    char created[CLOCK_RFC3339_MS_LEN + 1], revoked[CLOCK_RFC3339_MS_LEN + 1];
    (void)clock_format_rfc3339_ms(k->created_at_ms, created);
    if (k->revoked_at_ms != 0) {
        (void)clock_format_rfc3339_ms(k->revoked_at_ms, revoked);
    } else {
        memcpy(revoked, "-", 2);
    }
    printf("%s\t%s\t%s\t%s\t%s\t%s\n", k->id, k->name, scope_list, created, revoked, k->created_by);
    return 0;
}

static int apikey_list(const struct config *cfg)
{
    struct store *store = NULL;
    if (cli_store_open(cfg, &store) != 0) {
        return CLI_EXIT_FAILURE;
    }
    printf("id\tname\tscopes\tcreated\trevoked\tcreated_by\n");
    int rc = store_apikey_list(store, apikey_list_one, NULL);
    store_close(store);
    if (rc != 0) {
        fprintf(stderr, "ledgerd: cannot list the API keys (%s)\n", strerror(-rc));
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}

static int apikey_revoke(const char *id, const struct config *cfg)
{
    if (!is_id(id)) {
        fprintf(stderr, "ledgerd: apikey revoke: not an API key id (16 lower-case hex digits, "
                        "as `ledgerd apikey list` shows them)\n");
        return CLI_EXIT_USAGE;
    }
    struct store *store = NULL;
    if (cli_store_open(cfg, &store) != 0) {
        return CLI_EXIT_FAILURE;
    }
    int status = CLI_EXIT_FAILURE;
    char resource[LIMIT_AUDIT_RESOURCE_LEN_MAX + 1];
    (void)snprintf(resource, sizeof(resource), "apikey:%s", id);
    struct audit_record r;
    int rc = cli_audit_record(&r, "apikey.revoke", resource, "");
    ASSERT(rc == 0);
    rc = store_apikey_revoke(store, id, r.time_unix_ms, &r);
    if (rc == 0) {
        (void)cli_audit_checkpoint(store, cfg, false, stderr);
        printf("revoked API key %s\n", id);
        status = CLI_EXIT_OK;
    } else if (rc == -EALREADY) {
        struct store_apikey k;
        char when[CLOCK_RFC3339_MS_LEN + 1] = "?";
        if (store_apikey_get(store, id, &k) == 0) {
            (void)clock_format_rfc3339_ms(k.revoked_at_ms, when);
        }
        printf("API key %s was already revoked at %s\n", id, when);
        status = CLI_EXIT_OK;
    } else if (rc == -ENOENT) {
        fprintf(stderr, "ledgerd: apikey revoke: no API key with id %s\n", id);
    } else {
        fprintf(stderr, "ledgerd: apikey revoke: %s\n", strerror(-rc));
    }
    store_close(store);
    return status;
}

int cli_apikey(int argc, char **argv, const struct config *cfg)
{
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "help") == 0)) {
        apikey_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc >= 1 && strcmp(argv[0], "create") == 0) {
        return apikey_create(argc - 1, argv + 1, cfg);
    }
    if (argc == 1 && strcmp(argv[0], "list") == 0) {
        return apikey_list(cfg);
    }
    if (argc == 2 && strcmp(argv[0], "revoke") == 0) {
        return apikey_revoke(argv[1], cfg);
    }
    apikey_usage(stderr);
    return CLI_EXIT_USAGE;
}
