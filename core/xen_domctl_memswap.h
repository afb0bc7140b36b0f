/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * XEN_DOMCTL_memswap: the public ABI of the memswap domctl.
 *
 * One file, three users:
 *  - the hypervisor: xen-patches/4.17/apply copies it to
 *    xen/include/public/xen_domctl_memswap.h and public/domctl.h includes it
 *    (the struct is a member of struct xen_domctl's union);
 *  - userspace tools built against Debian's libxen-dev headers (include
 *    <xen/xen.h> and <xen/domctl.h> with __XEN_TOOLS__ first, then this);
 *  - userspace code with no Xen headers at all (a local fallback defines
 *    the two Xen types used here with the same layout).
 * It also passes Xen's public-header checks (C89 -ansi, C99, C++98).
 *
 * Layout is identical for 32- and 64-bit callers: every field is naturally
 * aligned with explicit padding, 64-bit fields are uint64_aligned_t and the
 * colour bitmap is a 64-bit guest handle. sizeof == 120, within the 128
 * bytes of the domctl union, so struct xen_domctl does not change size and
 * XEN_DOMCTL_INTERFACE_VERSION stays 0x15 (Debian's xl keeps working).
 *
 * Protocol:
 *  - A new request has resume == 0. The hypervisor validates it, pauses the
 *    domain and makes progress. When it must yield it writes a non-zero
 *    token into resume (in the caller's buffer) and creates a hypercall
 *    continuation; the continuation re-enters with that token and resumes.
 *    Callers never see the token unless a continuation was abandoned.
 *  - While a swap of the domain is in progress, a request with resume == 0
 *    (or a token that is not the current one) fails with -EBUSY.
 *  - On completion (0 or -errno) the outputs are written back and resume is
 *    reset to 0, so the buffer may be reused for another request.
 * Errors: -ESRCH no such domain; -EACCES the control/hardware domain;
 * -EDEADLK the caller itself; -ENODEV a dying domain; -EOPNOTSUPP HVM/PVH
 * or 32-bit PV; -EBUSY a swap already in progress (or the domain is in
 * log-dirty mode); -ENOMEM too few free frames on the colours/node;
 * -EINVAL a malformed request (flags, padding, geometry, colours, node) or
 * a guest whose P2M cannot be used; -EAGAIN someone took a new reference to
 * a frame during the swap (nothing changed, try again); -EPERM not allowed
 * (XSM); -EFAULT a bad colour bitmap address.
 */
#ifndef XEN_DOMCTL_MEMSWAP_H
#define XEN_DOMCTL_MEMSWAP_H

#if !defined(__XEN__)
#include <stdint.h>
#endif

/*
 * Outside upstream's numbering (0..86 and 1000..1003 in 4.17), so later
 * upstream domctls cannot collide with it: 'M' 'S'.
 */
#define XEN_DOMCTL_memswap                      0x4d53

/* flags */
#define XEN_DOMCTL_MEMSWAP_F_DRY_RUN            (1u << 0) /* plan, report, change nothing */
/* node */
#define XEN_DOMCTL_MEMSWAP_NODE_ANY             0xffffffffu
/* nr_colours: power of two, 1..XEN_DOMCTL_MEMSWAP_MAX_COLOURS */
#define XEN_DOMCTL_MEMSWAP_MAX_COLOURS          1024
/* frames_kept[] index, the order of core/memswap.h's enum memswap_kept_reason */
#define XEN_DOMCTL_MEMSWAP_KEPT_GRANTED         0 /* a grant entry permits access */
#define XEN_DOMCTL_MEMSWAP_KEPT_FOREIGN         1 /* mapped by someone else */
#define XEN_DOMCTL_MEMSWAP_KEPT_UNEXPLAINED     2 /* counts we cannot account for */
#define XEN_DOMCTL_MEMSWAP_KEPT_NOT_IN_P2M      3 /* owned, not in the guest's P2M */
#define XEN_DOMCTL_MEMSWAP_KEPT_NR              4

/*
 * The two Xen types used below. Inside the hypervisor and with Xen's public
 * headers they come from xen.h; otherwise a local equivalent of the same
 * size and alignment.
 */
#if defined(__XEN__) || defined(uint64_aligned_t)
#define XEN_DOMCTL_MEMSWAP_U64 uint64_aligned_t
#elif defined(__GNUC__)
#define XEN_DOMCTL_MEMSWAP_U64 uint64_t __attribute__((__aligned__(8)))
#else
#error "xen_domctl_memswap.h needs uint64_aligned_t or GCC's aligned attribute"
#endif

#if defined(__XEN__) || defined(XEN_GUEST_HANDLE_64)
#define XEN_DOMCTL_MEMSWAP_HANDLE XEN_GUEST_HANDLE_64(uint64)
#else
/* What XEN_GUEST_HANDLE_64(uint64) is on x86: set .p to the bitmap. */
#define XEN_DOMCTL_MEMSWAP_HANDLE \
    union { uint64_t *p; XEN_DOMCTL_MEMSWAP_U64 q; }
#endif

struct xen_domctl_memswap {
    /* IN: the target domain is xen_domctl.domain. */
    uint32_t flags;                     /* XEN_DOMCTL_MEMSWAP_F_* */
    uint32_t node;                      /* NUMA node or ..._NODE_ANY */
    /* IN: the LLC geometry the colour set refers to:
     * colour(mfn) = (mfn >> colour_shift) & (nr_colours - 1). */
    uint32_t nr_colours;
    uint32_t colour_shift;              /* in frames, <= 32 */
    /* IN: allowed colours, a bitmap of (nr_colours + 63) / 64 words
     * (bit c of word c / 64); a null handle or all-zero bitmap means any. */
    XEN_DOMCTL_MEMSWAP_HANDLE colours;
    /* IN/OUT: continuation token, 0 for a new request (see above). */
    XEN_DOMCTL_MEMSWAP_U64 resume;
    /* OUT (also after a failure: what was found before it). */
    XEN_DOMCTL_MEMSWAP_U64 frames_total;    /* frames the domain owned */
    XEN_DOMCTL_MEMSWAP_U64 frames_moved;    /* dry run: would move */
    XEN_DOMCTL_MEMSWAP_U64 frames_kept[XEN_DOMCTL_MEMSWAP_KEPT_NR];
    XEN_DOMCTL_MEMSWAP_U64 bytes_copied;
    XEN_DOMCTL_MEMSWAP_U64 paused_ns;       /* guest-visible pause */
    XEN_DOMCTL_MEMSWAP_U64 continuations;   /* times preempted and resumed */
    XEN_DOMCTL_MEMSWAP_U64 extra_bytes_peak;/* new frames + metadata at peak */
    uint32_t failed_phase;              /* core/memswap.h enum memswap_phase */
    uint32_t pad;                       /* IN: must be 0 */
};
typedef struct xen_domctl_memswap xen_domctl_memswap_t;

#define XEN_DOMCTL_MEMSWAP_SIZE                 120

#endif /* XEN_DOMCTL_MEMSWAP_H */
