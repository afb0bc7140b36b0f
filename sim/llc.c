/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The simulated host's last-level cache.
 *
 * Two layers:
 *
 *  1. A pure cache: set-associative, true LRU, physically indexed and
 *     tagged. set = (maddr / line) % nr_sets. Each set keeps its lines in
 *     recency order (most recent first); an access walks the set once,
 *     shifting entries down until it meets the line (hit) or falls off the
 *     end (miss: the last, least recently used line is evicted). The cache
 *     is shared by every domain.
 *
 *  2. Per-domain access streams. A domain's workload (struct sim_workload)
 *     touches a working set of pages of its kernel direct map
 *     (SIM_GUEST_PAGE_OFFSET + pfn * 4096), starting at guest pfn 1024 so
 *     that the first 4 MiB (boot structures) are left alone, wrapping within
 *     guest RAM and skipping pfns the guest does not map. Every reference is
 *     a guest virtual address translated through the guest's own 4-level
 *     page tables (the L4 of vCPU 0's kernel guest_table; a translated
 *     guest's, which hold gfns, through Xen's p2m), with a per-domain
 *     direct-mapped software TLB in front of the walk. The TLB is only
 *     emptied by sim_llc_flush_translations(), which the swap calls: until
 *     then stale translations are used, exactly as a real TLB would.
 *
 *  3. Trace workloads: a domain may replay a real program's trace
 *     (sim/trace.h) instead of a synthetic stream. Every record goes through
 *     the domain's private L1 (split I1/D1, true LRU, the same cache code as
 *     the LLC, indexed by the program's virtual addresses); what misses
 *     there is translated - trace page k is a fixed pfn of the guest,
 *     reached through the guest's page tables and the same software TLB -
 *     and referenced in the LLC. The rules for what one reference is are
 *     cachegrind's (documented at sim_trace_counts in sim.h), so that
 *     sim_trace_replay_flat(), the same loop with machine address = virtual
 *     address, can be checked against cachegrind program by program
 *     (make validate-llc).
 *
 * sim_llc_run() interleaves the runnable domains by weight in rounds of
 * LLC_ROUND references (each domain's share of a round is contiguous, a
 * hundred or so references), so that their working sets really contend.
 *
 * Cost model (documented for sim_counters):
 *   instructions = accesses * 1000 / intensity
 *   cycles       = instructions * 1 (CPI 1 outside memory)
 *                + hits   * LLC_HIT_CYCLES  (40: an LLC hit, L1/L2 missed)
 *                + misses * LLC_MISS_CYCLES (200: DRAM)
 * Every modelled reference is an LLC reference (the stream is what the
 * private caches let through); page walks are not charged.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/private.h"
#include "sim.h"
#include "sim_internal.h"
#include "trace.h"

#ifndef SIM_GUEST_PAGE_OFFSET
#define SIM_GUEST_PAGE_OFFSET 0xffff888000000000ULL
#endif

#define LLC_HIT_CYCLES      40
#define LLC_MISS_CYCLES     200
#define LLC_ROUND           256        /* references per interleaving round */
#define LLC_WS_FIRST_PFN    1024UL     /* working sets start at 4 MiB */
#define LLC_TLB_ENTRIES     65536      /* per domain, direct-mapped: covers 256 MiB, so the
                                          * model runs at cache speed, not page-walk speed */
#define LLC_EMPTY           UINT64_MAX /* invalid tag */
#define L1_DEFAULT_I        { 32768, 8, 64 }
#define L1_DEFAULT_D        { 49152, 12, 64 }

/* ---- the pure cache ---------------------------------------------------- */

struct llc {
    uint64_t *tags;             /* nr_sets * ways line numbers, MRU first */
    uint64_t nr_sets;
    uint64_t set_mask;
    uint32_t ways;
    uint32_t line_shift;
};

static struct llc cache;

static void cache_invalidate(struct llc *c)
{
    uint64_t i;

    for ( i = 0; c->tags && i < c->nr_sets * c->ways; i++ )
        c->tags[i] = LLC_EMPTY;
}

static int llc_setup(struct llc *c, const struct sim_llc_config *cfg)
{
    uint64_t sets;
    uint32_t shift = 0;

    if ( !cfg->line_bytes || (cfg->line_bytes & (cfg->line_bytes - 1)) ||
         cfg->line_bytes < 16 || cfg->line_bytes > 4096 )
        return -EINVAL;
    if ( cfg->ways < 1 || cfg->ways > 64 )
        return -EINVAL;
    if ( !cfg->size_bytes || cfg->size_bytes % ((uint64_t)cfg->ways * cfg->line_bytes) )
        return -EINVAL;
    sets = cfg->size_bytes / ((uint64_t)cfg->ways * cfg->line_bytes);
    if ( sets & (sets - 1) || sets > (1ULL << 26) )
        return -EINVAL;
    while ( (1U << shift) < cfg->line_bytes )
        shift++;

    c->tags = malloc(sets * cfg->ways * sizeof(*c->tags));
    if ( !c->tags )
        return -ENOMEM;
    c->nr_sets = sets;
    c->set_mask = sets - 1;
    c->ways = cfg->ways;
    c->line_shift = shift;
    cache_invalidate(c);
    return 0;
}

/*
 * One reference to machine line number @line: true on a hit. Takes the
 * geometry by value so that hot loops keep it in registers (stores to the
 * tags could otherwise alias it).
 */
static inline bool llc_ref_raw(uint64_t *tags, uint64_t set_mask, uint32_t ways,
                               uint64_t line)
{
    uint64_t *s = tags + (line & set_mask) * ways;
    uint64_t carry = line, t;
    uint32_t i;

    if ( s[0] == line )
        return true;
    for ( i = 0; i < ways; i++ )
    {
        t = s[i];
        s[i] = carry;
        if ( t == line )
            return true;
        carry = t;
    }
    return false;               /* carry (the LRU line) fell out */
}

static inline bool llc_ref(struct llc *c, uint64_t line)
{
    return llc_ref_raw(c->tags, c->set_mask, c->ways, line);
}

/*
 * One reference covering lines @first and @last (equal, or adjacent for an
 * access straddling two lines): both are looked up, in order, and it hits
 * only if both do - one reference, at most one miss (cachegrind's rule).
 */
static inline bool cache_ref_span(uint64_t *tags, uint64_t set_mask, uint32_t ways,
                                  uint64_t first, uint64_t last)
{
    bool hit = llc_ref_raw(tags, set_mask, ways, first);

    if ( last != first )
        hit = llc_ref_raw(tags, set_mask, ways, last) && hit;
    return hit;
}

static void llc_free(struct llc *c)
{
    free(c->tags);
    memset(c, 0, sizeof(*c));
}

/* ---- the private first level of a trace replay ------------------------- */

struct l1 {
    struct llc i, d;
    uint32_t cut;               /* largest access, bytes: the smallest line size */
};

static int l1_setup(struct l1 *f, const struct sim_l1_config *cfg)
{
    static const struct sim_llc_config def_i = L1_DEFAULT_I, def_d = L1_DEFAULT_D;
    const struct sim_llc_config *ci = cfg && cfg->i1.size_bytes ? &cfg->i1 : &def_i;
    const struct sim_llc_config *cd = cfg && cfg->d1.size_bytes ? &cfg->d1 : &def_d;
    int rc;

    memset(f, 0, sizeof(*f));
    rc = llc_setup(&f->i, ci);
    if ( !rc )
        rc = llc_setup(&f->d, cd);
    if ( rc )
    {
        llc_free(&f->i);
        return rc;
    }
    f->cut = ci->line_bytes < cd->line_bytes ? ci->line_bytes : cd->line_bytes;
    return 0;
}

static void l1_free(struct l1 *f)
{
    llc_free(&f->i);
    llc_free(&f->d);
}

/* A replay in progress: the trace, where it is, the L1 and the counts. */
struct trace_run {
    struct sim_trace *t;
    struct sim_trace_cursor cur;
    struct l1 l1;
    bool loop;
    uint64_t offset_pages;
    struct sim_trace_counts cnt;
};

static void trace_run_free(struct trace_run *r)
{
    if ( !r )
        return;
    l1_free(&r->l1);
    sim_trace_put(r->t);
    free(r);
}

static struct trace_run *trace_run_new(struct sim_trace *t, const struct sim_l1_config *l1, int *rc)
{
    struct trace_run *r = calloc(1, sizeof(*r));

    *rc = -ENOMEM;
    if ( !r )
        return NULL;
    *rc = l1_setup(&r->l1, l1);
    if ( *rc )
    {
        free(r);
        return NULL;
    }
    r->t = sim_trace_get(t);
    sim_trace_cursor_init(&r->cur, t->body, t->h.body_bytes);
    return r;
}

/* ---- per-domain streams ------------------------------------------------ */

struct llc_tlb_entry {
    uint64_t vpn;               /* LLC_EMPTY: invalid */
    unsigned long mfn;
};

struct llc_dom {
    bool used;
    bool have_workload;
    unsigned int domid;
    struct domain *d;
    struct sim_workload w;
    unsigned long *pages;       /* pfns of the working set, in order */
    uint64_t nr_pages;
    uint64_t ws_bytes;          /* nr_pages * 4096 */
    uint64_t step;              /* bytes per reference (sequential, stride) */
    uint64_t pos;               /* byte offset in the working set */
    uint64_t rng;               /* xorshift64* state */
    uint64_t credit;            /* weighted round-robin, in 1/sum_weights */
    uint64_t inst_rem;          /* remainder of accesses*1000/intensity */
    struct llc_tlb_entry *tlb;  /* keyed by guest VA, or trace VA for a trace */
    struct trace_run *tr;       /* a trace workload, or NULL */
    uint32_t weight;            /* share of sim_llc_run(), either workload */
    struct sim_counters cnt;
};

static struct llc_dom doms[SIM_MAX_DOMAINS];

static void dom_release(struct llc_dom *s)
{
    trace_run_free(s->tr);
    free(s->pages);
    free(s->tlb);
    memset(s, 0, sizeof(*s));
}

/*
 * A domain's stream state hangs off d->llc_priv and points back at d: a new
 * domain (even one reusing a domid or a freed struct's address) starts with
 * llc_priv NULL, so it never inherits another's state.
 */
static struct llc_dom *dom_of(struct domain *d)
{
    struct llc_dom *s = d ? d->llc_priv : NULL;

    return s && s->used && s->d == d ? s : NULL;
}

static struct llc_dom *dom_find(unsigned int domid)
{
    return dom_of(sim_domain_lookup(domid));
}

static bool dom_stale(const struct llc_dom *s)
{
    return dom_find(s->domid) != s;
}

static void tlb_flush(struct llc_dom *s)
{
    unsigned int i;

    if ( s->tlb )
        for ( i = 0; i < LLC_TLB_ENTRIES; i++ )
            s->tlb[i].vpn = LLC_EMPTY;
}

/* @d's stream state, created on first use. */
static struct llc_dom *dom_get(struct domain *d)
{
    struct llc_dom *s = dom_of(d);
    unsigned int i;

    if ( s )
        return s;
    for ( i = 0; i < SIM_MAX_DOMAINS && !s; i++ )
        if ( !doms[i].used )
            s = &doms[i];
    for ( i = 0; i < SIM_MAX_DOMAINS && !s; i++ )
        if ( dom_stale(&doms[i]) )
        {
            dom_release(&doms[i]);   /* its domain is gone */
            s = &doms[i];
        }
    if ( !s )
        return NULL;
    s->tlb = malloc(LLC_TLB_ENTRIES * sizeof(*s->tlb));
    if ( !s->tlb )
        return NULL;
    s->used = true;
    s->domid = d->domid;
    s->d = d;
    d->llc_priv = s;
    tlb_flush(s);
    return s;
}

/*
 * The guest's own translation of kernel virtual address @va: a 4-level walk
 * from vCPU 0's kernel L4 over raw PTEs (2 MiB and 1 GiB pages honoured).
 */
static bool guest_walk(struct domain *d, uint64_t va, unsigned long *mfn_out)
{
    struct vcpu *v = ms_host_vcpu(d, 0);
    unsigned long mfn;
    int level;

    /* A translated guest's tables hold gfns: its walk goes through Xen's p2m. */
    if ( sim_translated(d) )
        return (*mfn_out = sim_guest_translate(d, va)) != MS_INVALID_MFN;
    if ( !v )
        return false;
    mfn = ms_host_vcpu_guest_table(v);
    for ( level = 4; level >= 1; level-- )
    {
        unsigned int shift = PAGE_SHIFT + 9 * (level - 1);
        const uint64_t *table;
        uint64_t pte;

        if ( mfn == MS_INVALID_MFN || !sim_mfn_valid(mfn) )
            return false;
        table = sim_map_frame(mfn);
        pte = table[(va >> shift) & 511];
        if ( !(pte & MS_PAGE_PRESENT) )
            return false;
        if ( (level == 2 || level == 3) && (pte & MS_PAGE_PSE) )
        {
            /* Superpage: the frame field's low bits hold PAT, not address. */
            uint64_t base = pte & MS_PADDR_MASK & ~((1ULL << shift) - 1);

            mfn = (unsigned long)((base >> PAGE_SHIFT) +
                                  ((va >> PAGE_SHIFT) & ((1ULL << (shift - PAGE_SHIFT)) - 1)));
            break;
        }
        mfn = (unsigned long)((pte & MS_PADDR_MASK) >> PAGE_SHIFT);
    }
    if ( !sim_mfn_valid(mfn) )
        return false;
    *mfn_out = mfn;
    return true;
}

static inline bool dom_translate(struct llc_dom *s, uint64_t va, unsigned long *mfn)
{
    uint64_t vpn = va >> PAGE_SHIFT;
    struct llc_tlb_entry *e = &s->tlb[vpn & (LLC_TLB_ENTRIES - 1)];

    if ( e->vpn == vpn )
    {
        *mfn = e->mfn;
        return true;
    }
    if ( !guest_walk(s->d, va, mfn) )
        return false;
    e->vpn = vpn;
    e->mfn = *mfn;
    return true;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static inline uint64_t xorshift64s(uint64_t *st)
{
    uint64_t x = *st;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *st = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* No workload: a trace replay ends (its position and L1 are dropped). */
static void dom_clear_workload(struct llc_dom *s)
{
    if ( s->tr )
    {
        trace_run_free(s->tr);
        s->tr = NULL;
        tlb_flush(s);           /* its entries are keyed by trace addresses */
    }
    s->have_workload = false;
}

/* Build the working set's page list: pfns from 1024 on, wrapping, mapped only. */
static int dom_build_ws(struct llc_dom *s, uint64_t wss_bytes)
{
    struct sim_domain_info info;
    unsigned long hi, lo, pfn, tried, want, mfn;
    unsigned long *pages;
    uint64_t n = 0;

    if ( sim_domain_info(s->domid, &info) )
        return -ESRCH;
    hi = info.max_pfn > info.tot_pages ? info.max_pfn : (unsigned long)info.tot_pages;
    if ( !hi )
        return -EINVAL;
    lo = hi > 2 * LLC_WS_FIRST_PFN ? LLC_WS_FIRST_PFN : hi / 2;
    want = (unsigned long)((wss_bytes + PAGE_SIZE - 1) >> PAGE_SHIFT);
    if ( want > hi )
        want = hi;
    pages = malloc(want * sizeof(*pages));
    if ( !pages )
        return -ENOMEM;
    /* Pfns lo..hi-1 first, then 0..lo-1 if the working set needs them. */
    for ( tried = 0, pfn = lo; tried < hi && n < want; tried++ )
    {
        if ( guest_walk(s->d, SIM_GUEST_PAGE_OFFSET + ((uint64_t)pfn << PAGE_SHIFT), &mfn) )
            pages[n++] = pfn;
        if ( ++pfn == hi )
            pfn = 0;
    }
    if ( !n )
    {
        free(pages);
        return -EFAULT;
    }
    if ( n < want )
        sim_log("llc: dom%u working set clamped to %lu pages (asked %lu)\n",
                s->domid, (unsigned long)n, want);
    free(s->pages);
    s->pages = pages;
    s->nr_pages = n;
    s->ws_bytes = n << PAGE_SHIFT;
    return 0;
}

/* The domain a workload is being set for: 0, -ESRCH, or -ENODEV without a cache. */
static int workload_target(unsigned int domid, struct domain **d)
{
    *d = sim_domain_lookup(domid);
    if ( !*d )
        return -ESRCH;
    return cache.tags ? 0 : -ENODEV;
}

/*
 * @d ready for a new workload of @weight over @wss_bytes: its stream state
 * (created on first use), the working set rebuilt, the previous workload
 * dropped. NULL and *@rc on failure, the previous workload then untouched.
 */
static struct llc_dom *dom_install(struct domain *d, uint64_t wss_bytes, uint32_t weight, int *rc)
{
    struct llc_dom *s = dom_get(d);

    *rc = s ? dom_build_ws(s, wss_bytes) : -ENOMEM;
    if ( *rc )
        return NULL;
    dom_clear_workload(s);
    s->weight = weight;
    s->credit = 0;
    s->have_workload = true;
    return s;
}

int sim_domain_set_workload(unsigned int domid, const struct sim_workload *w)
{
    struct domain *d;
    struct llc_dom *s;
    int rc = workload_target(domid, &d);

    if ( rc )
        return rc;
    if ( !w )
    {
        s = dom_of(d);
        if ( s )
            dom_clear_workload(s);
        return 0;
    }
    if ( !w->wss_bytes || w->intensity < 1 || w->intensity > 1000 )
        return -EINVAL;
    switch ( w->pattern )
    {
    case SIM_PAT_SEQUENTIAL:
    case SIM_PAT_RANDOM:
        break;
    case SIM_PAT_STRIDE:
        if ( !w->stride_bytes )
            return -EINVAL;
        break;
    default:
        return -EINVAL;
    }

    s = dom_install(d, w->wss_bytes, w->weight, &rc);
    if ( !s )
        return rc;
    s->w = *w;
    s->pos = 0;
    s->step = w->pattern == SIM_PAT_STRIDE ? w->stride_bytes : (1ULL << cache.line_shift);
    s->rng = splitmix64(0x6d656d73776170ULL ^ domid);
    if ( !s->rng )
        s->rng = 1;
    return 0;
}

/* @n references of domain @s's stream. */
static void dom_run(struct llc_dom *s, uint64_t n)
{
    const uint32_t ls = cache.line_shift;
    const uint64_t lines_per_page_mask = (PAGE_SIZE >> ls) - 1;
    const uint64_t nr_lines = s->ws_bytes >> ls;
    const bool random = s->w.pattern == SIM_PAT_RANDOM;
    const uint64_t step = s->step, ws_bytes = s->ws_bytes;
    const unsigned long *pages = s->pages;
    uint64_t *const tags = cache.tags;
    const uint64_t set_mask = cache.set_mask;
    const uint32_t ways = cache.ways;
    uint64_t pos = s->pos, hits = 0, misses = 0, done = 0, inst;
    uint64_t rng = s->rng;
    unsigned long cur_pg = ~0UL, mfn = 0;

    while ( n-- )
    {
        uint64_t line;                      /* line index in the working set */
        unsigned long pg;

        if ( random )
        {
            line = (uint64_t)(((unsigned __int128)xorshift64s(&rng) * nr_lines) >> 64);
        }
        else
        {
            line = pos >> ls;
            pos += step;
            if ( pos >= ws_bytes )
                pos = step < ws_bytes ? pos - ws_bytes : pos % ws_bytes;
        }
        pg = (unsigned long)(line >> (PAGE_SHIFT - ls));
        if ( pg != cur_pg )
        {
            uint64_t va = SIM_GUEST_PAGE_OFFSET + ((uint64_t)pages[pg] << PAGE_SHIFT);

            if ( !dom_translate(s, va, &mfn) )
            {
                cur_pg = ~0UL;
                continue;                   /* unmapped now: no reference */
            }
            cur_pg = pg;
        }
        done++;
        if ( llc_ref_raw(tags, set_mask, ways,
                         ((uint64_t)mfn << (PAGE_SHIFT - ls)) | (line & lines_per_page_mask)) )
            hits++;
        else
            misses++;
    }
    s->pos = pos;
    s->rng = rng;

    inst = (done * 1000 + s->inst_rem);
    s->inst_rem = inst % s->w.intensity;
    inst /= s->w.intensity;
    s->cnt.accesses += done;
    s->cnt.misses += misses;
    s->cnt.instructions += inst;
    s->cnt.cycles += inst + hits * LLC_HIT_CYCLES + misses * LLC_MISS_CYCLES;
}

/* ---- trace replay ------------------------------------------------------ */

/*
 * The machine frame trace page @vpn reaches in domain @s: the trace's k-th
 * page is working-set page (k + offset) mod n, a fixed pfn, mapped through
 * the guest's own page tables. Cached in @e.
 */
static bool trace_walk(struct llc_dom *s, uint64_t vpn, struct llc_tlb_entry *e)
{
    const struct trace_run *r = s->tr;
    long k = sim_trace_page_index(r->t, vpn);
    unsigned long pfn, mfn;

    if ( k < 0 )
        return false;
    pfn = s->pages[((uint64_t)k + r->offset_pages) % s->nr_pages];
    if ( !guest_walk(s->d, SIM_GUEST_PAGE_OFFSET + ((uint64_t)pfn << PAGE_SHIFT), &mfn) )
        return false;
    e->vpn = vpn;
    e->mfn = mfn;
    return true;
}

/* The LLC line trace address @va references: through domain @s, or (@s NULL) @va's own. */
static inline bool trace_line(struct llc_dom *s, uint64_t va, uint32_t ls, uint64_t *line)
{
    struct llc_tlb_entry *e;
    uint64_t vpn;

    if ( !s )
    {
        *line = va >> ls;
        return true;
    }
    vpn = va >> PAGE_SHIFT;
    e = &s->tlb[vpn & (LLC_TLB_ENTRIES - 1)];
    if ( e->vpn != vpn && !trace_walk(s, vpn, e) )
        return false;
    *line = ((uint64_t)e->mfn << (PAGE_SHIFT - ls)) | ((va & (PAGE_SIZE - 1)) >> ls);
    return true;
}

/*
 * Replay up to @n records of @r through its L1 and, for what misses there,
 * the LLC: at machine addresses through domain @s, or at the trace's own
 * addresses when @s is NULL (validation). The one replay loop: domains and
 * validation differ only in trace_line(). Adds the LLC's hits and misses
 * to *@llc_hits, *@llc_misses.
 */
static void trace_replay(struct trace_run *r, struct llc_dom *s, uint64_t n,
                         uint64_t *llc_hits, uint64_t *llc_misses)
{
    struct sim_trace_cursor cur = r->cur;
    struct sim_trace_counts c = r->cnt;
    struct sim_trace_ref ref;
    /* Geometry in locals: stores to the tags could otherwise alias it. */
    uint64_t *const itags = r->l1.i.tags, *const dtags = r->l1.d.tags, *const ltags = cache.tags;
    const uint64_t imask = r->l1.i.set_mask, dmask = r->l1.d.set_mask, lmask = cache.set_mask;
    const uint32_t iways = r->l1.i.ways, dways = r->l1.d.ways, lways = cache.ways;
    const uint32_t ils = r->l1.i.line_shift, dls = r->l1.d.line_shift, ls = cache.line_shift;
    const uint32_t cut = r->l1.cut < (1u << ls) ? r->l1.cut : 1u << ls;
    uint64_t hits = 0, misses = 0;

    while ( n )
    {
        uint64_t last, first_line, last_line;
        uint32_t size;

        if ( sim_trace_next(&cur, &ref) <= 0 )  /* the end: the body was checked at load */
        {
            if ( !r->loop )
            {
                c.done = true;
                break;
            }
            sim_trace_cursor_init(&cur, r->t->body, r->t->h.body_bytes);
            c.loops++;
            continue;
        }
        n--;
        c.records++;
        size = ref.size < cut ? ref.size : cut;
        last = ref.addr + size - 1;
        switch ( ref.kind )
        {
        case SIM_TRACE_INSTR:
            c.i_refs++;
            if ( cache_ref_span(itags, imask, iways, ref.addr >> ils, last >> ils) )
                continue;
            c.i1_misses++;
            break;
        case SIM_TRACE_STORE:
            c.d_writes++;
            if ( cache_ref_span(dtags, dmask, dways, ref.addr >> dls, last >> dls) )
                continue;
            c.d1_write_misses++;
            break;
        default:                                /* a load, or a modify: one read */
            c.d_reads++;
            if ( cache_ref_span(dtags, dmask, dways, ref.addr >> dls, last >> dls) )
                continue;
            c.d1_read_misses++;
            break;
        }
        if ( !trace_line(s, ref.addr, ls, &first_line) || !trace_line(s, last, ls, &last_line) )
        {
            c.unmapped++;
            continue;
        }
        if ( cache_ref_span(ltags, lmask, lways, first_line, last_line) )
        {
            hits++;
            continue;
        }
        misses++;
        if ( ref.kind == SIM_TRACE_INSTR )
            c.ll_i_misses++;
        else if ( ref.kind == SIM_TRACE_STORE )
            c.ll_d_write_misses++;
        else
            c.ll_d_read_misses++;
    }
    r->cur = cur;
    r->cnt = c;
    *llc_hits += hits;
    *llc_misses += misses;
}

/* @n trace records of domain @s, accounted like dom_run() with the program's instructions. */
static void trace_dom_run(struct llc_dom *s, uint64_t n)
{
    struct trace_run *r = s->tr;
    uint64_t hits = 0, misses = 0, i0 = r->cnt.i_refs, inst;

    trace_replay(r, s, n, &hits, &misses);
    inst = r->cnt.i_refs - i0;
    s->cnt.accesses += hits + misses;
    s->cnt.misses += misses;
    s->cnt.instructions += inst;
    s->cnt.cycles += inst + hits * LLC_HIT_CYCLES + misses * LLC_MISS_CYCLES;
}

int sim_domain_set_trace(unsigned int domid, const struct sim_trace_workload *tw)
{
    struct domain *d;
    struct trace_run *r;
    struct llc_dom *s;
    int rc = workload_target(domid, &d);

    if ( rc )
        return rc;
    if ( !tw || !tw->trace || !tw->weight || !tw->trace->h.records )
        return -EINVAL;
    r = trace_run_new(tw->trace, &tw->l1, &rc);
    if ( !r )
        return rc;
    s = dom_install(d, tw->trace->h.nr_pages << PAGE_SHIFT, tw->weight, &rc);
    if ( !s )
    {
        trace_run_free(r);
        return rc;
    }
    r->loop = tw->loop;
    r->offset_pages = tw->offset_pages % s->nr_pages;
    s->tr = r;
    tlb_flush(s);                       /* entries keyed by guest VAs mean nothing now */
    return 0;
}

/* Domain @domid's stream state in *@s (NULL if it never had a workload); -ESRCH. */
static int dom_state(unsigned int domid, struct llc_dom **s)
{
    struct domain *d = sim_domain_lookup(domid);

    if ( !d )
        return -ESRCH;
    *s = dom_of(d);
    return 0;
}

int sim_domain_trace_counts(unsigned int domid, struct sim_trace_counts *c)
{
    struct llc_dom *s;

    if ( dom_state(domid, &s) )
        return -ESRCH;
    if ( !s || !s->tr )
        return -ENOENT;
    *c = s->tr->cnt;
    return 0;
}

int sim_trace_replay_flat(struct sim_trace *t, const struct sim_l1_config *l1,
                          uint64_t max_records, struct sim_trace_counts *c)
{
    struct trace_run *r;
    uint64_t hits = 0, misses = 0;
    int rc;

    memset(c, 0, sizeof(*c));
    if ( !cache.tags )
        return -ENODEV;
    r = trace_run_new(t, l1, &rc);
    if ( !r )
        return rc;
    r->loop = max_records != 0;
    if ( t->h.records )
        trace_replay(r, NULL, max_records ? max_records : t->h.records, &hits, &misses);
    *c = r->cnt;
    trace_run_free(r);
    return 0;
}

void sim_llc_run(uint64_t accesses)
{
    struct llc_dom *act[SIM_MAX_DOMAINS];
    struct sim_domain_info info;
    unsigned int i, nr = 0;
    uint64_t sum_w = 0;

    if ( !cache.tags )
        return;
    for ( i = 0; i < SIM_MAX_DOMAINS; i++ )
    {
        struct llc_dom *s = &doms[i];

        if ( !s->used || !s->have_workload || !s->weight || !s->nr_pages ||
             (s->tr && s->tr->cnt.done) )
            continue;
        if ( dom_stale(s) )
        {
            dom_release(s);              /* destroyed behind our back */
            continue;
        }
        if ( sim_domain_info(s->domid, &info) || info.state != SIM_DOM_RUNNING )
            continue;
        act[nr++] = s;
        sum_w += s->weight;
    }
    if ( !nr )
        return;

    while ( accesses )
    {
        for ( i = 0; i < nr && accesses; i++ )
        {
            struct llc_dom *s = act[i];
            uint64_t n;

            s->credit += (uint64_t)LLC_ROUND * s->weight;
            n = s->credit / sum_w;
            s->credit -= n * sum_w;
            if ( n > accesses )
                n = accesses;
            if ( n )
            {
                if ( s->tr )
                    trace_dom_run(s, n);
                else
                    dom_run(s, n);
                accesses -= n;
            }
        }
    }
}

int sim_domain_counters(unsigned int domid, struct sim_counters *c)
{
    struct llc_dom *s;

    if ( dom_state(domid, &s) )
        return -ESRCH;
    if ( s )
        *c = s->cnt;
    else
        memset(c, 0, sizeof(*c));
    return 0;
}

/*
 * CMT tags a line with the RMID of the vCPU that filled it; the model keeps
 * no tag beside the address, so a line counts for the owner of its frame
 * now. After a swap the old frames' lines count for nobody (or for the
 * frame's next owner) until they are evicted, as a real RMID's lines would
 * count for the domain until evicted.
 */
int sim_domain_llc_occupancy(unsigned int domid, uint64_t *bytes)
{
    const uint32_t to_mfn = PAGE_SHIFT - cache.line_shift;
    uint64_t i, lines = 0;
    unsigned long mfn;

    if ( !sim_domain_lookup(domid) )
        return -ESRCH;
    for ( i = 0; cache.tags && i < cache.nr_sets * cache.ways; i++ )
    {
        if ( cache.tags[i] == LLC_EMPTY )
            continue;
        mfn = (unsigned long)(cache.tags[i] >> to_mfn);
        if ( sim_mfn_valid(mfn) && sim_owner_domid(sim_mfn_to_page(mfn)) == domid )
            lines++;
    }
    *bytes = lines << cache.line_shift;
    return 0;
}

void sim_llc_flush_translations(unsigned int domid)
{
    struct llc_dom *s = dom_find(domid);

    if ( !s )
        return;
    tlb_flush(s);
    /*
     * A real L1 is tagged physically: after the frames moved, what it holds
     * belongs to the old ones. The trace's L1 is tagged by the program's
     * addresses, so it is emptied here instead.
     */
    if ( s->tr )
    {
        cache_invalidate(&s->tr->l1.i);
        cache_invalidate(&s->tr->l1.d);
    }
}

void sim_llc_forget_domain(unsigned int domid)
{
    struct domain *d = sim_domain_lookup(domid);
    unsigned int i;

    if ( d )
        d->llc_priv = NULL;
    for ( i = 0; i < SIM_MAX_DOMAINS; i++ )
        if ( doms[i].used && doms[i].domid == domid )
            dom_release(&doms[i]);
}

int sim_llc_init(const struct sim_llc_config *cfg)
{
    struct llc c = { 0 };
    int rc;

    sim_llc_fini();
    if ( !cfg )
        return -EINVAL;
    rc = llc_setup(&c, cfg);
    if ( rc )
        return rc;
    cache = c;
    return 0;
}

void sim_llc_fini(void)
{
    unsigned int i;

    for ( i = 0; i < SIM_MAX_DOMAINS; i++ )
        if ( doms[i].used )
            dom_release(&doms[i]);
    free(cache.tags);
    memset(&cache, 0, sizeof(cache));
}

void sim_llc_invalidate(void)
{
    cache_invalidate(&cache);
}

int sim_llc_access(uint64_t maddr)
{
    if ( !cache.tags )
        return -ENODEV;
    return llc_ref(&cache, maddr >> cache.line_shift) ? 1 : 0;
}
