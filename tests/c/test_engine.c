/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The swap engine (core/) on generated guests in the simulator.
 *
 * After every swap the checker (check_swap) verifies the contract of
 * docs/DESIGN.md:
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
#include "swap_check.h"

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
        if ( ph == MEMSWAP_PH_PRECOPY )
            continue;           /* live swaps only */
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
        int domid;

        CHECK(host(256 * MiB, 1, 40 + i) == 0);
        domid = guest("a", 32 * MiB, 2, 2, 40 + i);
        request(&req, domid);
        req.flags = MEMSWAP_F_DRY_RUN;
        CHECK(sim_swap(&req, &(struct sim_swap_opts){ .alloc_fail_at = -1 }, &dry) == 0);
        req.flags = 0;
        opts.alloc_fail_at = at[i] >= 0 ? at[i] : (int64_t)dry.frames_moved - 1;

        sim_domain_pause(domid);
        CHECK(swap_fails_unchanged(domid, &req, &opts, &res, -ENOMEM, MEMSWAP_PH_ALLOC) == 0);
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
        if ( ph == MEMSWAP_PH_PRECOPY )
            continue;           /* live swaps only */
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
    struct domain *d;
    uint64_t *pgd, saved[512];
    const uint64_t *kl4;
    unsigned long pgd_pfn;
    int domid;

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
    CHECK(swap_fails_unchanged(domid, &req, &opts, &res, -EAGAIN, MEMSWAP_PH_COPY) == 0);

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

/*
 * A live PV swap looks at data frames for Linux page directories on the
 * bytes of each copy, pre-copy included, so that its final stop looks only
 * at what it copies again: a pgd found before (and not written since) is
 * still translated; a pgd the pre-copy found half built is copied and
 * looked at again in the final stop, even if nothing logged a write to it -
 * still half built, the swap gives up (-EAGAIN, nothing changed); finished
 * meanwhile, it is translated.
 */
static int finish_pgd(void *arg)
{
    uint64_t *pgd = arg;

    pgd[0] = 0;                 /* not through the guest: no log entry */
    return 0;
}

TEST(engine_live_final_stop_looks_at_what_was_written)
{
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .preempt_every = 5 };
    struct memswap_request req;
    struct memswap_result res;
    struct domain *d;
    uint64_t *pgd_a, *pgd_b;
    const uint64_t *kl4;
    unsigned long pfn_a, pfn_b, copied, looked;
    const char *line;
    int domid, rc;

    CHECK(host(256 * MiB, 1, 33) == 0);
    domid = guest("looks", 64 * MiB, 1, 2, 33);
    d = sim_domain_lookup(domid);
    pfn_a = d->user_pfn[0][2];
    pfn_b = d->user_pfn[0][5];
    pgd_a = sim_guest_va_ptr(d, sim_pfn_va(pfn_a), true);
    pgd_b = sim_guest_va_ptr(d, sim_pfn_va(pfn_b), true);
    CHECK(pgd_a && pgd_b);
    kl4 = sim_map_frame(d->vcpu[0].guest_table);
    memset(pgd_a, 0, 4096);
    memcpy(pgd_a + 273, kl4 + 273, (512 - 273) * sizeof(*pgd_a));
    memcpy(pgd_b, pgd_a, 4096);
    pgd_b[0] = kl4[0];
    request(&req, domid);
    req.flags = MEMSWAP_F_LIVE | MEMSWAP_F_HOLD;

    /* Still half built at the final stop: given up, nothing changed. */
    CHECK(swap_fails_unchanged(domid, &req, &opts, &res, -EAGAIN, MEMSWAP_PH_COPY) == 0);

    /* Finished while the swap was held: both pgds follow the kernel's L4. */
    opts.held = finish_pgd;
    opts.held_arg = pgd_b;
    sim_log_clear();
    rc = sim_swap(&req, &opts, &res);
    CHECKF(rc == 0, "rc=%d", rc);
    CHECK(res.unpinned_pgds == 2);
    kl4 = sim_map_frame(d->vcpu[0].guest_table);
    pgd_a = sim_guest_va_ptr(d, sim_pfn_va(pfn_a), false);
    pgd_b = sim_guest_va_ptr(d, sim_pfn_va(pfn_b), false);
    CHECK(memcmp(pgd_a + 273, kl4 + 273, (512 - 273) * sizeof(*kl4)) == 0);
    CHECK(memcmp(pgd_b + 273, kl4 + 273, (512 - 273) * sizeof(*kl4)) == 0);
    CHECK(pgd_b[0] == 0 && sim_guest_verify(domid, NULL) == 0);
    CHECK(sim_audit(NULL, 0) == 0);

    /* The final stop looked at what it copied again, not at every data frame. */
    line = sim_log_last("final stop: copied");
    CHECK(line && sscanf(strstr(line, "final stop:"),
                         "final stop: copied %lu frames, looked at %lu", &copied, &looked) == 2);
    CHECKF(looked >= 1 && looked <= copied && copied == res.live_final_pages &&
           looked * 50 < res.frames_by_class[MEMSWAP_FC_DATA],
           "copied %lu looked %lu of %llu data frames", copied, looked,
           (unsigned long long)res.frames_by_class[MEMSWAP_FC_DATA]);
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
    /* A translated guest is swappable, but not with memory sharing on. */
    CHECK(sim_domain_set_feature(hvmid, SIM_FEAT_SHARING, true) == 0);
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

/* ---- the hypervisor's discipline: references, freezing, re-checks ----------- */

/* The guest's P2M entry for @pfn, through its frame-list tree. */
static uint64_t *p2m_slot(struct domain *d, unsigned long pfn)
{
    const uint64_t *top = sim_map_frame((unsigned long)sim_shared_info(d)->arch.pfn_to_mfn_frame_list_list);
    const uint64_t *mid = sim_map_frame((unsigned long)top[pfn >> 18]);

    return (uint64_t *)sim_map_frame((unsigned long)mid[(pfn >> 9) & 511]) + (pfn & 511);
}

/* The whole machine as a dry run must leave it. */
static uint64_t machine_hash(void)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    unsigned long mfn;

    for ( mfn = 0; mfn < sim_nr_frames; mfn++ )
    {
        const struct page_info *pg = sim_mfn_to_page(mfn);
        const uint64_t *w = sim_map_frame(mfn);

        h = (h ^ pg->count_info) * 0x100000001b3ULL;
        h = (h ^ pg->u.inuse.type_info) * 0x100000001b3ULL;
        h = (h ^ (uintptr_t)pg->owner) * 0x100000001b3ULL;
        h = (h ^ sim_m2p[mfn]) * 0x100000001b3ULL;
        if ( pg->owner && pg->owner != &sim_dom_xen )
            h = (h ^ w[0] ^ w[511] ^ w[mfn & 511]) * 0x100000001b3ULL;
    }
    return h;
}

TEST(engine_dry_run_changes_nothing)
{
    struct memswap_request req;
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .preempt_every = 1 };
    struct memswap_result res;
    uint64_t before;
    int domid;

    CHECK(host(256 * MiB, 1, 70) == 0);
    domid = guest("dry", 32 * MiB, 2, 2, 70);
    request(&req, domid);
    req.flags = MEMSWAP_F_DRY_RUN;
    before = machine_hash();
    CHECK(sim_swap(&req, &opts, &res) == 0);
    CHECK(res.frames_moved > 0 && res.continuations > 10 && res.bytes_copied == 0);
    /* Every reference it took is given back: counts, types, owners, M2P, bytes. */
    CHECK(machine_hash() == before);
    CHECK(sim_audit(NULL, 0) == 0);
    sim_host_destroy();
}

/*
 * dom0 frees one of the guest's frames (XENMEM_decrease_reservation, after
 * the guest unmapped it) while the swap waits between two continuations,
 * in each phase. The engine's reference keeps the frame from being freed
 * under it; a changed count rolls the swap back before the point of no
 * return; a frozen frame cannot be referenced at all. Whatever the
 * outcome, the heap and the domain stay consistent.
 */
struct dom0_act {
    unsigned int domid, phase;
    unsigned long pfn;
    int rc;
    bool done;
};

static void decrease_at(struct memswap_ctx *ctx, void *arg)
{
    struct dom0_act *a = arg;

    if ( a->done || memswap_phase(ctx) != a->phase )
        return;
    a->done = true;
    a->rc = sim_dom0_decrease_reservation(a->domid, sim_domain_pfn_to_mfn(a->domid, a->pfn));
}

TEST(engine_dom0_decrease_reservation_in_every_phase)
{
    unsigned int ph;

    for ( ph = MEMSWAP_PH_SCAN; ph < MEMSWAP_PH_DONE; ph++ )
    {
        if ( ph == MEMSWAP_PH_PRECOPY )
            continue;           /* live swaps only */
        struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                      .preempt_every = 1, .preempt_at_phase = ph };
        struct dom0_act a = { .phase = ph, .rc = 1 };
        struct memswap_request req;
        struct memswap_result res;
        unsigned long free0, tot0;
        struct domain *d;
        uint64_t pte;
        char audit[512];
        int domid, rc;

        CHECK(host(256 * MiB, 1, 80 + ph) == 0);
        domid = guest("dec", 32 * MiB, 2, 2, 80 + ph);
        d = sim_domain_lookup(domid);
        a.domid = domid;
        /* A page of the guest's the guest has unmapped (a balloon driver's first step). */
        a.pfn = guest_data_pfn(d, d->p2m_size / 2 + 700, &pte);
        CHECK(sim_mmu_update(d, pte, 0) == 0);
        free0 = sim_host_free_frames(-1, NULL);
        tot0 = d->tot_pages;
        request(&req, domid);
        sim_domain_pause(domid);
        rc = drive(&req, &opts, decrease_at, &a, &res);
        sim_domain_unpause(domid);
        CHECKF(a.done, "phase %s: no continuation", memswap_phase_name(ph));
        CHECKF(rc == 0 || rc == -EAGAIN, "phase %s: rc=%d", memswap_phase_name(ph), rc);
        CHECKF(a.rc == 0 || a.rc == -ENXIO, "phase %s: decrease rc=%d", memswap_phase_name(ph), a.rc);
        /* Before the freeze it works and the swap rolls back; once frozen it cannot. */
        if ( ph == MEMSWAP_PH_ALLOC || ph == MEMSWAP_PH_COPY )
            CHECKF(a.rc == 0 && rc == -EAGAIN, "phase %s: %d/%d", memswap_phase_name(ph), a.rc, rc);
        if ( ph == MEMSWAP_PH_COMMIT )
            CHECKF(a.rc == -ENXIO && rc == 0, "commit: %d/%d", a.rc, rc);
        if ( ph == MEMSWAP_PH_FREE )
            CHECKF(a.rc == 0 && rc == 0, "free: %d/%d", a.rc, rc);
        /* The frame went back to the heap exactly once, or not at all. */
        CHECK(sim_bugs == 0);
        CHECKF(d->tot_pages == tot0 - (a.rc == 0), "phase %s: tot_pages %lu -> %lu",
               memswap_phase_name(ph), tot0, d->tot_pages);
        CHECKF(sim_host_free_frames(-1, NULL) == free0 + (a.rc == 0), "phase %s: free %lu -> %lu",
               memswap_phase_name(ph), free0, sim_host_free_frames(-1, NULL));
        /* The guest's P2M still names it: what its balloon driver would fix. */
        if ( a.rc == 0 )
            *p2m_slot(d, a.pfn) = SIM_P2M_INVALID;
        CHECKF(sim_audit(audit, sizeof(audit)) == 0, "phase %s: %s", memswap_phase_name(ph), audit);
        CHECK(check_io(domid, 20) == 0);
        sim_host_destroy();
    }
}

/*
 * Frozen means frozen: between FREEZE and the end of COMMIT nobody can map
 * a frame that moves (a dom0 tool's foreign mapping fails), so no
 * reference can be lost. With the freeze only checking the count (the
 * mutation), the mapping goes through and the checks see a freed frame
 * still mapped.
 */
struct map_try {
    unsigned int domid;
    unsigned long mfn;
    int id;
};

static void map_at_commit(struct memswap_ctx *ctx, void *arg)
{
    struct map_try *m = arg;

    if ( memswap_phase(ctx) == MEMSWAP_PH_COMMIT && m->id == -1 )
        m->id = sim_fmap_map(m->domid, m->mfn, false);
}

static int frozen_swap(unsigned int mutation, int *map_id)
{
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                  .preempt_every = 1, .preempt_at_phase = MEMSWAP_PH_COMMIT };
    struct memswap_request req;
    struct memswap_result res;
    struct map_try m = { .id = -1 };
    struct snapshot s;
    struct domain *d;
    int domid, rc, bad;

    if ( host(256 * MiB, 1, 90) )
        return -100;
    domid = guest("frz", 32 * MiB, 1, 2, 90);
    d = sim_domain_lookup(domid);
    m.domid = domid;
    /* The last data frame: its turn in COMMIT comes after the first continuation. */
    m.mfn = sim_domain_pfn_to_mfn(domid, guest_data_pfn(d, d->p2m_size - 600, NULL));
    request(&req, domid);
    sim_mutations = mutation;
    sim_domain_pause(domid);
    snapshot_take(&s, domid);
    rc = drive(&req, &opts, map_at_commit, &m, &res);
    bad = rc ? 1 : check_swap(&s, &req, &res, !mutation);
    sim_domain_unpause(domid);
    sim_mutations = 0;
    snapshot_free(&s);
    *map_id = m.id;
    if ( m.id >= 0 )
    {
        sim_fmap_unmap(m.id);
        bad++;
    }
    sim_host_destroy();
    return bad;
}

TEST(engine_frozen_frames_take_no_references)
{
    int id;

    CHECK(frozen_swap(0, &id) == 0);
    CHECK(id == -EINVAL);
}

TEST(engine_mutation_freeze_keeping_count_is_caught)
{
    int id;

    CHECK(frozen_swap(SIM_MUT_FREEZE_KEEPS_COUNT, &id) > 0);
    CHECK(id >= 0);
}

/*
 * The domain is checked again on every continuation: a toolstack that
 * starts a migration (log-dirty), assigns a device (IOMMU) or kills the
 * domain between two of them makes the swap roll back with the errno the
 * start would have given, in any phase before the point of no return;
 * after it, the swap completes. Without the re-check (the mutation) the
 * swap goes on regardless.
 */
enum { RECHECK_LOG_DIRTY, RECHECK_IOMMU, RECHECK_DYING, RECHECK_NR };

struct recheck {
    unsigned int domid, phase, what;
    bool done;
};

static void recheck_at(struct memswap_ctx *ctx, void *arg)
{
    struct recheck *r = arg;
    struct domain *d = sim_domain_lookup(r->domid);

    if ( r->done || memswap_phase(ctx) != r->phase )
        return;
    r->done = true;
    if ( r->what == RECHECK_LOG_DIRTY )
        sim_domain_set_log_dirty(r->domid, true);
    else if ( r->what == RECHECK_IOMMU )
        d->iommu = true;
    else
        d->dying = true;
}

static int recheck_swap(unsigned int phase, unsigned int what, unsigned int mutation,
                        bool *unchanged)
{
    static const int want[RECHECK_NR] = { -EBUSY, -EOPNOTSUPP, -ENODEV };
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                  .preempt_every = 1, .preempt_at_phase = phase };
    struct recheck r = { .phase = phase, .what = what };
    struct memswap_request req;
    struct memswap_result res;
    struct snapshot s;
    struct domain *d;
    int domid, rc;

    if ( host(256 * MiB, 1, 100 + phase) )
        return -100;
    domid = guest("chk", 32 * MiB, 1, 2, 100 + phase);
    d = sim_domain_lookup(domid);
    r.domid = domid;
    request(&req, domid);
    sim_mutations = mutation;
    sim_domain_pause(domid);
    snapshot_take(&s, domid);
    rc = drive(&req, &opts, recheck_at, &r, &res);
    sim_mutations = 0;
    sim_domain_set_log_dirty(domid, false);
    d->iommu = d->dying = false;
    *unchanged = check_unchanged(&s) == 0;
    snapshot_free(&s);
    sim_domain_unpause(domid);
    sim_host_destroy();
    if ( !r.done )
        return -101;
    return rc == want[what] ? 1 : rc == 0 ? 0 : rc;
}

TEST(engine_rechecks_the_domain_on_every_continuation)
{
    unsigned int ph, what;
    bool unchanged;

    for ( ph = MEMSWAP_PH_SCAN; ph < MEMSWAP_PH_COMMIT; ph++ )
        for ( what = 0; what < RECHECK_NR && ph != MEMSWAP_PH_PRECOPY; what++ )
        {
            int got = recheck_swap(ph, what, 0, &unchanged);

            CHECKF(got == 1, "phase %s, change %u: %d", memswap_phase_name(ph), what, got);
            CHECKF(unchanged, "phase %s, change %u: not rolled back", memswap_phase_name(ph), what);
        }
    /* Past the point of no return it finishes. */
    CHECK(recheck_swap(MEMSWAP_PH_COMMIT, RECHECK_LOG_DIRTY, 0, &unchanged) == 0);
}

TEST(engine_mutation_no_recheck_is_caught)
{
    bool unchanged;

    CHECK(recheck_swap(MEMSWAP_PH_COPY, RECHECK_LOG_DIRTY, SIM_MUT_NO_RECHECK, &unchanged) == 0);
}

/*
 * The rollback is resumable like the phases: a rollback of a whole domain
 * yields many times (the host wanted to), the world runs in between, and
 * the end state is exactly the start state; an abort in the middle of it
 * completes it.
 */
TEST(engine_rollback_is_preemptible_and_complete)
{
    unsigned int abort_after;

    for ( abort_after = 0; abort_after <= 20; abort_after += 20 )
    {
        struct sim_swap_opts opts = { .alloc_fail_at = 100, .world_runs = true,
                                      .preempt_every = 1, .preempt_at_phase = MEMSWAP_PH_ALLOC,
                                      .abort_after_continuations = abort_after };
        struct memswap_request req;
        struct memswap_result res;
        struct snapshot s;
        int domid, rc;

        CHECK(host(256 * MiB, 1, 110) == 0);
        domid = guest("rb", 32 * MiB, 2, 2, 110);
        request(&req, domid);
        sim_domain_pause(domid);
        snapshot_take(&s, domid);
        rc = sim_swap(&req, &opts, &res);
        CHECKF(rc == -ENOMEM, "rc=%d", rc);
        CHECK(res.failed_phase == MEMSWAP_PH_ALLOC);
        /* 8192 frames, a yield every 64 at most: the rollback yielded throughout. */
        if ( !abort_after )
            CHECKF(res.continuations > 8192 / 128, "%llu continuations",
                   (unsigned long long)res.continuations);
        CHECK(check_unchanged(&s) == 0);
        snapshot_free(&s);
        sim_domain_unpause(domid);
        CHECK(check_io(domid, 20) == 0);
        sim_host_destroy();
    }
}

/*
 * A large P2M (here three mid frames' worth, max_pfn about 2^19, for a
 * 16 MiB guest spread over it): marking the tree's frames yields between
 * mids (513 lookups each), never walking the whole tree in one go.
 */
static int sparse_guest(unsigned int stride, uint64_t seed)
{
    struct sim_guest_config gc = {
        .mem_bytes = 16 * MiB, .nr_vcpus = 1, .nr_address_spaces = 1,
        .node = MEMSWAP_NODE_ANY, .with_devices = true, .seed = seed, .pfn_stride = stride,
    };

    snprintf(gc.name, sizeof(gc.name), "sparse");
    return sim_domain_create(&gc);
}

static void count_marking(struct memswap_ctx *ctx, void *arg)
{
    uint64_t done, total;

    memswap_progress(ctx, &done, &total);
    if ( memswap_phase(ctx) == MEMSWAP_PH_SCAN && total == 512 )
        ++*(unsigned int *)arg;
}

TEST(engine_p2m_tree_marking_yields)
{
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true,
                                  .preempt_every = 1, .preempt_at_phase = MEMSWAP_PH_SCAN };
    struct memswap_request req;
    struct memswap_result res;
    unsigned int marking = 0;
    int domid, bad;
    struct snapshot s;

    CHECK(host(256 * MiB, 1, 120) == 0);
    domid = sparse_guest(128, 120);
    CHECKF(domid > 0, "%d", domid);
    CHECK(sim_audit(NULL, 0) == 0);
    request(&req, domid);
    sim_domain_pause(domid);
    snapshot_take(&s, domid);
    CHECK(drive(&req, &opts, count_marking, &marking, &res) == 0);
    /* Three mids and Linux's shared "mid missing": a continuation between each two. */
    CHECKF(marking >= 3, "%u continuations while marking", marking);
    bad = check_swap(&s, &req, &res, true);
    CHECKF(bad == 0, "%d violations", bad);
    snapshot_free(&s);
    sim_domain_unpause(domid);
    sim_host_destroy();
}

/*
 * Metadata follows the frames the guest owns, not its pseudo-physical
 * space: a dry run of a 16 MiB guest spread over 512K pfns costs about
 * 30 bytes per frame and 4 per P2M leaf (a per-leaf index would cost
 * 13 KiB for every one of its 1025 leaves).
 */
TEST(engine_sparse_p2m_metadata_is_bounded)
{
    struct sim_swap_opts opts = { .alloc_fail_at = -1 };
    struct memswap_request req;
    struct memswap_result res;
    struct sim_domain_info info;
    unsigned long leaves, bound;
    int domid;

    CHECK(host(256 * MiB, 1, 121) == 0);
    domid = sparse_guest(128, 121);
    CHECK(domid > 0 && sim_domain_info(domid, &info) == 0);
    leaves = (info.max_pfn + 511) / 512;
    request(&req, domid);
    req.flags = MEMSWAP_F_DRY_RUN;
    CHECK(sim_swap(&req, &opts, &res) == 0);
    bound = 32 * info.tot_pages + 4 * leaves + 2048 * 32 + 16384;
    printf("  sparse 16 MiB guest, max_pfn %lu (%lu leaves): dry run metadata %llu bytes "
           "(engine says %llu), bound %lu\n", info.max_pfn, leaves,
           (unsigned long long)sim_swap_meta_peak, (unsigned long long)res.extra_bytes_peak, bound);
    CHECK(leaves > 1000);
    CHECK(sim_swap_meta_peak <= bound);
    CHECK(res.extra_bytes_peak == sim_swap_meta_peak);
    /* And the real swap of it works. */
    req.flags = 0;
    CHECK(swap_and_check(domid, &req, &(struct sim_swap_opts){ .alloc_fail_at = -1, .world_runs = true,
                                                               .preempt_every = 3 }, &res, true) == 0);
    sim_host_destroy();
}

/*
 * dom0 rewrites the M2P entry of a frame that moves (MMU_MACHPHYS_UPDATE)
 * between two continuations after CLASSIFY. Left wrong, FREEZE sees it and
 * the swap rolls back (-EAGAIN). Put right again before the freeze (an
 * A-B-A the freeze cannot see), the swap must still be right: tables are
 * translated only once frozen frames' M2P entries cannot change.
 */
struct m2p_act {
    unsigned int domid;
    unsigned long mfn, pfn;
    bool restore, written, restored;
};

static void m2p_at(struct memswap_ctx *ctx, void *arg)
{
    struct m2p_act *a = arg;

    if ( memswap_phase(ctx) == MEMSWAP_PH_ALLOC && !a->written )
        a->written = sim_dom0_machphys_update(a->domid, a->mfn, a->pfn ^ 0x40000) == 0;
    if ( memswap_phase(ctx) == MEMSWAP_PH_FREEZE && a->restore && !a->restored )
        a->restored = sim_dom0_machphys_update(a->domid, a->mfn, a->pfn) == 0;
}

TEST(engine_m2p_rewritten_during_the_swap)
{
    unsigned int restore;

    for ( restore = 0; restore <= 1; restore++ )
    {
        struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true, .preempt_every = 1 };
        struct memswap_request req;
        struct memswap_result res;
        struct m2p_act a = { .restore = restore };
        struct snapshot s;
        struct domain *d;
        int domid, rc;

        CHECK(host(256 * MiB, 1, 130 + restore) == 0);
        domid = guest("m2p", 32 * MiB, 1, 2, 130);
        d = sim_domain_lookup(domid);
        a.domid = domid;
        /* The last data frame: frozen late, so still writable at FREEZE's first yield. */
        a.pfn = guest_data_pfn(d, d->p2m_size - 600, NULL);
        a.mfn = sim_domain_pfn_to_mfn(domid, a.pfn);
        request(&req, domid);
        sim_domain_pause(domid);
        snapshot_take(&s, domid);
        rc = drive(&req, &opts, m2p_at, &a, &res);
        CHECK(a.written);
        if ( !restore )
        {
            CHECKF(rc == -EAGAIN && res.failed_phase == MEMSWAP_PH_FREEZE, "rc=%d in %s", rc,
                   memswap_phase_name(res.failed_phase));
            CHECK(sim_dom0_machphys_update(domid, a.mfn, a.pfn) == 0);
            CHECK(check_unchanged(&s) == 0);
        }
        else
        {
            CHECK(a.restored);
            CHECKF(rc == 0, "rc=%d in %s", rc, memswap_phase_name(res.failed_phase));
            CHECK(check_swap(&s, &req, &res, true) == 0);
        }
        snapshot_free(&s);
        sim_domain_unpause(domid);
        CHECK(check_io(domid, 20) == 0);
        sim_host_destroy();
    }
}

/*
 * The engine writes only the guest's own plain pages. A Xen-heap page
 * shared with the guest (as its shared_info is in Xen) that the guest
 * lists in its P2M is never indexed, and named as a P2M leaf it makes the
 * swap refuse the tree; a kept P2M leaf that dom0 took from the guest
 * (decrease_reservation) before the commit is not rewritten.
 */
/* dom0 takes a P2M leaf from the guest during COPY, or once FREEZE is translating. */
struct leaf_take {
    unsigned int domid;
    unsigned long mfn;
    bool late, done;
    uint64_t last;
    int rc;
};

static void take_leaf_at(struct memswap_ctx *ctx, void *arg)
{
    struct leaf_take *t = arg;
    uint64_t done, total;

    memswap_progress(ctx, &done, &total);
    if ( !t->done && memswap_phase(ctx) == (t->late ? MEMSWAP_PH_FREEZE : MEMSWAP_PH_COPY) &&
         (!t->late || done < t->last) )
    {
        t->done = true;
        t->rc = sim_dom0_decrease_reservation(t->domid, t->mfn);
    }
    if ( memswap_phase(ctx) == MEMSWAP_PH_FREEZE )
        t->last = done;
}

TEST(engine_writes_only_plain_own_pages)
{
    unsigned int late;
    int rc;
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true, .preempt_every = 1 };
    struct memswap_request req;
    struct memswap_result res;
    struct domain *d;
    unsigned long xen, pfn, old_mfn, leaf_pfn, leaf_mfn;
    uint64_t *slot, saved, bytes[512], *mid;
    struct snapshot s;
    int domid, id;

    CHECK(host(256 * MiB, 1, 140) == 0);
    domid = guest("xh", 32 * MiB, 1, 1, 140);
    d = sim_domain_lookup(domid);
    request(&req, domid);

    /* A Xen-heap page shared with the guest (owner the guest, PGC_xen_heap). */
    xen = sim_alloc_xen_frame();
    sim_mfn_to_page(xen)->owner = d;
    pfn = guest_data_pfn(d, 300, NULL);
    old_mfn = sim_domain_pfn_to_mfn(domid, pfn);
    slot = p2m_slot(d, pfn);
    saved = *slot;
    /* Listed as the guest's pfn, M2P agreeing: not indexed. */
    *slot = xen;
    sim_m2p[xen] = pfn;
    memcpy(bytes, sim_map_frame(old_mfn), sizeof(bytes));
    memcpy(sim_map_frame(xen), bytes, sizeof(bytes));
    req.flags = MEMSWAP_F_DRY_RUN;
    CHECK(sim_swap(&req, &opts, &res) == 0);
    /* Named as a leaf of the tree (its bytes a copy of the real leaf): refused. */
    leaf_pfn = pfn & ~511UL;
    mid = sim_map_frame((unsigned long)((uint64_t *)sim_map_frame(
              (unsigned long)sim_shared_info(d)->arch.pfn_to_mfn_frame_list_list))[0]);
    leaf_mfn = (unsigned long)mid[leaf_pfn / 512];
    *slot = saved;
    memcpy(sim_map_frame(xen), sim_map_frame(leaf_mfn), PAGE_SIZE);
    memcpy(bytes, sim_map_frame(xen), sizeof(bytes));
    mid[leaf_pfn / 512] = xen;
    req.flags = 0;
    CHECK(sim_swap(&req, &opts, &res) == -EINVAL && res.failed_phase == MEMSWAP_PH_SCAN);
    CHECK(memcmp(bytes, sim_map_frame(xen), sizeof(bytes)) == 0);
    mid[leaf_pfn / 512] = leaf_mfn;
    sim_mfn_to_page(xen)->owner = &sim_dom_xen;
    sim_m2p[xen] = INVALID_M2P_ENTRY;
    sim_free_xen_frame(xen);
    CHECK(sim_audit(NULL, 0) == 0);

    /* A P2M leaf dom0 maps is kept, and rewritten in place at COMMIT... */
    id = sim_fmap_map(domid, leaf_mfn, false);
    CHECK(id >= 0);
    sim_domain_pause(domid);
    snapshot_take(&s, domid);
    memcpy(bytes, sim_map_frame(leaf_mfn), sizeof(bytes));
    CHECK(sim_swap(&req, &opts, &res) == 0);
    CHECK(check_swap(&s, &req, &res, true) == 0);
    CHECK(memcmp(bytes, sim_map_frame(leaf_mfn), sizeof(bytes)) != 0);
    snapshot_free(&s);
    sim_domain_unpause(domid);
    sim_fmap_unmap(id);
    sim_host_destroy();

    /*
     * ...but not once dom0 has taken it from the guest (no PGC_allocated):
     * before the freeze that rolls the swap back, after it the leaf is
     * left as it is.
     */
    for ( late = 0; late <= 1; late++ )
    {
        struct leaf_take t = { .late = late };

        CHECK(host(256 * MiB, 1, 141) == 0);
        domid = guest("xh", 32 * MiB, 1, 1, 140);
        d = sim_domain_lookup(domid);
        request(&req, domid);
        t.domid = domid;
        t.mfn = leaf_mfn = (unsigned long)((uint64_t *)sim_map_frame((unsigned long)((uint64_t *)
            sim_map_frame((unsigned long)sim_shared_info(d)->arch.pfn_to_mfn_frame_list_list))[0]))[0];
        id = sim_fmap_map(domid, leaf_mfn, false);
        CHECK(id >= 0);
        memcpy(bytes, sim_map_frame(leaf_mfn), sizeof(bytes));
        rc = drive(&req, &opts, take_leaf_at, &t, &res);
        CHECK(t.rc == 0);
        CHECKF(rc == (late ? 0 : -EAGAIN), "late %u: rc=%d", late, rc);
        CHECK(!(sim_mfn_to_page(leaf_mfn)->count_info & PGC_allocated));
        CHECK(memcmp(bytes, sim_map_frame(leaf_mfn), sizeof(bytes)) == 0);
        CHECK(sim_bugs == 0);
        sim_fmap_unmap(id);
        sim_host_destroy();
    }
}

/*
 * A kept page table that others hold (dom0 maps an L1 of the guest) cannot
 * be frozen, so whoever holds it may change its entries at any time: the
 * frames it maps stay too, and dom0 dropping a reference through it during
 * the commit cannot hit a frozen frame.
 */
struct kept_l1 {
    unsigned int domid;
    uint64_t entry;         /* machine address of the L1 entry dom0 clears */
    unsigned long user_pfn;
    int kept, rc;
    bool seen, cleared;
};

static void kept_l1_at(struct memswap_ctx *ctx, void *arg)
{
    struct kept_l1 *k = arg;
    int cls;
    uint64_t o, n;

    if ( memswap_phase(ctx) == MEMSWAP_PH_ALLOC && !k->seen )
        k->seen = memswap_pfn_info(ctx, k->user_pfn, &cls, &k->kept, &o, &n) == 0;
    if ( memswap_phase(ctx) == MEMSWAP_PH_COMMIT && !k->cleared )
    {
        k->cleared = true;
        k->rc = sim_mmu_update(sim_domain_lookup(k->domid), k->entry, 0);
    }
}

TEST(engine_frames_under_a_table_others_hold_stay)
{
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true, .preempt_every = 1 };
    struct memswap_request req;
    struct memswap_result res;
    struct kept_l1 k = { .kept = -2 };
    struct domain *d;
    unsigned long ul1;
    char audit[512];
    int domid, id, rc;

    CHECK(host(256 * MiB, 1, 150) == 0);
    domid = guest("ul1", 32 * MiB, 1, 1, 150);
    d = sim_domain_lookup(domid);
    k.domid = domid;
    k.user_pfn = d->user_pfn[0][0];
    /* The user L1: the table mapping the user pages at SIM_GUEST_USER_VA. */
    ul1 = guest_user_l1(d);
    k.entry = ((uint64_t)ul1 << PAGE_SHIFT) + ((SIM_GUEST_USER_VA >> 12) & 511) * 8;
    CHECK(sim_pte_mfn(*(uint64_t *)((unsigned char *)sim_map_frame(ul1) + (k.entry & 4095))) ==
          sim_domain_pfn_to_mfn(domid, k.user_pfn));
    id = sim_fmap_map(domid, ul1, false);
    CHECK(id >= 0);
    request(&req, domid);
    sim_domain_pause(domid);
    rc = drive(&req, &opts, kept_l1_at, &k, &res);
    sim_domain_unpause(domid);
    CHECKF(rc == 0, "rc=%d", rc);
    CHECK(k.seen && k.kept == MEMSWAP_KEPT_FOREIGN);
    CHECK(k.cleared && k.rc == 0);
    CHECK(sim_bugs == 0);
    sim_fmap_unmap(id);
    CHECKF(sim_audit(audit, sizeof(audit)) == 0, "%s", audit);
    CHECK(check_io(domid, 20) == 0);
    sim_host_destroy();
}

/*
 * XSA-402: a frame the guest mapped writable and write-combining is
 * flushed before the engine reads it and before it goes back to the heap;
 * its new frame carries PGT_non_coherent on (the WC mapping now maps it).
 */
TEST(engine_flushes_non_coherent_frames)
{
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true, .preempt_every = 5 };
    struct memswap_request req;
    struct memswap_result res;
    struct domain *d;
    unsigned long ul1, wc_pfn, wc_old, wb_old, now;
    uint64_t entry, *pe;
    char flushed[64];
    int domid;

    CHECK(host(256 * MiB, 1, 160) == 0);
    domid = guest("wc", 32 * MiB, 1, 1, 160);
    d = sim_domain_lookup(domid);
    wc_pfn = d->user_pfn[0][3];
    wc_old = sim_domain_pfn_to_mfn(domid, wc_pfn);
    wb_old = sim_domain_pfn_to_mfn(domid, d->user_pfn[0][4]);
    ul1 = guest_user_l1(d);
    entry = ((uint64_t)ul1 << PAGE_SHIFT) + (((SIM_GUEST_USER_VA >> 12) + 3) & 511) * 8;
    pe = (uint64_t *)((unsigned char *)sim_map_frame(ul1) + (entry & 4095));
    CHECK(sim_pte_mfn(*pe) == wc_old);
    CHECK(sim_mmu_update(d, entry, *pe | SIM_PTE_WC) == 0);
    CHECK(sim_mfn_to_page(wc_old)->u.inuse.type_info & PGT_non_coherent);
    sim_log_clear();
    request(&req, domid);
    CHECK(swap_and_check(domid, &req, &opts, &res, true) == 0);
    now = sim_domain_pfn_to_mfn(domid, wc_pfn);
    CHECK(now != wc_old);
    snprintf(flushed, sizeof(flushed), "cache flush mfn %#lx", wc_old);
    /* Before the copy read it, and before it went back to the heap. */
    CHECKF(sim_log_count(flushed) == 2, "%lu", sim_log_count(flushed));
    snprintf(flushed, sizeof(flushed), "cache flush mfn %#lx", wb_old);
    CHECK(sim_log_count(flushed) == 0);
    CHECK(sim_mfn_to_page(now)->u.inuse.type_info & PGT_non_coherent);
    CHECK(sim_log_count("cache flush") == 2);
    sim_host_destroy();
}

/*
 * A guest swapped away from the colours it was built on and back again
 * gets the frames it left: the heap reuses freed frames first, as Xen's
 * does, so the swap back takes no frame that was never used - in the
 * simulator, no host memory it has never written (whose first write cost
 * more than the copy: the swap back took 20 times as long as the swap away
 * when freed frames went to the tail of the free lists). Stop-and-copy and
 * live, on a host that does not scrub freed frames (Xen's default).
 */
TEST(engine_swap_back_reuses_the_frames_it_left)
{
    struct sim_host_config hc = {
        .ram_bytes = 512 * MiB, .nr_nodes = 1,
        .llc = { .size_bytes = 8 * MiB, .ways = 16, .line_bytes = 64 }, .seed = 170,
    };
    struct sim_guest_config gc = {
        .name = "back", .mem_bytes = 64 * MiB, .nr_vcpus = 2, .nr_address_spaces = 2,
        .node = MEMSWAP_NODE_ANY, .with_devices = true, .seed = 170,
    };
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true, .preempt_every = 11 };
    struct memswap_request req;
    struct memswap_result res;
    struct sim_domain_info info;
    unsigned long fresh, pfn, same, populated;
    unsigned long *built;
    unsigned int live, c;
    int domid;

    for ( live = 0; live < 2; live++ )
    {
        sim_host_destroy();
        CHECK(sim_host_create(&hc) == 0);
        sim_host_geometry(&geom);
        memset(gc.colours, 0, sizeof(gc.colours));
        for ( c = 0; c < geom.nr_colours / 2; c++ )
            gc.colours[c / 64] |= 1ULL << (c % 64);
        domid = sim_domain_create(&gc);
        CHECK(domid > 0);
        CHECK(sim_domain_info(domid, &info) == 0);
        built = calloc(sim_nr_frames, sizeof(*built));
        CHECK(built);
        for ( pfn = 0; pfn < info.max_pfn; pfn++ )
            if ( sim_domain_pfn_to_mfn(domid, pfn) != MS_INVALID_MFN )
                built[sim_domain_pfn_to_mfn(domid, pfn)] = 1;
        request(&req, domid);
        req.flags = live ? MEMSWAP_F_LIVE : 0;
        set_colour_range(&req, geom.nr_colours / 2, geom.nr_colours);
        CHECK((live ? live_swap_and_check : swap_and_check)(domid, &req, &opts, &res, true) == 0);
        CHECK(res.frames_moved * 100 >= res.frames_total * 95);

        fresh = sim_heap_fresh_frames();
        set_colour_range(&req, 0, geom.nr_colours / 2);
        CHECK((live ? live_swap_and_check : swap_and_check)(domid, &req, &opts, &res, true) == 0);
        CHECK(res.frames_moved * 100 >= res.frames_total * 95);
        CHECKF(sim_heap_fresh_frames() == fresh, "%lu frames never used before",
               sim_heap_fresh_frames() - fresh);
        /* Every moved pfn is on a frame the guest was built on. */
        for ( pfn = same = populated = 0; pfn < info.max_pfn; pfn++ )
        {
            unsigned long mfn = sim_domain_pfn_to_mfn(domid, pfn);

            if ( mfn == MS_INVALID_MFN )
                continue;
            populated++;
            same += built[mfn];
        }
        free(built);
        CHECKF(same == populated, "%lu of %lu pfns on frames the guest was built on",
               same, populated);
    }
    sim_host_destroy();
}
