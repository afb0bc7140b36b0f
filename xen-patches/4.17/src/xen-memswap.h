/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * xen/include/xen/memswap.h: the hooks of XEN_DOMCTL_memswap into Xen
 * (do_domctl, domain_kill, the grant table, FIFO event channels, paging),
 * and what arch/x86/mm/memswap.c (the p2m and log-dirty side) gives the
 * glue. The swap itself is common/memswap/ (the engine, core/memswap.c,
 * and its glue).
 */
#ifndef __XEN_MEMSWAP_H__
#define __XEN_MEMSWAP_H__

#include <xen/errno.h>
#include <xen/mm-frame.h>
#include <xen/sched.h>
#include <xen/types.h>
#include <public/domctl.h>

#ifdef CONFIG_MEMSWAP

/*
 * XEN_DOMCTL_memswap on @d (RCU-locked by do_domctl, domctl_lock held).
 * Returns 0, -errno or a continuation; sets *copyback when the outputs in
 * op->u.memswap are final.
 */
long memswap_domctl(struct domain *d, struct xen_domctl *op,
                    XEN_GUEST_HANDLE_PARAM(xen_domctl_t) u_domctl,
                    bool *copyback);

/*
 * domain_kill(): finish or roll back a swap in progress or held (they may
 * be interrupted between continuations, and a held swap waits for its
 * caller) before the domain's memory goes. 0 when done, -ERESTART while
 * work is left (domain_kill() returns it and XEN_DOMCTL_destroydomain
 * continues).
 */
int memswap_domain_destroy(struct domain *d);

/*
 * memswap has log-dirty on for @d: every other log-dirty operation on it
 * (XEN_DOMCTL_shadow_op's, XEN_DMOP_track_dirty_vram) gets -EBUSY. Set and
 * cleared by arch/x86/mm/memswap.c, under domctl_lock and the paging lock.
 */
static inline bool memswap_owns_log_dirty(const struct domain *d)
{
    return d->memswap_log_dirty;
}

#ifdef CONFIG_GRANT_TABLE
/*
 * The frames of @d a grant keeps where they are: for a PV guest every frame
 * a shared entry (v1/v2) permits access to, and for both kinds every frame
 * an active entry pins. fn(arg, mfn) for each, under the grant table's read
 * lock. In common/grant_table.c.
 */
void gnttab_memswap_frames(struct domain *d,
                           void (*fn)(void *arg, unsigned long mfn), void *arg);
#else
static inline void gnttab_memswap_frames(
    struct domain *d, void (*fn)(void *arg, unsigned long mfn), void *arg) {}
#endif

/*
 * The frames of @d that FIFO event channels keep mapped: each vCPU's
 * control block and the event-array pages. fn(arg, mfn) for each, under
 * d->event_lock. In common/event_fifo.c.
 */
void evtchn_fifo_memswap_frames(struct domain *d,
                                void (*fn)(void *arg, unsigned long mfn),
                                void *arg);

/* ---- arch/x86/mm/memswap.c: log-dirty (both kinds) ---------------------- */

/* Someone other than memswap uses log-dirty (or, PV, a shadow mode). */
bool memswap_log_dirty_busy(const struct domain *d);
/* @d can have log-dirty (a PV domain needs CONFIG_SHADOW_PAGING). */
bool memswap_log_dirty_possible(const struct domain *d);
/* 0, -EBUSY (in use), -EOPNOTSUPP (impossible), -ENOMEM. */
int memswap_log_dirty_enable(struct domain *d);
void memswap_log_dirty_disable(struct domain *d);
/* Bits of pfns [first, first + nr) (multiples of 64): how many set, -errno. */
long memswap_log_dirty_read(struct domain *d, unsigned long first,
                            unsigned long nr, uint64_t *bitmap, bool clear);

/* ---- arch/x86/mm/memswap.c: the translated guest's p2m (HAP) ----------- */

#ifdef CONFIG_HVM
#include <asm/p2m.h>

/*
 * memswap is writing a batch of @p2m's entries under its lock and flushes
 * once before it drops the lock, as EPT's deferred flush does: NPT's
 * hap_write_p2m_entry_post() leaves the flush to it.
 */
static inline bool memswap_defers_p2m_flush(const struct p2m_domain *p2m)
{
    return p2m->domain->memswap_p2m_batch && p2m_is_hostp2m(p2m);
}

unsigned long memswap_p2m_size(struct domain *d);
void memswap_p2m_lookup(struct domain *d, unsigned long gfn, unsigned int nr,
                        mfn_t *mfns, p2m_type_t *types);
int memswap_p2m_split(struct domain *d, unsigned long gfn, unsigned int nr);
bool memswap_p2m_begin(struct domain *d);
void memswap_p2m_end(struct domain *d, bool paused);
int memswap_p2m_replace(struct domain *d, unsigned long gfn, mfn_t old,
                        mfn_t new, bool if_clean);
#endif

#else /* !CONFIG_MEMSWAP */

static inline long memswap_domctl(struct domain *d, struct xen_domctl *op,
                                  XEN_GUEST_HANDLE_PARAM(xen_domctl_t) u_domctl,
                                  bool *copyback)
{
    return -EOPNOTSUPP;
}

static inline int memswap_domain_destroy(struct domain *d) { return 0; }

static inline bool memswap_owns_log_dirty(const struct domain *d)
{
    return false;
}

struct p2m_domain;
static inline bool memswap_defers_p2m_flush(const struct p2m_domain *p2m)
{
    return false;
}

#endif /* CONFIG_MEMSWAP */

#endif /* __XEN_MEMSWAP_H__ */
