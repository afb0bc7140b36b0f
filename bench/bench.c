/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Swap-engine benchmark on the simulator.
 *
 * Stop-and-copy: for simulated PV domains of 256 MiB, 1 GiB and 4 GiB, the
 * swap's wall time, pages/s, GB/s, time per phase and peak extra memory,
 * next to this machine's memcpy bandwidth measured in the same run on
 * buffers of the same size (at most 1 GiB). The engine's target is a swap rate of at least
 * 0.8 x memcpy: copying is the irreducible work, so the ratio is the
 * engine's overhead on top of it. The swaps and the memcpys alternate, five
 * of each, so that each swap is compared with a memcpy that saw the same
 * machine (shared and noisy): the figures printed are the pair whose
 * ratio is the median of the five.
 *
 * Live: a 1 GiB PVH domain that keeps writing 64 MiB/s of its memory
 * (through its own page tables, so log-dirty sees it) while it is swapped
 * live, and the same domain swapped stop-and-copy, alternately three times
 * each in the same run (the best of each). The figure is the domain's
 * pause: the final stop's against the whole stop-and-copy swap's. The
 * engine is preempted every millisecond, as a hypervisor's softirqs would,
 * and the domain runs (and writes) between two continuations.
 *
 * The lines CI and notes quote:
 *   bench: size=1GiB swap_gbps=<x> memcpy_gbps=<y> ratio=<x/y>
 *   bench-live: size=1GiB dirty_mib_s=<w> rounds=<r> pause_ms=<p> stop_pause_ms=<s> ratio=<p/s>
 *
 * usage: bench [256MiB|1GiB|4GiB|live]...   (default: all of them)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include "sim/sim.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Two prefaulted buffers of @bytes for memcpy: the machine's own copy. They
 * live next to the simulated host, so they are at most 1 GiB each (a larger
 * memcpy is not faster, and a 4 GiB domain's host takes 12.5 GiB already).
 */
#define MEMCPY_MAX_BYTES (1ULL << 30)
struct copy_bufs {
    char *a, *b;
    size_t bytes;
};

static void copy_bufs_init(struct copy_bufs *c, size_t bytes)
{
    c->bytes = bytes;
    c->a = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    c->b = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if ( c->a == MAP_FAILED || c->b == MAP_FAILED )
    {
        perror("mmap");
        exit(1);
    }
    /* Huge pages, as the simulator's RAM has them: the same page walks. */
    madvise(c->a, bytes, MADV_HUGEPAGE);
    madvise(c->b, bytes, MADV_HUGEPAGE);
    memset(c->a, 0x5a, bytes);
    memset(c->b, 0xa5, bytes);
}

/* One memcpy of the buffers (alternating direction): GB/s. */
static double copy_bufs_gbps(struct copy_bufs *c, unsigned int round)
{
    double t0 = now_s();

    memcpy(round & 1 ? c->a : c->b, round & 1 ? c->b : c->a, c->bytes);
    return c->bytes / (now_s() - t0) / 1e9;
}

static void copy_bufs_free(struct copy_bufs *c)
{
    munmap(c->a, c->bytes);
    munmap(c->b, c->bytes);
}

#define BENCH_ROUNDS 5

struct figures {
    double swap_gbps, memcpy_gbps;
};

/* A host of @ram and a domain @gc on it, and a request for that domain. */
static int host_and_domain(uint64_t ram, const struct sim_guest_config *gc,
                           struct memswap_request *req);

static int make_host(uint64_t ram)
{
    struct sim_host_config hc = {
        .ram_bytes = ram,
        .nr_nodes = 2,
        .llc = { .size_bytes = 8 << 20, .ways = 16, .line_bytes = 64 },
        .seed = 1,
        .prefault = true,
    };
    int rc = sim_host_create(&hc);

    if ( rc )
        fprintf(stderr, "sim_host_create: %d\n", rc);
    return rc;
}

static int host_and_domain(uint64_t ram, const struct sim_guest_config *gc,
                           struct memswap_request *req)
{
    int rc, domid;

    if ( (rc = make_host(ram)) )
        return rc;
    if ( (domid = sim_domain_create(gc)) < 0 )
    {
        fprintf(stderr, "sim_domain_create: %d\n", domid);
        sim_host_destroy();
        return domid;
    }
    sim_host_geometry(&req->geom);
    req->domid = (uint32_t)domid;
    req->node = MEMSWAP_NODE_ANY;
    return 0;
}

/* Half the colours: the lower half when @lower, else the upper one. */
static void half_colours(struct memswap_request *req, bool lower)
{
    unsigned int c;

    memset(req->colours, 0, sizeof(req->colours));
    for ( c = 0; c < req->geom.nr_colours / 2; c++ )
    {
        unsigned int col = lower ? c : c + req->geom.nr_colours / 2;

        req->colours[col / 64] |= 1ULL << (col % 64);
    }
}

static int bench_size(uint64_t size, const char *label, struct figures *f)
{
    struct sim_guest_config gc = {
        .mem_bytes = size, .nr_vcpus = 2, .nr_address_spaces = 4,
        .node = MEMSWAP_NODE_ANY, .with_devices = true, .seed = 7,
    };
    struct memswap_request req = { 0 };
    struct sim_swap_opts opts = { .alloc_fail_at = -1 };
    struct memswap_result res[BENCH_ROUNDS];
    double wall[BENCH_ROUNDS], gbps[BENCH_ROUNDS], ratio[BENCH_ROUNDS];
    struct copy_bufs bufs;
    double t0, build;
    int rc, ph;
    unsigned int round, k, m = 0;

    snprintf(gc.name, sizeof(gc.name), "bench-%s", label);
    t0 = now_s();
    if ( (rc = host_and_domain(3 * size + (512ULL << 20), &gc, &req)) )
        return rc;
    build = now_s() - t0;

    /*
     * Five swaps, alternating between the two halves of the colours, each
     * followed by a memcpy; the pair with the median ratio is reported.
     */
    copy_bufs_init(&bufs, size < MEMCPY_MAX_BYTES ? size : MEMCPY_MAX_BYTES);
    for ( round = 0; round < BENCH_ROUNDS; round++ )
    {
        half_colours(&req, round & 1);
        t0 = now_s();
        rc = sim_swap(&req, &opts, &res[round]);
        wall[round] = now_s() - t0;
        if ( rc )
        {
            fprintf(stderr, "sim_swap(%s): %d (phase %s)\n", label, rc,
                    memswap_phase_name(res[round].failed_phase));
            sim_host_destroy();
            copy_bufs_free(&bufs);
            return rc;
        }
        gbps[round] = copy_bufs_gbps(&bufs, round);
        ratio[round] = size / wall[round] / 1e9 / gbps[round];
    }
    sim_host_destroy();
    copy_bufs_free(&bufs);
    for ( round = 0; round < BENCH_ROUNDS; round++ )
    {
        unsigned int below = 0;

        for ( k = 0; k < BENCH_ROUNDS; k++ )
            below += ratio[k] < ratio[round];
        if ( below == BENCH_ROUNDS / 2 )
            m = round;
    }
    f->swap_gbps = size / wall[m] / 1e9;
    f->memcpy_gbps = gbps[m];

    printf("size=%s build_s=%.2f swap_s=%.3f pages=%llu pages_per_s=%.0f swap_gbps=%.2f "
           "memcpy_gbps=%.2f ratio=%.2f moved=%llu kept=%llu peak_extra_mib=%.1f "
           "metadata_per_page_b=%.1f\n",
           label, build, wall[m], (unsigned long long)res[m].frames_total,
           res[m].frames_moved / wall[m], f->swap_gbps, f->memcpy_gbps,
           f->swap_gbps / f->memcpy_gbps, (unsigned long long)res[m].frames_moved,
           (unsigned long long)(res[m].frames_kept[0] + res[m].frames_kept[1] +
                                res[m].frames_kept[2] + res[m].frames_kept[3]),
           res[m].extra_bytes_peak / 1048576.0,
           (res[m].extra_bytes_peak - res[m].frames_moved * 4096.0) / res[m].frames_total);
    printf("  phases_ms:");
    for ( ph = MEMSWAP_PH_SCAN; ph < MEMSWAP_PH_DONE; ph++ )
        if ( ph != MEMSWAP_PH_PRECOPY )
            printf(" %s=%.1f", memswap_phase_name(ph), res[m].phase_ns[ph] / 1e6);
    printf(" paused=%.1f\n  ratios:", res[m].paused_ns / 1e6);
    for ( round = 0; round < BENCH_ROUNDS; round++ )
        printf(" %.2f", ratio[round]);
    printf("\n");
    fflush(stdout);
    return 0;
}

/* ---- live ------------------------------------------------------------------ */

#define LIVE_DIRTY_MIB_S 64

/*
 * The guest's writing, paced by the clock: at every continuation it writes
 * what LIVE_DIRTY_MIB_S allows for the time since the last one - unless it
 * is paused (then it writes nothing, and the clock restarts when it runs).
 */
struct dirtier {
    unsigned int domid;
    double last;
    double carry;               /* pages owed, fractional */
    uint64_t pages;
};

static void dirty_between(void *arg)
{
    struct dirtier *w = arg;
    double t = now_s(), pages = w->carry + (t - w->last) * LIVE_DIRTY_MIB_S * 256.0;
    unsigned long n = (unsigned long)pages;

    w->last = t;
    if ( sim_guest_dirty_pages(w->domid, n) == 0 )
    {
        w->carry = pages - n;
        w->pages += n;
    }
    else
        w->carry = 0;
    /* The writing took time the guest spent running. */
    w->last = now_s();
}

static int bench_live(void)
{
    const uint64_t size = 1ULL << 30;
    struct sim_guest_config gc = {
        .name = "bench-live", .mem_bytes = size, .nr_vcpus = 2, .nr_address_spaces = 2,
        .node = MEMSWAP_NODE_ANY, .with_devices = true, .seed = 9, .type = SIM_GUEST_PVH,
    };
    struct memswap_request req = { 0 };
    struct memswap_result r, live = { 0 }, stop = { 0 };
    double live_pause = 1e9, stop_pause = 1e9;
    struct dirtier w = { 0 };
    struct sim_swap_opts opts = {
        .alloc_fail_at = -1, .preempt_ns = 1000000, .between = dirty_between, .between_arg = &w,
    };
    unsigned int round;
    int domid, rc;

    if ( (rc = host_and_domain(3 * size + (512ULL << 20), &gc, &req)) )
        return rc;
    domid = (int)req.domid;
    w.domid = req.domid;

    for ( round = 0; round < 6; round++ )
    {
        bool is_live = round & 1;

        half_colours(&req, round & 1);
        req.flags = is_live ? MEMSWAP_F_LIVE : 0;
        w.last = now_s();
        w.carry = 0;
        w.pages = 0;
        if ( (rc = sim_swap(&req, &opts, &r)) )
        {
            fprintf(stderr, "sim_swap(live=%d): %d (phase %s)\n", is_live, rc,
                    memswap_phase_name(r.failed_phase));
            sim_host_destroy();
            return rc;
        }
        if ( sim_guest_verify(domid, NULL) )
        {
            fprintf(stderr, "bench-live: the guest's memory is wrong after a swap\n");
            sim_host_destroy();
            return -1;
        }
        if ( is_live && r.paused_ns / 1e6 < live_pause )
        {
            live_pause = r.paused_ns / 1e6;
            live = r;
            live.phase_ns[0] = w.pages;             /* pages the guest wrote */
        }
        if ( !is_live && r.paused_ns / 1e6 < stop_pause )
        {
            stop_pause = r.paused_ns / 1e6;
            stop = r;
        }
    }
    sim_host_destroy();

    printf("live: moved=%llu precopy_pages=%llu final_pages=%llu committed_running=%llu "
           "guest_wrote_pages=%llu last_dirty=%u swap_ms=%.1f stop_swap_ms=%.1f\n",
           (unsigned long long)live.frames_moved, (unsigned long long)live.live_precopy_pages,
           (unsigned long long)live.live_final_pages,
           (unsigned long long)live.live_committed_running,
           (unsigned long long)live.phase_ns[0], live.live_dirty_last,
           (live.phase_ns[MEMSWAP_PH_SCAN] + live.phase_ns[MEMSWAP_PH_COUNT_REFS] +
            live.phase_ns[MEMSWAP_PH_CLASSIFY] + live.phase_ns[MEMSWAP_PH_ALLOC] +
            live.phase_ns[MEMSWAP_PH_COPY] + live.phase_ns[MEMSWAP_PH_PRECOPY] +
            live.phase_ns[MEMSWAP_PH_FREEZE] + live.phase_ns[MEMSWAP_PH_COMMIT] +
            live.phase_ns[MEMSWAP_PH_FREE]) / 1e6,
           (stop.phase_ns[MEMSWAP_PH_SCAN] + stop.phase_ns[MEMSWAP_PH_COUNT_REFS] +
            stop.phase_ns[MEMSWAP_PH_CLASSIFY] + stop.phase_ns[MEMSWAP_PH_ALLOC] +
            stop.phase_ns[MEMSWAP_PH_COPY] + stop.phase_ns[MEMSWAP_PH_FREEZE] +
            stop.phase_ns[MEMSWAP_PH_COMMIT] + stop.phase_ns[MEMSWAP_PH_FREE]) / 1e6);
    printf("bench-live: size=1GiB dirty_mib_s=%d rounds=%u pause_ms=%.2f stop_pause_ms=%.1f "
           "ratio=%.3f\n", LIVE_DIRTY_MIB_S, live.live_rounds, live_pause, stop_pause,
           live_pause / stop_pause);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct { uint64_t size; const char *label; } sizes[] = {
        { 256ULL << 20, "256MiB" }, { 1ULL << 30, "1GiB" }, { 4ULL << 30, "4GiB" },
    };
    struct figures f[3];
    bool want[4] = { argc < 2, argc < 2, argc < 2, argc < 2 };
    unsigned int i;
    int a;

    for ( a = 1; a < argc; a++ )
    {
        for ( i = 0; i < 3 && strcmp(argv[a], sizes[i].label); i++ )
            ;
        if ( i == 3 && strcmp(argv[a], "live") )
        {
            fprintf(stderr, "usage: bench [256MiB|1GiB|4GiB|live]...\n");
            return 2;
        }
        want[i] = true;
    }
    for ( i = 0; i < 3; i++ )
        if ( want[i] && bench_size(sizes[i].size, sizes[i].label, &f[i]) )
            return 1;
    if ( want[1] )
        printf("bench: size=1GiB swap_gbps=%.2f memcpy_gbps=%.2f ratio=%.2f\n",
               f[1].swap_gbps, f[1].memcpy_gbps, f[1].swap_gbps / f[1].memcpy_gbps);
    if ( want[3] && bench_live() )
        return 1;
    return 0;
}
