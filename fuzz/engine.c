/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Fuzz target: the swap engine's SCAN and CLASSIFY (and everything after
 * them) over guest-controlled memory, in the simulator, under libFuzzer
 * with AddressSanitizer and UBSan.
 *
 * Each input builds a fresh host and a small guest - PV, PVH or HVM - then
 * replays the input as what the guest (and dom0) may write. A PV guest:
 * shared_info's P2M fields (max_pfn, frame-list-list, p2m_cr3), entries of
 * the frame-list-list, of mid frames and of leaves, M2P entries of its own
 * frames, page-table entries through mmu_update, pgd-shaped data pages,
 * grant entries, pins, dom0 foreign mappings. A translated guest: its p2m
 * as ballooning and a device model change it (entries removed, types set:
 * read-only, ioreq server, MMIO), grant entries naming any gfn, dom0's
 * mappings by frame and by grant, M2P entries, raw bytes anywhere in its
 * memory. Values come from every kind of frame: the guest's own, dom0's,
 * Xen's, free, out of range, raw garbage. Then a swap runs with
 * input-chosen options (dry run, live, hold, preemption, an allocation or a
 * p2m failure, an abort, one dom0 action or toolstack change between two
 * continuations).
 *
 * Properties (a violation aborts, which libFuzzer records as a finding):
 *  - no crash, no ASan/UBSan report, no reference count underflow;
 *  - no frame of another domain, no free or Xen frame, is ever indexed;
 *  - the result is one of the documented errors;
 *  - the host stays consistent: free frames free and on the heap, owned
 *    frames on their owner's list, tot_pages right, no frame left frozen;
 *  - without dom0 acting, a rollback or a dry run leaves the machine
 *    exactly as it was (counts, types, owners, M2P, the guest's bytes),
 *    and a swap of a guest whose audit was clean leaves it clean.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"

#define MiB (1ULL << 20)

struct input {
    const uint8_t *p;
    size_t n;
};

static uint64_t rd(struct input *in, unsigned int bytes)
{
    uint64_t v = 0;

    while ( bytes-- )
    {
        v = (v << 8) | (in->n ? *in->p : 0);
        if ( in->n )
        {
            in->p++;
            in->n--;
        }
    }
    return v;
}

#define FUZZ_CHECK(cond)                                                    \
    do {                                                                    \
        if ( !(cond) )                                                      \
        {                                                                   \
            fprintf(stderr, "fuzz: property violated at %s:%d: %s\n",       \
                    __FILE__, __LINE__, #cond);                             \
            abort();                                                        \
        }                                                                   \
    } while ( 0 )

static struct domain *victim;

/* The n-th frame of @d's page list (n modulo its length). */
static unsigned long nth_frame(const struct domain *d, unsigned long n)
{
    uint32_t m;

    if ( !d->tot_pages )
        return 0;
    n %= d->tot_pages;
    for ( m = d->page_head; m != SIM_NIL && n; m = sim_frame_table[m].list_next, n-- )
        ;
    return m == SIM_NIL ? 0 : m;
}

/* A machine frame number of any kind the guest could name. */
static unsigned long pick_mfn(struct input *in)
{
    unsigned long k = rd(in, 1), x = rd(in, 2), m;

    switch ( k % 9 )
    {
    case 0: case 1:
        /* One of the guest's own, by pfn (often a P2M frame or a table). */
        m = sim_domain_pfn_to_mfn(victim->domid, x % (victim->p2m_size ?: 1));
        return m != MS_INVALID_MFN ? m : nth_frame(victim, x);
    case 2:
        return nth_frame(victim, x);
    case 3:
        return nth_frame(sim_domains[0], x);
    case 4:
        return x % 4 == 0 ? victim->shared_info_mfn : x % 4 == 1 ? victim->gnt_mfn[0] : x % 16;
    case 5:
        for ( m = x % sim_nr_frames; m < sim_nr_frames; m++ )
            if ( page_state_is(sim_mfn_to_page(m), free) )
                return m;
        return x;
    case 6:
        return sim_nr_frames + x;
    case 7:
        return (unsigned long)rd(in, 8);
    default:
        return x & 1 ? ~0UL : 0;
    }
}

/* A value for a P2M entry: an MFN of any kind, or a Linux marker. */
static uint64_t pick_p2m_entry(struct input *in)
{
    unsigned long k = rd(in, 1);

    if ( k % 8 == 6 )
        return SIM_P2M_INVALID;
    if ( k % 8 == 7 )
        return (k & 8 ? SIM_P2M_IDENTITY : SIM_P2M_FOREIGN) | pick_mfn(in);
    return pick_mfn(in);
}

static uint64_t *frame(unsigned long mfn)
{
    return sim_mfn_valid(mfn) ? sim_map_frame(mfn) : NULL;
}

/*
 * A translated guest's p2m as the guest (ballooning out: guest_remove_page())
 * and a device model (HVMOP_set_mem_type, XEN_DMOP_map_mem_type_to_ioreq_server)
 * may change it, or a write anywhere: its page tables are plain pages to Xen.
 */
static void mutate_translated(struct input *in)
{
    unsigned long op = rd(in, 1), gfn = rd(in, 3) % (victim->p2m_size + 16), mfn;

    switch ( op % 8 )
    {
    case 0:
        if ( gfn < victim->p2m_size && (mfn = sim_p2m_ram_mfn(victim, gfn)) != MS_INVALID_MFN &&
             sim_mfn_to_page(mfn)->owner == victim )
        {
            struct page_info *pg = sim_mfn_to_page(mfn);

            victim->p2m_type[gfn] = SIM_P2MT_NONE;
            victim->p2m_mfn[gfn] = MS_INVALID_MFN;
            if ( pg->count_info & PGC_allocated )
            {
                pg->count_info &= ~PGC_allocated;
                sim_put_page(pg);
            }
        }
        break;
    case 1:
        if ( gfn < victim->p2m_size && victim->p2m_type[gfn] != SIM_P2MT_NONE )
            victim->p2m_type[gfn] = (uint8_t)(SIM_P2MT_RAM_RW + rd(in, 1) % 5);
        break;
    case 2:
        sim_gnt_grant(victim, (uint32_t)(rd(in, 1) % SIM_NR_GRANTS), 0,
                      rd(in, 1) & 1 ? gfn : pick_mfn(in), rd(in, 1) & 1);
        break;
    case 3:
        sim_gnt_map(0, victim->domid, (uint32_t)(rd(in, 1) % SIM_NR_GRANTS), rd(in, 1) & 1);
        break;
    case 4:
        sim_fmap_map(victim->domid, pick_mfn(in), rd(in, 1) & 1);
        break;
    case 5:
        mfn = pick_mfn(in);
        if ( sim_mfn_valid(mfn) )
            sim_dom0_machphys_update(victim->domid, mfn, rd(in, 1) & 1 ? rd(in, 3) : gfn);
        break;
    default:
        mfn = pick_mfn(in);
        if ( sim_mfn_valid(mfn) && sim_mfn_to_page(mfn)->owner == victim )
            frame(mfn)[rd(in, 2) % 512] = rd(in, 8);
        break;
    }
}

/* One guest (or dom0) write, as the input says. */
static void mutate(struct input *in)
{
    struct sim_shared_info *si = sim_shared_info(victim);
    unsigned long op, mfn;
    uint64_t *t;

    if ( sim_translated(victim) )
    {
        mutate_translated(in);
        return;
    }
    op = rd(in, 1);
    switch ( op % 13 )
    {
    case 0:
        si->arch.max_pfn = rd(in, 1) & 1 ? rd(in, 4) : rd(in, 8);
        break;
    case 1:
        si->arch.pfn_to_mfn_frame_list_list = pick_mfn(in);
        break;
    case 2:
        si->arch.p2m_cr3 = ((uint64_t)pick_mfn(in) << PAGE_SHIFT) | rd(in, 1);
        break;
    case 3:         /* an entry of the frame-list-list */
        if ( (t = frame((unsigned long)si->arch.pfn_to_mfn_frame_list_list)) &&
             sim_mfn_to_page((unsigned long)si->arch.pfn_to_mfn_frame_list_list)->owner == victim )
            t[rd(in, 2) % 512] = pick_mfn(in);
        break;
    case 4:         /* an entry of a mid frame */
        if ( (t = frame((unsigned long)si->arch.pfn_to_mfn_frame_list_list)) &&
             sim_mfn_to_page((unsigned long)si->arch.pfn_to_mfn_frame_list_list)->owner == victim &&
             (mfn = t[rd(in, 1) % 4], frame(mfn)) && sim_mfn_to_page(mfn)->owner == victim )
            frame(mfn)[rd(in, 2) % 512] = pick_mfn(in);
        break;
    case 5:         /* a P2M entry, through the tree as it is now */
    {
        unsigned long pfn = rd(in, 3) % (victim->p2m_size + 1024);
        uint64_t *top = frame((unsigned long)si->arch.pfn_to_mfn_frame_list_list), *mid, *leaf;

        if ( !top || sim_mfn_to_page((unsigned long)si->arch.pfn_to_mfn_frame_list_list)->owner != victim )
            break;
        mid = frame((unsigned long)top[(pfn >> 18) & 511]);
        if ( !mid || sim_mfn_to_page((unsigned long)top[(pfn >> 18) & 511])->owner != victim )
            break;
        leaf = frame((unsigned long)mid[(pfn >> 9) & 511]);
        if ( leaf && sim_mfn_to_page((unsigned long)mid[(pfn >> 9) & 511])->owner == victim )
            leaf[pfn & 511] = pick_p2m_entry(in);
        break;
    }
    case 6:         /* the guest's M2P entry of one of its frames */
        mfn = pick_mfn(in);
        if ( sim_mfn_valid(mfn) )
            sim_dom0_machphys_update(victim->domid, mfn, rd(in, 1) & 1 ? rd(in, 3) : sim_m2p_get(mfn) ^ 1);
        break;
    case 7:         /* a PTE, through mmu_update (Xen validates it) */
        mfn = pick_mfn(in);
        sim_mmu_update(victim, ((uint64_t)mfn << PAGE_SHIFT) + (rd(in, 2) % 512) * 8,
                       ((uint64_t)pick_mfn(in) << PAGE_SHIFT) | rd(in, 1) | ((uint64_t)rd(in, 1) << 56));
        break;
    case 8:         /* a data page shaped like a Linux pgd (unpinned) */
        mfn = pick_mfn(in);
        if ( sim_mfn_valid(mfn) && sim_mfn_to_page(mfn)->owner == victim &&
             (sim_mfn_to_page(mfn)->u.inuse.type_info & PGT_type_mask) == PGT_writable_page &&
             victim->vcpu[0].guest_table != MS_INVALID_MFN )
        {
            t = frame(mfn);
            memcpy(t + 273, frame(victim->vcpu[0].guest_table) + 273, (512 - 273) * 8);
            t[0] = rd(in, 1) & 1 ? frame(victim->vcpu[0].guest_table)[0] : 0;
        }
        break;
    case 9:         /* a grant entry */
        sim_gnt_grant(victim, (uint32_t)(rd(in, 1) % SIM_NR_GRANTS), 0, pick_mfn(in), rd(in, 1) & 1);
        break;
    case 10:
        mfn = pick_mfn(in);
        if ( rd(in, 1) & 1 )
            sim_unpin_table(victim, mfn);
        else
            sim_pin_table(victim, mfn, 1 + rd(in, 1) % 4);
        break;
    case 11:        /* dom0 maps one of the guest's frames (kept for the swap) */
        sim_fmap_map(victim->domid, pick_mfn(in), rd(in, 1) & 1);
        break;
    default:        /* raw bytes in one of the guest's frames (not its tables: Xen refuses) */
        mfn = pick_mfn(in);
        if ( sim_mfn_valid(mfn) && sim_mfn_to_page(mfn)->owner == victim &&
             !sim_is_pt_type(sim_mfn_to_page(mfn)->u.inuse.type_info) )
            frame(mfn)[rd(in, 2) % 512] = rd(in, 8);
        break;
    }
}

/* ---- what must hold ------------------------------------------------------ */

/* The checkers are not what is being explored: no coverage feedback from them. */
#define CHECKER __attribute__((no_sanitize("coverage")))

/* Counts, types, owners and M2P of every frame, and the bytes of guest frames. */
CHECKER static uint64_t machine_hash(void)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    unsigned long mfn;

    for ( mfn = 0; mfn < sim_nr_frames; mfn++ )
    {
        const struct page_info *pg = sim_mfn_to_page(mfn);

        h = (h ^ pg->count_info) * 0x100000001b3ULL;
        h = (h ^ pg->u.inuse.type_info) * 0x100000001b3ULL;
        h = (h ^ (uintptr_t)pg->owner) * 0x100000001b3ULL;
        h = (h ^ sim_m2p[mfn]) * 0x100000001b3ULL;
        if ( pg->owner == victim )
        {
            const uint64_t *w = sim_map_frame(mfn);
            unsigned int i;

            for ( i = 0; i < 512; i++ )
                h = (h ^ w[i]) * 0x100000001b3ULL;
        }
    }
    return h;
}

/* The host's own invariants, whatever the guest wrote. */
CHECKER static void check_host(void)
{
    static uint8_t listed[(64 * MiB) >> PAGE_SHIFT];
    unsigned long mfn;
    unsigned int i;

    FUZZ_CHECK(sim_bugs == 0);
    FUZZ_CHECK(sim_nr_frames <= sizeof(listed));
    memset(listed, 0, sim_nr_frames);
    for ( i = 0; i < SIM_MAX_DOMAINS; i++ )
    {
        const struct domain *d = sim_domains[i];
        unsigned long n = 0;
        uint32_t m;

        if ( !d )
            continue;
        for ( m = d->page_head; m != SIM_NIL; m = sim_frame_table[m].list_next )
        {
            FUZZ_CHECK(++n <= sim_nr_frames);
            FUZZ_CHECK(!listed[m]++);
            FUZZ_CHECK(sim_frame_table[m].owner == d);
        }
        FUZZ_CHECK(n == d->tot_pages);
    }
    for ( mfn = 0; mfn < sim_nr_frames; mfn++ )
    {
        const struct page_info *pg = sim_mfn_to_page(mfn);

        if ( page_state_is(pg, free) )
        {
            FUZZ_CHECK(!pg->owner && !(pg->count_info & PGC_count_mask) && !listed[mfn]);
            FUZZ_CHECK(pg->heap_bucket != SIM_NIL);
            continue;
        }
        /* In use with an owner: referenced (a frame left frozen would have count 0). */
        if ( pg->owner && pg->owner != &sim_dom_xen )
            FUZZ_CHECK((pg->count_info & PGC_count_mask) && listed[mfn]);
        if ( !pg->owner )
            FUZZ_CHECK(!(pg->count_info & PGC_count_mask));
    }
}

/* Every frame the engine has indexed is the victim's own (checked before dom0 acts). */
CHECKER static void check_indexed(struct memswap_ctx *ctx)
{
    unsigned long i, n = memswap_nr_frames(ctx);
    uint64_t prev = 0;

    for ( i = 0; i < n; i++ )
    {
        uint64_t pfn, old_mfn, new_mfn;

        FUZZ_CHECK(memswap_frame_info(ctx, i, &pfn, &old_mfn, &new_mfn) == 0);
        FUZZ_CHECK(sim_mfn_valid(old_mfn));
        FUZZ_CHECK(sim_mfn_to_page(old_mfn)->owner == victim);
        FUZZ_CHECK(!(sim_mfn_to_page(old_mfn)->count_info & (PGC_xen_heap | PGC_extra)));
        /* In pfn order, each pfn once (what the index's lookups rely on). */
        FUZZ_CHECK(pfn < memswap_nr_pfns(ctx) && (i == 0 || prev < pfn));
        prev = pfn;
    }
}

/* ---- the swap -------------------------------------------------------------- */

enum act { ACT_NONE, ACT_DECREASE, ACT_M2P, ACT_MAP, ACT_LOG_DIRTY, ACT_DYING, ACT_NR };

struct plan {
    struct sim_swap_opts opts;
    enum act act;
    unsigned int act_at;                /* continuation number */
    unsigned long act_mfn, act_pfn;
    bool acted;
};

static int run_swap(const struct memswap_request *req, struct plan *pl)
{
    struct memswap_ctx *ctx = NULL;
    unsigned int conts = 0;
    int rc;

    sim_swap_cur_opts = &pl->opts;
    sim_swap_checks = sim_swap_allocs = 0;
    rc = memswap_begin(victim, req, &ctx);
    if ( rc )
    {
        sim_swap_cur_opts = NULL;
        return rc;
    }
    sim_swap_cur_ctx = ctx;
    while ( (rc = memswap_run(ctx)) == MEMSWAP_PREEMPTED || rc == MEMSWAP_HELD )
    {
        if ( !pl->acted && memswap_phase(ctx) < MEMSWAP_PH_COMMIT )
            check_indexed(ctx);
        if ( ++conts == pl->act_at && pl->act != ACT_NONE )
        {
            pl->acted = true;
            switch ( pl->act )
            {
            case ACT_DECREASE: sim_dom0_decrease_reservation(victim->domid, pl->act_mfn); break;
            case ACT_M2P:      sim_dom0_machphys_update(victim->domid, pl->act_mfn, pl->act_pfn); break;
            case ACT_MAP:      sim_fmap_map(victim->domid, pl->act_mfn, pl->act_pfn & 1); break;
            case ACT_LOG_DIRTY: sim_domain_set_log_dirty(victim->domid, true); break;
            default:           victim->dying = true; break;
            }
        }
        if ( pl->opts.abort_after_continuations && conts >= pl->opts.abort_after_continuations )
        {
            rc = memswap_abort(ctx);
            break;
        }
    }
    if ( !pl->acted && (rc || (req->flags & MEMSWAP_F_DRY_RUN)) )
        check_indexed(ctx);
    memswap_end(ctx);
    sim_swap_cur_ctx = NULL;
    sim_swap_cur_opts = NULL;
    sim_domain_set_log_dirty(victim->domid, false);
    victim->dying = false;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = { data, size };
    struct sim_host_config hc = {
        .ram_bytes = 64 * MiB, .nr_nodes = 1 + (unsigned int)(rd(&in, 1) & 1),
        .llc = { .size_bytes = 1 * MiB, .ways = 16, .line_bytes = 64 }, .seed = 1,
    };
    struct sim_guest_config gc = {
        .name = "victim", .mem_bytes = 16 * MiB, .node = MEMSWAP_NODE_ANY, .seed = 1,
    };
    struct memswap_request req = { .node = MEMSWAP_NODE_ANY };
    struct plan pl = { .opts = { .alloc_fail_at = -1 } };
    unsigned long nr_ops, k, flags;
    uint64_t before;
    int domid, rc, audit_before;

    sim_host_destroy();
    if ( sim_host_create(&hc) )
        abort();
    flags = rd(&in, 1);
    gc.nr_vcpus = 1 + (flags & 1);
    gc.nr_address_spaces = 1 + ((flags >> 1) & 1);
    gc.with_devices = (flags >> 2) & 1;
    gc.type = (flags >> 4) % 3;
    gc.pfn_stride = (flags >> 3) & 1 && gc.type == SIM_GUEST_PV ? 2 + (unsigned int)rd(&in, 1) % 7 : 0;
    gc.seed = rd(&in, 1);
    domid = sim_domain_create(&gc);
    if ( domid < 0 )
        abort();
    victim = sim_domain_lookup((unsigned int)domid);
    FUZZ_CHECK(sim_audit(NULL, 0) == 0);

    nr_ops = rd(&in, 1) % 24;
    for ( k = 0; k < nr_ops; k++ )
        mutate(&in);

    /* The swap's options and what happens while it waits. */
    flags = rd(&in, 1);
    sim_host_geometry(&req.geom);
    req.domid = (uint32_t)domid;
    req.flags = (flags & 1 ? MEMSWAP_F_DRY_RUN : 0) | (flags & 0x20 ? MEMSWAP_F_LIVE : 0) |
                (flags & 0x40 ? MEMSWAP_F_HOLD : 0);
    req.live_max_rounds = (uint32_t)rd(&in, 1) % 8;
    if ( flags & 2 )
        req.colours[0] = rd(&in, 2) & ((1ULL << req.geom.nr_colours) - 1);
    pl.opts.preempt_every = (flags >> 2) & 1 ? 1 + (uint32_t)rd(&in, 1) % 16 : 0;
    pl.opts.alloc_fail_at = (flags >> 3) & 1 ? (int64_t)rd(&in, 2) : -1;
    pl.opts.abort_after_continuations = (flags >> 4) & 1 ? (uint32_t)rd(&in, 1) : 0;
    pl.opts.prepare_fail_nth = flags & 0x80 ? (uint32_t)rd(&in, 1) % 8 : 0;
    pl.act = (enum act)(rd(&in, 1) % ACT_NR);
    pl.act_at = 1 + (unsigned int)rd(&in, 1) % 64;
    pl.act_mfn = pick_mfn(&in);
    pl.act_pfn = rd(&in, 3);

    check_host();
    audit_before = sim_audit(NULL, 0);
    before = machine_hash();
    rc = run_swap(&req, &pl);

    FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -EAGAIN || rc == -ENOMEM || rc == -EINTR ||
               rc == -EBUSY || rc == -ENODEV || rc == -EOPNOTSUPP);
    check_host();
    if ( !pl.acted )
    {
        if ( rc || (req.flags & MEMSWAP_F_DRY_RUN) )
            FUZZ_CHECK(machine_hash() == before);
        else if ( audit_before == 0 )
            FUZZ_CHECK(sim_audit(NULL, 0) == 0);
    }
    sim_host_destroy();
    return 0;
}
