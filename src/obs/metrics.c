/*
 * metrics.c — the metrics registry (sharded lock-free cells, summed at scrape), the two
 * exposition formats, Accept negotiation, and ledgerd's catalogue of metrics with the
 * collectors of what is read rather than counted (/proc/self, log lines dropped, idle
 * database connections).
 *
 * Layers, top to bottom: shards and cells, the registry, counting, reading, rendering,
 * negotiation, ledgerd's catalogue, collection.
 *
 * Cells. A counter or gauge series is one 64-bit cell; a histogram series is one cell per
 * bucket (not cumulative, +Inf last) and one for the sum. Every shard holds every cell; a
 * thread adds to the shard of its own index with a relaxed atomic add, so the cache line it
 * writes is its own. Shards are mapped on first use (zero pages, page aligned, so no two
 * shards share a line and a shard costs memory only for the cells it touched). Gauges and
 * collected counters also have one "direct" cell per series for values that are set.
 */
#include "obs/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/assert.h"
#include "obs/log.h"
#include "obs/otlp.h"

#ifndef LEDGERD_VERSION
#define LEDGERD_VERSION "unknown"
#endif
#ifndef LEDGERD_COMMIT
#define LEDGERD_COMMIT "unknown"
#endif

#define METRICS_NS_PER_S 1000000000ull

/* ---------------------------------------------------------------------------------------
 * Shards and cells
 * ------------------------------------------------------------------------------------- */

struct metrics_family {
    const struct metrics_family_def *def;
    size_t dims[LIMIT_METRICS_LABELS_MAX]; /* values per label dimension */
    size_t series;                         /* product of dims */
    size_t cells_per_series;               /* 1, or bounds_count + 2 */
    size_t cell_offset;                    /* first cell in a shard */
    size_t direct_offset;                  /* first direct cell (counters and gauges) */
    unsigned scale_digits;                 /* scale = 10^scale_digits */
};

struct metrics_registry {
    const struct metrics_family_def *defs;
    size_t count;
    struct metrics_family *families;
    size_t cells;       /* per shard */
    size_t shard_bytes; /* rounded up to pages */
    _Atomic int64_t *direct;
    size_t direct_count;
    /* Shard 0 exists from creation on: it takes the counts of a thread whose own shard could
     * not be mapped. */
    _Atomic(_Atomic uint64_t *) shards[LIMIT_METRICS_SHARDS];
};

/* Each thread's shard index plus one (0: not yet taken), the same for every registry. */
static _Thread_local unsigned metrics_thread_slot;
static atomic_uint metrics_next_slot;

static unsigned metrics_slot(void)
{
    unsigned s = metrics_thread_slot;
    if (s == 0) {
        unsigned n = atomic_fetch_add_explicit(&metrics_next_slot, 1, memory_order_relaxed);
        s = n % LIMIT_METRICS_SHARDS + 1;
        metrics_thread_slot = s;
    }
    return s - 1;
}

static _Atomic uint64_t *metrics_shard_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Maps shard i; another thread may have won the race, then its shard is used. */
static _Atomic uint64_t *metrics_shard_create(struct metrics_registry *r, unsigned i)
{
    _Atomic uint64_t *cells = metrics_shard_map(r->shard_bytes);
    if (cells == NULL) {
        return atomic_load_explicit(&r->shards[0], memory_order_acquire);
    }
    _Atomic uint64_t *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(&r->shards[i], &expected, cells,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        (void)munmap((void *)cells, r->shard_bytes);
        return expected;
    }
    return cells;
}

/* The calling thread's shard. */
static _Atomic uint64_t *metrics_shard(struct metrics_registry *r)
{
    unsigned i = metrics_slot();
    _Atomic uint64_t *cells = atomic_load_explicit(&r->shards[i], memory_order_acquire);
    return cells != NULL ? cells : metrics_shard_create(r, i);
}

/* The shards that exist, taken once per read so that summing a cell does not look at the
 * empty slots. A shard mapped after the snapshot holds only counts made after it. */
struct metrics_snapshot {
    _Atomic uint64_t *shards[LIMIT_METRICS_SHARDS];
    size_t count;
};

static void metrics_snapshot_take(const struct metrics_registry *r, struct metrics_snapshot *snap)
{
    snap->count = 0;
    for (size_t i = 0; i < LIMIT_METRICS_SHARDS; i++) {
        _Atomic uint64_t *cells = atomic_load_explicit(&r->shards[i], memory_order_acquire);
        if (cells != NULL) {
            snap->shards[snap->count++] = cells;
        }
    }
}

/* A cell summed over every shard. */
static uint64_t metrics_cell_sum(const struct metrics_snapshot *snap, size_t cell)
{
    uint64_t v = 0;
    for (size_t i = 0; i < snap->count; i++) {
        v += atomic_load_explicit(&snap->shards[i][cell], memory_order_relaxed);
    }
    return v;
}

/* ---------------------------------------------------------------------------------------
 * The registry
 * ------------------------------------------------------------------------------------- */

static bool metrics_name_valid(const char *s, bool colon)
{
    if (s == NULL || s[0] == '\0' || (s[0] >= '0' && s[0] <= '9')) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || (colon && c == ':');
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool metrics_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);
    return n > m && memcmp(s + n - m, suffix, m) == 0;
}

/* Digits of a scale that is a power of ten; -1 otherwise. */
static int metrics_scale_digits(uint64_t scale)
{
    int d = 0;
    if (scale == 0) {
        return 0;
    }
    while (scale % 10 == 0) {
        scale /= 10;
        d++;
    }
    return scale == 1 ? d : -1;
}

/* Checks one family and lays it out. 0 or -EINVAL. */
static int metrics_family_layout(struct metrics_family *f, const struct metrics_family_def *d)
{
    f->def = d;
    if (!metrics_name_valid(d->name, true) || d->help == NULL ||
        d->labels_count > LIMIT_METRICS_LABELS_MAX ||
        (d->type == METRICS_COUNTER && !metrics_ends_with(d->name, "_total")) ||
        (d->info && (d->type != METRICS_GAUGE || !metrics_ends_with(d->name, "_info")))) {
        return -EINVAL;
    }
    int digits = metrics_scale_digits(d->scale);
    if (digits < 0 || digits > 18) {
        return -EINVAL;
    }
    f->scale_digits = (unsigned)digits;
    f->series = 1;
    for (size_t i = 0; i < d->labels_count; i++) {
        const struct metrics_label *l = &d->labels[i];
        if (!metrics_name_valid(l->name, false) || l->values_count == 0 ||
            (l->values == NULL) == (l->value_fn == NULL) || strcmp(l->name, "le") == 0) {
            return -EINVAL;
        }
        f->dims[i] = l->values_count;
        f->series *= l->values_count;
    }
    if (d->type == METRICS_HISTOGRAM) {
        if (d->bounds_count == 0 || d->bounds_count > LIMIT_METRICS_BUCKETS_MAX) {
            return -EINVAL;
        }
        for (size_t i = 1; i < d->bounds_count; i++) {
            if (d->bounds[i] <= d->bounds[i - 1]) {
                return -EINVAL;
            }
        }
        f->cells_per_series = d->bounds_count + 2;
    } else {
        f->cells_per_series = 1;
    }
    return 0;
}

int metrics_registry_new(const struct metrics_family_def *defs, size_t count,
                         struct metrics_registry **out)
{
    ASSERT(defs != NULL && out != NULL);
    *out = NULL;
    struct metrics_registry *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return -ENOMEM;
    }
    r->defs = defs;
    r->count = count;
    r->families = calloc(count > 0 ? count : 1, sizeof(r->families[0]));
    int rc = -ENOMEM;
    if (r->families == NULL) {
        goto out_free;
    }
    for (size_t i = 0; i < count; i++) {
        struct metrics_family *f = &r->families[i];
        rc = metrics_family_layout(f, &defs[i]);
        if (rc != 0) {
            goto out_free_families;
        }
        f->cell_offset = r->cells;
        r->cells += f->series * f->cells_per_series;
        if (defs[i].type != METRICS_HISTOGRAM) {
            f->direct_offset = r->direct_count;
            r->direct_count += f->series;
        }
    }
    long page = sysconf(_SC_PAGESIZE);
    size_t page_bytes = page > 0 ? (size_t)page : 4096;
    size_t bytes = (r->cells > 0 ? r->cells : 1) * sizeof(uint64_t);
    r->shard_bytes = (bytes + page_bytes - 1) / page_bytes * page_bytes;
    rc = -ENOMEM;
    r->direct = calloc(r->direct_count > 0 ? r->direct_count : 1, sizeof(r->direct[0]));
    if (r->direct == NULL) {
        goto out_free_families;
    }
    _Atomic uint64_t *first = metrics_shard_map(r->shard_bytes);
    if (first == NULL) {
        goto out_free_direct;
    }
    atomic_store(&r->shards[0], first);
    *out = r;
    return 0;

out_free_direct:
    free((void *)r->direct);
out_free_families:
    free(r->families);
out_free:
    free(r);
    return rc;
}

void metrics_registry_free(struct metrics_registry *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < LIMIT_METRICS_SHARDS; i++) {
        _Atomic uint64_t *cells = atomic_load(&r->shards[i]);
        if (cells != NULL) {
            (void)munmap((void *)cells, r->shard_bytes);
        }
    }
    free((void *)r->direct);
    free(r->families);
    free(r);
}

size_t metrics_series_count(const struct metrics_registry *r, size_t family)
{
    ASSERT(r != NULL && family < r->count);
    return r->families[family].series;
}

size_t metrics_series_of(const struct metrics_registry *r, size_t family, const size_t *idx)
{
    ASSERT(r != NULL && family < r->count);
    const struct metrics_family *f = &r->families[family];
    size_t s = 0;
    for (size_t i = 0; i < f->def->labels_count; i++) {
        ASSERT(idx[i] < f->dims[i]);
        s = s * f->dims[i] + idx[i];
    }
    return s;
}

/* ---------------------------------------------------------------------------------------
 * Counting (the hot path: no lock, no allocation after a thread's first count)
 * ------------------------------------------------------------------------------------- */

static const struct metrics_family *metrics_family_of(const struct metrics_registry *r,
                                                      size_t family, size_t series)
{
    ASSERT(r != NULL && family < r->count);
    const struct metrics_family *f = &r->families[family];
    ASSERT(series < f->series);
    return f;
}

void metrics_reg_add(struct metrics_registry *r, size_t family, size_t series, uint64_t n)
{
    const struct metrics_family *f = metrics_family_of(r, family, series);
    ASSERT(f->def->type == METRICS_COUNTER);
    _Atomic uint64_t *cells = metrics_shard(r);
    atomic_fetch_add_explicit(&cells[f->cell_offset + series], n, memory_order_relaxed);
}

void metrics_reg_gauge_add(struct metrics_registry *r, size_t family, size_t series, int64_t delta)
{
    const struct metrics_family *f = metrics_family_of(r, family, series);
    ASSERT(f->def->type == METRICS_GAUGE);
    _Atomic uint64_t *cells = metrics_shard(r);
    /* Two's complement: the shards' sum wraps back to the signed total. */
    atomic_fetch_add_explicit(&cells[f->cell_offset + series], (uint64_t)delta,
                              memory_order_relaxed);
}

void metrics_reg_set(struct metrics_registry *r, size_t family, size_t series, int64_t value)
{
    const struct metrics_family *f = metrics_family_of(r, family, series);
    ASSERT(f->def->type != METRICS_HISTOGRAM);
    atomic_store_explicit(&r->direct[f->direct_offset + series], value, memory_order_relaxed);
}

void metrics_reg_observe(struct metrics_registry *r, size_t family, size_t series, uint64_t value)
{
    const struct metrics_family *f = metrics_family_of(r, family, series);
    ASSERT(f->def->type == METRICS_HISTOGRAM);
    const uint64_t *bounds = f->def->bounds;
    size_t nb = f->def->bounds_count;
    size_t b = 0;
    while (b < nb && value > bounds[b]) {
        b++;
    }
    _Atomic uint64_t *cells = metrics_shard(r) + f->cell_offset + series * f->cells_per_series;
    atomic_fetch_add_explicit(&cells[b], 1, memory_order_relaxed);
    if (value != 0) {
        atomic_fetch_add_explicit(&cells[nb + 1], value, memory_order_relaxed);
    }
}

/* ---------------------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------------------- */

/* The unsigned sum of a counter or gauge series: direct cell plus shards. */
static uint64_t metrics_scalar(const struct metrics_registry *r,
                               const struct metrics_snapshot *snap, const struct metrics_family *f,
                               size_t series)
{
    int64_t direct =
        atomic_load_explicit(&r->direct[f->direct_offset + series], memory_order_relaxed);
    return (uint64_t)direct + metrics_cell_sum(snap, f->cell_offset + series);
}

int64_t metrics_reg_value(const struct metrics_registry *r, size_t family, size_t series)
{
    const struct metrics_family *f = metrics_family_of(r, family, series);
    ASSERT(f->def->type != METRICS_HISTOGRAM);
    struct metrics_snapshot snap;
    metrics_snapshot_take(r, &snap);
    return (int64_t)metrics_scalar(r, &snap, f, series);
}

void metrics_reg_histogram(const struct metrics_registry *r, size_t family, size_t series,
                           uint64_t *count_out, uint64_t *sum_out)
{
    const struct metrics_family *f = metrics_family_of(r, family, series);
    ASSERT(f->def->type == METRICS_HISTOGRAM);
    struct metrics_snapshot snap;
    metrics_snapshot_take(r, &snap);
    size_t base = f->cell_offset + series * f->cells_per_series;
    uint64_t count = 0;
    for (size_t b = 0; b <= f->def->bounds_count; b++) {
        count += metrics_cell_sum(&snap, base + b);
    }
    *count_out = count;
    *sum_out = metrics_cell_sum(&snap, base + f->def->bounds_count + 1);
}

/* ---------------------------------------------------------------------------------------
 * Rendering
 * ------------------------------------------------------------------------------------- */

/* Writes v / 10^digits exactly, without trailing zeros, into dst (at least 48 bytes), and
 * returns the length; with float_form an integral value gets ".0" (OpenMetrics writes bucket
 * bounds as floats). */
#define METRICS_NUMBER_LEN_MAX 48
static size_t metrics_format_scaled(char *dst, uint64_t v, bool negative, unsigned digits,
                                    bool float_form)
{
    ASSERT(digits <= 18);
    uint64_t scale = 1;
    for (unsigned i = 0; i < digits; i++) {
        scale *= 10;
    }
    uint64_t frac = v % scale;
    int n = snprintf(dst, METRICS_NUMBER_LEN_MAX, "%s%llu", negative ? "-" : "",
                     (unsigned long long)(v / scale));
    ASSERT(n > 0 && n < 24);
    size_t len = (size_t)n;
    if (frac == 0) {
        if (float_form) {
            memcpy(dst + len, ".0", 3);
            len += 2;
        }
        return len;
    }
    dst[len++] = '.';
    for (unsigned i = digits; i > 0; i--) {
        dst[len + i - 1] = (char)('0' + frac % 10);
        frac /= 10;
    }
    len += digits;
    while (dst[len - 1] == '0') {
        len--;
    }
    dst[len] = '\0';
    return len;
}

static int metrics_append_scaled(struct buf *out, uint64_t v, bool negative, unsigned digits,
                                 bool float_form)
{
    char d[METRICS_NUMBER_LEN_MAX];
    size_t n = metrics_format_scaled(d, v, negative, digits, float_form);
    return buf_append(out, d, n);
}

static int metrics_append_signed(struct buf *out, int64_t v, unsigned digits)
{
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    return metrics_append_scaled(out, mag, v < 0, digits, false);
}

/* Label values: backslash, double quote and line feed are escaped (both formats). HELP text:
 * backslash and line feed, and in OpenMetrics the double quote too. */
static int metrics_append_escaped(struct buf *out, const char *s, bool quote)
{
    int rc = 0;
    for (const char *p = s; *p != '\0' && rc == 0; p++) {
        if (*p == '\\') {
            rc = buf_append(out, "\\\\", 2);
        } else if (*p == '\n') {
            rc = buf_append(out, "\\n", 2);
        } else if (*p == '"' && quote) {
            rc = buf_append(out, "\\\"", 2);
        } else {
            rc = buf_append_char(out, *p);
        }
    }
    return rc;
}

static const char *metrics_label_value(const struct metrics_label *l, size_t i)
{
    return l->value_fn != NULL ? l->value_fn(i) : l->values[i];
}

/* The label values of series s, or false when one of them is not in use. */
static bool metrics_series_labels(const struct metrics_family *f, size_t s,
                                  const char *vals[LIMIT_METRICS_LABELS_MAX])
{
    size_t n = f->def->labels_count;
    for (size_t i = n; i > 0; i--) {
        size_t d = i - 1;
        vals[d] = metrics_label_value(&f->def->labels[d], s % f->dims[d]);
        s /= f->dims[d];
        if (vals[d] == NULL) {
            return false;
        }
    }
    return true;
}

/* name{a="x",b="y"[,le="bound"]} — no braces when there is no label. */
static int metrics_append_sample_name(struct buf *out, const char *name, const char *suffix,
                                      const struct metrics_family *f, const char *const *vals,
                                      const char *le)
{
    int rc = buf_append_str(out, name);
    if (rc == 0 && suffix != NULL) {
        rc = buf_append_str(out, suffix);
    }
    size_t n = f->def->labels_count;
    if (rc != 0 || (n == 0 && le == NULL)) {
        return rc;
    }
    rc = buf_append_char(out, '{');
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = i > 0 ? buf_append_char(out, ',') : 0;
        if (rc == 0) {
            rc = buf_append_str(out, f->def->labels[i].name);
        }
        if (rc == 0) {
            rc = buf_append(out, "=\"", 2);
        }
        if (rc == 0) {
            rc = metrics_append_escaped(out, vals[i], true);
        }
        if (rc == 0) {
            rc = buf_append_char(out, '"');
        }
    }
    if (rc == 0 && le != NULL) {
        rc = buf_append_str(out, n > 0 ? ",le=\"" : "le=\"");
        if (rc == 0) {
            rc = buf_append_str(out, le);
        }
        if (rc == 0) {
            rc = buf_append_char(out, '"');
        }
    }
    return rc == 0 ? buf_append_char(out, '}') : rc;
}

/* " <n>\n": the value of a bucket or count sample. */
static int metrics_append_count(struct buf *out, uint64_t n)
{
    int rc = buf_append_char(out, ' ');
    if (rc == 0) {
        rc = buf_append_u64(out, n);
    }
    return rc == 0 ? buf_append_char(out, '\n') : rc;
}

static int metrics_render_histogram(const struct metrics_snapshot *snap,
                                    const struct metrics_family *f, size_t s,
                                    const char *const *vals, enum metrics_format fmt,
                                    struct buf *out)
{
    const struct metrics_family_def *d = f->def;
    size_t base = f->cell_offset + s * f->cells_per_series;
    uint64_t buckets[LIMIT_METRICS_BUCKETS_MAX + 1];
    uint64_t count = 0;
    for (size_t b = 0; b <= d->bounds_count; b++) {
        buckets[b] = metrics_cell_sum(snap, base + b);
        count += buckets[b];
    }
    if (d->sparse && count == 0) {
        return 0;
    }
    uint64_t sum = metrics_cell_sum(snap, base + d->bounds_count + 1);
    uint64_t cumulative = 0;
    int rc = 0;
    for (size_t b = 0; b <= d->bounds_count && rc == 0; b++) {
        cumulative += buckets[b];
        char le[METRICS_NUMBER_LEN_MAX] = "+Inf";
        if (b < d->bounds_count) {
            (void)metrics_format_scaled(le, d->bounds[b], false, f->scale_digits,
                                        fmt == METRICS_FORMAT_OPENMETRICS);
        }
        if (rc == 0) {
            rc = metrics_append_sample_name(out, d->name, "_bucket", f, vals, le);
        }
        if (rc == 0) {
            rc = metrics_append_count(out, cumulative);
        }
    }
    if (rc == 0) {
        rc = metrics_append_sample_name(out, d->name, "_sum", f, vals, NULL);
    }
    if (rc == 0) {
        rc = buf_append_char(out, ' ');
    }
    if (rc == 0) {
        rc = metrics_append_scaled(out, sum, false, f->scale_digits, false);
    }
    if (rc == 0) {
        rc = buf_append_char(out, '\n');
    }
    if (rc == 0) {
        rc = metrics_append_sample_name(out, d->name, "_count", f, vals, NULL);
    }
    if (rc == 0) {
        rc = metrics_append_count(out, count);
    }
    return rc;
}

/* The family's name in format fmt: OpenMetrics names a counter's family without "_total" and
 * an info family without "_info". */
static int metrics_append_family_name(struct buf *out, const struct metrics_family_def *d,
                                      enum metrics_format fmt)
{
    size_t n = strlen(d->name);
    if (fmt == METRICS_FORMAT_OPENMETRICS && d->type == METRICS_COUNTER) {
        n -= strlen("_total");
    } else if (fmt == METRICS_FORMAT_OPENMETRICS && d->info) {
        n -= strlen("_info");
    }
    return buf_append(out, d->name, n);
}

static const char *metrics_type_name(const struct metrics_family_def *d, enum metrics_format fmt)
{
    if (d->info && fmt == METRICS_FORMAT_OPENMETRICS) {
        return "info";
    }
    switch (d->type) {
    case METRICS_COUNTER:
        return "counter";
    case METRICS_GAUGE:
        return "gauge";
    case METRICS_HISTOGRAM:
        return "histogram";
    }
    return "unknown";
}

static int metrics_render_family(const struct metrics_registry *r,
                                 const struct metrics_snapshot *snap,
                                 const struct metrics_family *f, enum metrics_format fmt,
                                 struct buf *out)
{
    const struct metrics_family_def *d = f->def;
    bool om = fmt == METRICS_FORMAT_OPENMETRICS;
    int rc = buf_append_str(out, "# HELP ");
    if (rc == 0) {
        rc = metrics_append_family_name(out, d, fmt);
    }
    if (rc == 0) {
        rc = buf_append_char(out, ' ');
    }
    if (rc == 0) {
        rc = metrics_append_escaped(out, d->help, om);
    }
    if (rc == 0) {
        rc = buf_append_str(out, "\n# TYPE ");
    }
    if (rc == 0) {
        rc = metrics_append_family_name(out, d, fmt);
    }
    if (rc == 0) {
        rc = buf_appendf(out, " %s\n", metrics_type_name(d, fmt));
    }
    for (size_t s = 0; s < f->series && rc == 0; s++) {
        const char *vals[LIMIT_METRICS_LABELS_MAX];
        if (!metrics_series_labels(f, s, vals)) {
            continue;
        }
        if (d->type == METRICS_HISTOGRAM) {
            rc = metrics_render_histogram(snap, f, s, vals, fmt, out);
            continue;
        }
        uint64_t v = metrics_scalar(r, snap, f, s);
        if (d->sparse && v == 0) {
            continue;
        }
        rc = metrics_append_sample_name(out, d->name, NULL, f, vals, NULL);
        if (rc == 0) {
            rc = buf_append_char(out, ' ');
        }
        if (rc == 0) {
            rc = d->type == METRICS_COUNTER
                     ? metrics_append_scaled(out, v, false, f->scale_digits, false)
                     : metrics_append_signed(out, (int64_t)v, f->scale_digits);
        }
        if (rc == 0) {
            rc = buf_append_char(out, '\n');
        }
    }
    return rc;
}

int metrics_reg_render(const struct metrics_registry *r, enum metrics_format f, struct buf *out)
{
    ASSERT(r != NULL && out != NULL);
    struct metrics_snapshot snap;
    metrics_snapshot_take(r, &snap);
    int rc = 0;
    for (size_t i = 0; i < r->count && rc == 0; i++) {
        rc = metrics_render_family(r, &snap, &r->families[i], f, out);
    }
    if (rc == 0 && f == METRICS_FORMAT_OPENMETRICS) {
        rc = buf_append_str(out, "# EOF\n");
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Negotiation (RFC 9110 §12.5.1 Accept)
 * ------------------------------------------------------------------------------------- */

static bool metrics_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* A qvalue ("0", "0.5", "1", "1.000") in thousandths, or -1 when malformed. */
static int metrics_qvalue(const char *s, size_t n)
{
    if (n == 0 || (s[0] != '0' && s[0] != '1') || (n > 1 && s[1] != '.') || n > 5) {
        return -1;
    }
    int q = (s[0] - '0') * 1000;
    int unit = 100;
    for (size_t i = 2; i < n; i++, unit /= 10) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        q += (s[i] - '0') * unit;
    }
    return q <= 1000 ? q : -1;
}

static bool metrics_token_is(const char *s, size_t n, const char *want)
{
    return n == strlen(want) && strncasecmp(s, want, n) == 0;
}

/* One media range of an Accept header (s, n bytes): raises *om_q or *text_q to its q-value
 * when it names one of the formats. A malformed q-value drops the range. */
static void metrics_media_range(const char *s, size_t n, int *om_q, int *text_q)
{
    size_t i = 0;
    while (i < n && metrics_ows(s[i])) {
        i++;
    }
    size_t type_start = i;
    while (i < n && s[i] != ';') {
        i++;
    }
    size_t type_end = i;
    while (type_end > type_start && metrics_ows(s[type_end - 1])) {
        type_end--;
    }
    int q = 1000;
    while (i < n) {
        i++; /* the ';' */
        while (i < n && metrics_ows(s[i])) {
            i++;
        }
        size_t p = i;
        while (i < n && s[i] != ';') {
            i++;
        }
        size_t e = i;
        while (e > p && metrics_ows(s[e - 1])) {
            e--;
        }
        if (e - p >= 2 && (s[p] == 'q' || s[p] == 'Q') && s[p + 1] == '=') {
            q = metrics_qvalue(s + p + 2, e - p - 2);
            if (q < 0) {
                return;
            }
        }
    }
    const char *t = s + type_start;
    size_t tn = type_end - type_start;
    if (metrics_token_is(t, tn, "application/openmetrics-text")) {
        *om_q = q > *om_q ? q : *om_q;
    } else if (metrics_token_is(t, tn, "text/plain")) {
        *text_q = q > *text_q ? q : *text_q;
    }
}

enum metrics_format metrics_format_negotiate(const char *accept, size_t len)
{
    if (accept == NULL) {
        return METRICS_FORMAT_PROMETHEUS;
    }
    if (len > LIMIT_METRICS_ACCEPT_BYTES_MAX) {
        len = LIMIT_METRICS_ACCEPT_BYTES_MAX;
    }
    int om_q = 0;
    int text_q = 0;
    size_t i = 0;
    while (i < len) {
        const char *comma = memchr(accept + i, ',', len - i);
        size_t end = comma != NULL ? (size_t)(comma - accept) : len;
        metrics_media_range(accept + i, end - i, &om_q, &text_q);
        i = end + 1;
    }
    return om_q > 0 && om_q >= text_q ? METRICS_FORMAT_OPENMETRICS : METRICS_FORMAT_PROMETHEUS;
}

const char *metrics_content_type(enum metrics_format f)
{
    return f == METRICS_FORMAT_OPENMETRICS
               ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
               : "text/plain; version=0.0.4; charset=utf-8";
}

/* ---------------------------------------------------------------------------------------
 * ledgerd's catalogue
 * ------------------------------------------------------------------------------------- */

#define METRICS_MS(n) ((uint64_t)(n)*1000000u)

/* OpenTelemetry's advised HTTP duration buckets, in nanoseconds: 5 ms .. 10 s. */
static const uint64_t metrics_duration_bounds_ns[] = {
    METRICS_MS(5),    METRICS_MS(10),   METRICS_MS(25),   METRICS_MS(50),   METRICS_MS(75),
    METRICS_MS(100),  METRICS_MS(250),  METRICS_MS(500),  METRICS_MS(750),  METRICS_MS(1000),
    METRICS_MS(2500), METRICS_MS(5000), METRICS_MS(7500), METRICS_MS(10000)};
static const uint64_t metrics_body_bounds_bytes[] = {256,    1024,    4096,    16384,   65536,
                                                     262144, 1048576, 4194304, 16777216};
static const uint64_t metrics_batch_commands_bounds[] = {1,  2,   4,   8,   16,  32,
                                                         64, 128, 256, 512, 1024};
static const uint64_t metrics_batch_items_bounds[] = {1, 4, 16, 64, 256, 1024, 4096, 8190};
_Static_assert(LIMIT_COMMIT_ITEMS_MAX == 8190, "the last items bucket is a full transaction");

static const char *const metrics_methods[METRICS_METHODS_COUNT] = {
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"};

/* The status codes of RFC 9110 and the ones registered beside it that a server may send; any
 * other is counted as "other". */
static const int metrics_codes[] = {100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301, 302,
                                    303, 304, 307, 308, 400, 401, 403, 404, 405, 406, 407, 408,
                                    409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 425,
                                    426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505};
#define METRICS_CODES_COUNT (sizeof(metrics_codes) / sizeof(metrics_codes[0]))
static const char *const metrics_code_names[METRICS_CODES_COUNT + 1] = {
    "100", "101", "200", "201", "202", "203", "204", "205", "206", "300", "301", "302",
    "303", "304", "307", "308", "400", "401", "403", "404", "405", "406", "407", "408",
    "409", "410", "411", "412", "413", "414", "415", "416", "417", "421", "422", "425",
    "426", "428", "429", "431", "451", "500", "501", "502", "503", "504", "505", "other"};

static const char *const metrics_classes[] = {"2xx", "3xx", "4xx", "5xx"};
static const char *const metrics_idem_results[] = {"hit", "miss", "reused", "in_flight"};
static const char *const metrics_roles[] = {"writer", "reader"};
static const char *const metrics_states[] = {"in_use", "idle"};
static const char *const metrics_reasons[] = {"full", "shutting_down"};
static const char *const metrics_retry_reasons[] = {"serialization", "connection"};
static const char *const metrics_cache_results[] = {"hit", "miss", "error", "bypassed"};
static const char *const metrics_cache_write_results[] = {"ok", "failed"};
static const char *const metrics_breaker_states[] = {"closed", "open", "half_open"};
static const char *const metrics_version[] = {LEDGERD_VERSION};
static const char *const metrics_commit[] = {LEDGERD_COMMIT};

/* Label values registered at start-up by the layers that know them. */
static _Atomic(const char *) metrics_route_names[LIMIT_METRICS_ROUTES_MAX];
static _Atomic(const char *) metrics_result_names[LIMIT_METRICS_RESULTS_MAX];
static _Atomic(const char *) metrics_auth_reason_names[LIMIT_METRICS_RESULTS_MAX];

static const char *metrics_route_value(size_t i)
{
    return i == METRICS_ROUTE_UNMATCHED ? "unmatched" : atomic_load(&metrics_route_names[i]);
}

static const char *metrics_result_value(size_t i)
{
    return atomic_load(&metrics_result_names[i]);
}

static const char *metrics_auth_reason_value(size_t i)
{
    return atomic_load(&metrics_auth_reason_names[i]);
}

/* Label dimensions shared by several families (macros: a const object is not a constant
 * expression in C, so it could not initialise the tables below). */
#define METRICS_L_METHOD                                                                           \
    {                                                                                              \
        "method", metrics_methods, NULL, METRICS_METHODS_COUNT                                     \
    }
#define METRICS_L_ROUTE                                                                            \
    {                                                                                              \
        "route", NULL, metrics_route_value, LIMIT_METRICS_ROUTES_MAX                               \
    }
#define METRICS_L_CODE                                                                             \
    {                                                                                              \
        "code", metrics_code_names, NULL, METRICS_CODES_COUNT + 1                                  \
    }
#define METRICS_L_CLASS                                                                            \
    {                                                                                              \
        "status_class", metrics_classes, NULL, 4                                                   \
    }
#define METRICS_L_ROLE                                                                             \
    {                                                                                              \
        "role", metrics_roles, NULL, 2                                                             \
    }
#define METRICS_L_STATE                                                                            \
    {                                                                                              \
        "state", metrics_states, NULL, 2                                                           \
    }
#define METRICS_L_RESULT                                                                           \
    {                                                                                              \
        "result", NULL, metrics_result_value, LIMIT_METRICS_RESULTS_MAX                            \
    }

static const struct metrics_label metrics_http_requests_labels[] = {
    METRICS_L_METHOD, METRICS_L_ROUTE, METRICS_L_CODE};
static const struct metrics_label metrics_http_duration_labels[] = {
    METRICS_L_METHOD, METRICS_L_ROUTE, METRICS_L_CLASS};
static const struct metrics_label metrics_route_labels[] = {METRICS_L_ROUTE};
static const struct metrics_label metrics_idem_labels[] = {
    {"result", metrics_idem_results, NULL, 4}};
static const struct metrics_label metrics_role_labels[] = {METRICS_L_ROLE};
static const struct metrics_label metrics_role_state_labels[] = {METRICS_L_ROLE, METRICS_L_STATE};
static const struct metrics_label metrics_reason_labels[] = {{"reason", metrics_reasons, NULL, 2}};
static const struct metrics_label metrics_result_labels[] = {METRICS_L_RESULT};
static const struct metrics_label metrics_retry_labels[] = {
    {"reason", metrics_retry_reasons, NULL, 2}};
static const struct metrics_label metrics_cache_result_labels[] = {
    {"result", metrics_cache_results, NULL, 4}};
static const struct metrics_label metrics_cache_write_labels[] = {
    {"result", metrics_cache_write_results, NULL, 2}};
static const struct metrics_label metrics_breaker_labels[] = {
    {"state", metrics_breaker_states, NULL, 3}};
static const struct metrics_label metrics_auth_reason_labels[] = {
    {"reason", NULL, metrics_auth_reason_value, LIMIT_METRICS_RESULTS_MAX}};
static const struct metrics_label metrics_build_labels[] = {{"version", metrics_version, NULL, 1},
                                                            {"commit", metrics_commit, NULL, 1}};

#define METRICS_LABELS(a) (a), (sizeof(a) / sizeof((a)[0]))
#define METRICS_BUCKETS(a) (a), (sizeof(a) / sizeof((a)[0]))
#define METRICS_SECONDS METRICS_NS_PER_S

static const struct metrics_family_def metrics_ledgerd_defs[METRIC_COUNT] = {
    [METRIC_HTTP_REQUESTS] = {"ledgerd_http_requests_total",
                              "HTTP requests answered, by method, route template and status code.",
                              METRICS_COUNTER, METRICS_LABELS(metrics_http_requests_labels), NULL,
                              0, 0, true, false},
    [METRIC_HTTP_DURATION] = {"ledgerd_http_request_duration_seconds",
                              "Time from a request's headers to its reply being sent.",
                              METRICS_HISTOGRAM, METRICS_LABELS(metrics_http_duration_labels),
                              METRICS_BUCKETS(metrics_duration_bounds_ns), METRICS_SECONDS, true,
                              false},
    [METRIC_HTTP_IN_FLIGHT] = {"ledgerd_http_requests_in_flight",
                               "Requests being processed: body complete, reply not yet sent.",
                               METRICS_GAUGE, NULL, 0, NULL, 0, 0, false, false},
    [METRIC_HTTP_BODY_BYTES] = {"ledgerd_http_request_body_bytes",
                                "Request body sizes of the routes that take a body.",
                                METRICS_HISTOGRAM, METRICS_LABELS(metrics_route_labels),
                                METRICS_BUCKETS(metrics_body_bounds_bytes), 0, true, false},
    [METRIC_IDEM_LOOKUPS] = {"ledgerd_idempotency_lookups_total",
                             "Idempotency-Key lookups: hit (stored response replayed), miss (the "
                             "request ran), reused (422, another request), in_flight (409).",
                             METRICS_COUNTER, METRICS_LABELS(metrics_idem_labels), NULL, 0, 0,
                             false, false},
    [METRIC_DB_POOL_SIZE] = {"ledgerd_db_pool_size",
                             "Database connections open, by role (SQLite: one writer, one "
                             "reader per I/O thread that has read).",
                             METRICS_GAUGE, METRICS_LABELS(metrics_role_labels), NULL, 0, 0, false,
                             false},
    [METRIC_DB_POOL_CONNS] = {"ledgerd_db_pool_connections",
                              "Database connections by role and state (in_use: running a "
                              "transaction or a read).",
                              METRICS_GAUGE, METRICS_LABELS(metrics_role_state_labels), NULL, 0, 0,
                              false, false},
    [METRIC_DB_ACQUIRE_WAIT] = {"ledgerd_db_pool_acquire_wait_seconds",
                                "Time to get a database connection (readers: the thread's own; "
                                "the writer: BEGIN IMMEDIATE).",
                                METRICS_HISTOGRAM, METRICS_LABELS(metrics_role_labels),
                                METRICS_BUCKETS(metrics_duration_bounds_ns), METRICS_SECONDS, false,
                                false},
    [METRIC_DB_ACQUIRE_TIMEOUT] = {"ledgerd_db_pool_acquire_timeouts_total",
                                   "Connection acquisitions that gave up (SQLite: busy timeout).",
                                   METRICS_COUNTER, METRICS_LABELS(metrics_role_labels), NULL, 0, 0,
                                   false, false},
    [METRIC_COMMIT_QUEUE_DEPTH] = {"ledgerd_commit_queue_depth",
                                   "Commands waiting for the commit worker.", METRICS_GAUGE, NULL,
                                   0, NULL, 0, 0, false, false},
    [METRIC_COMMIT_QUEUE_CAPACITY] = {"ledgerd_commit_queue_capacity",
                                      "Commands the commit queue holds before answering 503 "
                                      "queue_full (LEDGERD_QUEUE_DEPTH_MAX).",
                                      METRICS_GAUGE, NULL, 0, NULL, 0, 0, false, false},
    [METRIC_COMMIT_QUEUE_REJECTIONS] = {"ledgerd_commit_queue_rejections_total",
                                        "Commands refused by the commit queue, by reason.",
                                        METRICS_COUNTER, METRICS_LABELS(metrics_reason_labels),
                                        NULL, 0, 0, false, false},
    [METRIC_COMMIT_QUEUE_WAIT] = {"ledgerd_commit_queue_wait_seconds",
                                  "Time a command waited in the commit queue (submit to taken).",
                                  METRICS_HISTOGRAM, NULL, 0,
                                  METRICS_BUCKETS(metrics_duration_bounds_ns), METRICS_SECONDS,
                                  false, false},
    [METRIC_COMMIT_BATCH_COMMANDS] = {"ledgerd_commit_batch_commands",
                                      "Commands (requests) per group commit.", METRICS_HISTOGRAM,
                                      NULL, 0, METRICS_BUCKETS(metrics_batch_commands_bounds), 0,
                                      false, false},
    [METRIC_COMMIT_BATCH_ITEMS] = {"ledgerd_commit_batch_items",
                                   "Ledger items (accounts, transfers) per group commit.",
                                   METRICS_HISTOGRAM, NULL, 0,
                                   METRICS_BUCKETS(metrics_batch_items_bounds), 0, false, false},
    [METRIC_COMMIT_DURATION] = {"ledgerd_commit_duration_seconds",
                                "Group commit transactions, BEGIN to COMMIT including the fsync.",
                                METRICS_HISTOGRAM, NULL, 0,
                                METRICS_BUCKETS(metrics_duration_bounds_ns), METRICS_SECONDS, false,
                                false},
    [METRIC_COMMIT_FAILURES] = {"ledgerd_commit_failures_total",
                                "Write transactions rolled back (a batch answered 503 "
                                "storage_unavailable, or an expiry sweep).",
                                METRICS_COUNTER, NULL, 0, NULL, 0, 0, false, false},
    [METRIC_TRANSFERS] = {"ledgerd_transfers_total",
                          "Transfers applied in committed batches, by result code.",
                          METRICS_COUNTER, METRICS_LABELS(metrics_result_labels), NULL, 0, 0, false,
                          false},
    [METRIC_ACCOUNTS] = {"ledgerd_accounts_total",
                         "Account creations applied in committed batches, by result code.",
                         METRICS_COUNTER, METRICS_LABELS(metrics_result_labels), NULL, 0, 0, false,
                         false},
    [METRIC_PENDING_EXPIRED] = {"ledgerd_pending_transfers_expired_total",
                                "Pending transfers expired by the commit worker.", METRICS_COUNTER,
                                NULL, 0, NULL, 0, 0, false, false},
    [METRIC_PROCESS_CPU] = {"process_cpu_seconds_total", "Total user and system CPU time spent.",
                            METRICS_COUNTER, NULL, 0, NULL, 0, METRICS_SECONDS, false, false},
    [METRIC_PROCESS_RSS] = {"process_resident_memory_bytes", "Resident memory size.", METRICS_GAUGE,
                            NULL, 0, NULL, 0, 0, false, false},
    [METRIC_PROCESS_VMS] = {"process_virtual_memory_bytes", "Virtual memory size.", METRICS_GAUGE,
                            NULL, 0, NULL, 0, 0, false, false},
    [METRIC_PROCESS_OPEN_FDS] = {"process_open_fds", "Open file descriptors.", METRICS_GAUGE, NULL,
                                 0, NULL, 0, 0, false, false},
    [METRIC_PROCESS_MAX_FDS] = {"process_max_fds", "Limit of open file descriptors.", METRICS_GAUGE,
                                NULL, 0, NULL, 0, 0, false, false},
    [METRIC_PROCESS_START_TIME] = {"process_start_time_seconds",
                                   "Start time of the process since the Unix epoch.", METRICS_GAUGE,
                                   NULL, 0, NULL, 0, METRICS_SECONDS, false, false},
    [METRIC_PROCESS_THREADS] = {"process_threads", "Threads of the process.", METRICS_GAUGE, NULL,
                                0, NULL, 0, 0, false, false},
    [METRIC_BUILD_INFO] = {"ledgerd_build_info", "The running build: version and commit (= 1).",
                           METRICS_GAUGE, METRICS_LABELS(metrics_build_labels), NULL, 0, 0, false,
                           true},
    [METRIC_LOG_DROPPED] = {"ledgerd_log_lines_dropped_total",
                            "Log lines that could not be written.", METRICS_COUNTER, NULL, 0, NULL,
                            0, 0, false, false},
    [METRIC_SPANS_DROPPED] = {"ledgerd_spans_dropped_total",
                              "Trace spans dropped before export (queue full, export failed).",
                              METRICS_COUNTER, NULL, 0, NULL, 0, 0, false, false},
    [METRIC_SPANS_EXPORTED] = {"ledgerd_spans_exported_total", "Trace spans exported.",
                               METRICS_COUNTER, NULL, 0, NULL, 0, 0, false, false},
    [METRIC_AUTH_FAILURES] = {"ledgerd_auth_failures_total",
                              "Requests refused by authentication or authorization, by reason "
                              "(missing, malformed or refused credentials, rate limited, "
                              "insufficient scope).",
                              METRICS_COUNTER, METRICS_LABELS(metrics_auth_reason_labels), NULL, 0,
                              0, false, false},
    [METRIC_AUDIT_RECORDS] = {"ledgerd_audit_records_total",
                              "Audit records this process appended to the trail.", METRICS_COUNTER,
                              NULL, 0, NULL, 0, 0, false, false},
    [METRIC_AUDIT_DROPPED] = {"ledgerd_audit_records_dropped_total",
                              "Audit records of refused requests that could not be written "
                              "(the queue for them was full, or their transaction failed).",
                              METRICS_COUNTER, NULL, 0, NULL, 0, 0, false, false},
    [METRIC_UP] = {"ledgerd_up", "1 when ready to take traffic (GET /readyz would answer 200).",
                   METRICS_GAUGE, NULL, 0, NULL, 0, 0, false, false},
    [METRIC_DB_POOL_MAX] = {"ledgerd_db_pool_max_connections",
                            "Connections a pool may open, by role (PostgreSQL: "
                            "LEDGERD_DB_POOL_SIZE readers, LEDGERD_DB_WRITERS writers).",
                            METRICS_GAUGE, METRICS_LABELS(metrics_role_labels), NULL, 0, 0, false,
                            false},
    [METRIC_DB_RETRIES] = {"ledgerd_db_transaction_retries_total",
                           "Write transactions run again, by reason (PostgreSQL: serialization "
                           "failures, deadlocks, concurrent inserts of the same key).",
                           METRICS_COUNTER, METRICS_LABELS(metrics_retry_labels), NULL, 0, 0, false,
                           false},
    [METRIC_DB_WORK_QUEUE_DEPTH] = {"ledgerd_db_work_queue_depth",
                                    "Requests waiting for a database worker thread (PostgreSQL, "
                                    "Redis: reads never run on I/O threads).",
                                    METRICS_GAUGE, NULL, 0, NULL, 0, 0, false, false},
    [METRIC_DB_WORK_REJECTIONS] = {"ledgerd_db_work_rejections_total",
                                   "Requests answered 503 because the database work queue was "
                                   "full.",
                                   METRICS_COUNTER, NULL, 0, NULL, 0, 0, false, false},
    [METRIC_CACHE_LOOKUPS] = {"ledgerd_cache_lookups_total",
                              "Idempotency cache (Redis) lookups, by result (bypassed: the "
                              "circuit breaker is open or Redis is not connected).",
                              METRICS_COUNTER, METRICS_LABELS(metrics_cache_result_labels), NULL, 0,
                              0, false, false},
    [METRIC_CACHE_WRITES] = {"ledgerd_cache_writes_total",
                             "Idempotency records written to the cache (Redis), by result.",
                             METRICS_COUNTER, METRICS_LABELS(metrics_cache_write_labels), NULL, 0,
                             0, false, false},
    [METRIC_CACHE_BREAKER_STATE] = {"ledgerd_cache_breaker_state",
                                    "The idempotency cache's circuit breaker: 1 for its current "
                                    "state.",
                                    METRICS_GAUGE, METRICS_LABELS(metrics_breaker_labels), NULL, 0,
                                    0, false, false},
    [METRIC_CACHE_BREAKER_TRANSITIONS] = {"ledgerd_cache_breaker_transitions_total",
                                          "Circuit breaker transitions into each state.",
                                          METRICS_COUNTER, METRICS_LABELS(metrics_breaker_labels),
                                          NULL, 0, 0, false, false},
};

static _Atomic(struct metrics_registry *) metrics_global;
static pthread_once_t metrics_global_once = PTHREAD_ONCE_INIT;

static void metrics_global_init(void)
{
    struct metrics_registry *r = NULL;
    int rc = metrics_registry_new(metrics_ledgerd_defs, METRIC_COUNT, &r);
    ASSERT(rc == 0); /* the table above is valid; only memory can fail, at start-up */
    metrics_reg_set(r, METRIC_BUILD_INFO, 0, 1);
    atomic_store_explicit(&metrics_global, r, memory_order_release);
}

struct metrics_registry *metrics_ledgerd(void)
{
    struct metrics_registry *r = atomic_load_explicit(&metrics_global, memory_order_acquire);
    if (r == NULL) {
        (void)pthread_once(&metrics_global_once, metrics_global_init);
        r = atomic_load_explicit(&metrics_global, memory_order_acquire);
    }
    return r;
}

void metrics_add(enum metrics_id id, size_t series, uint64_t n)
{
    metrics_reg_add(metrics_ledgerd(), id, series, n);
}

void metrics_gauge_add(enum metrics_id id, size_t series, int64_t delta)
{
    metrics_reg_gauge_add(metrics_ledgerd(), id, series, delta);
}

void metrics_set(enum metrics_id id, size_t series, int64_t value)
{
    metrics_reg_set(metrics_ledgerd(), id, series, value);
}

void metrics_observe(enum metrics_id id, size_t series, uint64_t value)
{
    metrics_reg_observe(metrics_ledgerd(), id, series, value);
}

int64_t metrics_value(enum metrics_id id, size_t series)
{
    return metrics_reg_value(metrics_ledgerd(), id, series);
}

size_t metrics_routes_register(const char *const *templates, size_t n)
{
    ASSERT(templates != NULL || n == 0);
    size_t taken = n < LIMIT_METRICS_ROUTES_MAX - 1 ? n : LIMIT_METRICS_ROUTES_MAX - 1;
    for (size_t i = 0; i < taken; i++) {
        atomic_store(&metrics_route_names[i + 1], templates[i]);
    }
    return taken;
}

void metrics_auth_reasons_register(const char *const *names, size_t n)
{
    ASSERT(names != NULL && n <= LIMIT_METRICS_RESULTS_MAX);
    for (size_t i = 0; i < n; i++) {
        atomic_store(&metrics_auth_reason_names[i], names[i]);
    }
}

void metrics_results_register(const char *const *codes, size_t n)
{
    ASSERT(codes != NULL && n <= LIMIT_METRICS_RESULTS_MAX);
    for (size_t i = 0; i < n; i++) {
        atomic_store(&metrics_result_names[i], codes[i]);
    }
}

static size_t metrics_code_index(int status)
{
    for (size_t i = 0; i < METRICS_CODES_COUNT; i++) {
        if (metrics_codes[i] == status) {
            return i;
        }
    }
    return METRICS_CODES_COUNT; /* "other" */
}

size_t metrics_http_requests_series(size_t method, size_t route, int status)
{
    ASSERT(method < METRICS_METHODS_COUNT && route < LIMIT_METRICS_ROUTES_MAX);
    return (method * LIMIT_METRICS_ROUTES_MAX + route) * (METRICS_CODES_COUNT + 1) +
           metrics_code_index(status);
}

size_t metrics_http_duration_series(size_t method, size_t route, int status)
{
    ASSERT(method < METRICS_METHODS_COUNT && route < LIMIT_METRICS_ROUTES_MAX);
    size_t cls = status < 300 ? 0 : status < 400 ? 1 : status < 500 ? 2 : 3;
    return (method * LIMIT_METRICS_ROUTES_MAX + route) * 4 + cls;
}

size_t metrics_db_conns_series(enum metrics_db_role role, enum metrics_db_state state)
{
    return (size_t)role * 2 + (size_t)state;
}

/* ---------------------------------------------------------------------------------------
 * Collection: what is read rather than counted
 * ------------------------------------------------------------------------------------- */

/* Reads up to cap - 1 bytes of a file, NUL-terminated. The length read, or -1. */
static ssize_t metrics_read_file(const char *path, char *dst, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    size_t len = 0;
    while (len < cap - 1) {
        ssize_t n = read(fd, dst + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    (void)close(fd);
    dst[len] = '\0';
    return (ssize_t)len;
}

/* Parses a decimal field at *p, moving past it and the blanks after; 0 when malformed. */
static uint64_t metrics_field(const char **p)
{
    const char *s = *p;
    uint64_t v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
    }
    while (*s != '\0' && *s != ' ' && *s != '\n') {
        s++; /* a field that is not a number (the state letter) */
    }
    while (*s == ' ') {
        s++;
    }
    *p = s;
    return v;
}

/* The boot time (btime of /proc/stat) in seconds since the epoch, read once. */
static int64_t metrics_boot_time_s(void)
{
    static _Atomic int64_t cached;
    int64_t v = atomic_load(&cached);
    if (v != 0) {
        return v;
    }
    FILE *f = fopen("/proc/stat", "re");
    if (f == NULL) {
        return 0;
    }
    char line[256];
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "btime ", 6) == 0) {
            const char *p = line + 6;
            v = (int64_t)metrics_field(&p);
            break;
        }
    }
    (void)fclose(f);
    atomic_store(&cached, v);
    return v;
}

static void metrics_collect_stat(void)
{
    char stat[1024];
    if (metrics_read_file("/proc/self/stat", stat, sizeof(stat)) <= 0) {
        return;
    }
    /* The command name is in parentheses and may hold anything: fields start after the last
     * ')'. Field 3 (state) is the first after it; proc(5) numbers them from 1. */
    const char *p = strrchr(stat, ')');
    if (p == NULL) {
        return;
    }
    p += 2;
    uint64_t field[25] = {0};
    for (size_t i = 3; i < 25 && *p != '\0'; i++) {
        field[i] = metrics_field(&p);
    }
    long tck = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    if (tck <= 0 || page <= 0) {
        return;
    }
    uint64_t ns_per_tick = METRICS_NS_PER_S / (uint64_t)tck;
    metrics_set(METRIC_PROCESS_CPU, 0, (int64_t)((field[14] + field[15]) * ns_per_tick));
    metrics_set(METRIC_PROCESS_THREADS, 0, (int64_t)field[20]);
    metrics_set(METRIC_PROCESS_VMS, 0, (int64_t)field[23]);
    metrics_set(METRIC_PROCESS_RSS, 0, (int64_t)(field[24] * (uint64_t)page));
    int64_t boot_s = metrics_boot_time_s();
    if (boot_s > 0) {
        metrics_set(METRIC_PROCESS_START_TIME, 0,
                    boot_s * (int64_t)METRICS_NS_PER_S + (int64_t)(field[22] * ns_per_tick));
    }
}

static void metrics_collect_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        int64_t n = 0;
        const struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            n += e->d_name[0] != '.';
        }
        (void)closedir(d);
        metrics_set(METRIC_PROCESS_OPEN_FDS, 0, n > 0 ? n - 1 : 0); /* not the listing's own */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        uint64_t max = rl.rlim_cur == RLIM_INFINITY ? (uint64_t)INT64_MAX : (uint64_t)rl.rlim_cur;
        metrics_set(METRIC_PROCESS_MAX_FDS, 0,
                    (int64_t)(max > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : max));
    }
}

/* Idle connections are what is open and not in use. */
static void metrics_collect_pool(void)
{
    for (int role = METRICS_DB_WRITER; role <= METRICS_DB_READER; role++) {
        int64_t size = metrics_value(METRIC_DB_POOL_SIZE, (size_t)role);
        int64_t busy =
            metrics_value(METRIC_DB_POOL_CONNS,
                          metrics_db_conns_series((enum metrics_db_role)role, METRICS_DB_IN_USE));
        metrics_set(METRIC_DB_POOL_CONNS,
                    metrics_db_conns_series((enum metrics_db_role)role, METRICS_DB_IDLE),
                    size > busy ? size - busy : 0);
    }
}

void metrics_collect(void)
{
    metrics_collect_stat();
    metrics_collect_fds();
    metrics_collect_pool();
    uint64_t dropped = log_dropped();
    metrics_set(METRIC_LOG_DROPPED, 0, (int64_t)(dropped > INT64_MAX ? INT64_MAX : dropped));
    uint64_t spans = otlp_spans_dropped_total();
    metrics_set(METRIC_SPANS_DROPPED, 0, (int64_t)(spans > INT64_MAX ? INT64_MAX : spans));
    spans = otlp_spans_exported_total();
    metrics_set(METRIC_SPANS_EXPORTED, 0, (int64_t)(spans > INT64_MAX ? INT64_MAX : spans));
}

int metrics_render(enum metrics_format f, struct buf *out)
{
    metrics_collect();
    return metrics_reg_render(metrics_ledgerd(), f, out);
}
