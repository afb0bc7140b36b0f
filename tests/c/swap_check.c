/* SPDX-License-Identifier: GPL-2.0-only */
/* The swap checker shared by the C tests: see swap_check.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swap_check.h"
#include "guest_view.h"
#include "core/private.h"

struct memswap_geometry geom;

int host(uint64_t ram, unsigned int nodes, uint64_t seed)
{
    struct sim_host_config hc = {
        .ram_bytes = ram, .nr_nodes = nodes,
        .llc = { .size_bytes = 8 * MiB, .ways = 16, .line_bytes = 64 },
        .seed = seed, .scrub_freed = true,
    };
    int rc;

    /* A failed CHECK leaves its host behind: start clean. */
    sim_host_destroy();
    rc = sim_host_create(&hc);
    sim_host_geometry(&geom);
    return rc;
}

int guest_of_type(unsigned int type, const char *name, uint64_t mem, unsigned int vcpus,
                  unsigned int as, uint64_t seed)
{
    struct sim_guest_config gc = {
        .mem_bytes = mem, .nr_vcpus = vcpus, .nr_address_spaces = as,
        .node = MEMSWAP_NODE_ANY, .with_devices = true, .seed = seed, .type = type,
    };

    snprintf(gc.name, sizeof(gc.name), "%s", name);
    return sim_domain_create(&gc);
}

int guest(const char *name, uint64_t mem, unsigned int vcpus, unsigned int as, uint64_t seed)
{
    return guest_of_type(SIM_GUEST_PV, name, mem, vcpus, as, seed);
}

void set_colour_range(struct memswap_request *req, unsigned int from, unsigned int to)
{
    unsigned int c;

    memset(req->colours, 0, sizeof(req->colours));
    for ( c = from; c < to; c++ )
        req->colours[c / 64] |= 1ULL << (c % 64);
}

void request(struct memswap_request *req, unsigned int domid)
{
    memset(req, 0, sizeof(*req));
    req->domid = domid;
    req->node = MEMSWAP_NODE_ANY;
    req->geom = geom;
}

/* ---- the state a swap must preserve ------------------------------------- */

static void canonical_sums(unsigned int domid, uint64_t *sums, unsigned long nr)
{
    struct domain *d = sim_domain_lookup(domid);
    unsigned long pfn;

    for ( pfn = 0; pfn < nr; pfn++ )
        sums[pfn] = guest_canonical_hash(d, pfn);
}

void snapshot_take(struct snapshot *s, unsigned int domid)
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

void snapshot_free(struct snapshot *s)
{
    free(s->mfn);
    free(s->sum);
}

/*
 * Who outside the guest holds frame @mfn (of pfn @pfn), in the order the
 * engine asks: grants (a PV guest's entries name MFNs; a translated guest's
 * name gfns, so only active mappings hold frames), Xen's own mappings
 * (FIFO event channels), the p2m type (ioreq server), dom0's mappings.
 */
int outside_reason(struct domain *d, unsigned long pfn, unsigned long mfn)
{
    uint32_t gref;
    unsigned int i;

    for ( gref = 0; !sim_translated(d) && gref < SIM_NR_GRANTS; gref++ )
    {
        struct sim_grant_entry_v1 *e = sim_gnt_entry(d, gref);

        if ( e && (e->flags & SIM_GTF_permit_access) && e->frame == mfn )
            return MEMSWAP_KEPT_GRANTED;
    }
    for ( i = 0; i < sim_nr_gmaps; i++ )
        if ( sim_gmaps[i].used && sim_gmaps[i].mfn == mfn )
            return MEMSWAP_KEPT_GRANTED;
    for ( i = 0; i < d->nr_vcpus; i++ )
        if ( d->fifo_cb_mfn[i] == mfn )
            return MEMSWAP_KEPT_XEN;
    if ( d->fifo_array_mfn == mfn )
        return MEMSWAP_KEPT_XEN;
    if ( sim_translated(d) && pfn < d->p2m_size && d->p2m_type[pfn] == SIM_P2MT_IOREQ )
        return MEMSWAP_KEPT_P2M_TYPE;
    for ( i = 0; i < sim_nr_fmaps; i++ )
        if ( sim_fmaps[i].used && sim_fmaps[i].mfn == mfn )
            return MEMSWAP_KEPT_FOREIGN;
    return -1;
}

bool is_vcpu_info_pfn(struct domain *d, unsigned long pfn)
{
    unsigned int i;

    for ( i = 0; i < d->nr_vcpus; i++ )
        if ( d->vcpu[i].vcpu_info_mfn != MS_INVALID_MFN &&
             sim_m2p_get(d->vcpu[i].vcpu_info_mfn) == pfn )
            return true;
    return false;
}

/*
 * A translated guest's network buffers move (their grants name gfns), and
 * netback keeps copying packets into them, paused guest or not: the
 * traffic checks (net_rx_ok, net_tx_ok) say whether they are right.
 */
static bool written_by_backends(const struct domain *d, unsigned long pfn)
{
    return sim_translated(d) && d->pfn_role[pfn] == SIM_ROLE_NET_BUF;
}

/* Pages nobody writes while the guest runs in the simulator. */
static bool stays_unwritten(const struct domain *d, unsigned long pfn)
{
    switch ( d->pfn_role[pfn] )
    {
    case SIM_ROLE_PT:
    case SIM_ROLE_P2M:
    case SIM_ROLE_USER:
    case SIM_ROLE_GDT:
    case SIM_ROLE_START_INFO:
        return true;
    }
    return false;
}

int check_swap(const struct snapshot *s, const struct memswap_request *req,
               const struct memswap_result *res, unsigned int flags)
{
    struct domain *d = sim_domain_lookup(s->domid);
    unsigned long pfn, moved = 0, kept_expect[MEMSWAP_KEPT_NR] = { 0 }, first_bad = 0;
    uint64_t *after = calloc(s->nr, sizeof(*after));
    bool print = flags & CHECK_PRINT, live = flags & CHECK_LIVE;
    struct sim_domain_info info;
    char audit[512];
    int bad = 0, n;
    unsigned int i, r;
    long wrong;

#define VIOLATION(...) do { if ( print && bad < 8 ) fprintf(stderr, "  check: " __VA_ARGS__); bad++; } while ( 0 )

    canonical_sums(s->domid, after, s->nr);
    for ( pfn = 0; pfn < s->nr; pfn++ )
    {
        unsigned long old = s->mfn[pfn], now = sim_domain_pfn_to_mfn(s->domid, pfn);
        int why;

        if ( old == MS_INVALID_MFN || !guest_owns(d, now) )
            continue;
        why = outside_reason(d, pfn, old);
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

        /*
         * Kept frames may legitimately be written by their outside holders;
         * a running guest writes its data pages (checked below).
         */
        if ( (now != old || why < 0) && (!live || stays_unwritten(d, pfn)) &&
             d->pfn_role[pfn] != SIM_ROLE_DATA && !written_by_backends(d, pfn) &&
             after[pfn] != s->sum[pfn] && !is_vcpu_info_pfn(d, pfn) )
            VIOLATION("pfn %#lx (role %d) bytes differ after the swap\n", pfn, d->pfn_role[pfn]);
    }
    free(after);

    /*
     * Every data page holds what its writers wrote (the guest, an HVM
     * guest's device model), read the guest's way.
     */
    if ( (wrong = sim_guest_verify(s->domid, &first_bad)) )
        VIOLATION("%ld data pages wrong, the first pfn %#lx\n", wrong, first_bad);

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
    for ( r = 0; r < MEMSWAP_KEPT_NR; r++ )
        if ( r != MEMSWAP_KEPT_NOT_IN_P2M && res->frames_kept[r] != kept_expect[r] )
            VIOLATION("kept %s: %llu, expected %lu\n", memswap_kept_name(r),
                      (unsigned long long)res->frames_kept[r], kept_expect[r]);

    sim_domain_info(s->domid, &info);
    if ( info.tot_pages != s->tot_pages )
        VIOLATION("tot_pages %llu -> %llu\n", (unsigned long long)s->tot_pages,
                  (unsigned long long)info.tot_pages);
    if ( sim_host_free_frames(-1, NULL) != s->free_frames )
        VIOLATION("free frames %lu -> %lu\n", s->free_frames, sim_host_free_frames(-1, NULL));
    if ( d->ld_on )
        VIOLATION("log-dirty still on after the swap\n");

    if ( (n = sim_audit(audit, sizeof(audit))) )
        VIOLATION("audit: %d problems: %s\n", n, audit);
    return bad;
#undef VIOLATION
}

int check_io(unsigned int domid, unsigned int steps)
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

static int swap_checked(unsigned int domid, struct memswap_request *req,
                        struct sim_swap_opts *opts, struct memswap_result *res,
                        bool print, bool live)
{
    struct snapshot s;
    int rc, bad;

    if ( !live )
        sim_domain_pause(domid);
    snapshot_take(&s, domid);
    rc = sim_swap(req, opts, res);
    if ( rc )
    {
        if ( print )
            fprintf(stderr, "  sim_swap: %d in %s\n", rc, memswap_phase_name(res->failed_phase));
        if ( !live )
            sim_domain_unpause(domid);
        snapshot_free(&s);
        return -1;
    }
    bad = check_swap(&s, req, res, (print ? CHECK_PRINT : 0) | (live ? CHECK_LIVE : 0));
    if ( !live )
        sim_domain_unpause(domid);
    bad += check_io(domid, 40);
    /* And after the guest ran on its new frames. */
    bad += sim_guest_verify(domid, NULL) != 0;
    snapshot_free(&s);
    return bad;
}

int swap_and_check(unsigned int domid, struct memswap_request *req,
                   struct sim_swap_opts *opts, struct memswap_result *res, bool print)
{
    return swap_checked(domid, req, opts, res, print, false);
}

int live_swap_and_check(unsigned int domid, struct memswap_request *req,
                        struct sim_swap_opts *opts, struct memswap_result *res, bool print)
{
    return swap_checked(domid, req, opts, res, print, true);
}

int check_unchanged(const struct snapshot *s)
{
    struct domain *d = sim_domain_lookup(s->domid);
    struct snapshot now;
    unsigned long pfn;
    char audit[512];
    int bad = 0;

    snapshot_take(&now, s->domid);
    for ( pfn = 0; pfn < s->nr; pfn++ )
        if ( now.mfn[pfn] != s->mfn[pfn] ||
             (now.sum[pfn] != s->sum[pfn] && !is_vcpu_info_pfn(d, pfn) &&
              d->pfn_role[pfn] != SIM_ROLE_DATA && !written_by_backends(d, pfn) &&
              outside_reason(d, pfn, s->mfn[pfn]) < 0) )
            bad++;
    if ( sim_guest_verify(s->domid, NULL) )
        bad++;
    if ( now.free_frames != s->free_frames || now.tot_pages != s->tot_pages )
        bad++;
    if ( d->ld_engine )
        bad++;
    if ( sim_audit(audit, sizeof(audit)) )
    {
        fprintf(stderr, "  audit after rollback: %s\n", audit);
        bad++;
    }
    snapshot_free(&now);
    return bad;
}

int swap_fails_unchanged(unsigned int domid, struct memswap_request *req,
                         struct sim_swap_opts *opts, struct memswap_result *res,
                         int want_rc, enum memswap_phase want_phase)
{
    struct snapshot s;
    int rc, bad = 0;

    snapshot_take(&s, domid);
    rc = sim_swap(req, opts, res);
    if ( rc != want_rc || res->failed_phase != want_phase )
    {
        fprintf(stderr, "  sim_swap: %d in %s, expected %d in %s\n", rc,
                memswap_phase_name(res->failed_phase), want_rc, memswap_phase_name(want_phase));
        bad++;
    }
    bad += check_unchanged(&s);
    snapshot_free(&s);
    return bad;
}

int drive(const struct memswap_request *req, const struct sim_swap_opts *o,
          at_continuation_fn at, void *arg, struct memswap_result *res)
{
    struct sim_swap_opts opts = *o;

    opts.at = at;
    opts.at_arg = arg;
    return sim_swap(req, &opts, res);
}
