/*
 * main.c — the ledgerd command: loads the configuration from the environment once, then runs
 * the subcommand (serve, migrate, config, apikey, audit, version).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/config.h"

extern char **environ;

static const char *main_getenv(const char *name)
{
    return getenv(name);
}

static void main_usage(FILE *out)
{
    fputs("usage: ledgerd <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve [--migrate]     run the HTTP API (--migrate applies pending migrations first)\n"
          "  migrate COMMAND       status|plan|up|new|snapshot|verify|lint|hash: the schema\n"
          "                        migrations (`ledgerd migrate help`)\n"
          "  config print          show the effective configuration\n"
          "  apikey create|list|revoke  issue, list or revoke API keys\n"
          "  audit verify|export|checkpoint  check, export or sign the audit trail\n"
          "  version               print the version\n"
          "\n"
          "Configuration comes from LEDGERD_* environment variables: see `ledgerd serve --help`.\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        main_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        main_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("ledgerd %s (%s)\n", LEDGERD_VERSION, LEDGERD_COMMIT);
        return CLI_EXIT_OK;
    }

    static struct config cfg;
    struct buf err;
    buf_init(&err, 16384);
    if (config_load(&cfg, main_getenv, &err) != 0) {
        fprintf(stderr, "ledgerd: invalid configuration:\n%s", err.data != NULL ? err.data : "");
        buf_release(&err);
        return CLI_EXIT_USAGE;
    }
    buf_reset(&err);
    if (config_unknown_vars(environ, &err) > 0) {
        fprintf(stderr, "ledgerd: warning: unknown settings ignored:\n%s", err.data);
    }
    buf_release(&err);

    if (strcmp(cmd, "serve") == 0) {
        return cli_serve(argc - 2, argv + 2, &cfg);
    }
    if (strcmp(cmd, "migrate") == 0) {
        return cli_migrate(argc - 2, argv + 2, &cfg);
    }
    if (strcmp(cmd, "config") == 0) {
        return cli_config(argc - 2, argv + 2, &cfg);
    }
    if (strcmp(cmd, "apikey") == 0) {
        return cli_apikey(argc - 2, argv + 2, &cfg);
    }
    if (strcmp(cmd, "audit") == 0) {
        return cli_audit(argc - 2, argv + 2, &cfg);
    }
    fprintf(stderr, "ledgerd: unknown command '%s'\n\n", cmd);
    main_usage(stderr);
    return CLI_EXIT_USAGE;
}
