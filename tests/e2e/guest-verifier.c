/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * guest-verifier: the PV guest's workload in the end-to-end test (static,
 * runs from the guest's busybox initramfs).
 *
 *   guest-verifier heartbeat [PERIOD_MS]
 *       every PERIOD_MS (500) print "HB <n> t=<ms> gap=<ms>" on stdout and
 *       write <n> to the guest's xenstore key data/heartbeat (through
 *       /dev/xen/xenbus, the xenstore wire protocol, no libraries).
 *       t is CLOCK_BOOTTIME (keeps counting across a suspend, so a
 *       save/restore shows up as a gap); gap is the largest interval
 *       between two consecutive 10 ms ticks since the previous line: the
 *       time the guest could not run (e.g. paused for a swap).
 *
 *   guest-verifier verify MIB
 *       fill MIB MiB with a pattern that depends on each word's index and
 *       a generation number, then forever: check every word against the
 *       previous generation and rewrite it with the next one. Prints
 *       "VERIFY-OK pass=<n> mib=<m> ms=<t>" after each clean pass and
 *       "VERIFY-BAD pass=<n> word=<i> ..." for each bad word (first 8).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double ms(clockid_t clk)
{
    struct timespec ts;

    clock_gettime(clk, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- xenstore over /dev/xen/xenbus ------------------------------------- */

struct xsd_msg { uint32_t type, req_id, tx_id, len; };
#define XS_WRITE 11
#define XS_ERROR 16

static int xs_fd = -1;

static int xs_write(const char *path, const char *val)
{
    char buf[4096];
    struct xsd_msg h = { XS_WRITE, 1, 0, 0 };
    size_t pl = strlen(path) + 1, vl = strlen(val);
    ssize_t n;

    if ( xs_fd < 0 )
        xs_fd = open("/dev/xen/xenbus", O_RDWR);
    if ( xs_fd < 0 )
        return -errno;
    h.len = pl + vl;
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), path, pl);
    memcpy(buf + sizeof(h) + pl, val, vl);
    if ( write(xs_fd, buf, sizeof(h) + h.len) != (ssize_t)(sizeof(h) + h.len) )
        goto reopen;
    n = read(xs_fd, buf, sizeof(buf));
    if ( n < (ssize_t)sizeof(h) )
        goto reopen;
    memcpy(&h, buf, sizeof(h));
    return h.type == XS_ERROR ? -EIO : 0;
 reopen:
    close(xs_fd);       /* resynchronise on the next call */
    xs_fd = -1;
    return -EIO;
}

static int heartbeat(unsigned int period)
{
    const struct timespec tick = { 0, 10 * 1000 * 1000 };
    double last = ms(CLOCK_BOOTTIME), next = last + period, gap = 0;
    unsigned long n = 0;
    int xs_errs = 0;
    char val[32];

    setvbuf(stdout, NULL, _IOLBF, 0);
    for ( ;; )
    {
        double t;

        nanosleep(&tick, NULL);
        t = ms(CLOCK_BOOTTIME);
        if ( t - last > gap )
            gap = t - last;
        last = t;
        if ( t < next )
            continue;
        snprintf(val, sizeof(val), "%lu", n);
        if ( xs_write("data/heartbeat", val) )
            xs_errs++;
        printf("HB %lu t=%.1f gap=%.1f xs_errs=%d\n", n, t, gap, xs_errs);
        n++;
        gap = 0;
        next += period;
        if ( next < t )
            next = t + period; /* after a long pause: no burst of lines */
    }
    return 0;
}

/* ---- memory pattern ---------------------------------------------------- */

static inline uint64_t pattern(uint64_t i, uint64_t gen)
{
    uint64_t z = i * 0x9e3779b97f4a7c15ULL + gen * 0xbf58476d1ce4e5b9ULL + 1;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int verify(unsigned long mib)
{
    size_t words = mib * 1024 * 1024 / 8, i;
    uint64_t *m = mmap(NULL, words * 8, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    uint64_t gen = 0;
    unsigned long pass = 0, bad_total = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if ( m == MAP_FAILED )
    {
        printf("VERIFY-BAD cannot map %lu MiB: %s\n", mib, strerror(errno));
        return 1;
    }
    mlock(m, words * 8);        /* keep it resident: no swap, no reclaim */
    for ( i = 0; i < words; i++ )
        m[i] = pattern(i, gen);
    printf("VERIFY-FILLED mib=%lu\n", mib);
    for ( ;; )
    {
        double t0 = ms(CLOCK_MONOTONIC);
        unsigned long bad = 0;

        for ( i = 0; i < words; i++ )
        {
            uint64_t want = pattern(i, gen);

            if ( m[i] != want )
            {
                if ( bad < 8 )
                    printf("VERIFY-BAD pass=%lu word=%zu page_off=%#zx have=%016" PRIx64
                           " want=%016" PRIx64 "\n", pass, i, (i * 8) & 4095, m[i], want);
                bad++;
            }
            m[i] = pattern(i, gen + 1);
        }
        gen++;
        pass++;
        bad_total += bad;
        if ( bad )
            printf("VERIFY-BAD pass=%lu bad_words=%lu total=%lu\n", pass, bad, bad_total);
        else
            printf("VERIFY-OK pass=%lu mib=%lu ms=%.0f\n", pass, mib, ms(CLOCK_MONOTONIC) - t0);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if ( argc >= 2 && !strcmp(argv[1], "heartbeat") )
        return heartbeat(argc > 2 ? strtoul(argv[2], NULL, 0) : 500);
    if ( argc >= 3 && !strcmp(argv[1], "verify") )
        return verify(strtoul(argv[2], NULL, 0));
    fprintf(stderr, "usage: guest-verifier heartbeat [PERIOD_MS] | verify MIB\n");
    return 2;
}
