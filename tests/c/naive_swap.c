/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The seed post's design, step by step, as its author described it:
 *
 *  S1 pause; S2 allocate; S3 new P2M 1:1 from the old one: copy RAW (WR)
 *  pages, translate PT and P2M pages entry by entry; S4 copy count and
 *  type info; S5 update pfn_to_mfn_frame_list_list, guest_table,
 *  guest_table_user and vcpu_info_mfn; S6 release the old memory with a
 *  relinquish_memory()-like loop (L4, L3, L2, then put the rest); S7 M2P;
 *  S8 assign the new pages; S9 unpause.
 *
 * Nothing else is done - no grant entries, no daemons' mappings, no
 * start_info fields, no p2m_cr3, no GDT frames, no Xen-side vcpu_info
 * mapping, no TLB flush - which is how the simulator reproduces P1-P3.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "naive_swap.h"

enum kind { K_NONE, K_WR, K_PT, K_P2M };

static unsigned long translate(const struct naive_result *r, unsigned long mfn)
{
    unsigned long pfn;

    if ( !sim_mfn_valid(mfn) )
        return mfn;
    pfn = sim_m2p[mfn];
    if ( pfn >= r->nr_pfns || r->old_mfn[pfn] != mfn )
        return mfn;
    return r->new_mfn[pfn];
}

void naive_free(struct naive_result *r)
{
    free(r->old_mfn);
    free(r->new_mfn);
    r->old_mfn = r->new_mfn = NULL;
}

int naive_swap(unsigned int domid, unsigned int world_steps, struct naive_result *r)
{
    struct domain *d = sim_domain_lookup(domid);
    struct sim_shared_info *si;
    unsigned long pfn, fll, i, j;
    uint8_t *kind;
    unsigned int v;

    memset(r, 0, sizeof(*r));
    if ( !d || d->is_dom0 )
        return -ESRCH;
    si = sim_shared_info(d);
    r->nr_pfns = (unsigned long)si->arch.max_pfn;
    r->old_mfn = malloc(r->nr_pfns * sizeof(*r->old_mfn));
    r->new_mfn = malloc(r->nr_pfns * sizeof(*r->new_mfn));
    kind = calloc(r->nr_pfns, 1);
    if ( !r->old_mfn || !r->new_mfn || !kind )
    {
        free(kind);
        naive_free(r);
        return -ENOMEM;
    }

    /* S1 */
    sim_domain_pause(domid);

    /* S2: one new frame per populated pfn of the old P2M. */
    for ( pfn = 0; pfn < r->nr_pfns; pfn++ )
    {
        uint64_t e = sim_p2m_tree_entry(d, pfn);

        r->old_mfn[pfn] = r->new_mfn[pfn] = MS_INVALID_MFN;
        if ( e == SIM_P2M_INVALID || (e & (SIM_P2M_IDENTITY | SIM_P2M_FOREIGN)) )
            continue;
        r->old_mfn[pfn] = (unsigned long)e;
        r->new_mfn[pfn] = sim_heap_alloc_any(-1, NULL, pfn);
        if ( r->new_mfn[pfn] == MS_INVALID_MFN )
            return -ENOMEM;             /* the post had no rollback either */
        kind[pfn] = sim_is_pt_type(sim_mfn_to_page((unsigned long)e)->u.inuse.type_info) ? K_PT : K_WR;
    }
    /* The P2M frames: found through pfn_to_mfn_frame_list_list. */
    fll = (unsigned long)si->arch.pfn_to_mfn_frame_list_list;
    kind[sim_m2p[fll]] = K_P2M;
    for ( i = 0; i < 512; i++ )
    {
        unsigned long mid = (unsigned long)((uint64_t *)sim_map_frame(fll))[i];

        kind[sim_m2p[mid]] = K_P2M;
        for ( j = 0; j < 512; j++ )
            kind[sim_m2p[((uint64_t *)sim_map_frame(mid))[j]]] = K_P2M;
    }

    /* S3: copy WR, translate PT and P2M entry by entry. */
    for ( pfn = 0; pfn < r->nr_pfns; pfn++ )
    {
        const uint64_t *o;
        uint64_t *n;

        if ( r->old_mfn[pfn] == MS_INVALID_MFN )
            continue;
        o = sim_map_frame(r->old_mfn[pfn]);
        n = sim_map_frame(r->new_mfn[pfn]);
        r->moved++;
        switch ( kind[pfn] )
        {
        case K_PT:
            r->pt_pages++;
            for ( i = 0; i < 512; i++ )
                n[i] = (o[i] & SIM_PTE_P) ?
                       (o[i] & ~SIM_PTE_ADDR) | ((uint64_t)translate(r, sim_pte_mfn(o[i])) << PAGE_SHIFT) : o[i];
            break;
        case K_P2M:
            r->p2m_pages++;
            for ( i = 0; i < 512; i++ )
                n[i] = (o[i] == SIM_P2M_INVALID || (o[i] & (SIM_P2M_IDENTITY | SIM_P2M_FOREIGN))) ?
                       o[i] : translate(r, (unsigned long)o[i]);
            break;
        default:
            r->wr_pages++;
            memcpy(n, o, PAGE_SIZE);
        }
    }

    /* Time passes: the rest of the machine runs while the domain is paused. */
    for ( i = 0; i < world_steps; i++ )
        sim_world_step();

    /* S4: metadata. */
    for ( pfn = 0; pfn < r->nr_pfns; pfn++ )
    {
        struct page_info *o, *n;

        if ( r->old_mfn[pfn] == MS_INVALID_MFN )
            continue;
        o = sim_mfn_to_page(r->old_mfn[pfn]);
        n = sim_mfn_to_page(r->new_mfn[pfn]);
        n->count_info = o->count_info;
        n->u.inuse.type_info = o->u.inuse.type_info;
        n->owner = d;
    }

    /* S5: the four fields the post updated. */
    si->arch.pfn_to_mfn_frame_list_list = translate(r, fll);
    for ( v = 0; v < d->nr_vcpus; v++ )
    {
        struct vcpu *vc = &d->vcpu[v];

        vc->guest_table = translate(r, vc->guest_table);
        vc->guest_table_user = translate(r, vc->guest_table_user);
        if ( vc->vcpu_info_mfn != MS_INVALID_MFN )
            vc->vcpu_info_mfn = translate(r, vc->vcpu_info_mfn);
    }

    /* S6: relinquish_memory() on the old frames: L4, L3, L2, then the rest. */
    for ( v = 4; v >= 2; v-- )
        for ( pfn = 0; pfn < r->nr_pfns; pfn++ )
        {
            struct page_info *pg;

            if ( r->old_mfn[pfn] == MS_INVALID_MFN )
                continue;
            pg = sim_mfn_to_page(r->old_mfn[pfn]);
            if ( (pg->u.inuse.type_info & PGT_type_mask) != sim_level_type(v) )
                continue;
            if ( pg->u.inuse.type_info & PGT_pinned )
            {
                pg->u.inuse.type_info &= ~PGT_pinned;
                sim_put_page_and_type(pg);
            }
            sim_force_devalidate(pg);
        }
    for ( pfn = 0; pfn < r->nr_pfns; pfn++ )
    {
        struct page_info *pg;

        if ( r->old_mfn[pfn] == MS_INVALID_MFN )
            continue;
        pg = sim_mfn_to_page(r->old_mfn[pfn]);
        if ( pg->count_info & PGC_allocated )
        {
            pg->count_info &= ~PGC_allocated;
            sim_put_page(pg);
        }
        if ( !page_state_is(pg, free) )
            r->old_not_freed++;
    }

    /* S7 */
    for ( pfn = 0; pfn < r->nr_pfns; pfn++ )
        if ( r->old_mfn[pfn] != MS_INVALID_MFN )
        {
            sim_m2p[r->old_mfn[pfn]] = INVALID_M2P_ENTRY;
            sim_m2p[r->new_mfn[pfn]] = pfn;
        }

    /* S8 */
    for ( pfn = 0; pfn < r->nr_pfns; pfn++ )
        if ( r->new_mfn[pfn] != MS_INVALID_MFN )
            sim_page_list_add(d, r->new_mfn[pfn]);

    /* S9 */
    sim_domain_unpause(domid);
    free(kind);
    return 0;
}
