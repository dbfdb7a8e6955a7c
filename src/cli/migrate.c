/*
 * migrate.c — `ledgerd migrate`: the schema migrations, from the files in LEDGERD_MIGRATIONS_DIR
 * (unset: ./migrations when it has the backend's directory, else the copy built into the
 * binary), always checked against their integrity file (ledgerd.sum) before anything runs.
 *
 *   status   applied (when, how long, by whom), pending, drift
 *   plan     the dry run: every statement `up` would run, with its lint findings; changes nothing
 *   up       apply the pending migrations (--to N, --allow-destructive)
 *   new      the next numbered migration for every backend, with its header
 *   snapshot write the schema the migrations produce to <backend>/schema.sql
 *   verify   integrity, lint, applied checksums, and a fresh apply equal to the snapshot
 *   lint     the destructive-change lint of every file
 *   hash     rewrite ledgerd.sum after a reviewed change
 *
 * Each application is an audit record whose actor is the user who ran the command
 * ("cli:<user>").
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/limits.h"
#include "store/migset.h"
#include "store/store.h"

#define MIGRATE_DEFAULT_DIR "./migrations"
#define MIGRATE_ERR_BYTES_MAX ((size_t)64 * 1024)
/* The schema text of a database: a few KiB for ledgerd's; bounded all the same. */
#define MIGRATE_SCHEMA_BYTES_MAX ((size_t)16 * 1024 * 1024)

static const char *const migrate_backends[] = {"sqlite", "postgres"};

struct migrate_args {
    const char *cmd;
    const char *name; /* new NAME */
    uint32_t to;
    bool allow_destructive;
};

static void migrate_usage(FILE *out)
{
    fputs("usage: ledgerd migrate COMMAND\n"
          "  status                       applied, pending and drifted migrations (exit 1 on "
          "drift)\n"
          "  plan [--to N] [--allow-destructive]\n"
          "                               the dry run: print every statement `up` would run\n"
          "                               and its lint findings; change nothing (exit 1 when\n"
          "                               `up` would refuse)\n"
          "  up [--to N] [--allow-destructive]\n"
          "                               apply the pending migrations, each in its own\n"
          "                               transaction; annotated destructive statements need\n"
          "                               --allow-destructive\n"
          "  new NAME                     create the next migration (NNNN_NAME.sql) for every\n"
          "                               backend and update ledgerd.sum\n"
          "  snapshot                     write the schema the migrations produce to\n"
          "                               <backend>/schema.sql\n"
          "  verify                       integrity, lint, applied checksums, and a fresh apply\n"
          "                               equal to schema.sql (exit 1 on any failure)\n"
          "  lint                         the destructive-change lint of every migration file\n"
          "  hash                         rewrite ledgerd.sum after a reviewed change\n"
          "The database is LEDGERD_DB; the files are in LEDGERD_MIGRATIONS_DIR/<backend>/\n"
          "(unset: ./migrations when it has them, else the copy built into this binary).\n",
          out);
}

static int migrate_parse_to(const char *s, uint32_t *out)
{
    size_t len = strlen(s);
    if (len == 0 || len > 4 || strspn(s, "0123456789") != len) {
        return -EINVAL;
    }
    unsigned long v = strtoul(s, NULL, 10);
    if (v == 0 || v > LIMIT_MIGRATION_FILES_MAX) {
        return -EINVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Returns 0, or CLI_EXIT_USAGE after printing why. */
static int migrate_parse(int argc, char **argv, struct migrate_args *a)
{
    memset(a, 0, sizeof(*a));
    if (argc < 1) {
        migrate_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    a->cmd = argv[0];
    bool takes_to = strcmp(a->cmd, "plan") == 0 || strcmp(a->cmd, "up") == 0;
    for (int i = 1; i < argc; i++) {
        if (takes_to && strcmp(argv[i], "--to") == 0 && i + 1 < argc) {
            if (migrate_parse_to(argv[++i], &a->to) != 0) {
                fprintf(stderr, "ledgerd: --to takes a migration number from 1 to %d\n",
                        LIMIT_MIGRATION_FILES_MAX);
                return CLI_EXIT_USAGE;
            }
        } else if (takes_to && strcmp(argv[i], "--allow-destructive") == 0) {
            a->allow_destructive = true;
        } else if (strcmp(a->cmd, "new") == 0 && a->name == NULL && argv[i][0] != '-') {
            a->name = argv[i];
        } else {
            fprintf(stderr, "ledgerd: migrate %s: unexpected argument \"%s\"\n", a->cmd, argv[i]);
            migrate_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (strcmp(a->cmd, "new") == 0 && a->name == NULL) {
        fputs("ledgerd: migrate new needs a NAME ([a-z0-9_], at most 64)\n", stderr);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

static bool migrate_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The migrations root: LEDGERD_MIGRATIONS_DIR, else ./migrations. */
static const char *migrate_root(const struct config *cfg)
{
    return cfg->migrations_dir[0] != '\0' ? cfg->migrations_dir : MIGRATE_DEFAULT_DIR;
}

/* The set for backend: the directory, or the built-in copy when LEDGERD_MIGRATIONS_DIR is unset
 * and ./migrations/<backend> does not exist. need_dir: a command that writes files. */
static int migrate_load(const struct config *cfg, const char *backend, bool need_dir,
                        struct migset *set, struct buf *err)
{
    const char *root = migrate_root(cfg);
    char dir[8192];
    snprintf(dir, sizeof(dir), "%s/%s", root, backend);
    if (cfg->migrations_dir[0] == '\0' && !migrate_is_dir(dir)) {
        if (need_dir) {
            (void)buf_appendf(err,
                              "%s does not exist: run this in the source tree or set "
                              "LEDGERD_MIGRATIONS_DIR",
                              dir);
            return -ENOENT;
        }
        return migset_load_builtin(backend, set, err);
    }
    return migset_load_dir(root, backend, MIGSET_CHECK_SUM, set, err);
}

static void migrate_fail(const char *what, const struct buf *err)
{
    fprintf(stderr, "ledgerd: %s: %s\n", what, err->data != NULL ? err->data : "out of memory");
}

/* ---- Findings ---- */

/* Prints one file's findings and problems, each on a line starting with prefix. Returns the
 * count of what fails the lint (problems and findings without an annotation). */
static size_t migrate_print_lint(FILE *out, const char *prefix, const struct migset_file *f)
{
    const struct miglint_report *l = &f->lint;
    size_t failing = 0;
    for (size_t i = 0; i < l->nproblems; i++) {
        fprintf(out, "%s%s:%u: error: %s\n", prefix, f->file, l->problems[i].line,
                l->problems[i].message);
        failing++;
    }
    for (size_t i = 0; i < l->nfindings; i++) {
        const struct miglint_finding *d = &l->findings[i];
        const char *reason = "";
        for (size_t k = 0; k < l->nannotations; k++) {
            if (l->annotations[k].rule == d->rule) {
                reason = l->annotations[k].reason;
            }
        }
        if (d->allowed) {
            fprintf(out, "%s%s:%u: destructive: %s on %s (annotated: %s)\n", prefix, f->file,
                    d->line, miglint_rule_name(d->rule), d->target, reason);
        } else {
            fprintf(out, "%s%s:%u: error: %s on %s: %s\n", prefix, f->file, d->line,
                    miglint_rule_name(d->rule), d->target, miglint_rule_why(d->rule));
            failing++;
        }
    }
    return failing;
}

/* ---- status ---- */

static void migrate_print_row(const struct store_migration_row *r, const char *file)
{
    char when[40] = "?";
    if (r->applied_at_ms > 0) {
        (void)clock_format_rfc3339_ms(r->applied_at_ms, when);
    }
    printf("%s applied %s", file, when);
    if (r->duration_ms >= 0) {
        printf(" in %" PRId64 " ms", r->duration_ms);
    }
    printf(" by %s\n", r->applied_by[0] != '\0' ? r->applied_by : "(not recorded)");
}

static int migrate_status(struct store *store, const struct migset *set)
{
    struct store_migration_row *rows = NULL;
    size_t n = 0;
    if (store_migration_rows(store, &rows, &n) != 0) {
        fputs("ledgerd: cannot read schema_migrations\n", stderr);
        return CLI_EXIT_FAILURE;
    }
    struct store_migration_status ms;
    store_migration_compare(set, rows, n, &ms); /* the rows printed below, read once */
    for (size_t v = 1; v <= set->n; v++) {
        const struct store_migration_row *r = NULL;
        for (size_t i = 0; i < n; i++) {
            r = rows[i].version == v ? &rows[i] : r;
        }
        if (r != NULL) {
            migrate_print_row(r, set->files[v - 1].file);
        } else {
            printf("%s pending\n", set->files[v - 1].file);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (rows[i].version > set->n) {
            char file[LIMIT_MIGRATION_FILE_NAME_LEN_MAX + 64];
            snprintf(file, sizeof(file), "%04" PRIu32 "_%s.sql (newer than these files)",
                     rows[i].version, rows[i].name);
            migrate_print_row(&rows[i], file);
        }
    }
    free(rows);
    printf("migrations: %u available, %u applied, %u pending", ms.available, ms.applied,
           ms.pending);
    if (ms.ahead > 0) {
        printf(", %u applied by a newer release", ms.ahead);
    }
    putchar('\n');
    if (ms.drift) {
        fprintf(stderr, "ledgerd: migration drift: %s\n", ms.detail);
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}

/* ---- plan ---- */

/* Rows counted, at most, for a finding's table in the plan: enough to tell an empty table from
 * a populated one, bounded on a huge one. */
#define MIGRATE_PLAN_ROWS_CAP 1000000

/* One finding of the plan, with how many rows its table holds now: a unique index or a NOT
 * NULL column is harmless on an empty table and a long lock (or a failure) on a full one. */
static void migrate_plan_finding(struct store *store, const struct miglint_finding *d,
                                 unsigned line)
{
    printf("-- line %u: %s %s", line, miglint_rule_name(d->rule),
           d->allowed ? "(annotated)" : "(NOT ANNOTATED)");
    uint64_t rows = 0;
    int rc = d->rule == MIGLINT_DROP_INDEX
                 ? -EINVAL
                 : store_table_rows(store, d->target, MIGRATE_PLAN_ROWS_CAP, &rows);
    if (rc == 0 && rows > MIGRATE_PLAN_ROWS_CAP) {
        printf(" on %s: more than %d rows", d->target, MIGRATE_PLAN_ROWS_CAP);
    } else if (rc == 0) {
        printf(" on %s: %" PRIu64 " rows", d->target, rows);
    } else if (rc == -ENOENT) {
        printf(" on %s: not in the database yet", d->target);
    } else {
        printf(" on %s", d->target);
    }
    putchar('\n');
}

static int migrate_plan(struct store *store, const struct migset *set, const struct migrate_args *a)
{
    struct store_migration_row *rows = NULL;
    size_t n = 0;
    if (store_migration_rows(store, &rows, &n) != 0) {
        fputs("ledgerd: cannot read schema_migrations\n", stderr);
        return CLI_EXIT_FAILURE;
    }
    uint32_t to = a->to != 0 && a->to < set->n ? a->to : (uint32_t)set->n;
    size_t files = 0;
    size_t statements = 0;
    size_t destructive = 0;
    for (uint32_t v = 1; v <= to; v++) {
        bool applied = false;
        for (size_t i = 0; i < n; i++) {
            applied = applied || rows[i].version == v;
        }
        if (applied) {
            continue;
        }
        const struct migset_file *f = &set->files[v - 1];
        const struct miglint_report *l = &f->lint;
        files++;
        printf("-- %s (%s, sha256 %.12s)\n", f->file,
               l->no_transaction ? "outside a transaction" : "in one transaction", f->checksum);
        (void)migrate_print_lint(stdout, "-- ! ", f);
        for (size_t i = 0; i < l->nstmts; i++) {
            const struct sql_stmt *st = &l->stmts[i];
            for (size_t k = 0; k < l->nfindings; k++) {
                if (l->findings[k].stmt == i) {
                    migrate_plan_finding(store, &l->findings[k], st->line);
                    destructive++;
                }
            }
            printf("%.*s;\n", (int)st->len, f->sql + st->offset);
            statements++;
        }
        putchar('\n');
    }
    free(rows);
    struct buf err;
    buf_init(&err, MIGRATE_ERR_BYTES_MAX);
    char actor[LIMIT_AUDIT_ACTOR_LEN_MAX + 1];
    cli_audit_actor(actor, sizeof(actor));
    struct store_migrate_options o = {
        .actor = actor, .to = a->to, .allow_destructive = a->allow_destructive, .dry_run = true};
    int rc = store_migrate(store, set, &o, &err);
    if (rc != 0) {
        printf("plan: `up` would refuse: %s\n", err.data != NULL ? err.data : "");
    } else if (files == 0) {
        puts("plan: nothing to apply; the database is up to date");
    } else {
        printf("plan: `up%s` would apply %zu migration(s), %zu statement(s), %zu destructive\n",
               a->allow_destructive ? " --allow-destructive" : "", files, statements, destructive);
    }
    buf_release(&err);
    return rc != 0 ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

/* ---- up ---- */

static void migrate_applied(void *ctx, const struct migset_file *f, int64_t duration_ms)
{
    size_t *applied = ctx;
    (*applied)++;
    printf("applied %s in %" PRId64 " ms\n", f->file, duration_ms);
    fflush(stdout);
}

static int migrate_up(struct store *store, const struct migset *set, const struct migrate_args *a,
                      const struct config *cfg)
{
    size_t applied = 0;
    struct buf err;
    buf_init(&err, MIGRATE_ERR_BYTES_MAX);
    char actor[LIMIT_AUDIT_ACTOR_LEN_MAX + 1];
    cli_audit_actor(actor, sizeof(actor));
    struct store_migrate_options o = {.actor = actor,
                                      .to = a->to,
                                      .allow_destructive = a->allow_destructive,
                                      .applied = migrate_applied,
                                      .ctx = &applied};
    int rc = store_migrate(store, set, &o, &err);
    if (rc != 0) {
        migrate_fail("migration refused or failed", &err);
        buf_release(&err);
        return CLI_EXIT_FAILURE;
    }
    buf_release(&err);
    if (applied > 0) {
        (void)cli_audit_checkpoint(store, cfg, false, stderr);
    }
    if (a->to != 0 && a->to < set->n) {
        printf("database is at %04" PRIu32 " of %zu migrations\n", a->to, set->n);
    } else {
        printf("database is up to date (%zu migrations)\n", set->n);
    }
    return CLI_EXIT_OK;
}

/* ---- snapshot and verify ---- */

/* The snapshot file's text for schema. */
static int migrate_snapshot_text(const char *backend, const struct buf *schema, struct buf *out)
{
    int rc = buf_appendf(out,
                         "-- The schema the migrations in this directory produce (%s), written "
                         "by\n-- `ledgerd migrate snapshot`. Do not edit: `ledgerd migrate "
                         "verify` compares it with a fresh\n-- apply of the migrations.\n\n",
                         backend);
    if (rc == 0 && schema->len > 0) {
        rc = buf_append(out, schema->data, schema->len);
    }
    return rc;
}

static int migrate_fresh_schema(const struct config *cfg, const struct migset *set,
                                struct buf *schema, struct buf *err)
{
    struct store_options opts;
    char password[CLI_DB_PASSWORD_BYTES_MAX + 1];
    int rc = cli_store_options(cfg, &opts, password, err);
    if (rc == 0) {
        rc = store_schema_of_fresh(cfg->db_url, &opts, set, schema, err);
    }
    explicit_bzero(password, sizeof(password));
    return rc;
}

static int migrate_write_file(const char *path, const struct buf *text, struct buf *err)
{
    char tmp[8400];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        (void)buf_appendf(err, "cannot create %s: %s", tmp, strerror(errno));
        return -errno;
    }
    size_t off = 0;
    while (off < text->len) {
        ssize_t w = write(fd, text->data + off, text->len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            (void)buf_appendf(err, "cannot write %s: %s", tmp, strerror(errno));
            close(fd);
            (void)unlink(tmp);
            return -EIO;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        (void)buf_appendf(err, "cannot write %s: %s", path, strerror(errno));
        (void)unlink(tmp);
        return -EIO;
    }
    return 0;
}

static int migrate_snapshot(const struct config *cfg, const struct migset *set)
{
    struct buf schema;
    struct buf text;
    struct buf err;
    buf_init(&schema, MIGRATE_SCHEMA_BYTES_MAX);
    buf_init(&text, MIGRATE_SCHEMA_BYTES_MAX + 4096);
    buf_init(&err, MIGRATE_ERR_BYTES_MAX);
    char path[8300];
    snprintf(path, sizeof(path), "%s/%s/%s", migrate_root(cfg), set->backend, MIGSET_SNAPSHOT_FILE);
    int status = CLI_EXIT_FAILURE;
    if (migrate_fresh_schema(cfg, set, &schema, &err) != 0) {
        migrate_fail("cannot apply the migrations to a fresh database", &err);
    } else if (migrate_snapshot_text(set->backend, &schema, &text) != 0 ||
               migrate_write_file(path, &text, &err) != 0) {
        migrate_fail("cannot write the snapshot", &err);
    } else {
        printf("wrote %s (%zu migrations, %zu bytes)\n", path, set->n, text.len);
        status = CLI_EXIT_OK;
    }
    buf_release(&schema);
    buf_release(&text);
    buf_release(&err);
    return status;
}

/* Reads path into out, line ends normalised (a checkout may have CRLF). */
static int migrate_read_text(const char *path, struct buf *out, struct buf *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        (void)buf_appendf(err, "%s: %s", path, strerror(errno));
        return -ENOENT;
    }
    char chunk[8192];
    size_t got;
    int rc = 0;
    while (rc == 0 && (got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rc = buf_append(out, chunk, got);
    }
    fclose(f);
    if (rc != 0) {
        (void)buf_appendf(err, "%s is too large", path);
        return rc;
    }
    char *norm = NULL;
    size_t len = 0;
    rc = migset_normalize(out->data != NULL ? out->data : "", out->len, &norm, &len);
    if (rc != 0) {
        return rc;
    }
    buf_reset(out);
    rc = buf_append(out, norm, len);
    free(norm);
    return rc;
}

/* Prints the first line where want and got differ, with its number. */
static void migrate_print_diff(const char *path, const struct buf *want, const struct buf *got)
{
    const char *a = want->data != NULL ? want->data : "";
    const char *b = got->data != NULL ? got->data : "";
    unsigned line = 1;
    size_t start = 0;
    size_t i = 0;
    while (i < want->len && i < got->len && a[i] == b[i]) {
        if (a[i] == '\n') {
            line++;
            start = i + 1;
        }
        i++;
    }
    const char *ea = memchr(a + start, '\n', want->len - start);
    const char *eb = memchr(b + start, '\n', got->len - start);
    int la = (int)(ea != NULL ? (size_t)(ea - a) - start : want->len - start);
    int lb = (int)(eb != NULL ? (size_t)(eb - b) - start : got->len - start);
    fprintf(stderr, "  %s line %u:\n  - %.*s\n  + %.*s\n", path, line, la > 200 ? 200 : la,
            a + start, lb > 200 ? 200 : lb, b + start);
}

static int migrate_verify(struct store *store, const struct config *cfg, const struct migset *set)
{
    int failures = 0;
    printf("verify: integrity ok (%s, %zu files, dir sha256 %.12s)\n", set->origin, set->n,
           set->dir_hash);

    size_t failing = 0;
    size_t annotated = 0;
    for (size_t i = 0; i < set->n; i++) {
        failing += migrate_print_lint(stderr, "  ", &set->files[i]);
        annotated += set->files[i].lint.nfindings - miglint_unallowed(&set->files[i].lint);
    }
    if (failing > 0) {
        fprintf(stderr, "verify: lint FAILED (%zu errors)\n", failing);
        failures++;
    } else {
        printf("verify: lint ok (%zu annotated destructive statements)\n", annotated);
    }

    struct store_migration_status ms;
    if (store_migration_status_of(store, set, &ms) != 0) {
        fputs("verify: database FAILED: cannot read schema_migrations\n", stderr);
        failures++;
    } else if (ms.drift) {
        fprintf(stderr, "verify: database FAILED: %s\n", ms.detail);
        failures++;
    } else {
        printf("verify: database ok (%u applied, %u pending, checksums match)\n", ms.applied,
               ms.pending);
    }

    struct buf schema;
    struct buf fresh;
    struct buf committed;
    struct buf err;
    buf_init(&schema, MIGRATE_SCHEMA_BYTES_MAX);
    buf_init(&fresh, MIGRATE_SCHEMA_BYTES_MAX + 4096);
    buf_init(&committed, MIGRATE_SCHEMA_BYTES_MAX + 4096);
    buf_init(&err, MIGRATE_ERR_BYTES_MAX);
    char path[8300];
    if (strcmp(set->origin, "built-in") == 0) {
        snprintf(path, sizeof(path), "(built-in: no schema.sql)");
    } else {
        snprintf(path, sizeof(path), "%s/%s", set->origin, MIGSET_SNAPSHOT_FILE);
    }
    if (failing > 0) {
        fputs("verify: snapshot not checked (the lint failed)\n", stderr);
    } else if (migrate_fresh_schema(cfg, set, &schema, &err) != 0) {
        fprintf(stderr, "verify: snapshot FAILED: a fresh apply failed: %s\n",
                err.data != NULL ? err.data : "");
        failures++;
    } else if (migrate_snapshot_text(set->backend, &schema, &fresh) != 0 ||
               migrate_read_text(path, &committed, &err) != 0) {
        fprintf(stderr, "verify: snapshot FAILED: %s (write it with `ledgerd migrate snapshot`)\n",
                err.data != NULL ? err.data : "");
        failures++;
    } else if (committed.len != fresh.len || memcmp(committed.data, fresh.data, fresh.len) != 0) {
        fprintf(stderr,
                "verify: snapshot FAILED: %s differs from the schema a fresh apply produces "
                "(run `ledgerd migrate snapshot` and review the difference)\n",
                path);
        migrate_print_diff(path, &committed, &fresh);
        failures++;
    } else {
        printf("verify: snapshot ok (%s equals a fresh apply)\n", path);
    }
    buf_release(&schema);
    buf_release(&fresh);
    buf_release(&committed);
    buf_release(&err);
    return failures > 0 ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

/* ---- Commands without a database: lint, hash, new ---- */

/* What lint and hash add up over the backend directories. */
struct migrate_tally {
    size_t files;
    size_t failing;
    size_t annotated;
};

/* One backend directory: 0, or CLI_EXIT_FAILURE after printing why. */
typedef int (*migrate_dir_fn)(const char *root, const char *backend, const char *dir,
                              struct migrate_tally *t, struct buf *err);

/* Runs fn on every backend directory under the root (each one even after a failure), then says
 * so when there was none. Returns CLI_EXIT_OK or CLI_EXIT_FAILURE. */
static int migrate_each_dir(const struct config *cfg, migrate_dir_fn fn, struct migrate_tally *t)
{
    const char *root = migrate_root(cfg);
    size_t dirs = 0;
    int status = CLI_EXIT_OK;
    for (size_t b = 0; b < sizeof(migrate_backends) / sizeof(migrate_backends[0]); b++) {
        char dir[8192];
        snprintf(dir, sizeof(dir), "%s/%s", root, migrate_backends[b]);
        if (!migrate_is_dir(dir)) {
            continue;
        }
        dirs++;
        struct buf err;
        buf_init(&err, MIGRATE_ERR_BYTES_MAX);
        if (fn(root, migrate_backends[b], dir, t, &err) != 0) {
            fprintf(stderr, "%s: error: %s\n", dir, err.data != NULL ? err.data : "out of memory");
            status = CLI_EXIT_FAILURE;
        }
        buf_release(&err);
    }
    if (dirs == 0) {
        fprintf(stderr, "ledgerd: no migrations in %s (set LEDGERD_MIGRATIONS_DIR)\n", root);
        return CLI_EXIT_FAILURE;
    }
    return status;
}

static int migrate_lint_dir(const char *root, const char *backend, const char *dir,
                            struct migrate_tally *t, struct buf *err)
{
    struct migset set;
    int rc = migset_load_dir(root, backend, MIGSET_CHECK_SUM, &set, err);
    if (rc != 0) {
        return rc;
    }
    char prefix[8200];
    snprintf(prefix, sizeof(prefix), "%s/", dir);
    for (size_t i = 0; i < set.n; i++) {
        t->failing += migrate_print_lint(stdout, prefix, &set.files[i]);
        t->annotated += set.files[i].lint.nfindings - miglint_unallowed(&set.files[i].lint);
    }
    t->files += set.n;
    migset_free(&set);
    return 0;
}

static int migrate_lint(const struct config *cfg)
{
    struct migrate_tally t = {0, 0, 0};
    int status = migrate_each_dir(cfg, migrate_lint_dir, &t);
    printf("lint: %zu files, %zu errors, %zu annotated destructive statements\n", t.files,
           t.failing, t.annotated);
    return t.failing > 0 ? CLI_EXIT_FAILURE : status;
}

static int migrate_hash_dir(const char *root, const char *backend, const char *dir,
                            struct migrate_tally *t, struct buf *err)
{
    (void)t;
    int rc = migset_sum_write(root, backend, err);
    if (rc == 0) {
        printf("wrote %s/%s\n", dir, MIGSET_SUM_FILE);
    }
    return rc;
}

static int migrate_hash(const struct config *cfg)
{
    struct migrate_tally t = {0, 0, 0};
    return migrate_each_dir(cfg, migrate_hash_dir, &t);
}

static int migrate_new(const struct config *cfg, const char *name)
{
    char author[LIMIT_AUDIT_ACTOR_LEN_MAX + 1];
    cli_audit_actor(author, sizeof(author));
    const char *who = strncmp(author, "cli:", 4) == 0 ? author + 4 : author;
    struct buf created;
    struct buf err;
    buf_init(&created, (size_t)64 * 1024);
    buf_init(&err, MIGRATE_ERR_BYTES_MAX);
    int status = CLI_EXIT_OK;
    if (migset_new(migrate_root(cfg), name, who, clock_unix_ms(), &created, &err) != 0) {
        migrate_fail("cannot create the migration", &err);
        status = CLI_EXIT_FAILURE;
    } else {
        printf("%s", created.data != NULL ? created.data : "");
        puts("Write the migration under its header, review it, then run `ledgerd migrate hash`,\n"
             "`ledgerd migrate lint` and `ledgerd migrate snapshot`.");
    }
    buf_release(&created);
    buf_release(&err);
    return status;
}

int cli_migrate(int argc, char **argv, const struct config *cfg)
{
    struct migrate_args a;
    int rc = migrate_parse(argc, argv, &a);
    if (rc != 0) {
        return rc;
    }
    static const char *const db_cmds[] = {"status", "plan", "up", "snapshot", "verify"};
    bool db_cmd = false;
    for (size_t i = 0; i < sizeof(db_cmds) / sizeof(db_cmds[0]); i++) {
        db_cmd = db_cmd || strcmp(a.cmd, db_cmds[i]) == 0;
    }
    if (!db_cmd) {
        if (strcmp(a.cmd, "lint") == 0) {
            return migrate_lint(cfg);
        }
        if (strcmp(a.cmd, "hash") == 0) {
            return migrate_hash(cfg);
        }
        if (strcmp(a.cmd, "new") == 0) {
            return migrate_new(cfg, a.name);
        }
        bool help = strcmp(a.cmd, "--help") == 0 || strcmp(a.cmd, "help") == 0;
        if (!help) {
            fprintf(stderr, "ledgerd: migrate: unknown command \"%s\"\n", a.cmd);
        }
        migrate_usage(help ? stdout : stderr);
        return help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }

    int status = CLI_EXIT_FAILURE;
    struct buf err;
    buf_init(&err, MIGRATE_ERR_BYTES_MAX);
    struct store *store = NULL;
    struct migset set;
    memset(&set, 0, sizeof(set));
    bool snapshot = strcmp(a.cmd, "snapshot") == 0;
    /* The backend comes from the URL; snapshot needs no database of its own. */
    const char *backend = strncmp(cfg->db_url, "sqlite://", 9) == 0 ? "sqlite" : "postgres";
    if (migrate_load(cfg, backend, snapshot, &set, &err) != 0) {
        migrate_fail("the migration files are not intact", &err);
        goto out;
    }
    printf("migrations: %s (%zu files)\n", set.origin, set.n);
    if (snapshot) {
        status = migrate_snapshot(cfg, &set);
        goto out_set;
    }
    if (cli_store_connect(cfg, &store, &err) != 0) {
        fprintf(stderr, "ledgerd: cannot open the database: %s\n", err.data ? err.data : "");
        goto out_set;
    }
    if (strcmp(a.cmd, "status") == 0) {
        status = migrate_status(store, &set);
    } else if (strcmp(a.cmd, "plan") == 0) {
        status = migrate_plan(store, &set, &a);
    } else if (strcmp(a.cmd, "up") == 0) {
        status = migrate_up(store, &set, &a, cfg);
    } else {
        status = migrate_verify(store, cfg, &set);
    }
    store_close(store);
out_set:
    migset_free(&set);
out:
    buf_release(&err);
    return status;
}
