/*
 * migrate.c — `ledgerd migrate up|status`: apply or report the schema migrations compiled into
 * this binary. Once the audit trail exists, each migration applied is an audit record whose
 * actor is the user who ran the command ("cli:<user>").
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/limits.h"
#include "store/migrations.h"
#include "store/store.h"

static void migrate_applied(void *ctx, uint32_t version, const char *name)
{
    (void)ctx;
    printf("applied %04u_%s\n", version, name);
}

static void migrate_usage(FILE *out)
{
    fputs("usage: ledgerd migrate up|status\n"
          "  up      apply every pending migration, each in its own transaction\n"
          "  status  list applied and pending migrations; exit 1 on drift\n"
          "The database is LEDGERD_DB.\n",
          out);
}

int cli_migrate(int argc, char **argv, const struct config *cfg)
{
    if (argc != 1) {
        migrate_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    bool up = strcmp(argv[0], "up") == 0;
    if (!up && strcmp(argv[0], "status") != 0) {
        bool help = strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "help") == 0;
        migrate_usage(help ? stdout : stderr);
        return help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    int status = CLI_EXIT_FAILURE;
    struct buf err;
    buf_init(&err, 4096);
    struct store *store = NULL;
    if (cli_store_connect(cfg, &store, &err) != 0) {
        fprintf(stderr, "ledgerd: cannot open the database: %s\n", err.data ? err.data : "");
        goto out_release;
    }
    struct store_migration_status ms;
    if (store_migration_status(store, &ms) != 0) {
        fprintf(stderr, "ledgerd: cannot read the migration state\n");
        goto out_close;
    }
    if (ms.drift) {
        fprintf(stderr, "ledgerd: migration drift: %s\n", ms.detail);
        goto out_close;
    }
    if (!up) {
        /* Without drift the applied migrations are exactly the first ms.applied ones. */
        for (size_t i = 0; i < store_migrations_sqlite_count; i++) {
            const struct store_migration *m = &store_migrations_sqlite[i];
            printf("%04u_%s %s\n", m->version, m->name, i < ms.applied ? "applied" : "pending");
        }
        printf("migrations: %u available, %u applied, %u pending\n", ms.available, ms.applied,
               ms.pending);
        status = CLI_EXIT_OK;
        goto out_close;
    }
    char actor[LIMIT_AUDIT_ACTOR_LEN_MAX + 1];
    cli_audit_actor(actor, sizeof(actor));
    if (store_migrate_up_as(store, actor, migrate_applied, NULL, &err) != 0) {
        fprintf(stderr, "ledgerd: migration failed: %s\n", err.data ? err.data : "");
        goto out_close;
    }
    if (ms.pending > 0) {
        (void)cli_audit_checkpoint(store, cfg, false, stderr);
    }
    printf("database is up to date (%u migrations)\n", ms.available);
    status = CLI_EXIT_OK;
out_close:
    store_close(store);
out_release:
    buf_release(&err);
    return status;
}
