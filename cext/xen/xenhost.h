/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Python-free access to a Xen host for memswap, over Debian's libxen-dev
 * (libxenctrl, libxencall, libxenforeignmemory, libxenstore of Xen 4.17):
 *
 *  - the memswap domctl (XEN_DOMCTL_memswap, issued through libxencall:
 *    libxenctrl has no wrapper for a domctl Debian's Xen does not know):
 *    swaps (stop-and-copy or live, held after the pre-copy and finished
 *    later), their cancellation, and the query of where a domain's memory
 *    is;
 *  - the swap sequence of cext/coop.h on Xen: the preflight refusals, the
 *    cooperative suspend through control/shutdown, the cancelled resume;
 *  - reading a PV guest's P2M through foreign mappings.
 *
 * Used by the extension (cext/xen_backend.c, which releases the GIL around
 * these calls) and by the end-to-end test's observer (tests/e2e/tool.c).
 * Errors are errno values with the failing call's name and, where it
 * helps, a one-line explanation (struct ms_xen_error).
 */
#ifndef MEMSWAP_XENHOST_H
#define MEMSWAP_XENHOST_H

#include <stdint.h>

#include <xenctrl.h>
#include <xencall.h>
#include <xenforeignmemory.h>
#include <xenstore.h>

#include "cext/coop.h"
#include "core/xen_domctl_memswap.h"

#define MS_XEN_COLOUR_WORDS (XEN_DOMCTL_MEMSWAP_MAX_COLOURS / 64)

/*
 * The handles. All four libraries are reentrant (libxenctrl opened without
 * XC_OPENFLAG_NON_REENTRANT, libxencall's buffer cache and libxenstore
 * lock themselves), so several threads may use one ms_xen at once: a swap
 * that runs for seconds inside Xen does not hold up a domain list. The
 * owner keeps the handles open while any call runs.
 */
struct ms_xen {
    xc_interface *xch;
    xencall_handle *xcall;
    xenforeignmemory_handle *xfm;
    struct xs_handle *xsh;
};

struct ms_xen_error {
    int err;                    /* errno, 0 on success */
    const char *call;           /* the failing call */
    char msg[256];              /* why ("" for strerror only) */
};

/* ---- the memswap domctl ----------------------------------------------------- */

/*
 * struct xen_domctl with the memswap member in its union, as the patched
 * Xen sees it (the member fits the union's 128 bytes, so the size is
 * Debian's). It sits at the start of one hypercall-safe page; the colour
 * bitmap its guest handle points at follows at MS_XEN_BITMAP_OFFSET.
 */
struct ms_xen_domctl {
    uint32_t cmd;
    uint32_t interface_version;
    domid_t  domain;
    uint16_t _pad[3];
    union {
        struct xen_domctl_memswap memswap;
        uint8_t pad[128];
    } u;
};
#define MS_XEN_BITMAP_OFFSET 512

struct ms_xen_request {
    unsigned int domid;
    uint32_t flags;             /* XEN_DOMCTL_MEMSWAP_F_* (DRY_RUN, LIVE, HOLD) */
    uint32_t node;              /* or XEN_DOMCTL_MEMSWAP_NODE_ANY */
    uint32_t nr_colours, colour_shift;
    uint32_t live_max_rounds;   /* F_LIVE: 0 = the hypervisor's default (5) */
    uint32_t live_dirty_threshold;  /* F_LIVE: pages, 0 = its default (50) */
    /*
     * 0: a new request. The token a held swap returned (out->resume after
     * an F_HOLD request succeeded): that swap's final stop and commit.
     */
    uint64_t resume;
    uint64_t colours[MS_XEN_COLOUR_WORDS];  /* all zero: any colour */
};

/*
 * Fill one page (@page, XC_PAGE_SIZE bytes) with the domctl for @rq:
 * cmd, Debian's XEN_DOMCTL_INTERFACE_VERSION, op SWAP, the request and its
 * colour bitmap (the handle is null when every colour is allowed). Pure.
 */
void ms_xen_domctl_build(void *page, const struct ms_xen_request *rq);

/*
 * Issue one memswap swap domctl; 0 or an errno. @out gets the outputs
 * (also after a failure). After an F_LIVE | F_HOLD request, 0 with
 * out->resume != 0 means held after the pre-copy: issue the request again
 * with rq->resume = out->resume (for a PV guest, once it is suspended) to
 * finish it, or ms_xen_memswap_cancel() it.
 */
int ms_xen_memswap(struct ms_xen *x, const struct ms_xen_request *rq,
                   struct xen_domctl_memswap *out);

/*
 * XEN_DOMCTL_MEMSWAP_OP_CANCEL: roll back (or, past its point of no
 * return, finish) the swap held or in progress for @domid - the one with
 * token @resume, or whichever with 0 (a restarted caller does not know
 * it). 0, ENOENT (none), or an errno; @out gets that swap's outputs.
 */
void ms_xen_cancel_build(void *page, unsigned int domid, uint64_t resume);
int ms_xen_memswap_cancel(struct ms_xen *x, unsigned int domid, uint64_t resume,
                          struct xen_domctl_memswap *out);

/*
 * XEN_DOMCTL_MEMSWAP_OP_QUERY: where a domain's memory is. In: @domid,
 * the geometry (nr_colours 0: no colour counts), how many nodes to count
 * (nr_nodes), and a window of pfns whose frames to report ([first_pfn,
 * first_pfn + nr_frames)). Out: the arrays (MS_XEN_P2M_NONE where a pfn
 * has no frame) and the totals. One call; the hypervisor continues it
 * itself.
 */
struct ms_xen_query {
    unsigned int domid;
    uint32_t nr_colours, colour_shift, nr_nodes;
    uint64_t first_pfn;
    uint32_t nr_frames;
    /* out: counts as the hypervisor wrote them (pointers into the buffer) */
    const uint64_t *colour_counts, *node_counts, *frames;
    uint64_t nr_pfns;
    uint32_t frames_counted, tot_pages, host_nr_nodes;
    int translated;
};

/* Bytes of the hypercall buffer for @q: the domctl, then the three arrays. */
size_t ms_xen_query_size(const struct ms_xen_query *q);
/*
 * Lay out @q's domctl in @buf (ms_xen_query_size() bytes: struct
 * xen_domctl with op QUERY, the arrays after it, each handle pointing at
 * its array, null when not asked for). Pure.
 */
void ms_xen_query_build(void *buf, const struct ms_xen_query *q);
/*
 * Run @q in @buf (built by ms_xen_query_build(), in hypercall memory)
 * and point q's outputs into it; 0 or an errno (@e).
 */
int ms_xen_query(struct ms_xen *x, struct ms_xen_query *q, void *buf, struct ms_xen_error *e);

/*
 * A domain's occupancy, as the query reports it, in memory of the caller's
 * (malloc'd, ms_xen_occupancy_free()): frames per colour of the geometry
 * (nr_colours entries), per node (host_nr_nodes entries) and, with
 * @frames, the frame of every pfn (nr_pfns entries, MS_XEN_P2M_NONE where
 * none; a first query learns how many, at most MS_XEN_QUERY_MAX_PFNS:
 * EFBIG beyond). 0 or an errno (@e).
 */
#define MS_XEN_QUERY_MAX_PFNS   (1u << 27)
#define MS_XEN_QUERY_NODES      64
struct ms_xen_occupancy {
    uint64_t *colour_counts, *node_counts, *frames;
    uint32_t nr_colours;
    uint64_t nr_pfns;
    uint32_t frames_counted, tot_pages, host_nr_nodes;
    int translated;
};
int ms_xen_occupancy(struct ms_xen *x, unsigned int domid, uint32_t nr_colours,
                     uint32_t colour_shift, int frames, struct ms_xen_occupancy *o,
                     struct ms_xen_error *e);
void ms_xen_occupancy_free(struct ms_xen_occupancy *o);

/* ---- domains ---------------------------------------------------------------- */

/* One domain's info: 0, ESRCH, or the errno of xc_domain_getinfolist. */
int ms_xen_domain_info(struct ms_xen *x, unsigned int domid, xc_domaininfo_t *info);
/* SHUTDOWN_* of a shut-down domain, -1 if it is not shut down. */
int ms_xen_shutdown_reason(const xc_domaininfo_t *info);
/* The caller's own domain (xenstore relative "domid"), or -errno. */
int ms_xen_read_own_domid(struct ms_xen *x);

/* ---- the swap sequence ------------------------------------------------------ */

struct ms_xen_swap_op {
    /* in */
    struct ms_xen *x;
    struct ms_xen_request rq;
    unsigned int suspend_timeout_ms;    /* the guest's time to suspend itself */
    int force_suspend;                  /* skip the checks of control/ (PV driver there,
                                         * feature-suspend not 0) */
    /* out */
    struct xen_domctl_memswap result;   /* the last domctl's outputs */
    int have_result;
    struct ms_xen_error e;
    uint64_t suspend_ns, resume_ns;     /* summed over attempts */
    int xs_resume_failed;               /* xenstored not told of the resume */
};

/*
 * The whole swap as cext/coop.h runs it: the preflight (below), then, if
 * cooperative and the guest is PV, write "suspend" to control/shutdown in
 * a transaction that finds the node empty, wait for SHUTDOWN_suspend,
 * swap, and resume the guest cancelled (as `xl save -c`), also when the
 * swap failed; live (rq.flags LIVE), the swap is held after its pre-copy
 * (F_HOLD) and the guest suspended only for its final stop. A translated
 * guest is swapped without any of that: Xen pauses it itself (rq.flags
 * without LIVE) or only for the final stop (LIVE). Returns 0
 * or an errno (s->e, o->stage). Blocks: call it without the GIL.
 */
int ms_xen_swap_run(struct ms_xen_swap_op *s, const struct ms_coop_policy *p,
                    struct ms_coop_outcome *o);

/*
 * The refusals of contract A, before anything is written or paused: domain
 * 0; a dry-run memswap domctl (the hypervisor's refusal of the control and
 * hardware domain, the caller, a dying domain, log-dirty mode, a type it
 * cannot swap); the domain's info (shut down for any reason, paused); the
 * caller's own domain; a pending control/shutdown request. 0, or an errno
 * with s->e set (call MS_REFUSAL_CALL for a refusal, XEN_DOMCTL_memswap
 * for a dry run that failed otherwise, e.g. ENOMEM or ENOSYS).
 */
int ms_xen_preflight(struct ms_xen_swap_op *s);

/* Resume (cancelled) a domain shut down for suspend; 0 or an errno (@e). */
int ms_xen_resume_cancelled(struct ms_xen *x, unsigned int domid, struct ms_xen_error *e);

/* ---- the guest's P2M -------------------------------------------------------- */

#define MS_XEN_P2M_NONE (~(uint64_t)0)

/*
 * Read a 64-bit PV guest's P2M through its 3-level frame-list tree
 * (shared_info -> pfn_to_mfn_frame_list_list -> mid frames -> leaves),
 * foreign-mapped read-only. Nothing the guest wrote is trusted: max_pfn is
 * bounded by the domain's max_pages plus 4 GiB of holes (EFBIG beyond), a
 * mid or leaf frame that cannot be mapped leaves its pfns absent, and an
 * entry that is invalid or carries the foreign/identity marker bits is
 * MS_XEN_P2M_NONE. Refuses domain 0 (EACCES) and, when @own_domid >= 0,
 * the caller's own domain (EDEADLK): foreign-mapping oneself fails in Xen.
 * On success *p2m (malloc'd, free it) holds *nr entries.
 */
int ms_xen_read_p2m(struct ms_xen *x, unsigned int domid, int own_domid,
                    uint64_t **p2m, unsigned long *nr, struct ms_xen_error *e);

#endif /* MEMSWAP_XENHOST_H */
