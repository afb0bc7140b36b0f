/* SPDX-License-Identifier: GPL-2.0-only */
#include <string.h>
#include "sim/sim_internal.h"
#include "guest_view.h"

bool guest_owns(struct domain *d, unsigned long mfn)
{
    return mfn < sim_nr_frames && page_get_owner(sim_mfn_to_page(mfn)) == d;
}

/*
 * A page directory Xen does not know (unpinned, so typed as data) holds
 * MFNs too: recognised, as Linux builds them, by the kernel L4's kernel half.
 */
static bool pgd_shaped(struct domain *d, const uint64_t *w)
{
    const uint64_t *kl4 = sim_map_frame(d->vcpu[0].guest_table);

    return w != kl4 && memcmp(w + 273, kl4 + 273, (512 - 273) * sizeof(*w)) == 0;
}

static uint64_t canonical_word(struct domain *d, uint64_t w, bool pte)
{
    unsigned long mfn;

    if ( pte )
    {
        if ( !(w & SIM_PTE_P) )
            return w;
        mfn = sim_pte_mfn(w);
        return guest_owns(d, mfn) ? (w & ~SIM_PTE_ADDR) |
               ((uint64_t)sim_m2p_get(mfn) << PAGE_SHIFT) | (1ULL << 62) : w;
    }
    if ( w == SIM_P2M_INVALID || (w & (SIM_P2M_FOREIGN | SIM_P2M_IDENTITY)) )
        return w;
    return guest_owns(d, (unsigned long)w) ? sim_m2p_get((unsigned long)w) | (1ULL << 61) : w;
}

uint64_t guest_canonical_hash(struct domain *d, unsigned long pfn)
{
    unsigned long mfn = sim_guest_translate(d, sim_pfn_va(pfn));
    uint64_t h = 0xcbf29ce484222325ULL;
    const uint64_t *w;
    unsigned long type;
    unsigned int i;
    bool pte, p2m, l4;

    if ( mfn == MS_INVALID_MFN )
        return 0;
    w = sim_map_frame(mfn);
    /* A translated guest's memory names no frames: its bytes are its bytes. */
    if ( sim_translated(d) )
    {
        for ( i = 0; i < 512; i++ )
            h = (h ^ w[i]) * 0x100000001b3ULL;
        return h;
    }
    type = sim_mfn_to_page(mfn)->u.inuse.type_info & PGT_type_mask;
    l4 = type == PGT_l4_page_table || pgd_shaped(d, w);
    pte = sim_pt_level(type) != 0 || l4;
    p2m = d->pfn_role[pfn] == SIM_ROLE_P2M;
    for ( i = 0; i < 512; i++ )
    {
        uint64_t x = w[i];

        /* Xen's slots: regenerated on validation (stale in an unpinned pgd). */
        if ( l4 && i >= SIM_XEN_L4_FIRST && i <= SIM_XEN_L4_LAST )
            continue;
        if ( pte || p2m )
            x = canonical_word(d, x, pte);
        h = (h ^ x) * 0x100000001b3ULL;
    }
    return h;
}

/* Down the guest's own tables (kernel L4 of vCPU 0) to the L1 mapping @va. */
static unsigned long l1_of(struct domain *d, uint64_t va)
{
    unsigned long mfn = d->vcpu[0].guest_table;
    int shift;

    for ( shift = 39; shift > 12; shift -= 9 )
        mfn = sim_pte_mfn(((const uint64_t *)sim_map_frame(mfn))[(va >> shift) & 511]);
    return mfn;
}

unsigned long guest_data_pfn(struct domain *d, unsigned long from, uint64_t *pte_maddr)
{
    unsigned long pfn;

    for ( pfn = from; d->pfn_role[pfn] != SIM_ROLE_DATA; pfn++ )
        ;
    if ( pte_maddr )
        *pte_maddr = ((uint64_t)l1_of(d, sim_pfn_va(pfn)) << PAGE_SHIFT) +
                     ((sim_pfn_va(pfn) >> PAGE_SHIFT) & 511) * 8;
    return pfn;
}

unsigned long guest_user_l1(struct domain *d)
{
    return l1_of(d, SIM_GUEST_USER_VA);
}
