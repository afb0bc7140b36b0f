/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memswap engine: move a running PV domain's memory to other machine frames.
 *
 * One algorithm, compiled into the hypervisor (__XEN__) and into the
 * simulator; see private.h for what each host provides. The engine's
 * contract is DESIGN.md's "What a correct swap keeps true". In short:
 *
 *  SCAN        Walk the guest's P2M tree from shared_info (frame list list
 *              -> mid frames -> leaves) and index every pfn whose frame is
 *              ours and whose M2P entry agrees. All guest-controlled MFNs
 *              are checked for ownership before use.
 *  COUNT_REFS  Walk every validated page table we indexed and count, for
 *              each frame, the general and type references the domain's own
 *              tables account for (as Xen's get_page_from_lNe would have
 *              taken them), plus the vCPU holders.
 *  CLASSIFY    A frame moves when its counts are exactly what we accounted
 *              for and no grant entry permits access to it. Anything else
 *              stays and is reported with the reason.
 *  ALLOC       Target frames from the host allocator (colours, node).
 *  COPY        Copy plain frames; write translated copies of page tables
 *              and P2M frames (own moved frames only, flags and markers
 *              kept, Xen's L4 slots regenerated) into the new frames.
 *              Nothing the domain can see has changed yet.
 *  FREEZE      Stop anyone taking new references to old frames; verify the
 *              counts again (a foreign mapping made during the swap makes
 *              us roll back with -EAGAIN rather than lose its reference).
 *  COMMIT      The point of no return: transfer counts and ownership, fix
 *              the M2P, translate kept tables in place, re-point vCPU and
 *              shared_info holders, flush TLBs, unpause.
 *  FREE        Return the old frames to the heap, with the domain running.
 *
 * Every phase is resumable: progress lives in the context, and the host's
 * preemption check may stop any phase between two frames. Failures before
 * COMMIT roll back completely; COMMIT and FREE cannot fail.
 */

#include "memswap.h"
#include "private.h"

/*
 * Linux x86-64 clones L4 slots from pgd_index(PAGE_OFFSET) = 273 up of its
 * kernel page directory into every new one (pgd_ctor).
 */
#define MS_LINUX_KERNEL_PGD_FIRST 273

/* Per-pfn engine state lives in chunks of one P2M leaf (512 pfns). */
#define MS_CHUNK_SHIFT      9
#define MS_CHUNK            (1UL << MS_CHUNK_SHIFT)
#define MS_NOT_KEPT         0xff

/* How far ahead the scan prefetches frame metadata, in P2M entries. */
#define MS_PREFETCH_AHEAD   8

/* How often the phases ask whether to yield, in frames. */
#define MS_PREEMPT_FRAMES   64
#define MS_PREEMPT_LEAVES   8

/*
 * Bound on the guest's P2M size we accept: 2^27 pfns (512 GiB of pseudo-
 * physical space, Linux's default hotplug limit). The guest controls
 * max_pfn; this keeps the engine's index bounded whatever it says.
 */
#define MS_MAX_PFNS         (1UL << 27)

struct ms_chunk {
    unsigned long old_mfn[MS_CHUNK];    /* own, P2M-consistent frame, or invalid */
    unsigned long new_mfn[MS_CHUNK];    /* target frame of a moved pfn, or invalid */
    uint32_t exp_gen[MS_CHUNK];         /* general refs our tables/holders account for */
    uint32_t exp_typ[MS_CHUNK];         /* type refs likewise */
    uint8_t cls[MS_CHUNK];              /* enum memswap_frame_class */
    uint8_t kept[MS_CHUNK];             /* enum memswap_kept_reason or MS_NOT_KEPT */
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

    enum memswap_phase phase;
    unsigned int step;                  /* sub-step within the phase */
    unsigned long pos;                  /* pfn or leaf index within the step */
    bool paused;                        /* we hold a pause reference */
    bool finishing;                     /* abort after commit: run without yielding */
    bool resumed;                       /* no preemption check answered since entry */
    int rc;                             /* final result once DONE */

    /* The guest's P2M, as registered in shared_info at the start. */
    unsigned long fll_mfn;
    uint64_t p2m_cr3;
    unsigned long nr_pfns;
    unsigned long nr_leaves;
    unsigned long *leaf_mfn;            /* [nr_leaves] */
    unsigned long empty_leaf_mfn;       /* last leaf found to hold no own frame */

    struct ms_chunk **chunk;            /* [nr_leaves], NULL where no own frame */
    unsigned long nr_indexed;           /* own frames found in the P2M */
    unsigned long nr_movable;
    unsigned long nr_allocated;

    uint64_t t_phase, t_pause;

    /*
     * The kernel halves of the running kernel's L4s, to recognise Linux
     * page directories Xen does not know about; see ms_fix_unpinned_pgd().
     */
    struct ms_l4_half pgd_ref[2];       /* kernel and user L4 of the running kernel */
    uint64_t meta_bytes;
};

/* ------------------------------------------------------------------------
 * Small helpers.
 */

static inline struct ms_chunk *ms_chunk_of(const struct memswap_ctx *ctx,
                                           unsigned long pfn)
{
    unsigned long leaf = pfn >> MS_CHUNK_SHIFT;

    return leaf < ctx->nr_leaves ? ctx->chunk[leaf] : NULL;
}

static inline bool ms_moved(const struct ms_chunk *c, unsigned int i)
{
    return c->cls[i] != MEMSWAP_FC_NONE && c->kept[i] == MS_NOT_KEPT;
}

/* pfn of an own indexed frame, or MS_INVALID_PFN. */
static inline unsigned long ms_indexed_pfn(const struct memswap_ctx *ctx,
                                           unsigned long mfn)
{
    unsigned long pfn;
    const struct ms_chunk *c;

    if ( !ms_mfn_valid(mfn) )
        return MS_INVALID_PFN;
    pfn = ms_m2p_get(mfn);
    if ( pfn >= ctx->nr_pfns )
        return MS_INVALID_PFN;
    c = ms_chunk_of(ctx, pfn);
    if ( !c || c->old_mfn[pfn & (MS_CHUNK - 1)] != mfn )
        return MS_INVALID_PFN;
    return pfn;
}

/*
 * The one translation: an own frame that moves maps to its new frame;
 * every other MFN (foreign, I/O, Xen's, kept, garbage) maps to itself.
 * The M2P is only a hint here - guests can write their own M2P entries -
 * so the answer is checked against the index built from the P2M.
 */
static inline unsigned long ms_xlate(const struct memswap_ctx *ctx,
                                     unsigned long mfn)
{
    unsigned long pfn = ms_indexed_pfn(ctx, mfn);
    const struct ms_chunk *c;
    unsigned int i;

    if ( pfn == MS_INVALID_PFN )
        return mfn;
    c = ctx->chunk[pfn >> MS_CHUNK_SHIFT];
    i = pfn & (MS_CHUNK - 1);
    return c->new_mfn[i] != MS_INVALID_MFN ? c->new_mfn[i] : mfn;
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

static inline bool ms_own_frame(const struct memswap_ctx *ctx, unsigned long mfn)
{
    return ms_mfn_valid(mfn) && ms_page_owner(ms_page(mfn)) == ctx->d;
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
 * The per-frame loops of every phase: move ctx->pos to the next indexed pfn
 * (one of the domain's frames found in its P2M) at or after it, or return
 * false at the end. A continuation resumes at ctx->pos.
 */
static bool ms_next_frame(struct memswap_ctx *ctx, struct ms_chunk **cp,
                          unsigned int *ip)
{
    while ( ctx->pos < ctx->nr_pfns )
    {
        struct ms_chunk *c = ms_chunk_of(ctx, ctx->pos);
        unsigned int i = ctx->pos & (MS_CHUNK - 1);

        if ( !c )
            ctx->pos = (ctx->pos | (MS_CHUNK - 1)) + 1;
        else if ( c->cls[i] == MEMSWAP_FC_NONE )
            ctx->pos++;
        else
        {
            *cp = c;
            *ip = i;
            return true;
        }
    }
    return false;
}

/* A preemption point every MS_PREEMPT_FRAMES frames of a phase's loop. */
static bool ms_yield_point(struct memswap_ctx *ctx, unsigned long *n)
{
    return (++*n % MS_PREEMPT_FRAMES) == 0 && ms_should_yield(ctx);
}

/*
 * The per-frame loops walk pfns in order while the frames behind them are
 * scattered over the frame table: fetch the metadata of the frame a few
 * pfns ahead (old and, once allocated, new) while this one is worked on.
 */
static inline void ms_prefetch_ahead(const struct ms_chunk *c, unsigned int i)
{
    unsigned int j = i + MS_PREFETCH_AHEAD;

    if ( j >= MS_CHUNK )
        return;
    if ( c->old_mfn[j] != MS_INVALID_MFN )
        ms_prefetch_frame(c->old_mfn[j]);
    if ( c->new_mfn[j] != MS_INVALID_MFN )
        ms_prefetch_frame(c->new_mfn[j]);
}

static int ms_alloc_chunk(struct memswap_ctx *ctx, unsigned long leaf)
{
    struct ms_chunk *c = ms_host_zalloc(sizeof(*c));
    unsigned int i;

    if ( !c )
        return -ENOMEM;
    for ( i = 0; i < MS_CHUNK; i++ )
    {
        c->old_mfn[i] = MS_INVALID_MFN;
        c->new_mfn[i] = MS_INVALID_MFN;
        c->kept[i] = MS_NOT_KEPT;
    }
    ctx->chunk[leaf] = c;
    ctx->meta_bytes += sizeof(*c);
    return 0;
}

/* ------------------------------------------------------------------------
 * SCAN: the guest's P2M tree and the index of own frames.
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

/* Step 0: read the registration, check every frame of the tree is ours. */
static int ms_scan_tree(struct memswap_ctx *ctx)
{
    struct domain *d = ctx->d;
    unsigned long max_pfn, nr_mids, m, l;
    const uint64_t *top;
    int rc = 0;

    ms_host_p2m_info(d, &ctx->fll_mfn, &ctx->p2m_cr3, &max_pfn);

    /* A guest that has not published its P2M cannot be translated. */
    if ( !ctx->fll_mfn || !ms_own_frame(ctx, ctx->fll_mfn) )
        return -EINVAL;
    if ( max_pfn == 0 || max_pfn > MS_MAX_PFNS )
        return -EINVAL;

    ctx->nr_pfns = max_pfn;
    ctx->nr_leaves = (max_pfn + MS_P2M_PER_PAGE - 1) / MS_P2M_PER_PAGE;
    nr_mids = (ctx->nr_leaves + MS_P2M_PER_PAGE - 1) / MS_P2M_PER_PAGE;
    if ( nr_mids > MS_P2M_PER_PAGE )
        return -EINVAL;

    ctx->leaf_mfn = ms_host_zalloc(ctx->nr_leaves * sizeof(*ctx->leaf_mfn));
    ctx->chunk = ms_host_zalloc(ctx->nr_leaves * sizeof(*ctx->chunk));
    if ( !ctx->leaf_mfn || !ctx->chunk )
        return -ENOMEM;
    ctx->meta_bytes += ctx->nr_leaves * (sizeof(*ctx->leaf_mfn) + sizeof(*ctx->chunk));

    top = ms_map(ctx->fll_mfn);
    for ( m = 0; m < nr_mids && !rc; m++ )
    {
        unsigned long mid_mfn = (unsigned long)top[m];
        const uint64_t *mid;

        if ( !ms_own_frame(ctx, mid_mfn) )
        {
            rc = -EINVAL;
            break;
        }
        mid = ms_map(mid_mfn);
        for ( l = 0; l < MS_P2M_PER_PAGE; l++ )
        {
            unsigned long leaf = m * MS_P2M_PER_PAGE + l;

            if ( leaf >= ctx->nr_leaves )
                break;
            if ( !ms_own_frame(ctx, (unsigned long)mid[l]) )
            {
                rc = -EINVAL;
                break;
            }
            ctx->leaf_mfn[leaf] = (unsigned long)mid[l];
        }
        ms_unmap(mid);
    }
    ms_unmap(top);
    return rc;
}

/* Step 1: index every pfn whose P2M frame is ours and M2P-consistent. */
static int ms_scan_leaves(struct memswap_ctx *ctx)
{
    for ( ; ctx->pos < ctx->nr_leaves; ctx->pos++ )
    {
        unsigned long leaf = ctx->pos, lmfn = ctx->leaf_mfn[leaf];
        const uint64_t *ent;
        unsigned int i;
        bool any = false;
        int rc, level;

        if ( (leaf % MS_PREEMPT_LEAVES) == 0 && leaf && ms_should_yield(ctx) )
            return MEMSWAP_PREEMPTED;
        /* Linux shares one "missing" and one "identity" leaf: read it once. */
        if ( lmfn == ctx->empty_leaf_mfn )
            continue;

        ent = ms_map(lmfn);
        for ( i = 0; i < MS_P2M_PER_PAGE; i++ )
        {
            unsigned long pfn = leaf * MS_P2M_PER_PAGE + i, mfn;
            struct ms_chunk *c;

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
            if ( !ms_own_frame(ctx, mfn) || ms_m2p_get(mfn) != pfn )
                continue;
            if ( !ctx->chunk[leaf] && (rc = ms_alloc_chunk(ctx, leaf)) )
            {
                ms_unmap(ent);
                return rc;
            }
            c = ctx->chunk[leaf];
            c->old_mfn[i] = mfn;
            /* Tables by their Xen type (read with the owner, one cache line). */
            level = ms_level_of_type(ms_page(mfn)->u.inuse.type_info & PGT_type_mask);
            c->cls[i] = level ? MEMSWAP_FC_L1 + level - 1 : MEMSWAP_FC_DATA;
            ctx->nr_indexed++;
            any = true;
        }
        ms_unmap(ent);
        if ( !any )
            ctx->empty_leaf_mfn = lmfn;
    }
    return 0;
}

/* Mark one frame of the P2M tree; every one must be an indexed own frame. */
static int ms_mark_p2m_frame(struct memswap_ctx *ctx, unsigned long mfn,
                             enum memswap_frame_class cls)
{
    unsigned long pfn = ms_indexed_pfn(ctx, mfn);
    struct ms_chunk *c;
    unsigned int i;

    if ( pfn == MS_INVALID_PFN )
        return -EINVAL;
    c = ctx->chunk[pfn >> MS_CHUNK_SHIFT];
    i = pfn & (MS_CHUNK - 1);
    /*
     * A frame may be a leaf many times over (shared leaves), not two things
     * (in particular not also a page table: refuse such a guest).
     */
    if ( c->cls[i] != MEMSWAP_FC_DATA && c->cls[i] != cls )
        return -EINVAL;
    c->cls[i] = cls;
    return 0;
}

/*
 * Step 2: classes of the tree's own frames. Within max_pfn every frame of
 * the tree must be ours. Beyond it Linux fills the top and the last mid
 * with its shared "mid missing" and "missing" frames; those are P2M frames
 * too (their entries name frames that move), so they are marked when they
 * are ours and otherwise left alone.
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
    unsigned long m;
    const uint64_t *top;
    int rc;

    if ( (rc = ms_mark_p2m_frame(ctx, ctx->fll_mfn, MEMSWAP_FC_P2M_TOP)) )
        return rc;
    top = ms_map(ctx->fll_mfn);
    for ( m = 0; m < MS_P2M_PER_PAGE && !rc; m++ )
        rc = ms_mark_mid(ctx, m, (unsigned long)top[m], m < nr_mids);
    ms_unmap(top);
    return rc;
}

static int ms_phase_scan(struct memswap_ctx *ctx)
{
    int rc;

    switch ( ctx->step )
    {
    case 0:
        ms_pause(ctx);
        if ( (rc = ms_scan_tree(ctx)) )
            return rc;
        ctx->step = 1;
        ctx->pos = 0;
        /* fall through */
    case 1:
        if ( (rc = ms_scan_leaves(ctx)) )
            return rc;
        ctx->step = 2;
        /* fall through */
    case 2:
        if ( (rc = ms_scan_mark_tree(ctx)) )
            return rc;
    }
    ms_enter(ctx, MEMSWAP_PH_COUNT_REFS);
    return 0;
}

/* ------------------------------------------------------------------------
 * COUNT_REFS: references the domain's own tables and Xen's holders account for.
 */

static void ms_expect(struct memswap_ctx *ctx, unsigned long mfn,
                      unsigned int gen, unsigned int typ)
{
    unsigned long pfn = ms_indexed_pfn(ctx, mfn);
    struct ms_chunk *c;

    if ( pfn == MS_INVALID_PFN )
        return;
    c = ctx->chunk[pfn >> MS_CHUNK_SHIFT];
    c->exp_gen[pfn & (MS_CHUNK - 1)] += gen;
    c->exp_typ[pfn & (MS_CHUNK - 1)] += typ;
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
    unsigned long gdt[16];

    for ( i = 0; i < ms_host_max_vcpus(ctx->d); i++ )
    {
        struct vcpu *v = ms_host_vcpu(ctx->d, i);

        if ( !v )
            continue;
        /* guest_table, guest_table_user, vcpu_info, GDT: get_page_and_type each. */
        ms_expect(ctx, ms_host_vcpu_guest_table(v), 1, 1);
        ms_expect(ctx, ms_host_vcpu_guest_table_user(v), 1, 1);
        ms_expect(ctx, ms_host_vcpu_info_mfn(v), 1, 1);
        n = ms_host_vcpu_gdt_frames(v, gdt, sizeof(gdt) / sizeof(gdt[0]));
        for ( g = 0; g < n; g++ )
            ms_expect(ctx, gdt[g], 1, 1);
    }
}

static int ms_phase_count_refs(struct memswap_ctx *ctx)
{
    struct ms_chunk *c;
    unsigned int i;

    for ( ; ms_next_frame(ctx, &c, &i); ctx->pos++ )
    {
        unsigned long type_info;

        if ( c->cls[i] < MEMSWAP_FC_L1 || c->cls[i] > MEMSWAP_FC_L4 )
            continue;
        /* A table is 512 entries of work: a preemption point each. */
        if ( ms_should_yield(ctx) )
            return MEMSWAP_PREEMPTED;
        /* Tables not (fully) validated hold no references yet: CLASSIFY keeps them. */
        type_info = ms_page(c->old_mfn[i])->u.inuse.type_info;
        if ( (type_info & (PGT_validated | PGT_partial)) != PGT_validated )
            continue;
        ms_count_table(ctx, c->old_mfn[i], c->cls[i] - MEMSWAP_FC_L1 + 1);
    }
    ms_count_vcpu_holders(ctx);
    ms_enter(ctx, MEMSWAP_PH_CLASSIFY);
    return 0;
}

/* ------------------------------------------------------------------------
 * CLASSIFY: movable or kept.
 */

static void ms_keep(struct memswap_ctx *ctx, struct ms_chunk *c, unsigned int i,
                    enum memswap_kept_reason why)
{
    if ( c->kept[i] != MS_NOT_KEPT )
        return;
    c->kept[i] = why;
}

static void ms_grant_cb(void *arg, unsigned long mfn)
{
    struct memswap_ctx *ctx = arg;
    unsigned long pfn = ms_indexed_pfn(ctx, mfn);

    if ( pfn != MS_INVALID_PFN )
        ms_keep(ctx, ctx->chunk[pfn >> MS_CHUNK_SHIFT], pfn & (MS_CHUNK - 1),
                MEMSWAP_KEPT_GRANTED);
}

/*
 * Compare a frame's counts with what we accounted for. Equal: it moves.
 * More general references than accounted for (with type references
 * consistent): someone outside maps it. Anything else: unexplained.
 */
static int ms_judge(const struct ms_chunk *c, unsigned int i,
                    const struct page_info *pg)
{
    unsigned long ci = pg->count_info, ti = pg->u.inuse.type_info;
    unsigned long type = ti & PGT_type_mask;
    unsigned long gen = ci & PGC_count_mask, typ = ti & PGT_count_mask;
    unsigned long exp_gen = c->exp_gen[i], exp_typ = c->exp_typ[i];
    bool table = c->cls[i] >= MEMSWAP_FC_L1 && c->cls[i] <= MEMSWAP_FC_L4;

    if ( !(ci & PGC_allocated) || (ci & (PGC_xen_heap | PGC_extra | PGC_broken)) ||
         !page_state_is(pg, inuse) )
        return MEMSWAP_KEPT_UNEXPLAINED;
    if ( ti & (PGT_partial | PGT_locked) )
        return MEMSWAP_KEPT_UNEXPLAINED;
    if ( table && !(ti & PGT_validated) )
        return MEMSWAP_KEPT_UNEXPLAINED;
    if ( type == PGT_shared_page )
        return MEMSWAP_KEPT_UNEXPLAINED;

    exp_gen += 1;                               /* PGC_allocated */
    if ( ti & PGT_pinned )
    {
        exp_gen += 1;
        exp_typ += 1;
    }
    if ( gen == exp_gen && typ == exp_typ )
        return MS_NOT_KEPT;
    if ( gen > exp_gen && typ >= exp_typ && gen - exp_gen >= typ - exp_typ )
        return MEMSWAP_KEPT_FOREIGN;
    return MEMSWAP_KEPT_UNEXPLAINED;
}

static int ms_phase_classify(struct memswap_ctx *ctx)
{
    struct ms_chunk *c;
    unsigned int i;
    unsigned long need, have, n = 0;

    if ( ctx->step == 0 )
    {
        ms_host_grant_frames(ctx->d, ms_grant_cb, ctx);
        ctx->step = 1;
    }
    for ( ; ms_next_frame(ctx, &c, &i); ctx->pos++ )
    {
        int verdict;

        ms_prefetch_ahead(c, i);
        if ( ms_yield_point(ctx, &n) )
            return MEMSWAP_PREEMPTED;
        if ( c->kept[i] == MS_NOT_KEPT )
        {
            verdict = ms_judge(c, i, ms_page(c->old_mfn[i]));
            if ( verdict != MS_NOT_KEPT )
                ms_keep(ctx, c, i, verdict);
        }
        if ( c->kept[i] == MS_NOT_KEPT )
        {
            ctx->nr_movable++;
            ctx->res.frames_by_class[c->cls[i]]++;
        }
        else
            ctx->res.frames_kept[c->kept[i]]++;
    }

    ctx->res.frames_total = ms_host_tot_pages(ctx->d);
    ctx->res.frames_kept[MEMSWAP_KEPT_NOT_IN_P2M] =
        ctx->res.frames_total > ctx->nr_indexed ?
        ctx->res.frames_total - ctx->nr_indexed : 0;
    ctx->res.frames_moved = 0;

    /* Enough free frames on the requested colours/node? Fail early and cheaply. */
    need = ctx->nr_movable;
    have = ms_host_free_frames(ctx->d, &ctx->req);
    if ( have < need )
        return -ENOMEM;

    if ( ctx->req.flags & MEMSWAP_F_DRY_RUN )
    {
        /* A dry run reports what would move; nothing was touched. */
        ctx->res.frames_moved = ctx->nr_movable;
        ms_enter(ctx, MEMSWAP_PH_DONE);
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

static int ms_phase_alloc(struct memswap_ctx *ctx)
{
    struct ms_chunk *c;
    unsigned int i;
    unsigned long n = 0;

    for ( ; ms_next_frame(ctx, &c, &i); ctx->pos++ )
    {
        unsigned long mfn;

        if ( !ms_moved(c, i) || c->new_mfn[i] != MS_INVALID_MFN )
            continue;
        if ( ms_yield_point(ctx, &n) )
            return MEMSWAP_PREEMPTED;
        mfn = ms_host_alloc_frame(ctx->d, &ctx->req, ctx->pos);
        if ( mfn == MS_INVALID_MFN )
            return -ENOMEM;
        c->new_mfn[i] = mfn;
        ctx->nr_allocated++;
    }
    ctx->res.extra_bytes_peak = ctx->meta_bytes + (uint64_t)ctx->nr_allocated * 4096;
    ms_note_linux_pgds(ctx);
    ms_enter(ctx, MEMSWAP_PH_COPY);
    return 0;
}

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

static bool ms_l4_half_matches(const struct ms_l4_half *h, const ms_pte_t *page)
{
    const ms_pte_t *half = page + MS_LINUX_KERNEL_PGD_FIRST;

    return h->valid && half[h->probe] == h->slot[h->probe] &&
           !ms_memcmp(half, h->slot, sizeof(h->slot));
}

/* After copying data frame @src to @dst (at @dst_mfn): 0, or -EAGAIN. */
static int ms_fix_unpinned_pgd(struct memswap_ctx *ctx, ms_pte_t *dst,
                               const ms_pte_t *src, unsigned long dst_mfn)
{
    unsigned int i;

    if ( !ms_l4_half_matches(&ctx->pgd_ref[0], src) &&
         !ms_l4_half_matches(&ctx->pgd_ref[1], src) )
        return 0;
    for ( i = 0; i < MS_LINUX_USER_PGD_SLOTS; i++ )
        if ( src[i] & MS_PAGE_PRESENT )
            return -EAGAIN;
    /* As a kept L4 is translated: guest slots only, Xen's left as they are. */
    ms_translate_table(ctx, dst, dst, 4, false, dst_mfn);
    ctx->res.unpinned_pgds++;
    return 0;
}

static int ms_copy_frame(struct memswap_ctx *ctx, int cls,
                         unsigned long old_mfn, unsigned long new_mfn)
{
    const void *src = ms_map(old_mfn);
    void *dst = ms_map(new_mfn);
    int rc = 0;

    switch ( cls )
    {
    case MEMSWAP_FC_L1: case MEMSWAP_FC_L2: case MEMSWAP_FC_L3: case MEMSWAP_FC_L4:
        ms_translate_table(ctx, dst, src, cls - MEMSWAP_FC_L1 + 1, true, new_mfn);
        break;
    case MEMSWAP_FC_P2M_LEAF: case MEMSWAP_FC_P2M_MID: case MEMSWAP_FC_P2M_TOP:
        ms_translate_p2m(ctx, dst, src);
        break;
    default:
        ms_copy_page(dst, src);
        rc = ms_fix_unpinned_pgd(ctx, dst, src, new_mfn);
        break;
    }
    ms_unmap(dst);
    ms_unmap(src);
    ctx->res.bytes_copied += 4096;
    return rc;
}

static int ms_phase_copy(struct memswap_ctx *ctx)
{
    struct ms_chunk *c;
    unsigned int i;
    unsigned long n = 0;
    int rc;

    for ( ; ms_next_frame(ctx, &c, &i); ctx->pos++ )
    {
        if ( !ms_moved(c, i) )
            continue;
        if ( ms_yield_point(ctx, &n) )
            return MEMSWAP_PREEMPTED;
        if ( (rc = ms_copy_frame(ctx, c->cls[i], c->old_mfn[i], c->new_mfn[i])) )
            return rc;
    }
    ms_enter(ctx, MEMSWAP_PH_FREEZE);
    return 0;
}

/* ------------------------------------------------------------------------
 * FREEZE: no new references to old frames from here; re-verify.
 */

static int ms_phase_freeze(struct memswap_ctx *ctx)
{
    struct ms_chunk *c;
    unsigned int i;
    unsigned long n = 0;

    for ( ; ms_next_frame(ctx, &c, &i); ctx->pos++ )
    {
        ms_prefetch_ahead(c, i);
        if ( !ms_moved(c, i) )
            continue;
        if ( ms_yield_point(ctx, &n) )
            return MEMSWAP_PREEMPTED;
        ms_host_freeze_frame(ctx->d, c->old_mfn[i]);
        /*
         * Frozen, the count can only go down (someone dropping a reference
         * they took since CLASSIFY). Any difference from the plan means a
         * reference we would not carry over: give up rather than lose it.
         */
        if ( ms_judge(c, i, ms_page(c->old_mfn[i])) != MS_NOT_KEPT )
        {
            ctx->pos++;   /* this frame is frozen too: thaw it on rollback */
            return -EAGAIN;
        }
    }
    ms_enter(ctx, MEMSWAP_PH_COMMIT);
    return 0;
}

/* ------------------------------------------------------------------------
 * COMMIT: the point of no return. Nothing below may fail.
 */

static void ms_commit_frame(struct memswap_ctx *ctx, struct ms_chunk *c,
                            unsigned int i, unsigned long pfn)
{
    const struct page_info *old = ms_page(c->old_mfn[i]);

    ms_host_transfer_frame(ctx->d, c->old_mfn[i], c->new_mfn[i],
                           old->count_info, old->u.inuse.type_info);
    /*
     * The old frame's M2P entry still names the pfn: ms_xlate() of old
     * MFNs (kept tables, holders) relies on it until the commit is over.
     * FREE invalidates it just before the frame goes back to the heap.
     */
    ms_m2p_set(c->new_mfn[i], pfn);
    ctx->res.frames_moved++;
}

/* A kept table or P2M frame is live: its entries to moved frames change in place. */
static void ms_commit_kept_frame(struct memswap_ctx *ctx, struct ms_chunk *c,
                                 unsigned int i)
{
    void *p;

    if ( c->cls[i] < MEMSWAP_FC_L1 )
        return;
    p = ms_map(c->old_mfn[i]);
    if ( c->cls[i] <= MEMSWAP_FC_L4 )
        ms_translate_table(ctx, p, p, c->cls[i] - MEMSWAP_FC_L1 + 1, false,
                           c->old_mfn[i]);
    else
        ms_translate_p2m(ctx, p, p);
    ms_unmap(p);
}

static void ms_commit_holders(struct memswap_ctx *ctx)
{
    struct domain *d = ctx->d;
    unsigned long gdt[16];
    unsigned int i, n, g;
    uint64_t cr3 = ctx->p2m_cr3;

    if ( cr3 )
        cr3 = ((uint64_t)ms_xlate(ctx, (unsigned long)(cr3 >> 12)) << 12) | (cr3 & 0xfff);
    ms_host_set_p2m_info(d, ms_xlate(ctx, ctx->fll_mfn), cr3);

    for ( i = 0; i < ms_host_max_vcpus(d); i++ )
    {
        struct vcpu *v = ms_host_vcpu(d, i);
        unsigned long info;

        if ( !v )
            continue;
        ms_host_vcpu_set_guest_tables(v, ms_xlate(ctx, ms_host_vcpu_guest_table(v)),
                                      ms_xlate(ctx, ms_host_vcpu_guest_table_user(v)));
        info = ms_host_vcpu_info_mfn(v);
        if ( info != MS_INVALID_MFN && ms_xlate(ctx, info) != info )
            ms_host_vcpu_move_vcpu_info(v, info, ms_xlate(ctx, info));
        n = ms_host_vcpu_gdt_frames(v, gdt, sizeof(gdt) / sizeof(gdt[0]));
        for ( g = 0; g < n; g++ )
            if ( ms_xlate(ctx, gdt[g]) != gdt[g] )
                ms_host_vcpu_set_gdt_frame(v, g, ms_xlate(ctx, gdt[g]));
    }
    ms_host_flush_tlbs(d);
}

static int ms_phase_commit(struct memswap_ctx *ctx)
{
    struct ms_chunk *c;
    unsigned int i;
    unsigned long n = 0;

    /*
     * Step 0 hands every moved frame's counts and ownership to its new
     * frame and fixes the M2P. It may be preempted: the domain stays paused
     * and its old frames frozen, and the new frames are consistent owned
     * pages from the moment they are handed over.
     */
    for ( ; ctx->step == 0 && ms_next_frame(ctx, &c, &i); ctx->pos++ )
    {
        ms_prefetch_ahead(c, i);
        if ( ms_yield_point(ctx, &n) )
            return MEMSWAP_PREEMPTED;
        if ( ms_moved(c, i) )
            ms_commit_frame(ctx, c, i, ctx->pos);
        else
            ms_commit_kept_frame(ctx, c, i);
    }
    /* Step 1: the holders outside guest memory, then the TLBs, then go. */
    ctx->step = 1;
    ms_commit_holders(ctx);
    ms_unpause(ctx);
    ms_enter(ctx, MEMSWAP_PH_FREE);
    return 0;
}

/* FREE: old frames back to the heap while the domain runs. */
static int ms_phase_free(struct memswap_ctx *ctx)
{
    struct ms_chunk *c;
    unsigned int i;
    unsigned long n = 0;

    for ( ; ms_next_frame(ctx, &c, &i); ctx->pos++ )
    {
        ms_prefetch_ahead(c, i);
        if ( !ms_moved(c, i) )
            continue;
        if ( ms_yield_point(ctx, &n) )
            return MEMSWAP_PREEMPTED;
        ms_m2p_set(c->old_mfn[i], INVALID_M2P_ENTRY);
        ms_host_release_frame(c->old_mfn[i]);
    }
    ms_enter(ctx, MEMSWAP_PH_DONE);
    return 0;
}

/* ------------------------------------------------------------------------
 * Rollback: undo everything done before the point of no return.
 */
static void ms_rollback(struct memswap_ctx *ctx, int rc)
{
    unsigned long frozen_end = ctx->phase == MEMSWAP_PH_FREEZE ? ctx->pos : 0;
    struct ms_chunk *c;
    unsigned int i;

    for ( ctx->pos = 0; ctx->chunk && ms_next_frame(ctx, &c, &i); ctx->pos++ )
    {
        if ( ctx->pos < frozen_end && ms_moved(c, i) )
            ms_host_thaw_frame(ctx->d, c->old_mfn[i]);
        if ( c->new_mfn[i] != MS_INVALID_MFN )
        {
            ms_host_free_frame(c->new_mfn[i]);
            c->new_mfn[i] = MS_INVALID_MFN;
        }
    }
    ctx->nr_allocated = 0;
    ms_unpause(ctx);
    ctx->res.failed_phase = ctx->phase;
    ctx->res.frames_moved = 0;
    ctx->res.bytes_copied = 0;
    ctx->res.ptes_translated = 0;
    ctx->rc = rc;
    ms_enter(ctx, MEMSWAP_PH_DONE);
}

/* ------------------------------------------------------------------------
 * The interface.
 */

int memswap_begin(struct domain *d, const struct memswap_request *req,
                  struct memswap_ctx **ctxp)
{
    struct memswap_ctx *ctx;
    unsigned int i, any = 0, allowed = 0;
    int rc;

    if ( req->flags & ~MEMSWAP_F_DRY_RUN )
        return -EINVAL;
    if ( req->geom.nr_colours == 0 || req->geom.nr_colours > MEMSWAP_MAX_COLOURS ||
         (req->geom.nr_colours & (req->geom.nr_colours - 1)) ||
         req->geom.colour_shift > 32 )
        return -EINVAL;
    for ( i = 0; i < MEMSWAP_COLOUR_WORDS; i++ )
        any |= req->colours[i] != 0;
    for ( i = 0; any && i < MEMSWAP_MAX_COLOURS; i++ )
        if ( (req->colours[i / 64] >> (i % 64)) & 1 )
        {
            if ( i >= req->geom.nr_colours )
                return -EINVAL;     /* a colour the geometry does not have */
            allowed++;
        }
    if ( (rc = ms_host_check_domain(d)) )
        return rc;
    if ( *ctxp )
        return -EBUSY;

    ctx = ms_host_zalloc(sizeof(*ctx));
    if ( !ctx )
        return -ENOMEM;
    ctx->d = d;
    ctx->req = *req;
    ctx->empty_leaf_mfn = MS_INVALID_MFN;
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
    while ( ctx->phase != MEMSWAP_PH_DONE )
    {
        switch ( ctx->phase )
        {
        case MEMSWAP_PH_SCAN:       rc = ms_phase_scan(ctx); break;
        case MEMSWAP_PH_COUNT_REFS: rc = ms_phase_count_refs(ctx); break;
        case MEMSWAP_PH_CLASSIFY:   rc = ms_phase_classify(ctx); break;
        case MEMSWAP_PH_ALLOC:      rc = ms_phase_alloc(ctx); break;
        case MEMSWAP_PH_COPY:       rc = ms_phase_copy(ctx); break;
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
        if ( rc < 0 )
        {
            /* Only phases before the point of no return can fail. */
            ms_rollback(ctx, rc);
            break;
        }
    }
    ms_charge(ctx);
    return ctx->rc;
}

int memswap_abort(struct memswap_ctx *ctx)
{
    if ( ctx->phase == MEMSWAP_PH_DONE )
        return ctx->rc;
    if ( ctx->phase < MEMSWAP_PH_COMMIT )
    {
        ms_rollback(ctx, -EINTR);
        return ctx->rc;
    }
    /* Past the point of no return the only way out is forward. */
    ctx->finishing = true;
    return memswap_run(ctx);
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
    *total = ctx->phase == MEMSWAP_PH_SCAN && ctx->step == 1 ? ctx->nr_leaves : ctx->nr_pfns;
}

void memswap_end(struct memswap_ctx *ctx)
{
    unsigned long leaf;

    if ( !ctx )
        return;
    if ( ctx->phase != MEMSWAP_PH_DONE )
        memswap_abort(ctx);
    for ( leaf = 0; ctx->chunk && leaf < ctx->nr_leaves; leaf++ )
        if ( ctx->chunk[leaf] )
            ms_host_free(ctx->chunk[leaf], sizeof(struct ms_chunk));
    if ( ctx->chunk )
        ms_host_free(ctx->chunk, ctx->nr_leaves * sizeof(*ctx->chunk));
    if ( ctx->leaf_mfn )
        ms_host_free(ctx->leaf_mfn, ctx->nr_leaves * sizeof(*ctx->leaf_mfn));
    ms_host_free(ctx, sizeof(*ctx));
}

unsigned long memswap_nr_pfns(const struct memswap_ctx *ctx)
{
    return ctx->nr_pfns;
}

int memswap_pfn_info(const struct memswap_ctx *ctx, unsigned long pfn,
                     int *cls, int *kept_reason, uint64_t *old_mfn, uint64_t *new_mfn)
{
    const struct ms_chunk *c = pfn < ctx->nr_pfns ? ms_chunk_of(ctx, pfn) : NULL;
    unsigned int i = pfn & (MS_CHUNK - 1);

    if ( !c || c->cls[i] == MEMSWAP_FC_NONE )
        return -ENOENT;
    *cls = c->cls[i];
    *kept_reason = c->kept[i] == MS_NOT_KEPT ? -1 : c->kept[i];
    *old_mfn = c->old_mfn[i];
    *new_mfn = c->new_mfn[i];
    return 0;
}

const char *memswap_phase_name(enum memswap_phase ph)
{
    static const char *const names[MEMSWAP_PH_NR] = {
        "idle", "scan", "count-refs", "classify", "alloc", "copy",
        "freeze", "commit", "free", "done",
    };

    return (unsigned int)ph < MEMSWAP_PH_NR ? names[ph] : "?";
}

const char *memswap_kept_name(enum memswap_kept_reason r)
{
    static const char *const names[MEMSWAP_KEPT_NR] = {
        "granted", "foreign", "unexplained", "not_in_p2m",
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
