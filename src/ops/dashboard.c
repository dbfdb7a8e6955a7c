/*
 * dashboard.c — hands out the /ops/dashboard page compiled in from src/ops/dashboard.html.
 */
#include "ops/dashboard.h"

#include <string.h>

#include "core/assert.h"

const char *ops_dashboard_html(size_t *len_out)
{
    ASSERT(len_out != NULL);
    const char *page = (const char *)ops_dashboard_html_bytes;
    /* The embedding appends one NUL and the page is text: no NUL inside. */
    ASSERT(ops_dashboard_html_bytes_len > 0 && page[ops_dashboard_html_bytes_len] == '\0');
    DEBUG_ASSERT(strlen(page) == ops_dashboard_html_bytes_len);
    *len_out = ops_dashboard_html_bytes_len;
    return page;
}
