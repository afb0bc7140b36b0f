/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memswap: the translated guest's p2m and the log-dirty mode, for
 * XEN_DOMCTL_memswap (xen/arch/x86/mm/memswap.c in the patched tree).
 *
 * This file lives in arch/x86/mm/ because the locks it must take - the p2m
 * lock and the paging lock - are defined by mm-locks.h, which is private to
 * this directory, as is the log-dirty bitmap's layout. It speaks Xen's
 * types; common/memswap/memswap-glue.c adapts them to the engine's
 * (core/private.h). Every function is called with domctl_lock held and an
 * RCU reference on @d (XEN_DOMCTL_memswap, or domain_kill()).
 *
 * Lock order, as in Xen's own p2m and paging code: the p2m lock, then the
 * paging lock (the HAP fault handler marks a page dirty with the p2m lock
 * held), then d->page_alloc_lock (taken by the glue's transfer of a frame
 * inside a p2m batch).
 *
 * The log-dirty mode memswap uses is Xen's own (paging_log_dirty_enable(),
 * HAP's p2m_ram_logdirty or shadow's write-protection for PV), with the
 * bitmap read and cleared a chunk at a time instead of the whole bitmap
 * with the domain paused (XEN_DOMCTL_SHADOW_OP_CLEAN): for HAP, a page's
 * bit is read, cleared and its p2m entry write-protected again in one
 * critical section of the p2m lock, which the fault handler that sets the
 * bit and makes the entry writable also holds. While memswap has log-dirty
 * on, d->memswap_log_dirty is set and every other log-dirty user is
 * refused (paging_domctl(), hap_track_dirty_vram()): a second reader
 * clearing the bitmap would hide writes from the swap.
 */

#include <xen/domain_page.h>
#include <xen/errno.h>
#include <xen/lib.h>
#include <xen/memswap.h>
#include <xen/sched.h>
#include <asm/p2m.h>
#include <asm/paging.h>

#include "mm-locks.h"

/* ------------------------------------------------------------------------
 * Log-dirty.
 */

/*
 * Log-dirty is in use by someone other than memswap: on (a save, a live
 * migration), a paging operation on it left unfinished between two
 * continuations, VRAM tracking (HVM), or - PV - any shadow mode (log-dirty
 * is shadow paging there, and an L1TF-forced shadow mode would outlive our
 * log-dirty).
 */
bool memswap_log_dirty_busy(const struct domain *d)
{
    if ( d->memswap_log_dirty )
        return false;
    if ( paging_mode_log_dirty(d) || d->arch.paging.preempt.dom )
        return true;
    if ( is_pv_domain(d) )
        return paging_mode_enabled(d);
#ifdef CONFIG_HVM
    return d->arch.hvm.dirty_vram;
#else
    return false;
#endif
}

/* Whether @d can have log-dirty at all: PV needs shadow paging. */
bool memswap_log_dirty_possible(const struct domain *d)
{
#ifdef CONFIG_SHADOW_PAGING
    return PG_log_dirty;
#else
    return PG_log_dirty && !is_pv_domain(d);
#endif
}

/*
 * Turn log-dirty on for memswap, as XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY
 * does (paging_log_dirty_enable(d, true): every page write-protected, the
 * log empty). d->memswap_log_dirty is set under the paging lock before the
 * check that nobody else uses log-dirty, the same lock under which
 * hap_track_dirty_vram() looks at it: whichever comes second is refused.
 */
int memswap_log_dirty_enable(struct domain *d)
{
    int rc;

    if ( !memswap_log_dirty_possible(d) )
        return -EOPNOTSUPP;
    if ( d->memswap_log_dirty )
        return -EBUSY;

    paging_lock(d);
    rc = memswap_log_dirty_busy(d) ? -EBUSY : 0;
    if ( !rc )
        d->memswap_log_dirty = true;
    paging_unlock(d);
    if ( rc )
        return rc;

    /* -EINVAL only if log-dirty is on, which we just ruled out. */
    rc = paging_log_dirty_enable(d, true);
    if ( rc )
    {
        d->memswap_log_dirty = false;
        return rc == -EINVAL ? -EBUSY : rc;
    }
    return 0;
}

/*
 * Turn memswap's log-dirty off and free the bitmap, as
 * XEN_DOMCTL_SHADOW_OP_OFF does. Freeing is resumable in Xen (one
 * preemption point per 64 GiB of pfn space); the engine's disable cannot
 * fail or yield, so we go on until it is done: at most one bitmap page per
 * 128 MiB of guest memory.
 */
void memswap_log_dirty_disable(struct domain *d)
{
    int rc;

    if ( !d->memswap_log_dirty )
        return;
    rc = paging_log_dirty_disable(d, false);
    while ( rc == -ERESTART )
        rc = paging_log_dirty_disable(d, true);
    if ( rc )
        printk(XENLOG_G_WARNING "%pd: memswap: log-dirty off: %d\n", d, rc);
    d->memswap_log_dirty = false;
}

/* The leaf of the log-dirty bitmap that holds @pfn's bit, mapped, or NULL. */
static unsigned long *map_log_dirty_leaf(const struct domain *d, pfn_t pfn)
{
    const unsigned int idx[] = {
        L4_LOGDIRTY_IDX(pfn), L3_LOGDIRTY_IDX(pfn), L2_LOGDIRTY_IDX(pfn),
    };
    mfn_t mfn = d->arch.paging.log_dirty.top;
    unsigned int level;

    ASSERT(paging_locked_by_me(d));
    for ( level = 0; level < ARRAY_SIZE(idx); level++ )
    {
        const mfn_t *node;

        if ( mfn_eq(mfn, INVALID_MFN) )
            return NULL;
        node = map_domain_page(mfn);
        mfn = node[idx[level]];
        unmap_domain_page(node);
    }

    return mfn_eq(mfn, INVALID_MFN) ? NULL : map_domain_page(mfn);
}

/*
 * Copy the bits of pfns [first, first + nr) (multiples of 64) into @bitmap,
 * clearing them in the log with @clear; returns how many were set. Under
 * the paging lock.
 */
static unsigned long log_dirty_copy(struct domain *d, unsigned long first,
                                    unsigned long nr, uint64_t *bitmap,
                                    bool clear)
{
    /* pfns one leaf covers */
    const unsigned long per_leaf = 1UL << (PAGE_SHIFT + 3);
    unsigned long pfn, set = 0;

    ASSERT(paging_locked_by_me(d));
    for ( pfn = first; pfn < first + nr; )
    {
        unsigned long end = min((pfn | (per_leaf - 1)) + 1, first + nr);
        unsigned int i, words = (end - pfn) / 64;
        uint64_t *out = bitmap + (pfn - first) / 64;
        unsigned long *leaf = map_log_dirty_leaf(d, _pfn(pfn));

        if ( leaf )
        {
            uint64_t *in = (uint64_t *)leaf + L1_LOGDIRTY_IDX(_pfn(pfn)) / 64;

            for ( i = 0; i < words; i++ )
            {
                out[i] = in[i];
                set += hweight64(in[i]);
            }
            if ( clear )
                memset(in, 0, words * sizeof(*in));
            unmap_domain_page(leaf);
        }
        else
            memset(out, 0, words * sizeof(*out));
        pfn = end;
    }
    return set;
}

#ifdef CONFIG_HVM
/*
 * HAP: every page whose bit @bitmap has is write-protected again
 * (p2m_ram_rw -> p2m_ram_logdirty, keeping its frame and access rights),
 * with the p2m lock held since the bits were cleared. 0 or -ENOMEM (a
 * superpage could not be split: the log can no longer be trusted).
 */
static int log_dirty_reprotect(struct p2m_domain *p2m, unsigned long first,
                               unsigned long nr, const uint64_t *bitmap)
{
    unsigned long i;
    int rc = 0;

    ASSERT(p2m_locked_by_me(p2m));
    for ( i = 0; i < nr; i++ )
    {
        gfn_t gfn = _gfn(first + i);
        p2m_access_t a;
        p2m_type_t t;
        mfn_t mfn;

        if ( !(bitmap[i / 64] >> (i % 64) & 1) )
            continue;
        mfn = p2m->get_entry(p2m, gfn, &t, &a, 0, NULL, NULL);
        if ( t == p2m_ram_rw )
            rc = p2m_set_entry(p2m, gfn, mfn, PAGE_ORDER_4K, p2m_ram_logdirty, a)
                 ?: rc;
    }
    return rc;
}

/*
 * Many p2m writes under one hold of the p2m write lock, and one flush of
 * every translation of the domain's gfns any CPU may cache before the lock
 * is dropped: EPT defers its flushes while the lock is held and
 * p2m_tlb_flush_sync() does them; NPT would flush every rewritten present
 * entry at once (hap_write_p2m_entry_post()), so while memswap_p2m_batch
 * is set it only notes that a flush is due (patch 5), and we do it here.
 * Between a write and the flush a vCPU may still use the old translation:
 * a read-only one to a frame whose contents the new one has too (a clean
 * page replaced, or a page being write-protected, which the caller copies
 * after we return). p2m_unlock() alone would flush after unlocking.
 */
static void p2m_batch_lock(struct p2m_domain *p2m)
{
    p2m_lock(p2m);
    p2m->domain->memswap_p2m_batch = true;
}

static void p2m_batch_unlock(struct p2m_domain *p2m)
{
    struct domain *d = p2m->domain;

    d->memswap_p2m_batch = false;
    if ( p2m->tlb_flush )
        p2m_tlb_flush_sync(p2m);
    else if ( p2m->need_flush )
    {
        p2m->need_flush = false;
        guest_flush_tlb_mask(d, d->dirty_cpumask);
    }
    p2m_unlock(p2m);
}

/*
 * Intel PML logs writes in per-vCPU buffers that reach the bitmap only when
 * flushed, which needs the vCPUs descheduled (vmx_vcpu_flush_pml_buffer()).
 * Pause, flush, and (for the caller) stay paused if @hold: true if a pause
 * is held.
 */
static bool flush_hardware_dirty(struct domain *d, bool hold)
{
    if ( !p2m_get_hostp2m(d)->flush_hardware_cached_dirty )
        return false;
    domain_pause(d);
    p2m_flush_hardware_cached_dirty(d);
    if ( hold )
        return true;
    domain_unpause(d);
    return false;
}
#endif

/*
 * Read the dirty bits of pfns [first, first + nr) into @bitmap (first and
 * nr multiples of 64); with @clear, clear them and write-protect the pages
 * found dirty again, flushing stale writable translations before we return,
 * so that every write after the return is logged. Returns how many bits
 * were set, -EINVAL if memswap's log-dirty is not on, -ENOMEM if the log
 * lost bits (Xen could not allocate a bitmap page: failed_allocs) or a page
 * could not be write-protected again.
 */
long memswap_log_dirty_read(struct domain *d, unsigned long first,
                            unsigned long nr, uint64_t *bitmap, bool clear)
{
    unsigned long set;
    int rc = 0;

    if ( !d->memswap_log_dirty || !paging_mode_log_dirty(d) ||
         (first | nr) % 64 )
        return -EINVAL;

#ifdef CONFIG_HVM
    if ( hap_enabled(d) )
    {
        struct p2m_domain *p2m = p2m_get_hostp2m(d);

        /* A round reads from pfn 0 up: flush the hardware's log then. */
        if ( first == 0 )
            flush_hardware_dirty(d, false);

        /*
         * The fault handler marks a gfn dirty and makes its entry writable
         * under the p2m lock: holding it from the read to the
         * write-protection, no write can fall between the two.
         */
        p2m_batch_lock(p2m);
        paging_lock(d);
        rc = d->arch.paging.log_dirty.failed_allocs ? -ENOMEM : 0;
        set = rc ? 0 : log_dirty_copy(d, first, nr, bitmap, clear);
        paging_unlock(d);
        if ( !rc && clear && set )
            rc = log_dirty_reprotect(p2m, first, nr, bitmap);
        /* Stale writable translations gone before anyone can rely on it. */
        p2m_batch_unlock(p2m);
        return rc ?: (long)set;
    }
#endif

    /*
     * Shadow (PV): write access is revoked by dropping every shadow, which
     * needs the domain paused, as XEN_DOMCTL_SHADOW_OP_CLEAN does it.
     */
    if ( clear )
        domain_pause(d);
    paging_lock(d);
    rc = d->arch.paging.log_dirty.failed_allocs ? -ENOMEM : 0;
    set = rc ? 0 : log_dirty_copy(d, first, nr, bitmap, clear);
    paging_unlock(d);
    if ( clear )
    {
        if ( set )
            d->arch.paging.log_dirty.ops->clean(d);
        domain_unpause(d);
    }
    return rc ?: (long)set;
}

/* ------------------------------------------------------------------------
 * The translated guest's p2m (HAP).
 */

#ifdef CONFIG_HVM

/* One past the highest gfn the host p2m has ever mapped. */
unsigned long memswap_p2m_size(struct domain *d)
{
    return p2m_get_hostp2m(d)->max_mapped_pfn + 1;
}

/*
 * The entries of gfns [gfn, gfn + nr): frame and type, as a query that
 * populates, unshares or pages in nothing. Under the p2m read lock. One
 * get_entry() per entry rather than per gfn: it reports the order of the
 * superpage or of the hole the gfn is in, so the sparse pfn space of an
 * HVM guest (RAM low, special pages below 4 GiB) costs little to walk.
 */
void memswap_p2m_lookup(struct domain *d, unsigned long gfn, unsigned int nr,
                        mfn_t *mfns, p2m_type_t *types)
{
    struct p2m_domain *p2m = p2m_get_hostp2m(d);
    unsigned int i = 0;

    p2m_read_lock(p2m);
    while ( i < nr )
    {
        unsigned long first = gfn + i, left;
        unsigned int order;
        p2m_access_t a;
        p2m_type_t t;
        mfn_t mfn = p2m->get_entry(p2m, _gfn(first), &t, &a, 0, &order, NULL);

        /* This entry's gfns from @first on, within the request. */
        left = (1UL << order) - (first & ((1UL << order) - 1));
        for ( ; left && i < nr; left--, i++ )
        {
            mfns[i] = mfn;
            types[i] = t;
            if ( !mfn_eq(mfn, INVALID_MFN) )
                mfn = mfn_add(mfn, 1);
        }
    }
    p2m_read_unlock(p2m);
}

/*
 * Split the superpage entries mapping RAM among gfns [gfn, gfn + nr) into
 * 4K entries of the same frames, type and access: p2m_set_entry() at 4K
 * order does it (allocating p2m pages). The guest cannot observe it.
 * 0 or -ENOMEM.
 */
int memswap_p2m_split(struct domain *d, unsigned long gfn, unsigned int nr)
{
    struct p2m_domain *p2m = p2m_get_hostp2m(d);
    unsigned long end = gfn + nr;
    int rc = 0;

    p2m_batch_lock(p2m);
    while ( gfn < end && !rc )
    {
        unsigned int order;
        p2m_access_t a;
        p2m_type_t t;
        mfn_t mfn = p2m->get_entry(p2m, _gfn(gfn), &t, &a, 0, &order, NULL);
        bool ram = t == p2m_ram_rw || t == p2m_ram_logdirty || t == p2m_ram_ro;

        if ( order == PAGE_ORDER_4K || !ram || !mfn_valid(mfn) )
        {
            /* Nothing to split here: on to the next entry. */
            gfn = (gfn | ((1UL << order) - 1)) + 1;
            continue;
        }
        rc = p2m_set_entry(p2m, _gfn(gfn), mfn, PAGE_ORDER_4K, t, a);
        gfn++;
    }
    p2m_batch_unlock(p2m);

    return rc;
}

/*
 * A batch of replacements: the p2m write lock held from begin to end, and
 * the p2m's deferred flush (EPT) done before it is dropped. With Intel PML
 * the domain is also paused for the batch, so that its log is complete
 * when memswap_p2m_replace() asks whether a page is clean: begin returns
 * whether it holds such a pause, which end gives back.
 */
bool memswap_p2m_begin(struct domain *d)
{
    bool paused = d->memswap_log_dirty && flush_hardware_dirty(d, true);

    p2m_batch_lock(p2m_get_hostp2m(d));
    return paused;
}

/*
 * The flush before the lock goes: no vCPU reads an old frame once another
 * can write the new one.
 */
void memswap_p2m_end(struct domain *d, bool paused)
{
    p2m_batch_unlock(p2m_get_hostp2m(d));
    if ( paused )
        domain_unpause(d);
}

/* Whether @gfn's bit is set in the log. Under the paging lock. */
static bool log_dirty_test(struct domain *d, unsigned long gfn)
{
    unsigned long *leaf = map_log_dirty_leaf(d, _pfn(gfn));
    bool dirty = leaf && test_bit(L1_LOGDIRTY_IDX(_pfn(gfn)), leaf);

    if ( leaf )
        unmap_domain_page(leaf);
    return dirty;
}

/*
 * Inside a batch: make @gfn map @new instead of @old, keeping the entry's
 * type and access rights. The new frame's M2P entry names @gfn already, so
 * that a write through the new entry is logged for @gfn. With @if_clean,
 * only if @gfn was not written since the log was last read and cleared:
 * its bit is clear and its entry still write-protected for log-dirty (a
 * vCPU's write would have faulted into the lock we hold). 0; -EAGAIN
 * written since; -ENOENT the entry no longer maps @old as RAM; -ENOMEM.
 * Nothing changed on error.
 */
int memswap_p2m_replace(struct domain *d, unsigned long gfn, mfn_t old,
                        mfn_t new, bool if_clean)
{
    struct p2m_domain *p2m = p2m_get_hostp2m(d);
    p2m_access_t a;
    p2m_type_t t;
    mfn_t mfn;

    ASSERT(p2m_locked_by_me(p2m));
    ASSERT(get_gpfn_from_mfn(mfn_x(new)) == gfn);

    mfn = p2m->get_entry(p2m, _gfn(gfn), &t, &a, 0, NULL, NULL);
    if ( !mfn_eq(mfn, old) ||
         (t != p2m_ram_rw && t != p2m_ram_logdirty && t != p2m_ram_ro) )
        return -ENOENT;

    if ( if_clean )
    {
        bool dirty;

        if ( !d->memswap_log_dirty || !paging_mode_log_dirty(d) ||
             t == p2m_ram_rw )
            return -EAGAIN;
        paging_lock(d);
        dirty = log_dirty_test(d, gfn);
        paging_unlock(d);
        if ( dirty )
            return -EAGAIN;
    }

    return p2m_set_entry(p2m, _gfn(gfn), new, PAGE_ORDER_4K, t, a);
}

#endif /* CONFIG_HVM */
