/*
 * cli.h — ledgerd's subcommands. Each takes the arguments after its name and returns the
 * process exit status: 0 success, 1 failure at run time, 2 usage or configuration error.
 */
#ifndef LEDGERD_CLI_CLI_H
#define LEDGERD_CLI_CLI_H

#include "core/config.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE 2

int cli_serve(int argc, char **argv, const struct config *cfg);
int cli_migrate(int argc, char **argv, const struct config *cfg);
int cli_config(int argc, char **argv, const struct config *cfg);

#endif
