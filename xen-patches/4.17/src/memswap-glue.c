/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memswap glue: the Xen 4.17 (x86: 64-bit PV, and HVM/PVH with HAP) side
 * of core/private.h, and XEN_DOMCTL_memswap.
 *
 * The swap engine (core/memswap.c, copied next to this file) decides what
 * moves and in which order; this file gives it Xen: pausing, the guest's P2M
 * registration in shared_info (PV), the vCPUs' MFN holders (guest_table and
 * guest_table_user, the vcpu_info mapping, GDT frames and their per-domain
 * mappings), the grant table, the frames Xen keeps mapped for the guest,
 * Xen's L4 slots, colour- and node-aware frame allocation, freezing old
 * frames, the count/type transfer and TLB flushes. The translated guest's
 * p2m and the log-dirty mode are arch/x86/mm/memswap.c's (where the p2m and
 * paging locks are), adapted here to the engine's types. It also runs the
 * domctl: OP_SWAP (memswap_run() until done, held, or a hypercall
 * continuation when the engine yields), OP_QUERY and OP_CANCEL.
 *
 * Locking: do_domctl() holds domctl_lock and an RCU reference on the domain
 * around every call into this file, so two memswap calls never run at once;
 * between continuations (and while a swap is held) d->memswap and
 * d->memswap_host keep the state, and domain_kill() (also under
 * domctl_lock) cleans up through memswap_domain_destroy(). Page list
 * changes take d->page_alloc_lock; the grant scan runs under the grant
 * table's read lock (common/grant_table.c), the FIFO scan under
 * d->event_lock (common/event_fifo.c).
 *
 * Continuation protocol: a new request has u.memswap.resume == 0. When the
 * engine yields we write a per-swap token (random high half, sequence low
 * half) into the caller's resume field and create a continuation; re-entry
 * with the token resumes, anything else while a swap is in progress or
 * held gets -EBUSY. A held swap returns 0 with the token in resume; the
 * same request with that token finishes it. On completion resume is reset
 * to 0 and the outputs are copied back.
 */

#include <xen/domain_page.h>
#include <xen/errno.h>
#include <xen/event.h>
#include <xen/guest_access.h>
#include <xen/hypercall.h>
#include <xen/iommu.h>
#include <xen/ioreq.h>
#include <xen/lib.h>
#include <xen/memswap.h>
#include <xen/mm.h>
#include <xen/nodemask.h>
#include <xen/numa.h>
#include <xen/paging.h>
#include <xen/random.h>
#include <xen/sched.h>
#include <xen/shared.h>
#include <xen/time.h>
#include <xen/vmap.h>
#include <xen/xmalloc.h>
#include <asm/altp2m.h>
#include <asm/cache.h>
#include <asm/flushtlb.h>
#include <asm/mem_paging.h>
#include <asm/mem_sharing.h>
#include <asm/page.h>
#include <asm/pv/mm.h>
#include <asm/vpmu.h>
#include <asm/hvm/nestedhvm.h>
#include <public/domctl.h>

#include "memswap.h"
#include "private.h"

/* Allocation: order-9 chunks (2 MiB), split into frames by colour. */
#define MSH_CHUNK_ORDER     9
/* Refills tried for one colour before any allowed colour will do. */
#define MSH_REFILL_TRIES    8
/* Frames of chunks with no allowed colour, held so they don't come back. */
#define MSH_MAX_HELD        (64UL << MSH_CHUNK_ORDER)

/* OP_QUERY: node_counts entries at most (the rest of a larger array is zeroed). */
#define MSH_QUERY_MAX_NODES 1024

/* The glue's per-swap state: d->memswap_host. */
struct memswap_host {
    uint64_t token;                     /* continuation/hold token, never 0 */
    bool cancelling;                    /* OP_CANCEL or domain_kill() took it over */
    bool paused;                        /* we hold a domain_pause() */
    bool p2m_paused;                    /* a p2m batch holds a pause (Intel PML) */
    bool order0;                        /* order-9 chunks failed: frame by frame */
    bool drained;                       /* pool returned, nothing more to do */
    unsigned int memflags;              /* node (exact) or the domain's affinity */
    unsigned int nr_allowed;
    uint16_t allowed[MEMSWAP_MAX_COLOURS];          /* ascending */
    struct page_list_head pool[MEMSWAP_MAX_COLOURS]; /* free target frames */
    unsigned long nr_pooled;
    struct page_list_head held;         /* frames of no allowed colour */
    unsigned long nr_held;
};

/* ------------------------------------------------------------------------
 * Memory, time, preemption, domain facts.
 */

void *ms_host_zalloc(size_t bytes)
{
    return bytes <= PAGE_SIZE ? xzalloc_bytes(bytes) : vzalloc(bytes);
}

void ms_host_free(void *p, size_t bytes)
{
    if ( bytes <= PAGE_SIZE )
        xfree(p);
    else
        vfree(p);
}

uint64_t ms_host_now_ns(void)
{
    return NOW();
}

bool ms_host_preempt_check(void)
{
    return hypercall_preempt_check();
}

unsigned int ms_host_domid(const struct domain *d)
{
    return d->domain_id;
}

unsigned long ms_host_tot_pages(const struct domain *d)
{
    return domain_tot_pages(d);
}

bool ms_host_translated(const struct domain *d)
{
    return paging_mode_translate(d);
}

/*
 * A translated guest memswap cannot swap: without HAP (shadow-paged HVM:
 * its p2m is not what the hardware walks), nested (the nested p2ms cache
 * host frames), or with memory sharing, paging or alternate p2ms (frames
 * shared between domains or p2ms, or absent).
 */
static bool msh_translated_unsupported(const struct domain *d)
{
#ifdef CONFIG_HVM
    return !hap_enabled(d) || nestedhvm_enabled(d) || mem_sharing_enabled(d) ||
           mem_paging_enabled(d) || altp2m_active(d);
#else
    return true;
#endif
}

int ms_host_check_domain(struct domain *d, unsigned int flags)
{
    if ( is_control_domain(d) || is_hardware_domain(d) || !d->domain_id )
        return -EACCES;
    if ( d == current->domain )
        return -EDEADLK;
    if ( d->is_dying )
        return -ENODEV;
    if ( is_pv_domain(d) ? is_pv_32bit_domain(d) : msh_translated_unsupported(d) )
        return -EOPNOTSUPP;
    /*
     * With an IOMMU, a domain's memory is DMA-mapped by frame (PV: its
     * writable frames; HAP: the IOMMU may share the p2m's tables): a
     * device would keep using the old frames.
     */
    if ( is_iommu_enabled(d) )
        return -EOPNOTSUPP;
    if ( (flags & MS_CHECK_LOGDIRTY) && !memswap_log_dirty_possible(d) )
        return -EOPNOTSUPP;
    /* Ours must still be on: someone turning it off made the log useless. */
    if ( flags & MS_CHECK_LOGDIRTY_OURS )
        return memswap_owns_log_dirty(d) && paging_mode_log_dirty(d) ? 0 : -EBUSY;
    /* A save, a live migration, VRAM tracking, or (PV) a shadow mode. */
    if ( memswap_log_dirty_busy(d) )
        return -EBUSY;
    return 0;
}

/*
 * Pause once per swap (the engine calls us once; the flag guards against a
 * repeat across continuations and lets domain destruction undo it).
 */
void ms_host_pause(struct domain *d)
{
    struct memswap_host *h = d->memswap_host;
    struct vcpu *v;
    bool flush = false;

    if ( !h || h->paused )
        return;
    domain_pause(d);
    h->paused = true;
    if ( !is_pv_domain(d) )
        return;

    /*
     * The LDT shadow mappings hold type references on guest frames. They
     * are a cache, rebuilt on the next LDT access fault: drop them so the
     * frames are accounted for (and movable). domain_pause() synced the
     * vCPUs' state, as pv_destroy_ldt() wants.
     */
    for_each_vcpu ( d, v )
        flush |= pv_destroy_ldt(v);
    if ( flush )
        flush_tlb_mask(d->dirty_cpumask);
}

void ms_host_unpause(struct domain *d)
{
    struct memswap_host *h = d->memswap_host;

    if ( !h || !h->paused )
        return;
    h->paused = false;
    domain_unpause(d);
}

/* ------------------------------------------------------------------------
 * The guest's P2M registration (64-bit PV only: native shared_info).
 */

static struct arch_shared_info *msh_arch_shared(struct domain *d)
{
#ifdef CONFIG_COMPAT
    return &d->shared_info->native.arch;
#else
    return &d->shared_info->arch;
#endif
}

void ms_host_p2m_info(struct domain *d, unsigned long *fll_mfn,
                      uint64_t *p2m_cr3, unsigned long *max_pfn)
{
    const struct arch_shared_info *a = msh_arch_shared(d);

    *fll_mfn = ACCESS_ONCE(a->pfn_to_mfn_frame_list_list);
    *p2m_cr3 = ACCESS_ONCE(a->p2m_cr3);
    *max_pfn = ACCESS_ONCE(a->max_pfn);
}

void ms_host_set_p2m_info(struct domain *d, unsigned long fll_mfn,
                          uint64_t p2m_cr3)
{
    struct arch_shared_info *a = msh_arch_shared(d);

    write_atomic(&a->pfn_to_mfn_frame_list_list, fll_mfn);
    write_atomic(&a->p2m_cr3, p2m_cr3);
    /*
     * Tell readers of the P2M (the toolstack's save/migration code re-reads
     * when it changes) that every entry changed. +2 keeps the guest's
     * "update in progress" parity.
     */
    write_atomic(&a->p2m_generation, ACCESS_ONCE(a->p2m_generation) + 2);
}

/* ------------------------------------------------------------------------
 * vCPUs and the MFNs they hold.
 */

unsigned int ms_host_max_vcpus(const struct domain *d)
{
    return d->max_vcpus;
}

struct vcpu *ms_host_vcpu(struct domain *d, unsigned int i)
{
    return i < d->max_vcpus ? d->vcpu[i] : NULL;
}

static unsigned long msh_pagetable_mfn(pagetable_t pt)
{
    return pagetable_is_null(pt) ? MS_INVALID_MFN : mfn_x(pagetable_get_mfn(pt));
}

/* A translated guest's vCPU holds no guest frame as a page-table root. */
unsigned long ms_host_vcpu_guest_table(const struct vcpu *v)
{
    return is_pv_vcpu(v) ? msh_pagetable_mfn(v->arch.guest_table)
                         : MS_INVALID_MFN;
}

unsigned long ms_host_vcpu_guest_table_user(const struct vcpu *v)
{
    return is_pv_vcpu(v) ? msh_pagetable_mfn(v->arch.guest_table_user)
                         : MS_INVALID_MFN;
}

unsigned long ms_host_vcpu_info_mfn(const struct vcpu *v)
{
    return mfn_eq(v->vcpu_info_mfn, INVALID_MFN) ? MS_INVALID_MFN
                                                 : mfn_x(v->vcpu_info_mfn);
}

unsigned int ms_host_vcpu_gdt_frames(const struct vcpu *v, unsigned long *mfns,
                                     unsigned int max)
{
    unsigned int i, n;

    /* v->arch.pv is a PV vCPU's only: a translated guest's GDT is in gfns. */
    if ( !is_pv_vcpu(v) )
        return 0;
    n = DIV_ROUND_UP(v->arch.pv.gdt_ents, 512);
    n = min(n, min(max, (unsigned int)FIRST_RESERVED_GDT_PAGE));
    for ( i = 0; i < n; i++ )
        mfns[i] = v->arch.pv.gdt_frames[i];
    return n;
}

/* Domain paused: the new tables take effect when the vCPU next runs. */
void ms_host_vcpu_set_guest_tables(struct vcpu *v, unsigned long kernel_mfn,
                                   unsigned long user_mfn)
{
    bool changed = false;

    ASSERT(is_pv_vcpu(v));
    if ( kernel_mfn != MS_INVALID_MFN &&
         kernel_mfn != msh_pagetable_mfn(v->arch.guest_table) )
    {
        v->arch.guest_table = pagetable_from_mfn(_mfn(kernel_mfn));
        changed = true;
    }
    if ( user_mfn != MS_INVALID_MFN &&
         user_mfn != msh_pagetable_mfn(v->arch.guest_table_user) )
    {
        v->arch.guest_table_user = pagetable_from_mfn(_mfn(user_mfn));
        changed = true;
    }
    /* Recompute v->arch.cr3 (kernel or user table, PCID bits). */
    if ( changed )
        update_cr3(v);
}

/*
 * As map_vcpu_info() does: map the new frame globally, copy the vcpu_info
 * again (Xen may have written the old one since the copy phase, through
 * this mapping, unlogged), switch v->vcpu_info, unmap the old frame and
 * mark every event pending. The same for both kinds: a translated guest
 * registers it by gfn, and the engine has replaced the gfn's p2m entry
 * already; the references moved with the frame's counts.
 */
void ms_host_vcpu_move_vcpu_info(struct vcpu *v, unsigned long old_mfn,
                                 unsigned long new_mfn)
{
    unsigned long offset = (unsigned long)v->vcpu_info & ~PAGE_MASK;
    void *old_map = (void *)((unsigned long)v->vcpu_info & PAGE_MASK);
    void *new_map;

    ASSERT(mfn_x(v->vcpu_info_mfn) == old_mfn);

    new_map = __map_domain_page_global(mfn_to_page(_mfn(new_mfn)));
    if ( new_map )
    {
        vcpu_info_t *new_info = new_map + offset;

        memcpy(new_info, v->vcpu_info, sizeof(*new_info));
        v->vcpu_info = new_info;
        v->vcpu_info_mfn = _mfn(new_mfn);
        /* Set the new vcpu_info pointer before dropping the old mapping. */
        smp_wmb();
        unmap_domain_page_global(old_map);
    }
    else
    {
        /*
         * No global mapping space left. The commit cannot fail, so keep the
         * virtual address and re-point its (4k, existing) PTE instead.
         */
        void *p = map_domain_page(_mfn(new_mfn));

        memcpy(p + offset, v->vcpu_info, sizeof(vcpu_info_t));
        unmap_domain_page(p);
        if ( map_pages_to_xen((unsigned long)old_map, _mfn(new_mfn), 1,
                              __PAGE_HYPERVISOR_RW) )
        {
            /* Cannot happen for an existing 4k mapping; never go on blind. */
            gprintk(XENLOG_ERR, "memswap: %pv: cannot re-map vcpu_info\n", v);
            domain_crash(v->domain);
        }
        flush_tlb_one_all(old_map);
        v->vcpu_info_mfn = _mfn(new_mfn);
        smp_wmb();
    }

    /* Mark everything pending: the guest rescans, spurious events are fine. */
#ifdef CONFIG_COMPAT
    if ( !has_32bit_shinfo(v->domain) )
        write_atomic(&v->vcpu_info->native.evtchn_pending_sel, ~0);
    else
#endif
        write_atomic(&vcpu_info(v, evtchn_pending_sel), ~0);
    vcpu_mark_events_pending(v);
}

/* The GDT frame list and the per-vCPU GDT mapping in the per-domain area. */
void ms_host_vcpu_set_gdt_frame(struct vcpu *v, unsigned int i,
                                unsigned long new_mfn)
{
    l1_pgentry_t *pl1e = pv_gdt_ptes(v);

    ASSERT(is_pv_vcpu(v));
    ASSERT(i < FIRST_RESERVED_GDT_PAGE);
    v->arch.pv.gdt_frames[i] = new_mfn;
    l1e_write(&pl1e[i], l1e_from_pfn(new_mfn, __PAGE_HYPERVISOR_RW));
}

/* ------------------------------------------------------------------------
 * Grants, what Xen keeps mapped, Xen's L4 slots.
 */

void ms_host_grant_frames(struct domain *d,
                          void (*fn)(void *arg, unsigned long mfn), void *arg)
{
    gnttab_memswap_frames(d, fn, arg);
}

/*
 * Frames Xen maps globally for the guest and writes at any time, unlogged,
 * other than vcpu_info: FIFO event-channel pages (under d->event_lock), the
 * vPMU page of each vCPU (under its vpmu_lock) and the pages of ioreq
 * servers (under the ioreq server lock, taken alone: ioreq code takes
 * d->event_lock inside it). Each holds a reference, so the engine would
 * keep them anyway; this names the reason.
 */
void ms_host_xen_mapped_frames(struct domain *d,
                               void (*fn)(void *arg, unsigned long mfn), void *arg)
{
    struct vcpu *v;

    evtchn_fifo_memswap_frames(d, fn, arg);

    for_each_vcpu ( d, v )
    {
        struct vpmu_struct *vpmu = vcpu_vpmu(v);

        spin_lock(&vpmu->vpmu_lock);
        if ( vpmu->xenpmu_data )
            fn(arg, mfn_x(domain_page_map_to_mfn(vpmu->xenpmu_data)));
        spin_unlock(&vpmu->vpmu_lock);
    }

#ifdef CONFIG_IOREQ_SERVER
    /* Only an HVM domain's ioreq state is set up (hvm_domain_initialise()). */
    if ( is_hvm_domain(d) )
    {
        unsigned int i;

        spin_lock_recursive(&d->ioreq_server.lock);
        for ( i = 0; i < MAX_NR_IOREQ_SERVERS; i++ )
        {
            const struct ioreq_server *s = d->ioreq_server.server[i];

            if ( !s )
                continue;
            if ( s->ioreq.page )
                fn(arg, mfn_x(page_to_mfn(s->ioreq.page)));
            if ( s->bufioreq.page )
                fn(arg, mfn_x(page_to_mfn(s->bufioreq.page)));
        }
        spin_unlock_recursive(&d->ioreq_server.lock);
    }
#endif
}

bool ms_host_is_guest_l4_slot(const struct domain *d, unsigned int i)
{
    return is_guest_l4_slot(d, i);
}

/*
 * As promote_l4_table() writes them. The RO M2P slot also depends on how
 * the table has been used since (fill_ro_mpt()/zap_ro_mpt()): the commit
 * copies it from the old L4, see ms_host_transfer_frame().
 */
void ms_host_init_xen_l4_slots(struct domain *d, ms_pte_t *l4,
                               unsigned long l4_mfn)
{
    BUILD_BUG_ON(sizeof(ms_pte_t) != sizeof(l4_pgentry_t));
    init_xen_l4_slots((l4_pgentry_t *)l4, _mfn(l4_mfn), d, INVALID_MFN,
                      VM_ASSIST(d, m2p_strict));
}

/* ------------------------------------------------------------------------
 * The translated guest's p2m (arch/x86/mm/memswap.c), in the engine's terms.
 */

#ifdef CONFIG_HVM
static uint8_t msh_p2m_kind(p2m_type_t t)
{
    switch ( t )
    {
    case p2m_ram_rw:
    case p2m_ram_logdirty:      return MS_P2MT_RAM;
    case p2m_ram_ro:            return MS_P2MT_RAM_RO;
    case p2m_grant_map_rw:
    case p2m_grant_map_ro:      return MS_P2MT_GRANT;
    case p2m_map_foreign:       return MS_P2MT_FOREIGN;
    /* p2m_mmio_dm is also what a hole reads as: it has no frame. */
    case p2m_mmio_direct:       return MS_P2MT_MMIO;
    case p2m_ioreq_server:      return MS_P2MT_IOREQ;
    case p2m_ram_shared:        return MS_P2MT_SHARED;
    case p2m_ram_paging_out:
    case p2m_ram_paged:
    case p2m_ram_paging_in:     return MS_P2MT_PAGED;
    case p2m_ram_broken:        return MS_P2MT_BROKEN;
    default:                    return MS_P2MT_NONE;
    }
}
#endif

unsigned long ms_host_p2m_size(struct domain *d)
{
#ifdef CONFIG_HVM
    return paging_mode_translate(d) ? memswap_p2m_size(d) : 0;
#else
    return 0;
#endif
}

void ms_host_p2m_lookup(struct domain *d, unsigned long gfn, unsigned int nr,
                        unsigned long *mfns, uint8_t *types)
{
#ifdef CONFIG_HVM
    /* A small batch at a time: the stack is small, the lock short. */
    mfn_t m[64];
    p2m_type_t t[64];
    unsigned int i, k, n;

    ASSERT(nr <= MS_P2M_LOOKUP_MAX && paging_mode_translate(d));
    for ( i = 0; i < nr; i += n )
    {
        n = min(nr - i, (unsigned int)ARRAY_SIZE(m));
        memswap_p2m_lookup(d, gfn + i, n, m, t);
        for ( k = 0; k < n; k++ )
        {
            types[i + k] = msh_p2m_kind(t[k]);
            mfns[i + k] = types[i + k] == MS_P2MT_NONE || mfn_eq(m[k], INVALID_MFN)
                          ? MS_INVALID_MFN : mfn_x(m[k]);
        }
    }
#else
    ASSERT_UNREACHABLE();
#endif
}

int ms_host_p2m_prepare(struct domain *d, unsigned long gfn, unsigned int nr)
{
    ASSERT(nr <= MS_P2M_LOOKUP_MAX);
#ifdef CONFIG_HVM
    return memswap_p2m_split(d, gfn, nr);
#else
    return -EOPNOTSUPP;
#endif
}

void ms_host_p2m_batch_begin(struct domain *d)
{
#ifdef CONFIG_HVM
    struct memswap_host *h = d->memswap_host;

    ASSERT(!h->p2m_paused);
    h->p2m_paused = memswap_p2m_begin(d);
#endif
}

void ms_host_p2m_batch_end(struct domain *d)
{
#ifdef CONFIG_HVM
    struct memswap_host *h = d->memswap_host;

    memswap_p2m_end(d, h->p2m_paused);
    h->p2m_paused = false;
#endif
}

int ms_host_p2m_replace(struct domain *d, unsigned long gfn,
                        unsigned long old_mfn, unsigned long new_mfn,
                        bool if_clean)
{
#ifdef CONFIG_HVM
    return memswap_p2m_replace(d, gfn, _mfn(old_mfn), _mfn(new_mfn), if_clean);
#else
    return -EOPNOTSUPP;
#endif
}

/* ------------------------------------------------------------------------
 * Log-dirty (arch/x86/mm/memswap.c).
 */

int ms_host_logdirty_enable(struct domain *d)
{
    return memswap_log_dirty_enable(d);
}

void ms_host_logdirty_disable(struct domain *d)
{
    memswap_log_dirty_disable(d);
}

long ms_host_logdirty_read(struct domain *d, unsigned long first, unsigned long nr,
                           uint64_t *bitmap, bool clear)
{
    ASSERT(nr <= MS_LOGDIRTY_CHUNK);
    return memswap_log_dirty_read(d, first, nr, bitmap, clear);
}

/* ------------------------------------------------------------------------
 * Target frames.
 *
 * Xen 4.17 x86 has no cache colouring in its allocator. We take order-9
 * chunks (2 MiB) from the heap without an owner (on the requested node, or
 * following the domain's node affinity), keep the frames whose colour is
 * allowed in a per-colour pool and give the others back at once. Pfns are
 * spread round-robin over the allowed colours (pfn modulo their number), so
 * a guest-contiguous buffer covers the allowed colours evenly. A chunk with
 * no allowed frame at all (colour stripes of 2 MiB or more) is held until
 * the allocation phase ends so the heap does not hand it back again. The
 * pool is returned as soon as the engine has left the allocation phase.
 */

static void msh_pool_put(struct memswap_host *h, struct page_info *pg,
                         unsigned int colour)
{
    page_list_add_tail(pg, &h->pool[colour]);
    h->nr_pooled++;
}

/* One more chunk into the pool: frames added, or -ENOMEM. */
static long msh_refill(struct domain *d, struct memswap_host *h,
                       const struct memswap_request *req)
{
    unsigned int order = h->order0 ? 0 : MSH_CHUNK_ORDER;
    struct page_info *pg = alloc_domheap_pages(d, order, h->memflags);
    unsigned long i, n, added = 0;

    if ( !pg && order )
    {
        h->order0 = true;
        order = 0;
        pg = alloc_domheap_pages(d, order, h->memflags);
    }
    if ( !pg )
        return -ENOMEM;

    n = 1UL << order;
    for ( i = 0; i < n; i++ )
    {
        unsigned int c = memswap_colour_of(&req->geom, mfn_x(page_to_mfn(pg + i)));

        if ( memswap_colour_allowed(req, c) )
            added++;
    }

    if ( !added && h->nr_held + n > MSH_MAX_HELD )
    {
        free_domheap_pages(pg, order);
        return -ENOMEM;
    }

    for ( i = 0; i < n; i++ )
    {
        unsigned int c = memswap_colour_of(&req->geom, mfn_x(page_to_mfn(pg + i)));

        if ( memswap_colour_allowed(req, c) )
            msh_pool_put(h, pg + i, c);
        else if ( !added )
        {
            page_list_add_tail(pg + i, &h->held);
            h->nr_held++;
        }
        else
            free_domheap_page(pg + i);
    }
    return added;
}

static struct page_info *msh_take_any(struct memswap_host *h)
{
    unsigned int i;

    for ( i = 0; i < h->nr_allowed; i++ )
    {
        struct page_info *pg = page_list_remove_head(&h->pool[h->allowed[i]]);

        if ( pg )
            return pg;
    }
    return NULL;
}

unsigned long ms_host_alloc_frame(struct domain *d,
                                  const struct memswap_request *req,
                                  unsigned long pfn)
{
    struct memswap_host *h = d->memswap_host;
    unsigned int want, tries;
    struct page_info *pg;

    if ( !h || !h->nr_allowed )
        return MS_INVALID_MFN;
    h->drained = false;
    want = h->allowed[pfn % h->nr_allowed];

    for ( tries = 0; ; tries++ )
    {
        long rc;

        pg = page_list_remove_head(&h->pool[want]);
        if ( pg )
            break;
        rc = tries < MSH_REFILL_TRIES ? msh_refill(d, h, req) : 0;
        if ( rc < 0 || tries >= MSH_REFILL_TRIES )
        {
            /* The wanted colour is scarce: any allowed colour will do. */
            pg = msh_take_any(h);
            if ( !pg && rc >= 0 && msh_refill(d, h, req) > 0 )
                pg = msh_take_any(h);
            if ( !pg )
                return MS_INVALID_MFN;
            break;
        }
    }
    h->nr_pooled--;
    return mfn_x(page_to_mfn(pg));
}

/* A frame from ms_host_alloc_frame() that never became the domain's. */
void ms_host_free_frame(unsigned long mfn)
{
    struct page_info *pg = mfn_to_page(_mfn(mfn));

    ASSERT(!page_get_owner(pg));
    free_domheap_page(pg);
}

/* Give the pool back to the heap. */
static void msh_drain(struct memswap_host *h)
{
    struct page_info *pg;
    unsigned int i;

    if ( h->drained )
        return;
    for ( i = 0; i < h->nr_allowed; i++ )
        while ( (pg = page_list_remove_head(&h->pool[h->allowed[i]])) )
            free_domheap_page(pg);
    while ( (pg = page_list_remove_head(&h->held)) )
        free_domheap_page(pg);
    h->nr_pooled = h->nr_held = 0;
    h->drained = true;
}

/*
 * Free frames usable for @req: free memory (of the node) times the share
 * of allowed colours. An estimate: the heap does not count by colour.
 */
unsigned long ms_host_free_frames(struct domain *d,
                                  const struct memswap_request *req)
{
    unsigned long avail, nr = req->geom.nr_colours ?: 1;
    unsigned int c, allowed = 0;

    if ( req->node == MEMSWAP_NODE_ANY )
        avail = avail_domheap_pages();
    else if ( req->node < MAX_NUMNODES && node_online(req->node) )
        avail = avail_node_heap_pages(req->node);
    else
        return 0;

    for ( c = 0; c < nr && c < MEMSWAP_MAX_COLOURS; c++ )
        allowed += memswap_colour_allowed(req, c);

    return (avail / nr) * allowed + (avail % nr) * allowed / nr;
}

/* ------------------------------------------------------------------------
 * References, freezing, transfer, release, cache flush.
 */

/* get_page(): fails on a free frame, one about to wrap, or another owner's. */
bool ms_host_get_frame(struct domain *d, unsigned long mfn)
{
    return get_page(mfn_to_page(_mfn(mfn)), d);
}

/* put_page(): the last reference frees the frame (cleanup_page_mappings()). */
void ms_host_put_frame(unsigned long mfn)
{
    put_page(mfn_to_page(_mfn(mfn)));
}

/*
 * As steal_page(): one cmpxchg that succeeds only when the count is
 * exactly @count with PGC_allocated (every reference is one the engine
 * accounted for, its own included) and leaves count 0 without
 * PGC_allocated. page_get_owner_and_reference() refuses a frame with
 * count 0, so from here nobody can take a reference: no mapping, no
 * get_page_from_gfn(), no guest_remove_page(), no MMU_MACHPHYS_UPDATE.
 * The engine holds a reference until now, so the owner cannot have
 * changed under us.
 */
bool ms_host_freeze_frame(struct domain *d, unsigned long mfn,
                          unsigned long count)
{
    struct page_info *pg = mfn_to_page(_mfn(mfn));
    unsigned long x, y = pg->count_info;

    if ( page_get_owner(pg) != d )
        return false;
    do {
        x = y;
        if ( (x & (PGC_count_mask | PGC_allocated)) != (count | PGC_allocated) )
            return false;
        y = cmpxchg(&pg->count_info, x, x & ~(PGC_count_mask | PGC_allocated));
    } while ( y != x );

    return true;
}

/*
 * The count and PGC_allocated back: a frozen frame on rollback, a kept
 * frame after COMMIT rewrote it, a new frame going live. Nobody else can
 * change the count of a frame at 0; other count_info bits (the page state)
 * may change, hence the cmpxchg.
 */
void ms_host_thaw_frame(struct domain *d, unsigned long mfn,
                        unsigned long count)
{
    struct page_info *pg = mfn_to_page(_mfn(mfn));
    unsigned long x, y = pg->count_info;

    ASSERT(page_get_owner(pg) == d);
    do {
        x = y;
        ASSERT(!(x & (PGC_count_mask | PGC_allocated)));
        y = cmpxchg(&pg->count_info, x, x | PGC_allocated | count);
    } while ( y != x );
}

/*
 * The new frame takes the old one's place: owner, page list, the flags of
 * count_info (PGC_page_table), type and type count (PGT_non_coherent
 * included: the guest's non-coherent mapping now maps the new frame), and
 * the per-page PV page-table state that shares the TLB-flush timestamp's
 * word (linear_pt_count, validation progress). Both frames are frozen
 * (count 0): the new one stays so until the engine makes it live. The old
 * frame is left with no owner and no type, but PGT_non_coherent for the
 * engine's XSA-402 flush before it is released.
 */
void ms_host_transfer_frame(struct domain *d, unsigned long old_mfn,
                            unsigned long new_mfn)
{
    const unsigned long carried = PGC_page_table;
    struct page_info *old = mfn_to_page(_mfn(old_mfn));
    struct page_info *new = mfn_to_page(_mfn(new_mfn));

    ASSERT(!page_get_owner(new));
    ASSERT(!(old->count_info & (PGC_count_mask | PGC_allocated)));
    ASSERT(!(new->count_info & (PGC_count_mask | PGC_allocated)));

    if ( (old->u.inuse.type_info & PGT_type_mask) == PGT_l4_page_table )
    {
        /* Xen's RO M2P slot as the old L4 had it (m2p_strict use). */
        const l4_pgentry_t *ol4 = map_domain_page(_mfn(old_mfn));
        l4_pgentry_t *nl4 = map_domain_page(_mfn(new_mfn));
        unsigned int slot = l4_table_offset(RO_MPT_VIRT_START);

        l4e_write(&nl4[slot], ol4[slot]);
        unmap_domain_page(nl4);
        unmap_domain_page(ol4);
    }

    spin_lock(&d->page_alloc_lock);

    page_list_del(old, page_to_list(d, old));

    new->u.inuse.type_info = old->u.inuse.type_info;
    new->tlbflush_timestamp = old->tlbflush_timestamp;
    page_set_owner(new, d);
    /* The owner must be visible before the count (as assign_pages()). */
    smp_wmb();
    new->count_info = (new->count_info & ~carried) | (old->count_info & carried);
    page_list_add_tail(new, page_to_list(d, new));

    old->u.inuse.type_info &= PGT_non_coherent;
    old->count_info &= ~carried;
    page_set_owner(old, NULL);

    spin_unlock(&d->page_alloc_lock);
}

/* An old frame after the commit: back to the heap (scrubbed, unowned). */
void ms_host_release_frame(unsigned long mfn)
{
    struct page_info *pg = mfn_to_page(_mfn(mfn));

    ASSERT(!page_get_owner(pg));
    ASSERT(!(pg->count_info & PGC_count_mask));
    ASSERT(!(pg->u.inuse.type_info & PGT_count_mask));
    free_domheap_page(pg);
}

/* XSA-402: as cleanup_page_mappings() and _get_page_type() flush. */
void ms_host_flush_cache(unsigned long mfn)
{
    void *p = map_domain_page(_mfn(mfn));

    cache_flush(p, PAGE_SIZE);
    unmap_domain_page(p);
}

/*
 * Every CPU that may hold a translation of the domain's: PV, through its
 * page tables, including guest-global ones, and the XPTI per-CPU root
 * tables; translated, the guest's TLB tags (ASID/VPID), which also cache
 * gfn-to-frame translations (the p2m's own flush covered its batches).
 */
void ms_host_flush_tlbs(struct domain *d)
{
    if ( is_pv_domain(d) )
        flush_mask(d->dirty_cpumask, FLUSH_TLB_GLOBAL |
                   (d->arch.pv.xpti ? FLUSH_ROOT_PGTBL : 0));
    else
        guest_flush_tlb_mask(d, d->dirty_cpumask);
}

unsigned int ms_host_mfn_node(unsigned long mfn)
{
    return phys_to_nid(mfn_to_maddr(_mfn(mfn)));
}

/* ------------------------------------------------------------------------
 * The domctl: OP_SWAP, OP_CANCEL, OP_QUERY.
 */

static uint64_t msh_new_token(void)
{
    static uint32_t seq;
    uint64_t token = ((uint64_t)get_random() << 32) | ++seq;

    return token ?: 1;
}

static void msh_free_host(struct domain *d)
{
    struct memswap_host *h = d->memswap_host;

    if ( !h )
        return;
    msh_drain(h);
    ASSERT(!h->p2m_paused);
    if ( h->paused )
    {
        /* The engine unpauses before it finishes; never leave one behind. */
        h->paused = false;
        domain_unpause(d);
    }
    /* Likewise log-dirty: the engine turns it off on every way out. */
    if ( memswap_owns_log_dirty(d) )
    {
        gprintk(XENLOG_WARNING, "memswap: %pd: log-dirty left on\n", d);
        memswap_log_dirty_disable(d);
    }
    d->memswap_host = NULL;
    ms_host_free(h, sizeof(*h));
}

/*
 * Validate what the glue itself relies on (the colour bitmap's size, the
 * node given to the allocator, padding) and build the engine's request;
 * memswap_begin() validates the rest (flags, geometry, colours, rounds).
 */
static int msh_request(struct domain *d, const struct xen_domctl_memswap *ms,
                       struct memswap_request *req)
{
    const struct xen_domctl_memswap_swap *sw = &ms->u.swap;

    if ( sw->pad )
        return -EINVAL;
    if ( !sw->nr_colours || sw->nr_colours > MEMSWAP_MAX_COLOURS )
        return -EINVAL;
    if ( sw->node != XEN_DOMCTL_MEMSWAP_NODE_ANY &&
         (sw->node >= MAX_NUMNODES || !node_online(sw->node)) )
        return -EINVAL;

    memset(req, 0, sizeof(*req));
    req->domid = d->domain_id;
    req->flags = ms->flags;
    req->node = sw->node;
    req->geom.nr_colours = sw->nr_colours;
    req->geom.colour_shift = sw->colour_shift;
    req->live_max_rounds = sw->live_max_rounds;
    req->live_dirty_threshold = sw->live_dirty_threshold;
    if ( !guest_handle_is_null(sw->colours) &&
         copy_from_guest(req->colours, sw->colours, DIV_ROUND_UP(sw->nr_colours, 64)) )
        return -EFAULT;
    return 0;
}

/* The glue's per-swap state for @req. */
static struct memswap_host *msh_alloc_host(const struct memswap_request *req)
{
    struct memswap_host *h = ms_host_zalloc(sizeof(*h));
    unsigned int c;

    if ( !h )
        return NULL;
    for ( c = 0; c < MEMSWAP_MAX_COLOURS; c++ )
        INIT_PAGE_LIST_HEAD(&h->pool[c]);
    INIT_PAGE_LIST_HEAD(&h->held);
    for ( c = 0; c < req->geom.nr_colours; c++ )
        if ( memswap_colour_allowed(req, c) )
            h->allowed[h->nr_allowed++] = c;
    h->memflags = MEMF_no_owner | MEMF_no_scrub;
    if ( req->node != MEMSWAP_NODE_ANY )
        h->memflags |= MEMF_node(req->node) | MEMF_exact_node;
    h->drained = true;
    h->token = msh_new_token();
    return h;
}

/* A new request: refuse the domain, then the request; start the engine. */
static int msh_start(struct domain *d, const struct xen_domctl_memswap *ms)
{
    struct memswap_request req;
    int rc;

    if ( d->memswap || d->memswap_host )
        return -EBUSY;
    /* Refuse the domain before looking at the request. */
    if ( (rc = ms_host_check_domain(d, 0)) )
        return rc;
    if ( (rc = msh_request(d, ms, &req)) )
        return rc;

    rc = -ENOMEM;
    if ( !(d->memswap_host = msh_alloc_host(&req)) )
        goto fail;
    if ( (rc = memswap_begin(d, &req, &d->memswap)) )
        goto fail_host;
    return 0;

 fail_host:
    d->memswap = NULL;
    msh_free_host(d);
 fail:
    return rc;
}

static uint32_t msh_u32(uint64_t v)
{
    return min_t(uint64_t, v, UINT32_MAX);
}

static void msh_report(const struct memswap_ctx *ctx, int rc,
                       struct xen_domctl_memswap *ms)
{
    const struct memswap_result *r = memswap_result(ctx);
    struct xen_domctl_memswap_swap *sw = &ms->u.swap;
    unsigned int i;

    sw->frames_total = msh_u32(r->frames_total);
    sw->frames_moved = msh_u32(r->frames_moved);
    for ( i = 0; i < XEN_DOMCTL_MEMSWAP_KEPT_NR; i++ )
        sw->frames_kept[i] = msh_u32(r->frames_kept[i]);
    sw->continuations = msh_u32(r->continuations);
    sw->bytes_copied = r->bytes_copied;
    sw->paused_ns = r->paused_ns;
    sw->extra_bytes_peak = r->extra_bytes_peak;
    sw->live_rounds = r->live_rounds;
    sw->live_precopy_pages = msh_u32(r->live_precopy_pages);
    sw->live_final_pages = msh_u32(r->live_final_pages);
    sw->failed_phase = rc ? r->failed_phase : 0;
}

/* The swap's outputs are final: report them and release it. */
static void msh_finish(struct domain *d, int rc, struct xen_domctl_memswap *ms)
{
    ms->resume = 0;
    msh_report(d->memswap, rc, ms);
    memswap_end(d->memswap);
    d->memswap = NULL;
    msh_free_host(d);
}

/*
 * Hand the domain's swap back to its caller between two calls: write the
 * token (and, for a hold, the outputs so far) into the caller's buffer. If
 * that fails the caller cannot come back: abandon the swap in one go (roll
 * back, or past its point of no return, finish) and report -EFAULT.
 */
static long msh_yield(struct domain *d, struct xen_domctl *op,
                      XEN_GUEST_HANDLE_PARAM(xen_domctl_t) u_domctl,
                      bool *copyback, bool hold)
{
    struct xen_domctl_memswap *ms = &op->u.memswap;
    struct memswap_host *h = d->memswap_host;

    ms->resume = h->token;
    if ( hold )
    {
        msh_report(d->memswap, 0, ms);
        if ( !__copy_field_to_guest(u_domctl, op, u.memswap) )
            return 0;
    }
    else if ( !__copy_field_to_guest(u_domctl, op, u.memswap.resume) )
        return hypercall_create_continuation(__HYPERVISOR_domctl, "h", u_domctl);

    memswap_abort(d->memswap);
    msh_finish(d, -EFAULT, ms);
    *copyback = true;
    return -EFAULT;
}

/*
 * OP_SWAP: a new request, a continuation, or the second call of a held
 * swap (its token; flags and parameters are not read again).
 */
static long msh_swap(struct domain *d, struct xen_domctl *op,
                     XEN_GUEST_HANDLE_PARAM(xen_domctl_t) u_domctl,
                     bool *copyback)
{
    struct xen_domctl_memswap *ms = &op->u.memswap;
    struct memswap_host *h = d->memswap_host;
    int rc;

    if ( ms->resume )
    {
        /* Ours, or a stale/foreign token, or one a cancel took over. */
        if ( !d->memswap || !h || ms->resume != h->token )
            return d->memswap ? -EBUSY : d->is_dying ? -ENODEV : -EINVAL;
        if ( h->cancelling )
            return -EINVAL;
    }
    else if ( (rc = msh_start(d, ms)) )
        return rc;

    /*
     * The engine re-checks the domain on every entry before its point of
     * no return (COMMIT) and rolls back, itself resumably, on any change;
     * past it, it only goes forward. Either way it may yield, or hold.
     */
    rc = memswap_run(d->memswap);
    if ( memswap_phase(d->memswap) > MEMSWAP_PH_ALLOC )
        msh_drain(d->memswap_host);

    if ( rc == MEMSWAP_PREEMPTED || rc == MEMSWAP_HELD )
        return msh_yield(d, op, u_domctl, copyback, rc == MEMSWAP_HELD);

    msh_finish(d, rc, ms);
    *copyback = true;
    return rc;
}

/*
 * OP_CANCEL: roll back (or, past its point of no return, finish) the swap
 * held or in progress, resumably. Returns 0 with the abandoned swap's
 * outputs: failed_phase is the phase it was rolled back in, 0 if it had
 * passed its point of no return and completed.
 */
static long msh_cancel(struct domain *d, struct xen_domctl *op,
                       XEN_GUEST_HANDLE_PARAM(xen_domctl_t) u_domctl,
                       bool *copyback)
{
    struct xen_domctl_memswap *ms = &op->u.memswap;
    struct memswap_host *h = d->memswap_host;
    int rc;

    if ( ms->flags )
        return -EINVAL;
    if ( !d->memswap || !h || (ms->resume && ms->resume != h->token) )
        return -ENOENT;

    h->cancelling = true;
    rc = memswap_cancel(d->memswap);
    msh_drain(h);
    if ( rc == MEMSWAP_PREEMPTED )
        return msh_yield(d, op, u_domctl, copyback, false);

    msh_finish(d, rc, ms);
    *copyback = true;
    return 0;
}

/* The host's NUMA nodes, as indices: one past the highest online node. */
static unsigned int msh_host_nr_nodes(void)
{
    unsigned int node, nr = 0;

    for_each_online_node ( node )
        nr = node + 1;
    return nr;
}

/*
 * OP_QUERY: where the domain's memory is. With colour or node counts asked
 * for, they are summed over the whole pfn space and the window's frames
 * written as the walk passes it; with neither, only the window is walked
 * (frames_counted then counts its frames), so that a caller reading the
 * frames window by window pays for each window once. Preemptible, with the
 * next pfn + 1 in resume and the counts so far in the caller's arrays (read
 * back on re-entry) and frames_counted.
 */
static long msh_query(struct domain *d, struct xen_domctl *op,
                      XEN_GUEST_HANDLE_PARAM(xen_domctl_t) u_domctl,
                      bool *copyback)
{
    struct xen_domctl_memswap *ms = &op->u.memswap;
    struct xen_domctl_memswap_query *qr = &ms->u.query;
    unsigned int i, nr_colours, nr_nodes, host_nodes = msh_host_nr_nodes();
    uint64_t nr_pfns, pfn, end, win = qr->first_pfn, win_end;
    struct memswap_query q = {};
    uint64_t *frames = NULL;
    bool preempted = false;
    long rc;

    if ( ms->flags )
        return -EINVAL;
    for ( i = 0; i < ARRAY_SIZE(qr->pad); i++ )
        if ( qr->pad[i] )
            return -EINVAL;
    if ( qr->nr_colours &&
         (qr->nr_colours > MEMSWAP_MAX_COLOURS ||
          (qr->nr_colours & (qr->nr_colours - 1)) || qr->colour_shift > 32) )
        return -EINVAL;
    if ( qr->nr_nodes > MSH_QUERY_MAX_NODES || win + qr->nr_frames < win )
        return -EINVAL;
    win_end = win + qr->nr_frames;

    /* A swap's refusals, as far as reading applies. */
    rc = ms_host_check_domain(d, 0);
    if ( rc == -EACCES || rc == -EDEADLK || rc == -ENODEV )
        return rc;
    if ( is_pv_32bit_domain(d) )
        return -EOPNOTSUPP;
    if ( (rc = memswap_query_size(d, &nr_pfns)) )
        return rc;

    nr_colours = guest_handle_is_null(qr->colour_counts) ? 0 : qr->nr_colours;
    nr_nodes = guest_handle_is_null(qr->node_counts) ? 0 : qr->nr_nodes;
    rc = -ENOMEM;
    if ( (nr_colours &&
          !(q.colour_counts = xzalloc_array(uint64_t, nr_colours))) ||
         (nr_nodes && !(q.node_counts = xzalloc_array(uint64_t, nr_nodes))) ||
         !(frames = xmalloc_array(uint64_t, MEMSWAP_QUERY_BATCH)) )
        goto out;
    q.geom.nr_colours = nr_colours;
    q.geom.colour_shift = qr->colour_shift;
    q.nr_nodes = min(nr_nodes, host_nodes);

    rc = -EFAULT;
    if ( ms->resume )
    {
        /* The counts so far: the caller's arrays, as we left them. */
        if ( copy_from_guest(q.colour_counts, qr->colour_counts, nr_colours) ||
             copy_from_guest(q.node_counts, qr->node_counts, nr_nodes) )
            goto out;
        q.frames_counted = qr->frames_counted;
    }

    /*
     * With counts asked for, walk the whole pfn space (and the window
     * wherever it is); without, the window only.
     */
    if ( guest_handle_is_null(qr->frames) )
        win_end = win;
    end = nr_colours || nr_nodes ? max(nr_pfns, win_end) : win_end;
    if ( ms->resume )
        pfn = ms->resume - 1;
    else
        pfn = nr_colours || nr_nodes ? 0 : win;
    rc = 0;
    while ( pfn < end )
    {
        unsigned int n;
        bool in_win;

        if ( pfn >= nr_pfns && pfn < win )
            pfn = win;
        n = min_t(uint64_t, MEMSWAP_QUERY_BATCH,
                  (pfn < nr_pfns ? min(nr_pfns, end) : end) - pfn);
        in_win = pfn < win_end && pfn + n > win;
        if ( pfn < nr_pfns )
        {
            rc = memswap_query_range(d, &q, pfn, n, in_win ? frames : NULL);
            if ( rc )
                break;
        }
        else
            for ( i = 0; i < n; i++ )
                frames[i] = XEN_DOMCTL_MEMSWAP_NO_FRAME;
        if ( in_win )
        {
            uint64_t lo = max(pfn, win), hi = min(pfn + n, win_end);

            if ( copy_to_guest_offset(qr->frames, lo - win, frames + (lo - pfn),
                                      hi - lo) )
            {
                rc = -EFAULT;
                break;
            }
        }
        pfn += n;
        if ( pfn < end && hypercall_preempt_check() )
        {
            preempted = true;
            break;
        }
    }
    if ( rc )
        goto out;

    rc = -EFAULT;
    if ( copy_to_guest(qr->colour_counts, q.colour_counts, nr_colours) ||
         copy_to_guest(qr->node_counts, q.node_counts, nr_nodes) )
        goto out;
    qr->frames_counted = msh_u32(q.frames_counted);
    qr->nr_pfns = nr_pfns;
    qr->tot_pages = domain_tot_pages(d);
    qr->host_nr_nodes = host_nodes;
    qr->translated = paging_mode_translate(d);

    if ( preempted )
    {
        ms->resume = pfn + 1;
        rc = __copy_field_to_guest(u_domctl, op, u.memswap) ? -EFAULT
             : hypercall_create_continuation(__HYPERVISOR_domctl, "h", u_domctl);
        goto out;
    }
    ms->resume = 0;
    *copyback = true;
    rc = 0;

 out:
    xfree(frames);
    xfree(q.node_counts);
    xfree(q.colour_counts);
    return rc;
}

long memswap_domctl(struct domain *d, struct xen_domctl *op,
                    XEN_GUEST_HANDLE_PARAM(xen_domctl_t) u_domctl,
                    bool *copyback)
{
    BUILD_BUG_ON(sizeof(op->u.memswap) != XEN_DOMCTL_MEMSWAP_SIZE);
    BUILD_BUG_ON(sizeof(op->u.memswap) != sizeof(op->u.pad));
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_KEPT_NR != MEMSWAP_KEPT_NR);
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_KEPT_GRANTED != MEMSWAP_KEPT_GRANTED);
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_KEPT_FOREIGN != MEMSWAP_KEPT_FOREIGN);
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_KEPT_UNEXPLAINED != MEMSWAP_KEPT_UNEXPLAINED);
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_KEPT_NOT_IN_P2M != MEMSWAP_KEPT_NOT_IN_P2M);
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_KEPT_XEN != MEMSWAP_KEPT_XEN);
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_KEPT_P2M_TYPE != MEMSWAP_KEPT_P2M_TYPE);
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_KEPT_CHANGED != MEMSWAP_KEPT_CHANGED);
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_MAX_COLOURS != MEMSWAP_MAX_COLOURS);
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_F_DRY_RUN != MEMSWAP_F_DRY_RUN);
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_F_LIVE != MEMSWAP_F_LIVE);
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_F_HOLD != MEMSWAP_F_HOLD);
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_LIVE_ROUNDS_MAX != MEMSWAP_LIVE_ROUNDS_MAX);
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_NODE_ANY != MEMSWAP_NODE_ANY);
    BUILD_BUG_ON(XEN_DOMCTL_MEMSWAP_NO_FRAME != MEMSWAP_NO_FRAME);

    switch ( op->u.memswap.op )
    {
    case XEN_DOMCTL_MEMSWAP_OP_SWAP:
        return msh_swap(d, op, u_domctl, copyback);
    case XEN_DOMCTL_MEMSWAP_OP_CANCEL:
        return msh_cancel(d, op, u_domctl, copyback);
    case XEN_DOMCTL_MEMSWAP_OP_QUERY:
        return msh_query(d, op, u_domctl, copyback);
    }
    return -EINVAL;
}

/*
 * domain_kill(): undo (or, after its point of no return, finish) a swap
 * interrupted between continuations, or held, before the domain's memory
 * goes. Resumable: -ERESTART while there is work left, as domain_kill()
 * expects.
 */
int memswap_domain_destroy(struct domain *d)
{
    if ( d->memswap )
    {
        int rc;

        d->memswap_host->cancelling = true;
        rc = memswap_cancel(d->memswap);
        if ( rc == MEMSWAP_PREEMPTED )
            return -ERESTART;
        gprintk(XENLOG_INFO, "memswap: %pd died during a swap (%s in %s)\n",
                d, rc ? "rolled back" : "completed",
                memswap_phase_name(memswap_result(d->memswap)->failed_phase));
        memswap_end(d->memswap);
        d->memswap = NULL;
    }
    msh_free_host(d);
    return 0;
}
