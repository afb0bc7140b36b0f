/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The swap engine (core/) on generated guests in the simulator.
 *
 * After every swap the checker (check_swap) verifies DESIGN.md's contract:
 *  - every pfn's bytes as read through the guest's own page tables are what
 *    they were (the guest is held paused across the swap, as in the seed
 *    post's P1 experiment, while Xen, the backend and the daemons keep
 *    running), and Xen's vcpu_info writes made during the swap are visible;
 *  - the audit is clean (counts and types recomputed from scratch, P2M/M2P);
 *  - every moved old frame is free and free memory is back where it was;
 *  - the kept frames are exactly those with outside references (grants,
 *    foreign mappings), with the right reasons;
 *  - console, xenstore and network still exchange data with the guest;
 *  - every new frame is on the requested colours and node.
 * Failure injection and mutation tests then show the same checker catching
 * broken swaps, so that the suite can fail.
 */
#include <errno.h>
#include <stdlib.h>
#include "sim/sim_internal.h"
#include "harness.h"
#include "guest_view.h"

#define MiB (1ULL << 20)

static struct memswap_geometry geom;

static int host(uint64_t ram, unsigned int nodes, uint64_t seed)
{
    /* A failed CHECK leaves its host behind: start clean. */
    sim_host_destroy();
    struct sim_host_config hc = {
        .ram_bytes = ram, .nr_nodes = nodes,
        .llc = { .size_bytes = 8 * MiB, .ways = 16, .line_bytes = 64 },
        .seed = seed,
    };
    int rc = sim_host_create(&hc);

    sim_host_geometry(&geom);
    return rc;
}

static int guest(const char *name, uint64_t mem, unsigned int vcpus,
                 unsigned int as, uint64_t seed)
{
    struct sim_guest_config gc = {
        .mem_bytes = mem, .nr_vcpus = vcpus, .nr_address_spaces = as,
        .node = MEMSWAP_NODE_ANY, .with_devices = true, .seed = seed,
    };

    snprintf(gc.name, sizeof(gc.name), "%s", name);
    return sim_domain_create(&gc);
}

static void set_colour_range(struct memswap_request *req, unsigned int from,
                             unsigned int to)
{
    unsigned int c;

    memset(req->colours, 0, sizeof(req->colours));
    for ( c = from; c < to; c++ )
        req->colours[c / 64] |= 1ULL << (c % 64);
}

static void request(struct memswap_request *req, unsigned int domid)
{
    memset(req, 0, sizeof(*req));
    req->domid = domid;
    req->node = MEMSWAP_NODE_ANY;
    req->geom = geom;
}

/* ---- the state a swap must preserve ------------------------------------- */

struct snapshot {
    unsigned int domid;
    unsigned long nr;           /* p2m size */
    unsigned long *mfn;         /* pfn -> mfn before */
    uint64_t *sum;              /* guest-visible checksum per pfn */
    unsigned long free_frames;
    uint64_t tot_pages;
    struct sim_io_stats io;
};

static void canonical_sums(unsigned int domid, uint64_t *sums, unsigned long nr)
{
    struct domain *d = sim_domain_lookup(domid);
    unsigned long pfn;

    for ( pfn = 0; pfn < nr; pfn++ )
        sums[pfn] = guest_canonical_hash(d, pfn);
}

static void snapshot_take(struct snapshot *s, unsigned int domid)
{
    struct sim_domain_info info;
    unsigned long pfn;

    sim_domain_info(domid, &info);
    s->domid = domid;
    s->nr = info.max_pfn;
    s->tot_pages = info.tot_pages;
    s->mfn = calloc(s->nr, sizeof(*s->mfn));
    s->sum = calloc(s->nr, sizeof(*s->sum));
    for ( pfn = 0; pfn < s->nr; pfn++ )
        s->mfn[pfn] = sim_domain_pfn_to_mfn(domid, pfn);
    canonical_sums(domid, s->sum, s->nr);
    s->free_frames = sim_host_free_frames(-1, NULL);
    sim_domain_io_stats(domid, &s->io);
}

static void snapshot_free(struct snapshot *s)
{
    free(s->mfn);
    free(s->sum);
}


/* Frames of @d that someone outside holds: granted, or foreign-mapped by dom0. */
static int outside_reason(struct domain *d, unsigned long mfn)
{
    uint32_t gref;
    unsigned int i;

    for ( gref = 0; gref < SIM_NR_GRANTS; gref++ )
    {
        struct sim_grant_entry_v1 *e = sim_gnt_entry(d, gref);

        if ( e && (e->flags & SIM_GTF_permit_access) && e->frame == mfn )
            return MEMSWAP_KEPT_GRANTED;
    }
    for ( i = 0; i < sim_nr_gmaps; i++ )
        if ( sim_gmaps[i].used && sim_gmaps[i].mfn == mfn )
            return MEMSWAP_KEPT_GRANTED;
    for ( i = 0; i < sim_nr_fmaps; i++ )
        if ( sim_fmaps[i].used && sim_fmaps[i].mfn == mfn )
            return MEMSWAP_KEPT_FOREIGN;
    return -1;
}

static bool is_vcpu_info_pfn(struct domain *d, unsigned long pfn)
{
    unsigned int i;

    for ( i = 0; i < d->nr_vcpus; i++ )
        if ( d->vcpu[i].vcpu_info_mfn != MS_INVALID_MFN &&
             sim_m2p_get(d->vcpu[i].vcpu_info_mfn) == pfn )
            return true;
    return false;
}

/*
 * The contract, checked after a successful swap. Returns the number of
 * violations (and prints the first few) rather than asserting, so that the
 * mutation tests can show it catches broken swaps.
 */
static int check_swap(const struct snapshot *s, const struct memswap_request *req,
                      const struct memswap_result *res, bool print)
{
    struct domain *d = sim_domain_lookup(s->domid);
    unsigned long pfn, moved = 0, kept_expect[MEMSWAP_KEPT_NR] = { 0 };
    uint64_t *after = calloc(s->nr, sizeof(*after));
    struct sim_domain_info info;
    char audit[512];
    int bad = 0, n;
    unsigned int i;

#define VIOLATION(...) do { if ( print && bad < 8 ) fprintf(stderr, "  check: " __VA_ARGS__); bad++; } while ( 0 )

    canonical_sums(s->domid, after, s->nr);
    for ( pfn = 0; pfn < s->nr; pfn++ )
    {
        unsigned long old = s->mfn[pfn], now = sim_domain_pfn_to_mfn(s->domid, pfn);
        int why;

        if ( old == MS_INVALID_MFN || !guest_owns(d, now) )
            continue;
        why = outside_reason(d, old);
        if ( now != old )
        {
            moved++;
            if ( why >= 0 )
                VIOLATION("pfn %#lx moved although held from outside (%d)\n", pfn, why);
            if ( !memswap_colour_allowed(req, memswap_colour_of(&geom, now)) )
                VIOLATION("pfn %#lx on colour %u, not requested\n", pfn,
                          memswap_colour_of(&geom, now));
            if ( req->node != MEMSWAP_NODE_ANY && sim_mfn_node(now) != req->node )
                VIOLATION("pfn %#lx on node %u, not %u\n", pfn, sim_mfn_node(now), req->node);
            if ( !page_state_is(sim_mfn_to_page(old), free) )
                VIOLATION("old frame %#lx of pfn %#lx not freed (caf=%lx)\n", old, pfn,
                          sim_mfn_to_page(old)->count_info);
            if ( sim_m2p_get(old) != INVALID_M2P_ENTRY )
                VIOLATION("M2P of old frame %#lx still %#lx\n", old, sim_m2p_get(old));
        }
        else if ( why >= 0 )
            kept_expect[why]++;
        else
            VIOLATION("pfn %#lx kept without an outside reference\n", pfn);

        /* Kept frames may legitimately be written by their outside holders. */
        if ( now != old || why < 0 )
            if ( after[pfn] != s->sum[pfn] && !is_vcpu_info_pfn(d, pfn) )
                VIOLATION("pfn %#lx (role %d) bytes differ after the swap\n", pfn, d->pfn_role[pfn]);
    }
    free(after);

    /* Xen's writes during the swap reach the guest (vcpu_info time). */
    for ( i = 0; i < d->nr_vcpus; i++ )
    {
        struct vcpu *v = &d->vcpu[i];
        const struct sim_vcpu_info *vi;

        if ( v->vcpu_info_mfn == MS_INVALID_MFN )
            continue;
        vi = sim_guest_va_ptr(d, sim_pfn_va(sim_m2p_get(v->vcpu_info_mfn)) +
                              v->vcpu_info_offset, false);
        if ( !vi || vi->time.system_time != v->system_time )
            VIOLATION("vcpu %u: guest sees time %llu, Xen wrote %llu\n", i,
                      vi ? (unsigned long long)vi->time.system_time : 0ULL,
                      (unsigned long long)v->system_time);
    }

    if ( res->frames_moved != moved )
        VIOLATION("result says %llu moved, P2M says %lu\n",
                  (unsigned long long)res->frames_moved, moved);
    if ( res->frames_kept[MEMSWAP_KEPT_GRANTED] != kept_expect[MEMSWAP_KEPT_GRANTED] ||
         res->frames_kept[MEMSWAP_KEPT_FOREIGN] != kept_expect[MEMSWAP_KEPT_FOREIGN] ||
         res->frames_kept[MEMSWAP_KEPT_UNEXPLAINED] != 0 )
        VIOLATION("kept granted/foreign/unexplained %llu/%llu/%llu, expected %lu/%lu/0\n",
                  (unsigned long long)res->frames_kept[0], (unsigned long long)res->frames_kept[1],
                  (unsigned long long)res->frames_kept[2], kept_expect[0], kept_expect[1]);

    sim_domain_info(s->domid, &info);
    if ( info.tot_pages != s->tot_pages )
        VIOLATION("tot_pages %llu -> %llu\n", (unsigned long long)s->tot_pages,
                  (unsigned long long)info.tot_pages);
    if ( sim_host_free_frames(-1, NULL) != s->free_frames )
        VIOLATION("free frames %lu -> %lu\n", s->free_frames, sim_host_free_frames(-1, NULL));

    if ( (n = sim_audit(audit, sizeof(audit))) )
        VIOLATION("audit: %d problems: %s\n", n, audit);
    return bad;
#undef VIOLATION
}

/* The guest and its devices keep working: run the world, look at the traffic. */
static int check_io(unsigned int domid, unsigned int steps)
{
    struct sim_io_stats a, b;
    unsigned int i;

    sim_domain_io_stats(domid, &a);
    for ( i = 0; i < steps; i++ )
        sim_world_step();
    sim_domain_io_stats(domid, &b);
    if ( b.io_errors != a.io_errors )
        return 1;
    if ( b.console_lines <= a.console_lines || b.xenstore_replies <= a.xenstore_replies ||
         b.net_rx_ok <= a.net_rx_ok || b.net_tx_ok <= a.net_tx_ok )
        return 1;
    return 0;
}

/*
 * One complete swap with everything checked: the guest is held paused by
 * the test around the swap so its bytes can be compared, while Xen and
 * dom0's actors run at every continuation.
 */
static int swap_and_check(unsigned int domid, struct memswap_request *req,
                          struct sim_swap_opts *opts, struct memswap_result *res,
                          bool print)
{
    struct snapshot s;
    int rc, bad;

    sim_domain_pause(domid);
    snapshot_take(&s, domid);
    rc = sim_swap(req, opts, res);
    if ( rc )
    {
        if ( print )
            fprintf(stderr, "  sim_swap: %d in %s\n", rc, memswap_phase_name(res->failed_phase));
        sim_domain_unpause(domid);
        snapshot_free(&s);
        return -1;
    }
    bad = check_swap(&s, req, res, print);
    sim_domain_unpause(domid);
    bad += check_io(domid, 40);
    snapshot_free(&s);
    return bad;
}

/* A failed swap must leave everything exactly as it was. */
static int check_unchanged(const struct snapshot *s)
{
    struct snapshot now;
    unsigned long pfn;
    char audit[512];
    int bad = 0;

    snapshot_take(&now, s->domid);
    for ( pfn = 0; pfn < s->nr; pfn++ )
        if ( now.mfn[pfn] != s->mfn[pfn] ||
             (now.sum[pfn] != s->sum[pfn] && !is_vcpu_info_pfn(sim_domain_lookup(s->domid), pfn) &&
              outside_reason(sim_domain_lookup(s->domid), s->mfn[pfn]) < 0) )
            bad++;
    if ( now.free_frames != s->free_frames || now.tot_pages != s->tot_pages )
        bad++;
    if ( sim_audit(audit, sizeof(audit)) )
    {
        fprintf(stderr, "  audit after rollback: %s\n", audit);
        bad++;
    }
    snapshot_free(&now);
    return bad;
}

/* ---- tests -------------------------------------------------------------- */

TEST(engine_moves_generated_guests)
{
    static const struct { uint64_t mem; unsigned int vcpus, as; } g[] = {
        { 16 * MiB, 1, 1 }, { 64 * MiB, 2, 3 }, { 256 * MiB, 4, 6 },
    };
    unsigned int i;

    for ( i = 0; i < sizeof(g) / sizeof(g[0]); i++ )
    {
        struct memswap_request req;
        struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                      .preempt_every = 7 };
        struct memswap_result res;
        int domid, bad;

        CHECK(host(3 * g[i].mem + 256 * MiB, 2, 11 + i) == 0);
        domid = guest("g", g[i].mem, g[i].vcpus, g[i].as, 100 + i);
        CHECKF(domid > 0, "create %d", domid);
        CHECK(check_io(domid, 20) == 0);
        request(&req, domid);
        set_colour_range(&req, geom.nr_colours / 2, geom.nr_colours);
        bad = swap_and_check(domid, &req, &opts, &res, true);
        CHECKF(bad == 0, "%d violations for %llu MiB", bad,
               (unsigned long long)(g[i].mem / MiB));
        CHECK(res.continuations > 0);
        CHECK(res.frames_by_class[MEMSWAP_FC_L4] > 0 && res.frames_by_class[MEMSWAP_FC_L1] > 0);
        CHECK(res.frames_by_class[MEMSWAP_FC_P2M_LEAF] > 0 &&
              res.frames_by_class[MEMSWAP_FC_P2M_TOP] == 1);
        CHECK(res.frames_kept[MEMSWAP_KEPT_GRANTED] > 0);
        /* Most of the domain moves. */
        CHECK(res.frames_moved * 100 >= res.frames_total * 95);
        /* And back again, onto the other colours and a given node. */
        set_colour_range(&req, 0, geom.nr_colours / 2);
        req.node = 1;
        bad = swap_and_check(domid, &req, &opts, &res, true);
        CHECKF(bad == 0, "%d violations on the second swap", bad);
        sim_host_destroy();
    }
}

TEST(engine_one_gib_guest)
{
    struct memswap_request req;
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                  .preempt_every = 1000 };
    struct memswap_result res;
    int domid, bad;

    CHECK(host(4 * 1024 * MiB, 1, 5) == 0);
    domid = guest("big", 1024 * MiB, 2, 4, 77);
    CHECK(domid > 0);
    request(&req, domid);
    set_colour_range(&req, 0, geom.nr_colours / 2);
    bad = swap_and_check(domid, &req, &opts, &res, true);
    CHECKF(bad == 0, "%d violations", bad);
    sim_host_destroy();
}

TEST(engine_random_seeds)
{
    uint64_t seed;

    for ( seed = 1; seed <= 24; seed++ )
    {
        uint64_t r = sim_mix64(seed);
        uint64_t mem = (16 + (r % 4) * 16) * MiB;
        struct memswap_request req;
        struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                      .preempt_every = 1 + (r >> 8) % 50 };
        struct memswap_result res;
        unsigned int from, len;
        int domid, other, bad;

        CHECK(host(512 * MiB, 1 + (r >> 4) % 2, seed) == 0);
        /* A neighbour so that the heap is not pristine. */
        other = guest("neighbour", 16 * MiB, 1, 1, seed * 3);
        domid = guest("victim", mem, 1 + (r >> 16) % 4, 1 + (r >> 20) % 5, seed);
        CHECKF(domid > 0 && other > 0, "seed %llu", (unsigned long long)seed);
        request(&req, domid);
        len = geom.nr_colours / 4 * (1 + (r >> 24) % 3);
        from = (r >> 32) % (geom.nr_colours - len + 1);
        set_colour_range(&req, from, from + len);
        bad = swap_and_check(domid, &req, &opts, &res, true);
        CHECKF(bad == 0, "seed %llu: %d violations", (unsigned long long)seed, bad);
        CHECK(check_io(other, 10) == 0);
        sim_host_destroy();
    }
}

/* A forced preemption in each phase: completes through continuations. */
TEST(engine_preempted_in_every_phase)
{
    unsigned int ph;

    for ( ph = MEMSWAP_PH_SCAN; ph < MEMSWAP_PH_DONE; ph++ )
    {
        struct memswap_request req;
        struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                      .preempt_every = 1, .preempt_at_phase = ph };
        struct memswap_result res;
        int domid, bad;

        CHECK(host(256 * MiB, 1, ph) == 0);
        domid = guest("p", 32 * MiB, 2, 2, ph);
        request(&req, domid);
        set_colour_range(&req, 0, geom.nr_colours / 2);
        bad = swap_and_check(domid, &req, &opts, &res, true);
        CHECKF(bad == 0, "phase %s: %d violations", memswap_phase_name(ph), bad);
        /* Each phase that has a loop over frames did yield. */
        if ( ph != MEMSWAP_PH_CLASSIFY || res.continuations )
            CHECKF(res.continuations > 0, "phase %s never yielded", memswap_phase_name(ph));
        sim_host_destroy();
    }
}

/* An allocation failure anywhere: complete rollback, domain running. */
TEST(engine_allocation_failure_rolls_back)
{
    static const int64_t at[] = { 0, 1, 100, 4000, -2 /* the last one */ };
    unsigned int i;

    for ( i = 0; i < sizeof(at) / sizeof(at[0]); i++ )
    {
        struct memswap_request req;
        struct sim_swap_opts opts = { .world_runs = true, .preempt_every = 5 };
        struct memswap_result res, dry;
        struct sim_domain_info info;
        struct snapshot s;
        int domid, rc;

        CHECK(host(256 * MiB, 1, 40 + i) == 0);
        domid = guest("a", 32 * MiB, 2, 2, 40 + i);
        request(&req, domid);
        req.flags = MEMSWAP_F_DRY_RUN;
        CHECK(sim_swap(&req, &(struct sim_swap_opts){ .alloc_fail_at = -1 }, &dry) == 0);
        req.flags = 0;
        opts.alloc_fail_at = at[i] >= 0 ? at[i] : (int64_t)dry.frames_moved - 1;

        sim_domain_pause(domid);
        snapshot_take(&s, domid);
        rc = sim_swap(&req, &opts, &res);
        CHECKF(rc == -ENOMEM, "rc=%d", rc);
        CHECK(res.failed_phase == MEMSWAP_PH_ALLOC);
        CHECK(check_unchanged(&s) == 0);
        snapshot_free(&s);
        sim_domain_unpause(domid);
        sim_domain_info(domid, &info);
        CHECK(info.state == SIM_DOM_RUNNING);
        CHECK(check_io(domid, 20) == 0);
        sim_host_destroy();
    }
}

/* memswap_abort: rollback before the point of no return, completion after it. */
TEST(engine_abort_before_and_after_commit)
{
    unsigned int ph;

    for ( ph = MEMSWAP_PH_SCAN; ph < MEMSWAP_PH_DONE; ph++ )
    {
        struct memswap_request req;
        struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                      .preempt_every = 1, .preempt_at_phase = ph,
                                      .abort_after_continuations = 1 };
        struct memswap_result res;
        struct sim_domain_info info;
        struct snapshot s;
        int domid, rc;

        CHECK(host(512 * MiB, 1, 60 + ph) == 0);
        domid = guest("x", 96 * MiB, 1, 2, 60 + ph);
        request(&req, domid);
        sim_domain_pause(domid);
        snapshot_take(&s, domid);
        rc = sim_swap(&req, &opts, &res);
        if ( ph < MEMSWAP_PH_COMMIT )
        {
            CHECKF(rc == -EINTR, "phase %s: rc=%d", memswap_phase_name(ph), rc);
            CHECK(check_unchanged(&s) == 0);
        }
        else
        {
            CHECKF(rc == 0, "phase %s: rc=%d", memswap_phase_name(ph), rc);
            CHECK(check_swap(&s, &req, &res, true) == 0);
        }
        snapshot_free(&s);
        sim_domain_unpause(domid);
        sim_domain_info(domid, &info);
        CHECK(info.state == SIM_DOM_RUNNING);
        CHECK(check_io(domid, 20) == 0);
        sim_host_destroy();
    }
}

/* Someone maps a frame while the swap runs: the swap gives up, losing nothing. */
static int late_map_id = -1;
static unsigned int late_map_domid;
static void map_during_copy(void *arg, enum memswap_phase ph, uint64_t done, uint64_t total)
{
    struct domain *d = sim_domain_lookup(late_map_domid);

    if ( ph == MEMSWAP_PH_COPY && late_map_id < 0 )
        /* The first data frame of the direct map, mapped as a dump tool would. */
        late_map_id = sim_fmap_map(late_map_domid,
                                   sim_guest_va_to_mfn(d, sim_pfn_va(d->user_pfn[0][0]), false),
                                   false);
}

TEST(engine_foreign_map_during_swap_rolls_back)
{
    struct memswap_request req;
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .preempt_every = 1,
                                  .progress = map_during_copy };
    struct memswap_result res;
    struct snapshot s;
    int domid, rc;

    CHECK(host(256 * MiB, 1, 9) == 0);
    domid = guest("m", 16 * MiB, 1, 1, 9);
    late_map_domid = domid;
    late_map_id = -1;
    request(&req, domid);
    sim_domain_pause(domid);
    snapshot_take(&s, domid);
    rc = sim_swap(&req, &opts, &res);
    CHECK(late_map_id >= 0);
    CHECKF(rc == -EAGAIN, "rc=%d", rc);
    CHECK(res.failed_phase == MEMSWAP_PH_FREEZE);
    CHECK(check_unchanged(&s) == 0);
    snapshot_free(&s);
    /* Once the mapping is gone the same swap goes through. */
    sim_fmap_unmap(late_map_id);
    sim_domain_unpause(domid);
    CHECK(swap_and_check(domid, &req, &(struct sim_swap_opts){ .alloc_fail_at = -1,
                                                               .world_runs = true }, &res, true) == 0);
    sim_host_destroy();
}

/* A frame foreign-mapped during the whole swap is kept, with the reason. */
TEST(engine_keeps_foreign_mapped_frames)
{
    struct memswap_request req;
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true };
    struct memswap_result res;
    struct domain *d;
    int domid, id;

    CHECK(host(256 * MiB, 1, 12) == 0);
    domid = guest("f", 16 * MiB, 1, 1, 12);
    d = sim_domain_lookup(domid);
    id = sim_fmap_map(domid, sim_guest_va_to_mfn(d, sim_pfn_va(d->user_pfn[0][1]), false), true);
    CHECK(id >= 0);
    request(&req, domid);
    CHECK(swap_and_check(domid, &req, &opts, &res, true) == 0);
    CHECK(res.frames_kept[MEMSWAP_KEPT_FOREIGN] == 1);
    sim_fmap_unmap(id);
    CHECK(sim_audit(NULL, 0) == 0);
    sim_host_destroy();
}

/*
 * Linux page directories Xen does not know (unpinned: a fork or an exit in
 * progress, or a freed one) are plain pages holding MFNs. The engine knows
 * one by the kernel half Linux clones into it: with an empty user half it
 * translates that kernel half; with user entries (a tree it cannot see) it
 * gives up with -EAGAIN, changing nothing.
 */
TEST(engine_handles_unpinned_page_directories)
{
    struct memswap_request req;
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true, .preempt_every = 3 };
    struct memswap_result res;
    struct snapshot s;
    struct domain *d;
    uint64_t *pgd, saved[512];
    const uint64_t *kl4;
    unsigned long pgd_pfn;
    int domid, rc;

    CHECK(host(256 * MiB, 1, 31) == 0);
    domid = guest("forking", 32 * MiB, 1, 2, 31);
    d = sim_domain_lookup(domid);
    pgd_pfn = d->user_pfn[0][2];
    pgd = sim_guest_va_ptr(d, sim_pfn_va(pgd_pfn), true);
    CHECK(pgd != NULL);
    memcpy(saved, pgd, sizeof(saved));
    kl4 = sim_map_frame(d->vcpu[0].guest_table);
    memset(pgd, 0, 4096);
    memcpy(pgd + 273, kl4 + 273, (512 - 273) * sizeof(*pgd));

    /* User half in use: the tree below is unknown, so no swap now. */
    pgd[0] = kl4[0];
    request(&req, domid);
    sim_domain_pause(domid);
    snapshot_take(&s, domid);
    rc = sim_swap(&req, &opts, &res);
    CHECKF(rc == -EAGAIN, "rc=%d", rc);
    CHECK(res.failed_phase == MEMSWAP_PH_COPY);
    CHECK(check_unchanged(&s) == 0);
    snapshot_free(&s);

    /* User half empty (fresh or freed pgd): its kernel half follows the kernel's L4. */
    pgd[0] = 0;
    sim_domain_unpause(domid);
    CHECK(swap_and_check(domid, &req, &opts, &res, true) == 0);
    CHECK(res.unpinned_pgds == 1);
    pgd = sim_guest_va_ptr(d, sim_pfn_va(pgd_pfn), true);
    kl4 = sim_map_frame(d->vcpu[0].guest_table);
    CHECK(memcmp(pgd + 273, kl4 + 273, (512 - 273) * sizeof(*pgd)) == 0);
    memcpy(pgd, saved, sizeof(saved));
    sim_host_destroy();
}

TEST(engine_refuses_bad_requests)
{
    struct memswap_request req;
    struct sim_swap_opts opts = { .alloc_fail_at = -1 };
    struct memswap_result res;
    struct sim_guest_config hvm = { .name = "hvm", .mem_bytes = 16 * MiB, .nr_vcpus = 1,
                                    .nr_address_spaces = 1, .node = MEMSWAP_NODE_ANY,
                                    .hvm = true };
    struct snapshot s;
    struct memswap_ctx *slot;
    int domid, dying, hvmid;

    CHECK(host(256 * MiB, 1, 3) == 0);
    domid = guest("ok", 64 * MiB, 1, 1, 3);
    dying = guest("dying", 16 * MiB, 1, 1, 4);
    hvmid = sim_domain_create(&hvm);
    CHECK(domid > 0 && dying > 0 && hvmid > 0);
    CHECK(sim_domain_set_dying(dying) == 0);

    request(&req, 4242);
    CHECK(sim_swap(&req, &opts, &res) == -ESRCH);
    request(&req, 0);
    CHECK(sim_swap(&req, &opts, &res) == -EACCES);
    request(&req, dying);
    CHECK(sim_swap(&req, &opts, &res) == -ENODEV);
    request(&req, hvmid);
    CHECK(sim_swap(&req, &opts, &res) == -EOPNOTSUPP);

    sim_domain_pause(domid);
    snapshot_take(&s, domid);
    /* One colour of many cannot hold 64 MiB here. */
    request(&req, domid);
    set_colour_range(&req, 3, 4);
    CHECK(sim_swap(&req, &opts, &res) == -ENOMEM);
    CHECK(res.failed_phase == MEMSWAP_PH_CLASSIFY);
    /* Colours the geometry does not have; unknown flags; bad geometry. */
    set_colour_range(&req, geom.nr_colours, geom.nr_colours + 1);
    CHECK(sim_swap(&req, &opts, &res) == -EINVAL);
    request(&req, domid);
    req.flags = 0x80;
    CHECK(sim_swap(&req, &opts, &res) == -EINVAL);
    request(&req, domid);
    req.geom.nr_colours = 3;
    CHECK(sim_swap(&req, &opts, &res) == -EINVAL);
    /* A swap already in progress in the domain's slot. */
    request(&req, domid);
    slot = NULL;
    CHECK(memswap_begin(sim_domain_lookup(domid), &req, &slot) == 0);
    CHECK(memswap_begin(sim_domain_lookup(domid), &req, &slot) == -EBUSY);
    memswap_end(slot);
    /* A dry run plans and changes nothing. */
    req.flags = MEMSWAP_F_DRY_RUN;
    CHECK(sim_swap(&req, &opts, &res) == 0);
    CHECK(res.frames_moved > 0 && res.bytes_copied == 0 && res.paused_ns == 0);
    CHECK(check_unchanged(&s) == 0);
    snapshot_free(&s);
    sim_domain_unpause(domid);
    CHECK(check_io(domid, 10) == 0);
    sim_host_destroy();
}

/*
 * Mutation: a swap that forgets one holder must fail the checks. These
 * prove that the checker above is able to see the seed post's failures.
 */
static int mutated_swap(unsigned int mutation, bool print)
{
    struct memswap_request req;
    /*
     * Continuations only between COPY and COMMIT: Xen writes vcpu_info
     * there, after the frame was copied. (Later, Xen's next time update
     * would hide a lost one.)
     */
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                  .preempt_every = 1,
                                  .preempt_at_phase = MEMSWAP_PH_FREEZE };
    struct memswap_result res;
    int domid, bad;

    if ( host(256 * MiB, 1, 21) )
        return -1;
    domid = guest("mut", 32 * MiB, 2, 3, 21);
    request(&req, domid);
    sim_mutations = mutation;
    bad = swap_and_check(domid, &req, &opts, &res, print);
    sim_mutations = 0;
    sim_host_destroy();
    return bad;
}

TEST(engine_mutation_guest_table_user_is_caught)
{
    CHECK(mutated_swap(SIM_MUT_SKIP_GUEST_TABLE_USER, false) > 0);
}

TEST(engine_mutation_vcpu_info_recopy_is_caught)
{
    CHECK(mutated_swap(SIM_MUT_SKIP_VCPU_INFO_RECOPY, false) > 0);
}

TEST(engine_mutation_gdt_frames_is_caught)
{
    CHECK(mutated_swap(SIM_MUT_SKIP_GDT, false) > 0);
}

TEST(engine_mutation_shared_info_p2m_is_caught)
{
    CHECK(mutated_swap(SIM_MUT_SKIP_P2M_INFO, false) > 0);
}

TEST(engine_unmutated_control)
{
    /* The same scenario without a mutation passes: the failures above are real. */
    CHECK(mutated_swap(0, true) == 0);
}
