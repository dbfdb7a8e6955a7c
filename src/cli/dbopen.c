/*
 * dbopen.c — opening the database of a configuration: the URL and the connection settings
 * (pool sizes, timeouts, the password from its file), the same for every subcommand.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "cli/cli.h"
#include "core/assert.h"

int cli_store_options(const struct config *cfg, struct store_options *opts,
                      char password[CLI_DB_PASSWORD_BYTES_MAX + 1], struct buf *err)
{
    ASSERT(cfg != NULL && opts != NULL && password != NULL && err != NULL);
    memset(opts, 0, sizeof(*opts));
    opts->pool_size = cfg->db_pool_size;
    opts->writers = cfg->db_writers;
    opts->acquire_timeout_ms = cfg->db_acquire_timeout_ms;
    opts->conn_max_lifetime_seconds = cfg->db_conn_max_lifetime_seconds;
    opts->statement_timeout_ms = cfg->db_statement_timeout_ms;
    password[0] = '\0';
    if (cfg->db_password_file[0] == '\0') {
        return 0;
    }
    size_t len = 0;
    size_t mark = err->len;
    (void)buf_append_str(err, "LEDGERD_DB_PASSWORD_FILE: ");
    int rc = config_read_secret_file(cfg->db_password_file, (uint8_t *)password,
                                     CLI_DB_PASSWORD_BYTES_MAX, &len, err);
    if (rc != 0) {
        return rc;
    }
    err->len = mark; /* no error after all */
    if (err->data != NULL) {
        err->data[mark] = '\0';
    }
    password[len] = '\0';
    if (strlen(password) != len) {
        explicit_bzero(password, CLI_DB_PASSWORD_BYTES_MAX + 1);
        (void)buf_append_str(err, "LEDGERD_DB_PASSWORD_FILE: the password holds a NUL byte");
        return -EINVAL;
    }
    opts->password = password;
    return 0;
}

int cli_store_connect(const struct config *cfg, struct store **out, struct buf *err)
{
    ASSERT(cfg != NULL && out != NULL && err != NULL);
    *out = NULL;
    struct store_options opts;
    char password[CLI_DB_PASSWORD_BYTES_MAX + 1];
    int rc = cli_store_options(cfg, &opts, password, err);
    if (rc == 0) {
        rc = store_open_with(cfg->db_url, &opts, out, err);
    }
    explicit_bzero(password, sizeof(password));
    return rc;
}
