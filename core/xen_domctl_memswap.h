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
 * It also passes Xen's public-header checks (C89 -ansi, C99, C++98): no
 * anonymous unions.
 *
 * Layout is identical for 32- and 64-bit callers: every field is naturally
 * aligned with explicit padding, 64-bit fields are uint64_aligned_t and the
 * buffers are 64-bit guest handles. sizeof == 128, exactly the domctl
 * union, so struct xen_domctl does not change size and
 * XEN_DOMCTL_INTERFACE_VERSION stays 0x15 (Debian's xl keeps working).
 *
 * One domctl, three operations (op):
 *
 *  XEN_DOMCTL_MEMSWAP_OP_SWAP    move the domain's memory (u.swap). PV and
 *                                translated (HVM, PVH) guests alike.
 *  XEN_DOMCTL_MEMSWAP_OP_QUERY   where the domain's memory is (u.query):
 *                                frames per colour and per node, and the
 *                                frame of each pfn of a window. Read-only.
 *  XEN_DOMCTL_MEMSWAP_OP_CANCEL  abandon the swap held or in progress for
 *                                the domain (see "Cancel" below).
 *
 * ---- OP_SWAP ---------------------------------------------------------------
 *
 * Stop-and-copy (flags without F_LIVE): the domain is paused from the
 * start of the swap to its commit; paused_ns is that pause.
 *
 * Live (F_LIVE): the memory is copied while the domain runs, in pre-copy
 * rounds under Xen's log-dirty mode: the first round copies every frame
 * that moves, each later one reads and clears the dirty log and copies what
 * was written since. Pre-copy stops, as libxenguest's
 * simple_precopy_policy() does, when a read finds fewer than
 * live_dirty_threshold dirty pages (0: XEN_DOMCTL_MEMSWAP_LIVE_DIRTY, 50)
 * or after live_max_rounds rounds (0: XEN_DOMCTL_MEMSWAP_LIVE_ROUNDS, 5;
 * at most XEN_DOMCTL_MEMSWAP_LIVE_ROUNDS_MAX). Then:
 *  - a translated guest: every frame not written since the last read is
 *    committed while the guest still runs (each frame atomically under the
 *    p2m lock); then the domain is paused for the rest - the frames written
 *    meanwhile, and those Xen maps - and unpaused;
 *  - a PV guest: the domain is paused, the plan is made again (the guest's
 *    page tables changed while it ran), what was written since its copy is
 *    copied again, and everything is committed.
 * paused_ns is the final stop's pause, live_final_pages the pages copied
 * during it, live_precopy_pages those copied before it (first round
 * included) and live_rounds the rounds made. Live mode needs log-dirty:
 * -EBUSY if someone else (a save, a migration, VRAM tracking) has it on,
 * -EOPNOTSUPP if the domain cannot have it (a PV guest on a hypervisor
 * built without shadow paging). A translated guest uses log-dirty in
 * stop-and-copy mode too (to see what a device model writes while the
 * domain is paused), with the same refusal.
 *
 * Hold (F_LIVE | F_HOLD): return after the pre-copy, before anything the
 * domain can observe has changed, with 0 and a non-zero token in resume
 * (live_rounds and live_precopy_pages are set); log-dirty stays on and the
 * swap keeps its frames. The caller then does what the final stop needs -
 * for a PV guest: suspend it cooperatively, as the product does, so that
 * Linux pins every page table - and issues the same request again with
 * that resume token (flags and parameters are not read again): the final
 * stop and the commit run and the outputs are final. Until then every
 * other swap request for the domain gets -EBUSY; OP_CANCEL or the domain's
 * destruction gives everything back. A held swap never times out by itself:
 * a caller that may die between the two calls must be able to cancel it
 * when it restarts.
 *
 * Continuations: a new request has resume == 0. When the hypervisor must
 * yield it writes a non-zero token into resume (in the caller's buffer)
 * and creates a hypercall continuation that re-enters with it. On
 * completion (0 or -errno) the outputs are written back and resume is 0,
 * except after a hold (0 and resume != 0). A swap request whose resume
 * token is not the domain's current one gets -EBUSY while a swap is in
 * progress or held, -EINVAL otherwise (-ENODEV if the domain is dying).
 *
 * Errors (nothing is changed on any of them): -ESRCH no such domain;
 * -EACCES the control/hardware domain; -EDEADLK the caller itself; -ENODEV
 * a dying domain; -EOPNOTSUPP a domain memswap cannot swap (32-bit PV, a
 * translated guest without HAP or with nested virtualisation, memory
 * sharing, paging or altp2m in use, a passed-through device, live mode for
 * a PV guest without shadow paging); -EBUSY a swap already in progress or
 * held, or log-dirty in use by someone else; -ENOMEM too few free frames on
 * the colours/node; -EINVAL a malformed request (op, flags, padding,
 * geometry, colours, node, rounds) or a PV guest whose P2M cannot be used;
 * -EAGAIN the domain changed under the swap before its point of no return
 * (it gained frames; PV: someone took a new reference to a frame, or a page
 * table was being built): nothing changed, try again; -EPERM not
 * allowed (XSM); -EFAULT a bad buffer address.
 *
 * Outputs are written also after a failure (what was found before it,
 * failed_phase the phase that failed, core/memswap.h enum memswap_phase).
 *
 * ---- OP_QUERY --------------------------------------------------------------
 *
 * Where the domain's memory is: its own frames that its P2M maps (a PV
 * guest's P2M tree from shared_info, each entry checked against the M2P;
 * a translated guest's p2m entries of RAM types), counted per colour of the
 * given geometry and per NUMA node, and optionally the frame of each pfn of
 * the window [first_pfn, first_pfn + nr_frames) (XEN_DOMCTL_MEMSWAP_NO_FRAME
 * where there is none). The same for PV and translated guests. Read-only:
 * no pause, no reference kept, allowed while a swap is in progress or held
 * (it then sees the frames as they are at that moment). Refused for the
 * control/hardware domain (-EACCES) and the caller (-EDEADLK), as a swap.
 * Preemptible: progress is kept in resume (next pfn + 1) and the counts so
 * far in the caller's arrays, which a request with resume == 0 has the
 * hypervisor zero first. The counts are in 64-bit entries; node_counts
 * entries beyond the host's nodes are zeroed; host_nr_nodes says how many
 * the host has.
 *
 * ---- OP_CANCEL -------------------------------------------------------------
 *
 * The swap held or in progress for the domain (resume: its token, or 0 for
 * whichever there is - a restarted caller does not know the token) is
 * rolled back if it is before its point of no return, finished otherwise;
 * -ENOENT if there is none. Preemptible like a swap; the outputs in u.swap
 * are the abandoned swap's. The original caller's next continuation then
 * gets -EINVAL.
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

/* op */
#define XEN_DOMCTL_MEMSWAP_OP_SWAP              0
#define XEN_DOMCTL_MEMSWAP_OP_QUERY             1
#define XEN_DOMCTL_MEMSWAP_OP_CANCEL            2

/* flags of OP_SWAP (OP_QUERY and OP_CANCEL take none) */
#define XEN_DOMCTL_MEMSWAP_F_DRY_RUN            (1u << 0) /* plan, report, change nothing */
#define XEN_DOMCTL_MEMSWAP_F_LIVE               (1u << 1) /* pre-copy while the domain runs */
#define XEN_DOMCTL_MEMSWAP_F_HOLD               (1u << 2) /* with F_LIVE: stop after pre-copy */
/* node */
#define XEN_DOMCTL_MEMSWAP_NODE_ANY             0xffffffffu
/* nr_colours: power of two, 1..XEN_DOMCTL_MEMSWAP_MAX_COLOURS */
#define XEN_DOMCTL_MEMSWAP_MAX_COLOURS          1024
/* live pre-copy stop condition: defaults (for 0) and the round limit */
#define XEN_DOMCTL_MEMSWAP_LIVE_DIRTY           50
#define XEN_DOMCTL_MEMSWAP_LIVE_ROUNDS          5
#define XEN_DOMCTL_MEMSWAP_LIVE_ROUNDS_MAX      64
/* frames_kept[] index, the order of core/memswap.h's enum memswap_kept_reason */
#define XEN_DOMCTL_MEMSWAP_KEPT_GRANTED         0 /* a grant entry permits access / pins it */
#define XEN_DOMCTL_MEMSWAP_KEPT_FOREIGN         1 /* mapped by someone else */
#define XEN_DOMCTL_MEMSWAP_KEPT_UNEXPLAINED     2 /* counts we cannot account for */
#define XEN_DOMCTL_MEMSWAP_KEPT_NOT_IN_P2M      3 /* owned, not in the P2M */
#define XEN_DOMCTL_MEMSWAP_KEPT_XEN             4 /* Xen maps it (event channels, PMU) */
#define XEN_DOMCTL_MEMSWAP_KEPT_P2M_TYPE        5 /* its p2m type (ioreq server, ...) */
#define XEN_DOMCTL_MEMSWAP_KEPT_CHANGED         6 /* its P2M entry changed during a live swap */
#define XEN_DOMCTL_MEMSWAP_KEPT_NR              7
/* OP_QUERY frames[] entry for a pfn without a frame of the domain */
#define XEN_DOMCTL_MEMSWAP_NO_FRAME             (~(uint64_t)0)

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
/* What XEN_GUEST_HANDLE_64(uint64) is on x86: set .p to the buffer. */
#define XEN_DOMCTL_MEMSWAP_HANDLE \
    union { uint64_t *p; XEN_DOMCTL_MEMSWAP_U64 q; }
#endif

/*
 * OP_SWAP. Frame counts are 32-bit, as Xen's own (struct domain's
 * tot_pages is an unsigned int); live_precopy_pages saturates.
 */
struct xen_domctl_memswap_swap {
    /* IN */
    uint32_t node;                      /* NUMA node or ..._NODE_ANY */
    /* The LLC geometry the colour set refers to:
     * colour(mfn) = (mfn >> colour_shift) & (nr_colours - 1). */
    uint32_t nr_colours;
    uint32_t colour_shift;              /* in frames, <= 32 */
    uint32_t live_max_rounds;           /* F_LIVE: 0 = default, <= ..._ROUNDS_MAX */
    /* Allowed colours, a bitmap of (nr_colours + 63) / 64 words (bit c of
     * word c / 64); a null handle or all-zero bitmap means any. */
    XEN_DOMCTL_MEMSWAP_HANDLE colours;
    uint32_t live_dirty_threshold;      /* F_LIVE: pages, 0 = default */
    /* OUT */
    uint32_t failed_phase;              /* core/memswap.h enum memswap_phase */
    uint32_t frames_total;              /* frames the domain owned */
    uint32_t frames_moved;              /* dry run: would move */
    uint32_t frames_kept[XEN_DOMCTL_MEMSWAP_KEPT_NR];
    uint32_t continuations;             /* times preempted and resumed */
    XEN_DOMCTL_MEMSWAP_U64 bytes_copied;    /* every copy, all rounds */
    XEN_DOMCTL_MEMSWAP_U64 paused_ns;       /* the pause (live: the final stop's) */
    XEN_DOMCTL_MEMSWAP_U64 extra_bytes_peak;/* new frames + metadata at peak */
    uint32_t live_rounds;               /* pre-copy rounds made */
    uint32_t live_precopy_pages;        /* pages copied before the final stop */
    uint32_t live_final_pages;          /* pages copied during the final stop */
    uint32_t pad;                       /* IN: must be 0 */
};

/* OP_QUERY. */
struct xen_domctl_memswap_query {
    /* IN */
    uint32_t nr_colours;                /* 0: no colour counts; else as for a swap */
    uint32_t colour_shift;
    XEN_DOMCTL_MEMSWAP_HANDLE colour_counts;    /* OUT: uint64[nr_colours] */
    uint32_t nr_nodes;                  /* entries of node_counts (0: none) */
    uint32_t nr_frames;                 /* entries of frames (0: none) */
    XEN_DOMCTL_MEMSWAP_HANDLE node_counts;      /* OUT: uint64[nr_nodes] */
    XEN_DOMCTL_MEMSWAP_HANDLE frames;           /* OUT: uint64[nr_frames], mfn or NO_FRAME */
    XEN_DOMCTL_MEMSWAP_U64 first_pfn;   /* the window's first pfn */
    /* OUT */
    XEN_DOMCTL_MEMSWAP_U64 nr_pfns;     /* the domain's pfn space: PV max_pfn,
                                         * translated highest mapped gfn + 1 */
    uint32_t frames_counted;            /* frames counted (the sum of either array) */
    uint32_t tot_pages;                 /* frames the domain owns */
    uint32_t host_nr_nodes;             /* NUMA nodes of the host */
    uint32_t translated;                /* 1: HVM/PVH, 0: PV */
    uint32_t pad[10];                   /* IN: must be 0 */
};

struct xen_domctl_memswap {
    uint32_t op;                        /* IN: XEN_DOMCTL_MEMSWAP_OP_* */
    uint32_t flags;                     /* IN: XEN_DOMCTL_MEMSWAP_F_* (OP_SWAP) */
    /* IN/OUT: continuation or hold token (OP_SWAP, OP_CANCEL), next pfn + 1
     * (OP_QUERY); 0 for a new request (see above). */
    XEN_DOMCTL_MEMSWAP_U64 resume;
    union {
        struct xen_domctl_memswap_swap swap;
        struct xen_domctl_memswap_query query;
        uint8_t pad[112];
    } u;
};
typedef struct xen_domctl_memswap xen_domctl_memswap_t;

#define XEN_DOMCTL_MEMSWAP_SIZE                 128

#endif /* XEN_DOMCTL_MEMSWAP_H */
