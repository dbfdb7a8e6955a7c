/*
 * log_syslog.c — the syslog sink: RFC 5424 messages over a unix datagram socket (/dev/log), UDP
 * (RFC 5426) or TCP with octet-counting framing (RFC 6587).
 *
 * A line that cannot be sent (no receiver yet, a connection reset) is kept and sent again after
 * a backoff that doubles up to LOG_SINK_BACKOFF_MS_MAX; meanwhile new lines wait in the queue,
 * and past its size they are dropped and counted. The first failure is reported once, the
 * recovery once. Each message carries a sequence number (RFC 5424 "meta" sequenceId), so a
 * receiver can see whether it missed any.
 */
#include "obs/log_syslog.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/clock.h"
#include "obs/log_sink.h"

#define NS_PER_MS 1000000LL
/* A connect or a send that takes longer has failed (the receiver is gone or stuck). */
#define LOG_SYSLOG_IO_TIMEOUT_MS 2000
/* RFC 5424 section 7.3.1: sequenceId runs 1..2147483647, then starts at 1 again. */
#define LOG_SYSLOG_SEQUENCE_MAX 2147483647u

static const char syslog_bom[] = "\xEF\xBB\xBF";

/* ===== Formatting ===== */

uint32_t log_syslog_severity(enum config_log_level level)
{
    switch (level) {
    case CONFIG_LOG_DEBUG:
        return 7;
    case CONFIG_LOG_INFO:
        return 6;
    case CONFIG_LOG_WARN:
        return 4;
    case CONFIG_LOG_ERROR:
        return 3;
    }
    return 6;
}

/* Appends a header field: "-" when empty, else at most len_max printable US-ASCII bytes. */
static size_t put_field(char *out, const char *value, size_t len_max)
{
    if (value == NULL || value[0] == '\0') {
        out[0] = '-';
        return 1;
    }
    size_t n = 0;
    for (; n < len_max && value[n] != '\0'; n++) {
        unsigned char c = (unsigned char)value[n];
        out[n] = value[n];
        if (c < 33 || c > 126) {
            out[n] = '_';
        }
    }
    return n;
}

size_t log_syslog_format(const struct log_syslog_header *h, const char *msg, size_t msg_len,
                         char *out, size_t out_len)
{
    ASSERT(h != NULL && out != NULL && (msg != NULL || msg_len == 0));
    ASSERT(h->facility <= 23 && h->severity <= 7);
    ASSERT(out_len >= 1024);
    char ts[CLOCK_RFC3339_MS_LEN + 1];
    clock_format_rfc3339_ms(h->unix_ms, ts);
    int n = snprintf(out, out_len, "<%u>1 %s ", h->facility * 8 + h->severity, ts);
    ASSERT(n > 0 && (size_t)n < out_len);
    size_t len = (size_t)n;
    len += put_field(out + len, h->hostname, LOG_SYSLOG_HOSTNAME_LEN_MAX);
    out[len++] = ' ';
    len += put_field(out + len, h->app_name, LOG_SYSLOG_APP_NAME_LEN_MAX);
    out[len++] = ' ';
    len += put_field(out + len, h->procid, LOG_SYSLOG_PROCID_LEN_MAX);
    out[len++] = ' ';
    len += put_field(out + len, h->msgid, LOG_SYSLOG_MSGID_LEN_MAX);
    out[len++] = ' ';
    if (h->sd == NULL || h->sd[0] == '\0') {
        out[len++] = '-';
    } else {
        size_t sd_len = strnlen(h->sd, LOG_SYSLOG_SD_BYTES_MAX);
        ASSERT(sd_len < LOG_SYSLOG_SD_BYTES_MAX);
        memcpy(out + len, h->sd, sd_len);
        len += sd_len;
    }
    ASSERT(len < 1024 - 1);
    if (msg_len == 0) {
        out[len] = '\0';
        return len;
    }
    out[len++] = ' ';
    bool utf8 = false;
    for (size_t i = 0; i < msg_len && !utf8; i++) {
        utf8 = (unsigned char)msg[i] >= 0x80;
    }
    size_t room = out_len - 1 - len;
    if (utf8 && room >= sizeof(syslog_bom) - 1) {
        memcpy(out + len, syslog_bom, sizeof(syslog_bom) - 1);
        len += sizeof(syslog_bom) - 1;
        room -= sizeof(syslog_bom) - 1;
    }
    size_t cut = msg_len;
    if (cut > room) {
        cut = room;
        while (cut > 0 && ((unsigned char)msg[cut] & 0xC0) == 0x80) {
            cut--; /* msg[cut] continues a character: cut before that character */
        }
    }
    memcpy(out + len, msg, cut);
    len += cut;
    out[len] = '\0';
    return len;
}

static bool sd_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > LOG_SYSLOG_SD_NAME_LEN_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 33 || c > 126 || c == '=' || c == ']' || c == '"') {
            return false;
        }
    }
    return true;
}

int log_syslog_sd_append(struct buf *sd, const char *sd_id, const char *const *params,
                         size_t param_count)
{
    ASSERT(sd != NULL && sd_id != NULL && (params != NULL || param_count == 0));
    if (!sd_name_ok(sd_id)) {
        return -EINVAL;
    }
    for (size_t i = 0; i < param_count; i++) {
        if (!sd_name_ok(params[2 * i])) {
            return -EINVAL;
        }
    }
    size_t old_len = sd->len;
    int rc = buf_append_char(sd, '[');
    if (rc == 0) {
        rc = buf_append_str(sd, sd_id);
    }
    for (size_t i = 0; rc == 0 && i < param_count; i++) {
        const char *v = params[2 * i + 1];
        rc = buf_appendf(sd, " %s=\"", params[2 * i]);
        size_t len = strlen(v);
        for (size_t j = 0; rc == 0 && j < len; j++) {
            char c = v[j];
            if (c == '"' || c == '\\' || c == ']') {
                rc = buf_append_char(sd, '\\');
            }
            if (rc == 0) {
                rc = buf_append_char(sd, c);
            }
        }
        if (rc == 0) {
            rc = buf_append_char(sd, '"');
        }
    }
    if (rc == 0) {
        rc = buf_append_char(sd, ']');
    }
    if (rc != 0) {
        sd->len = old_len; /* all or nothing */
        if (sd->data != NULL) {
            sd->data[old_len] = '\0';
        }
    }
    return rc;
}

size_t log_syslog_frame(const char *msg, size_t msg_len, char *out, size_t out_len)
{
    ASSERT(msg != NULL && out != NULL);
    int n = snprintf(out, out_len, "%zu ", msg_len);
    if (n < 0 || (size_t)n + msg_len > out_len) {
        return 0;
    }
    memcpy(out + n, msg, msg_len);
    return (size_t)n + msg_len;
}

/* ===== The sink ===== */

struct syslog_sink {
    enum config_syslog_transport transport;
    char address[320]; /* as configured, for messages */
    char path[108];
    char host[256];
    char port[8];
    uint32_t facility;
    char hostname[LOG_SYSLOG_HOSTNAME_LEN_MAX + 1];
    char procid[24];
    char software_version[64];
    uint32_t sequence;
    int fd; /* -1 while not connected */
    uint32_t backoff_ms;
    int64_t retry_mono_ns;
    bool failing;
    char msg[LOG_SYSLOG_MSG_BYTES_MAX];
    char frame[LOG_SYSLOG_FRAME_BYTES_MAX];
};

static void syslog_fail(struct syslog_sink *s, const char *what, int err)
{
    if (s->fd >= 0) {
        (void)close(s->fd);
        s->fd = -1;
    }
    s->retry_mono_ns = log_sink_backoff(&s->backoff_ms, clock_mono_ns());
    if (s->failing) {
        return;
    }
    s->failing = true;
    char reason[128];
    log_sink_report(CONFIG_LOG_ERROR,
                    "syslog sink: cannot %s %s: %s; retrying with backoff (lines wait in the "
                    "queue, and are dropped and counted when it is full)",
                    what, s->address, strerror_r(err, reason, sizeof(reason)));
}

static void set_timeouts(int fd)
{
    struct timeval tv = {LOG_SYSLOG_IO_TIMEOUT_MS / 1000,
                         (suseconds_t)(LOG_SYSLOG_IO_TIMEOUT_MS % 1000) * 1000L};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* connect() that gives up after LOG_SYSLOG_IO_TIMEOUT_MS. Returns 0 or -errno. */
static int connect_bounded(int fd, const struct sockaddr *addr, socklen_t addr_len)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        return -errno;
    }
    int rc = connect(fd, addr, addr_len) == 0 ? 0 : -errno;
    if (rc == -EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int ready = poll(&p, 1, LOG_SYSLOG_IO_TIMEOUT_MS);
        int so_error = ETIMEDOUT;
        socklen_t len = sizeof(so_error);
        if (ready == 1) {
            (void)getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
        }
        rc = -so_error;
    }
    if (rc == 0 && fcntl(fd, F_SETFL, flags) != 0) {
        rc = -errno;
    }
    return rc;
}

static int syslog_connect(struct syslog_sink *s)
{
    ASSERT(s->fd < 0);
    int fd = -1;
    int rc;
    if (s->transport == CONFIG_SYSLOG_UNIX) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        memcpy(sun.sun_path, s->path, strlen(s->path) + 1);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        rc = fd < 0 ? -errno
                    : connect_bounded(fd, (const struct sockaddr *)&sun, (socklen_t)sizeof(sun));
    } else {
        struct addrinfo hints = {
            .ai_family = AF_UNSPEC,
            .ai_socktype = s->transport == CONFIG_SYSLOG_TCP ? SOCK_STREAM : SOCK_DGRAM,
        };
        struct addrinfo *res = NULL;
        int gai = getaddrinfo(s->host, s->port, &hints, &res);
        if (gai != 0) {
            rc = -EHOSTUNREACH;
        } else {
            rc = -EHOSTUNREACH;
            for (struct addrinfo *ai = res; ai != NULL && rc != 0; ai = ai->ai_next) {
                if (fd >= 0) {
                    (void)close(fd);
                }
                fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
                rc = fd < 0 ? -errno : connect_bounded(fd, ai->ai_addr, ai->ai_addrlen);
            }
            freeaddrinfo(res);
        }
    }
    if (rc != 0) {
        if (fd >= 0) {
            (void)close(fd);
        }
        syslog_fail(s, "connect to", -rc);
        return rc;
    }
    set_timeouts(fd);
    s->fd = fd;
    return 0;
}

/* A TCP receiver that closed its end is noticed before a line is sent into the void. */
static bool tcp_peer_closed(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) != 1) {
        return false;
    }
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static int syslog_write(void *state, const struct log_record *rec, const char *line)
{
    struct syslog_sink *s = state;
    ASSERT(s != NULL && rec != NULL && line != NULL);
    if (s->fd >= 0 && s->transport == CONFIG_SYSLOG_TCP && tcp_peer_closed(s->fd)) {
        syslog_fail(s, "send to (the receiver closed the connection)", ECONNRESET);
    }
    if (s->fd < 0 && (clock_mono_ns() < s->retry_mono_ns || syslog_connect(s) != 0)) {
        return LOG_SINK_RETRY;
    }
    char seq[16];
    (void)snprintf(seq, sizeof(seq), "%u", s->sequence);
    const char *origin[] = {"software", "ledgerd", "swVersion", s->software_version};
    const char *meta[] = {"sequenceId", seq};
    char sd_mem[LOG_SYSLOG_SD_BYTES_MAX];
    struct buf sd = {sd_mem, 0, sizeof(sd_mem), sizeof(sd_mem) - 1};
    sd_mem[0] = '\0';
    int rc = log_syslog_sd_append(&sd, "origin", origin, 2);
    if (rc == 0) {
        rc = log_syslog_sd_append(&sd, "meta", meta, 1);
    }
    ASSERT(rc == 0);
    struct log_syslog_header h = {
        .facility = s->facility,
        .severity = log_syslog_severity(rec->level),
        .unix_ms = rec->unix_ns / NS_PER_MS,
        .hostname = s->hostname,
        .app_name = "ledgerd",
        .procid = s->procid,
        .msgid = NULL,
        .sd = sd_mem,
    };
    size_t line_len = rec->len > 0 && line[rec->len - 1] == '\n' ? rec->len - 1 : rec->len;
    size_t len = log_syslog_format(&h, line, line_len, s->msg, sizeof(s->msg));
    const char *out = s->msg;
    if (s->transport == CONFIG_SYSLOG_TCP) {
        len = log_syslog_frame(s->msg, len, s->frame, sizeof(s->frame));
        ASSERT(len > 0);
        out = s->frame;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(s->fd, out + done, len - done, MSG_NOSIGNAL);
        if (n > 0 && s->transport == CONFIG_SYSLOG_TCP) {
            done += (size_t)n;
        } else if (n >= 0) {
            done = len; /* a datagram goes whole or not at all */
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EMSGSIZE) {
            return -EMSGSIZE; /* this line can never be sent this way: lost, counted */
        } else {
            /* A frame half sent is resent whole on a new connection: nothing torn reaches the
             * receiver's next message. */
            syslog_fail(s, "send to", errno);
            return LOG_SINK_RETRY;
        }
    }
    s->sequence = s->sequence >= LOG_SYSLOG_SEQUENCE_MAX ? 1 : s->sequence + 1;
    s->backoff_ms = 0;
    if (s->failing) {
        s->failing = false;
        log_sink_report(CONFIG_LOG_WARN, "syslog sink: sending to %s again", s->address);
    }
    return 0;
}

static int64_t syslog_tick(void *state, int64_t now_mono_ns)
{
    struct syslog_sink *s = state;
    if (s->fd < 0 && s->retry_mono_ns > now_mono_ns) {
        return s->retry_mono_ns;
    }
    return now_mono_ns + (int64_t)LOG_SINK_TICK_MS * NS_PER_MS;
}

static void syslog_close(void *state, int64_t deadline_mono_ns)
{
    (void)deadline_mono_ns;
    struct syslog_sink *s = state;
    if (s == NULL) {
        return;
    }
    if (s->fd >= 0) {
        (void)close(s->fd);
    }
    free(s);
}

int log_syslog_open(const struct config *cfg, void **state)
{
    ASSERT(cfg != NULL && state != NULL);
    struct syslog_sink *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    s->fd = -1;
    s->sequence = 1;
    s->transport = cfg->syslog_transport;
    s->facility = cfg->syslog_facility;
    (void)snprintf(s->address, sizeof(s->address), "%s", cfg->syslog_address);
    (void)snprintf(s->path, sizeof(s->path), "%s", cfg->syslog_path);
    (void)snprintf(s->host, sizeof(s->host), "%s", cfg->syslog_host);
    (void)snprintf(s->port, sizeof(s->port), "%u", (unsigned)cfg->syslog_port);
    (void)snprintf(s->procid, sizeof(s->procid), "%ld", (long)getpid());
    (void)snprintf(s->software_version, sizeof(s->software_version), "%s", LEDGERD_VERSION);
    if (gethostname(s->hostname, sizeof(s->hostname)) != 0) {
        s->hostname[0] = '\0'; /* sent as "-" */
    }
    s->hostname[sizeof(s->hostname) - 1] = '\0';
    /* Not connecting yet is fine: the receiver may start after ledgerd. */
    *state = s;
    return 0;
}

const struct log_sink_ops log_syslog_ops = {
    .write = syslog_write,
    .tick = syslog_tick,
    .close = syslog_close,
};
