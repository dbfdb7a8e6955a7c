/*
 * rand.c — per-thread xoshiro256** (Blackman and Vigna) for ids; not for secrets.
 *
 * Each thread seeds its own state on first use from getrandom(2), falling back to /dev/urandom,
 * and as a last resort to the clocks, the thread and the process id mixed with splitmix64: ids
 * must keep flowing even in a sandbox without either source. A forked child reseeds, so parent
 * and child never produce the same sequence.
 */
#include "core/rand.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"

struct rand_state {
    uint64_t s[4];
    uint64_t fork_generation; /* fork count when seeded */
    bool seeded;
};

static _Thread_local struct rand_state rand_tls;
static atomic_uint_fast64_t rand_fork_generation;
static pthread_once_t rand_atfork_once = PTHREAD_ONCE_INIT;

static void rand_on_fork_child(void)
{
    atomic_fetch_add(&rand_fork_generation, 1);
}

static void rand_register_atfork(void)
{
    (void)pthread_atfork(NULL, NULL, rand_on_fork_child);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Fills seed from the kernel; false when no source answered. */
static bool rand_seed_kernel(uint8_t *seed, size_t len)
{
    size_t got = 0;
    for (int tries = 0; got < len && tries < 8; tries++) {
        ssize_t n = getrandom(seed + got, len - got, 0);
        if (n > 0) {
            got += (size_t)n;
        } else if (n < 0 && errno != EINTR) {
            break;
        }
    }
    if (got == len) {
        return true;
    }

    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    got = 0;
    for (int tries = 0; got < len && tries < 8; tries++) {
        ssize_t n = read(fd, seed + got, len - got);
        if (n > 0) {
            got += (size_t)n;
        } else if (n == 0 || errno != EINTR) {
            break;
        }
    }
    (void)close(fd);
    return got == len;
}

static void rand_seed(struct rand_state *st)
{
    uint8_t seed[32];
    if (rand_seed_kernel(seed, sizeof(seed))) {
        memcpy(st->s, seed, sizeof(st->s));
    } else {
        struct timespec rt = {0}, mono = {0};
        (void)clock_gettime(CLOCK_REALTIME, &rt);
        (void)clock_gettime(CLOCK_MONOTONIC, &mono);
        uint64_t x = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
        x ^= rotl((uint64_t)mono.tv_nsec, 17) ^ rotl((uint64_t)getpid(), 32);
        x ^= (uint64_t)(uintptr_t)pthread_self();
        x ^= (uint64_t)(uintptr_t)st; /* differs per thread */
        for (int i = 0; i < 4; i++) {
            st->s[i] = splitmix64(&x);
        }
    }
    if ((st->s[0] | st->s[1] | st->s[2] | st->s[3]) == 0) {
        st->s[0] = 0x9e3779b97f4a7c15u; /* the one state xoshiro must never be in */
    }
    st->seeded = true;
}

uint64_t rand_u64(void)
{
    struct rand_state *st = &rand_tls;
    uint64_t generation = atomic_load(&rand_fork_generation);
    if (!st->seeded || st->fork_generation != generation) {
        (void)pthread_once(&rand_atfork_once, rand_register_atfork);
        rand_seed(st);
        st->fork_generation = atomic_load(&rand_fork_generation);
    }

    uint64_t *s = st->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void rand_bytes(uint8_t *out, size_t len)
{
    ASSERT(out != NULL || len == 0);
    size_t i = 0;
    while (i < len) {
        uint64_t r = rand_u64();
        size_t n = len - i < 8 ? len - i : 8;
        memcpy(out + i, &r, n);
        i += n;
    }
    if (len >= 8) {
        uint8_t any = 0;
        for (size_t k = 0; k < len; k++) {
            any |= out[k];
        }
        if (any == 0) {
            out[len - 1] = 1; /* astronomically rare; ids must not be zero */
        }
    }
}
