/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memswap engine: move a running domain's memory to other machine frames.
 *
 * One algorithm, compiled into the hypervisor (__XEN__) and into the
 * simulator; see private.h for what each host provides. The engine's
 * contract is docs/DESIGN.md's "The contract of a correct swap". In short:
 *
 *  SCAN        Index every pfn whose frame is the guest's own plain page and
 *              whose M2P entry agrees, taking a reference on it (held until
 *              FREE or rollback). PV: the guest's P2M tree from shared_info
 *              (frame list list -> mid frames -> leaves), every MFN read
 *              from guest memory checked before use. Translated: Xen's p2m,
 *              RAM entries.
 *  COUNT_REFS  Walk every validated page table we indexed (PV) and count,
 *              for each frame, the general and type references the domain's
 *              own tables account for (as Xen's get_page_from_lNe would have
 *              taken them), plus the vCPU holders (both kinds).
 *  CLASSIFY    A frame moves when its counts are exactly what we accounted
 *              for and no grant entry permits access to it (PV) or pins it.
 *              Anything else - what Xen keeps mapped, a special p2m type -
 *              stays and is reported with the reason.
 *  ALLOC       Target frames from the host allocator (colours, node);
 *              translated, p2m entries made replaceable frame by frame.
 *  COPY        Copy every moving frame's bytes into its new frame. Nothing
 *              the domain can see has changed yet. Log-dirty is turned on
 *              first when the swap is live or the guest translated.
 *  PRECOPY     Live: rounds of reading and clearing the dirty log and
 *              copying again what was written, until few pages are dirty or
 *              the round limit is reached (simple_precopy_policy()); a HOLD
 *              swap returns MEMSWAP_HELD here. A PV guest is then paused
 *              for its final stop: the dirty log read, the index checked
 *              against its P2M, and COUNT_REFS to COPY run again (only what
 *              is new or was written is copied, and looked at for Linux
 *              page directories).
 *  FREEZE      PV, as steal_page(): take every frame the commit will hand
 *              over or rewrite to count 0 with one cmpxchg that succeeds
 *              only on the planned count, re-verify types and the M2P
 *              entries the translation relies on (a reference or an M2P
 *              change made during the swap rolls it back with -EAGAIN),
 *              copy again what the dirty log says was written (live), then
 *              translate the copies of tables and P2M frames: with the M2P
 *              now fixed, the translation cannot be stale. Translated
 *              guests freeze each frame inside its commit instead.
 *  COMMIT      The point of no return. PV: transfer counts and ownership,
 *              fix the M2P, translate kept tables in place, make the new
 *              tables live, re-point vCPU and shared_info holders, flush
 *              TLBs, unpause. Translated: frame by frame in p2m batches -
 *              freeze, M2P, replace the p2m entry keeping its type,
 *              transfer - first while the guest still runs (live: only
 *              frames not written since their last copy), then paused for
 *              the rest (a frame written since its copy is copied again
 *              while frozen); a frame that cannot be frozen stays, with its
 *              reason. Then vcpu_info re-pointed, TLBs flushed, log-dirty
 *              off, unpause.
 *  FREE        Return the old frames to the heap (flushing non-coherent
 *              ones, XSA-402) and the new frames of frames that stayed, and
 *              drop the references on kept frames, with the domain running.
 *
 * Every phase is resumable: progress lives in the context, and the host's
 * preemption check may stop any phase between two frames. On every
 * continuation before COMMIT the domain is checked again. Failures before
 * COMMIT roll back completely (log-dirty off again), and the rollback is
 * itself resumable; COMMIT and FREE cannot fail.
 *
 * The index is compact: one entry per indexed frame, in pfn order, in
 * segments of MS_SEG entries, and a directory of one 32-bit word per block
 * of 512 pfns (a PV P2M leaf; where the block's frames start), so its size
 * follows the frames the guest owns and not the pseudo-physical space it
 * claims.
 */

#include "memswap.h"
#include "private.h"

/*
 * Linux x86-64 clones L4 slots from pgd_index(PAGE_OFFSET) = 273 up of its
 * kernel page directory into every new one (pgd_ctor).
 */
#define MS_LINUX_KERNEL_PGD_FIRST 273

/* Index segments: entries per segment. */
#define MS_SEG_SHIFT        11
#define MS_SEG              (1UL << MS_SEG_SHIFT)
#define MS_NO_FRAME         (~0UL)
#define MS_NOT_KEPT         0xff

/* Per-frame flags. */
#define MS_FL_FROZEN        0x01    /* we froze its count: thaw on rollback/commit */
#define MS_FL_INPLACE       0x02    /* kept, frozen, and rewritten in place by COMMIT */
#define MS_FL_PGD           0x04    /* data page holding a Linux pgd Xen does not know */
#define MS_FL_NONCOH        0x08    /* PGT_non_coherent: flush before reading it */
#define MS_FL_COPIED        0x10    /* its new frame holds a copy (maybe stale: live) */
#define MS_FL_DONE          0x20    /* translated: committed */
#define MS_FL_HOLDER        0x40    /* a vCPU holds it (vcpu_info): commit it paused */
#define MS_FL_P2M_TYPE      0x80    /* translated: a p2m type that keeps it */

/*
 * How far ahead the loops prefetch frame metadata, in frames: the frame
 * table of a large host does not stay in a shared cache, and a frame's
 * work is a fraction of a memory access.
 */
#define MS_PREFETCH_AHEAD   32

/* How often the phases ask whether to yield, in frames. */
#define MS_PREEMPT_FRAMES   64
#define MS_PREEMPT_LEAVES   8
/* Index entries a commit batch looks at before it ends, moving or not. */
#define MS_BATCH_SCAN       4096

/*
 * Bound on the guest's P2M size we accept: 2^27 pfns (512 GiB of pseudo-
 * physical space, what Linux's three-level frame list can describe). The
 * guest controls max_pfn; the index does not depend on it beyond 4 bytes
 * per leaf.
 */
#define MS_MAX_PFNS         (1UL << 27)

struct ms_seg {
    unsigned long old_mfn[MS_SEG];      /* own, P2M-consistent, referenced frame */
    unsigned long new_mfn[MS_SEG];      /* target frame of a moved pfn, or invalid */
    uint32_t pfn[MS_SEG];
    uint32_t exp_gen[MS_SEG];           /* general refs our tables/holders account for */
    uint32_t exp_typ[MS_SEG];           /* type refs likewise */
    uint8_t cls[MS_SEG];                /* enum memswap_frame_class */
    uint8_t kept[MS_SEG];               /* enum memswap_kept_reason or MS_NOT_KEPT */
    uint8_t flags[MS_SEG];              /* MS_FL_* */
};

/* The kernel half of an L4 of the running kernel, to compare pages with. */
#define MS_LINUX_USER_PGD_SLOTS 256
struct ms_l4_half {
    bool valid;
    unsigned int probe;                 /* first present slot: the quick test */
    ms_pte_t slot[MS_PTES_PER_PAGE - MS_LINUX_KERNEL_PGD_FIRST];
};

struct memswap_ctx {
    struct domain *d;
    struct memswap_request req;
    struct memswap_result res;
    bool translated;                    /* Xen's p2m (HVM, PVH) */
    bool live;                          /* MEMSWAP_F_LIVE */
    bool logdirty;                      /* we turned log-dirty on */
    bool stopped;                       /* live: in the final stop (paused) */
    bool kept_held_tables;              /* a kept table others hold (CLASSIFY) */
    bool held;                          /* HOLD: MEMSWAP_HELD returned */

    enum memswap_phase phase;
    unsigned int step;                  /* sub-step within the phase */
    unsigned long pos;                  /* frame, leaf or mid within the step */
    bool paused;                        /* we hold a pause reference */
    bool finishing;                     /* abort: run to the end without yielding */
    bool resumed;                       /* no preemption check answered since entry */
    bool undoing;                       /* rolling back (ctx->phase is where it failed) */
    bool indexed;                       /* the index is complete (SCAN's leaves done) */
    int rc;                             /* final result once DONE */

    /* The guest's P2M (PV: as registered in shared_info at the start). */
    unsigned long fll_mfn;
    uint64_t p2m_cr3;
    unsigned long nr_pfns;
    unsigned long nr_leaves;            /* blocks of 512 pfns */
    unsigned long empty_leaf_mfn;       /* last leaf found to hold no own frame */
    unsigned long marked_mid_mfn;       /* last mid frame marked */

    /* The index: nr_frames entries in pfn order, leaf_first[] per leaf. */
    uint32_t *leaf_first;               /* [nr_leaves + 1] */
    struct ms_seg **seg;                /* [nr_segs] */
    unsigned long nr_segs;
    unsigned long nr_frames;            /* own frames found in the P2M */
    unsigned long nr_movable;
    unsigned long nr_to_alloc;          /* movable without a new frame yet */
    unsigned long nr_allocated;

    /*
     * Frames made live in one go at the end of COMMIT (the new frames of
     * moved tables, whose entries hold references) and kept frames thawed
     * there: bounded by the number of tables, not by the domain's size.
     */
    uint32_t *late;
    unsigned long nr_late, late_cap, late_alloc;

    /* Log-dirty: one bit per pfn, what the last read found. */
    uint64_t *dirty;
    unsigned long dirty_words;
    unsigned long dirty_count;          /* bits the current read has found so far */

    uint64_t t_phase, t_pause;

    /*
     * The kernel halves of the running kernel's L4s, to recognise Linux
     * page directories Xen does not know about; see ms_phase_copy().
     */
    struct ms_l4_half pgd_ref[2];       /* kernel and user L4 of the running kernel */
    struct ms_l4_half pgd_seen[2];      /* live: the halves the pre-copy looked with */
    bool pgd_look_all;                  /* final stop: they differ, look at every frame */
    unsigned long final_looks;          /* final stop: frames looked at for pgds */
    uint64_t meta_bytes;
};

/* ------------------------------------------------------------------------
 * The index.
 */

static inline struct ms_seg *ms_seg(const struct memswap_ctx *ctx, unsigned long i)
{
    return ctx->seg[i >> MS_SEG_SHIFT];
}

#define MS_J(i)             ((i) & (MS_SEG - 1))
#define MS_F(ctx, i, field) (ms_seg(ctx, i)->field[MS_J(i)])

/* Index of the frame of @pfn, or MS_NO_FRAME. */
static inline unsigned long ms_frame_of_pfn(const struct memswap_ctx *ctx,
                                            unsigned long pfn)
{
    unsigned long leaf = pfn / MS_P2M_PER_PAGE, lo, hi;

    if ( pfn >= ctx->nr_pfns )
        return MS_NO_FRAME;
    lo = ctx->leaf_first[leaf];
    hi = ctx->leaf_first[leaf + 1];
    /* A leaf full of own frames, the usual case: direct. */
    if ( hi - lo == MS_P2M_PER_PAGE )
        return lo + (pfn % MS_P2M_PER_PAGE);
    while ( lo < hi )
    {
        unsigned long mid = lo + (hi - lo) / 2, p = MS_F(ctx, mid, pfn);

        if ( p == pfn )
            return mid;
        if ( p < pfn )
            lo = mid + 1;
        else
            hi = mid;
    }
    return MS_NO_FRAME;
}

/*
 * Index of an own indexed frame by MFN, or MS_NO_FRAME. The M2P is only a
 * hint here - guests (and dom0) can write M2P entries - so the answer is
 * checked against the index built from the P2M.
 */
static inline unsigned long ms_indexed(const struct memswap_ctx *ctx,
                                       unsigned long mfn)
{
    unsigned long i;

    if ( !ms_mfn_valid(mfn) )
        return MS_NO_FRAME;
    i = ms_frame_of_pfn(ctx, ms_m2p_get(mfn));
    if ( i == MS_NO_FRAME || MS_F(ctx, i, old_mfn) != mfn )
        return MS_NO_FRAME;
    return i;
}

static inline bool ms_moved(const struct memswap_ctx *ctx, unsigned long i)
{
    return MS_F(ctx, i, kept) == MS_NOT_KEPT;
}

/*
 * The one translation: an own frame that moves maps to its new frame;
 * every other MFN (foreign, I/O, Xen's, kept - even one that was given a
 * new frame before it had to stay - garbage) maps to itself.
 */
static inline unsigned long ms_xlate(const struct memswap_ctx *ctx,
                                     unsigned long mfn)
{
    unsigned long i = ms_indexed(ctx, mfn), to;

    if ( i == MS_NO_FRAME || !ms_moved(ctx, i) )
        return mfn;
    to = MS_F(ctx, i, new_mfn);
    return to != MS_INVALID_MFN ? to : mfn;
}

static inline bool ms_is_table(unsigned int cls)
{
    return cls >= MEMSWAP_FC_L1 && cls <= MEMSWAP_FC_L4;
}

static inline bool ms_is_p2m(unsigned int cls)
{
    return cls >= MEMSWAP_FC_P2M_LEAF && cls <= MEMSWAP_FC_P2M_TOP;
}

static inline unsigned long ms_pte_mfn(ms_pte_t e)
{
    return (unsigned long)((e & MS_PADDR_MASK) >> 12);
}

static inline ms_pte_t ms_pte_set_mfn(ms_pte_t e, unsigned long mfn)
{
    return (e & ~(ms_pte_t)MS_PADDR_MASK) | (((ms_pte_t)mfn << 12) & MS_PADDR_MASK);
}

static inline bool ms_p2m_entry_is_mfn(uint64_t e)
{
    return e != MS_P2M_INVALID && !(e & (MS_P2M_FOREIGN_BIT | MS_P2M_IDENTITY_BIT));
}

static inline bool ms_own_frame_of(const struct domain *d, unsigned long mfn)
{
    return ms_mfn_valid(mfn) && ms_page_owner(ms_page(mfn)) == d;
}

static inline bool ms_own_frame(const struct memswap_ctx *ctx, unsigned long mfn)
{
    return ms_own_frame_of(ctx->d, mfn);
}

/*
 * The guest's own plain page: allocated to it, in use, not a Xen-heap page
 * shared with it, not an extra (Xen-internal) page, not broken. Only those
 * are indexed, and only those are ever written by the engine.
 */
static inline bool ms_plain_page_of(const struct domain *d, const struct page_info *pg)
{
    unsigned long ci = pg->count_info;

    return ms_page_owner(pg) == d && (ci & PGC_allocated) &&
           !(ci & (PGC_xen_heap | PGC_extra | PGC_broken)) && page_state_is(pg, inuse);
}

static inline bool ms_plain_page(const struct memswap_ctx *ctx,
                                 const struct page_info *pg)
{
    return ms_plain_page_of(ctx->d, pg);
}

/*
 * The domain's frame of @pfn, as a swap indexes it and a query counts it:
 * its own plain page, whose M2P entry names @pfn (which also makes a frame
 * the frame of one pfn only).
 */
static inline bool ms_frame_of(const struct domain *d, unsigned long mfn,
                               unsigned long pfn)
{
    return ms_mfn_valid(mfn) && ms_plain_page_of(d, ms_page(mfn)) &&
           ms_m2p_get(mfn) == pfn;
}

/* A translated guest's p2m kinds whose frame is the domain's RAM. */
static inline bool ms_p2mt_is_ram(unsigned int t)
{
    return t == MS_P2MT_RAM || t == MS_P2MT_RAM_RO || t == MS_P2MT_IOREQ;
}

/* What ms_host_check_domain() must hold for this swap. */
static unsigned int ms_check_flags(const struct memswap_ctx *ctx)
{
    return (ctx->translated || ctx->live ? MS_CHECK_LOGDIRTY : 0) |
           (ctx->logdirty ? MS_CHECK_LOGDIRTY_OURS : 0);
}


/* Time accounting: charge elapsed time to the current phase. */
static void ms_charge(struct memswap_ctx *ctx)
{
    uint64_t now = ms_host_now_ns();

    ctx->res.phase_ns[ctx->phase] += now - ctx->t_phase;
    ctx->t_phase = now;
}

static void ms_enter(struct memswap_ctx *ctx, enum memswap_phase ph)
{
    ms_charge(ctx);
    ctx->phase = ph;
    ctx->step = 0;
    ctx->pos = 0;
}

/*
 * The first check after each entry always says "go on", so that every
 * continuation makes progress even if the host wants to yield constantly.
 */
static bool ms_should_yield(struct memswap_ctx *ctx)
{
    if ( ctx->resumed )
    {
        ctx->resumed = false;
        return false;
    }
    return !ctx->finishing && ms_host_preempt_check();
}

/* A preemption point every MS_PREEMPT_FRAMES frames of a phase's loop. */
static bool ms_yield_point(struct memswap_ctx *ctx, unsigned long *n)
{
    return (++*n % MS_PREEMPT_FRAMES) == 0 && ms_should_yield(ctx);
}

static void ms_pause(struct memswap_ctx *ctx)
{
    if ( ctx->paused || (ctx->req.flags & MEMSWAP_F_DRY_RUN) )
        return;
    ms_host_pause(ctx->d);
    ctx->paused = true;
    ctx->t_pause = ms_host_now_ns();
}

static void ms_unpause(struct memswap_ctx *ctx)
{
    if ( !ctx->paused )
        return;
    ctx->res.paused_ns += ms_host_now_ns() - ctx->t_pause;
    ctx->paused = false;
    ms_host_unpause(ctx->d);
}

/*
 * The per-frame loops walk the index in pfn order while the frames behind
 * it are scattered over the frame table: fetch the metadata of the frame a
 * few entries ahead (old and, once allocated, new) while this one is
 * worked on.
 */
static inline void ms_prefetch_ahead(const struct memswap_ctx *ctx, unsigned long i)
{
    unsigned long k = i + MS_PREFETCH_AHEAD, m;

    if ( k >= ctx->nr_frames )
        return;
    ms_prefetch_frame(MS_F(ctx, k, old_mfn));
    if ( (m = MS_F(ctx, k, new_mfn)) != MS_INVALID_MFN )
        ms_prefetch_frame(m);
}

/*
 * The general count a frame has when everything holding it is what the
 * plan accounts for: our tables and holders, PGC_allocated, a pin, and the
 * engine's own reference. Likewise the type count.
 */
static inline unsigned long ms_planned_gen(const struct memswap_ctx *ctx,
                                           unsigned long i, unsigned long ti)
{
    return (unsigned long)MS_F(ctx, i, exp_gen) + 2 + !!(ti & PGT_pinned);
}

static inline unsigned long ms_planned_typ(const struct memswap_ctx *ctx,
                                           unsigned long i, unsigned long ti)
{
    return (unsigned long)MS_F(ctx, i, exp_typ) + !!(ti & PGT_pinned);
}

/* ------------------------------------------------------------------------
 * Log-dirty: one bit per pfn of what the last read of the log found.
 */

static inline bool ms_is_dirty(const struct memswap_ctx *ctx, unsigned long pfn)
{
    return ctx->dirty && pfn / 64 < ctx->dirty_words &&
           ((ctx->dirty[pfn / 64] >> (pfn % 64)) & 1);
}

/* Turn log-dirty on for this swap (the bitmap first: nothing to undo). */
static int ms_logdirty_on(struct memswap_ctx *ctx)
{
    int rc;

    if ( ctx->logdirty )
        return 0;
    if ( !ctx->dirty )
    {
        ctx->dirty_words = (ctx->nr_pfns + 63) / 64;
        ctx->dirty = ms_host_zalloc(ctx->dirty_words * sizeof(*ctx->dirty));
        if ( !ctx->dirty )
            return -ENOMEM;
        ctx->meta_bytes += ctx->dirty_words * sizeof(*ctx->dirty);
    }
    if ( (rc = ms_host_logdirty_enable(ctx->d)) )
        return rc;
    ctx->logdirty = true;
    return 0;
}

static void ms_logdirty_off(struct memswap_ctx *ctx)
{
    if ( !ctx->logdirty )
        return;
    ms_host_logdirty_disable(ctx->d);
    ctx->logdirty = false;
}

/*
 * One read of the dirty log over every pfn, in chunks, resumable in
 * ctx->pos; the bits found are added to ctx->dirty_count. -EBUSY if
 * log-dirty is no longer on (someone turned it off: the log is worthless).
 */
static int ms_read_dirty(struct memswap_ctx *ctx, bool clear)
{
    unsigned long end = ctx->dirty_words * 64;

    while ( ctx->pos < end )
    {
        unsigned long nr = end - ctx->pos < MS_LOGDIRTY_CHUNK ? end - ctx->pos
                                                               : MS_LOGDIRTY_CHUNK;
        long n;

        /* Between two rounds too: the guest's time to write. */
        if ( ms_should_yield(ctx) )
            return MEMSWAP_PREEMPTED;
        n = ms_host_logdirty_read(ctx->d, ctx->pos, nr, ctx->dirty + ctx->pos / 64, clear);
        if ( n < 0 )
            return -EBUSY;
        ctx->dirty_count += (unsigned long)n;
        ctx->pos += nr;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * SCAN: the guest's P2M (PV: its tree; translated: Xen's p2m) and the
 * index of own frames.
 */

static int ms_level_of_type(unsigned long type)
{
    switch ( type )
    {
    case PGT_l1_page_table: return 1;
    case PGT_l2_page_table: return 2;
    case PGT_l3_page_table: return 3;
    case PGT_l4_page_table: return 4;
    }
    return 0;
}

/*
 * The domain's pfn space: a PV guest's registration from shared_info (its
 * frame-list-list an own frame, max_pfn within what a three-level tree
 * describes), a translated guest's p2m size. 0 or -EINVAL.
 */
static int ms_pfn_space(struct domain *d, unsigned long *fll_mfn, uint64_t *p2m_cr3,
                        unsigned long *nr_pfns)
{
    unsigned long nr, nr_mids;

    *fll_mfn = MS_INVALID_MFN;
    *p2m_cr3 = 0;
    if ( ms_host_translated(d) )
        nr = ms_host_p2m_size(d);
    else
    {
        ms_host_p2m_info(d, fll_mfn, p2m_cr3, &nr);
        /* A guest that has not published its P2M cannot be translated. */
        if ( !*fll_mfn || !ms_own_frame_of(d, *fll_mfn) )
            return -EINVAL;
        nr_mids = (nr + MS_P2M_PER_PAGE * MS_P2M_PER_PAGE - 1) /
                  (MS_P2M_PER_PAGE * MS_P2M_PER_PAGE);
        if ( nr_mids > MS_P2M_PER_PAGE )
            return -EINVAL;
    }
    if ( nr == 0 || nr > MS_MAX_PFNS )
        return -EINVAL;
    *nr_pfns = nr;
    return 0;
}

/* Step 0: read the registration, size and allocate the index. */
static int ms_scan_registration(struct memswap_ctx *ctx)
{
    struct domain *d = ctx->d;
    unsigned long cap;
    int rc;

    if ( (rc = ms_pfn_space(d, &ctx->fll_mfn, &ctx->p2m_cr3, &ctx->nr_pfns)) )
        return rc;
    ctx->nr_leaves = (ctx->nr_pfns + MS_P2M_PER_PAGE - 1) / MS_P2M_PER_PAGE;

    /*
     * The guest owns tot_pages frames now and the index holds own frames
     * only, each once (the M2P check makes a frame belong to one pfn): the
     * segment table is sized by that, the segments are allocated as they
     * fill. If the domain gains frames during the scan we stop (-EAGAIN).
     */
    cap = ms_host_tot_pages(d);
    ctx->nr_segs = (cap + MS_SEG - 1) / MS_SEG;
    ctx->leaf_first = ms_host_zalloc((ctx->nr_leaves + 1) * sizeof(*ctx->leaf_first));
    ctx->seg = ms_host_zalloc((ctx->nr_segs ?: 1) * sizeof(*ctx->seg));
    if ( !ctx->leaf_first || !ctx->seg )
        return -ENOMEM;
    ctx->meta_bytes += (ctx->nr_leaves + 1) * sizeof(*ctx->leaf_first) +
                       (ctx->nr_segs ?: 1) * sizeof(*ctx->seg);
    return 0;
}

/*
 * The MFN of leaf @leaf, read through the tree: every frame of the tree
 * within max_pfn must be the guest's own. MS_INVALID_MFN otherwise.
 */
static unsigned long ms_pv_leaf_mfn(const struct domain *d, unsigned long fll_mfn,
                                    unsigned long leaf)
{
    const uint64_t *top, *mid;
    unsigned long mid_mfn, lmfn;

    top = ms_map(fll_mfn);
    mid_mfn = (unsigned long)top[leaf / MS_P2M_PER_PAGE];
    ms_unmap(top);
    if ( !ms_own_frame_of(d, mid_mfn) )
        return MS_INVALID_MFN;
    mid = ms_map(mid_mfn);
    lmfn = (unsigned long)mid[leaf % MS_P2M_PER_PAGE];
    ms_unmap(mid);
    return ms_own_frame_of(d, lmfn) ? lmfn : MS_INVALID_MFN;
}

static unsigned long ms_leaf_mfn(const struct memswap_ctx *ctx, unsigned long leaf)
{
    return ms_pv_leaf_mfn(ctx->d, ctx->fll_mfn, leaf);
}

/* Append @mfn (referenced) as the frame of @pfn; 0 or -errno. */
static int ms_index_frame(struct memswap_ctx *ctx, unsigned long pfn,
                          unsigned long mfn, unsigned int cls)
{
    unsigned long i = ctx->nr_frames;
    struct ms_seg *s;
    unsigned int j = MS_J(i);

    if ( (i >> MS_SEG_SHIFT) >= ctx->nr_segs )
        return -EAGAIN;                 /* more own frames than the domain had */
    if ( !(s = ctx->seg[i >> MS_SEG_SHIFT]) )
    {
        s = ms_host_zalloc(sizeof(*s));
        if ( !s )
            return -ENOMEM;
        ctx->seg[i >> MS_SEG_SHIFT] = s;
        ctx->meta_bytes += sizeof(*s);
    }
    s->old_mfn[j] = mfn;
    s->new_mfn[j] = MS_INVALID_MFN;
    s->pfn[j] = (uint32_t)pfn;
    s->exp_gen[j] = s->exp_typ[j] = 0;
    s->cls[j] = (uint8_t)cls;
    s->kept[j] = MS_NOT_KEPT;
    s->flags[j] = 0;
    ctx->nr_frames = i + 1;
    return 0;
}

/* Step 1: index every pfn whose frame is ours, plain and M2P-consistent. */
static int ms_scan_leaves(struct memswap_ctx *ctx)
{
    for ( ; ctx->pos < ctx->nr_leaves; ctx->pos++ )
    {
        unsigned long leaf = ctx->pos, lmfn;
        const uint64_t *ent;
        unsigned int i;
        bool any = false;
        int rc = 0, level;

        if ( (leaf % MS_PREEMPT_LEAVES) == 0 && leaf && ms_should_yield(ctx) )
            return MEMSWAP_PREEMPTED;
        ctx->leaf_first[leaf] = (uint32_t)ctx->nr_frames;
        if ( (lmfn = ms_leaf_mfn(ctx, leaf)) == MS_INVALID_MFN )
            return -EINVAL;
        /* Linux shares one "missing" and one "identity" leaf: read it once. */
        if ( lmfn == ctx->empty_leaf_mfn )
            continue;

        ent = ms_map(lmfn);
        for ( i = 0; i < MS_P2M_PER_PAGE && !rc; i++ )
        {
            unsigned long pfn = leaf * MS_P2M_PER_PAGE + i, mfn;
            struct page_info *pg;

            if ( pfn >= ctx->nr_pfns )
                break;
            /*
             * Guest frames are spread over colours and nodes, so their
             * frame-table entries and M2P slots are scattered: ask for the
             * ones a few entries ahead while this one is checked.
             */
            if ( i + MS_PREFETCH_AHEAD < MS_P2M_PER_PAGE &&
                 ms_p2m_entry_is_mfn(ent[i + MS_PREFETCH_AHEAD]) &&
                 ms_mfn_valid((unsigned long)ent[i + MS_PREFETCH_AHEAD]) )
                ms_prefetch_frame((unsigned long)ent[i + MS_PREFETCH_AHEAD]);
            if ( !ms_p2m_entry_is_mfn(ent[i]) )
                continue;
            mfn = (unsigned long)ent[i];
            if ( !ms_mfn_valid(mfn) )
                continue;
            pg = ms_page(mfn);
            if ( !ms_plain_page(ctx, pg) || ms_m2p_get(mfn) != pfn )
                continue;
            /* Ours until FREE or rollback: it cannot be freed under us. */
            if ( !ms_host_get_frame(ctx->d, mfn) )
                continue;
            /* Tables by their Xen type (read with the owner, one cache line). */
            level = ms_level_of_type(pg->u.inuse.type_info & PGT_type_mask);
            rc = ms_index_frame(ctx, pfn, mfn,
                                level ? MEMSWAP_FC_L1 + level - 1 : MEMSWAP_FC_DATA);
            if ( rc )
                ms_host_put_frame(mfn);
            any = true;
        }
        ms_unmap(ent);
        if ( rc )
            return rc;
        if ( !any )
            ctx->empty_leaf_mfn = lmfn;
    }
    ctx->leaf_first[ctx->nr_leaves] = (uint32_t)ctx->nr_frames;
    ctx->indexed = true;
    return 0;
}

/*
 * Step 1, translated: index every gfn whose p2m entry is RAM and whose
 * frame is ours, plain and M2P-consistent. Blocks of 512 gfns, as a PV
 * guest's leaves. An ioreq server's page is indexed too (it is the
 * guest's), to be reported as kept for its type.
 */
static int ms_scan_p2m(struct memswap_ctx *ctx)
{
    unsigned long mfns[MS_P2M_LOOKUP_MAX];
    uint8_t types[MS_P2M_LOOKUP_MAX];

    for ( ; ctx->pos < ctx->nr_leaves; ctx->pos++ )
    {
        unsigned long b = ctx->pos, first = b * MS_P2M_PER_PAGE, k;
        unsigned int nr = ctx->nr_pfns - first < MS_P2M_PER_PAGE ?
                          (unsigned int)(ctx->nr_pfns - first) : MS_P2M_PER_PAGE;
        int rc = 0;

        if ( (b % MS_PREEMPT_LEAVES) == 0 && b && ms_should_yield(ctx) )
            return MEMSWAP_PREEMPTED;
        ctx->leaf_first[b] = (uint32_t)ctx->nr_frames;
        ms_host_p2m_lookup(ctx->d, first, nr, mfns, types);
        for ( k = 0; k < nr && !rc; k++ )
        {
            unsigned long mfn = mfns[k];

            if ( k + MS_PREFETCH_AHEAD < nr && ms_mfn_valid(mfns[k + MS_PREFETCH_AHEAD]) )
                ms_prefetch_frame(mfns[k + MS_PREFETCH_AHEAD]);
            if ( !ms_p2mt_is_ram(types[k]) || !ms_frame_of(ctx->d, mfn, first + k) )
                continue;
            /* Ours until FREE or rollback: it cannot be freed under us. */
            if ( !ms_host_get_frame(ctx->d, mfn) )
                continue;
            rc = ms_index_frame(ctx, first + k, mfn, MEMSWAP_FC_DATA);
            if ( rc )
                ms_host_put_frame(mfn);
            else if ( types[k] == MS_P2MT_IOREQ )
                MS_F(ctx, ctx->nr_frames - 1, flags) |= MS_FL_P2M_TYPE;
        }
        if ( rc )
            return rc;
    }
    ctx->leaf_first[ctx->nr_leaves] = (uint32_t)ctx->nr_frames;
    ctx->indexed = true;
    return 0;
}

/* Mark one frame of the P2M tree; every one must be an indexed own frame. */
static int ms_mark_p2m_frame(struct memswap_ctx *ctx, unsigned long mfn,
                             enum memswap_frame_class cls)
{
    unsigned long i = ms_indexed(ctx, mfn);
    uint8_t *c;

    if ( i == MS_NO_FRAME )
        return -EINVAL;
    c = &MS_F(ctx, i, cls);
    /*
     * A frame may be a leaf many times over (shared leaves), not two things
     * (in particular not also a page table: refuse such a guest).
     */
    if ( *c != MEMSWAP_FC_DATA && *c != cls )
        return -EINVAL;
    *c = cls;
    return 0;
}

/*
 * Step 2: classes of the tree's own frames, one mid (and its 512 leaves)
 * at a time. Within max_pfn every frame of the tree must be ours. Beyond
 * it Linux fills the top and the last mid with its shared "mid missing"
 * and "missing" frames; those are P2M frames too (their entries name
 * frames that move), so they are marked when they are ours and otherwise
 * left alone.
 */
static int ms_mark_mid(struct memswap_ctx *ctx, unsigned long m, unsigned long mid_mfn,
                       bool strict)
{
    const uint64_t *mid;
    unsigned long l;
    int rc = ms_mark_p2m_frame(ctx, mid_mfn, MEMSWAP_FC_P2M_MID);

    if ( rc )
        return strict ? rc : 0;
    mid = ms_map(mid_mfn);
    for ( l = 0; l < MS_P2M_PER_PAGE && !rc; l++ )
    {
        bool in_range = strict && m * MS_P2M_PER_PAGE + l < ctx->nr_leaves;

        rc = ms_mark_p2m_frame(ctx, (unsigned long)mid[l], MEMSWAP_FC_P2M_LEAF);
        if ( !in_range )
            rc = 0;
    }
    ms_unmap(mid);
    return rc;
}

static int ms_scan_mark_tree(struct memswap_ctx *ctx)
{
    unsigned long nr_mids = (ctx->nr_leaves + MS_P2M_PER_PAGE - 1) / MS_P2M_PER_PAGE;
    int rc;

    if ( ctx->pos == 0 && (rc = ms_mark_p2m_frame(ctx, ctx->fll_mfn, MEMSWAP_FC_P2M_TOP)) )
        return rc;
    for ( ; ctx->pos < MS_P2M_PER_PAGE; ctx->pos++ )
    {
        const uint64_t *top;
        unsigned long mid_mfn;

        top = ms_map(ctx->fll_mfn);
        mid_mfn = (unsigned long)top[ctx->pos];
        ms_unmap(top);
        /*
         * Marking is idempotent: a mid seen just before (Linux's shared
         * "mid missing" page fills the top beyond max_pfn) is done.
         */
        if ( mid_mfn == ctx->marked_mid_mfn )
            continue;
        /* A mid is 513 lookups: a preemption point each. */
        if ( ctx->marked_mid_mfn != MS_INVALID_MFN && ms_should_yield(ctx) )
            return MEMSWAP_PREEMPTED;
        if ( (rc = ms_mark_mid(ctx, ctx->pos, mid_mfn, ctx->pos < nr_mids)) )
            return rc;
        ctx->marked_mid_mfn = mid_mfn;
    }
    return 0;
}

static int ms_phase_scan(struct memswap_ctx *ctx)
{
    int rc;

    switch ( ctx->step )
    {
    case 0:
        /* A live swap lets the domain run until its final stop. */
        if ( !ctx->live )
            ms_pause(ctx);
        if ( (rc = ms_scan_registration(ctx)) )
            return rc;
        ctx->step = 1;
        ctx->pos = 0;
        /* fall through */
    case 1:
        if ( (rc = ctx->translated ? ms_scan_p2m(ctx) : ms_scan_leaves(ctx)) )
            return rc;
        ctx->step = 2;
        ctx->pos = 0;
        /* fall through */
    case 2:
        /* A translated guest's p2m is Xen's: there is no tree in its memory. */
        if ( !ctx->translated && (rc = ms_scan_mark_tree(ctx)) )
            return rc;
    }
    ms_enter(ctx, MEMSWAP_PH_COUNT_REFS);
    return 0;
}

/* ------------------------------------------------------------------------
 * COUNT_REFS: references the domain's own tables and Xen's holders account for.
 */

static unsigned long ms_expect(struct memswap_ctx *ctx, unsigned long mfn,
                               unsigned int gen, unsigned int typ)
{
    unsigned long i = ms_indexed(ctx, mfn);

    if ( i == MS_NO_FRAME )
        return i;
    MS_F(ctx, i, exp_gen) += gen;
    MS_F(ctx, i, exp_typ) += typ;
    return i;
}

/*
 * The references a validated table holds, as Xen took them: an L1 entry
 * takes a general reference on the frame (and a writable type reference
 * if _PAGE_RW); an L2-L4 entry takes a general and a type reference on the
 * table below, except an entry mapping its own table (a self linear
 * mapping), which takes none. Xen's own L4 slots take nothing.
 */
static void ms_count_table(struct memswap_ctx *ctx, unsigned long mfn, int level)
{
    const ms_pte_t *t = ms_map(mfn);
    unsigned int i;

    for ( i = 0; i < MS_PTES_PER_PAGE; i++ )
    {
        ms_pte_t e = t[i];
        unsigned long target;

        if ( !(e & MS_PAGE_PRESENT) )
            continue;
        if ( level == 4 && !ms_host_is_guest_l4_slot(ctx->d, i) )
            continue;
        target = ms_pte_mfn(e);
        if ( level == 1 )
            ms_expect(ctx, target, 1, (e & MS_PAGE_RW) ? 1 : 0);
        else if ( target != mfn )
            ms_expect(ctx, target, 1, 1);
    }
    ms_unmap(t);
}

static void ms_count_vcpu_holders(struct memswap_ctx *ctx)
{
    unsigned int i, n, g;
    unsigned long gdt[16], k;

    for ( i = 0; i < ms_host_max_vcpus(ctx->d); i++ )
    {
        struct vcpu *v = ms_host_vcpu(ctx->d, i);

        if ( !v )
            continue;
        /* guest_table, guest_table_user, vcpu_info, GDT: get_page_and_type each. */
        ms_expect(ctx, ms_host_vcpu_guest_table(v), 1, 1);
        ms_expect(ctx, ms_host_vcpu_guest_table_user(v), 1, 1);
        /* Re-pointed at the commit, with the domain paused. */
        if ( (k = ms_expect(ctx, ms_host_vcpu_info_mfn(v), 1, 1)) != MS_NO_FRAME )
            MS_F(ctx, k, flags) |= MS_FL_HOLDER;
        n = ms_host_vcpu_gdt_frames(v, gdt, sizeof(gdt) / sizeof(gdt[0]));
        for ( g = 0; g < n; g++ )
            ms_expect(ctx, gdt[g], 1, 1);
    }
}

static int ms_phase_count_refs(struct memswap_ctx *ctx)
{
    for ( ; ctx->pos < ctx->nr_frames; ctx->pos++ )
    {
        unsigned long i = ctx->pos, type_info;
        unsigned int cls = MS_F(ctx, i, cls);

        if ( !ms_is_table(cls) )
            continue;
        /* A table is 512 entries of work: a preemption point each. */
        if ( ms_should_yield(ctx) )
            return MEMSWAP_PREEMPTED;
        /* Tables not (fully) validated hold no references yet: CLASSIFY keeps them. */
        type_info = ms_page(MS_F(ctx, i, old_mfn))->u.inuse.type_info;
        if ( (type_info & (PGT_validated | PGT_partial)) != PGT_validated )
            continue;
        ms_count_table(ctx, MS_F(ctx, i, old_mfn), cls - MEMSWAP_FC_L1 + 1);
    }
    ms_count_vcpu_holders(ctx);
    ms_enter(ctx, MEMSWAP_PH_CLASSIFY);
    return 0;
}

/* ------------------------------------------------------------------------
 * CLASSIFY: movable or kept.
 */

static void ms_keep(struct memswap_ctx *ctx, unsigned long i,
                    enum memswap_kept_reason why)
{
    if ( MS_F(ctx, i, kept) == MS_NOT_KEPT )
        MS_F(ctx, i, kept) = why;
}

/* A frame an outside holder reports: it stays, unless it moved already. */
static void ms_keep_reported(struct memswap_ctx *ctx, unsigned long mfn,
                             enum memswap_kept_reason why)
{
    unsigned long i = ms_indexed(ctx, mfn);

    if ( i != MS_NO_FRAME && !(MS_F(ctx, i, flags) & MS_FL_DONE) )
        ms_keep(ctx, i, why);
}

static void ms_grant_cb(void *arg, unsigned long mfn)
{
    ms_keep_reported(arg, mfn, MEMSWAP_KEPT_GRANTED);
}

static void ms_xen_mapped_cb(void *arg, unsigned long mfn)
{
    ms_keep_reported(arg, mfn, MEMSWAP_KEPT_XEN);
}

/*
 * Compare a frame's counts with what we accounted for. Equal: it moves.
 * More general references than accounted for (with type references
 * consistent): someone outside maps it. Anything else: unexplained.
 */
static int ms_judge(const struct memswap_ctx *ctx, unsigned long i,
                    const struct page_info *pg)
{
    unsigned long ci = pg->count_info, ti = pg->u.inuse.type_info;
    unsigned long type = ti & PGT_type_mask;
    unsigned long gen = ci & PGC_count_mask, typ = ti & PGT_count_mask;
    unsigned long exp_gen = ms_planned_gen(ctx, i, ti), exp_typ = ms_planned_typ(ctx, i, ti);

    if ( !ms_plain_page(ctx, pg) )
        return MEMSWAP_KEPT_UNEXPLAINED;
    if ( ti & (PGT_partial | PGT_locked) )
        return MEMSWAP_KEPT_UNEXPLAINED;
    if ( ms_is_table(MS_F(ctx, i, cls)) && !(ti & PGT_validated) )
        return MEMSWAP_KEPT_UNEXPLAINED;
    if ( type == PGT_shared_page )
        return MEMSWAP_KEPT_UNEXPLAINED;
    if ( gen == exp_gen && typ == exp_typ )
        return MS_NOT_KEPT;
    if ( gen > exp_gen && typ >= exp_typ && gen - exp_gen >= typ - exp_typ )
        return MEMSWAP_KEPT_FOREIGN;
    return MEMSWAP_KEPT_UNEXPLAINED;
}

/*
 * A frame nobody but the plan holds: its counts are exactly the planned
 * ones, so it can be frozen (and, if COMMIT has to rewrite it, must be).
 */
static bool ms_freezable(const struct memswap_ctx *ctx, unsigned long i,
                         const struct page_info *pg)
{
    unsigned long ti = pg->u.inuse.type_info;

    return ms_plain_page(ctx, pg) && !(ti & PGT_locked) &&
           (pg->count_info & PGC_count_mask) == ms_planned_gen(ctx, i, ti) &&
           (ti & PGT_count_mask) == ms_planned_typ(ctx, i, ti);
}

/*
 * A kept table that others hold (more references than the plan) cannot be
 * frozen: whoever holds it may change its entries, dropping references on
 * the frames they map at any time. Those frames must therefore not be
 * frozen either: they stay, and the table needs no rewriting.
 */
/*
 * What a verdict adds to the totals (@sign 1), or takes back (-1): frames
 * to move by class and to allocate, frames kept by reason, and what FREEZE
 * and COMMIT will have to do - a kept table or P2M frame has entries naming
 * frames that move: COMMIT rewrites it in place, frozen so that nobody
 * changes it (or drops a reference through it) meanwhile.
 */
static void ms_count_verdict(struct memswap_ctx *ctx, unsigned long i, int sign)
{
    unsigned int cls = MS_F(ctx, i, cls);

    if ( ms_moved(ctx, i) )
    {
        ctx->nr_movable += sign;
        ctx->nr_to_alloc += sign * (MS_F(ctx, i, new_mfn) == MS_INVALID_MFN);
        ctx->res.frames_by_class[cls] += sign;
        ctx->late_cap += sign * ms_is_table(cls);
        return;
    }
    ctx->res.frames_kept[MS_F(ctx, i, kept)] += sign;
    if ( sign > 0 && (ms_is_table(cls) || ms_is_p2m(cls)) &&
         ms_freezable(ctx, i, ms_page(MS_F(ctx, i, old_mfn))) )
    {
        MS_F(ctx, i, flags) |= MS_FL_INPLACE;
        ctx->late_cap++;
    }
    else if ( sign < 0 && (MS_F(ctx, i, flags) & MS_FL_INPLACE) )
    {
        MS_F(ctx, i, flags) &= ~MS_FL_INPLACE;
        ctx->late_cap--;
    }
}

static void ms_keep_mapped_by(struct memswap_ctx *ctx, unsigned long i)
{
    unsigned long mfn = MS_F(ctx, i, old_mfn);
    int level = MS_F(ctx, i, cls) - MEMSWAP_FC_L1 + 1;
    const ms_pte_t *t = ms_map(mfn);
    unsigned int s;

    for ( s = 0; s < MS_PTES_PER_PAGE; s++ )
    {
        unsigned long k;

        if ( !(t[s] & MS_PAGE_PRESENT) ||
             (level == 4 && !ms_host_is_guest_l4_slot(ctx->d, s)) )
            continue;
        if ( (k = ms_indexed(ctx, ms_pte_mfn(t[s]))) != MS_NO_FRAME && k != i &&
             ms_moved(ctx, k) )
        {
            ms_count_verdict(ctx, k, -1);
            ms_keep(ctx, k, MEMSWAP_KEPT_FOREIGN);
            ms_count_verdict(ctx, k, 1);
        }
    }
    ms_unmap(t);
}

static int ms_phase_classify(struct memswap_ctx *ctx)
{
    unsigned long need, have, n = 0;

    switch ( ctx->step )
    {
    case 0:
        ms_host_grant_frames(ctx->d, ms_grant_cb, ctx);
        ms_host_xen_mapped_frames(ctx->d, ms_xen_mapped_cb, ctx);
        ctx->step = 1;
        /* fall through */
    case 1:
        /* Verdicts, and their counts. */
        for ( ; ctx->pos < ctx->nr_frames; ctx->pos++ )
        {
            unsigned long i = ctx->pos;
            const struct page_info *pg = ms_page(MS_F(ctx, i, old_mfn));
            int verdict;

            ms_prefetch_ahead(ctx, i);
            if ( ms_yield_point(ctx, &n) )
                return MEMSWAP_PREEMPTED;
            if ( pg->u.inuse.type_info & PGT_non_coherent )
                MS_F(ctx, i, flags) |= MS_FL_NONCOH;
            if ( MS_F(ctx, i, flags) & MS_FL_P2M_TYPE )
                ms_keep(ctx, i, MEMSWAP_KEPT_P2M_TYPE);
            if ( MS_F(ctx, i, kept) == MS_NOT_KEPT &&
                 (verdict = ms_judge(ctx, i, pg)) != MS_NOT_KEPT )
                ms_keep(ctx, i, verdict);
            ms_count_verdict(ctx, i, 1);
            if ( !ms_moved(ctx, i) && ms_is_table(MS_F(ctx, i, cls)) &&
                 !ms_freezable(ctx, i, pg) )
                ctx->kept_held_tables = true;
        }
        ctx->step = 2;
        ctx->pos = 0;
        /* fall through */
    case 2:
        /* Frames mapped by kept tables that cannot be frozen stay. */
        for ( ; ctx->kept_held_tables && ctx->pos < ctx->nr_frames; ctx->pos++ )
        {
            unsigned long i = ctx->pos;

            if ( ms_moved(ctx, i) || !ms_is_table(MS_F(ctx, i, cls)) )
                continue;
            if ( ms_should_yield(ctx) )
                return MEMSWAP_PREEMPTED;
            if ( !ms_freezable(ctx, i, ms_page(MS_F(ctx, i, old_mfn))) )
                ms_keep_mapped_by(ctx, i);
        }
    }

    ctx->res.frames_total = ms_host_tot_pages(ctx->d);
    ctx->res.frames_kept[MEMSWAP_KEPT_NOT_IN_P2M] =
        ctx->res.frames_total > ctx->nr_frames ?
        ctx->res.frames_total - ctx->nr_frames : 0;
    ctx->res.frames_moved = 0;
    if ( ctx->meta_bytes > ctx->res.extra_bytes_peak )
        ctx->res.extra_bytes_peak = ctx->meta_bytes;

    /*
     * Enough free frames on the requested colours/node? Fail early and
     * cheaply. (A live PV swap planning again in its final stop has most of
     * its frames already.)
     */
    need = ctx->nr_to_alloc;
    have = ms_host_free_frames(ctx->d, &ctx->req);
    if ( have < need )
        return -ENOMEM;

    if ( ctx->req.flags & MEMSWAP_F_DRY_RUN )
    {
        /* A dry run reports what would move; FREE gives the references back. */
        ctx->res.frames_moved = ctx->nr_movable;
        ms_enter(ctx, MEMSWAP_PH_FREE);
        return 0;
    }
    ms_enter(ctx, MEMSWAP_PH_ALLOC);
    return 0;
}

/* ------------------------------------------------------------------------
 * ALLOC and COPY: everything is written into new frames only.
 */

/*
 * A PV guest's page tables hold MFNs, and Xen (so the engine) only knows
 * them as tables once they are pinned or in use. Linux builds a new mm's
 * tables (fork) and tears an old one down (exit) as plain writable pages.
 * Such a tree always has its page directory, and a Linux pgd carries the
 * kernel half (slots 273..511) of the running kernel's L4; on 64-bit PV
 * each mm also has a user pgd whose kernel half is the running user L4's
 * (the vsyscall slot). A data page with exactly one of those kernel halves
 * is such a directory:
 *  - its user half empty (just allocated, or already torn down and freed,
 *    as Linux leaves freed pgds): the kernel half is translated like the
 *    live L4's, so the pgd is right whenever Linux goes on to use it;
 *  - its user half in use (copy_page_range or exit_mmap in progress): the
 *    tree below is unknown, so the swap is given up with -EAGAIN before the
 *    point of no return: retry, or suspend the guest first so that Linux
 *    pins every table (the cooperative swap).
 */
static void ms_note_l4_half(struct memswap_ctx *ctx, struct ms_l4_half *h,
                            unsigned long l4)
{
    const ms_pte_t *t;
    unsigned int s;

    if ( h->valid || l4 == MS_INVALID_MFN || !ms_own_frame(ctx, l4) )
        return;
    t = ms_map(l4);
    ms_memcpy(h->slot, t + MS_LINUX_KERNEL_PGD_FIRST, sizeof(h->slot));
    ms_unmap(t);
    for ( s = 0; s < MS_PTES_PER_PAGE - MS_LINUX_KERNEL_PGD_FIRST; s++ )
        if ( h->slot[s] & MS_PAGE_PRESENT )
        {
            h->probe = s;
            h->valid = true;
            return;
        }
}

static bool ms_l4_half_same(const struct ms_l4_half *a, const struct ms_l4_half *b)
{
    return a->valid == b->valid &&
           (!a->valid || (a->probe == b->probe && !ms_memcmp(a->slot, b->slot, sizeof(a->slot))));
}

static void ms_note_linux_pgds(struct memswap_ctx *ctx)
{
    unsigned int v;

    for ( v = 0; v < ms_host_max_vcpus(ctx->d); v++ )
    {
        struct vcpu *vc = ms_host_vcpu(ctx->d, v);

        if ( !vc )
            continue;
        ms_note_l4_half(ctx, &ctx->pgd_ref[0], ms_host_vcpu_guest_table(vc));
        ms_note_l4_half(ctx, &ctx->pgd_ref[1], ms_host_vcpu_guest_table_user(vc));
    }
}

/* Translated: does block @b (512 gfns) hold a frame that moves? */
static bool ms_block_moves(const struct memswap_ctx *ctx, unsigned long b)
{
    unsigned long i;

    for ( i = ctx->leaf_first[b]; i < ctx->leaf_first[b + 1]; i++ )
        if ( ms_moved(ctx, i) )
            return true;
    return false;
}

static int ms_phase_alloc(struct memswap_ctx *ctx)
{
    unsigned long n = 0;
    int rc;

    for ( ; ctx->step == 0 && ctx->pos < ctx->nr_frames; ctx->pos++ )
    {
        unsigned long i = ctx->pos, mfn;

        if ( !ms_moved(ctx, i) || MS_F(ctx, i, new_mfn) != MS_INVALID_MFN )
            continue;
        if ( ms_yield_point(ctx, &n) )
            return MEMSWAP_PREEMPTED;
        mfn = ms_host_alloc_frame(ctx->d, &ctx->req, MS_F(ctx, i, pfn));
        if ( mfn == MS_INVALID_MFN )
            return -ENOMEM;
        MS_F(ctx, i, new_mfn) = mfn;
        ctx->nr_allocated++;
    }
    if ( ctx->step == 0 )
    {
        ctx->step = 1;
        ctx->pos = 0;
    }

    /*
     * Translated: entries that will be replaced one frame at a time are
     * split now, while a failure can still roll everything back.
     */
    for ( ; ctx->translated && ctx->pos < ctx->nr_leaves; ctx->pos++ )
    {
        unsigned long b = ctx->pos, first = b * MS_P2M_PER_PAGE;

        if ( !ms_block_moves(ctx, b) )
            continue;
        if ( ms_yield_point(ctx, &n) )
            return MEMSWAP_PREEMPTED;
        rc = ms_host_p2m_prepare(ctx->d, first,
                                 ctx->nr_pfns - first < MS_P2M_PER_PAGE ?
                                 (unsigned int)(ctx->nr_pfns - first) : MS_P2M_PER_PAGE);
        if ( rc )
            return rc;
    }

    if ( ctx->late_cap > ctx->late_alloc )
    {
        uint32_t *late = ms_host_zalloc(ctx->late_cap * sizeof(*late));

        if ( !late )
            return -ENOMEM;
        if ( ctx->late )
            ms_host_free(ctx->late, ctx->late_alloc * sizeof(*late));
        ctx->meta_bytes += (ctx->late_cap - ctx->late_alloc) * sizeof(*late);
        ctx->late = late;
        ctx->late_alloc = ctx->late_cap;
    }
    if ( ctx->meta_bytes + (uint64_t)ctx->nr_allocated * 4096 > ctx->res.extra_bytes_peak )
        ctx->res.extra_bytes_peak = ctx->meta_bytes + (uint64_t)ctx->nr_allocated * 4096;
    ms_note_linux_pgds(ctx);
    if ( ctx->stopped )
        ctx->pgd_look_all = !ms_l4_half_same(&ctx->pgd_ref[0], &ctx->pgd_seen[0]) ||
                            !ms_l4_half_same(&ctx->pgd_ref[1], &ctx->pgd_seen[1]);
    ms_enter(ctx, MEMSWAP_PH_COPY);
    return 0;
}

static bool ms_l4_half_matches(const struct ms_l4_half *h, const ms_pte_t *page)
{
    const ms_pte_t *half = page + MS_LINUX_KERNEL_PGD_FIRST;

    return h->valid && half[h->probe] == h->slot[h->probe] &&
           !ms_memcmp(half, h->slot, sizeof(h->slot));
}

/* A Linux pgd Xen does not know (see above): 1, 0 for none, or -EAGAIN. */
static int ms_unpinned_pgd(const struct memswap_ctx *ctx, const ms_pte_t *page)
{
    unsigned int i;

    if ( !ms_l4_half_matches(&ctx->pgd_ref[0], page) &&
         !ms_l4_half_matches(&ctx->pgd_ref[1], page) )
        return 0;
    for ( i = 0; i < MS_LINUX_USER_PGD_SLOTS; i++ )
        if ( page[i] & MS_PAGE_PRESENT )
            return -EAGAIN;
    return 1;
}

/*
 * Look whether frame @i, whose bytes are @page, is a Linux page directory
 * Xen does not know, and record it (MS_FL_PGD). A half-built one gives up
 * the swap (-EAGAIN) where the copy is final; during a live pre-copy the
 * guest may still finish it: the frame is copied, and looked at, again in
 * the final stop.
 */
static int ms_look_pgd(struct memswap_ctx *ctx, unsigned long i, const ms_pte_t *page)
{
    int r = ms_unpinned_pgd(ctx, page);
    uint8_t *fl = &MS_F(ctx, i, flags);

    if ( ctx->stopped )
        ctx->final_looks++;
    if ( r > 0 )
    {
        if ( !(*fl & MS_FL_PGD) )
            ctx->res.unpinned_pgds++;
        *fl |= MS_FL_PGD;
        return 0;
    }
    if ( *fl & MS_FL_PGD )
        ctx->res.unpinned_pgds--;
    *fl &= ~MS_FL_PGD;
    if ( r == 0 )
        return 0;
    if ( !ctx->live || ctx->stopped )
        return r;
    *fl &= ~MS_FL_COPIED;
    return 0;
}

/*
 * Copy frames @idx[0..@n) (n <= MS_COPY_BATCH) into their new frames
 * (@copy), and/or look whether each is a Linux page directory Xen does not
 * know (@pgd[k], on the bytes the copy just read, while they are in the
 * cache). 0 or -EAGAIN (a pgd half built).
 */
static int ms_copy_frames(struct memswap_ctx *ctx, const unsigned long *idx,
                          const bool *pgd, unsigned int n, bool copy)
{
    const void *src[MS_COPY_BATCH];
    void *dst[MS_COPY_BATCH];
    unsigned int k;
    int rc = 0, r;

    for ( k = 0; k < n; k++ )
    {
        unsigned long i = idx[k], old_mfn = MS_F(ctx, i, old_mfn);

        /* XSA-402: lines a non-coherent mapping bypassed must not be what we read. */
        if ( copy && (MS_F(ctx, i, flags) & MS_FL_NONCOH) )
            ms_host_flush_cache(old_mfn);
        src[k] = ms_map(old_mfn);
        dst[k] = copy ? ms_map(MS_F(ctx, i, new_mfn)) : NULL;
    }
    if ( copy )
        ms_copy_pages(dst, src, n);
    for ( k = 0; k < n; k++ )
    {
        unsigned long i = idx[k];

        if ( copy )
        {
            ms_unmap(dst[k]);
            MS_F(ctx, i, flags) |= MS_FL_COPIED;
            ctx->res.bytes_copied += 4096;
            if ( ctx->live )
            {
                if ( ctx->stopped )
                    ctx->res.live_final_pages++;
                else
                    ctx->res.live_precopy_pages++;
            }
        }
        if ( pgd && pgd[k] && (r = ms_look_pgd(ctx, i, src[k])) && !rc )
            rc = r;
        ms_unmap(src[k]);
    }
    return rc;
}

/* One frame, copied again (nothing else to look at), and visible everywhere. */
static void ms_copy_frame(struct memswap_ctx *ctx, unsigned long i)
{
    ms_copy_frames(ctx, &i, NULL, 1, true);
    ms_copy_sync();
}

/*
 * Every frame that moves gets a copy. A live swap's first round runs with
 * the domain running and log-dirty on (a translated swap has it on in any
 * case, to see what a device model writes); a PV guest's final stop copies
 * only what is new or was written since its copy. Frames are copied
 * MS_COPY_BATCH at a time.
 *
 * A PV guest's data frames are looked at for Linux page directories Xen
 * does not know on the bytes of each copy, pre-copy rounds included: a
 * frame whose copy is still good has the bytes it was looked at with, so
 * the final stop looks only at what it copies - what was written since -
 * and at frames whose class changed (a table freed is a data page now,
 * maybe a pgd; ms_pv_recheck() has them copied again). Unless the running
 * kernel's L4 halves the looks compare with are not those of the pre-copy
 * any more: then at every data frame.
 */
static int ms_phase_copy(struct memswap_ctx *ctx)
{
    unsigned long n = 0, batch[MS_COPY_BATCH];
    bool pgds[MS_COPY_BATCH];
    unsigned int nb = 0;
    int rc = 0;

    if ( ctx->step == 0 )
    {
        if ( (ctx->translated || ctx->live) && (rc = ms_logdirty_on(ctx)) )
            return rc;
        ctx->step = 1;
    }
    for ( ; ctx->pos < ctx->nr_frames; ctx->pos++ )
    {
        unsigned long i = ctx->pos;
        bool copy, pgd;

        if ( !ms_moved(ctx, i) )
            continue;
        copy = !(MS_F(ctx, i, flags) & MS_FL_COPIED) ||
               (ctx->stopped && ms_is_dirty(ctx, MS_F(ctx, i, pfn)));
        pgd = !ctx->translated && MS_F(ctx, i, cls) == MEMSWAP_FC_DATA;
        if ( !copy )
        {
            if ( pgd && ctx->pgd_look_all && (rc = ms_copy_frames(ctx, &i, &pgd, 1, false)) )
                break;
            continue;
        }
        batch[nb] = i;
        pgds[nb++] = pgd;
        if ( nb < MS_COPY_BATCH )
            continue;
        nb = 0;
        if ( (rc = ms_copy_frames(ctx, batch, pgds, MS_COPY_BATCH, true)) )
            break;
        /* A preemption point every few batches, with none pending. */
        if ( ms_yield_point(ctx, &n) )
        {
            ctx->pos++;
            rc = MEMSWAP_PREEMPTED;
            break;
        }
    }
    if ( !rc && nb )
        rc = ms_copy_frames(ctx, batch, pgds, nb, true);
    /* The continuation may run on another CPU: the copies are visible first. */
    ms_copy_sync();
    if ( rc )
        return rc;
    if ( ctx->stopped )
        ms_log("d%u final stop: copied %lu frames, looked at %lu for page directories",
               ms_host_domid(ctx->d), (unsigned long)ctx->res.live_final_pages,
               ctx->final_looks);
    if ( ctx->live && !ctx->stopped )
    {
        ctx->res.live_rounds = 1;
        ms_enter(ctx, MEMSWAP_PH_PRECOPY);
        return 0;
    }
    ms_enter(ctx, MEMSWAP_PH_FREEZE);
    return 0;
}

/* ------------------------------------------------------------------------
 * PRECOPY (live): copy again what the running domain wrote, round after
 * round; then stop it.
 */

/*
 * Copy again every moving frame the last read of the log found written
 * (and look at its bytes again: see ms_phase_copy()).
 */
static int ms_precopy_dirty(struct memswap_ctx *ctx)
{
    unsigned long n = 0;
    int rc = 0;

    for ( ; ctx->pos < ctx->nr_frames; ctx->pos++ )
    {
        unsigned long i = ctx->pos;
        bool pgd = !ctx->translated && MS_F(ctx, i, cls) == MEMSWAP_FC_DATA;

        if ( !ms_moved(ctx, i) || !(MS_F(ctx, i, flags) & MS_FL_COPIED) ||
             !ms_is_dirty(ctx, MS_F(ctx, i, pfn)) )
            continue;
        if ( ms_yield_point(ctx, &n) )
        {
            rc = MEMSWAP_PREEMPTED;
            break;
        }
        ms_copy_frames(ctx, &i, &pgd, 1, true);
    }
    /* The continuation may run on another CPU: the copies are visible first. */
    ms_copy_sync();
    return rc;
}

/*
 * PV final stop: the guest ran since it was planned. Its P2M registration
 * must be the one the swap started with (-EAGAIN otherwise); every indexed
 * frame must still be its pfn's in the guest's P2M and in the M2P, or it
 * stays (KEPT_CHANGED); and the plan starts again from the frames' types:
 * COUNT_REFS, CLASSIFY, ALLOC and COPY run again, keeping the copies that
 * are still good.
 *
 * Why COUNT_REFS walks every validated table again rather than only the
 * tables the dirty log marks written. Xen does mark a table's pfn dirty on
 * every change to what it holds - an entry written (mmu_update), the page
 * becoming or ceasing to be a table (alloc_page_type(), free_page_type()),
 * a pin - so the log does name every table whose references changed. But
 * the expected counts are sums, per target frame, over all tables: taking
 * a written table's old share out needs the entries that were counted,
 * and the engine does not have them - its copy of a moving table may have
 * been taken after the guest changed it (log-dirty only starts at COPY,
 * after the first COUNT_REFS), a kept table has no copy, and keeping the
 * counted entries would cost a page per table. Nor would it pay: the walk
 * is a small part of the stop (a quiet 256 MiB guest's final stop in the
 * simulator: 0.5-0.7 ms of 7-12 ms). What dominates is per frame and has
 * to be: CLASSIFY and FREEZE visit every frame because a frame's counts
 * change without anything being written to it (dom0 maps it, a backend
 * maps a grant, a reference is dropped), so each one is judged again and
 * frozen at its planned count while the domain is stopped. (The look for
 * Linux page directories, which did visit every data frame here, follows
 * the log: see ms_phase_copy().)
 */
static int ms_pv_recheck(struct memswap_ctx *ctx)
{
    if ( ctx->pos == 0 )
    {
        unsigned long fll, nr;
        uint64_t cr3;

        if ( ms_pfn_space(ctx->d, &fll, &cr3, &nr) || fll != ctx->fll_mfn ||
             nr != ctx->nr_pfns )
            return -EAGAIN;
        ctx->p2m_cr3 = cr3;
        ctx->nr_movable = ctx->nr_to_alloc = 0;
        ctx->late_cap = ctx->nr_late = 0;
        ctx->kept_held_tables = false;
        ms_memset(ctx->res.frames_kept, 0, sizeof(ctx->res.frames_kept));
        ms_memset(ctx->res.frames_by_class, 0, sizeof(ctx->res.frames_by_class));
        /*
         * The running kernel's L4 halves are noted again (ALLOC); the
         * pre-copy's looks stand if they are the same.
         */
        ctx->pgd_seen[0] = ctx->pgd_ref[0];
        ctx->pgd_seen[1] = ctx->pgd_ref[1];
        ctx->pgd_ref[0].valid = ctx->pgd_ref[1].valid = false;
    }
    for ( ; ctx->pos < ctx->nr_leaves; ctx->pos++ )
    {
        unsigned long b = ctx->pos, i, lmfn;
        const uint64_t *ent = NULL;

        if ( ctx->leaf_first[b] == ctx->leaf_first[b + 1] )
            continue;
        if ( (b % MS_PREEMPT_LEAVES) == 0 && ms_should_yield(ctx) )
            return MEMSWAP_PREEMPTED;
        if ( (lmfn = ms_leaf_mfn(ctx, b)) != MS_INVALID_MFN )
            ent = ms_map(lmfn);
        for ( i = ctx->leaf_first[b]; i < ctx->leaf_first[b + 1]; i++ )
        {
            unsigned long pfn = MS_F(ctx, i, pfn), mfn = MS_F(ctx, i, old_mfn);
            bool changed = !ent || ent[pfn % MS_P2M_PER_PAGE] != mfn ||
                           !ms_frame_of(ctx->d, mfn, pfn);
            int level = ms_level_of_type(ms_page(mfn)->u.inuse.type_info & PGT_type_mask);
            unsigned int cls = level ? MEMSWAP_FC_L1 + level - 1 : MEMSWAP_FC_DATA;
            uint8_t *fl = &MS_F(ctx, i, flags);

            MS_F(ctx, i, exp_gen) = MS_F(ctx, i, exp_typ) = 0;
            *fl &= MS_FL_COPIED | MS_FL_NONCOH | MS_FL_PGD;
            MS_F(ctx, i, kept) = changed ? MEMSWAP_KEPT_CHANGED : MS_NOT_KEPT;
            /* A data frame now that was not looked at as one: copy and look again. */
            if ( !changed && cls == MEMSWAP_FC_DATA && MS_F(ctx, i, cls) != cls )
                *fl &= ~MS_FL_COPIED;
            /* A pgd is a data frame that moves. */
            if ( (*fl & MS_FL_PGD) && (changed || cls != MEMSWAP_FC_DATA) )
            {
                *fl &= ~MS_FL_PGD;
                ctx->res.unpinned_pgds--;
            }
            if ( !changed )
                MS_F(ctx, i, cls) = cls;
        }
        if ( ent )
            ms_unmap(ent);
    }
    return 0;
}

static int ms_phase_precopy(struct memswap_ctx *ctx)
{
    int rc;

    switch ( ctx->step )
    {
    case 0:
        /* A round: read and clear the log... */
        if ( (rc = ms_read_dirty(ctx, true)) )
            return rc;
        ctx->res.live_dirty_last = ctx->dirty_count;
        ctx->step = 1;
        ctx->pos = 0;
        /* fall through */
    case 1:
        /* ...and copy what it found, then decide as simple_precopy_policy(). */
        if ( (rc = ms_precopy_dirty(ctx)) )
            return rc;
        ctx->res.live_rounds++;
        if ( ctx->res.live_dirty_last >= ctx->req.live_dirty_threshold &&
             ctx->res.live_rounds < ctx->req.live_max_rounds )
        {
            ctx->step = 0;
            ctx->pos = 0;
            ctx->dirty_count = 0;
            return 0;
        }
        ctx->step = 2;
        /* fall through */
    case 2:
        if ( (ctx->req.flags & MEMSWAP_F_HOLD) && !ctx->held )
        {
            /* The caller prepares the final stop (suspends a PV guest). */
            ctx->held = true;
            return MEMSWAP_HELD;
        }
        /* A translated guest is committed frame by frame from COMMIT on. */
        if ( ctx->translated )
        {
            ms_enter(ctx, MEMSWAP_PH_FREEZE);
            return 0;
        }
        /* PV: the final stop. */
        ms_pause(ctx);
        ctx->stopped = true;
        ctx->step = 3;
        ctx->pos = 0;
        ctx->dirty_count = 0;
        /* fall through */
    case 3:
        if ( (rc = ms_read_dirty(ctx, true)) )
            return rc;
        ctx->step = 4;
        ctx->pos = 0;
        /* fall through */
    case 4:
        if ( (rc = ms_pv_recheck(ctx)) )
            return rc;
        ctx->step = 5;
        ctx->pos = 0;
        ctx->marked_mid_mfn = MS_INVALID_MFN;
        /* fall through */
    case 5:
        if ( (rc = ms_scan_mark_tree(ctx)) )
            return rc;
    }
    ms_enter(ctx, MEMSWAP_PH_COUNT_REFS);
    return 0;
}

/* ------------------------------------------------------------------------
 * FREEZE: no new references to the frames COMMIT touches; re-verify;
 * translate the copies.
 */

/* Translate a page-table frame from @src into @dst (may be the same frame). */
static void ms_translate_table(struct memswap_ctx *ctx, ms_pte_t *dst,
                               const ms_pte_t *src, int level, bool new_frame,
                               unsigned long dst_mfn)
{
    unsigned int i;

    for ( i = 0; i < MS_PTES_PER_PAGE; i++ )
    {
        ms_pte_t e = src[i];
        unsigned long mfn, to;

        if ( level == 4 && !ms_host_is_guest_l4_slot(ctx->d, i) )
        {
            /* Xen's slots of a kept L4 stay; a new L4's are regenerated below. */
            if ( !new_frame )
                continue;
            dst[i] = 0;
            continue;
        }
        if ( !(e & MS_PAGE_PRESENT) )
        {
            dst[i] = e;
            continue;
        }
        mfn = ms_pte_mfn(e);
        to = ms_xlate(ctx, mfn);
        if ( to != mfn )
        {
            e = ms_pte_set_mfn(e, to);
            ctx->res.ptes_translated++;
        }
        dst[i] = e;
    }
    if ( level == 4 && new_frame )
        ms_host_init_xen_l4_slots(ctx->d, dst, dst_mfn);
}

static void ms_translate_p2m(struct memswap_ctx *ctx, uint64_t *dst,
                             const uint64_t *src)
{
    unsigned int i;

    for ( i = 0; i < MS_P2M_PER_PAGE; i++ )
    {
        uint64_t e = src[i];

        /* Identity, foreign and invalid markers are kept as they are. */
        if ( ms_p2m_entry_is_mfn(e) )
        {
            unsigned long to = ms_xlate(ctx, (unsigned long)e);

            if ( to != e )
            {
                e = to;
                ctx->res.ptes_translated++;
            }
        }
        dst[i] = e;
    }
}

/*
 * Rewrite the MFNs in frame @mfn in place: a table or P2M frame of class
 * @cls, or an unpinned Linux pgd (@pgd: its guest slots, Xen's left as
 * they are). @new_frame: a copy about to become the table (Xen's L4 slots
 * are regenerated for it).
 */
static void ms_translate_frame(struct memswap_ctx *ctx, unsigned long mfn,
                               unsigned int cls, bool pgd, bool new_frame)
{
    void *p;

    if ( !pgd && !ms_is_table(cls) && !ms_is_p2m(cls) )
        return;
    p = ms_map(mfn);
    if ( pgd )
        ms_translate_table(ctx, p, p, 4, false, mfn);
    else if ( ms_is_table(cls) )
        ms_translate_table(ctx, p, p, cls - MEMSWAP_FC_L1 + 1, new_frame, mfn);
    else
        ms_translate_p2m(ctx, p, p);
    ms_unmap(p);
}

/* Freeze frame @i and check it is exactly as planned; 0 or -EAGAIN. */
static int ms_freeze_one(struct memswap_ctx *ctx, unsigned long i)
{
    unsigned long mfn = MS_F(ctx, i, old_mfn);
    const struct page_info *pg = ms_page(mfn);
    unsigned long ti = pg->u.inuse.type_info;

    if ( !ms_host_freeze_frame(ctx->d, mfn, ms_planned_gen(ctx, i, ti)) )
        return -EAGAIN;
    MS_F(ctx, i, flags) |= MS_FL_FROZEN;
    /*
     * Frozen, nobody can take a reference, so nobody can take a type
     * reference: the type word is final now. It must be what the plan
     * accounted for, and the frame must still be the pfn's in the M2P,
     * which the translation relies on (and which nobody can change any
     * more: that takes a reference too).
     */
    ti = pg->u.inuse.type_info;
    if ( (ti & PGT_count_mask) != ms_planned_typ(ctx, i, ti) || (ti & PGT_locked) ||
         (ms_moved(ctx, i) && ms_is_table(MS_F(ctx, i, cls)) &&
          (ti & (PGT_validated | PGT_partial)) != PGT_validated) )
        return -EAGAIN;
    if ( ms_m2p_get(mfn) != MS_F(ctx, i, pfn) )
        return -EAGAIN;
    return 0;
}

static int ms_phase_freeze(struct memswap_ctx *ctx)
{
    unsigned long n = 0;
    int rc;

    /*
     * A translated guest's frames are frozen one by one inside their
     * commit, under the p2m lock: someone taking a reference through the
     * p2m waits for the lock instead of failing on a frozen frame.
     */
    if ( ctx->translated )
    {
        ms_enter(ctx, MEMSWAP_PH_COMMIT);
        return 0;
    }

    /* Step 0: freeze. */
    for ( ; ctx->step == 0 && ctx->pos < ctx->nr_frames; ctx->pos++ )
    {
        unsigned long i = ctx->pos;
        bool moved = ms_moved(ctx, i);

        ms_prefetch_ahead(ctx, i);
        if ( !moved && !(MS_F(ctx, i, flags) & MS_FL_INPLACE) )
        {
            /*
             * A kept P2M frame others map is rewritten unfrozen (its entries
             * hold no references): it must still be the guest's plain page.
             */
            if ( ms_is_p2m(MS_F(ctx, i, cls)) &&
                 !ms_plain_page(ctx, ms_page(MS_F(ctx, i, old_mfn))) )
                return -EAGAIN;
            continue;
        }
        if ( ms_yield_point(ctx, &n) )
            return MEMSWAP_PREEMPTED;
        if ( (rc = ms_freeze_one(ctx, i)) )
            return rc;
        if ( !moved || ms_is_table(MS_F(ctx, i, cls)) )
            ctx->late[ctx->nr_late++] = (uint32_t)i;
    }
    if ( ctx->step == 0 )
    {
        ctx->step = ctx->live ? 1 : 3;
        ctx->pos = 0;
        ctx->dirty_count = 0;
    }

    /*
     * Steps 1 and 2, live: what was written between the final stop's read
     * of the log and the freeze (a grant copy, MMU_MACHPHYS_UPDATE) is in
     * the log; nobody can write a frozen frame of a paused domain any more
     * (a writer needs a reference), so copying those again makes the
     * copies final.
     */
    if ( ctx->step == 1 )
    {
        if ( (rc = ms_read_dirty(ctx, false)) )
            return rc;
        ctx->step = 2;
        ctx->pos = 0;
    }
    for ( ; ctx->step == 2 && ctx->pos < ctx->nr_frames; ctx->pos++ )
    {
        unsigned long i = ctx->pos;

        if ( !ms_moved(ctx, i) || !ms_is_dirty(ctx, MS_F(ctx, i, pfn)) )
            continue;
        if ( ms_yield_point(ctx, &n) )
            return MEMSWAP_PREEMPTED;
        ms_copy_frame(ctx, i);
    }
    if ( ctx->step == 2 )
    {
        ctx->step = 3;
        ctx->pos = 0;
    }

    /* Step 3: with the M2P fixed, translate the copies of tables and P2M frames. */
    for ( ; ctx->pos < ctx->nr_frames; ctx->pos++ )
    {
        unsigned long i = ctx->pos;
        unsigned int cls = MS_F(ctx, i, cls);
        bool pgd = MS_F(ctx, i, flags) & MS_FL_PGD;

        if ( !ms_moved(ctx, i) || (!pgd && !ms_is_table(cls) && !ms_is_p2m(cls)) )
            continue;
        if ( ms_should_yield(ctx) )
            return MEMSWAP_PREEMPTED;
        ms_translate_frame(ctx, MS_F(ctx, i, new_mfn), cls, pgd, true);
    }
    /*
     * The copies are final: a PV guest leaves log-dirty (shadow) mode
     * before the commit rewrites its tables and roots in place.
     */
    ms_logdirty_off(ctx);
    ms_enter(ctx, MEMSWAP_PH_COMMIT);
    return 0;
}

/* ------------------------------------------------------------------------
 * COMMIT: the point of no return. Nothing below may fail.
 */

/*
 * Hand frame @i's place to its new frame. The new frame stays frozen
 * (count 0: nobody can take or drop a reference) if its entries hold
 * references - a table - until all of them are live at the end of COMMIT;
 * anything else holds no references and is live at once.
 */
static void ms_commit_frame(struct memswap_ctx *ctx, unsigned long i)
{
    unsigned long old_mfn = MS_F(ctx, i, old_mfn), new_mfn = MS_F(ctx, i, new_mfn);

    ms_host_transfer_frame(ctx->d, old_mfn, new_mfn);
    /*
     * The old frame's M2P entry still names the pfn: ms_xlate() of old
     * MFNs (kept tables, holders) relies on it until the commit is over.
     * FREE invalidates it just before the frame goes back to the heap.
     */
    ms_m2p_set(new_mfn, MS_F(ctx, i, pfn));
    if ( !ms_is_table(MS_F(ctx, i, cls)) )
        ms_host_thaw_frame(ctx->d, new_mfn,
                           ms_planned_gen(ctx, i, ms_page(new_mfn)->u.inuse.type_info) - 1);
    ctx->res.frames_moved++;
}

/*
 * A kept table or P2M frame is live: its entries to moved frames change in
 * place. Only the guest's own plain page is ever written: a frozen one is
 * (nobody could change that since FREEZE); a kept P2M frame others map was
 * not frozen (its entries hold no references) and is checked here.
 */
static void ms_commit_kept_frame(struct memswap_ctx *ctx, unsigned long i)
{
    unsigned int cls = MS_F(ctx, i, cls);
    unsigned long mfn = MS_F(ctx, i, old_mfn);

    if ( MS_F(ctx, i, flags) & MS_FL_INPLACE )
        ms_translate_frame(ctx, mfn, cls, false, false);
    else if ( ms_is_p2m(cls) && ms_plain_page(ctx, ms_page(mfn)) )
        ms_translate_frame(ctx, mfn, cls, false, false);
}

/*
 * Every frame is in place: make the new tables live and thaw the kept
 * frames that were rewritten, in one go, so that no table anyone can
 * reach holds a reference on a frame nobody can reference yet. Bounded by
 * the number of tables; not preemptible on purpose.
 */
static void ms_commit_late(struct memswap_ctx *ctx)
{
    unsigned long k;

    for ( k = 0; k < ctx->nr_late; k++ )
    {
        unsigned long i = ctx->late[k];
        bool moved = ms_moved(ctx, i);
        unsigned long mfn = moved ? MS_F(ctx, i, new_mfn) : MS_F(ctx, i, old_mfn);
        unsigned long ti = ms_page(mfn)->u.inuse.type_info;

        /* A moved frame's new count lacks our reference: we kept none on it. */
        ms_host_thaw_frame(ctx->d, mfn, ms_planned_gen(ctx, i, ti) - moved);
        if ( !moved )
            MS_F(ctx, i, flags) &= ~MS_FL_FROZEN;
    }
}

static void ms_commit_holders(struct memswap_ctx *ctx)
{
    struct domain *d = ctx->d;
    unsigned long gdt[16];
    unsigned int i, n, g;
    uint64_t cr3 = ctx->p2m_cr3;

    /* PV: shared_info's P2M registration (a translated guest has none). */
    if ( !ctx->translated )
    {
        if ( cr3 )
            cr3 = ((uint64_t)ms_xlate(ctx, (unsigned long)(cr3 >> 12)) << 12) | (cr3 & 0xfff);
        ms_host_set_p2m_info(d, ms_xlate(ctx, ctx->fll_mfn), cr3);
    }

    for ( i = 0; i < ms_host_max_vcpus(d); i++ )
    {
        struct vcpu *v = ms_host_vcpu(d, i);
        unsigned long info;

        if ( !v )
            continue;
        /* Both kinds: Xen writes vcpu_info through its own mapping. */
        info = ms_host_vcpu_info_mfn(v);
        if ( info != MS_INVALID_MFN && ms_xlate(ctx, info) != info )
            ms_host_vcpu_move_vcpu_info(v, info, ms_xlate(ctx, info));
        /* PV: page-table roots and GDT frames. */
        if ( ctx->translated )
            continue;
        ms_host_vcpu_set_guest_tables(v, ms_xlate(ctx, ms_host_vcpu_guest_table(v)),
                                      ms_xlate(ctx, ms_host_vcpu_guest_table_user(v)));
        n = ms_host_vcpu_gdt_frames(v, gdt, sizeof(gdt) / sizeof(gdt[0]));
        for ( g = 0; g < n; g++ )
            if ( ms_xlate(ctx, gdt[g]) != gdt[g] )
                ms_host_vcpu_set_gdt_frame(v, g, ms_xlate(ctx, gdt[g]));
    }
    ms_host_flush_tlbs(d);
}

/*
 * The end of every commit: the holders outside guest memory re-pointed,
 * TLBs flushed, log-dirty off (a PV swap turned it off before), the domain
 * running again.
 */
static void ms_commit_end(struct memswap_ctx *ctx)
{
    ms_commit_holders(ctx);
    ms_logdirty_off(ctx);
    ms_unpause(ctx);
    ms_enter(ctx, MEMSWAP_PH_FREE);
}

/*
 * A frame that was to move stays after all (it could not be frozen, its
 * p2m entry changed): its result counts follow. Its new frame goes back in
 * FREE.
 */
static void ms_keep_at_commit(struct memswap_ctx *ctx, unsigned long i,
                              enum memswap_kept_reason why)
{
    MS_F(ctx, i, kept) = why;
    ctx->res.frames_kept[why]++;
    ctx->res.frames_by_class[MS_F(ctx, i, cls)]--;
}

/*
 * Translated: commit frame @i inside a p2m batch. Frozen (the plan's count
 * exactly, as in FREEZE), its new frame's M2P entry set (so that a write
 * to it is logged), the p2m entry replaced keeping its type - only if the
 * gfn was not written since its copy while the domain runs; when it is
 * paused, a written frame is copied again now that nobody can write it -
 * and its ownership transferred. While the domain runs, a frame that
 * cannot be committed waits for the final stop; in the final stop it stays.
 */
static void ms_commit_gfn(struct memswap_ctx *ctx, unsigned long i, bool final)
{
    unsigned long old_mfn = MS_F(ctx, i, old_mfn), new_mfn = MS_F(ctx, i, new_mfn);
    unsigned long pfn = MS_F(ctx, i, pfn);
    int rc, why;

    if ( (rc = ms_freeze_one(ctx, i)) )
        goto stays;
    ms_m2p_set(new_mfn, pfn);
    rc = ms_host_p2m_replace(ctx->d, pfn, old_mfn, new_mfn, true);
    if ( rc == -EAGAIN && final )
    {
        ms_copy_frame(ctx, i);
        rc = ms_host_p2m_replace(ctx->d, pfn, old_mfn, new_mfn, false);
    }
    if ( rc )
    {
        ms_m2p_set(new_mfn, INVALID_M2P_ENTRY);
        goto stays;
    }
    ms_host_transfer_frame(ctx->d, old_mfn, new_mfn);
    /* The new frame's count lacks our reference: we kept none on it. */
    ms_host_thaw_frame(ctx->d, new_mfn,
                       ms_planned_gen(ctx, i, ms_page(new_mfn)->u.inuse.type_info) - 1);
    MS_F(ctx, i, flags) = (MS_F(ctx, i, flags) & ~MS_FL_FROZEN) | MS_FL_DONE;
    ctx->res.frames_moved++;
    if ( !final )
        ctx->res.live_committed_running++;
    return;

 stays:
    if ( MS_F(ctx, i, flags) & MS_FL_FROZEN )
    {
        ms_host_thaw_frame(ctx->d, old_mfn,
                           ms_planned_gen(ctx, i, ms_page(old_mfn)->u.inuse.type_info));
        MS_F(ctx, i, flags) &= ~MS_FL_FROZEN;
    }
    if ( rc == -ENOENT )
        ms_keep_at_commit(ctx, i, MEMSWAP_KEPT_CHANGED);
    else if ( final )
    {
        why = ms_judge(ctx, i, ms_page(old_mfn));
        ms_keep_at_commit(ctx, i, why == MS_NOT_KEPT ? MEMSWAP_KEPT_UNEXPLAINED : why);
    }
}

/* The final stop: a frame an active grant pins now stays. */
static void ms_grant_final_cb(void *arg, unsigned long mfn)
{
    struct memswap_ctx *ctx = arg;
    unsigned long i = ms_indexed(ctx, mfn);

    if ( i != MS_NO_FRAME && ms_moved(ctx, i) && !(MS_F(ctx, i, flags) & MS_FL_DONE) )
        ms_keep_at_commit(ctx, i, MEMSWAP_KEPT_GRANTED);
}

/*
 * Translated: commit every frame still to commit, MS_P2M_BATCH at a time
 * under the p2m lock, yielding between batches. While the domain runs
 * (@final false) the frames Xen holds through a vCPU wait for the final
 * stop, where they are re-pointed.
 */
static int ms_commit_gfns(struct memswap_ctx *ctx, bool final)
{
    while ( ctx->pos < ctx->nr_frames )
    {
        unsigned long n = 0, seen = 0;

        if ( ms_should_yield(ctx) )
            return MEMSWAP_PREEMPTED;
        ms_host_p2m_batch_begin(ctx->d);
        for ( ; ctx->pos < ctx->nr_frames && n < MS_P2M_BATCH && seen < MS_BATCH_SCAN;
              ctx->pos++, seen++ )
        {
            unsigned long i = ctx->pos;
            uint8_t fl = MS_F(ctx, i, flags);

            if ( !ms_moved(ctx, i) || (fl & MS_FL_DONE) || (!final && (fl & MS_FL_HOLDER)) )
                continue;
            ms_prefetch_ahead(ctx, i);
            ms_commit_gfn(ctx, i, final);
            n++;
        }
        ms_host_p2m_batch_end(ctx->d);
    }
    return 0;
}

/*
 * Translated: the point of no return is the first frame committed. Step 0
 * (live) commits what it can with the domain running; step 1 stops it and
 * marks what active grants pin now; step 2 commits the rest; step 3
 * re-points vcpu_info, flushes, turns log-dirty off and unpauses.
 */
static int ms_commit_translated(struct memswap_ctx *ctx)
{
    int rc;

    switch ( ctx->step )
    {
    case 0:
        if ( ctx->live && (rc = ms_commit_gfns(ctx, false)) )
            return rc;
        ctx->step = 1;
        ctx->pos = 0;
        /* fall through */
    case 1:
        ms_pause(ctx);
        ctx->stopped = true;
        ms_host_grant_frames(ctx->d, ms_grant_final_cb, ctx);
        ctx->step = 2;
        /* fall through */
    case 2:
        if ( (rc = ms_commit_gfns(ctx, true)) )
            return rc;
    }
    ctx->step = 3;
    ms_commit_end(ctx);
    return 0;
}

static int ms_phase_commit(struct memswap_ctx *ctx)
{
    unsigned long n = 0;

    if ( ctx->translated )
        return ms_commit_translated(ctx);

    /*
     * Step 0 hands every moved frame's counts and ownership to its new
     * frame, fixes the M2P and rewrites kept tables. It may be preempted:
     * the domain stays paused, and every frame a reference could be taken
     * or dropped through is frozen until step 1.
     */
    for ( ; ctx->step == 0 && ctx->pos < ctx->nr_frames; ctx->pos++ )
    {
        unsigned long i = ctx->pos;

        ms_prefetch_ahead(ctx, i);
        if ( ms_yield_point(ctx, &n) )
            return MEMSWAP_PREEMPTED;
        if ( ms_moved(ctx, i) )
            ms_commit_frame(ctx, i);
        else
            ms_commit_kept_frame(ctx, i);
    }
    /* Step 1: everything live; the holders outside guest memory, TLBs, go. */
    ctx->step = 1;
    ms_commit_late(ctx);
    ms_commit_end(ctx);
    return 0;
}

/*
 * FREE: old frames back to the heap while the domain runs, and the
 * references on every other indexed frame (kept frames, and everything
 * after a dry run) given back.
 */
static int ms_phase_free(struct memswap_ctx *ctx)
{
    unsigned long n = 0;

    for ( ; ctx->pos < ctx->nr_frames; ctx->pos++ )
    {
        unsigned long i = ctx->pos, old_mfn = MS_F(ctx, i, old_mfn);

        ms_prefetch_ahead(ctx, i);
        if ( ms_yield_point(ctx, &n) )
            return MEMSWAP_PREEMPTED;
        if ( MS_F(ctx, i, new_mfn) == MS_INVALID_MFN )
        {
            ms_host_put_frame(old_mfn);
            continue;
        }
        /* Given a new frame, then kept after all: that frame goes back. */
        if ( !ms_moved(ctx, i) )
        {
            ms_host_free_frame(MS_F(ctx, i, new_mfn));
            MS_F(ctx, i, new_mfn) = MS_INVALID_MFN;
            ms_host_put_frame(old_mfn);
            continue;
        }
        ms_m2p_set(old_mfn, INVALID_M2P_ENTRY);
        /*
         * XSA-402, as cleanup_page_mappings() does before a page is freed:
         * a frame once mapped writable with a non-coherent memory type is
         * flushed before anyone else can have it.
         */
        if ( ms_page(old_mfn)->u.inuse.type_info & PGT_non_coherent )
            ms_host_flush_cache(old_mfn);
        ms_host_release_frame(old_mfn);
    }
    ms_enter(ctx, MEMSWAP_PH_DONE);
    return 0;
}

/* ------------------------------------------------------------------------
 * Rollback: undo everything done before the point of no return, frame by
 * frame and resumable like the phases (the domain stays paused until it
 * is complete). ctx->phase keeps the phase that failed.
 */
static void ms_start_rollback(struct memswap_ctx *ctx, int rc)
{
    ms_charge(ctx);
    ctx->res.failed_phase = ctx->phase;
    ctx->rc = rc;
    ctx->undoing = true;
    ctx->pos = 0;
}

static int ms_rollback(struct memswap_ctx *ctx)
{
    unsigned long n = 0;

    for ( ; ctx->pos < ctx->nr_frames; ctx->pos++ )
    {
        unsigned long i = ctx->pos, old_mfn = MS_F(ctx, i, old_mfn);

        if ( ms_yield_point(ctx, &n) )
            return MEMSWAP_PREEMPTED;
        if ( MS_F(ctx, i, flags) & MS_FL_FROZEN )
        {
            ms_host_thaw_frame(ctx->d, old_mfn,
                               ms_planned_gen(ctx, i, ms_page(old_mfn)->u.inuse.type_info));
            MS_F(ctx, i, flags) &= ~MS_FL_FROZEN;
        }
        if ( MS_F(ctx, i, new_mfn) != MS_INVALID_MFN )
        {
            ms_host_free_frame(MS_F(ctx, i, new_mfn));
            MS_F(ctx, i, new_mfn) = MS_INVALID_MFN;
        }
        /* Our reference last: it may be the frame's last one (freed now). */
        ms_host_put_frame(old_mfn);
    }
    ctx->nr_allocated = 0;
    ms_logdirty_off(ctx);
    ms_unpause(ctx);
    ctx->res.frames_moved = 0;
    ctx->res.bytes_copied = 0;
    ctx->res.ptes_translated = 0;
    ctx->res.live_precopy_pages = ctx->res.live_final_pages = 0;
    ctx->undoing = false;
    ms_enter(ctx, MEMSWAP_PH_DONE);
    return ctx->rc;
}

/* ------------------------------------------------------------------------
 * The interface.
 */

int memswap_begin(struct domain *d, const struct memswap_request *req,
                  struct memswap_ctx **ctxp)
{
    struct memswap_ctx *ctx;
    unsigned int i, any = 0;
    bool translated, live;
    int rc;

    if ( (req->flags & ~(MEMSWAP_F_DRY_RUN | MEMSWAP_F_LIVE | MEMSWAP_F_HOLD)) || req->pad )
        return -EINVAL;
    if ( ((req->flags & MEMSWAP_F_HOLD) && !(req->flags & MEMSWAP_F_LIVE)) ||
         req->live_max_rounds > MEMSWAP_LIVE_ROUNDS_MAX )
        return -EINVAL;
    if ( req->geom.nr_colours == 0 || req->geom.nr_colours > MEMSWAP_MAX_COLOURS ||
         (req->geom.nr_colours & (req->geom.nr_colours - 1)) ||
         req->geom.colour_shift > 32 )
        return -EINVAL;
    for ( i = 0; i < MEMSWAP_COLOUR_WORDS; i++ )
        any |= req->colours[i] != 0;
    for ( i = req->geom.nr_colours; any && i < MEMSWAP_MAX_COLOURS; i++ )
        if ( (req->colours[i / 64] >> (i % 64)) & 1 )
            return -EINVAL;     /* a colour the geometry does not have */
    translated = ms_host_translated(d);
    live = req->flags & MEMSWAP_F_LIVE;
    if ( (rc = ms_host_check_domain(d, translated || live ? MS_CHECK_LOGDIRTY : 0)) )
        return rc;
    if ( *ctxp )
        return -EBUSY;

    ctx = ms_host_zalloc(sizeof(*ctx));
    if ( !ctx )
        return -ENOMEM;
    ctx->d = d;
    ctx->req = *req;
    ctx->translated = translated;
    ctx->live = live && !(req->flags & MEMSWAP_F_DRY_RUN);
    ctx->res.translated = translated;
    if ( !ctx->req.live_max_rounds )
        ctx->req.live_max_rounds = MEMSWAP_LIVE_ROUNDS_DEFAULT;
    if ( !ctx->req.live_dirty_threshold )
        ctx->req.live_dirty_threshold = MEMSWAP_LIVE_DIRTY_DEFAULT;
    ctx->empty_leaf_mfn = ctx->marked_mid_mfn = MS_INVALID_MFN;
    ctx->meta_bytes = sizeof(*ctx);
    ctx->t_phase = ms_host_now_ns();
    ctx->phase = MEMSWAP_PH_SCAN;
    *ctxp = ctx;
    return 0;
}

int memswap_run(struct memswap_ctx *ctx)
{
    int rc = 0;

    ctx->t_phase = ms_host_now_ns();
    ctx->resumed = true;
    /*
     * Between two calls the domain may have started dying, or a toolstack
     * may have put it in log-dirty mode or given it a device: before the
     * point of no return, any answer but yes rolls the swap back.
     */
    if ( !ctx->undoing && ctx->phase < MEMSWAP_PH_COMMIT &&
         (rc = ms_host_check_domain(ctx->d, ms_check_flags(ctx))) )
        ms_start_rollback(ctx, rc);
    while ( ctx->phase != MEMSWAP_PH_DONE )
    {
        if ( ctx->undoing )
            rc = ms_rollback(ctx);
        else switch ( ctx->phase )
        {
        case MEMSWAP_PH_SCAN:       rc = ms_phase_scan(ctx); break;
        case MEMSWAP_PH_COUNT_REFS: rc = ms_phase_count_refs(ctx); break;
        case MEMSWAP_PH_CLASSIFY:   rc = ms_phase_classify(ctx); break;
        case MEMSWAP_PH_ALLOC:      rc = ms_phase_alloc(ctx); break;
        case MEMSWAP_PH_COPY:       rc = ms_phase_copy(ctx); break;
        case MEMSWAP_PH_PRECOPY:    rc = ms_phase_precopy(ctx); break;
        case MEMSWAP_PH_FREEZE:     rc = ms_phase_freeze(ctx); break;
        case MEMSWAP_PH_COMMIT:     rc = ms_phase_commit(ctx); break;
        case MEMSWAP_PH_FREE:       rc = ms_phase_free(ctx); break;
        default:                    rc = -EINVAL; break;
        }
        if ( rc == MEMSWAP_PREEMPTED )
        {
            ctx->res.continuations++;
            ms_charge(ctx);
            return rc;
        }
        if ( rc == MEMSWAP_HELD )
        {
            ms_charge(ctx);
            return rc;
        }
        /* Only phases before the point of no return can fail. */
        if ( rc < 0 && !ctx->undoing && ctx->phase != MEMSWAP_PH_DONE )
            ms_start_rollback(ctx, rc);
    }
    ms_charge(ctx);
    return ctx->rc;
}

int memswap_cancel(struct memswap_ctx *ctx)
{
    if ( ctx->phase == MEMSWAP_PH_DONE )
        return ctx->rc;
    if ( ctx->phase < MEMSWAP_PH_COMMIT && !ctx->undoing )
        ms_start_rollback(ctx, -EINTR);
    /* A rollback, or past the point of no return the only way out: forward. */
    return memswap_run(ctx);
}

int memswap_abort(struct memswap_ctx *ctx)
{
    ctx->finishing = true;
    return memswap_cancel(ctx);
}

const struct memswap_result *memswap_result(const struct memswap_ctx *ctx)
{
    return &ctx->res;
}

enum memswap_phase memswap_phase(const struct memswap_ctx *ctx)
{
    return ctx->phase;
}

void memswap_progress(const struct memswap_ctx *ctx, uint64_t *done, uint64_t *total)
{
    *done = ctx->pos;
    *total = ctx->phase == MEMSWAP_PH_SCAN && ctx->step == 1 ? ctx->nr_leaves :
             ctx->phase == MEMSWAP_PH_SCAN && ctx->step == 2 ? MS_P2M_PER_PAGE :
             ctx->nr_frames;
}

void memswap_end(struct memswap_ctx *ctx)
{
    unsigned long s;

    if ( !ctx )
        return;
    if ( ctx->phase != MEMSWAP_PH_DONE )
        memswap_abort(ctx);
    for ( s = 0; ctx->seg && s < ctx->nr_segs; s++ )
        if ( ctx->seg[s] )
            ms_host_free(ctx->seg[s], sizeof(struct ms_seg));
    if ( ctx->seg )
        ms_host_free(ctx->seg, (ctx->nr_segs ?: 1) * sizeof(*ctx->seg));
    if ( ctx->leaf_first )
        ms_host_free(ctx->leaf_first, (ctx->nr_leaves + 1) * sizeof(*ctx->leaf_first));
    if ( ctx->late )
        ms_host_free(ctx->late, ctx->late_alloc * sizeof(*ctx->late));
    if ( ctx->dirty )
        ms_host_free(ctx->dirty, ctx->dirty_words * sizeof(*ctx->dirty));
    ms_host_free(ctx, sizeof(*ctx));
}

unsigned long memswap_nr_pfns(const struct memswap_ctx *ctx)
{
    return ctx->nr_pfns;
}

int memswap_pfn_info(const struct memswap_ctx *ctx, unsigned long pfn,
                     int *cls, int *kept_reason, uint64_t *old_mfn, uint64_t *new_mfn)
{
    unsigned long i;

    if ( !ctx->indexed || (i = ms_frame_of_pfn(ctx, pfn)) == MS_NO_FRAME )
        return -ENOENT;
    *cls = MS_F(ctx, i, cls);
    *kept_reason = MS_F(ctx, i, kept) == MS_NOT_KEPT ? -1 : MS_F(ctx, i, kept);
    *old_mfn = MS_F(ctx, i, old_mfn);
    *new_mfn = MS_F(ctx, i, new_mfn);
    return 0;
}

unsigned long memswap_nr_frames(const struct memswap_ctx *ctx)
{
    return ctx->nr_frames;
}

int memswap_frame_info(const struct memswap_ctx *ctx, unsigned long i,
                       uint64_t *pfn, uint64_t *old_mfn, uint64_t *new_mfn)
{
    if ( i >= ctx->nr_frames )
        return -ENOENT;
    *pfn = MS_F(ctx, i, pfn);
    *old_mfn = MS_F(ctx, i, old_mfn);
    *new_mfn = MS_F(ctx, i, new_mfn);
    return 0;
}

/* ------------------------------------------------------------------------
 * Where a domain's memory is (no swap context, changes nothing).
 */

int memswap_query_size(struct domain *d, uint64_t *nr_pfns)
{
    unsigned long fll, nr;
    uint64_t cr3;
    int rc = ms_pfn_space(d, &fll, &cr3, &nr);

    *nr_pfns = rc ? 0 : nr;
    return rc;
}

/* Count frame @mfn and store it in @frames[@k]. */
static void ms_query_frame(struct memswap_query *q, uint64_t *frames, unsigned int k,
                           unsigned long mfn)
{
    if ( frames )
        frames[k] = mfn;
    q->frames_counted++;
    if ( q->colour_counts && q->geom.nr_colours )
        q->colour_counts[memswap_colour_of(&q->geom, mfn)]++;
    if ( q->node_counts )
    {
        unsigned int node = ms_host_mfn_node(mfn);

        if ( node < q->nr_nodes )
            q->node_counts[node]++;
    }
}

int memswap_query_range(struct domain *d, struct memswap_query *q,
                        uint64_t first, unsigned int nr, uint64_t *frames)
{
    unsigned long fll, nr_pfns, mfns[MS_P2M_LOOKUP_MAX];
    uint8_t types[MS_P2M_LOOKUP_MAX];
    uint64_t cr3;
    unsigned int k;
    int rc;

    if ( nr > MEMSWAP_QUERY_BATCH ||
         (q->geom.nr_colours && (q->geom.nr_colours > MEMSWAP_MAX_COLOURS ||
                                 (q->geom.nr_colours & (q->geom.nr_colours - 1)))) )
        return -EINVAL;
    if ( (rc = ms_pfn_space(d, &fll, &cr3, &nr_pfns)) )
        return rc;
    for ( k = 0; frames && k < nr; k++ )
        frames[k] = MEMSWAP_NO_FRAME;
    if ( first >= nr_pfns )
        return 0;
    if ( nr > nr_pfns - first )
        nr = (unsigned int)(nr_pfns - first);

    if ( ms_host_translated(d) )
    {
        ms_host_p2m_lookup(d, (unsigned long)first, nr, mfns, types);
        for ( k = 0; k < nr; k++ )
            if ( ms_p2mt_is_ram(types[k]) && ms_frame_of(d, mfns[k], first + k) )
                ms_query_frame(q, frames, k, mfns[k]);
        return 0;
    }

    /* PV: through the leaves of the guest's tree, a window at a time. */
    for ( k = 0; k < nr; )
    {
        unsigned long pfn = first + k, lmfn = ms_pv_leaf_mfn(d, fll, pfn / MS_P2M_PER_PAGE);
        unsigned int n = MS_P2M_PER_PAGE - pfn % MS_P2M_PER_PAGE, j;
        const uint64_t *ent;

        if ( n > nr - k )
            n = nr - k;
        if ( lmfn != MS_INVALID_MFN )
        {
            ent = ms_map(lmfn);
            for ( j = 0; j < n; j++ )
            {
                uint64_t e = ent[(pfn + j) % MS_P2M_PER_PAGE];

                if ( ms_p2m_entry_is_mfn(e) && ms_frame_of(d, (unsigned long)e, pfn + j) )
                    ms_query_frame(q, frames, k + j, (unsigned long)e);
            }
            ms_unmap(ent);
        }
        k += n;
    }
    return 0;
}

const char *memswap_phase_name(enum memswap_phase ph)
{
    static const char *const names[MEMSWAP_PH_NR] = {
        "idle", "scan", "count-refs", "classify", "alloc", "copy",
        "precopy", "freeze", "commit", "free", "done",
    };

    return (unsigned int)ph < MEMSWAP_PH_NR ? names[ph] : "?";
}

const char *memswap_kept_name(enum memswap_kept_reason r)
{
    static const char *const names[MEMSWAP_KEPT_NR] = {
        "granted", "foreign", "unexplained", "not_in_p2m", "xen", "p2m_type",
        "changed",
    };

    return (unsigned int)r < MEMSWAP_KEPT_NR ? names[r] : "?";
}

const char *memswap_class_name(enum memswap_frame_class c)
{
    static const char *const names[MEMSWAP_FC_NR] = {
        "none", "data", "l1", "l2", "l3", "l4", "p2m-leaf", "p2m-mid", "p2m-top",
    };

    return (unsigned int)c < MEMSWAP_FC_NR ? names[c] : "?";
}
