/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The simulated LLC (sim/llc.c):
 *  - exact agreement with a brute-force true-LRU reference on random traces;
 *  - a working set smaller than the cache stops missing after warm-up, a
 *    larger one keeps missing; the counters follow the documented model;
 *  - a streaming aggressor on the victim's colours raises the victim's
 *    misses many times over compared with disjoint colours (the premise of
 *    memswap), and a swap to other colours brings them back down - but
 *    only because the swap flushes the victim's translations;
 *  - after the guest's page tables change, references follow the new mapping
 *    only once sim_llc_flush_translations() is called;
 *  - the model's speed, in references per second.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim/sim.h"
#include "core/private.h"
#include "harness.h"

#ifndef SIM_GUEST_PAGE_OFFSET
#define SIM_GUEST_PAGE_OFFSET 0xffff888000000000ULL
#endif

/* The demo's geometry: 4 MiB, 16 ways, 64-byte lines = 4096 sets, 64 colours. */
#define LLC_SIZE    (4ULL << 20)
#define LLC_WAYS    16
#define LLC_LINE    64
#define NR_COLOURS  (LLC_SIZE / LLC_WAYS / 4096)
#define MiB         (1ULL << 20)

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x1234567887654321ULL;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* ---- 1. the cache against a brute-force reference ------------------------ */

struct ref_line { uint64_t line; uint64_t last; bool valid; };

/* Fully general reference: per set, a bag of lines with last-use times. */
static bool ref_access(struct ref_line *r, uint64_t sets, unsigned int ways,
                       uint64_t line, uint64_t now)
{
    struct ref_line *s = r + (line % sets) * ways;
    unsigned int i, victim = 0;

    for ( i = 0; i < ways; i++ )
        if ( s[i].valid && s[i].line == line )
        {
            s[i].last = now;
            return true;
        }
    for ( i = 0; i < ways; i++ )
    {
        if ( !s[i].valid )
        {
            victim = i;
            break;
        }
        if ( s[i].last < s[victim].last )
            victim = i;
    }
    s[victim].valid = true;
    s[victim].line = line;
    s[victim].last = now;
    return false;
}

TEST(test_reference)
{
    static const struct { uint32_t sets, ways, line; } geo[] = {
        { 1, 1, 64 }, { 16, 1, 64 }, { 16, 2, 64 }, { 64, 4, 64 },
        { 32, 8, 128 }, { 64, 16, 64 }, { 8, 64, 32 }, { 256, 12, 64 },
    };
    unsigned int g;

    for ( g = 0; g < sizeof(geo) / sizeof(geo[0]); g++ )
    {
        struct sim_llc_config cfg = {
            .size_bytes = (uint64_t)geo[g].sets * geo[g].ways * geo[g].line,
            .ways = geo[g].ways, .line_bytes = geo[g].line,
        };
        uint64_t lines = (uint64_t)geo[g].sets * geo[g].ways;
        struct ref_line *ref = calloc(lines, sizeof(*ref));
        uint64_t t, mismatches = 0, hits = 0, n = 200000;
        int rc;

        sim_host_destroy();
        CHECK(ref != NULL);
        rc = sim_llc_init(&cfg);
        CHECKF(rc == 0, "rc=%d", rc);
        for ( t = 0; t < n; t++ )
        {
            /* A pool of 2x the cache's lines, with a hot subset, and bytes
             * within a line varying: exercises hits, misses and evictions. */
            uint64_t pool = (rnd() & 3) ? lines / 2 + 1 : 2 * lines + 1;
            uint64_t line = rnd() % pool;
            uint64_t maddr = line * geo[g].line + rnd() % geo[g].line;
            bool want = ref_access(ref, geo[g].sets, geo[g].ways, line, t + 1);
            int got = sim_llc_access(maddr);

            mismatches += got != (int)want;
            hits += want;
        }
        sim_llc_fini();
        free(ref);
        CHECKF(mismatches == 0, "geometry %u", g);
        CHECKF(hits > n / 10 && hits < n - n / 10, "hits %llu", /* the trace is not trivial */
               (unsigned long long)hits);
        printf("  reference: %u sets x %u ways x %u B: %llu/%llu hits, %llu mismatches\n",
               geo[g].sets, geo[g].ways, geo[g].line, (unsigned long long)hits,
               (unsigned long long)n, (unsigned long long)mismatches);
    }

    /* Geometries the model refuses. */
    {
        struct sim_llc_config bad[] = {
            { 3 * 64 * 16, 16, 64 },    /* 3 sets: not a power of two */
            { 1 << 20, 0, 64 },         /* no ways */
            { 1 << 20, 16, 48 },        /* line not a power of two */
            { 1000, 16, 64 },           /* not a multiple of ways * line */
        };
        unsigned int i;

        for ( i = 0; i < sizeof(bad) / sizeof(bad[0]); i++ )
            CHECKF(sim_llc_init(&bad[i]) == -EINVAL, "config %u", i);
        CHECK(sim_llc_access(0) == -ENODEV);
    }
}

/* ---- host and domain helpers --------------------------------------------- */

/* A fresh host with the demo's LLC; 0 or why not. */
static int host_up(void)
{
    struct sim_host_config hc = {
        .ram_bytes = 512 * MiB, .nr_nodes = 1,
        .llc = { .size_bytes = LLC_SIZE, .ways = LLC_WAYS, .line_bytes = LLC_LINE },
        .seed = 7,
    };
    struct memswap_geometry g;
    int rc;

    sim_host_destroy();          /* whatever a failed test left behind */
    rc = sim_host_create(&hc);
    if ( rc )
        return rc;
    sim_host_geometry(&g);
    if ( g.nr_colours != NR_COLOURS )
        return -EDOM;
    /* The host must have set the cache up (sim_llc_init from sim_host_create). */
    if ( sim_llc_access(0) == -ENODEV )
        return -ENODEV;
    sim_llc_invalidate();
    return 0;
}

/* A guest on colours [first, first + n) (n == 0: any colour). */
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
    gc.seed = 42;
    for ( c = first; c < first + n; c++ )
        gc.colours[c / 64] |= 1ULL << (c % 64);
    domid = sim_domain_create(&gc);
    if ( domid <= 0 )
        fprintf(stderr, "  sim_domain_create(%s): %d\n", name, domid);
    return domid;
}

static int workload(int domid, uint64_t wss, enum sim_pattern pat, uint32_t weight)
{
    struct sim_workload w = {
        .wss_bytes = wss, .pattern = pat, .stride_bytes = 256,
        .intensity = 20, .weight = weight,
    };

    return sim_domain_set_workload(domid, &w);
}

static struct sim_counters counters(int domid)
{
    struct sim_counters c;

    memset(&c, 0, sizeof(c));
    if ( sim_domain_counters(domid, &c) )
        memset(&c, 0xff, sizeof(c));
    return c;
}

/* Miss rate of @domid over @n further references of the whole mix. */
static double miss_rate(int domid, uint64_t n)
{
    struct sim_counters a = counters(domid), b;

    sim_llc_run(n);
    b = counters(domid);
    return b.accesses > a.accesses ?
           (double)(b.misses - a.misses) / (double)(b.accesses - a.accesses) : -1.0;
}

/* ---- 2. one domain alone ------------------------------------------------- */

TEST(test_alone)
{
    struct sim_workload bad = { .wss_bytes = 0, .intensity = 10, .weight = 1 };
    struct sim_counters c0, c1;
    double small, seq, rnd_big, stride;
    int d, rc;

    rc = host_up();
    CHECKF(rc == 0, "host_up: %d", rc);
    d = guest("alone", 64 * MiB, 0, 0);
    CHECK(d > 0);

    CHECK(sim_domain_set_workload(d, &bad) == -EINVAL);
    bad.wss_bytes = MiB;
    bad.intensity = 0;
    CHECK(sim_domain_set_workload(d, &bad) == -EINVAL);
    bad.intensity = 10;
    bad.pattern = SIM_PAT_STRIDE;        /* stride 0 */
    CHECK(sim_domain_set_workload(d, &bad) == -EINVAL);
    CHECK(sim_domain_set_workload(30000, &bad) == -ESRCH);
    c0 = counters(d);
    CHECK(c0.accesses == 0 && c0.misses == 0);

    /* 1 MiB random in a 4 MiB cache: compulsory misses only. */
    CHECK(workload(d, MiB, SIM_PAT_RANDOM, 1) == 0);
    miss_rate(d, 2000000);
    small = miss_rate(d, 4000000);
    CHECKF(small >= 0 && small < 0.01, "%f", small);

    /* 16 MiB sequential: LRU keeps missing every line. */
    CHECK(workload(d, 16 * MiB, SIM_PAT_SEQUENTIAL, 1) == 0);
    miss_rate(d, 1000000);
    seq = miss_rate(d, 2000000);
    CHECKF(seq > 0.95, "%f", seq);

    /* 16 MiB random: about 1 - 4/16 of references miss. */
    CHECK(workload(d, 16 * MiB, SIM_PAT_RANDOM, 1) == 0);
    miss_rate(d, 2000000);
    rnd_big = miss_rate(d, 4000000);
    CHECKF(rnd_big > 0.6 && rnd_big < 0.9, "%f", rnd_big);

    /* 2 MiB, 256-byte stride: a quarter of the lines, all cached. */
    CHECK(workload(d, 2 * MiB, SIM_PAT_STRIDE, 1) == 0);
    miss_rate(d, 1000000);
    stride = miss_rate(d, 1000000);
    CHECKF(stride >= 0 && stride < 0.01, "%f", stride);

    printf("  alone: miss rate 1 MiB random %.4f, 16 MiB sequential %.4f, "
           "16 MiB random %.4f, 2 MiB stride-256 %.4f\n", small, seq, rnd_big, stride);

    /* The counter model: instructions = accesses * 1000 / intensity,
     * cycles = instructions + 40 * hits + 200 * misses. */
    c0 = counters(d);
    sim_llc_run(1000000);
    c1 = counters(d);
    {
        uint64_t acc = c1.accesses - c0.accesses, mis = c1.misses - c0.misses;
        uint64_t ins = c1.instructions - c0.instructions;

        CHECK(acc == 1000000);
        CHECK(ins == acc * 1000 / 20);
        CHECK(c1.cycles - c0.cycles == ins + 40 * (acc - mis) + 200 * mis);
    }

    /* A paused domain does not run; no workload: no references. */
    CHECK(sim_domain_pause(d) == 0);
    c0 = counters(d);
    sim_llc_run(100000);
    c1 = counters(d);
    CHECK(c1.accesses == c0.accesses);
    CHECK(sim_domain_unpause(d) == 0);
    CHECK(sim_domain_set_workload(d, NULL) == 0);
    sim_llc_run(100000);
    CHECK(counters(d).accesses == c1.accesses);

    sim_host_destroy();
}

/* Swap @domid onto colours [first, first + NR_COLOURS / 2). */
static int swap_to(int domid, unsigned int first, struct memswap_result *res)
{
    struct memswap_request req;
    struct sim_swap_opts opts;
    unsigned int c;

    memset(&req, 0, sizeof(req));
    memset(&opts, 0, sizeof(opts));
    memset(res, 0, sizeof(*res));
    opts.alloc_fail_at = -1;
    req.domid = domid;
    req.node = MEMSWAP_NODE_ANY;
    sim_host_geometry(&req.geom);
    for ( c = first; c < first + NR_COLOURS / 2; c++ )
        req.colours[c / 64] |= 1ULL << (c % 64);
    return sim_swap(&req, &opts, res);
}

/* ---- 3. shared versus disjoint colours ----------------------------------- */

/*
 * Victim: 1 MiB random working set on colours 0-31 (half the cache, 2 MiB
 * of capacity). Aggressor: a 32 MiB sequential stream, same weight, either
 * on colours 0-31 too (shared) or on 32-63 (disjoint).
 */
#define VICTIM_WSS  (1 * MiB)
#define AGGR_WSS    (32 * MiB)

TEST(test_colours)
{
    double v_alone, v_shared, v_disjoint, a_shared, a_disjoint, v_swapped;
    int v, a_sh, a_dj, rc;

    rc = host_up();
    CHECKF(rc == 0, "host_up: %d", rc);
    v = guest("victim", 32 * MiB, 0, NR_COLOURS / 2);
    a_sh = guest("aggr-shared", 64 * MiB, 0, NR_COLOURS / 2);
    a_dj = guest("aggr-disjoint", 64 * MiB, NR_COLOURS / 2, NR_COLOURS / 2);
    CHECK(v > 0 && a_sh > 0 && a_dj > 0);

    CHECK(workload(v, VICTIM_WSS, SIM_PAT_RANDOM, 1) == 0);
    miss_rate(v, 2000000);
    v_alone = miss_rate(v, 4000000);

    CHECK(workload(a_sh, AGGR_WSS, SIM_PAT_SEQUENTIAL, 1) == 0);
    miss_rate(v, 4000000);
    {
        struct sim_counters a0 = counters(a_sh), a1;

        v_shared = miss_rate(v, 8000000);
        a1 = counters(a_sh);
        a_shared = (double)(a1.misses - a0.misses) / (double)(a1.accesses - a0.accesses);
    }
    CHECK(sim_domain_set_workload(a_sh, NULL) == 0);

    sim_llc_invalidate();
    CHECK(workload(a_dj, AGGR_WSS, SIM_PAT_SEQUENTIAL, 1) == 0);
    miss_rate(v, 4000000);
    {
        struct sim_counters a0 = counters(a_dj), a1;

        v_disjoint = miss_rate(v, 8000000);
        a1 = counters(a_dj);
        a_disjoint = (double)(a1.misses - a0.misses) / (double)(a1.accesses - a0.accesses);
    }
    CHECK(sim_domain_set_workload(a_dj, NULL) == 0);

    printf("  colours: LLC 4 MiB/16-way/64 B (64 colours); victim 1 MiB random on 0-31, "
           "aggressor 32 MiB sequential, weights 1:1\n");
    printf("  colours: victim miss rate alone %.4f, shared %.4f, disjoint %.4f "
           "(aggressor %.4f / %.4f)\n", v_alone, v_shared, v_disjoint, a_shared, a_disjoint);
    CHECKF(v_alone < 0.01, "%f", v_alone);
    CHECKF(v_disjoint < 0.01, "%f", v_disjoint);
    CHECKF(v_shared > 0.2, "%f", v_shared);
    CHECKF(v_shared >= 2 * v_disjoint + 0.1, "%f vs %f", v_shared, v_disjoint);
    CHECKF(a_shared > 0.95 && a_disjoint > 0.95, "%f %f", a_shared, a_disjoint);

    /*
     * The demo's cure: the aggressor streams on 0-31 again; swap the victim
     * to colours 32-63. The swap flushes the victim's translations, so its
     * references follow the new frames and stop contending. Shown both ways:
     * with the flush left out (SIM_MUT_SKIP_TLB_FLUSH) the victim keeps
     * referencing its old frames until its translations are flushed.
     */
    CHECK(workload(a_sh, AGGR_WSS, SIM_PAT_SEQUENTIAL, 1) == 0);
    miss_rate(v, 2000000);
    {
        double v_stale, v_flushed, v_back;
        struct memswap_result res;

        sim_mutations = SIM_MUT_SKIP_TLB_FLUSH;
        rc = swap_to(v, NR_COLOURS / 2, &res);
        sim_mutations = 0;
        CHECKF(rc == 0, "sim_swap: %d", rc);
        CHECK(res.frames_moved > 0);
        miss_rate(v, 2000000);
        v_stale = miss_rate(v, 4000000);
        sim_llc_flush_translations(v);
        miss_rate(v, 2000000);
        v_flushed = miss_rate(v, 4000000);

        rc = swap_to(v, 0, &res);                  /* back onto the aggressor */
        CHECKF(rc == 0, "sim_swap: %d", rc);
        miss_rate(v, 2000000);
        v_back = miss_rate(v, 4000000);

        rc = swap_to(v, NR_COLOURS / 2, &res);     /* and away again */
        CHECKF(rc == 0, "sim_swap: %d", rc);
        miss_rate(v, 2000000);
        v_swapped = miss_rate(v, 8000000);
        printf("  colours: victim after swap to 32-63 without TLB flush %.4f, after flush %.4f;\n"
               "  colours: swapped back to 0-31 %.4f, swapped to 32-63 again %.4f (%llu frames moved)\n",
               v_stale, v_flushed, v_back, v_swapped, (unsigned long long)res.frames_moved);
        CHECKF(v_stale > 0.2, "%f", v_stale);
        CHECKF(v_flushed < 0.05, "%f", v_flushed);
        CHECKF(v_back > 0.2, "%f", v_back);
        CHECKF(v_swapped < 0.05, "%f", v_swapped);
    }
    sim_host_destroy();
}

/* ---- 4. translations follow the page tables after a flush --------------- */

/* The L1 entry mapping kernel virtual address @va, by our own walk. */
static uint64_t *l1e_of(int domid, uint64_t va)
{
    struct vcpu *vc = ms_host_vcpu(sim_domain_lookup(domid), 0);
    unsigned long mfn = ms_host_vcpu_guest_table(vc);
    int level;

    for ( level = 4; level > 1; level-- )
    {
        uint64_t e = ((uint64_t *)sim_map_frame(mfn))[(va >> (12 + 9 * (level - 1))) & 511];

        if ( !(e & MS_PAGE_PRESENT) || (e & MS_PAGE_PSE) )
            return NULL;
        mfn = (e & MS_PADDR_MASK) >> 12;
    }
    return (uint64_t *)sim_map_frame(mfn) + ((va >> 12) & 511);
}

TEST(test_flush)
{
    const unsigned long pfn = 1024;     /* first page of every working set */
    uint64_t va = SIM_GUEST_PAGE_OFFSET + ((uint64_t)pfn << 12);
    unsigned long old_mfn, new_mfn;
    uint64_t *l1e, saved;
    int d, rc;

    rc = host_up();
    CHECKF(rc == 0, "host_up: %d", rc);
    d = guest("flush", 32 * MiB, 0, 0);
    CHECK(d > 0);
    old_mfn = sim_domain_pfn_to_mfn(d, pfn);
    new_mfn = sim_domain_pfn_to_mfn(d, 3000);
    l1e = l1e_of(d, va);
    CHECK(l1e != NULL);
    CHECK(((*l1e & MS_PADDR_MASK) >> 12) == old_mfn);
    CHECK(old_mfn != new_mfn);

    /* A one-page working set: lines of old_mfn get cached. */
    CHECK(workload(d, 4096, SIM_PAT_SEQUENTIAL, 1) == 0);
    sim_llc_invalidate();
    sim_llc_run(1000);
    CHECK(sim_llc_access((uint64_t)old_mfn * 4096 + 5 * 64) == 1);

    /*
     * Re-map the page without a flush: the stale TLB keeps the old frame.
     * The PTE is restored before any check can end the test.
     */
    {
        int stale_old, stale_new, new_new, new_old;
        uint64_t unmapped_refs;
        struct sim_counters c0, c1;

        saved = *l1e;
        *l1e = (saved & ~MS_PADDR_MASK) | ((uint64_t)new_mfn << 12);
        sim_llc_invalidate();
        sim_llc_run(1000);
        stale_old = sim_llc_access((uint64_t)old_mfn * 4096 + 5 * 64);
        stale_new = sim_llc_access((uint64_t)new_mfn * 4096 + 5 * 64);

        /* After the flush, references go to the new frame. */
        sim_llc_flush_translations(d);
        sim_llc_invalidate();
        sim_llc_run(1000);
        new_new = sim_llc_access((uint64_t)new_mfn * 4096 + 6 * 64);
        new_old = sim_llc_access((uint64_t)old_mfn * 4096 + 6 * 64);

        /* An unmapped page: no references, no crash. */
        *l1e = 0;
        sim_llc_flush_translations(d);
        c0 = counters(d);
        sim_llc_run(1000);
        c1 = counters(d);
        unmapped_refs = c1.accesses - c0.accesses;

        *l1e = saved;
        sim_llc_flush_translations(d);
        CHECK(stale_old == 1 && stale_new == 0);
        CHECK(new_new == 1 && new_old == 0);
        CHECK(unmapped_refs == 0);
    }
    sim_llc_run(1000);
    CHECK(sim_llc_access((uint64_t)old_mfn * 4096 + 7 * 64) == 1);

    /* A destroyed domain's workload is forgotten. */
    CHECK(sim_domain_destroy(d) == 0);
    sim_llc_run(1000);
    CHECK(sim_domain_counters(d, &(struct sim_counters){ 0 }) == -ESRCH);
    sim_host_destroy();
}

/* ---- 5. speed ------------------------------------------------------------ */

TEST(test_speed)
{
    const uint64_t n = 40000000;
    struct sim_counters c[3];
    double t0, dt, mps;
    int d[3], i, rc;
    uint64_t total = 0;

    rc = host_up();
    CHECKF(rc == 0, "host_up: %d", rc);
    d[0] = guest("s-random", 64 * MiB, 0, 0);
    d[1] = guest("s-seq", 64 * MiB, 0, 0);
    d[2] = guest("s-stride", 64 * MiB, 0, 0);
    CHECK(d[0] > 0 && d[1] > 0 && d[2] > 0);
    CHECK(workload(d[0], 2 * MiB, SIM_PAT_RANDOM, 2) == 0);
    CHECK(workload(d[1], 32 * MiB, SIM_PAT_SEQUENTIAL, 1) == 0);
    CHECK(workload(d[2], 8 * MiB, SIM_PAT_STRIDE, 1) == 0);

    t0 = now_s();
    sim_llc_run(n);
    dt = now_s() - t0;
    for ( i = 0; i < 3; i++ )
    {
        c[i] = counters(d[i]);
        total += c[i].accesses;
    }
    mps = total / dt / 1e6;
    printf("  speed: %llu references in %.3f s: %.1f M references/s "
           "(mix: 2 MiB random w2, 32 MiB sequential w1, 8 MiB stride w1)\n",
           (unsigned long long)total, dt, mps);
    CHECKF(total == n, "%llu", (unsigned long long)total);
    /* weights 2:1:1 */
    CHECK(c[0].accesses > n / 2 - n / 100 && c[0].accesses < n / 2 + n / 100);
    CHECK(c[1].accesses > n / 4 - n / 100 && c[1].accesses < n / 4 + n / 100);
    CHECKF(mps > 2.0, "%.1f M/s", mps);
    sim_host_destroy();
}
