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
 *     page tables (the L4 of vCPU 0's kernel guest_table), with a per-domain
 *     direct-mapped software TLB in front of the walk. The TLB is only
 *     emptied by sim_llc_flush_translations(), which the swap calls: until
 *     then stale translations are used, exactly as a real TLB would.
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

/* ---- the pure cache ---------------------------------------------------- */

struct llc {
    uint64_t *tags;             /* nr_sets * ways line numbers, MRU first */
    uint64_t nr_sets;
    uint64_t set_mask;
    uint32_t ways;
    uint32_t line_shift;
};

static struct llc cache;

static int llc_setup(struct llc *c, const struct sim_llc_config *cfg)
{
    uint64_t lines, sets, i;
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

    lines = sets * cfg->ways;
    c->tags = malloc(lines * sizeof(*c->tags));
    if ( !c->tags )
        return -ENOMEM;
    for ( i = 0; i < lines; i++ )
        c->tags[i] = LLC_EMPTY;
    c->nr_sets = sets;
    c->set_mask = sets - 1;
    c->ways = cfg->ways;
    c->line_shift = shift;
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
    struct llc_tlb_entry *tlb;
    struct sim_counters cnt;
};

static struct llc_dom doms[SIM_MAX_DOMAINS];

static void dom_release(struct llc_dom *s)
{
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

int sim_domain_set_workload(unsigned int domid, const struct sim_workload *w)
{
    struct domain *d = sim_domain_lookup(domid);
    struct llc_dom *s;
    int rc;

    if ( !d )
        return -ESRCH;
    if ( !cache.tags )
        return -ENODEV;
    if ( !w )
    {
        s = dom_of(d);
        if ( s )
            s->have_workload = false;
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

    s = dom_get(d);
    if ( !s )
        return -ENOMEM;
    rc = dom_build_ws(s, w->wss_bytes);
    if ( rc )
        return rc;
    s->w = *w;
    s->have_workload = true;
    s->pos = 0;
    s->credit = 0;
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

        if ( !s->used || !s->have_workload || !s->w.weight || !s->nr_pages )
            continue;
        if ( dom_stale(s) )
        {
            dom_release(s);              /* destroyed behind our back */
            continue;
        }
        if ( sim_domain_info(s->domid, &info) || info.state != SIM_DOM_RUNNING )
            continue;
        act[nr++] = s;
        sum_w += s->w.weight;
    }
    if ( !nr )
        return;

    while ( accesses )
    {
        for ( i = 0; i < nr && accesses; i++ )
        {
            struct llc_dom *s = act[i];
            uint64_t n;

            s->credit += (uint64_t)LLC_ROUND * s->w.weight;
            n = s->credit / sum_w;
            s->credit -= n * sum_w;
            if ( n > accesses )
                n = accesses;
            if ( n )
            {
                dom_run(s, n);
                accesses -= n;
            }
        }
    }
}

int sim_domain_counters(unsigned int domid, struct sim_counters *c)
{
    struct domain *d = sim_domain_lookup(domid);
    struct llc_dom *s;

    if ( !d )
        return -ESRCH;
    s = dom_of(d);
    if ( s )
        *c = s->cnt;
    else
        memset(c, 0, sizeof(*c));
    return 0;
}

void sim_llc_flush_translations(unsigned int domid)
{
    struct llc_dom *s = dom_find(domid);

    if ( s )
        tlb_flush(s);
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
    uint64_t i;

    for ( i = 0; cache.tags && i < cache.nr_sets * cache.ways; i++ )
        cache.tags[i] = LLC_EMPTY;
}

int sim_llc_access(uint64_t maddr)
{
    if ( !cache.tags )
        return -ENODEV;
    return llc_ref(&cache, maddr >> cache.line_shift) ? 1 : 0;
}
