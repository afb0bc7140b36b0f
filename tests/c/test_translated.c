/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The engine on translated guests (PVH, HVM) and in live mode (both
 * kinds), in the simulator, checked against the same contract as the PV
 * stop-and-copy swaps (swap_check.h): bytes, audit, kept frames and their
 * reasons, freed memory, placement. Failures are injected in every phase
 * (pre-copy rounds included), preemption is forced in every phase, the
 * guest keeps writing during live swaps, the refusals are exercised, and
 * mutations of the host show the checks catching a broken swap.
 */
#include <errno.h>
#include <stdlib.h>
#include "sim/sim_internal.h"
#include "harness.h"
#include "guest_view.h"
#include "swap_check.h"

static const unsigned int translated_types[] = { SIM_GUEST_PVH, SIM_GUEST_HVM };

/* What a translated guest's own layout makes Xen and dom0 hold. */
static void expect_translated_kept(const struct memswap_result *res, struct domain *d,
                                   bool *ok)
{
    *ok = res->translated &&
          res->frames_kept[MEMSWAP_KEPT_XEN] == d->nr_vcpus + 1u &&      /* FIFO pages */
          res->frames_kept[MEMSWAP_KEPT_P2M_TYPE] == 1 &&                /* ioreq page */
          res->frames_kept[MEMSWAP_KEPT_GRANTED] == 2 &&                 /* netback's rings */
          res->frames_kept[MEMSWAP_KEPT_FOREIGN] ==
              2u + (d->type == SIM_GUEST_HVM ? 2u : 0u) &&               /* rings, video memory */
          res->frames_kept[MEMSWAP_KEPT_UNEXPLAINED] == 0;
}

TEST(translated_guests_stop_and_copy)
{
    static const struct { uint64_t mem; unsigned int vcpus, as; } g[] = {
        { 16 * MiB, 1, 1 }, { 64 * MiB, 3, 2 },
    };
    unsigned int t, i;

    for ( t = 0; t < 2; t++ )
        for ( i = 0; i < sizeof(g) / sizeof(g[0]); i++ )
        {
            struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                          .preempt_every = 7 };
            struct memswap_request req;
            struct memswap_result res;
            bool ok;
            int domid, bad;

            CHECK(host(3 * g[i].mem + 256 * MiB, 2, 200 + i) == 0);
            domid = guest_of_type(translated_types[t], "t", g[i].mem, g[i].vcpus, g[i].as,
                                  300 + i);
            CHECKF(domid > 0, "create %d", domid);
            CHECK(check_io(domid, 20) == 0);
            request(&req, domid);
            set_colour_range(&req, geom.nr_colours / 2, geom.nr_colours);
            bad = swap_and_check(domid, &req, &opts, &res, true);
            CHECKF(bad == 0, "type %u, %llu MiB: %d violations", translated_types[t],
                   (unsigned long long)(g[i].mem / MiB), bad);
            expect_translated_kept(&res, sim_domain_lookup(domid), &ok);
            CHECKF(ok, "kept xen %llu p2m_type %llu granted %llu foreign %llu",
                   (unsigned long long)res.frames_kept[MEMSWAP_KEPT_XEN],
                   (unsigned long long)res.frames_kept[MEMSWAP_KEPT_P2M_TYPE],
                   (unsigned long long)res.frames_kept[MEMSWAP_KEPT_GRANTED],
                   (unsigned long long)res.frames_kept[MEMSWAP_KEPT_FOREIGN]);
            CHECK(res.continuations > 0);
            CHECK(res.frames_moved * 100 >= res.frames_total * 95);
            /* The guest's page tables hold gfns: none was rewritten. */
            CHECK(res.ptes_translated == 0 && res.frames_by_class[MEMSWAP_FC_L1] == 0);
            /* And back, onto the other colours and node 1. */
            set_colour_range(&req, 0, geom.nr_colours / 2);
            req.node = 1;
            bad = swap_and_check(domid, &req, &opts, &res, true);
            CHECKF(bad == 0, "second swap: %d violations", bad);
            sim_host_destroy();
        }
}

/*
 * An HVM guest's device model keeps doing DMA while the guest is paused:
 * log-dirty sees it, and what it wrote after a frame's copy is copied again
 * at the commit (while frozen). Without log-dirty, those writes would be
 * lost: the mutation hiding them shows that the checks see it.
 */
static int dm_swap(unsigned int mutation, uint64_t *recopied)
{
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                  .preempt_every = 1, .preempt_at_phase = MEMSWAP_PH_COPY };
    struct memswap_request req;
    struct memswap_result res;
    int domid, bad;

    if ( host(256 * MiB, 1, 41) )
        return -100;
    domid = guest_of_type(SIM_GUEST_HVM, "dm", 32 * MiB, 2, 1, 41);
    request(&req, domid);
    set_colour_range(&req, 0, geom.nr_colours / 2);
    sim_mutations = mutation;
    bad = swap_and_check(domid, &req, &opts, &res, !mutation);
    sim_mutations = 0;
    *recopied = res.bytes_copied / 4096 - res.frames_moved;
    sim_host_destroy();
    return bad;
}

TEST(translated_device_model_writes_while_paused_are_copied_again)
{
    uint64_t recopied;

    CHECK(dm_swap(0, &recopied) == 0);
    CHECKF(recopied > 0, "nothing copied again");
    CHECK(dm_swap(SIM_MUT_CLEAN_LIES, &recopied) != 0);
    CHECK(dm_swap(SIM_MUT_LOGDIRTY_BLIND, &recopied) == 0);   /* the commit re-checks */
}

/* ---- live ------------------------------------------------------------------- */

struct live_case {
    unsigned int type;
    uint64_t mem;
    unsigned int vcpus, dirty_rate;
};

static int live_swap(const struct live_case *c, struct sim_swap_opts *opts,
                     struct memswap_request *req, struct memswap_result *res,
                     unsigned int mutation, bool print)
{
    int domid, bad;

    if ( host(3 * c->mem + 256 * MiB, 2, 500 + c->type) )
        return -100;
    domid = guest_of_type(c->type, "live", c->mem, c->vcpus, 2, 600 + c->type);
    if ( domid < 0 )
        return -101;
    sim_domain_set_dirty_rate(domid, c->dirty_rate);
    request(req, domid);
    req->flags = MEMSWAP_F_LIVE;
    set_colour_range(req, geom.nr_colours / 4, geom.nr_colours);
    sim_mutations = mutation;
    bad = live_swap_and_check(domid, req, opts, res, print);
    sim_mutations = 0;
    return bad;
}

TEST(live_swaps_of_a_guest_that_keeps_writing)
{
    static const struct live_case cases[] = {
        { SIM_GUEST_PVH, 64 * MiB, 2, 32 }, { SIM_GUEST_HVM, 64 * MiB, 2, 32 },
        { SIM_GUEST_PV, 64 * MiB, 2, 32 },
    };
    unsigned int i;

    for ( i = 0; i < sizeof(cases) / sizeof(cases[0]); i++ )
    {
        struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                      .preempt_every = 40 };
        struct memswap_request req;
        struct memswap_result res;
        struct sim_io_stats io;
        int bad = live_swap(&cases[i], &opts, &req, &res, 0, true);

        CHECKF(bad == 0, "type %u: %d violations", cases[i].type, bad);
        sim_domain_io_stats(req.domid, &io);
        /* It ran and wrote during the swap, and pre-copy went round. */
        CHECKF(res.live_rounds >= 2, "rounds %u", res.live_rounds);
        CHECK(res.live_precopy_pages > res.frames_moved);
        CHECK(res.bytes_copied == (res.live_precopy_pages + res.live_final_pages) * 4096);
        if ( cases[i].type != SIM_GUEST_PV )
        {
            /* Most frames were committed with the guest running. */
            CHECKF(res.live_committed_running * 10 >= res.frames_moved * 9,
                   "%llu of %llu committed running",
                   (unsigned long long)res.live_committed_running,
                   (unsigned long long)res.frames_moved);
            CHECK(io.fifo_events > 0);
        }
        CHECK(res.paused_ns > 0 && res.phase_ns[MEMSWAP_PH_PRECOPY] > 0);
        sim_host_destroy();
    }
}

/* The pre-copy's stop condition: few dirty pages, or the round limit. */
TEST(live_precopy_stops_like_simple_precopy_policy)
{
    struct live_case quiet = { SIM_GUEST_PVH, 32 * MiB, 1, 0 };
    struct live_case busy = { SIM_GUEST_PVH, 32 * MiB, 1, 512 };
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true, .preempt_every = 20 };
    struct memswap_request req;
    struct memswap_result res;

    /* A quiet guest: the first read finds fewer than 50 dirty pages. */
    CHECK(live_swap(&quiet, &opts, &req, &res, 0, true) == 0);
    CHECKF(res.live_rounds == 2 && res.live_dirty_last < MEMSWAP_LIVE_DIRTY_DEFAULT,
           "rounds %u, last %u", res.live_rounds, res.live_dirty_last);
    /* A busy one (it runs at every chance): stopped by the round limit. */
    opts.preempt_every = 1;
    CHECK(live_swap(&busy, &opts, &req, &res, 0, true) == 0);
    CHECKF(res.live_rounds == MEMSWAP_LIVE_ROUNDS_DEFAULT, "rounds %u", res.live_rounds);
    CHECK(res.live_dirty_last >= MEMSWAP_LIVE_DIRTY_DEFAULT);
    sim_host_destroy();
    CHECK(host(256 * MiB, 1, 7) == 0);
    req.domid = (uint32_t)guest_of_type(SIM_GUEST_PVH, "busy", 32 * MiB, 1, 1, 7);
    sim_domain_set_dirty_rate(req.domid, 512);
    req.geom = geom;
    req.live_max_rounds = 3;
    CHECK(live_swap_and_check(req.domid, &req, &opts, &res, true) == 0);
    CHECK(res.live_rounds == 3);
    /* And a threshold above anything a round finds stops after one read. */
    req.live_max_rounds = 0;
    req.live_dirty_threshold = 1u << 30;
    CHECK(live_swap_and_check(req.domid, &req, &opts, &res, true) == 0);
    CHECK(res.live_rounds == 2);
    sim_host_destroy();
}

/*
 * PV live with the cooperative final stop: pre-copy with the guest running,
 * HELD, the caller suspends the guest, the final stop and commit, resume.
 */
struct hold_ctx {
    unsigned int domid;
    int held, cancel;
    struct sim_io_stats at_hold;
};

static int hold_suspend(void *arg)
{
    struct hold_ctx *h = arg;

    h->held++;
    sim_domain_io_stats(h->domid, &h->at_hold);
    return h->cancel ? 1 : sim_domain_suspend(h->domid);
}

TEST(live_pv_hold_then_cooperative_final_stop)
{
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true, .preempt_every = 30 };
    struct hold_ctx h = { 0 };
    struct memswap_request req;
    struct memswap_result res;
    struct snapshot s;
    int domid, rc;

    CHECK(host(512 * MiB, 1, 61) == 0);
    domid = guest("coop", 64 * MiB, 2, 3, 61);
    sim_domain_set_dirty_rate(domid, 16);
    h.domid = domid;
    opts.held = hold_suspend;
    opts.held_arg = &h;
    request(&req, domid);
    req.flags = MEMSWAP_F_LIVE | MEMSWAP_F_HOLD;
    set_colour_range(&req, 0, geom.nr_colours / 2);
    snapshot_take(&s, domid);
    rc = sim_swap(&req, &opts, &res);
    CHECKF(rc == 0, "rc=%d in %s", rc, memswap_phase_name(res.failed_phase));
    CHECK(h.held == 1);
    /* The guest ran (and wrote) during pre-copy; the final stop was short. */
    CHECK(h.at_hold.console_lines > s.io.console_lines);
    CHECK(res.live_rounds >= 2 && res.live_precopy_pages >= res.frames_moved);
    CHECK(check_swap(&s, &req, &res, CHECK_PRINT | CHECK_LIVE) == 0);
    snapshot_free(&s);
    CHECK(sim_domain_resume_cancelled(domid) == 0);
    CHECK(check_io(domid, 40) == 0);
    CHECK(sim_guest_verify(domid, NULL) == 0);

    /* Cancelled at the hold: everything as it was, log-dirty off. */
    h.cancel = 1;
    h.held = 0;
    snapshot_take(&s, domid);
    rc = sim_swap(&req, &opts, &res);
    CHECKF(rc == -EINTR, "rc=%d", rc);
    CHECK(h.held == 1);
    CHECK(check_unchanged(&s) == 0);
    snapshot_free(&s);
    CHECK(check_io(domid, 20) == 0);
    sim_host_destroy();
}

/* A forced preemption in each phase, pre-copy included, for both kinds. */
TEST(live_preempted_in_every_phase)
{
    static const unsigned int types[] = { SIM_GUEST_PVH, SIM_GUEST_PV };
    unsigned int t, ph;

    for ( t = 0; t < 2; t++ )
        for ( ph = MEMSWAP_PH_SCAN; ph < MEMSWAP_PH_DONE; ph++ )
        {
            struct live_case c = { types[t], 32 * MiB, 2, 8 };
            struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                          .preempt_every = 1, .preempt_at_phase = ph };
            struct memswap_request req;
            struct memswap_result res;
            int bad = live_swap(&c, &opts, &req, &res, 0, true);

            CHECKF(bad == 0, "type %u, phase %s: %d violations", types[t],
                   memswap_phase_name(ph), bad);
            /*
             * A translated guest has no page tables for COUNT_REFS to walk,
             * and skips FREEZE (frozen frame by frame in COMMIT).
             */
            if ( !(types[t] != SIM_GUEST_PV &&
                   (ph == MEMSWAP_PH_FREEZE || ph == MEMSWAP_PH_COUNT_REFS)) )
                CHECKF(res.continuations > 0, "type %u: phase %s never yielded", types[t],
                       memswap_phase_name(ph));
            sim_host_destroy();
        }
}

/* ---- failures: nothing changed ------------------------------------------------ */

struct fail_at {
    unsigned int domid, phase, what;
    bool done;
};

enum { FAIL_ABORT, FAIL_DYING, FAIL_IOMMU, FAIL_SHARING, FAIL_NR };

static void fail_at(struct memswap_ctx *ctx, void *arg)
{
    struct fail_at *f = arg;

    if ( f->done || memswap_phase(ctx) != f->phase )
        return;
    f->done = true;
    switch ( f->what )
    {
    case FAIL_ABORT:   memswap_abort(ctx); break;       /* rolls back at once */
    case FAIL_DYING:   sim_domain_set_dying(f->domid); break;
    case FAIL_IOMMU:   sim_domain_set_iommu(f->domid, true); break;
    case FAIL_SHARING: sim_domain_set_feature(f->domid, SIM_FEAT_SHARING, true); break;
    }
}

/* A live swap failed in @ph by @what: its errno, and whether nothing changed. */
static int failed_live_swap(unsigned int type, unsigned int ph, unsigned int what,
                            struct sim_swap_opts *opts, bool *unchanged)
{
    static const int want[FAIL_NR] = { -EINTR, -ENODEV, -EOPNOTSUPP, -EOPNOTSUPP };
    struct fail_at f = { .phase = ph, .what = what };
    struct memswap_request req;
    struct memswap_result res;
    struct snapshot s;
    struct domain *d;
    int domid, rc;

    if ( host(256 * MiB, 1, 700 + ph) )
        return -100;
    domid = guest_of_type(type, "fail", 32 * MiB, 2, 2, 700 + ph);
    d = sim_domain_lookup(domid);
    f.domid = domid;
    request(&req, domid);
    req.flags = MEMSWAP_F_LIVE;
    /* Held still by the test so that "unchanged" can compare its bytes. */
    sim_domain_pause(domid);
    snapshot_take(&s, domid);
    rc = drive(&req, opts, fail_at, &f, &res);
    d->dying = false;
    d->iommu = false;
    d->mem_sharing = false;
    *unchanged = check_unchanged(&s) == 0 && res.failed_phase == ph;
    snapshot_free(&s);
    sim_domain_unpause(domid);
    sim_host_destroy();
    if ( !f.done )
        return -101;
    return rc == want[what] ? 1 : rc;
}

TEST(live_failures_roll_back_in_every_phase)
{
    static const unsigned int types[] = { SIM_GUEST_HVM, SIM_GUEST_PV };
    unsigned int t, ph, what;
    bool unchanged;

    for ( t = 0; t < 2; t++ )
        for ( ph = MEMSWAP_PH_SCAN; ph < MEMSWAP_PH_COMMIT; ph++ )
            for ( what = 0; what < FAIL_NR; what++ )
            {
                struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                              .preempt_every = 1, .preempt_at_phase = ph };
                int got;

                /* A translated swap does not stop in COUNT_REFS (no tables) or FREEZE. */
                if ( types[t] != SIM_GUEST_PV &&
                     (ph == MEMSWAP_PH_FREEZE || ph == MEMSWAP_PH_COUNT_REFS) )
                    continue;
                got = failed_live_swap(types[t], ph, what, &opts, &unchanged);
                CHECKF(got == 1, "type %u, phase %s, failure %u: %d", types[t],
                       memswap_phase_name(ph), what, got);
                CHECKF(unchanged, "type %u, phase %s, failure %u: not rolled back",
                       types[t], memswap_phase_name(ph), what);
            }
}

/* Failures of the host's own steps: allocation, p2m preparation, the dirty log. */
TEST(live_host_failures_roll_back)
{
    static const struct { unsigned int type; int64_t alloc; uint32_t prepare, read;
                          int rc; unsigned int phase; } f[] = {
        { SIM_GUEST_PVH, 100, 0, 0, -ENOMEM, MEMSWAP_PH_ALLOC },
        { SIM_GUEST_PVH, -1, 3, 0, -ENOMEM, MEMSWAP_PH_ALLOC },
        { SIM_GUEST_PVH, -1, 0, 1, -EBUSY, MEMSWAP_PH_PRECOPY },
        { SIM_GUEST_HVM, -1, 0, 3, -EBUSY, MEMSWAP_PH_PRECOPY },
        { SIM_GUEST_PV, -1, 0, 2, -EBUSY, MEMSWAP_PH_PRECOPY },
        { SIM_GUEST_PV, 5, 0, 0, -ENOMEM, MEMSWAP_PH_ALLOC },
    };
    unsigned int i;

    for ( i = 0; i < sizeof(f) / sizeof(f[0]); i++ )
    {
        struct sim_swap_opts opts = { .alloc_fail_at = f[i].alloc, .world_runs = true,
                                      .preempt_every = 1, .prepare_fail_nth = f[i].prepare,
                                      .logdirty_read_fail_nth = f[i].read };
        struct memswap_request req;
        struct memswap_result res;
        struct snapshot s;
        int domid, rc;

        CHECK(host(256 * MiB, 1, 800 + i) == 0);
        domid = guest_of_type(f[i].type, "hostfail", 32 * MiB, 2, 2, 800 + i);
        request(&req, domid);
        req.flags = MEMSWAP_F_LIVE;
        req.live_dirty_threshold = 1;          /* go round until the limit */
        sim_domain_pause(domid);
        snapshot_take(&s, domid);
        rc = sim_swap(&req, &opts, &res);
        CHECKF(rc == f[i].rc && res.failed_phase == f[i].phase, "case %u: rc=%d in %s", i, rc,
               memswap_phase_name(res.failed_phase));
        CHECK(check_unchanged(&s) == 0);
        snapshot_free(&s);
        sim_domain_unpause(domid);
        CHECK(check_io(domid, 20) == 0);
        /* And the next swap succeeds. */
        CHECK(live_swap_and_check(domid, &req, &(struct sim_swap_opts){ .alloc_fail_at = -1,
                                  .world_runs = true, .preempt_every = 9 }, &res, true) == 0);
        sim_host_destroy();
    }
}

/* ---- refusals ------------------------------------------------------------------- */

TEST(refusals_of_translated_and_live_swaps)
{
    struct sim_swap_opts opts = { .alloc_fail_at = -1 };
    struct memswap_request req;
    struct memswap_result res;
    unsigned int f;
    int pvh, pv, rc;

    CHECK(host(256 * MiB, 1, 9) == 0);
    pvh = guest_of_type(SIM_GUEST_PVH, "pvh", 16 * MiB, 1, 1, 9);
    pv = guest("pv", 16 * MiB, 1, 1, 10);
    CHECK(pvh > 0 && pv > 0);

    /* Log-dirty already on (a save, a migration): EBUSY, for every kind of swap. */
    CHECK(sim_domain_set_log_dirty(pvh, true) == 0);
    request(&req, pvh);
    CHECK(sim_swap(&req, &opts, &res) == -EBUSY);
    req.flags = MEMSWAP_F_LIVE;
    CHECK(sim_swap(&req, &opts, &res) == -EBUSY);
    req.flags = MEMSWAP_F_DRY_RUN;
    CHECK(sim_swap(&req, &opts, &res) == -EBUSY);
    CHECK(sim_domain_set_log_dirty(pvh, false) == 0);
    CHECK(sim_domain_set_log_dirty(pv, true) == 0);
    request(&req, pv);
    req.flags = MEMSWAP_F_LIVE;
    CHECK(sim_swap(&req, &opts, &res) == -EBUSY);
    req.flags = 0;
    CHECK(sim_swap(&req, &opts, &res) == -EBUSY);
    CHECK(sim_domain_set_log_dirty(pv, false) == 0);

    /* Memory sharing, paging, altp2m; a passed-through device: EOPNOTSUPP. */
    for ( f = SIM_FEAT_SHARING; f <= SIM_FEAT_ALTP2M; f++ )
    {
        CHECK(sim_domain_set_feature(pvh, f, true) == 0);
        request(&req, pvh);
        CHECK(sim_swap(&req, &opts, &res) == -EOPNOTSUPP);
        req.flags = MEMSWAP_F_LIVE;
        CHECK(sim_swap(&req, &opts, &res) == -EOPNOTSUPP);
        CHECK(sim_domain_set_feature(pvh, f, false) == 0);
    }
    CHECK(sim_domain_set_iommu(pvh, true) == 0);
    request(&req, pvh);
    CHECK(sim_swap(&req, &opts, &res) == -EOPNOTSUPP);
    CHECK(sim_domain_set_iommu(pvh, false) == 0);

    /* Malformed: HOLD without LIVE, too many rounds, padding. */
    request(&req, pvh);
    req.flags = MEMSWAP_F_HOLD;
    CHECK(sim_swap(&req, &opts, &res) == -EINVAL);
    req.flags = MEMSWAP_F_LIVE;
    req.live_max_rounds = MEMSWAP_LIVE_ROUNDS_MAX + 1;
    CHECK(sim_swap(&req, &opts, &res) == -EINVAL);
    req.live_max_rounds = 0;
    req.pad = 1;
    CHECK(sim_swap(&req, &opts, &res) == -EINVAL);

    /* Everything refused changed nothing; the domains swap now. */
    CHECK(sim_audit(NULL, 0) == 0);
    request(&req, pvh);
    CHECK(swap_and_check(pvh, &req, &opts, &res, true) == 0);
    request(&req, pv);
    CHECK(swap_and_check(pv, &req, &opts, &res, true) == 0);
    sim_host_destroy();

    /* A host without shadow paging: no live swap of a PV guest, the rest goes. */
    {
        struct sim_host_config hc = { .ram_bytes = 256 * MiB, .nr_nodes = 1,
                                      .llc = { 8 * MiB, 16, 64 }, .no_shadow_paging = true };

        CHECK(sim_host_create(&hc) == 0);
        sim_host_geometry(&geom);
        pv = guest("pv", 16 * MiB, 1, 1, 11);
        pvh = guest_of_type(SIM_GUEST_PVH, "pvh", 16 * MiB, 1, 1, 12);
        request(&req, pv);
        req.flags = MEMSWAP_F_LIVE;
        CHECK(sim_swap(&req, &opts, &res) == -EOPNOTSUPP);
        req.flags = MEMSWAP_F_LIVE | MEMSWAP_F_DRY_RUN;
        CHECK(sim_swap(&req, &opts, &res) == -EOPNOTSUPP);
        CHECK(sim_domain_set_log_dirty(pv, true) == -EOPNOTSUPP);
        req.flags = 0;
        CHECK(swap_and_check(pv, &req, &opts, &res, true) == 0);
        request(&req, pvh);
        req.flags = MEMSWAP_F_LIVE;
        rc = live_swap_and_check(pvh, &req, &opts, &res, true);
        CHECK(rc == 0);
        sim_host_destroy();
    }
}

/* While a swap holds log-dirty, nobody else may use or stop it. */
static int try_toolstack(void *arg)
{
    unsigned int domid = *(unsigned int *)arg;

    return sim_domain_set_log_dirty(domid, true) == -EBUSY &&
           sim_domain_set_log_dirty(domid, false) == -EBUSY ? 0 : 1;
}

TEST(log_dirty_is_the_swaps_while_it_runs)
{
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true, .preempt_every = 20,
                                  .held = try_toolstack };
    struct memswap_request req;
    struct memswap_result res;
    unsigned int domid;

    CHECK(host(256 * MiB, 1, 13) == 0);
    domid = (unsigned int)guest_of_type(SIM_GUEST_PVH, "ld", 32 * MiB, 1, 1, 13);
    opts.held_arg = &domid;
    request(&req, domid);
    req.flags = MEMSWAP_F_LIVE | MEMSWAP_F_HOLD;
    /* The hold callback cancels (non-zero) if the toolstack got through. */
    CHECK(live_swap_and_check(domid, &req, &opts, &res, true) == 0);
    CHECK(sim_domain_set_log_dirty(domid, true) == 0);      /* free again */
    CHECK(sim_domain_set_log_dirty(domid, false) == 0);
    sim_host_destroy();
}

/* ---- kept frames: exactly those held, with their reasons ------------------------- */

static unsigned int grant_target;
static int grant_map_id = -1, dm_map_id = -1;

/* During pre-copy, netback maps a buffer by grant and the device model a data page. */
static void hold_two_frames(struct memswap_ctx *ctx, void *arg)
{
    struct domain *d = arg;
    unsigned long pfn;

    if ( memswap_phase(ctx) != MEMSWAP_PH_PRECOPY || grant_map_id >= 0 )
        return;
    grant_map_id = sim_gnt_map(0, d->domid, grant_target, false);
    for ( pfn = 2000; d->pfn_role[pfn] != SIM_ROLE_DATA; pfn++ )
        ;
    dm_map_id = sim_fmap_map(d->domid, sim_p2m_ram_mfn(d, pfn), false);
}

TEST(translated_kept_frames_are_exactly_those_held)
{
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true, .preempt_every = 1,
                                  .preempt_at_phase = MEMSWAP_PH_PRECOPY };
    struct memswap_request req;
    struct memswap_result res;
    struct snapshot s;
    struct domain *d;
    int domid, rc;

    CHECK(host(256 * MiB, 1, 14) == 0);
    domid = guest_of_type(SIM_GUEST_HVM, "kept", 32 * MiB, 2, 1, 14);
    d = sim_domain_lookup(domid);
    grant_target = d->gref_rx_buf0 + 3;
    grant_map_id = dm_map_id = -1;
    request(&req, domid);
    req.flags = MEMSWAP_F_LIVE;
    sim_domain_pause(domid);
    snapshot_take(&s, domid);
    rc = drive(&req, &opts, hold_two_frames, d, &res);
    CHECKF(rc == 0, "rc=%d", rc);
    CHECK(grant_map_id >= 0 && dm_map_id >= 0);
    /* check_swap recomputes who holds what: the two extra frames stayed. */
    CHECK(check_swap(&s, &req, &res, CHECK_PRINT) == 0);
    CHECK(res.frames_kept[MEMSWAP_KEPT_GRANTED] == 3 && res.frames_kept[MEMSWAP_KEPT_FOREIGN] == 5);
    snapshot_free(&s);
    sim_gnt_unmap(grant_map_id);
    sim_fmap_unmap(dm_map_id);
    sim_domain_unpause(domid);
    /* Released, they move with the next swap. */
    set_colour_range(&req, 0, geom.nr_colours / 2);
    CHECK(live_swap_and_check(domid, &req, &opts, &res, true) == 0);
    CHECK(res.frames_kept[MEMSWAP_KEPT_GRANTED] == 2 && res.frames_kept[MEMSWAP_KEPT_FOREIGN] == 4);
    sim_host_destroy();
}

/* ---- mutations the checks must catch -------------------------------------------- */

static int mutated_live_swap(unsigned int type, unsigned int mutation)
{
    struct live_case c = { type, 32 * MiB, 2, 16 };
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true, .preempt_every = 10 };
    struct memswap_request req;
    struct memswap_result res;
    int bad = live_swap(&c, &opts, &req, &res, mutation, !mutation);

    /* What a broken swap left wrong must show in the guest's next steps too. */
    if ( !bad && mutation )
        bad = check_io(req.domid, 40) + (sim_guest_verify(req.domid, NULL) != 0);
    sim_host_destroy();
    return bad;
}

TEST(live_mutations_are_caught)
{
    static const unsigned int types[] = { SIM_GUEST_PVH, SIM_GUEST_HVM, SIM_GUEST_PV };
    unsigned int t;

    for ( t = 0; t < 3; t++ )
    {
        CHECKF(mutated_live_swap(types[t], 0) == 0, "type %u: the control fails", types[t]);
        /* The final stop copies nothing again / the log loses writes. */
        if ( types[t] != SIM_GUEST_PV )
            CHECKF(mutated_live_swap(types[t], SIM_MUT_CLEAN_LIES) > 0,
                   "type %u: skipping the final copy not caught", types[t]);
        CHECKF(mutated_live_swap(types[t], SIM_MUT_LOGDIRTY_BLIND) > 0,
               "type %u: a blind dirty log not caught", types[t]);
        /* Xen keeps writing vcpu_info into the old frame. */
        CHECKF(mutated_live_swap(types[t], SIM_MUT_VCPU_INFO_MAP_STALE) > 0,
               "type %u: a stale vcpu_info mapping not caught", types[t]);
    }
    /* A translated guest keeps stale translations of its replaced gfns. */
    CHECK(mutated_live_swap(SIM_GUEST_PVH, SIM_MUT_SKIP_TLB_FLUSH) > 0);
}

/* ---- where the memory is ------------------------------------------------------------- */

static int check_query(unsigned int domid)
{
    struct sim_domain_info info;
    struct sim_query_info qi;
    uint64_t *cc, *counts, nodes[4], *frames;
    unsigned long pfn, n = 0;
    unsigned int c;
    int bad = 0;

    sim_domain_info(domid, &info);
    cc = calloc(geom.nr_colours, sizeof(*cc));
    counts = calloc(geom.nr_colours, sizeof(*counts));
    frames = calloc(info.max_pfn + 8, sizeof(*frames));
    if ( sim_query(domid, &geom, cc, nodes, 4, 0, info.max_pfn + 8, frames, &qi) )
        bad++;
    for ( pfn = 0; pfn < info.max_pfn + 8; pfn++ )
    {
        unsigned long mfn = sim_domain_pfn_to_mfn(domid, pfn);

        if ( mfn == MS_INVALID_MFN )
        {
            bad += frames[pfn] != MEMSWAP_NO_FRAME;
            continue;
        }
        bad += frames[pfn] != mfn;
        counts[memswap_colour_of(&geom, mfn)]++;
        n++;
    }
    for ( c = 0; c < geom.nr_colours; c++ )
        bad += cc[c] != counts[c];
    bad += qi.frames_counted != n || nodes[0] + nodes[1] != n || nodes[2] || nodes[3];
    bad += qi.nr_pfns != info.max_pfn || qi.translated != info.hvm || qi.tot_pages != info.tot_pages;
    /* A window: the same frames. */
    if ( sim_query(domid, NULL, NULL, NULL, 0, 100, 50, cc, &qi) )
        bad++;
    for ( pfn = 100; pfn < 150; pfn++ )
        bad += cc[pfn - 100] != frames[pfn];
    free(cc);
    free(counts);
    free(frames);
    return bad;
}

TEST(query_reports_where_memory_is_for_both_kinds)
{
    static const unsigned int types[] = { SIM_GUEST_PV, SIM_GUEST_PVH, SIM_GUEST_HVM };
    unsigned int t;

    for ( t = 0; t < 3; t++ )
    {
        struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true };
        struct memswap_request req;
        struct memswap_result res;
        uint64_t cc[1024] = { 0 }, nodes[2];
        unsigned int c;
        uint64_t off = 0;
        int domid;

        CHECK(host(256 * MiB, 2, 15 + t) == 0);
        domid = guest_of_type(types[t], "q", 32 * MiB, 1, 1, 15 + t);
        CHECKF(check_query(domid) == 0, "type %u", types[t]);
        request(&req, domid);
        set_colour_range(&req, 8, 72);
        req.node = 1;
        CHECK(swap_and_check(domid, &req, &opts, &res, true) == 0);
        CHECKF(check_query(domid) == 0, "type %u after a swap", types[t]);
        /* The placement, as the query sees it: all on colours 8..71 and node 1
         * but what stayed. */
        CHECK(sim_query(domid, &geom, cc, nodes, 2, 0, 0, NULL, NULL) == 0);
        for ( c = 0; c < geom.nr_colours; c++ )
            if ( c < 8 || c >= 72 )
                off += cc[c];
        CHECK(off <= res.frames_total - res.frames_moved);
        CHECK(nodes[0] <= res.frames_total - res.frames_moved && nodes[1] >= res.frames_moved);
        sim_host_destroy();
    }
    /* dom0 and no such domain. */
    CHECK(host(256 * MiB, 1, 18) == 0);
    CHECK(sim_query(0, &geom, NULL, NULL, 0, 0, 0, NULL, NULL) == -ESRCH);
    CHECK(sim_query(33, &geom, NULL, NULL, 0, 0, 0, NULL, NULL) == -ESRCH);
    sim_host_destroy();
}
