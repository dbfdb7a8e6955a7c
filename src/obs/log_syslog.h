/*
 * log_syslog.h — syslog messages as RFC 5424 defines them and the octet-counting frames of
 * RFC 6587 that carry them over TCP; apart from the sink's sockets so they can be tested alone.
 *
 * A message is "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG" with
 * PRI = facility * 8 + severity, TIMESTAMP in RFC 3339 (UTC, milliseconds), and ledgerd's JSON
 * log line as MSG. A header field that is empty or unknown is the NILVALUE "-"; one with bytes
 * outside printable US-ASCII has them replaced by '_' and is cut at its RFC 5424 length.
 */
#ifndef LEDGERD_OBS_LOG_SYSLOG_H
#define LEDGERD_OBS_LOG_SYSLOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/limits.h"

/* Field lengths of RFC 5424 section 6. */
#define LOG_SYSLOG_HOSTNAME_LEN_MAX 255
#define LOG_SYSLOG_APP_NAME_LEN_MAX 48
#define LOG_SYSLOG_PROCID_LEN_MAX 128
#define LOG_SYSLOG_MSGID_LEN_MAX 32
#define LOG_SYSLOG_SD_NAME_LEN_MAX 32
/* Structured data ledgerd sends with every message. */
#define LOG_SYSLOG_SD_BYTES_MAX 256
/* A whole message: the header at its longest, the structured data, a BOM and a full log
 * line, so a log line is never cut for syslog. (Receivers cut at their own maximum: rsyslog's
 * maxMessageSize is 8 KiB by default; see docs/operations/logging.md.) */
#define LOG_SYSLOG_MSG_BYTES_MAX (LIMIT_LOG_LINE_BYTES_MAX + 1024)
_Static_assert(LOG_SYSLOG_MSG_BYTES_MAX >= LIMIT_LOG_LINE_BYTES_MAX + 3 + 16 + 32 +
                                               LOG_SYSLOG_HOSTNAME_LEN_MAX +
                                               LOG_SYSLOG_APP_NAME_LEN_MAX + 20 +
                                               LOG_SYSLOG_MSGID_LEN_MAX + LOG_SYSLOG_SD_BYTES_MAX,
               "a full log line fits in a syslog message");
/* An octet-counting frame: the length in decimal, a space, the message. */
#define LOG_SYSLOG_FRAME_BYTES_MAX (LOG_SYSLOG_MSG_BYTES_MAX + 12)

struct log_syslog_header {
    uint32_t facility; /* 0..23 (LEDGERD_SYSLOG_FACILITY) */
    uint32_t severity; /* 0..7 */
    int64_t unix_ms;
    const char *hostname; /* NULL or "" for "-" */
    const char *app_name;
    const char *procid;
    const char *msgid;
    const char *sd; /* STRUCTURED-DATA from log_syslog_sd_append, NULL or "" for "-" */
};

/* RFC 5424 severities: debug 7, info 6, warn 4 (warning), error 3. */
uint32_t log_syslog_severity(enum config_log_level level);

/* Formats one message into out (out_len bytes, at least 1024, NUL-terminated) and returns its
 * length without the NUL. msg is msg_len bytes; a trailing newline is not part of it. A MSG with
 * any byte >= 0x80 is UTF-8 and starts with the BOM, as RFC 5424 section 6.4 requires. A MSG
 * that does not fit is cut at a UTF-8 character boundary. */
size_t log_syslog_format(const struct log_syslog_header *h, const char *msg, size_t msg_len,
                         char *out, size_t out_len);

/* Appends one SD-ELEMENT "[id name="value" ...]" to sd. params holds param_count name/value
 * pairs (2 * param_count strings). Values are escaped ('"', '\' and ']' get a backslash); bytes
 * that are not valid UTF-8 become U+FFFD. Returns 0, -EINVAL for an SD-ID or PARAM-NAME that
 * RFC 5424 does not allow (empty, longer than 32, or with '=', ' ', ']', '"' or a byte outside
 * 33..126), or -ENOSPC. */
int log_syslog_sd_append(struct buf *sd, const char *sd_id, const char *const *params,
                         size_t param_count);

/* Writes the RFC 6587 octet-counting frame "LEN SP MSG" of msg into out. Returns its length,
 * or 0 when it does not fit in out_len. */
size_t log_syslog_frame(const char *msg, size_t msg_len, char *out, size_t out_len);

#endif
