/*
 * config_cmd.c — `ledgerd config print`: the effective configuration, secrets masked.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cli_config(int argc, char **argv, const struct config *cfg)
{
    if (argc == 1 && strcmp(argv[0], "print") == 0) {
        config_print(cfg, stdout);
        return CLI_EXIT_OK;
    }
    if (argc == 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "help") == 0)) {
        puts("usage: ledgerd config print\n\nSettings:");
        config_print_help(stdout);
        return CLI_EXIT_OK;
    }
    fputs("usage: ledgerd config print\n", stderr);
    return CLI_EXIT_USAGE;
}
