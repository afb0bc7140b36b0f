/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The ms_host_*() operations of core/private.h over the simulator: what
 * xen/common/memswap-glue.c does in the patched hypervisor, done on the
 * simulated frame table, vCPUs and grant tables.
 */
#include <stdlib.h>
#include <time.h>

#include "sim_internal.h"
#include "../core/private.h"

/* Until the cache model is linked in, a swap's TLB flush has nothing to tell. */
__attribute__((weak)) void sim_llc_flush_translations(unsigned int d) { (void)d; }
__attribute__((weak)) int sim_llc_init(const struct sim_llc_config *cfg) { (void)cfg; return 0; }
__attribute__((weak)) void sim_llc_fini(void) { }
__attribute__((weak)) void sim_llc_forget_domain(unsigned int d) { (void)d; }

const struct sim_swap_opts *sim_swap_cur_opts;
struct memswap_ctx *sim_swap_cur_ctx;
uint64_t sim_swap_checks, sim_swap_allocs;
uint64_t sim_swap_prepares, sim_swap_dirty_reads, sim_swap_last_yield_ns;
static int p2m_batch_depth;

/* The engine's metadata, measured here (tests compare it with what it claims). */
uint64_t sim_swap_meta_bytes, sim_swap_meta_peak;

void *ms_host_zalloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);

    if ( p && (sim_swap_meta_bytes += bytes) > sim_swap_meta_peak )
        sim_swap_meta_peak = sim_swap_meta_bytes;
    return p;
}

void ms_host_free(void *p, size_t bytes)
{
    sim_swap_meta_bytes -= bytes;
    free(p);
}

uint64_t ms_host_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* hypercall_preempt_check(): forced by the sim_swap options. */
bool ms_host_preempt_check(void)
{
    const struct sim_swap_opts *o = sim_swap_cur_opts;

    if ( !o )
        return false;
    /* A softirq pending: time's up for this continuation. */
    if ( o->preempt_ns && ms_host_now_ns() - sim_swap_last_yield_ns >= o->preempt_ns )
        return true;
    if ( !o->preempt_every )
        return false;
    if ( o->preempt_at_phase && sim_swap_cur_ctx &&
         (uint32_t)memswap_phase(sim_swap_cur_ctx) != o->preempt_at_phase )
        return false;
    return ++sim_swap_checks % o->preempt_every == 0;
}

unsigned int ms_host_domid(const struct domain *d) { return d->domid; }
unsigned long ms_host_tot_pages(const struct domain *d) { return d->tot_pages; }

void ms_host_pause(struct domain *d)
{
    d->pause_count++;
}

void ms_host_unpause(struct domain *d)
{
    /*
     * PV vCPUs scheduled in load CR3: their TLBs start empty. A translated
     * guest's translations are tagged (VPID/ASID) and survive: only the
     * engine's flushes remove stale ones.
     */
    if ( d->pause_count && !--d->pause_count && !sim_translated(d) )
        sim_tlb_flush(d);
}

bool ms_host_translated(const struct domain *d)
{
    return sim_translated(d);
}

int ms_host_check_domain(struct domain *d, unsigned int flags)
{
    /* The mutation: only the check at the start (no swap in progress yet). */
    if ( (sim_mutations & SIM_MUT_NO_RECHECK) && sim_swap_cur_ctx )
        return 0;
    if ( d->is_dom0 || d->domid == 0 )
        return -EACCES;
    if ( d->dying )
        return -ENODEV;
    if ( d->iommu || d->mem_sharing || d->mem_paging || d->altp2m )
        return -EOPNOTSUPP;
    if ( (flags & MS_CHECK_LOGDIRTY) && !sim_translated(d) && sim_cfg.no_shadow_paging )
        return -EOPNOTSUPP;
    if ( flags & MS_CHECK_LOGDIRTY_OURS )
        return d->ld_on && d->ld_engine ? 0 : -EBUSY;
    if ( d->ld_on )
        return -EBUSY;
    return 0;
}

void ms_host_p2m_info(struct domain *d, unsigned long *fll_mfn,
                      uint64_t *p2m_cr3, unsigned long *max_pfn)
{
    struct sim_shared_info *si = sim_shared_info(d);

    *fll_mfn = si ? (unsigned long)si->arch.pfn_to_mfn_frame_list_list : MS_INVALID_MFN;
    *p2m_cr3 = si ? si->arch.p2m_cr3 : 0;
    *max_pfn = si ? (unsigned long)si->arch.max_pfn : 0;
}

void ms_host_set_p2m_info(struct domain *d, unsigned long fll_mfn, uint64_t p2m_cr3)
{
    struct sim_shared_info *si = sim_shared_info(d);

    if ( !si || (sim_mutations & SIM_MUT_SKIP_P2M_INFO) )
        return;
    si->arch.pfn_to_mfn_frame_list_list = fll_mfn;
    si->arch.p2m_cr3 = p2m_cr3;
    si->arch.p2m_generation++;
}

unsigned int ms_host_max_vcpus(const struct domain *d) { return d->nr_vcpus; }

struct vcpu *ms_host_vcpu(struct domain *d, unsigned int i)
{
    return i < d->nr_vcpus ? &d->vcpu[i] : NULL;
}

unsigned long ms_host_vcpu_guest_table(const struct vcpu *v) { return v->guest_table; }
unsigned long ms_host_vcpu_guest_table_user(const struct vcpu *v) { return v->guest_table_user; }
unsigned long ms_host_vcpu_info_mfn(const struct vcpu *v) { return v->vcpu_info_mfn; }

unsigned int ms_host_vcpu_gdt_frames(const struct vcpu *v, unsigned long *mfns, unsigned int max)
{
    unsigned int i;

    for ( i = 0; i < v->nr_gdt_frames && i < max; i++ )
        mfns[i] = v->gdt_frames[i];
    return i;
}

void ms_host_vcpu_set_guest_tables(struct vcpu *v, unsigned long kernel_mfn, unsigned long user_mfn)
{
    v->guest_table = kernel_mfn;
    if ( !(sim_mutations & SIM_MUT_SKIP_GUEST_TABLE_USER) )
        v->guest_table_user = user_mfn;
}

void ms_host_vcpu_move_vcpu_info(struct vcpu *v, unsigned long old_mfn, unsigned long new_mfn)
{
    struct sim_vcpu_info *nvi = (struct sim_vcpu_info *)
        ((unsigned char *)sim_map_frame(new_mfn) + v->vcpu_info_offset);

    if ( !(sim_mutations & SIM_MUT_SKIP_VCPU_INFO_RECOPY) )
    {
        /* Xen may have written the old copy after the engine copied it. */
        memcpy(nvi, (unsigned char *)sim_map_frame(old_mfn) + v->vcpu_info_offset, sizeof(*nvi));
        nvi->evtchn_pending_sel = ~0ULL;
        nvi->evtchn_upcall_pending = 1;
    }
    v->vcpu_info_mfn = new_mfn;
    if ( !(sim_mutations & SIM_MUT_VCPU_INFO_MAP_STALE) )
        v->vcpu_info_map_mfn = new_mfn; /* Xen's global mapping follows */
}

void ms_host_vcpu_set_gdt_frame(struct vcpu *v, unsigned int i, unsigned long new_mfn)
{
    if ( i < v->nr_gdt_frames && !(sim_mutations & SIM_MUT_SKIP_GDT) )
        v->gdt_frames[i] = new_mfn;
}

void ms_host_grant_frames(struct domain *d, void (*fn)(void *arg, unsigned long mfn), void *arg)
{
    uint32_t gref;

    for ( gref = 0; gref < SIM_NR_GRANTS; gref++ )
    {
        struct sim_grant_entry_v1 *e = sim_gnt_entry(d, gref);
        struct sim_grant_active *act = &d->gnt_active[gref];

        /* A translated guest's entry names a gfn: only a pin holds a frame. */
        if ( e && (e->flags & SIM_GTF_permit_access) && !sim_translated(d) )
            fn(arg, e->frame);
        if ( act->pin_rw || act->pin_ro )
            fn(arg, act->frame);
    }
}

void ms_host_xen_mapped_frames(struct domain *d, void (*fn)(void *arg, unsigned long mfn),
                               void *arg)
{
    unsigned int v;

    for ( v = 0; v < d->nr_vcpus; v++ )
        if ( d->fifo_cb_mfn[v] != MS_INVALID_MFN )
            fn(arg, d->fifo_cb_mfn[v]);
    if ( d->fifo_array_mfn != MS_INVALID_MFN )
        fn(arg, d->fifo_array_mfn);
}

bool ms_host_is_guest_l4_slot(const struct domain *d, unsigned int i)
{
    (void)d;
    return i < SIM_XEN_L4_FIRST || i > SIM_XEN_L4_LAST;
}

void ms_host_init_xen_l4_slots(struct domain *d, ms_pte_t *l4, unsigned long l4_mfn)
{
    (void)d;
    sim_init_xen_l4_slots(l4, l4_mfn);
}

static int req_node(const struct memswap_request *req)
{
    return req->node == MEMSWAP_NODE_ANY ? -1 : (int)req->node;
}

unsigned long ms_host_free_frames(struct domain *d, const struct memswap_request *req)
{
    (void)d;
    if ( req->node != MEMSWAP_NODE_ANY && req->node >= sim_host_nr_nodes() )
        return 0;
    return sim_host_free_frames(req_node(req), req->colours);
}

static uint16_t alloc_colours[MEMSWAP_MAX_COLOURS];
static unsigned int alloc_nr_colours;

unsigned long ms_host_alloc_frame(struct domain *d, const struct memswap_request *req, unsigned long pfn)
{
    const struct sim_swap_opts *o = sim_swap_cur_opts;
    uint64_t n = sim_swap_allocs++;

    (void)d;
    if ( o && o->alloc_fail_at >= 0 && n == (uint64_t)o->alloc_fail_at )
        return MS_INVALID_MFN;
    if ( req->node != MEMSWAP_NODE_ANY && req->node >= sim_host_nr_nodes() )
        return MS_INVALID_MFN;
    /*
     * The allowed colours are listed once per swap (sim_swap_allocs restarts
     * at 0 with each one): the engine asks for every frame with the same
     * request, and sorting it out each time would cost more than the pop.
     */
    if ( n == 0 || !alloc_nr_colours )
    {
        unsigned int c;

        alloc_nr_colours = 0;
        for ( c = 0; c < req->geom.nr_colours && c < MEMSWAP_MAX_COLOURS; c++ )
            if ( memswap_colour_allowed(req, c) )
                alloc_colours[alloc_nr_colours++] = (uint16_t)c;
    }
    return sim_heap_alloc_from(req_node(req), alloc_colours, alloc_nr_colours, pfn);
}

void ms_host_free_frame(unsigned long mfn)
{
    if ( sim_mfn_valid(mfn) )
        sim_heap_free(mfn);
}

bool ms_host_get_frame(struct domain *d, unsigned long mfn)
{
    return sim_get_page(sim_mfn_to_page(mfn), d);
}

void ms_host_put_frame(unsigned long mfn)
{
    sim_put_page(sim_mfn_to_page(mfn));
}

/* steal_page()'s cmpxchg: the sim is single-threaded, so compare and store. */
bool ms_host_freeze_frame(struct domain *d, unsigned long mfn, unsigned long count)
{
    struct page_info *pg = sim_mfn_to_page(mfn);
    unsigned long x = pg->count_info;

    if ( pg->owner != d || (x & (PGC_count_mask | PGC_allocated)) != (count | PGC_allocated) )
        return false;
    if ( !(sim_mutations & SIM_MUT_FREEZE_KEEPS_COUNT) )
        pg->count_info = x & ~(PGC_count_mask | PGC_allocated);
    return true;
}

void ms_host_thaw_frame(struct domain *d, unsigned long mfn, unsigned long count)
{
    struct page_info *pg = sim_mfn_to_page(mfn);

    (void)d;
    pg->count_info = (pg->count_info & ~(PGC_count_mask | PGC_allocated)) | PGC_allocated | count;
}

void ms_host_transfer_frame(struct domain *d, unsigned long old_mfn, unsigned long new_mfn)
{
    struct page_info *o = sim_mfn_to_page(old_mfn), *n = sim_mfn_to_page(new_mfn);
    const unsigned long flags = PGC_page_table;

    sim_page_list_replace(d, old_mfn, new_mfn);
    n->owner = d;
    /* Frozen, as the old one: the engine thaws it with the count. */
    n->count_info = (o->count_info & flags) | PGC_state_inuse;
    n->u.inuse.type_info = o->u.inuse.type_info;
    n->heap_bucket = SIM_NIL;
    n->linear_entries = o->linear_entries;
    o->owner = NULL;
    o->count_info &= ~flags;
    o->u.inuse.type_info &= PGT_non_coherent;
    o->linear_entries = 0;
}

void ms_host_release_frame(unsigned long mfn)
{
    if ( sim_mfn_valid(mfn) )
        sim_heap_free(mfn);
}

void ms_host_flush_cache(unsigned long mfn)
{
    sim_cache_flush(mfn);
}

void ms_host_flush_tlbs(struct domain *d)
{
    if ( sim_mutations & SIM_MUT_SKIP_TLB_FLUSH )
        return;
    sim_tlb_flush(d);
    sim_llc_flush_translations(d->domid);
}

/* ---- translated guests: Xen's p2m ------------------------------------------- */

unsigned long ms_host_p2m_size(struct domain *d)
{
    return sim_translated(d) ? d->p2m_size : 0;
}

void ms_host_p2m_lookup(struct domain *d, unsigned long gfn, unsigned int nr,
                        unsigned long *mfns, uint8_t *types)
{
    unsigned int k;

    for ( k = 0; k < nr; k++, gfn++ )
    {
        uint8_t t = gfn < d->p2m_size ? d->p2m_type[gfn] : SIM_P2MT_NONE;

        mfns[k] = t == SIM_P2MT_NONE ? MS_INVALID_MFN : d->p2m_mfn[gfn];
        switch ( t )
        {
        case SIM_P2MT_RAM_RW:
        case SIM_P2MT_RAM_LOGDIRTY: types[k] = MS_P2MT_RAM; break;
        case SIM_P2MT_RAM_RO:       types[k] = MS_P2MT_RAM_RO; break;
        case SIM_P2MT_MMIO:         types[k] = MS_P2MT_MMIO; break;
        case SIM_P2MT_IOREQ:        types[k] = MS_P2MT_IOREQ; break;
        default:                    types[k] = MS_P2MT_NONE; break;
        }
    }
}

/* The simulated p2m has no superpages: nothing to split, but it can fail. */
int ms_host_p2m_prepare(struct domain *d, unsigned long gfn, unsigned int nr)
{
    const struct sim_swap_opts *o = sim_swap_cur_opts;

    (void)d;
    (void)gfn;
    (void)nr;
    if ( o && o->prepare_fail_nth && ++sim_swap_prepares == o->prepare_fail_nth )
        return -ENOMEM;
    return 0;
}

void ms_host_p2m_batch_begin(struct domain *d)
{
    (void)d;
    if ( p2m_batch_depth++ )
    {
        sim_log("BUG: nested p2m batch");
        sim_bugs++;
    }
}

void ms_host_p2m_batch_end(struct domain *d)
{
    if ( !p2m_batch_depth-- )
    {
        sim_log("BUG: p2m batch ended twice");
        sim_bugs++;
    }
    if ( sim_mutations & SIM_MUT_SKIP_TLB_FLUSH )
        return;
    sim_tlb_flush(d);
    sim_llc_flush_translations(d->domid);
}

int ms_host_p2m_replace(struct domain *d, unsigned long gfn, unsigned long old_mfn,
                        unsigned long new_mfn, bool if_clean)
{
    uint8_t t;

    if ( !p2m_batch_depth )
    {
        sim_log("BUG: p2m replace outside a batch");
        sim_bugs++;
    }
    if ( gfn >= d->p2m_size || d->p2m_mfn[gfn] != old_mfn )
        return -ENOENT;
    t = d->p2m_type[gfn];
    if ( t != SIM_P2MT_RAM_RW && t != SIM_P2MT_RAM_LOGDIRTY && t != SIM_P2MT_RAM_RO )
        return -ENOENT;
    /* Written since the last read of the log: its bit, or (HAP) its type. */
    if ( if_clean && !(sim_mutations & SIM_MUT_CLEAN_LIES) &&
         (!d->ld_on || t == SIM_P2MT_RAM_RW ||
          ((d->ld_bitmap[gfn / 64] >> (gfn % 64)) & 1)) )
        return -EAGAIN;
    d->p2m_mfn[gfn] = new_mfn;
    return 0;
}

/* ---- log-dirty ------------------------------------------------------------------- */

int ms_host_logdirty_enable(struct domain *d)
{
    return sim_logdirty_enable(d, true);
}

void ms_host_logdirty_disable(struct domain *d)
{
    if ( d->ld_engine )
        sim_logdirty_disable(d);
}

long ms_host_logdirty_read(struct domain *d, unsigned long first, unsigned long nr,
                           uint64_t *bitmap, bool clear)
{
    const struct sim_swap_opts *o = sim_swap_cur_opts;
    unsigned long w, pfn, words = nr / 64;
    long n = 0;

    if ( !d->ld_on || (first % 64) || (nr % 64) || nr > MS_LOGDIRTY_CHUNK )
        return -EINVAL;
    if ( o && o->logdirty_read_fail_nth && ++sim_swap_dirty_reads == o->logdirty_read_fail_nth )
        return -EINVAL;
    for ( w = 0; w < words; w++ )
    {
        unsigned long idx = first / 64 + w;
        uint64_t bits = idx < (d->p2m_size + 63) / 64 ? d->ld_bitmap[idx] : 0;

        /* The mutation: the log loses what it holds. */
        bitmap[w] = sim_mutations & SIM_MUT_LOGDIRTY_BLIND ? 0 : bits;
        n += __builtin_popcountll(bitmap[w]);
        if ( !clear || !bits )
            continue;
        d->ld_bitmap[idx] = 0;
        /* HAP: what was written is write-protected again. */
        for ( pfn = idx * 64; sim_translated(d) && bits; bits &= bits - 1 )
        {
            unsigned long gfn = pfn + (unsigned long)__builtin_ctzll(bits);

            if ( d->p2m_type[gfn] == SIM_P2MT_RAM_RW )
                d->p2m_type[gfn] = SIM_P2MT_RAM_LOGDIRTY;
        }
    }
    /* Before returning: no writable translation of a cleaned page remains. */
    if ( clear )
        sim_tlb_flush(d);
    return n;
}

unsigned int ms_host_mfn_node(unsigned long mfn)
{
    return sim_mfn_node(mfn);
}
