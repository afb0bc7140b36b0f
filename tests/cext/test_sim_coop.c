/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The swap sequence on the simulated host (cext/sim/sim_coop.c): the
 * refusals leave the domain exactly as it was (not suspended, not paused
 * or unpaused, not moved), a cooperative swap of a guest caught building a
 * child's page tables goes through and resumes it, a plain one is refused
 * with EAGAIN and retried after the guest ran.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cext/sim/sim_coop.h"
#include "sim/sim_internal.h"
#include "tests/c/harness.h"

#define MiB (1ULL << 20)

static struct memswap_geometry geom;
static struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true };

static int host(void)
{
    struct sim_host_config hc = {
        .ram_bytes = 256 * MiB, .nr_nodes = 1,
        .llc = { .size_bytes = 2 * MiB, .ways = 16, .line_bytes = 64 }, .seed = 5,
    };
    int rc;

    sim_host_destroy();
    rc = sim_host_create(&hc);
    sim_host_geometry(&geom);
    return rc;
}

static int guest_of_type(const char *name, bool forks, uint32_t type)
{
    struct sim_guest_config gc = {
        .mem_bytes = 32 * MiB, .nr_vcpus = 1, .nr_address_spaces = 2,
        .node = MEMSWAP_NODE_ANY, .with_devices = true, .seed = 9, .forks = forks,
        .type = type,
    };

    strcpy(gc.name, name);
    return sim_domain_create(&gc);
}

static int guest(const char *name, bool forks, bool hvm)
{
    return guest_of_type(name, forks, hvm ? SIM_GUEST_HVM : SIM_GUEST_PV);
}

static void op_init(struct ms_sim_swap_op *s, unsigned int domid, unsigned int first_colour)
{
    unsigned int c;

    memset(s, 0, sizeof(*s));
    s->req.domid = domid;
    s->req.node = MEMSWAP_NODE_ANY;
    s->req.geom = geom;
    for ( c = first_colour; c < first_colour + geom.nr_colours / 2; c++ )
        s->req.colours[c / 64] |= 1ULL << (c % 64);
    s->opts = &opts;
}

static const struct ms_coop_policy coop = { .cooperative = 1, .retries = 0,
                                            .backoff = 4, .backoff_max = 64 };
static const struct ms_coop_policy plain = { .cooperative = 0, .retries = 0,
                                             .backoff = 4, .backoff_max = 64 };

static unsigned long first_mfn(unsigned int domid)
{
    return sim_domain_pfn_to_mfn(domid, 1024);
}

static bool running(unsigned int domid)
{
    struct sim_domain_info info;

    return sim_domain_info(domid, &info) == 0 && info.state == SIM_DOM_RUNNING;
}

/* Run the world until the guest is building a child's tables with user
 * entries, which a plain swap cannot translate (bounded). */
static bool catch_unpinned(unsigned int domid)
{
    struct domain *d = sim_domain_lookup(domid);
    unsigned int i;

    for ( i = 0; d && i < 8 * SIM_FORK_PERIOD; i++ )
    {
        if ( d->fork.stage == SIM_FORK_L3 )
            return true;
        sim_world_step();
    }
    return false;
}

static int audit(void)
{
    char buf[2048];

    return sim_audit(buf, sizeof(buf));
}

TEST(refusals_leave_the_domain_alone)
{
    struct ms_sim_swap_op s;
    struct ms_coop_outcome o;
    int d, dy, hvm;
    unsigned long mfn;

    CHECK(host() == 0);
    CHECK((d = guest("held", true, false)) > 0);
    CHECK((dy = guest("dying", false, false)) > 0);
    CHECK((hvm = guest("hvm", false, true)) > 0);

    op_init(&s, 0, 0);
    CHECK(ms_sim_swap_run(&s, &coop, &o) == EACCES);
    CHECK(o.stage == MS_COOP_PREFLIGHT && !strcmp(s.call, MS_REFUSAL_CALL));

    CHECK(sim_domain_pause(d) == 0);
    mfn = first_mfn(d);
    op_init(&s, d, geom.nr_colours / 2);
    CHECK(ms_sim_swap_run(&s, &coop, &o) == EBUSY);
    CHECKF(strstr(s.msg, "paused"), "%s", s.msg);
    CHECK(o.attempts == 0 && first_mfn(d) == mfn);
    /* Exactly the one pause we took: the refusal neither paused nor unpaused. */
    CHECK(sim_domain_unpause(d) == 0 && running(d));
    CHECK(sim_domain_unpause(d) == -EINVAL);
    /* ... and nothing was suspended: a suspend now is the first. */
    CHECK(sim_domain_suspend(d) == 0 && sim_domain_resume_cancelled(d) == 0);

    CHECK(sim_domain_set_dying(dy) == 0);
    op_init(&s, dy, 0);
    CHECK(ms_sim_swap_run(&s, &coop, &o) == ENODEV);
    /* What the hypervisor refuses for a translated guest: a passed-through
     * device (EOPNOTSUPP), log-dirty in use by a save (EBUSY). */
    mfn = first_mfn(hvm);
    CHECK(sim_domain_set_iommu(hvm, true) == 0);
    op_init(&s, hvm, 0);
    CHECK(ms_sim_swap_run(&s, &plain, &o) == EOPNOTSUPP);
    CHECKF(!strcmp(s.call, MS_REFUSAL_CALL) && strstr(s.msg, "passed-through"), "%s", s.msg);
    CHECK(sim_domain_set_iommu(hvm, false) == 0 && sim_domain_set_log_dirty(hvm, true) == 0);
    op_init(&s, hvm, 0);
    s.req.flags |= MEMSWAP_F_LIVE;
    CHECK(ms_sim_swap_run(&s, &plain, &o) == EBUSY);
    CHECKF(!strcmp(s.call, MS_REFUSAL_CALL) && strstr(s.msg, "log-dirty"), "%s", s.msg);
    CHECK(o.attempts == 0 && first_mfn(hvm) == mfn && running(hvm));
    CHECK(sim_domain_set_log_dirty(hvm, false) == 0);


    /* Not a refusal: no such domain is the request's own failure. */
    op_init(&s, 60, 0);
    CHECK(ms_sim_swap_run(&s, &coop, &o) == ESRCH);
    CHECK(!strcmp(s.call, "sim_swap"));
    CHECK(audit() == 0);
    sim_host_destroy();
}

TEST(cooperative_swap_of_a_forking_guest)
{
    struct ms_sim_swap_op s;
    struct ms_coop_outcome o;
    struct sim_io_stats io;
    int d, i;

    CHECK(host() == 0);
    CHECK((d = guest("forker", true, false)) > 0);
    for ( i = 0; i < 4; i++ )
    {
        CHECK(catch_unpinned(d));
        op_init(&s, d, i % 2 ? 0 : geom.nr_colours / 2);
        CHECKF(ms_sim_swap_run(&s, &coop, &o) == 0, "%s %d", s.call, s.err);
        CHECK(o.suspended && o.retries == 0 && s.res.frames_moved > 0);
        CHECK(running(d));
    }
    for ( i = 0; i < 64; i++ )
        sim_world_step();
    CHECK(sim_domain_io_stats(d, &io) == 0 && io.pt_errors == 0 && io.io_errors == 0);
    CHECK(audit() == 0);
    sim_host_destroy();
}

TEST(translated_guests_are_swapped_without_suspend_in_both_modes)
{
    static const uint32_t types[] = { SIM_GUEST_PVH, SIM_GUEST_HVM };
    struct ms_sim_swap_op s;
    struct ms_coop_outcome o;
    unsigned long first_bad;
    unsigned int t, live;
    unsigned long mfn;
    int d;

    for ( t = 0; t < 2; t++ )
        for ( live = 0; live < 2; live++ )
        {
            CHECK(host() == 0);
            CHECK((d = guest_of_type("translated", false, types[t])) > 0);
            CHECK(sim_domain_set_dirty_rate(d, 4) == 0);
            mfn = first_mfn(d);
            op_init(&s, d, 0);
            if ( live )
                s.req.flags |= MEMSWAP_F_LIVE;
            /* The caller asks for cooperation; a translated guest gets none. */
            CHECKF(ms_sim_swap_run(&s, &coop, &o) == 0, "%s %d %s", s.call, s.err, s.msg);
            CHECK(!o.suspended && o.translated && s.res.translated);
            CHECK(s.res.frames_moved > 0 && first_mfn(d) != mfn && running(d));
            CHECK(live ? s.res.live_rounds >= 1 : s.res.live_rounds == 0);
            CHECK(sim_guest_verify(d, &first_bad) == 0);
            CHECK(audit() == 0);
            sim_host_destroy();
        }
}

/* PV live, cooperative: pre-copy with the guest running, suspended for the
 * final stop only, resumed; a forking guest's unpinned tables are pinned by
 * then. */
TEST(pv_live_swap_suspends_for_the_final_stop)
{
    /* The guest runs at the swap's continuations, as under Xen. */
    struct sim_swap_opts live_opts = { .alloc_fail_at = -1, .world_runs = true,
                                       .preempt_every = 30 };
    struct ms_sim_swap_op s;
    struct ms_coop_outcome o;
    struct sim_io_stats io0, io1;
    unsigned long mfn;
    int d, i;

    CHECK(host() == 0);
    CHECK((d = guest("forker", true, false)) > 0);
    CHECK(sim_domain_set_dirty_rate(d, 8) == 0);
    for ( i = 0; i < 2; i++ )
    {
        CHECK(catch_unpinned(d));
        mfn = first_mfn(d);
        CHECK(sim_domain_io_stats(d, &io0) == 0);
        op_init(&s, d, i % 2 ? 0 : geom.nr_colours / 2);
        s.req.flags |= MEMSWAP_F_LIVE;
        s.opts = &live_opts;
        CHECKF(ms_sim_swap_run(&s, &coop, &o) == 0, "%s %d %s", s.call, s.err, s.msg);
        CHECK(o.suspended && !o.translated && running(d));
        CHECK(s.res.live_rounds >= 2 && s.res.frames_moved > 0 && first_mfn(d) != mfn);
        /* It ran (its console kept going) during the pre-copy. */
        CHECK(sim_domain_io_stats(d, &io1) == 0 && io1.console_lines > io0.console_lines);
        CHECK(sim_guest_verify(d, NULL) == 0);
    }
    for ( i = 0; i < 64; i++ )
        sim_world_step();
    CHECK(sim_domain_io_stats(d, &io1) == 0 && io1.pt_errors == 0 && io1.io_errors == 0);
    CHECK(audit() == 0);
    sim_host_destroy();
}

TEST(plain_swap_of_a_forking_guest_is_refused_then_retried)
{
    struct ms_sim_swap_op s;
    struct ms_coop_outcome o;
    struct ms_coop_policy retry = plain;
    unsigned long mfn;
    int d;

    CHECK(host() == 0);
    CHECK((d = guest("forker", true, false)) > 0);
    CHECK(catch_unpinned(d));
    mfn = first_mfn(d);
    op_init(&s, d, geom.nr_colours / 2);
    CHECK(ms_sim_swap_run(&s, &plain, &o) == EAGAIN);
    CHECK(o.stage == MS_COOP_SWAP && !strcmp(s.call, "sim_swap") && !o.suspended);
    CHECK(first_mfn(d) == mfn && running(d));
    /* The guest runs between attempts and finishes its fork. */
    CHECK(catch_unpinned(d));
    retry.retries = 20;
    op_init(&s, d, geom.nr_colours / 2);
    CHECKF(ms_sim_swap_run(&s, &retry, &o) == 0, "%s %d after %u retries", s.call, s.err,
           o.retries);
    CHECK(o.retries >= 1 && o.attempts == o.retries + 1);
    CHECK(first_mfn(d) != mfn);
    CHECK(audit() == 0);
    sim_host_destroy();
}
