/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Reference counting and page types with Xen 4.17's x86 PV rules.
 *
 * count_info holds general references: PGC_allocated owns one, every
 * mapping (a present PTE in a validated table, a foreign or grant mapping)
 * owns one, every Xen-internal holder (guest_table, vcpu_info, GDT) owns
 * one. type_info holds the current type and type references: a page can
 * only change type when its type count is zero, which is what stops a
 * guest from having a writable mapping of one of its own page tables.
 * Page-table types are "validated" when their first type reference is
 * taken: every present entry takes the references the rules below say, and
 * they are released again (devalidation) when the last type reference goes.
 *
 *   L1 entry:       get_page(target) + PGT_writable_page type ref if _PAGE_RW
 *   L2..L4 entry:   get_page_and_type(target, next-lower level)
 *   linear entry:   (maps a table of the same level, read-only)
 *                   the table itself: nothing; another: general + type ref
 *   L4 Xen slots:   not guest entries, no references
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

struct sim_fmap *sim_fmaps;
unsigned long sim_bugs;
unsigned int sim_nr_fmaps;

static void log_get_page_failure(const struct page_info *pg, const struct domain *d)
{
    sim_log("d%uv0 Error pfn %lx: rd=%u od=%u caf=%016lx taf=%016lx",
            sim_current_domid, sim_page_to_mfn(pg), d ? d->domid : SIM_DOMID_INVALID,
            sim_owner_domid(pg), pg->count_info, pg->u.inuse.type_info);
}

/*
 * get_page(): page_get_owner_and_reference() takes the reference if the
 * count allows it (not 0, not about to wrap), then reads the owner; on a
 * mismatch the reference is dropped again. A referenced page without an
 * owner is a Xen bug (ASSERT(owner)), and get_page() would leak the
 * reference: recorded as a bug.
 */
bool sim_get_page(struct page_info *pg, struct domain *d)
{
    unsigned long x = pg->count_info, c = x & PGC_count_mask;

    /* Count 0: not allocated; -1 would wrap; -2 is get_page_light()'s. */
    if ( ((c + 2) & PGC_count_mask) <= 2 || !d )
    {
        log_get_page_failure(pg, d);
        return false;
    }
    if ( !pg->owner )
    {
        sim_log("BUG: get_page: mfn %lx referenced but has no owner (caf=%016lx)",
                sim_page_to_mfn(pg), x);
        sim_bugs++;
        log_get_page_failure(pg, d);
        return false;
    }
    if ( pg->owner != d )
    {
        log_get_page_failure(pg, d);
        return false;
    }
    pg->count_info = x + 1;
    return true;
}

void sim_put_page(struct page_info *pg)
{
    unsigned long mfn = sim_page_to_mfn(pg);
    struct domain *d = pg->owner;

    if ( !(pg->count_info & PGC_count_mask) )
    {
        /* Xen would BUG(); we record it so the audit and tests report it. */
        sim_log("BUG: put_page: mfn %lx has no references (caf=%016lx)", mfn, pg->count_info);
        sim_bugs++;
        return;
    }
    pg->count_info--;
    if ( pg->count_info & PGC_count_mask )
        return;
    /*
     * Last reference: cleanup_page_mappings() (XSA-402: a page once mapped
     * writable with a non-coherent memory type is flushed before it goes),
     * then free_domheap_page().
     */
    if ( pg->u.inuse.type_info & PGT_non_coherent )
        sim_cache_flush(mfn);
    if ( d && d != &sim_dom_xen )
        sim_page_list_del(d, mfn);
    sim_heap_free(mfn);
}

unsigned long sim_cache_flushes;

void sim_cache_flush(unsigned long mfn)
{
    sim_cache_flushes++;
    sim_log("cache flush mfn %#lx", mfn);
}

bool sim_is_pt_type(unsigned long type)
{
    type &= PGT_type_mask;
    return type >= PGT_l1_page_table && type <= PGT_l4_page_table;
}

unsigned int sim_pt_level(unsigned long type)
{
    return sim_is_pt_type(type) ? (unsigned int)((type & PGT_type_mask) >> PG_shift(3)) : 0;
}

unsigned long sim_level_type(unsigned int level)
{
    return PG_mask(level, 3);
}

static bool is_guest_l4_slot(unsigned int i)
{
    return i < SIM_XEN_L4_FIRST || i > SIM_XEN_L4_LAST;
}

/* ---- entries ------------------------------------------------------------ */

static int get_page_from_l1e(uint64_t e, struct domain *d)
{
    unsigned long mfn = sim_pte_mfn(e);
    struct page_info *pg;

    if ( !sim_mfn_valid(mfn) )
        return -EINVAL;
    pg = sim_mfn_to_page(mfn);
    if ( !sim_get_page(pg, d) )
        return -EINVAL;
    if ( (e & SIM_PTE_RW) && sim_get_page_type(pg, PGT_writable_page) )
    {
        sim_put_page(pg);
        return -EINVAL;
    }
    /*
     * As get_page_from_l1e() on a CPU without self-snoop: a writable
     * write-combining mapping may leave the cache incoherent with memory.
     */
    if ( (e & (SIM_PTE_CACHE_ATTRS | SIM_PTE_RW)) == (SIM_PTE_WC | SIM_PTE_RW) )
        pg->u.inuse.type_info |= PGT_non_coherent;
    return 0;
}

static void put_page_from_l1e(uint64_t e)
{
    struct page_info *pg = sim_mfn_to_page(sim_pte_mfn(e));

    if ( e & SIM_PTE_RW )
        sim_put_page_type(pg);
    sim_put_page(pg);
}

/* A read-only entry mapping a validated table of the same level. */
static int get_linear(uint64_t e, unsigned int level, unsigned long self, struct domain *d)
{
    unsigned long mfn = sim_pte_mfn(e);
    struct page_info *pg;
    unsigned long x;

    if ( e & SIM_PTE_RW )
        return -EINVAL;
    if ( mfn == self )
        return 0;
    pg = sim_mfn_to_page(mfn);
    if ( !sim_get_page(pg, d) )
        return -EINVAL;
    x = pg->u.inuse.type_info;
    if ( (x & PGT_count_mask) == PGT_count_mask ||
         (x & (PGT_type_mask | PGT_validated)) != (sim_level_type(level) | PGT_validated) )
    {
        sim_put_page(pg);
        return -EINVAL;
    }
    pg->u.inuse.type_info = x + 1;
    sim_mfn_to_page(self)->linear_entries++;
    return 0;
}

static int get_page_from_lne(uint64_t e, unsigned int level, unsigned long self, struct domain *d)
{
    unsigned long mfn = sim_pte_mfn(e);
    int rc;

    if ( !sim_mfn_valid(mfn) )
        return -EINVAL;
    if ( level < 4 && (e & SIM_PTE_PSE) )
        return -EINVAL;             /* no PV superpages */
    rc = sim_get_page_and_type(sim_mfn_to_page(mfn), d, sim_level_type(level - 1));
    if ( rc == -EINVAL )
        rc = get_linear(e, level, self, d);
    return rc;
}

static void put_page_from_lne(uint64_t e, unsigned int level, unsigned long self)
{
    unsigned long mfn = sim_pte_mfn(e);
    struct page_info *pg = sim_mfn_to_page(mfn);

    if ( mfn == self )
        return;
    if ( (pg->u.inuse.type_info & PGT_type_mask) == sim_level_type(level) )
        sim_mfn_to_page(self)->linear_entries--;
    sim_put_page_and_type(pg);
}

static bool entry_counts(unsigned int level, unsigned int i, uint64_t e)
{
    return (e & SIM_PTE_P) && (level != 4 || is_guest_l4_slot(i));
}

/* Release what the first @upto entries of a validated table hold. */
static void free_table_entries(unsigned long mfn, unsigned int level, unsigned int upto)
{
    const uint64_t *t = sim_map_frame(mfn);
    unsigned int i;

    for ( i = 0; i < upto; i++ )
    {
        uint64_t e = t[i];

        if ( !entry_counts(level, i, e) )
            continue;
        if ( level == 1 )
            put_page_from_l1e(e);
        else
            put_page_from_lne(e, level, mfn);
    }
}


static int alloc_page_type(struct page_info *pg, unsigned long type)
{
    unsigned long mfn = sim_page_to_mfn(pg);
    unsigned int level = sim_pt_level(type), i;
    struct domain *d = pg->owner;
    uint64_t *t = sim_map_frame(mfn);
    int rc = 0;

    if ( (type & PGT_type_mask) == PGT_seg_desc_page )
        return 0;                   /* descriptors: accepted as written */
    for ( i = 0; i < 512; i++ )
    {
        uint64_t e = t[i];

        if ( !entry_counts(level, i, e) )
            continue;
        rc = level == 1 ? get_page_from_l1e(e, d) : get_page_from_lne(e, level, mfn, d);
        if ( rc )
        {
            sim_log("d%u: bad L%u entry %u in mfn %lx: %016llx", d ? d->domid : SIM_DOMID_INVALID,
                    level, i, mfn, (unsigned long long)e);
            free_table_entries(mfn, level, i);
            return rc;
        }
    }
    if ( level == 4 )
        sim_init_xen_l4_slots(t, mfn);   /* as Xen's alloc_l4_table does */
    return 0;
}

/* ---- types -------------------------------------------------------------- */

int sim_get_page_type(struct page_info *pg, unsigned long type)
{
    unsigned long x = pg->u.inuse.type_info, cnt = x & PGT_count_mask, nx;
    int rc;

    if ( cnt == PGT_count_mask )
        return -EOVERFLOW;
    if ( cnt )
    {
        /* Type is fixed while referenced; a table being validated is busy. */
        if ( (x & PGT_type_mask) != type || !(x & PGT_validated) )
            return -EINVAL;
        pg->u.inuse.type_info = x + 1;
        return 0;
    }
    if ( (x & PGT_type_mask) == type && (x & PGT_validated) )
    {
        pg->u.inuse.type_info = x + 1;
        return 0;
    }
    /* Count is zero: the type may change; tables must be (re)validated. */
    nx = (x & ~(PGT_type_mask | PGT_validated | PGT_partial | PGT_count_mask)) | type | 1;
    /* XSA-402: its contents are about to be read as something else. */
    if ( (nx & PGT_non_coherent) && type != PGT_writable_page )
    {
        sim_cache_flush(sim_page_to_mfn(pg));
        nx &= ~PGT_non_coherent;
    }
    if ( !sim_is_pt_type(type) && type != PGT_seg_desc_page )
    {
        pg->u.inuse.type_info = nx | PGT_validated;
        return 0;
    }
    pg->u.inuse.type_info = nx;
    rc = alloc_page_type(pg, type);
    if ( rc )
    {
        pg->u.inuse.type_info &= ~(PGT_count_mask | PGT_validated);
        return rc;
    }
    pg->u.inuse.type_info |= PGT_validated;
    return 0;
}

void sim_put_page_type(struct page_info *pg)
{
    unsigned long x = pg->u.inuse.type_info;

    if ( !(x & PGT_count_mask) )
    {
        sim_log("BUG: put_page_type: mfn %lx has no type references (taf=%016lx)",
                sim_page_to_mfn(pg), x);
        sim_bugs++;
        return;
    }
    x--;
    if ( !(x & PGT_count_mask) && sim_is_pt_type(x) && (x & PGT_validated) )
    {
        /* Last type reference of a table: devalidate, releasing its refs. */
        pg->u.inuse.type_info = x & ~PGT_validated;
        free_table_entries(sim_page_to_mfn(pg), sim_pt_level(x), 512);
        return;
    }
    pg->u.inuse.type_info = x;
}

int sim_get_page_and_type(struct page_info *pg, struct domain *d, unsigned long type)
{
    int rc;

    if ( !sim_get_page(pg, d) )
        return -EINVAL;
    rc = sim_get_page_type(pg, type);
    if ( rc )
        sim_put_page(pg);
    return rc;
}

void sim_put_page_and_type(struct page_info *pg)
{
    sim_put_page_type(pg);
    sim_put_page(pg);
}

int sim_force_devalidate(struct page_info *pg)
{
    unsigned long x = pg->u.inuse.type_info;

    if ( !sim_is_pt_type(x) || !(x & PGT_validated) )
        return 0;
    pg->u.inuse.type_info = x & ~PGT_validated;
    free_table_entries(sim_page_to_mfn(pg), sim_pt_level(x), 512);
    return 1;
}

/* ---- MMUEXT / mmu_update ------------------------------------------------- */

int sim_pin_table(struct domain *d, unsigned long mfn, unsigned int level)
{
    struct page_info *pg;
    int rc;

    if ( !sim_mfn_valid(mfn) || level < 1 || level > 4 )
        return -EINVAL;
    pg = sim_mfn_to_page(mfn);
    rc = sim_get_page_and_type(pg, d, sim_level_type(level));
    if ( rc )
        return rc;
    if ( pg->u.inuse.type_info & PGT_pinned )
    {
        sim_put_page_and_type(pg);
        return -EINVAL;
    }
    pg->u.inuse.type_info |= PGT_pinned;
    return 0;
}

int sim_unpin_table(struct domain *d, unsigned long mfn)
{
    struct page_info *pg;

    if ( !sim_mfn_valid(mfn) )
        return -EINVAL;
    pg = sim_mfn_to_page(mfn);
    if ( pg->owner != d || !(pg->u.inuse.type_info & PGT_pinned) )
        return -EINVAL;
    pg->u.inuse.type_info &= ~PGT_pinned;
    sim_put_page_and_type(pg);
    return 0;
}

int sim_mmu_update(struct domain *d, uint64_t ptr, uint64_t val)
{
    unsigned long mfn = (unsigned long)(ptr >> PAGE_SHIFT);
    unsigned int idx = (unsigned int)((ptr & (PAGE_SIZE - 1)) >> 3);
    struct page_info *pg;
    unsigned long x;
    unsigned int level;
    uint64_t *t, old;
    int rc = 0;

    if ( !sim_mfn_valid(mfn) || (ptr & 7) )
        return -EINVAL;
    pg = sim_mfn_to_page(mfn);
    if ( !sim_get_page(pg, d) )
        return -EINVAL;
    t = sim_map_frame(mfn);
    x = pg->u.inuse.type_info;
    level = sim_pt_level(x);
    if ( level && (x & PGT_validated) && (x & PGT_count_mask) )
    {
        old = t[idx];
        if ( level == 4 && !is_guest_l4_slot(idx) )
            rc = -EINVAL;
        else if ( val & SIM_PTE_P )
            rc = level == 1 ? get_page_from_l1e(val, d) : get_page_from_lne(val, level, mfn, d);
        if ( !rc )
        {
            t[idx] = val;
            if ( old & SIM_PTE_P )
            {
                if ( level == 1 )
                    put_page_from_l1e(old);
                else
                    put_page_from_lne(old, level, mfn);
            }
        }
    }
    else
    {
        /* Not an in-use table: an ordinary write needs a writable type. */
        rc = sim_get_page_type(pg, PGT_writable_page);
        if ( !rc )
        {
            t[idx] = val;
            sim_put_page_type(pg);
        }
    }
    if ( !rc )
        sim_paging_mark_dirty(d, mfn);
    sim_put_page(pg);
    sim_tlb_flush(d);
    return rc;
}

int sim_set_guest_table(struct vcpu *v, unsigned long mfn, bool user)
{
    unsigned long *slot = user ? &v->guest_table_user : &v->guest_table;
    unsigned long old = *slot;

    if ( mfn != MS_INVALID_MFN )
    {
        int rc;

        if ( !sim_mfn_valid(mfn) )
            return -EINVAL;
        rc = sim_get_page_and_type(sim_mfn_to_page(mfn), v->domain, PGT_l4_page_table);
        if ( rc )
            return rc;
    }
    *slot = mfn;
    if ( old != MS_INVALID_MFN )
        sim_put_page_and_type(sim_mfn_to_page(old));
    sim_tlb_flush(v->domain);
    return 0;
}

/* ---- dom0 foreign mappings ----------------------------------------------- */

int sim_fmap_map(unsigned int domid, unsigned long mfn, bool rw)
{
    struct domain *d = sim_domain_lookup(domid);
    struct page_info *pg;
    unsigned int i;

    if ( !d )
        return -ESRCH;
    if ( !sim_mfn_valid(mfn) )
        return -EINVAL;
    pg = sim_mfn_to_page(mfn);
    sim_current_domid = 0;
    /* Like a dom0 L1 entry with FOREIGNDOM = domid: owner must be domid. */
    if ( !sim_get_page(pg, d) )
        return -EINVAL;
    if ( rw && sim_get_page_type(pg, PGT_writable_page) )
    {
        sim_put_page(pg);
        return -EINVAL;
    }
    for ( i = 0; i < sim_nr_fmaps; i++ )
        if ( !sim_fmaps[i].used )
            break;
    if ( i == sim_nr_fmaps )
    {
        unsigned int n = sim_nr_fmaps ? sim_nr_fmaps * 2 : 64;
        struct sim_fmap *nf = realloc(sim_fmaps, n * sizeof(*nf));

        if ( !nf )
        {
            if ( rw )
                sim_put_page_type(pg);
            sim_put_page(pg);
            return -ENOMEM;
        }
        memset(nf + sim_nr_fmaps, 0, (n - sim_nr_fmaps) * sizeof(*nf));
        sim_fmaps = nf;
        sim_nr_fmaps = n;
    }
    sim_fmaps[i] = (struct sim_fmap){ .domid = domid, .mfn = mfn, .rw = rw, .used = true };
    return (int)i;
}

void sim_fmap_unmap(int id)
{
    struct sim_fmap *m;

    if ( id < 0 || (unsigned int)id >= sim_nr_fmaps || !sim_fmaps[id].used )
        return;
    m = &sim_fmaps[id];
    if ( m->rw )
        sim_put_page_type(sim_mfn_to_page(m->mfn));
    sim_put_page(sim_mfn_to_page(m->mfn));
    m->used = false;
}

void *sim_fmap_ptr(int id)
{
    if ( id < 0 || (unsigned int)id >= sim_nr_fmaps || !sim_fmaps[id].used )
        return NULL;
    return sim_map_frame(sim_fmaps[id].mfn);
}

int sim_dom0_map_foreign(unsigned int domid, unsigned long mfn, bool rw)
{
    return sim_fmap_map(domid, mfn, rw);
}

void sim_dom0_unmap_foreign(int id)
{
    sim_fmap_unmap(id);
}

/* ---- dom0 acting on a guest's memory ------------------------------------- */

/* dom0 takes a reference on a frame of @domid (get_page_from_mfn()): 0 or -errno. */
static int dom0_get_frame(unsigned int domid, unsigned long mfn, struct page_info **pgp)
{
    struct domain *d = sim_domain_lookup(domid);

    if ( !d )
        return -ESRCH;
    if ( !sim_mfn_valid(mfn) )
        return -EINVAL;
    *pgp = sim_mfn_to_page(mfn);
    sim_current_domid = 0;
    return sim_get_page(*pgp, d) ? 0 : -ENXIO;
}

/*
 * XENMEM_decrease_reservation by dom0 on a PV guest (whose "gmfn" is an
 * MFN): Xen 4.17's guest_remove_page(). A reference first (fails on a frame
 * with no references or another owner: -ENXIO), then the allocation
 * reference (put_page_alloc_ref), then ours: the frame is freed if nothing
 * else holds it.
 */
int sim_dom0_decrease_reservation(unsigned int domid, unsigned long mfn)
{
    struct page_info *pg;
    int rc = dom0_get_frame(domid, mfn, &pg);

    if ( rc )
        return rc;
    if ( pg->count_info & PGC_allocated )
    {
        pg->count_info &= ~PGC_allocated;
        sim_put_page(pg);
    }
    sim_put_page(pg);
    return 0;
}

/*
 * MMU_MACHPHYS_UPDATE with FOREIGNDOM = @domid (what a guest may also do
 * for its own frames): set the M2P entry of a frame of @domid, which takes
 * a reference for the duration (-EINVAL if that fails).
 */
int sim_dom0_machphys_update(unsigned int domid, unsigned long mfn, unsigned long pfn)
{
    struct page_info *pg;
    int rc = dom0_get_frame(domid, mfn, &pg);

    if ( rc )
        return rc == -ENXIO ? -EINVAL : rc;
    sim_m2p[mfn] = pfn;
    sim_paging_mark_pfn_dirty(sim_domain_lookup(domid), pfn);
    sim_put_page(pg);
    return 0;
}
