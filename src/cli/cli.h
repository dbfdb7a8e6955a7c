/*
 * cli.h — ledgerd's subcommands. Each takes the arguments after its name and returns the
 * process exit status: 0 success, 1 failure at run time, 2 usage or configuration error.
 */
#ifndef LEDGERD_CLI_CLI_H
#define LEDGERD_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "audit/audit.h"
#include "core/config.h"
#include "store/store.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE 2

int cli_serve(int argc, char **argv, const struct config *cfg);
int cli_migrate(int argc, char **argv, const struct config *cfg);
int cli_config(int argc, char **argv, const struct config *cfg);
/* `ledgerd apikey create|list|revoke` (apikey.c). */
int cli_apikey(int argc, char **argv, const struct config *cfg);
/* `ledgerd audit verify|export|checkpoint` (audit.c). */
int cli_audit(int argc, char **argv, const struct config *cfg);

/* Opens the database of cfg with its connection settings (dbopen.c): the pool, the timeouts,
 * the password read from LEDGERD_DB_PASSWORD_FILE. Returns 0 or a negative code with the
 * reason in err, as store_open_with. */
int cli_store_connect(const struct config *cfg, struct store **out, struct buf *err);
/* A password: libpq takes at most a line of text, and so does ledgerd. */
#define CLI_DB_PASSWORD_BYTES_MAX 1024
/* The store options of cfg, the password read into password (wipe it after use). Returns 0 or
 * a negative code with the reason in err. */
int cli_store_options(const struct config *cfg, struct store_options *opts,
                      char password[CLI_DB_PASSWORD_BYTES_MAX + 1], struct buf *err);

/* ---- Shared by the commands that read or write the audit trail (audit.c) ---- */

/* Sends the store's log lines to stderr (stdout carries the commands' output), then opens the
 * database of cfg and checks that its schema is current: the API key and audit tables come
 * with the migrations. On failure prints why on stderr and returns CLI_EXIT_FAILURE; else 0
 * with *out to be closed by the caller. */
int cli_store_open(const struct config *cfg, struct store **out);

/* The command line's actor in audit records: "cli:<login name of the effective user>", or
 * "cli:uid:<n>" when the user has no name in the password database. */
void cli_audit_actor(char *out, size_t len);

/* Fills r (zeroed first) for an action of the command line taken now: cli_audit_actor, action,
 * resource, decision "success" and reason (may be ""). Returns 0, or -EINVAL /
 * -ENAMETOOLONG when a value breaks the audit record's rules (audit_record_set). */
int cli_audit_record(struct audit_record *r, const char *action, const char *resource,
                     const char *reason);

/* With LEDGERD_AUDIT_SIGNING_KEY_FILE set: when a checkpoint is due by
 * LEDGERD_AUDIT_CHECKPOINT_RECORDS / _INTERVAL_SECONDS (force: whenever the last record is not
 * covered yet), signs the last record and stores the checkpoint, printing it on out (a
 * checkpoint must also leave the host: docs/security/audit.md). Returns 0 when one was written,
 * 1 when none was needed (or no key is configured), or -errno with the reason on stderr. */
int cli_audit_checkpoint(struct store *s, const struct config *cfg, bool force, FILE *out);

#endif
