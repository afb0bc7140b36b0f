/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memswap-agent: runs inside a guest and publishes the guest's own cache
 * counters in xenstore for memswapd in dom0.
 *
 * It opens one CPU-wide perf_event group per online vCPU (instructions,
 * cycles, cache-references, cache-misses) and every interval writes, in one
 * xenstore transaction, under its domain's home (/local/domain/<id>/, the
 * implicit base of relative paths):
 *
 *   data/memswap/instructions     cumulative counts, decimal, scaled by
 *   data/memswap/cycles           time_enabled/time_running, summed over
 *   data/memswap/llc_references   vCPUs (cache-references)
 *   data/memswap/llc_misses       (cache-misses)
 *   data/memswap/unavailable      space-separated names of the above that
 *                                 this guest cannot count (their keys are
 *                                 removed: unavailable is never 0)
 *   data/memswap/time_enabled     ns, summed over vCPUs
 *   data/memswap/time_running
 *   data/memswap/timestamp        CLOCK_REALTIME, seconds with 9 decimals
 *   data/memswap/interval         seconds between updates
 *
 * The key names are memswap.Counters' fields, which is what the daemon's
 * agent metric source reads. A PV guest without a virtual PMU has no
 * hardware counters: everything is then listed in `unavailable`.
 *
 * usage: memswap-agent [--interval SECONDS] [--once] [--stdout] [--prefix P]
 *   --stdout   print key=value lines instead of writing xenstore (testing)
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

#include "cext/perf_core.h"

#define NR_EV 4
static const char *const events[NR_EV] = {
    "instructions", "cycles", "cache-references", "cache-misses",
};
static const char *const keys[NR_EV] = {
    "instructions", "cycles", "llc_references", "llc_misses",
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

struct kv {
    char key[64];
    char val[256];
    bool remove;
};

static int publish_stdout(const char *prefix, const struct kv *kv, int n)
{
    int i;

    for ( i = 0; i < n; i++ )
    {
        if ( kv[i].remove )
            printf("%s/%s (removed)\n", prefix, kv[i].key);
        else
            printf("%s/%s=%s\n", prefix, kv[i].key, kv[i].val);
    }
    printf("\n");
    return fflush(stdout) ? -1 : 0;
}

static int publish_xs(struct xs_handle *xs, const char *prefix,
                      const struct kv *kv, int n)
{
    char path[4096 + 64];
    int i, tries;

    for ( tries = 0; tries < 16; tries++ )
    {
        xs_transaction_t t = xs_transaction_start(xs);

        if ( t == XBT_NULL )
            return -1;
        for ( i = 0; i < n; i++ )
        {
            snprintf(path, sizeof(path), "%s/%s", prefix, kv[i].key);
            if ( kv[i].remove )
            {
                if ( !xs_rm(xs, t, path) && errno != ENOENT )
                    break;
            }
            else if ( !xs_write(xs, t, path, kv[i].val, strlen(kv[i].val)) )
                break;
        }
        if ( i < n )
        {
            int err = errno;

            xs_transaction_end(xs, t, true);
            errno = err;
            return -1;
        }
        if ( xs_transaction_end(xs, t, false) )
            return 0;
        if ( errno != EAGAIN )
            return -1;
    }
    errno = EAGAIN;
    return -1;
}

static int sample(struct perf_group *g, struct kv *kv, double interval)
{
    struct pg_reading r;
    struct timespec ts;
    char unav[256] = "";
    int i, n = 0, rc;

    rc = pg_read(g, &r);
    if ( rc < 0 )
        return rc;
    memset(kv, 0, (NR_EV + 5) * sizeof(*kv));
    for ( i = 0; i < NR_EV; i++ )
    {
        snprintf(kv[n].key, sizeof(kv[n].key), "%s", keys[i]);
        kv[n].remove = !r.valid[i];
        if ( r.valid[i] )
            snprintf(kv[n].val, sizeof(kv[n].val), "%llu",
                     (unsigned long long)r.scaled[i]);
        else
        {
            if ( unav[0] )
                strcat(unav, " ");
            strcat(unav, keys[i]);
        }
        n++;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(kv[n].key, sizeof(kv[n].key), "unavailable");
    snprintf(kv[n++].val, sizeof(kv[0].val), "%s", unav);
    snprintf(kv[n].key, sizeof(kv[n].key), "time_enabled");
    snprintf(kv[n++].val, sizeof(kv[0].val), "%llu", (unsigned long long)r.time_enabled);
    snprintf(kv[n].key, sizeof(kv[n].key), "time_running");
    snprintf(kv[n++].val, sizeof(kv[0].val), "%llu", (unsigned long long)r.time_running);
    snprintf(kv[n].key, sizeof(kv[n].key), "interval");
    snprintf(kv[n++].val, sizeof(kv[0].val), "%g", interval);
    snprintf(kv[n].key, sizeof(kv[n].key), "timestamp");
    snprintf(kv[n++].val, sizeof(kv[0].val), "%lld.%09ld",
             (long long)ts.tv_sec, ts.tv_nsec);
    return n;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: memswap-agent [--interval SECONDS] [--once] [--stdout] "
               "[--prefix PATH]\n"
               "Publish this guest's perf counters under its xenstore home "
               "(default prefix data/memswap).\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "interval", required_argument, NULL, 'i' },
        { "once", no_argument, NULL, '1' },
        { "stdout", no_argument, NULL, 's' },
        { "prefix", required_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    double interval = 5.0;
    bool once = false, to_stdout = false;
    const char *prefix = "data/memswap", *call;
    struct xs_handle *xs = NULL;
    struct perf_group g;
    struct kv kv[NR_EV + 5];
    struct sigaction sa;
    int c, rc, n, i;

    while ( (c = getopt_long(argc, argv, "i:1sp:h", opts, NULL)) != -1 )
    {
        switch ( c )
        {
        case 'i':
            interval = strtod(optarg, NULL);
            if ( interval <= 0 )
            {
                fprintf(stderr, "memswap-agent: bad --interval %s\n", optarg);
                return 2;
            }
            break;
        case '1': once = true; break;
        case 's': to_stdout = true; break;
        case 'p':
            prefix = optarg;
            if ( strlen(prefix) > 4000 )
            {
                fprintf(stderr, "memswap-agent: --prefix too long\n");
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }

    rc = pg_open(&g, PG_TARGET_CPU, -1, -1, -1, events, NR_EV, &call);
    if ( rc < 0 )
    {
        fprintf(stderr, "memswap-agent: %s: %s\n", call, strerror(-rc));
        return 1;
    }
    for ( i = 0; i < NR_EV; i++ )
        if ( !g.available[i] )
            fprintf(stderr, "memswap-agent: %s unavailable (%s)\n",
                    events[i], strerror(g.open_errno[i]));

    if ( !to_stdout )
    {
        xs = xs_open(0);
        if ( !xs )
        {
            fprintf(stderr, "memswap-agent: xs_open: %s (not in a Xen guest?)\n",
                    strerror(errno));
            pg_close(&g);
            return 1;
        }
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    rc = 0;
    while ( !stop )
    {
        struct timespec d;

        n = sample(&g, kv, interval);
        if ( n < 0 )
        {
            fprintf(stderr, "memswap-agent: read: %s\n", strerror(-n));
            rc = 1;
            break;
        }
        if ( (to_stdout ? publish_stdout(prefix, kv, n)
                        : publish_xs(xs, prefix, kv, n)) < 0 )
        {
            fprintf(stderr, "memswap-agent: publish: %s\n", strerror(errno));
            rc = 1;
            if ( once )
                break;
        }
        if ( once )
            break;
        d.tv_sec = (time_t)interval;
        d.tv_nsec = (long)((interval - (double)d.tv_sec) * 1e9);
        while ( !stop && nanosleep(&d, &d) < 0 && errno == EINTR )
            ;
    }
    if ( xs )
        xs_close(xs);
    pg_close(&g);
    return rc;
}
