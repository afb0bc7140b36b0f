/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * LLC model benchmark and contention table (sim/llc.c).
 *
 *   llc_bench [references-per-measurement]   (default 8000000)
 *
 * Prints the model's speed per access pattern, then the victim's miss rate
 * and cycles per instruction when a streaming aggressor shares its colours
 * or runs on disjoint ones, over a few victim working sets and aggressor
 * weights: the figures the demo's policies are tuned against. Last, the
 * speed of trace replay (sim/trace.h) in trace records per second, through
 * a domain's L1, page tables and the LLC, and in validation mode: for a
 * program-like trace generated here, and for every trace `make traces`
 * left in $BUILD/traces (BUILD defaults to build).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim/sim.h"
#include "sim/trace.h"

#define MiB        (1ULL << 20)
#define LLC_SIZE   (4 * MiB)
#define LLC_WAYS   16
#define NR_COLOURS (LLC_SIZE / LLC_WAYS / 4096)

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "llc_bench: %s failed: %d\n", what, rc);
    exit(1);
}

static void host_up(void)
{
    struct sim_host_config hc = {
        .ram_bytes = 512 * MiB, .nr_nodes = 1,
        .llc = { .size_bytes = LLC_SIZE, .ways = LLC_WAYS, .line_bytes = 64 },
        .seed = 7,
    };
    int rc = sim_host_create(&hc);

    if ( rc )
        die("sim_host_create", rc);
}

static int guest(const char *name, uint64_t mem, unsigned int first, unsigned int n)
{
    struct sim_guest_config gc;
    unsigned int c;
    int domid;

    memset(&gc, 0, sizeof(gc));
    snprintf(gc.name, sizeof(gc.name), "%s", name);
    gc.mem_bytes = mem;
    gc.nr_vcpus = 1;
    gc.nr_address_spaces = 1;
    gc.node = MEMSWAP_NODE_ANY;
    gc.seed = 1;
    for ( c = first; c < first + n; c++ )
        gc.colours[c / 64] |= 1ULL << (c % 64);
    domid = sim_domain_create(&gc);
    if ( domid <= 0 )
        die("sim_domain_create", domid);
    return domid;
}

static void workload(int domid, uint64_t wss, enum sim_pattern pat, uint32_t weight)
{
    struct sim_workload w = {
        .wss_bytes = wss, .pattern = pat, .stride_bytes = 256,
        .intensity = 20, .weight = weight,
    };
    int rc = sim_domain_set_workload(domid, w.wss_bytes ? &w : NULL);

    if ( rc )
        die("sim_domain_set_workload", rc);
}

/* Miss rate and CPI of @domid over @n references of the mix. */
static void measure(int domid, uint64_t n, double *miss, double *cpi)
{
    struct sim_counters a, b;

    sim_domain_counters(domid, &a);
    sim_llc_run(n);
    sim_domain_counters(domid, &b);
    *miss = (double)(b.misses - a.misses) / (double)(b.accesses - a.accesses + !(b.accesses - a.accesses));
    *cpi = (double)(b.cycles - a.cycles) / (double)(b.instructions - a.instructions + !(b.instructions - a.instructions));
}

/* A program-like trace: a 96 KiB code loop, stack, an 8 MiB heap with a hot part, a stream. */
static int synthetic_trace(const char *path, uint64_t n)
{
    struct sim_trace_writer *w;
    uint64_t x = 0x9e3779b97f4a7c15ULL, ip = 0x400000, stream = 0x7f0000000000ULL, i;
    char err[256];
    int rc = sim_trace_writer_open(path, "llc_bench: program-like", &w, err, sizeof(err));

    if ( rc )
    {
        fprintf(stderr, "llc_bench: %s\n", err);
        return rc;
    }
    for ( i = 0; i < n && !rc; i++ )
    {
        uint32_t len;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        len = 1 + x % 11;
        if ( x % 6 == 0 )
            ip = 0x400000 + (x >> 20) % (96 << 10);
        rc = sim_trace_writer_add(w, SIM_TRACE_INSTR, ip, len);
        ip += len;
        if ( !rc && (x >> 8) % 2 )
        {
            uint64_t addr;

            switch ( (x >> 9) % 4 )
            {
            case 0: addr = 0x1fff000000ULL - (x >> 24) % 8192; break;
            case 1: addr = 0x5000000 + (x >> 24) % (256 << 10); break;
            case 2: addr = 0x8000000 + (x >> 24) % (8 << 20); break;
            default: addr = stream; stream += 8; break;
            }
            rc = sim_trace_writer_add(w, (enum sim_trace_kind)(1 + (x >> 12) % 3), addr, 8);
            i++;
        }
    }
    return sim_trace_writer_close(w, !rc, err, sizeof(err));
}

/* One line: @path replayed as a lone domain's workload and in validation mode. */
static void trace_speed(const char *name, const char *path, uint64_t max)
{
    struct sim_trace_workload tw;
    struct sim_trace_counts tc;
    struct sim_trace_info in;
    struct sim_counters c;
    struct sim_trace *t;
    char err[512];
    double t0, dom_s, flat_s;
    uint64_t n;
    int d, rc;

    if ( sim_trace_load(path, &t, err, sizeof(err)) )
    {
        printf("%-22s %s\n", name, err);
        return;
    }
    sim_trace_info(t, &in);
    n = in.records < max ? in.records : max;
    host_up();
    d = guest("tracer", 128 * MiB, 0, 0);
    memset(&tw, 0, sizeof(tw));
    tw.trace = t;
    tw.weight = 1;
    tw.loop = true;
    rc = sim_domain_set_trace(d, &tw);
    if ( rc )
        die("sim_domain_set_trace", rc);
    t0 = now_s();
    sim_llc_run(n);
    dom_s = now_s() - t0;
    sim_domain_counters(d, &c);
    sim_domain_trace_counts(d, &tc);
    sim_host_destroy();

    rc = sim_llc_init(&(struct sim_llc_config){ LLC_SIZE, LLC_WAYS, 64 });
    if ( rc )
        die("sim_llc_init", rc);
    t0 = now_s();
    rc = sim_trace_replay_flat(t, NULL, n, &tc);
    flat_s = now_s() - t0;
    sim_llc_fini();
    if ( rc )
        die("sim_trace_replay_flat", rc);
    printf("%-22s %8.1f %8llu %10.1f %10.1f %10.4f %8.2f\n", name, n / 1e6,
           (unsigned long long)in.nr_pages, n / dom_s / 1e6, n / flat_s / 1e6,
           (double)c.accesses / (double)n, 1000.0 * c.misses / (double)(c.instructions + !c.instructions));
    sim_trace_put(t);
}

static void trace_table(uint64_t max)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char dir[512], path[1024], tmp[64];
    struct dirent **ents;
    int i, n;

    printf("\ntrace replay, default L1 (I1 32 KiB/8, D1 48 KiB/12), LLC %llu MiB/%u-way, "
           "alone, up to %.0f M records\n", (unsigned long long)(LLC_SIZE / MiB), LLC_WAYS, max / 1e6);
    printf("%-22s %8s %8s %10s %10s %10s %8s\n", "trace", "Mrefs", "pages", "dom Mref/s",
           "flat Mref/s", "LLC/ref", "MPKI");
    snprintf(tmp, sizeof(tmp), "/tmp/llc_bench.%ld.mtr", (long)getpid());
    if ( synthetic_trace(tmp, 20000000) == 0 )
    {
        trace_speed("synthetic", tmp, max);
        unlink(tmp);
    }
    snprintf(dir, sizeof(dir), "%s/traces", build);
    n = scandir(dir, &ents, NULL, alphasort);
    if ( n < 0 )
    {
        printf("(no %s: `make traces` captures real programs)\n", dir);
        return;
    }
    for ( i = 0; i < n; i++ )
    {
        size_t len = strlen(ents[i]->d_name);

        if ( len > 4 && !strcmp(ents[i]->d_name + len - 4, ".mtr") )
        {
            snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
            ents[i]->d_name[len - 4] = '\0';
            trace_speed(ents[i]->d_name, path, max);
        }
        free(ents[i]);
    }
    free(ents);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 8000000;
    static const struct { const char *name; enum sim_pattern p; uint64_t wss; } pats[] = {
        { "random 2 MiB", SIM_PAT_RANDOM, 2 * MiB },
        { "random 32 MiB", SIM_PAT_RANDOM, 32 * MiB },
        { "sequential 32 MiB", SIM_PAT_SEQUENTIAL, 32 * MiB },
        { "stride-256 8 MiB", SIM_PAT_STRIDE, 8 * MiB },
    };
    static const uint64_t vwss[] = { 512 * 1024, 1 * MiB, 3 * MiB / 2 };
    static const uint32_t aw[] = { 1, 2, 4 };
    unsigned int i, j;
    int d;

    printf("LLC %llu MiB, %u ways, 64 B lines, %llu colours\n\n",
           (unsigned long long)(LLC_SIZE / MiB), LLC_WAYS, (unsigned long long)NR_COLOURS);

    host_up();
    d = guest("speed", 64 * MiB, 0, 0);
    printf("%-20s %12s %10s\n", "pattern (alone)", "Mrefs/s", "miss rate");
    for ( i = 0; i < sizeof(pats) / sizeof(pats[0]); i++ )
    {
        double t0, dt, miss, cpi;

        workload(d, pats[i].wss, pats[i].p, 1);
        sim_llc_run(n / 4);
        t0 = now_s();
        measure(d, n, &miss, &cpi);
        dt = now_s() - t0;
        printf("%-20s %12.1f %10.4f\n", pats[i].name, n / dt / 1e6, miss);
    }
    sim_host_destroy();

    printf("\nvictim random on colours 0-%llu; aggressor 32 MiB sequential, "
           "shared = colours 0-%llu, disjoint = %llu-%llu; intensity 20\n",
           (unsigned long long)NR_COLOURS / 2 - 1, (unsigned long long)NR_COLOURS / 2 - 1,
           (unsigned long long)NR_COLOURS / 2, (unsigned long long)NR_COLOURS - 1);
    printf("%-10s %-6s %10s %8s %10s %8s %10s %8s\n", "victim WSS", "a.wt",
           "alone miss", "CPI", "shared", "CPI", "disjoint", "CPI");
    for ( i = 0; i < sizeof(vwss) / sizeof(vwss[0]); i++ )
        for ( j = 0; j < sizeof(aw) / sizeof(aw[0]); j++ )
        {
            double m[3], c[3];
            int v, ash, adj;

            host_up();
            v = guest("victim", 32 * MiB, 0, NR_COLOURS / 2);
            ash = guest("aggr-shared", 64 * MiB, 0, NR_COLOURS / 2);
            adj = guest("aggr-disjoint", 64 * MiB, NR_COLOURS / 2, NR_COLOURS / 2);
            workload(v, vwss[i], SIM_PAT_RANDOM, 1);
            sim_llc_run(n / 2);
            measure(v, n, &m[0], &c[0]);
            workload(ash, 32 * MiB, SIM_PAT_SEQUENTIAL, aw[j]);
            sim_llc_run(n / 2);
            measure(v, n, &m[1], &c[1]);
            workload(ash, 0, SIM_PAT_SEQUENTIAL, 0);
            workload(adj, 32 * MiB, SIM_PAT_SEQUENTIAL, aw[j]);
            sim_llc_run(n / 2);
            measure(v, n, &m[2], &c[2]);
            printf("%6.2f MiB %-6u %10.4f %8.2f %10.4f %8.2f %10.4f %8.2f\n",
                   (double)vwss[i] / MiB, aw[j], m[0], c[0], m[1], c[1], m[2], c[2]);
            sim_host_destroy();
        }
    trace_table(4 * n);
    return 0;
}
