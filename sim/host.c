/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The simulated machine: frame table, RAM, M2P, the heap by NUMA node and
 * cache colour, domains and the log.
 *
 * RAM is one anonymous mapping so that a frame's bytes are at a fixed
 * address (sim_map_frame is a pointer addition, like Xen's directmap). The
 * frame table is one array; lists are intrusive (page_info.list_next/prev)
 * so that allocation, freeing and page-list surgery are O(1) per frame, as
 * in Xen, and a 12 GiB host is created in well under a second.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sim_internal.h"

struct page_info *sim_frame_table;
unsigned char *sim_ram;
unsigned long *sim_m2p;
unsigned long sim_nr_frames;

struct domain *sim_domains[SIM_MAX_DOMAINS];
struct domain sim_dom_xen = { .domid = SIM_DOMID_XEN, .name = "dom_xen", .exists = true };
struct sim_host_config sim_cfg;
unsigned int sim_nr_colours;
unsigned int sim_current_domid;
uint64_t sim_step_count;
unsigned int sim_mutations;

static size_t ram_len, ram_map_len;
static unsigned char *ram_map;          /* the mapping sim_ram is aligned within */
static unsigned long frames_per_node;
static unsigned int nr_buckets;
static uint32_t *bucket_head, *bucket_tail;
static unsigned long *bucket_count;
static unsigned long free_total;
/* Frames the heap has handed out at least once (bit per frame), and how many. */
static uint64_t *frame_used;
static unsigned long fresh_frames;
static unsigned int next_domid = 1;

#define SIM_HUGE_PAGE       (2UL << 20)

/* Frames Xen keeps for itself at boot: the L3s its reserved L4 slots map. */
unsigned long sim_xen_slot_mfn[SIM_XEN_L4_LAST - SIM_XEN_L4_FIRST + 1];

/* ---- log ---------------------------------------------------------------- */

#define LOG_RING 512
#define LOG_LINE 200
static char log_ring[LOG_RING][LOG_LINE];
static unsigned long log_next;

void sim_log(const char *fmt, ...)
{
    static int verbose = -1;
    char *line = log_ring[log_next % LOG_RING];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, LOG_LINE, fmt, ap);
    va_end(ap);
    log_next++;
    if ( verbose < 0 )
        verbose = getenv("SIM_VERBOSE") != NULL;
    if ( verbose )
        fprintf(stderr, "(XEN) %s%s", line,
                line[0] && line[strlen(line) - 1] == '\n' ? "" : "\n");
}

unsigned long sim_log_count(const char *substr)
{
    unsigned long i, n = 0, first = log_next > LOG_RING ? log_next - LOG_RING : 0;

    for ( i = first; i < log_next; i++ )
        if ( strstr(log_ring[i % LOG_RING], substr) )
            n++;
    return n;
}

const char *sim_log_last(const char *substr)
{
    unsigned long i, first = log_next > LOG_RING ? log_next - LOG_RING : 0;

    for ( i = log_next; i-- > first; )
        if ( strstr(log_ring[i % LOG_RING], substr) )
            return log_ring[i % LOG_RING];
    return NULL;
}

void sim_log_clear(void)
{
    log_next = 0;
}

/* ---- random ------------------------------------------------------------- */

uint64_t sim_mix64(uint64_t x)
{
    /* splitmix64 finaliser: cheap, well-spread, deterministic. */
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t sim_rand(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ULL;
    return sim_mix64(*state);
}

/* ---- heap --------------------------------------------------------------- */

unsigned int sim_mfn_colour(unsigned long mfn)
{
    return (unsigned int)(mfn & (sim_nr_colours - 1));
}

unsigned int sim_mfn_node(unsigned long mfn)
{
    unsigned long n = mfn / frames_per_node;

    return n >= sim_cfg.nr_nodes ? sim_cfg.nr_nodes - 1 : (unsigned int)n;
}

static unsigned int bucket_of(unsigned long mfn)
{
    return sim_mfn_node(mfn) * sim_nr_colours + sim_mfn_colour(mfn);
}

/*
 * Into free list @b: at its tail (@tail), or at its head, where the next
 * allocation takes it first.
 */
static void bucket_push(unsigned int b, unsigned long mfn, bool tail)
{
    struct page_info *pg = &sim_frame_table[mfn];
    uint32_t prev = tail ? bucket_tail[b] : SIM_NIL, next = tail ? SIM_NIL : bucket_head[b];

    pg->list_prev = prev;
    pg->list_next = next;
    if ( prev != SIM_NIL )
        sim_frame_table[prev].list_next = (uint32_t)mfn;
    else
        bucket_head[b] = (uint32_t)mfn;
    if ( next != SIM_NIL )
        sim_frame_table[next].list_prev = (uint32_t)mfn;
    else
        bucket_tail[b] = (uint32_t)mfn;
    pg->heap_bucket = b;
    bucket_count[b]++;
    free_total++;
}

static unsigned long bucket_pop(unsigned int b)
{
    uint32_t mfn = bucket_head[b];
    struct page_info *pg;

    if ( mfn == SIM_NIL )
        return MS_INVALID_MFN;
    pg = &sim_frame_table[mfn];
    bucket_head[b] = pg->list_next;
    if ( pg->list_next != SIM_NIL )
        sim_frame_table[pg->list_next].list_prev = SIM_NIL;
    else
        bucket_tail[b] = SIM_NIL;
    bucket_count[b]--;
    free_total--;
    if ( !(frame_used[mfn / 64] & (1ULL << (mfn % 64))) )
    {
        frame_used[mfn / 64] |= 1ULL << (mfn % 64);
        fresh_frames++;
    }
    pg->list_next = pg->list_prev = SIM_NIL;
    pg->heap_bucket = SIM_NIL;
    pg->count_info = PGC_state_inuse;
    pg->u.inuse.type_info = 0;
    pg->owner = NULL;
    pg->linear_entries = 0;
    return mfn;
}

unsigned long sim_heap_bucket_count(unsigned int node, unsigned int colour)
{
    return bucket_count[node * sim_nr_colours + colour];
}

unsigned long sim_heap_alloc(int node, unsigned int colour)
{
    unsigned int n;

    if ( node >= 0 )
        return bucket_pop((unsigned int)node * sim_nr_colours + colour);
    for ( n = 0; n < sim_cfg.nr_nodes; n++ )
        if ( bucket_count[n * sim_nr_colours + colour] )
            return bucket_pop(n * sim_nr_colours + colour);
    return MS_INVALID_MFN;
}

static bool colour_in(const uint64_t *colours, unsigned int c)
{
    unsigned int i;

    if ( !colours )
        return true;
    for ( i = 0; i < MEMSWAP_COLOUR_WORDS; i++ )
        if ( colours[i] )
            return (colours[c / 64] >> (c % 64)) & 1;
    return true;
}

/*
 * Allocate on any allowed colour, starting at colour index hint % allowed so
 * that consecutive hints (pfns) spread round-robin over the allowed colours.
 * The allowed list is cached: callers allocate many frames with one set.
 */
unsigned long sim_heap_alloc_any(int node, const uint64_t *colours, unsigned long hint)
{
    static uint64_t cached[MEMSWAP_COLOUR_WORDS];
    static bool cached_any = true, cache_valid;
    static unsigned int cached_nr_colours;
    static uint16_t list[MEMSWAP_MAX_COLOURS];
    static unsigned int nlist;
    bool any = true;
    unsigned int i;

    if ( colours )
        for ( i = 0; i < MEMSWAP_COLOUR_WORDS; i++ )
            if ( colours[i] )
                any = false;
    if ( !cache_valid || cached_nr_colours != sim_nr_colours || any != cached_any ||
         (!any && memcmp(cached, colours, sizeof(cached))) )
    {
        nlist = 0;
        for ( i = 0; i < sim_nr_colours; i++ )
            if ( any || colour_in(colours, i) )
                list[nlist++] = (uint16_t)i;
        if ( !any )
            memcpy(cached, colours, sizeof(cached));
        cached_any = any;
        cached_nr_colours = sim_nr_colours;
        cache_valid = true;
    }
    return sim_heap_alloc_from(node, list, nlist, hint);
}

unsigned long sim_heap_alloc_from(int node, const uint16_t *list, unsigned int nlist,
                                  unsigned long hint)
{
    unsigned int k;

    for ( k = 0; k < nlist; k++ )
    {
        unsigned long mfn = sim_heap_alloc(node, list[(hint + k) % nlist]);

        if ( mfn != MS_INVALID_MFN )
            return mfn;
    }
    return MS_INVALID_MFN;
}

void sim_heap_free(unsigned long mfn)
{
    struct page_info *pg = &sim_frame_table[mfn];

    pg->owner = NULL;
    pg->count_info = PGC_state_free;
    pg->u.inuse.type_info = 0;
    pg->linear_entries = 0;
    sim_m2p[mfn] = INVALID_M2P_ENTRY;
    /*
     * As Xen's free_heap_pages() (page_list_add_scrub()): a frame that
     * needs scrubbing goes to the tail of its free list, a clean one to the
     * head, so the next allocation reuses it. Xen scrubs what a running
     * domain frees only with scrub-domheap (here: scrub_freed). Reusing
     * freed frames first also keeps the simulator on host memory it has
     * written already: a frame the host process never touched costs a page
     * fault (and the kernel's zeroing) on first write, about ten times the
     * copy itself (a swap back onto a domain's first colours took 20 times
     * as long as the swap away from them when frees went to the tail).
     */
    if ( sim_cfg.scrub_freed )
        *(uint64_t *)sim_map_frame(mfn) = SIM_SCRUB_POISON;
    bucket_push(bucket_of(mfn), mfn, sim_cfg.scrub_freed);
}

unsigned long sim_heap_fresh_frames(void)
{
    return fresh_frames;
}

unsigned long sim_host_free_frames(int node, const uint64_t *colours)
{
    unsigned long n = 0;
    unsigned int nd, c;

    if ( node < 0 && !colours )
        return free_total;
    for ( nd = 0; nd < sim_cfg.nr_nodes; nd++ )
    {
        if ( node >= 0 && nd != (unsigned int)node )
            continue;
        for ( c = 0; c < sim_nr_colours; c++ )
            if ( colour_in(colours, c) )
                n += bucket_count[nd * sim_nr_colours + c];
    }
    return n;
}

unsigned long sim_host_total_frames(void) { return sim_nr_frames; }
unsigned int sim_host_nr_nodes(void) { return sim_cfg.nr_nodes; }

void sim_host_geometry(struct memswap_geometry *g)
{
    g->nr_colours = sim_nr_colours;
    g->colour_shift = 0;
}

/* ---- page lists --------------------------------------------------------- */

void sim_page_list_add(struct domain *d, unsigned long mfn)
{
    struct page_info *pg = &sim_frame_table[mfn];

    pg->list_next = SIM_NIL;
    pg->list_prev = d->page_tail;
    if ( d->page_tail != SIM_NIL )
        sim_frame_table[d->page_tail].list_next = (uint32_t)mfn;
    else
        d->page_head = (uint32_t)mfn;
    d->page_tail = (uint32_t)mfn;
    d->tot_pages++;
}

void sim_page_list_del(struct domain *d, unsigned long mfn)
{
    struct page_info *pg = &sim_frame_table[mfn];

    if ( pg->list_prev != SIM_NIL )
        sim_frame_table[pg->list_prev].list_next = pg->list_next;
    else
        d->page_head = pg->list_next;
    if ( pg->list_next != SIM_NIL )
        sim_frame_table[pg->list_next].list_prev = pg->list_prev;
    else
        d->page_tail = pg->list_prev;
    pg->list_next = pg->list_prev = SIM_NIL;
    d->tot_pages--;
}

/* new_mfn takes old_mfn's place in the list: order (and tot_pages) kept. */
void sim_page_list_replace(struct domain *d, unsigned long old_mfn, unsigned long new_mfn)
{
    struct page_info *o = &sim_frame_table[old_mfn], *n = &sim_frame_table[new_mfn];

    n->list_prev = o->list_prev;
    n->list_next = o->list_next;
    if ( o->list_prev != SIM_NIL )
        sim_frame_table[o->list_prev].list_next = (uint32_t)new_mfn;
    else
        d->page_head = (uint32_t)new_mfn;
    if ( o->list_next != SIM_NIL )
        sim_frame_table[o->list_next].list_prev = (uint32_t)new_mfn;
    else
        d->page_tail = (uint32_t)new_mfn;
    o->list_next = o->list_prev = SIM_NIL;
}

void sim_assign_page(struct domain *d, unsigned long mfn)
{
    struct page_info *pg = &sim_frame_table[mfn];

    pg->owner = d;
    pg->count_info = PGC_allocated | 1;
    pg->u.inuse.type_info = 0;
    sim_page_list_add(d, mfn);
}

unsigned long sim_alloc_xen_frame(void)
{
    unsigned long mfn = sim_heap_alloc_any(-1, NULL, 0);

    if ( mfn == MS_INVALID_MFN )
        return mfn;
    sim_frame_table[mfn].owner = &sim_dom_xen;
    sim_frame_table[mfn].count_info = PGC_xen_heap | PGC_allocated | 1;
    sim_frame_table[mfn].u.inuse.type_info = PGT_writable_page | PGT_validated | 1;
    memset(sim_map_frame(mfn), 0, PAGE_SIZE);
    return mfn;
}

void sim_free_xen_frame(unsigned long mfn)
{
    if ( mfn != MS_INVALID_MFN )
        sim_heap_free(mfn);
}

unsigned int sim_owner_domid(const struct page_info *pg)
{
    return pg->owner ? pg->owner->domid : SIM_DOMID_INVALID;
}

/* ---- host --------------------------------------------------------------- */

static void host_free_all(void)
{
    if ( sim_ram )
        munmap(ram_map, ram_map_len);
    free(sim_frame_table);
    free(sim_m2p);
    free(bucket_head);
    free(bucket_tail);
    free(bucket_count);
    free(frame_used);
    frame_used = NULL;
    sim_ram = NULL;
    sim_frame_table = NULL;
    sim_m2p = NULL;
    bucket_head = bucket_tail = NULL;
    bucket_count = NULL;
    sim_nr_frames = 0;
}

int sim_host_create(const struct sim_host_config *cfg)
{
    unsigned long mfn, n, i;
    uint64_t colours;
    struct domain *d0;
    int rc, flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

    if ( sim_frame_table )
        return -EBUSY;
    if ( !cfg || cfg->ram_bytes < (64ULL << 20) || cfg->nr_nodes < 1 || cfg->nr_nodes > 8 ||
         !cfg->llc.ways || (cfg->ram_bytes >> PAGE_SHIFT) >= SIM_NIL )
        return -EINVAL;
    colours = cfg->llc.size_bytes / cfg->llc.ways / PAGE_SIZE;
    if ( !colours )
        colours = 1;
    if ( colours > MEMSWAP_MAX_COLOURS || (colours & (colours - 1)) )
        return -EINVAL;

    sim_cfg = *cfg;
    sim_nr_colours = (unsigned int)colours;
    sim_nr_frames = cfg->ram_bytes >> PAGE_SHIFT;
    frames_per_node = sim_nr_frames / cfg->nr_nodes;
    ram_len = sim_nr_frames << PAGE_SHIFT;
    /*
     * Huge pages, as Xen's directmap maps RAM with superpages: 512x fewer
     * faults when a multi-GiB guest is first written, and copies that do
     * not wait on page walks. They need a 2 MiB-aligned range, advised
     * before it is populated.
     */
    ram_map_len = ram_len + SIM_HUGE_PAGE;
    ram_map = mmap(NULL, ram_map_len, PROT_READ | PROT_WRITE, flags, -1, 0);
    if ( ram_map == MAP_FAILED )
    {
        ram_map = NULL;
        sim_nr_frames = 0;
        return -ENOMEM;
    }
    sim_ram = ram_map + (-(uintptr_t)ram_map & (SIM_HUGE_PAGE - 1));
    madvise(sim_ram, ram_len, MADV_HUGEPAGE);
    if ( cfg->prefault && madvise(sim_ram, ram_len, MADV_POPULATE_WRITE) )
    {
        size_t off;

        for ( off = 0; off < ram_len; off += PAGE_SIZE )
            sim_ram[off] = 0;
    }
    sim_frame_table = calloc(sim_nr_frames, sizeof(*sim_frame_table));
    sim_m2p = malloc(sim_nr_frames * sizeof(*sim_m2p));
    nr_buckets = cfg->nr_nodes * sim_nr_colours;
    bucket_head = malloc(nr_buckets * sizeof(*bucket_head));
    bucket_tail = malloc(nr_buckets * sizeof(*bucket_tail));
    bucket_count = calloc(nr_buckets, sizeof(*bucket_count));
    frame_used = calloc((sim_nr_frames + 63) / 64, sizeof(*frame_used));
    if ( !sim_frame_table || !sim_m2p || !bucket_head || !bucket_tail || !bucket_count ||
         !frame_used )
    {
        host_free_all();
        return -ENOMEM;
    }
    memset(sim_m2p, 0xff, sim_nr_frames * sizeof(*sim_m2p));
    for ( i = 0; i < nr_buckets; i++ )
        bucket_head[i] = bucket_tail[i] = SIM_NIL;
    free_total = 0;
    fresh_frames = 0;

    /* Low frames belong to Xen from boot, as its own image and tables do. */
    n = SIM_XEN_L4_LAST - SIM_XEN_L4_FIRST + 1;
    for ( mfn = 0; mfn < sim_nr_frames; mfn++ )
    {
        struct page_info *pg = &sim_frame_table[mfn];

        pg->list_next = pg->list_prev = SIM_NIL;
        if ( mfn < n )
        {
            pg->owner = &sim_dom_xen;
            pg->count_info = PGC_xen_heap | PGC_allocated | 1;
            pg->u.inuse.type_info = PGT_writable_page | PGT_validated | 1;
            pg->heap_bucket = SIM_NIL;
            sim_xen_slot_mfn[mfn] = mfn;
            continue;
        }
        pg->count_info = PGC_state_free;
        /* In mfn order: the heap hands out a bucket's frames upwards. */
        bucket_push(bucket_of(mfn), mfn, true);
    }

    memset(sim_domains, 0, sizeof(sim_domains));
    next_domid = 1;
    sim_bugs = 0;
    sim_step_count = 0;
    sim_log_clear();

    /* dom0: a privileged PV domain with some memory of its own. */
    d0 = sim_domain_alloc(0);
    if ( !d0 )
    {
        host_free_all();
        return -ENOMEM;
    }
    strcpy(d0->name, "Domain-0");
    d0->is_dom0 = true;
    d0->nr_vcpus = 1;
    d0->max_pages = 1024;
    for ( i = 0; i < 256; i++ )
    {
        mfn = sim_heap_alloc_any(-1, NULL, i);
        if ( mfn == MS_INVALID_MFN )
            break;
        sim_assign_page(d0, mfn);
        sim_m2p[mfn] = i;
    }
    sim_gnt_init(d0);
    rc = sim_llc_init(&cfg->llc);
    if ( rc )
    {
        sim_host_destroy();
        return rc;
    }
    return 0;
}

void sim_host_destroy(void)
{
    unsigned int i;

    if ( !sim_frame_table )
        return;
    for ( i = SIM_MAX_DOMAINS; i-- > 1; )
        if ( sim_domains[i] )
            sim_domain_destroy(i);
    if ( sim_domains[0] )
    {
        sim_gnt_fini(sim_domains[0]);
        sim_domain_free_struct(sim_domains[0]);
    }
    free(sim_fmaps);
    sim_fmaps = NULL;
    sim_nr_fmaps = 0;
    free(sim_gmaps);
    sim_gmaps = NULL;
    sim_nr_gmaps = 0;
    sim_llc_fini();
    host_free_all();
}

/* ---- domains ------------------------------------------------------------ */

struct domain *sim_domain_alloc(unsigned int domid)
{
    struct domain *d = calloc(1, sizeof(*d));
    unsigned int i;

    if ( !d )
        return NULL;
    d->domid = domid;
    d->exists = true;
    d->page_head = d->page_tail = SIM_NIL;
    d->shared_info_mfn = MS_INVALID_MFN;
    for ( i = 0; i < SIM_GNT_FRAMES; i++ )
        d->gnt_mfn[i] = MS_INVALID_MFN;
    for ( i = 0; i < SIM_MAX_VCPUS; i++ )
    {
        struct vcpu *v = &d->vcpu[i];

        v->domain = d;
        v->vcpu_id = i;
        v->guest_table = v->guest_table_user = MS_INVALID_MFN;
        v->vcpu_info_mfn = v->vcpu_info_map_mfn = MS_INVALID_MFN;
    }
    d->be.con_map = d->be.store_map = d->be.tx_ring_map = d->be.rx_ring_map = -1;
    d->foreign_gmap[0] = d->foreign_gmap[1] = -1;
    d->dm_map[0] = d->dm_map[1] = -1;
    d->fifo_array_mfn = MS_INVALID_MFN;
    for ( i = 0; i < SIM_MAX_VCPUS; i++ )
        d->fifo_cb_mfn[i] = MS_INVALID_MFN;
    sim_domains[domid] = d;
    return d;
}

void sim_domain_free_struct(struct domain *d)
{
    sim_domains[d->domid] = NULL;
    free(d->pfn_role);
    free(d->p2m_mfn);
    free(d->p2m_type);
    free(d->ld_bitmap);
    free(d->touches);
    free(d->dm_touches);
    free(d);
}

struct domain *sim_domain_lookup(unsigned int domid)
{
    if ( domid >= SIM_MAX_DOMAINS || !sim_frame_table )
        return NULL;
    return sim_domains[domid];
}

int sim_domain_create(const struct sim_guest_config *cfg)
{
    struct domain *d;
    unsigned int domid, k;
    int rc;

    if ( !sim_frame_table )
        return -ENODEV;
    if ( !cfg || cfg->mem_bytes < (16ULL << 20) || cfg->nr_vcpus < 1 ||
         cfg->nr_vcpus > SIM_MAX_VCPUS || cfg->nr_address_spaces > SIM_MAX_AS ||
         (cfg->node != MEMSWAP_NODE_ANY && cfg->node >= sim_cfg.nr_nodes) )
        return -EINVAL;
    for ( k = 0; k < SIM_MAX_DOMAINS - 1; k++ )
    {
        domid = 1 + (next_domid - 1 + k) % (SIM_MAX_DOMAINS - 1);
        if ( !sim_domains[domid] )
            break;
    }
    if ( k == SIM_MAX_DOMAINS - 1 )
        return -ENOSPC;
    d = sim_domain_alloc(domid);
    if ( !d )
        return -ENOMEM;
    next_domid = domid + 1;
    rc = sim_guest_build(d, cfg);
    if ( rc )
    {
        sim_guest_teardown(d);
        sim_domain_free_struct(d);
        return rc;
    }
    return (int)domid;
}

int sim_domain_destroy(unsigned int domid)
{
    struct domain *d = sim_domain_lookup(domid);

    if ( !d || d->is_dom0 )
        return d ? -EPERM : -ESRCH;
    sim_llc_forget_domain(domid);
    sim_guest_teardown(d);
    sim_domain_free_struct(d);
    return 0;
}

int sim_domain_pause(unsigned int domid)
{
    struct domain *d = sim_domain_lookup(domid);

    if ( !d )
        return -ESRCH;
    d->pause_count++;
    return 0;
}

int sim_domain_unpause(unsigned int domid)
{
    struct domain *d = sim_domain_lookup(domid);

    if ( !d )
        return -ESRCH;
    if ( !d->pause_count )
        return -EINVAL;
    /* Scheduling the vCPUs in again loads CR3: their TLBs start empty. */
    if ( !--d->pause_count )
        sim_tlb_flush(d);
    return 0;
}

int sim_domain_set_dying(unsigned int domid)
{
    struct domain *d = sim_domain_lookup(domid);

    if ( !d )
        return -ESRCH;
    d->dying = true;
    return 0;
}

/*
 * A toolstack's log-dirty (xl save, migration). While a swap has it on, the
 * hypervisor glue refuses every other log-dirty operation (-EBUSY).
 */
int sim_domain_set_log_dirty(unsigned int domid, bool on)
{
    struct domain *d = sim_domain_lookup(domid);

    if ( !d )
        return -ESRCH;
    if ( d->ld_engine )
        return -EBUSY;
    if ( !on )
    {
        sim_logdirty_disable(d);
        return 0;
    }
    return d->ld_on ? 0 : sim_logdirty_enable(d, false);
}

int sim_domain_set_feature(unsigned int domid, unsigned int feature, bool on)
{
    struct domain *d = sim_domain_lookup(domid);

    if ( !d )
        return -ESRCH;
    switch ( feature )
    {
    case SIM_FEAT_SHARING: d->mem_sharing = on; return 0;
    case SIM_FEAT_PAGING:  d->mem_paging = on; return 0;
    case SIM_FEAT_ALTP2M:  d->altp2m = on; return 0;
    }
    return -EINVAL;
}

int sim_domain_set_iommu(unsigned int domid, bool on)
{
    struct domain *d = sim_domain_lookup(domid);

    if ( !d )
        return -ESRCH;
    d->iommu = on;
    return 0;
}

int sim_domain_info(unsigned int domid, struct sim_domain_info *info)
{
    struct domain *d = sim_domain_lookup(domid);

    if ( !d )
        return -ESRCH;
    memset(info, 0, sizeof(*info));
    info->domid = d->domid;
    memcpy(info->name, d->name, SIM_NAME_LEN);
    info->state = d->dying ? SIM_DOM_DYING : d->pause_count ? SIM_DOM_PAUSED : SIM_DOM_RUNNING;
    info->nr_vcpus = d->nr_vcpus;
    info->tot_pages = d->tot_pages;
    info->max_pages = d->max_pages;
    info->max_pfn = d->p2m_size;
    info->hvm = sim_translated(d);
    info->type = d->type;
    return 0;
}

int sim_domain_list(unsigned int *domids, int max)
{
    int n = 0;
    unsigned int i;

    for ( i = 0; i < SIM_MAX_DOMAINS; i++ )
        if ( sim_frame_table && sim_domains[i] )
        {
            if ( n < max )
                domids[n] = i;
            n++;
        }
    return n;
}

int sim_domain_colour_counts(unsigned int domid, uint64_t *counts, unsigned int nr)
{
    struct domain *d = sim_domain_lookup(domid);
    struct memswap_geometry g;

    if ( !d )
        return -ESRCH;
    if ( nr < sim_nr_colours )
        return -EINVAL;
    memset(counts, 0, nr * sizeof(*counts));
    if ( d->is_dom0 )
    {
        uint32_t m;

        for ( m = d->page_head; m != SIM_NIL; m = sim_frame_table[m].list_next )
            counts[sim_mfn_colour(m)]++;
        return 0;
    }
    sim_host_geometry(&g);
    return sim_query(domid, &g, counts, NULL, 0, 0, 0, NULL, NULL);
}

unsigned long sim_domain_pfn_to_mfn(unsigned int domid, unsigned long pfn)
{
    struct domain *d = sim_domain_lookup(domid);
    uint64_t e;

    if ( !d || d->is_dom0 || pfn >= d->p2m_size )
        return MS_INVALID_MFN;
    if ( sim_translated(d) )
    {
        e = sim_p2m_ram_mfn(d, pfn);
        return e != MS_INVALID_MFN && sim_mfn_to_page(e)->owner == d ? e : MS_INVALID_MFN;
    }
    e = sim_p2m_tree_entry(d, pfn);
    if ( e & (SIM_P2M_FOREIGN | SIM_P2M_IDENTITY) || !sim_mfn_valid((unsigned long)e) )
        return MS_INVALID_MFN;
    return (unsigned long)e;
}

int sim_query(unsigned int domid, const struct memswap_geometry *g,
              uint64_t *colour_counts, uint64_t *node_counts, unsigned int nr_nodes,
              uint64_t first_pfn, uint64_t nr_frames, uint64_t *frames,
              struct sim_query_info *info)
{
    struct domain *d = sim_domain_lookup(domid);
    struct memswap_query q;
    uint64_t nr_pfns, pfn, end;
    int rc;

    if ( !d || d->is_dom0 )
        return -ESRCH;
    memset(&q, 0, sizeof(q));
    if ( g && g->nr_colours )
    {
        q.geom = *g;
        q.colour_counts = colour_counts;
        memset(colour_counts, 0, g->nr_colours * sizeof(*colour_counts));
    }
    if ( node_counts && nr_nodes )
    {
        q.node_counts = node_counts;
        q.nr_nodes = nr_nodes;
        memset(node_counts, 0, nr_nodes * sizeof(*node_counts));
    }
    if ( (rc = memswap_query_size(d, &nr_pfns)) )
        return rc;
    /* The counts cover every pfn; the frames the window. */
    for ( pfn = 0; pfn < nr_pfns; pfn += MEMSWAP_QUERY_BATCH )
    {
        unsigned int n = nr_pfns - pfn < MEMSWAP_QUERY_BATCH ?
                         (unsigned int)(nr_pfns - pfn) : MEMSWAP_QUERY_BATCH;
        uint64_t batch[MEMSWAP_QUERY_BATCH];
        unsigned int k;

        if ( (rc = memswap_query_range(d, &q, pfn, n, frames ? batch : NULL)) )
            return rc;
        for ( k = 0; frames && k < n; k++ )
            if ( pfn + k >= first_pfn && pfn + k - first_pfn < nr_frames )
                frames[pfn + k - first_pfn] = batch[k];
    }
    /* Beyond the pfn space: no frames. */
    end = first_pfn + nr_frames;
    for ( pfn = nr_pfns > first_pfn ? nr_pfns : first_pfn; frames && pfn < end; pfn++ )
        frames[pfn - first_pfn] = MEMSWAP_NO_FRAME;
    if ( info )
    {
        info->nr_pfns = nr_pfns;
        info->frames_counted = q.frames_counted;
        info->tot_pages = d->tot_pages;
        info->translated = sim_translated(d);
    }
    return 0;
}
