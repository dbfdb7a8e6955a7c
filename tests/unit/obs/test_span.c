/*
 * test_span.c — the tracing model as a collector sees it: sampler decisions (ratio boundaries,
 * parents, determinism), OTEL_RESOURCE_ATTRIBUTES parsing with malformed and hostile input, the
 * resource, HTTP server span conventions, the OTLP JSON encoding checked field by field with
 * jansson, and the attribute and link limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/rand.h"
#include "obs/otlp.h"
#include "obs/span.h"

/* ---- helpers ------------------------------------------------------------------------------- */

/* A trace id whose last 7 bytes (the sampler's 56 random bits) are r. */
static void trace_id_with_random(uint64_t r, uint8_t id[16])
{
    memset(id, 0xAB, 16);
    for (int i = 15; i >= 9; i--) {
        id[i] = (uint8_t)(r & 0xFF);
        r >>= 8;
    }
}

static struct span_sampler sampler(const char *name, const char *arg)
{
    struct span_sampler s;
    char err[256];
    assert_int_equal(span_sampler_init(&s, name, arg, err, sizeof(err)), 0);
    return s;
}

static const char *const *fake_env;

static const char *fake_getenv(const char *name)
{
    for (size_t i = 0; fake_env != NULL && fake_env[i] != NULL; i += 2) {
        if (strcmp(fake_env[i], name) == 0) {
            return fake_env[i + 1];
        }
    }
    return NULL;
}

/* Encodes one span with a small resource and parses the result. */
static json_t *encode_one(struct span *sp)
{
    struct span_resource res;
    span_kv_init(&res.attrs);
    assert_int_equal(span_kv_set(&res.attrs, "service.name", "ledgerd"), 0);
    struct buf out;
    buf_init(&out, LIMIT_OTLP_REQUEST_BYTES_MAX);
    size_t encoded = 0;
    assert_int_equal(otlp_encode_json(&out, &res, "1.2.3", &sp, 1, &encoded), 0);
    assert_int_equal(encoded, 1);
    json_error_t jerr;
    json_t *root = json_loadb(out.data, out.len, 0, &jerr);
    if (root == NULL) {
        fprintf(stderr, "invalid JSON: %s\n%s\n", jerr.text, out.data);
    }
    assert_non_null(root);
    buf_release(&out);
    return root;
}

static json_t *only_span(json_t *root)
{
    json_t *rs = json_object_get(root, "resourceSpans");
    assert_int_equal(json_array_size(rs), 1);
    json_t *ss = json_object_get(json_array_get(rs, 0), "scopeSpans");
    assert_int_equal(json_array_size(ss), 1);
    json_t *spans = json_object_get(json_array_get(ss, 0), "spans");
    assert_int_equal(json_array_size(spans), 1);
    return json_array_get(spans, 0);
}

/* The value object of attribute key in an OTLP attribute array, or NULL. */
static json_t *attr_value(json_t *attrs, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(attrs, i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "key")), key) == 0) {
            assert_int_equal(json_object_size(a), 2); /* key and value, nothing else */
            return json_object_get(a, "value");
        }
    }
    return NULL;
}

static const char *attr_string(json_t *attrs, const char *key)
{
    json_t *v = attr_value(attrs, key);
    assert_non_null(v);
    assert_int_equal(json_object_size(v), 1);
    return json_string_value(json_object_get(v, "stringValue"));
}

/* The attribute's intValue, which the JSON mapping writes as a decimal string. */
static long long attr_int(json_t *attrs, const char *key)
{
    json_t *v = attr_value(attrs, key);
    assert_non_null(v);
    json_t *iv = json_object_get(v, "intValue");
    assert_true(json_is_string(iv));
    return strtoll(json_string_value(iv), NULL, 10);
}

static const char *str_of(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

/* ---- sampler --------------------------------------------------------------------------------- */

static void test_sampler_ratio_boundaries(void **state)
{
    (void)state;
    struct span_sampler zero = sampler("traceidratio", "0");
    struct span_sampler one = sampler("traceidratio", "1");
    uint8_t id[16];
    /* The extremes of the random bits. */
    trace_id_with_random(0, id);
    assert_false(span_sampler_should_sample(&zero, id, false, false));
    assert_true(span_sampler_should_sample(&one, id, false, false));
    trace_id_with_random(((uint64_t)1 << 56) - 1, id);
    assert_false(span_sampler_should_sample(&zero, id, false, false));
    assert_true(span_sampler_should_sample(&one, id, false, false));
    for (int i = 0; i < 2000; i++) {
        rand_bytes(id, sizeof(id));
        assert_false(span_sampler_should_sample(&zero, id, false, false));
        assert_true(span_sampler_should_sample(&one, id, false, false));
    }
}

static void test_sampler_ratio_threshold(void **state)
{
    (void)state;
    struct span_sampler q = sampler("parentbased_traceidratio", "0.25");
    uint64_t t = ((uint64_t)3 << 56) / 4; /* reject below 0.75 * 2^56 */
    uint8_t id[16];
    trace_id_with_random(t, id);
    assert_true(span_sampler_should_sample(&q, id, false, false));
    trace_id_with_random(t - 1, id);
    assert_false(span_sampler_should_sample(&q, id, false, false));
    /* The leading bytes play no part. */
    id[0] ^= 0xFF;
    assert_false(span_sampler_should_sample(&q, id, false, false));

    /* About a quarter of random roots. */
    int sampled = 0;
    for (int i = 0; i < 20000; i++) {
        rand_bytes(id, sizeof(id));
        sampled += span_sampler_should_sample(&q, id, false, false) ? 1 : 0;
    }
    assert_in_range(sampled, 4400, 5600);
}

static void test_sampler_deterministic(void **state)
{
    (void)state;
    struct span_sampler a = sampler("parentbased_traceidratio", "0.25");
    struct span_sampler b = sampler("traceidratio", "0.25");
    uint8_t id[16];
    for (int i = 0; i < 500; i++) {
        rand_bytes(id, sizeof(id));
        bool first = span_sampler_should_sample(&a, id, false, false);
        for (int k = 0; k < 5; k++) {
            assert_int_equal(span_sampler_should_sample(&a, id, false, false), first);
            /* Another instance with the same ratio takes the same decision. */
            assert_int_equal(span_sampler_should_sample(&b, id, false, false), first);
        }
    }
}

static void test_sampler_parent(void **state)
{
    (void)state;
    uint8_t id[16];
    trace_id_with_random(0, id); /* a ratio root would never sample this one */
    struct span_sampler pb = sampler("parentbased_traceidratio", "0");
    assert_true(span_sampler_should_sample(&pb, id, true, true));
    assert_false(span_sampler_should_sample(&pb, id, false, false));
    trace_id_with_random(((uint64_t)1 << 56) - 1, id);
    struct span_sampler pb1 = sampler("parentbased_traceidratio", "1");
    assert_false(span_sampler_should_sample(&pb1, id, true, false));
    assert_true(span_sampler_should_sample(&pb1, id, false, false));

    struct span_sampler on = sampler("parentbased_always_on", NULL);
    assert_false(span_sampler_should_sample(&on, id, true, false));
    assert_true(span_sampler_should_sample(&on, id, true, true));
    assert_true(span_sampler_should_sample(&on, id, false, false));
    struct span_sampler off = sampler("parentbased_always_off", NULL);
    assert_true(span_sampler_should_sample(&off, id, true, true));
    assert_false(span_sampler_should_sample(&off, id, false, false));

    /* The non-parent-based samplers ignore the parent. */
    struct span_sampler aon = sampler("always_on", NULL);
    struct span_sampler aoff = sampler("always_off", NULL);
    assert_true(span_sampler_should_sample(&aon, id, true, false));
    assert_false(span_sampler_should_sample(&aoff, id, true, true));
    struct span_sampler r0 = sampler("traceidratio", "0");
    assert_false(span_sampler_should_sample(&r0, id, true, true));
}

static void test_sampler_config(void **state)
{
    (void)state;
    struct span_sampler s;
    char err[256];
    /* Unset: parentbased_always_on. */
    assert_int_equal(span_sampler_init(&s, NULL, NULL, err, sizeof(err)), 0);
    assert_int_equal(s.kind, SPAN_SAMPLER_PARENTBASED_ALWAYS_ON);
    /* A ratio sampler without an argument samples everything. */
    assert_int_equal(span_sampler_init(&s, "traceidratio", "", err, sizeof(err)), 0);
    assert_true(s.ratio == 1.0);
    assert_int_equal(span_sampler_init(&s, "parentbased_traceidratio", ".5", err, sizeof(err)), 0);
    assert_true(s.ratio == 0.5);

    static const char *const bad_args[] = {"-0.1", "1.5",  "nan",  "inf", "1e-1", "0x1", "0.2.5",
                                           ".",    " 0.1", "0.1 ", "abc", "1,5",  "+0.5"};
    for (size_t i = 0; i < sizeof(bad_args) / sizeof(bad_args[0]); i++) {
        err[0] = '\0';
        assert_int_equal(span_sampler_init(&s, "traceidratio", bad_args[i], err, sizeof(err)),
                         -EINVAL);
        assert_non_null(strstr(err, "OTEL_TRACES_SAMPLER_ARG"));
    }
    static const char *const bad_names[] = {"jaeger_remote", "ALWAYS_ON", "always_on ", "xray"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        err[0] = '\0';
        assert_int_equal(span_sampler_init(&s, bad_names[i], NULL, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "OTEL_TRACES_SAMPLER"));
    }
}

/* ---- key=value lists --------------------------------------------------------------------------
 */

static int parse(struct span_kv_list *l, const char *s, char *err)
{
    span_kv_init(l);
    return span_kv_parse(l, s, strlen(s), err, 200);
}

static void test_kv_valid(void **state)
{
    (void)state;
    static struct span_kv_list l;
    char err[200];
    assert_int_equal(parse(&l, "a=b,c.d=e", err), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(span_kv_key(&l, 0), "a");
    assert_string_equal(span_kv_value(&l, 0), "b");
    assert_string_equal(span_kv_get(&l, "c.d"), "e");

    /* Optional whitespace around members, keys and values. */
    assert_int_equal(parse(&l, " \tk1 = v1 ,  k2=v2\t", err), 0);
    assert_string_equal(span_kv_get(&l, "k1"), "v1");
    assert_string_equal(span_kv_get(&l, "k2"), "v2");

    /* Percent-decoding, including UTF-8 and the characters that must be encoded. */
    assert_int_equal(parse(&l, "k=hello%20world%2C%3B%25%22,u=caf%C3%A9,e=", err), 0);
    assert_string_equal(span_kv_get(&l, "k"), "hello world,;%\"");
    assert_string_equal(span_kv_get(&l, "u"), "caf\xc3\xa9");
    assert_string_equal(span_kv_get(&l, "e"), "");
    /* A value may hold '=' and other baggage-octets as they are. */
    assert_int_equal(parse(&l, "t=a=b/c:d?e", err), 0);
    assert_string_equal(span_kv_get(&l, "t"), "a=b/c:d?e");

    /* A later duplicate wins. */
    assert_int_equal(parse(&l, "k=1,k=2", err), 0);
    assert_int_equal(l.count, 1);
    assert_string_equal(span_kv_get(&l, "k"), "2");

    /* Empty means unset. */
    assert_int_equal(parse(&l, "", err), 0);
    assert_int_equal(l.count, 0);
    assert_int_equal(parse(&l, "   ", err), 0);
    assert_int_equal(l.count, 0);
}

static void test_kv_malformed(void **state)
{
    (void)state;
    static struct span_kv_list l;
    char err[200];
    static const char *const bad[] = {
        "a",        "=b",          "a=b,,c=d", "a=b,",    ",a=b",
        "k=%",      "k=%4",        "k=%zz",    "k=%00",   "k=%0A",
        "k=%7F",    "k=va lue",    "k=\"q\"",  "k=a;p=1", "k\xc3\xa9=v",
        "k=\\",     "k y=v",       "k=%FF",    "k=%C3",   "k=%ED%A0%80",
        "k=%C0%AF", "k=v\r\nX: y", "k=\x01",   "(k)=v",   "k=%F4%90%80%80",
        "a=1,b",    "k=v\x7f",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        span_kv_init(&l);
        assert_int_equal(span_kv_set(&l, "kept", "yes"), 0);
        if (span_kv_parse(&l, bad[i], strlen(bad[i]), err, sizeof(err)) != -EINVAL) {
            fail_msg("accepted: %s", bad[i]);
        }
        /* A clear reason that names the member, and the list as it was. */
        assert_non_null(strstr(err, "member "));
        assert_int_equal(l.count, 1);
        assert_string_equal(span_kv_get(&l, "kept"), "yes");
    }
    /* The reason says what is wrong. */
    assert_int_equal(parse(&l, "a=1,b=%G1", err), -EINVAL);
    assert_string_equal(err, "member 2: '%' must be followed by two hex digits");
}

static void test_kv_hostile(void **state)
{
    (void)state;
    static struct span_kv_list l;
    static char s[LIMIT_OTEL_KV_BYTES_MAX + 2];
    char err[200];

    /* Too many members. */
    size_t n = 0;
    for (int i = 0; i <= LIMIT_OTEL_KV_PAIRS_MAX; i++) {
        n += (size_t)snprintf(s + n, sizeof(s) - n, "%sk%d=v", i > 0 ? "," : "", i);
    }
    assert_int_equal(parse(&l, s, err), -EINVAL);
    assert_non_null(strstr(err, "too many"));
    assert_int_equal(l.count, 0);
    /* Exactly the maximum is fine. */
    char *last = strrchr(s, ',');
    *last = '\0';
    assert_int_equal(parse(&l, s, err), 0);
    assert_int_equal(l.count, LIMIT_OTEL_KV_PAIRS_MAX);

    /* The longest accepted input: one value of the whole length, in percent-encoding too. */
    memset(s, 'x', LIMIT_OTEL_KV_BYTES_MAX);
    s[0] = 'k';
    s[1] = '=';
    s[LIMIT_OTEL_KV_BYTES_MAX] = '\0';
    assert_int_equal(parse(&l, s, err), 0);
    assert_int_equal(strlen(span_kv_get(&l, "k")), LIMIT_OTEL_KV_BYTES_MAX - 2);
    s[LIMIT_OTEL_KV_BYTES_MAX] = 'x';
    s[LIMIT_OTEL_KV_BYTES_MAX + 1] = '\0';
    assert_int_equal(parse(&l, s, err), -EINVAL);
    assert_non_null(strstr(err, "longer than"));
    for (size_t i = 2; i + 3 <= LIMIT_OTEL_KV_BYTES_MAX; i += 3) {
        memcpy(s + i, "%41", 3);
    }
    s[2 + 3 * ((LIMIT_OTEL_KV_BYTES_MAX - 2) / 3)] = '\0';
    assert_int_equal(parse(&l, s, err), 0);
    assert_int_equal(strspn(span_kv_get(&l, "k"), "A"), (LIMIT_OTEL_KV_BYTES_MAX - 2) / 3);
    /* A run of '%' only. */
    memset(s, '%', LIMIT_OTEL_KV_BYTES_MAX);
    s[LIMIT_OTEL_KV_BYTES_MAX] = '\0';
    assert_int_equal(parse(&l, s, err), -EINVAL);

    /* Every single byte as a value, and the bytes after a '%': refused or a clean value. */
    for (int c = 1; c < 256; c++) {
        char in[8];
        snprintf(in, sizeof(in), "k=%c", c);
        int rc = parse(&l, in, err);
        assert_true(rc == 0 || rc == -EINVAL);
        if (rc == 0) {
            const char *v = span_kv_get(&l, "k");
            /* Whitespace is trimmed away; anything else kept is a printable octet. */
            bool blank = c == ' ' || c == '\t';
            assert_int_equal(strlen(v), blank ? 0 : 1);
            assert_true(blank || ((unsigned char)v[0] > 0x20 && (unsigned char)v[0] < 0x7F));
        }
        snprintf(in, sizeof(in), "k=%%%02X", c);
        rc = parse(&l, in, err);
        assert_true(rc == 0 || rc == -EINVAL);
        assert_int_equal(rc == 0, c >= 0x20 && c < 0x7F);
    }
    /* A NUL inside the input (len covers it) is refused, not a truncation. */
    assert_int_equal(span_kv_parse(&l, "k=a\0b", 5, err, sizeof(err)), -EINVAL);
}

/* ---- resource ---------------------------------------------------------------------------------
 */

static bool uuid_v4_shaped(const char *s)
{
    if (strlen(s) != 36 || s[14] != '4') {
        return false;
    }
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash != (s[i] == '-')) {
            return false;
        }
        if (!dash && strchr("0123456789abcdef", s[i]) == NULL) {
            return false;
        }
    }
    return strchr("89ab", s[19]) != NULL;
}

static void test_resource_defaults(void **state)
{
    (void)state;
    static struct span_resource r;
    static struct span_resource r2;
    char err[256];
    fake_env = NULL;
    assert_int_equal(span_resource_from_env(&r, fake_getenv, "0.1.0", err, sizeof(err)), 0);
    assert_string_equal(span_kv_get(&r.attrs, "service.name"), "ledgerd");
    assert_string_equal(span_kv_get(&r.attrs, "service.version"), "0.1.0");
    assert_string_equal(span_kv_get(&r.attrs, "deployment.environment.name"), "dev");
    assert_string_equal(span_kv_get(&r.attrs, "service.tier"), "critical");
    const char *id = span_kv_get(&r.attrs, "service.instance.id");
    assert_non_null(id);
    assert_true(uuid_v4_shaped(id));
    assert_int_equal(span_resource_from_env(&r2, fake_getenv, "0.1.0", err, sizeof(err)), 0);
    assert_string_not_equal(span_kv_get(&r2.attrs, "service.instance.id"), id);
}

static void test_resource_env(void **state)
{
    (void)state;
    static struct span_resource r;
    char err[256];
    static const char *const env[] = {
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=from-attrs,service.instance.id=pod-7,deployment.environment.name=attr-env,"
        "k8s.namespace.name=pay%20ments,service.tier=gold",
        "OTEL_SERVICE_NAME",
        "ledgerd-eu",
        "LEDGERD_ENV",
        "prod",
        NULL};
    fake_env = env;
    assert_int_equal(span_resource_from_env(&r, fake_getenv, "0.1.0", err, sizeof(err)), 0);
    /* OTEL_SERVICE_NAME and LEDGERD_ENV win over the attributes; the rest come through. */
    assert_string_equal(span_kv_get(&r.attrs, "service.name"), "ledgerd-eu");
    assert_string_equal(span_kv_get(&r.attrs, "deployment.environment.name"), "prod");
    assert_string_equal(span_kv_get(&r.attrs, "service.instance.id"), "pod-7");
    assert_string_equal(span_kv_get(&r.attrs, "k8s.namespace.name"), "pay ments");
    assert_string_equal(span_kv_get(&r.attrs, "service.tier"), "gold");

    static const char *const env2[] = {"OTEL_RESOURCE_ATTRIBUTES",
                                       "deployment.environment.name=staging",
                                       "LEDGERD_SERVICE_TIER", "bronze", NULL};
    fake_env = env2;
    assert_int_equal(span_resource_from_env(&r, fake_getenv, "0.1.0", err, sizeof(err)), 0);
    assert_string_equal(span_kv_get(&r.attrs, "deployment.environment.name"), "staging");
    assert_string_equal(span_kv_get(&r.attrs, "service.tier"), "bronze");

    static const char *const bad[] = {"OTEL_RESOURCE_ATTRIBUTES", "service.name=a,broken", NULL};
    fake_env = bad;
    err[0] = '\0';
    assert_int_equal(span_resource_from_env(&r, fake_getenv, "0.1.0", err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "OTEL_RESOURCE_ATTRIBUTES: member 2: member has no '='");
    assert_int_equal(r.attrs.count, 0);
    fake_env = NULL;
}

/* ---- spans and their JSON -------------------------------------------------------------------- */

static const uint8_t tid[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
static const uint8_t sid[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
static const uint8_t pid[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
static const uint8_t link_tid[16] = {0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
static const uint8_t link_sid[8] = {0, 0, 0, 0, 0, 0, 0, 0x2a};

static void test_json_every_field(void **state)
{
    (void)state;
    struct span *sp =
        span_new(SPAN_KIND_SERVER, tid, sid, pid, "POST /v1/transfers", 1700000000123456789LL);
    assert_non_null(sp);
    span_set_cstr(sp, "s", "quote\" back\\ nl\n tab\t");
    span_set_int(sp, "i.max", INT64_MAX);
    span_set_int(sp, "i.min", INT64_MIN);
    span_set_bool(sp, "b.t", true);
    span_set_bool(sp, "b.f", false);
    span_set_double(sp, "d", 0.25);
    span_set_double(sp, "d.nan", NAN);
    span_set_double(sp, "d.inf", -INFINITY);
    span_set_str(sp, "bad.utf8",
                 "a\xff"
                 "b",
                 3);
    span_add_link(sp, link_tid, link_sid);
    span_set_error(sp, "database \"locked\"");
    span_end(sp, 1700000000223456789LL);

    json_t *root = encode_one(sp);
    json_t *res_attrs = json_object_get(
        json_object_get(json_array_get(json_object_get(root, "resourceSpans"), 0), "resource"),
        "attributes");
    assert_string_equal(attr_string(res_attrs, "service.name"), "ledgerd");
    json_t *scope = json_object_get(
        json_array_get(json_object_get(json_array_get(json_object_get(root, "resourceSpans"), 0),
                                       "scopeSpans"),
                       0),
        "scope");
    assert_string_equal(str_of(scope, "name"), "ledgerd");
    assert_string_equal(str_of(scope, "version"), "1.2.3");

    json_t *s = only_span(root);
    assert_string_equal(str_of(s, "traceId"), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(str_of(s, "spanId"), "00f067aa0ba902b7");
    assert_string_equal(str_of(s, "parentSpanId"), "1122334455667788");
    assert_string_equal(str_of(s, "name"), "POST /v1/transfers");
    assert_true(json_is_integer(json_object_get(s, "kind")));
    assert_int_equal(json_integer_value(json_object_get(s, "kind")), 2);
    assert_string_equal(str_of(s, "startTimeUnixNano"), "1700000000123456789");
    assert_string_equal(str_of(s, "endTimeUnixNano"), "1700000000223456789");
    /* Sampled, parent not remote (span_new's parent was local). */
    assert_int_equal(json_integer_value(json_object_get(s, "flags")), 0x101);

    json_t *attrs = json_object_get(s, "attributes");
    assert_int_equal(json_array_size(attrs), 9);
    assert_string_equal(attr_string(attrs, "s"), "quote\" back\\ nl\n tab\t");
    assert_string_equal(str_of(attr_value(attrs, "i.max"), "intValue"), "9223372036854775807");
    assert_string_equal(str_of(attr_value(attrs, "i.min"), "intValue"), "-9223372036854775808");
    assert_true(json_is_true(json_object_get(attr_value(attrs, "b.t"), "boolValue")));
    assert_true(json_is_false(json_object_get(attr_value(attrs, "b.f"), "boolValue")));
    json_t *d = json_object_get(attr_value(attrs, "d"), "doubleValue");
    assert_true(json_is_real(d));
    assert_true(json_real_value(d) == 0.25);
    assert_string_equal(str_of(attr_value(attrs, "d.nan"), "doubleValue"), "NaN");
    assert_string_equal(str_of(attr_value(attrs, "d.inf"), "doubleValue"), "-Infinity");
    assert_string_equal(attr_string(attrs, "bad.utf8"), "a\xef\xbf\xbd"
                                                        "b");
    assert_int_equal(json_integer_value(json_object_get(s, "droppedAttributesCount")), 0);

    json_t *links = json_object_get(s, "links");
    assert_int_equal(json_array_size(links), 1);
    json_t *l = json_array_get(links, 0);
    assert_string_equal(str_of(l, "traceId"), "ff000000000000000000000000000001");
    assert_string_equal(str_of(l, "spanId"), "000000000000002a");
    assert_int_equal(json_integer_value(json_object_get(s, "droppedLinksCount")), 0);

    json_t *st = json_object_get(s, "status");
    assert_int_equal(json_integer_value(json_object_get(st, "code")), 2);
    assert_string_equal(str_of(st, "message"), "database \"locked\"");
    assert_null(json_object_get(s, "traceState"));

    json_decref(root);
    span_free(sp);
}

static void test_json_root_span(void **state)
{
    (void)state;
    struct span *sp = span_new(SPAN_KIND_INTERNAL, tid, sid, NULL, "commit batch", 5);
    span_end(sp, 3); /* an end before the start is clamped */
    json_t *root = encode_one(sp);
    json_t *s = only_span(root);
    assert_null(json_object_get(s, "parentSpanId"));
    assert_int_equal(json_integer_value(json_object_get(s, "kind")), 1);
    assert_string_equal(str_of(s, "endTimeUnixNano"), "5");
    json_t *st = json_object_get(s, "status");
    assert_int_equal(json_integer_value(json_object_get(st, "code")), 0);
    assert_null(json_object_get(st, "message"));
    assert_int_equal(json_array_size(json_object_get(s, "attributes")), 0);
    json_decref(root);
    span_free(sp);
}

static void test_http_server_span(void **state)
{
    (void)state;
    struct trace_context tc;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    trace_begin(&tc, tp, strlen(tp), "vendor=abc", 10);
    struct span_http_request req = {.method = "POST",
                                    .path = "/v1/transfers",
                                    .route = "/v1/transfers",
                                    .scheme = "http",
                                    .server_address = "ledger.example",
                                    .server_port = 8080,
                                    .protocol_version = "1.1",
                                    .client_address = "192.0.2.7",
                                    .user_agent = "curl/8.0"};
    struct span *sp = span_http_server_new(&tc, &req, 1000);
    assert_non_null(sp);
    span_http_server_end(sp, 503, 2000);
    json_t *root = encode_one(sp);
    json_t *s = only_span(root);
    assert_string_equal(str_of(s, "name"), "POST /v1/transfers");
    assert_string_equal(str_of(s, "traceId"), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(str_of(s, "spanId"), tc.span_id);
    assert_string_equal(str_of(s, "parentSpanId"), "00f067aa0ba902b7");
    assert_string_equal(str_of(s, "traceState"), "vendor=abc");
    assert_int_equal(json_integer_value(json_object_get(s, "flags")), 0x301); /* remote parent */
    assert_int_equal(json_integer_value(json_object_get(s, "kind")), 2);
    json_t *a = json_object_get(s, "attributes");
    assert_string_equal(attr_string(a, "http.request.method"), "POST");
    assert_string_equal(attr_string(a, "url.path"), "/v1/transfers");
    assert_string_equal(attr_string(a, "url.scheme"), "http");
    assert_string_equal(attr_string(a, "http.route"), "/v1/transfers");
    assert_string_equal(attr_string(a, "server.address"), "ledger.example");
    assert_int_equal(attr_int(a, "server.port"), 8080);
    assert_string_equal(attr_string(a, "network.protocol.version"), "1.1");
    assert_string_equal(attr_string(a, "client.address"), "192.0.2.7");
    assert_string_equal(attr_string(a, "user_agent.original"), "curl/8.0");
    assert_int_equal(attr_int(a, "http.response.status_code"), 503);
    assert_string_equal(attr_string(a, "error.type"), "503");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "status"), "code")), 2);
    json_decref(root);
    span_free(sp);

    /* A new trace, a 4xx, no route, an unknown method. */
    trace_begin(&tc, NULL, 0, NULL, 0);
    struct span_http_request r2 = {.method = "GET", .path = "/nope"};
    sp = span_http_server_new(&tc, &r2, 1);
    assert_false(sp->has_parent);
    assert_string_equal(sp->name, "GET");
    span_http_server_end(sp, 404, 2);
    root = encode_one(sp);
    s = only_span(root);
    a = json_object_get(s, "attributes");
    assert_null(attr_value(a, "error.type"));
    assert_null(attr_value(a, "http.route"));
    assert_null(attr_value(a, "server.port"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "status"), "code")), 0);
    json_decref(root);
    span_free(sp);

    struct span_http_request r3 = {.method = "BREW", .route = "/v1/accounts"};
    sp = span_http_server_new(&tc, &r3, 1);
    assert_string_equal(sp->name, "HTTP");
    root = encode_one(sp);
    a = json_object_get(only_span(root), "attributes");
    assert_string_equal(attr_string(a, "http.request.method"), "_OTHER");
    assert_string_equal(attr_string(a, "http.request.method_original"), "BREW");
    json_decref(root);
    span_free(sp);

    /* Malformed ids in a context give no span, never a crash. */
    struct trace_context broken = tc;
    memcpy(broken.trace_id, "zz", 2);
    assert_null(span_http_server_new(&broken, &req, 1));
}

static void test_child_spans(void **state)
{
    (void)state;
    struct span *req = span_new(SPAN_KIND_SERVER, tid, sid, NULL, "POST /v1/transfers", 10);
    struct span *idem = span_idempotency_lookup_new(req, 11);
    span_idempotency_lookup_end(idem, true, 12);
    struct span *wait = span_queue_wait_new(req, 13, 20);
    assert_memory_equal(idem->trace_id, tid, 16);
    assert_memory_equal(idem->parent_span_id, sid, 8);
    assert_true(idem->has_parent);
    assert_memory_not_equal(idem->span_id, sid, 8);
    assert_memory_not_equal(idem->span_id, wait->span_id, 8);
    assert_int_equal(wait->start_unix_ns, 13);
    assert_int_equal(wait->end_unix_ns, 20);
    assert_string_equal(wait->name, "commit queue wait");
    json_t *root = encode_one(idem);
    json_t *a = json_object_get(only_span(root), "attributes");
    assert_true(
        json_is_true(json_object_get(attr_value(a, "ledgerd.idempotency.hit"), "boolValue")));
    json_decref(root);
    /* No parent recorded: no child, and every call takes NULL. */
    assert_null(span_idempotency_lookup_new(NULL, 1));
    assert_null(span_queue_wait_new(NULL, 1, 2));
    span_set_int(NULL, "k", 1);
    span_end(NULL, 1);
    span_free(NULL);

    struct span *batch = span_batch_commit_new(3, 7, 30);
    assert_false(batch->has_parent);
    assert_memory_not_equal(batch->trace_id, tid, 16);
    struct span *db = span_db_commit_new(batch, "sqlite", 3, 31);
    assert_int_equal(db->kind, SPAN_KIND_CLIENT);
    assert_string_equal(db->name, "COMMIT");
    root = encode_one(db);
    a = json_object_get(only_span(root), "attributes");
    assert_string_equal(attr_string(a, "db.system.name"), "sqlite");
    assert_string_equal(attr_string(a, "db.operation.name"), "COMMIT");
    assert_int_equal(attr_int(a, "db.operation.batch.size"), 3);
    json_decref(root);
    span_free(db);
    span_free(batch);
    span_free(wait);
    span_free(idem);
    span_free(req);
}

/* ---- limits -----------------------------------------------------------------------------------
 */

static void test_attribute_limits(void **state)
{
    (void)state;
    struct span *sp = span_new(SPAN_KIND_INTERNAL, tid, sid, NULL, "x", 1);
    char key[32];
    for (int i = 0; i < LIMIT_SPAN_ATTRS_MAX + 8; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        span_set_int(sp, key, i);
    }
    assert_int_equal(sp->attrs_count, LIMIT_SPAN_ATTRS_MAX);
    assert_int_equal(sp->attrs_dropped, 8);
    /* Replacing a key that is there is no new attribute. */
    span_set_cstr(sp, "k0", "replaced");
    assert_int_equal(sp->attrs_dropped, 8);
    /* Empty and overlong keys are dropped. */
    char long_key[LIMIT_SPAN_ATTR_KEY_LEN_MAX + 2];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    span_set_int(sp, long_key, 1);
    span_set_int(sp, "", 1);
    assert_int_equal(sp->attrs_dropped, 10);
    json_t *root = encode_one(sp);
    json_t *s = only_span(root);
    assert_int_equal(json_array_size(json_object_get(s, "attributes")), LIMIT_SPAN_ATTRS_MAX);
    assert_int_equal(json_integer_value(json_object_get(s, "droppedAttributesCount")), 10);
    assert_string_equal(attr_string(json_object_get(s, "attributes"), "k0"), "replaced");
    json_decref(root);
    span_free(sp);

    /* Long values are cut at a UTF-8 boundary; a full arena drops, never overflows. */
    sp = span_new(SPAN_KIND_INTERNAL, tid, sid, NULL, "x", 1);
    static char value[4 * LIMIT_SPAN_ATTR_VALUE_LEN_MAX];
    for (size_t i = 0; i + 2 <= sizeof(value); i += 2) {
        memcpy(value + i, "\xc3\xa9", 2);
    }
    char key64[LIMIT_SPAN_ATTR_KEY_LEN_MAX + 1];
    int accepted = 0;
    for (int i = 0; i < LIMIT_SPAN_ATTRS_MAX; i++) {
        memset(key64, 'a' + (i % 26), sizeof(key64) - 1);
        key64[sizeof(key64) - 1] = '\0';
        snprintf(key64, 4, "%02d", i);
        key64[2] = '_';
        span_set_str(sp, key64, value + 1, sizeof(value) - 1); /* starts mid-sequence */
        accepted = (int)sp->attrs_count;
    }
    assert_true(sp->text_used <= LIMIT_SPAN_TEXT_BYTES);
    assert_true(accepted < LIMIT_SPAN_ATTRS_MAX);
    assert_int_equal((int)sp->attrs_dropped, LIMIT_SPAN_ATTRS_MAX - accepted);
    for (uint32_t i = 0; i < sp->attrs_count; i++) {
        assert_true(sp->attrs[i].str_len <= LIMIT_SPAN_ATTR_VALUE_LEN_MAX);
    }
    root = encode_one(sp);
    s = only_span(root);
    json_t *v = json_object_get(
        json_object_get(json_array_get(json_object_get(s, "attributes"), 0), "value"),
        "stringValue");
    /* The cut kept whole characters: the first byte (a lone continuation) became U+FFFD, the
     * rest are é, and the text is not longer than the limit. */
    const char *text = json_string_value(v);
    assert_true(strlen(text) <= LIMIT_SPAN_ATTR_VALUE_LEN_MAX + 2);
    assert_memory_equal(text, "\xef\xbf\xbd\xc3\xa9", 5);
    assert_memory_equal(text + strlen(text) - 2, "\xc3\xa9", 2);
    json_decref(root);
    span_free(sp);
}

static void test_link_limits(void **state)
{
    (void)state;
    struct span *batch = span_batch_commit_new(LIMIT_COMMIT_COMMANDS_MAX, 1, 1);
    struct trace_context tc;
    for (int i = 0; i < LIMIT_COMMIT_COMMANDS_MAX; i++) {
        trace_begin(&tc, NULL, 0, NULL, 0);
        span_add_link_ctx(batch, &tc);
    }
    memset(tc.span_id, 'x', 4); /* a malformed context counts as dropped */
    span_add_link_ctx(batch, &tc);
    assert_int_equal(batch->links_count, LIMIT_SPAN_LINKS_MAX);
    assert_int_equal(batch->links_dropped, LIMIT_COMMIT_COMMANDS_MAX - LIMIT_SPAN_LINKS_MAX + 1);
    json_t *root = encode_one(batch);
    json_t *s = only_span(root);
    assert_int_equal(json_array_size(json_object_get(s, "links")), LIMIT_SPAN_LINKS_MAX);
    assert_int_equal(json_integer_value(json_object_get(s, "droppedLinksCount")),
                     LIMIT_COMMIT_COMMANDS_MAX - LIMIT_SPAN_LINKS_MAX + 1);
    json_decref(root);
    span_free(batch);
}

static void test_encode_splits_by_size(void **state)
{
    (void)state;
    enum { N = 50 };
    struct span *spans[N];
    for (int i = 0; i < N; i++) {
        spans[i] = span_new(SPAN_KIND_INTERNAL, tid, sid, NULL, "x", i + 1);
        span_set_cstr(spans[i], "pad", "0123456789012345678901234567890123456789");
    }
    struct span_resource res;
    span_kv_init(&res.attrs);
    struct buf out;
    buf_init(&out, 4096);
    size_t done = 0;
    int requests = 0;
    while (done < N) {
        size_t encoded = 0;
        assert_int_equal(otlp_encode_json(&out, &res, "v", spans + done, N - done, &encoded), 0);
        assert_true(encoded >= 1 && encoded < N);
        assert_true(out.len <= 4096);
        json_t *root = json_loadb(out.data, out.len, 0, NULL);
        assert_non_null(root);
        json_t *arr = json_object_get(
            json_array_get(
                json_object_get(json_array_get(json_object_get(root, "resourceSpans"), 0),
                                "scopeSpans"),
                0),
            "spans");
        assert_int_equal(json_array_size(arr), encoded);
        /* In order, none lost. */
        char first[24];
        snprintf(first, sizeof(first), "%zu", done + 1);
        assert_string_equal(str_of(json_array_get(arr, 0), "startTimeUnixNano"), first);
        json_decref(root);
        done += encoded;
        requests++;
    }
    assert_true(requests > 1);
    /* Too small for a single span: refused. */
    struct buf tiny;
    buf_init(&tiny, 200);
    size_t encoded = 7;
    assert_int_equal(otlp_encode_json(&tiny, &res, "v", spans, N, &encoded), -ENOSPC);
    assert_int_equal(encoded, 0);
    buf_release(&tiny);
    buf_release(&out);
    for (int i = 0; i < N; i++) {
        span_free(spans[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampler_ratio_boundaries),
        cmocka_unit_test(test_sampler_ratio_threshold),
        cmocka_unit_test(test_sampler_deterministic),
        cmocka_unit_test(test_sampler_parent),
        cmocka_unit_test(test_sampler_config),
        cmocka_unit_test(test_kv_valid),
        cmocka_unit_test(test_kv_malformed),
        cmocka_unit_test(test_kv_hostile),
        cmocka_unit_test(test_resource_defaults),
        cmocka_unit_test(test_resource_env),
        cmocka_unit_test(test_json_every_field),
        cmocka_unit_test(test_json_root_span),
        cmocka_unit_test(test_http_server_span),
        cmocka_unit_test(test_child_spans),
        cmocka_unit_test(test_attribute_limits),
        cmocka_unit_test(test_link_limits),
        cmocka_unit_test(test_encode_splits_by_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
