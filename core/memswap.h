/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memswap: move a running domain's memory to other machine frames.
 *
 * This header is the engine's interface. It is included by the hypervisor
 * glue (xen-patches: xen/common/memswap.c) and by the simulator (sim/), and
 * is freestanding: fixed-width integers only, no host types. Everything the
 * engine needs from its host is declared in core/private.h.
 *
 * The engine works in resumable phases. Each call to memswap_run() makes
 * progress until the swap is done, fails, or the host's preemption check
 * asks it to stop (then it returns MEMSWAP_PREEMPTED and the host calls
 * again later, as a hypercall continuation would). Progress lives in the
 * per-domain struct memswap_ctx. Until the point of no return
 * (MEMSWAP_PH_COMMIT) nothing the domain can observe has changed, so every
 * failure before it rolls back completely.
 *
 * Two kinds of guest, one algorithm. A PV guest's P2M is its own (a tree in
 * its memory, registered in shared_info) and its page tables hold machine
 * frame numbers: the engine translates them. A translated guest's (HVM,
 * PVH) p2m is Xen's: the engine replaces p2m entries, keeping their types,
 * and nothing in guest memory changes. Both kinds share the index, the
 * verdicts, allocation, copying, freezing, the commit of a frame, freeing,
 * the rollback, continuations and the re-checks; private.h's
 * ms_host_translated() chooses.
 *
 * Live mode (MEMSWAP_F_LIVE) copies while the domain runs, in pre-copy
 * rounds under log-dirty (MEMSWAP_PH_PRECOPY), and stops it only for the
 * rest; see xen_domctl_memswap.h for what the caller sees.
 */
#ifndef MEMSWAP_CORE_H
#define MEMSWAP_CORE_H

#include <stdint.h>

/* Colour bitmap: up to 1024 colours, the largest LLC geometry we accept. */
#define MEMSWAP_MAX_COLOURS      1024
#define MEMSWAP_COLOUR_WORDS     (MEMSWAP_MAX_COLOURS / 64)
#define MEMSWAP_NODE_ANY         0xffffffffu

/* Request flags. */
#define MEMSWAP_F_DRY_RUN        (1u << 0)  /* plan and report, change nothing */
#define MEMSWAP_F_LIVE           (1u << 1)  /* pre-copy while the domain runs */
#define MEMSWAP_F_HOLD           (1u << 2)  /* with LIVE: return MEMSWAP_HELD after pre-copy */

/*
 * Live pre-copy stops when a read of the dirty log finds fewer than
 * live_dirty_threshold pages, or after live_max_rounds rounds (the first,
 * full copy included), like libxenguest's simple_precopy_policy(). 0 in a
 * request means the default.
 */
#define MEMSWAP_LIVE_DIRTY_DEFAULT   50
#define MEMSWAP_LIVE_ROUNDS_DEFAULT  5
#define MEMSWAP_LIVE_ROUNDS_MAX      64

/* Why a frame stays where it is. Order is ABI (result array index). */
enum memswap_kept_reason {
    MEMSWAP_KEPT_GRANTED = 0,    /* PV: a grant entry permits access to it;
                                  * translated: an active grant pins it */
    MEMSWAP_KEPT_FOREIGN,        /* extra references: foreign/grant-mapped by others */
    MEMSWAP_KEPT_UNEXPLAINED,    /* counts/type disagree with what we can account for */
    MEMSWAP_KEPT_NOT_IN_P2M,     /* owned, but the guest's P2M does not map it */
    MEMSWAP_KEPT_XEN,            /* Xen maps it for the guest and keeps it mapped:
                                  * FIFO event-channel pages, the PMU page */
    MEMSWAP_KEPT_P2M_TYPE,       /* translated: its p2m type keeps it (ioreq
                                  * server, paging, sharing, broken) */
    MEMSWAP_KEPT_CHANGED,        /* live: its P2M entry changed while the swap ran */
    MEMSWAP_KEPT_NR
};

/* What a frame is to the engine (classification). */
enum memswap_frame_class {
    MEMSWAP_FC_NONE = 0,         /* pfn not populated */
    MEMSWAP_FC_DATA,             /* plain page: copy */
    MEMSWAP_FC_L1, MEMSWAP_FC_L2, MEMSWAP_FC_L3, MEMSWAP_FC_L4, /* translate PTEs */
    MEMSWAP_FC_P2M_LEAF,         /* guest P2M leaf: translate entries, keep markers */
    MEMSWAP_FC_P2M_MID,          /* frame list (mfns of leaves) */
    MEMSWAP_FC_P2M_TOP,          /* frame list list (mfns of mids) */
    MEMSWAP_FC_NR
};

/*
 * Cache colouring: colour(mfn) = (mfn >> colour_shift) & (nr_colours - 1).
 * For a physically indexed LLC of S sets of L-byte lines with 4 KiB pages,
 * nr_colours = S * L / 4096 / (frames per colour stripe), colour_shift = 0
 * in the usual page-granular colouring.
 */
struct memswap_geometry {
    uint32_t nr_colours;         /* power of two, 1..MEMSWAP_MAX_COLOURS */
    uint32_t colour_shift;       /* in frames */
};

struct memswap_request {
    uint32_t domid;
    uint32_t flags;              /* MEMSWAP_F_* */
    uint32_t node;               /* NUMA node, or MEMSWAP_NODE_ANY */
    uint32_t live_max_rounds;    /* LIVE: 0 = default, <= MEMSWAP_LIVE_ROUNDS_MAX */
    struct memswap_geometry geom;
    uint32_t live_dirty_threshold; /* LIVE: pages, 0 = default */
    uint32_t pad;                /* must be 0 */
    uint64_t colours[MEMSWAP_COLOUR_WORDS]; /* bitmap; all-zero means "any colour" */
};

/* Phases, in order. A result's phase says where a failure happened. */
enum memswap_phase {
    MEMSWAP_PH_IDLE = 0,
    MEMSWAP_PH_SCAN,             /* find P2M frames, enumerate own frames */
    MEMSWAP_PH_COUNT_REFS,       /* walk own page tables: expected references */
    MEMSWAP_PH_CLASSIFY,         /* movable or kept (with reason) */
    MEMSWAP_PH_ALLOC,            /* target frames on the requested colours/node */
    MEMSWAP_PH_COPY,             /* copy data, translate tables and P2M into new frames */
    MEMSWAP_PH_PRECOPY,          /* live: copy again what the running domain wrote */
    MEMSWAP_PH_FREEZE,           /* stop new references to old frames, re-verify counts */
    MEMSWAP_PH_COMMIT,           /* POINT OF NO RETURN: switch every holder, M2P, counts */
    MEMSWAP_PH_FREE,             /* return old frames to the heap (domain already running) */
    MEMSWAP_PH_DONE,
    MEMSWAP_PH_NR
};

struct memswap_result {
    uint64_t frames_total;       /* frames the domain owned at the start */
    uint64_t frames_moved;       /* moved; for a dry run, what would move */
    uint64_t frames_kept[MEMSWAP_KEPT_NR];
    uint64_t frames_by_class[MEMSWAP_FC_NR]; /* of moved frames */
    uint64_t ptes_translated;    /* PTE and P2M entries rewritten */
    uint64_t bytes_copied;
    uint64_t paused_ns;          /* guest-visible pause */
    uint64_t phase_ns[MEMSWAP_PH_NR];
    uint64_t continuations;      /* times the engine was preempted and resumed */
    uint64_t extra_bytes_peak;   /* new frames + engine metadata at the peak */
    uint64_t unpinned_pgds;      /* Linux page directories Xen did not know, translated */
    uint32_t failed_phase;       /* enum memswap_phase, when rc != 0 */
    uint32_t translated;         /* 1: the domain's p2m is Xen's (HVM, PVH) */
    /* Live mode. */
    uint32_t live_rounds;        /* pre-copy rounds made, the full copy included */
    uint32_t live_dirty_last;    /* dirty pages the last read of the log found */
    uint64_t live_precopy_pages; /* pages copied before the final stop */
    uint64_t live_final_pages;   /* pages copied during the final stop */
    uint64_t live_committed_running; /* translated: frames committed while it ran */
};

/*
 * Return values of memswap_run(): 0 done, MEMSWAP_PREEMPTED, MEMSWAP_HELD
 * (a MEMSWAP_F_HOLD swap finished its pre-copy: call memswap_run() again
 * for the final stop, or memswap_cancel()), or -errno.
 */
#define MEMSWAP_PREEMPTED        1
#define MEMSWAP_HELD             2

struct domain;
struct memswap_ctx;

/*
 * Begin a swap of @d. @ctxp is the host's per-domain context slot: a swap
 * already in progress there is refused with -EBUSY. Validates the request
 * (-EINVAL) and the domain (ms_host_check_domain). Does not pause: the
 * first memswap_run() does, unless this is a dry run or a live swap (which
 * pauses for its final stop only).
 */
int memswap_begin(struct domain *d, const struct memswap_request *req,
                  struct memswap_ctx **ctxp);

/*
 * Make progress. Returns 0 when the swap is complete (or the dry run
 * planned), MEMSWAP_PREEMPTED when the host asked to stop (call again with
 * the same context), MEMSWAP_HELD once after the pre-copy of a HOLD swap
 * (call again to finish it), or -errno after a complete rollback. On 0 or
 * -errno the context's result is final; release it with memswap_end().
 */
int memswap_run(struct memswap_ctx *ctx);

/*
 * Abandon a swap between two memswap_run() calls. Before the point of no
 * return this rolls back (-EINTR recorded); after it, it finishes the swap,
 * because a committed swap can only go forward.
 */
int memswap_abort(struct memswap_ctx *ctx);

/*
 * memswap_abort(), resumable: returns MEMSWAP_PREEMPTED while there is
 * work left (call it again), then the final result. For a host that must
 * not undo a large domain's swap in one go (domain destruction).
 */
int memswap_cancel(struct memswap_ctx *ctx);

const struct memswap_result *memswap_result(const struct memswap_ctx *ctx);
enum memswap_phase memswap_phase(const struct memswap_ctx *ctx);
/*
 * Position within the current phase: frames of the index; while scanning,
 * P2M leaves, then mid frames (of 512) while marking the tree.
 */
void memswap_progress(const struct memswap_ctx *ctx, uint64_t *done, uint64_t *total);
void memswap_end(struct memswap_ctx *ctx);

/* Plan details for tests and tools (valid once SCAN is done, until end). */
unsigned long memswap_nr_pfns(const struct memswap_ctx *ctx);
/* For pfn: class, kept reason (-1 if moved or absent), old and new mfn. */
int memswap_pfn_info(const struct memswap_ctx *ctx, unsigned long pfn,
                     int *cls, int *kept_reason,
                     uint64_t *old_mfn, uint64_t *new_mfn);
/* The frames indexed so far (SCAN may still be adding), in pfn order. */
unsigned long memswap_nr_frames(const struct memswap_ctx *ctx);
int memswap_frame_info(const struct memswap_ctx *ctx, unsigned long i,
                       uint64_t *pfn, uint64_t *old_mfn, uint64_t *new_mfn);

/*
 * Where a domain's memory is (XEN_DOMCTL_MEMSWAP_OP_QUERY), for PV and
 * translated guests alike, without a swap context and without changing
 * anything: no pause, no reference kept.
 *
 * memswap_query_size(): the domain's pfn space (PV: max_pfn from
 * shared_info, bounded as a swap bounds it; translated: the highest mapped
 * gfn + 1), 0 or -EINVAL (a PV guest with no usable P2M registration).
 *
 * memswap_query_range(): pfns [first, first + nr), nr <= MEMSWAP_QUERY_BATCH
 * (bounded work: the host calls it in a loop with its own preemption
 * checks). A pfn has a frame when the domain's P2M maps it to a plain page
 * the domain owns (PV: whose M2P entry names the pfn; translated: of a RAM
 * p2m type). frames[i] gets that frame or MEMSWAP_NO_FRAME (frames may be
 * NULL); each frame found adds 1 to q->colour_counts[its colour] (when
 * q->geom.nr_colours and q->colour_counts), q->node_counts[its node] (when
 * below q->nr_nodes) and q->frames_counted. 0, or -EINVAL as above.
 */
#define MEMSWAP_QUERY_BATCH      512
#define MEMSWAP_NO_FRAME         (~(uint64_t)0)
struct memswap_query {
    struct memswap_geometry geom;       /* nr_colours 0: no colour counts */
    uint64_t *colour_counts;            /* [geom.nr_colours] or NULL */
    uint64_t *node_counts;              /* [nr_nodes] or NULL */
    uint32_t nr_nodes;
    uint32_t pad;
    uint64_t frames_counted;
};
int memswap_query_size(struct domain *d, uint64_t *nr_pfns);
int memswap_query_range(struct domain *d, struct memswap_query *q,
                        uint64_t first, unsigned int nr, uint64_t *frames);

const char *memswap_phase_name(enum memswap_phase ph);
const char *memswap_kept_name(enum memswap_kept_reason r);
const char *memswap_class_name(enum memswap_frame_class c);

static inline unsigned int memswap_colour_of(const struct memswap_geometry *g,
                                             uint64_t mfn)
{
    return (unsigned int)((mfn >> g->colour_shift) & (g->nr_colours - 1));
}

static inline int memswap_colour_allowed(const struct memswap_request *req,
                                         unsigned int colour)
{
    unsigned int i;

    for ( i = 0; i < MEMSWAP_COLOUR_WORDS; i++ )
        if ( req->colours[i] )
            return (req->colours[colour / 64] >> (colour % 64)) & 1;
    return 1; /* empty set: any colour */
}

#endif /* MEMSWAP_CORE_H */
