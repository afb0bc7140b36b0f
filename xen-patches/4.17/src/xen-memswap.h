/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * xen/include/xen/memswap.h: the hooks of XEN_DOMCTL_memswap into common
 * Xen code (do_domctl, domain_kill, the grant table). The swap itself is
 * common/memswap/ (the engine, core/memswap.c, and its glue).
 */
#ifndef __XEN_MEMSWAP_H__
#define __XEN_MEMSWAP_H__

#include <xen/errno.h>
#include <xen/types.h>
#include <public/domctl.h>

struct domain;

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
 * domain_kill(): finish or roll back a swap in progress (they may be
 * interrupted between continuations) before the domain's memory goes.
 * 0 when done, -ERESTART while work is left (domain_kill() returns it and
 * XEN_DOMCTL_destroydomain continues).
 */
int memswap_domain_destroy(struct domain *d);

#else /* !CONFIG_MEMSWAP */

static inline long memswap_domctl(struct domain *d, struct xen_domctl *op,
                                  XEN_GUEST_HANDLE_PARAM(xen_domctl_t) u_domctl,
                                  bool *copyback)
{
    return -EOPNOTSUPP;
}

static inline int memswap_domain_destroy(struct domain *d) { return 0; }

#endif /* CONFIG_MEMSWAP */

#ifdef CONFIG_MEMSWAP
#ifdef CONFIG_GRANT_TABLE
/*
 * Every frame @d's grant table permits access to (v1/v2 shared entries of
 * type GTF_permit_access) or an active entry pins: fn(arg, mfn) for each,
 * under the grant table's read lock. In common/grant_table.c.
 */
void gnttab_memswap_frames(struct domain *d,
                           void (*fn)(void *arg, unsigned long mfn), void *arg);
#else
static inline void gnttab_memswap_frames(
    struct domain *d, void (*fn)(void *arg, unsigned long mfn), void *arg) {}
#endif
#endif /* CONFIG_MEMSWAP */

#endif /* __XEN_MEMSWAP_H__ */
