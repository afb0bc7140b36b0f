/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Swapping a guest that forks (the simulator's fork actor, sim/actors.c).
 *
 * Linux PV builds a new mm's page tables as plain writable pages holding
 * MFNs and only pins the pgd once the copy is complete (xen_dup_mmap); at
 * exit it unpins before freeing. A swap that lands in between copies those
 * pages raw, and the guest's later pin fails (or maps wrong frames). The
 * tests show:
 *  - the hazard: the engine gives up with -EAGAIN in COPY, changing
 *    nothing; and when its detector is blinded (the pgd differs from the
 *    kernel's in one non-present slot), the swap goes through and the
 *    guest's pin of its child's pgd fails afterwards (pt_errors);
 *  - non-cooperative swaps of a fork-heavy guest: each one either succeeds
 *    with the full checks or returns -EAGAIN with nothing changed, and
 *    -EAGAIN exactly when an unpinned pgd exists;
 *  - the cooperative swap (suspend, swap, cancelled resume) always succeeds.
 */
#include <errno.h>
#include <stdlib.h>
#include "sim/sim_internal.h"
#include "harness.h"
#include "guest_view.h"

#define MiB (1ULL << 20)

static struct memswap_geometry geom;

static int host(uint64_t seed)
{
    struct sim_host_config hc = {
        .ram_bytes = 512 * MiB, .nr_nodes = 2,
        .llc = { .size_bytes = 8 * MiB, .ways = 16, .line_bytes = 64 },
        .seed = seed,
    };
    int rc;

    sim_host_destroy();
    rc = sim_host_create(&hc);
    sim_host_geometry(&geom);
    return rc;
}

static int fork_guest(uint64_t seed)
{
    struct sim_guest_config gc = {
        .name = "forker", .mem_bytes = 64 * MiB, .nr_vcpus = 2, .nr_address_spaces = 2,
        .node = MEMSWAP_NODE_ANY, .with_devices = true, .seed = seed, .forks = true,
    };

    return sim_domain_create(&gc);
}

static void request(struct memswap_request *req, unsigned int domid, unsigned int half)
{
    unsigned int c, from = half ? geom.nr_colours / 2 : 0, to = from + geom.nr_colours / 2;

    memset(req, 0, sizeof(*req));
    req->domid = domid;
    req->node = MEMSWAP_NODE_ANY;
    req->geom = geom;
    for ( c = from; c < to; c++ )
        req->colours[c / 64] |= 1ULL << (c % 64);
}

static void steps(unsigned int n)
{
    while ( n-- )
        sim_world_step();
}

/* Run the world until the guest's fork actor is at @stage (bounded). */
static bool run_to_stage(struct domain *d, enum sim_fork_stage stage)
{
    unsigned int i;

    for ( i = 0; i < 4 * SIM_FORK_PERIOD; i++ )
    {
        if ( d->fork.stage == stage )
            return true;
        sim_world_step();
    }
    return d->fork.stage == stage;
}

/* ---- what a swap must preserve (as tests/c/test_engine.c checks it) ----- */

struct snap {
    unsigned int domid;
    unsigned long nr, free_frames;
    uint64_t tot_pages;
    unsigned long *mfn;
    uint64_t *sum;
};

static void snap_take(struct snap *s, unsigned int domid)
{
    struct domain *d = sim_domain_lookup(domid);
    unsigned long pfn;

    s->domid = domid;
    s->nr = d->p2m_size;
    s->tot_pages = d->tot_pages;
    s->free_frames = sim_host_free_frames(-1, NULL);
    s->mfn = calloc(s->nr, sizeof(*s->mfn));
    s->sum = calloc(s->nr, sizeof(*s->sum));
    for ( pfn = 0; pfn < s->nr; pfn++ )
    {
        s->mfn[pfn] = sim_domain_pfn_to_mfn(domid, pfn);
        s->sum[pfn] = guest_canonical_hash(d, pfn);
    }
}

static void snap_free(struct snap *s)
{
    free(s->mfn);
    free(s->sum);
}

/* Pages someone besides the guest may write while it is paused. */
static bool written_from_outside(struct domain *d, unsigned long pfn)
{
    unsigned int i;

    if ( pfn == d->vcpu_info_pfn || pfn == d->console_pfn || pfn == d->xenstore_pfn ||
         pfn == d->net_tx_ring_pfn || pfn == d->net_rx_ring_pfn )
        return true;
    for ( i = 0; i < SIM_NET_BUFS; i++ )
        if ( pfn == d->net_rx_buf_pfn[i] || pfn == d->net_tx_buf_pfn[i] )
            return true;
    return false;
}

/* After a successful swap: moved, translated right, old frames freed, clean. */
static int check_swapped(const struct snap *s, const struct memswap_result *res)
{
    struct domain *d = sim_domain_lookup(s->domid);
    unsigned long pfn, moved = 0;
    char audit[512];
    int bad = 0;

#define BAD(...) do { if ( bad++ < 6 ) fprintf(stderr, "  check: " __VA_ARGS__); } while ( 0 )
    for ( pfn = 0; pfn < s->nr; pfn++ )
    {
        unsigned long old = s->mfn[pfn], now = sim_domain_pfn_to_mfn(s->domid, pfn);

        if ( old == MS_INVALID_MFN || !guest_owns(d, now) )
            continue;
        if ( now != old )
        {
            moved++;
            if ( !page_state_is(sim_mfn_to_page(old), free) )
                BAD("old frame %#lx of pfn %#lx not freed\n", old, pfn);
        }
        if ( !written_from_outside(d, pfn) && guest_canonical_hash(d, pfn) != s->sum[pfn] )
            BAD("pfn %#lx (role %d) differs after the swap\n", pfn, d->pfn_role[pfn]);
    }
    if ( res->frames_moved != moved )
        BAD("result says %llu moved, P2M says %lu\n", (unsigned long long)res->frames_moved, moved);
    if ( res->frames_moved * 100 < res->frames_total * 95 )
        BAD("only %llu of %llu frames moved\n", (unsigned long long)res->frames_moved,
            (unsigned long long)res->frames_total);
    if ( d->tot_pages != s->tot_pages || sim_host_free_frames(-1, NULL) != s->free_frames )
        BAD("tot_pages %llu -> %lu, free %lu -> %lu\n", (unsigned long long)s->tot_pages,
            d->tot_pages, s->free_frames, sim_host_free_frames(-1, NULL));
    if ( sim_audit(audit, sizeof(audit)) )
        BAD("audit: %s\n", audit);
    return bad;
#undef BAD
}

/* After a refused swap: nothing changed at all. */
static int check_unchanged(const struct snap *s)
{
    struct domain *d = sim_domain_lookup(s->domid);
    unsigned long pfn;
    char audit[512];
    int bad = 0;

    for ( pfn = 0; pfn < s->nr; pfn++ )
        if ( sim_domain_pfn_to_mfn(s->domid, pfn) != s->mfn[pfn] ||
             (!written_from_outside(d, pfn) && guest_canonical_hash(d, pfn) != s->sum[pfn]) )
            bad++;
    if ( d->tot_pages != s->tot_pages || sim_host_free_frames(-1, NULL) != s->free_frames )
        bad++;
    if ( sim_audit(audit, sizeof(audit)) )
    {
        fprintf(stderr, "  audit after rollback: %s\n", audit);
        bad++;
    }
    return bad;
}

/* The guest runs on: devices exchange data, no errors, forks still work. */
static int check_running(unsigned int domid, unsigned int n)
{
    struct domain *d = sim_domain_lookup(domid);
    struct sim_io_stats a, b;
    uint64_t forks = d->fork.forks_done;

    sim_domain_io_stats(domid, &a);
    steps(n);
    sim_domain_io_stats(domid, &b);
    if ( b.io_errors != a.io_errors || b.pt_errors || b.console_lines <= a.console_lines ||
         b.xenstore_replies <= a.xenstore_replies || b.net_rx_ok <= a.net_rx_ok ||
         b.net_tx_ok <= a.net_tx_ok )
    {
        fprintf(stderr, "  io: errors %llu -> %llu, pt_errors %llu, console %llu -> %llu\n",
                (unsigned long long)a.io_errors, (unsigned long long)b.io_errors,
                (unsigned long long)b.pt_errors, (unsigned long long)a.console_lines,
                (unsigned long long)b.console_lines);
        return 1;
    }
    return n >= 2 * SIM_FORK_PERIOD && d->fork.forks_done == forks;
}

/* ---- tests -------------------------------------------------------------- */

TEST(fork_actor_runs_clean)
{
    struct sim_io_stats st;
    struct domain *d;
    char audit[512];
    int id, i, seen[3] = { 0 };

    CHECK(host(41) == 0);
    id = fork_guest(41);
    CHECK(id > 0);
    d = sim_domain_lookup((unsigned int)id);
    for ( i = 0; i < 5 * SIM_FORK_PERIOD; i++ )
    {
        int fs = sim_domain_fork_state((unsigned int)id);

        CHECK(fs >= 0 && fs <= 2);
        seen[fs]++;
        sim_world_step();
    }
    CHECK(seen[0] && seen[1] && seen[2]);
    CHECK(d->fork.forks_done >= 4);
    sim_domain_io_stats((unsigned int)id, &st);
    CHECK(st.pt_errors == 0 && st.io_errors == 0);
    CHECKF(sim_audit(audit, sizeof(audit)) == 0, "%s", audit);
    /* Off by default: a guest without .forks never forks. */
    {
        struct sim_guest_config gc = { .mem_bytes = 32 * MiB, .nr_vcpus = 1,
                                       .node = MEMSWAP_NODE_ANY, .with_devices = true };

        id = sim_domain_create(&gc);
        CHECK(id > 0);
        steps(2 * SIM_FORK_PERIOD);
        CHECK(sim_domain_fork_state((unsigned int)id) == 0);
        CHECK(sim_domain_lookup((unsigned int)id)->fork.forks_done == 0);
    }
    sim_host_destroy();
}

TEST(fork_hazard_refused_and_shown)
{
    struct memswap_request req;
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true, .preempt_every = 5 };
    struct memswap_result res;
    struct sim_io_stats st;
    struct domain *d;
    struct snap s;
    uint64_t *pgd;
    char audit[512];
    int id, rc;

    CHECK(host(42) == 0);
    id = fork_guest(42);
    CHECK(id > 0);
    d = sim_domain_lookup((unsigned int)id);

    /* A child half built: pgd (kernel half cloned) and its L3, unpinned. */
    CHECK(run_to_stage(d, SIM_FORK_L3));
    CHECK(sim_domain_fork_state((unsigned int)id) == 1);
    request(&req, (unsigned int)id, 1);
    sim_domain_pause((unsigned int)id);
    snap_take(&s, (unsigned int)id);
    rc = sim_swap(&req, &opts, &res);
    CHECKF(rc == -EAGAIN, "rc=%d", rc);
    CHECK(res.failed_phase == MEMSWAP_PH_COPY);
    CHECK(check_unchanged(&s) == 0);
    snap_free(&s);
    sim_domain_unpause((unsigned int)id);
    /* The fork completes as if nothing happened. */
    CHECK(check_running((unsigned int)id, 2 * SIM_FORK_PERIOD) == 0);

    /*
     * The same with the detector blinded: the pgd differs from the kernel
     * L4 in one slot that is not present (harmless to Xen and Linux). The
     * swap copies the unpinned tables raw and the guest's pin fails.
     */
    CHECK(run_to_stage(d, SIM_FORK_L3));
    pgd = sim_guest_va_ptr(d, sim_pfn_va(d->fork.pgd), true);
    CHECK(pgd && !(pgd[300] & SIM_PTE_P));
    pgd[300] = 0xdead000;
    sim_domain_pause((unsigned int)id);
    snap_take(&s, (unsigned int)id);
    rc = sim_swap(&req, &opts, &res);
    snap_free(&s);
    CHECKF(rc == 0, "rc=%d in %s", rc, memswap_phase_name(res.failed_phase));
    sim_domain_unpause((unsigned int)id);
    sim_log_clear();
    steps(SIM_FORK_PERIOD);
    sim_domain_io_stats((unsigned int)id, &st);
    fprintf(stderr, "  blinded swap: pt_errors %llu, \"pinning the child's pgd failed\" %lu\n",
            (unsigned long long)st.pt_errors, sim_log_count("pinning the child's pgd failed"));
    CHECK(st.pt_errors > 0);
    CHECK(sim_log_count("pinning the child's pgd failed") > 0);
    CHECK(sim_log_count("Error pfn") > 0);     /* Xen: get_page on a freed old frame */
    /* Xen's own state is consistent: the damage is the guest's (its fork). */
    CHECKF(sim_audit(audit, sizeof(audit)) == 0, "%s", audit);
    sim_host_destroy();
}

TEST(fork_noncooperative_swaps_succeed_or_refuse)
{
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true, .preempt_every = 7 };
    unsigned int ok = 0, refused = 0, pinned_ok = 0, fresh_pgd_ok = 0, i;
    struct sim_io_stats st;
    int id;

    CHECK(host(43) == 0);
    id = fork_guest(43);
    CHECK(id > 0);
    steps(5);
    for ( i = 0; i < 20; i++ )
    {
        struct memswap_request req;
        struct memswap_result res;
        struct snap s;
        int fs, rc;

        steps(3 + (i * 5) % 11);
        fs = sim_domain_fork_state((unsigned int)id);
        request(&req, (unsigned int)id, i & 1);
        sim_domain_pause((unsigned int)id);
        snap_take(&s, (unsigned int)id);
        rc = sim_swap(&req, &opts, &res);
        if ( rc == 0 )
        {
            ok++;
            pinned_ok += fs == 2;
            /* An unpinned pgd with no user entries yet: translated, not refused. */
            fresh_pgd_ok += fs == 1;
            CHECKF(fs != 1 || res.unpinned_pgds > 0, "swapped past an unpinned pgd (iteration %u)", i);
            CHECKF(check_swapped(&s, &res) == 0, "iteration %u", i);
        }
        else
        {
            refused++;
            CHECKF(rc == -EAGAIN && res.failed_phase == MEMSWAP_PH_COPY, "rc=%d in %s", rc,
                   memswap_phase_name(res.failed_phase));
            CHECKF(fs == 1, "refused in fork state %d (iteration %u)", fs, i);
            CHECKF(check_unchanged(&s) == 0, "iteration %u", i);
        }
        snap_free(&s);
        sim_domain_unpause((unsigned int)id);
        CHECKF(check_running((unsigned int)id, 12) == 0, "iteration %u", i);
    }
    fprintf(stderr, "  %u swaps succeeded (%u with the child's tables pinned, %u with its pgd "
            "just allocated), %u refused with -EAGAIN\n", ok, pinned_ok, fresh_pgd_ok, refused);
    CHECK(ok > 0 && refused > 0 && pinned_ok > 0);
    CHECK(check_running((unsigned int)id, 3 * SIM_FORK_PERIOD) == 0);
    sim_domain_io_stats((unsigned int)id, &st);
    CHECK(st.pt_errors == 0 && st.io_errors == 0);
    sim_host_destroy();
}

TEST(fork_cooperative_swaps_always_succeed)
{
    struct sim_swap_opts opts = { .alloc_fail_at = -1, .world_runs = true, .preempt_every = 7 };
    unsigned int i, building = 0, tearing_down = 0;
    struct sim_io_stats st;
    struct domain *d;
    int id;

    CHECK(host(44) == 0);
    id = fork_guest(44);
    CHECK(id > 0);
    d = sim_domain_lookup((unsigned int)id);
    steps(3);
    for ( i = 0; i < 2 * SIM_FORK_PERIOD; i++ )
    {
        struct memswap_request req;
        struct memswap_result res;
        struct snap s;
        enum sim_fork_stage stage;
        int rc, bad;

        steps(1 + (i * 3) % 5);
        stage = d->fork.stage;
        building += stage >= SIM_FORK_PGD && stage < SIM_FORK_PINNED;
        tearing_down += stage == SIM_FORK_UNPINNED || stage == SIM_FORK_PGD_ONLY;
        CHECK(sim_domain_suspend((unsigned int)id) == 0);
        CHECK(sim_domain_suspend((unsigned int)id) == -EINVAL);
        CHECKF(sim_domain_fork_state((unsigned int)id) != 1, "stage %d", stage);
        request(&req, (unsigned int)id, i & 1);
        snap_take(&s, (unsigned int)id);
        rc = sim_swap(&req, &opts, &res);
        CHECKF(rc == 0, "iteration %u (stage %d): rc=%d in %s", i, stage, rc,
               memswap_phase_name(res.failed_phase));
        bad = check_swapped(&s, &res);
        snap_free(&s);
        CHECKF(bad == 0, "iteration %u (stage %d)", i, stage);
        CHECK(sim_domain_resume_cancelled((unsigned int)id) == 0);
        CHECK(sim_domain_resume_cancelled((unsigned int)id) == -EINVAL);
        CHECKF(check_running((unsigned int)id, 10) == 0, "iteration %u (stage %d)", i, stage);
    }
    fprintf(stderr, "  suspended %u times mid-fork, %u times mid-exit\n", building, tearing_down);
    CHECK(building > 0 && tearing_down > 0);
    CHECK(check_running((unsigned int)id, 3 * SIM_FORK_PERIOD) == 0);
    sim_domain_io_stats((unsigned int)id, &st);
    CHECK(st.pt_errors == 0 && st.io_errors == 0);
    sim_host_destroy();
}
