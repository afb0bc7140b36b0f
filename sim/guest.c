/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A PV guest built the way a Linux x86-64 PV kernel builds itself, so that
 * every MFN holder the seed post's swap missed exists here too:
 *
 *  - 4-level page tables per address space: a kernel root (vCPU
 *    guest_table) and a user root (guest_table_user) sharing the user-half
 *    tables; the kernel half (direct map at PAGE_OFFSET made of 4K entries,
 *    the linear p2m list in the vmalloc area) shared by all kernel roots.
 *    Page tables and GDT frames are read-only in the direct map, everything
 *    else read-write: Xen refuses a writable mapping of a table.
 *  - Xen's reserved L4 slots 256..271 (258 = linear page table, mapping
 *    the L4 itself) written by Xen when it validates an L4.
 *  - The P2M as Linux keeps it: a linear array of 8-byte MFNs mapped at a
 *    virtual address, whose leaf pages are listed in the 3-level frame-list
 *    tree (frame list list -> mids -> leaves) registered in shared_info;
 *    shared "missing" and "identity" leaves and a shared "mid missing" page,
 *    a real hole and an identity range in the pfn space, foreign entries.
 *  - start_info with the store and console MFNs, per-vCPU vcpu_info
 *    registered in guest RAM, GDT frames, pinned roots.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

#define PTE_DATA    SIM_PTE_FL_DATA
#define PTE_RO      SIM_PTE_FL_RO
#define PTE_TABLE   SIM_PTE_FL_TABLE

#define L4_IDX(va)  SIM_L4_IDX(va)
#define L3_IDX(va)  SIM_L3_IDX(va)
#define L2_IDX(va)  SIM_L2_IDX(va)
#define L1_IDX(va)  SIM_L1_IDX(va)

/* ---- Xen's L4 slots ------------------------------------------------------ */

void sim_init_xen_l4_slots(uint64_t *l4, unsigned long l4_mfn)
{
    unsigned int i;

    for ( i = SIM_XEN_L4_FIRST; i <= SIM_XEN_L4_LAST; i++ )
        l4[i] = sim_pte(sim_xen_slot_mfn[i - SIM_XEN_L4_FIRST], SIM_PTE_XEN_RW);
    l4[SIM_L4_LINEAR_SLOT] = sim_pte(l4_mfn, SIM_PTE_XEN_RW);
}

/* ---- walks ---------------------------------------------------------------- */

/*
 * A 4-level walk of @va from table @root. A PV guest's entries (@d NULL)
 * name frames; a translated guest's name gfns, which Xen's p2m maps.
 * Returns the frame, the last frame number the tables named (@ref) and
 * whether every level allows writing (@rw); MS_INVALID_MFN if unmapped.
 */
static unsigned long walk(const struct domain *d, unsigned long root, uint64_t va,
                          unsigned long *ref, bool *rw)
{
    unsigned long r = root, mfn;
    bool w = true;
    int shift;

    for ( shift = 39; ; shift -= 9 )
    {
        uint64_t e;

        mfn = d ? sim_p2m_ram_mfn(d, r) : r;
        if ( mfn == MS_INVALID_MFN || !sim_mfn_valid(mfn) )
            return MS_INVALID_MFN;
        if ( shift < 12 )
            break;
        e = ((const uint64_t *)sim_map_frame(mfn))[(va >> shift) & 511];
        if ( !(e & SIM_PTE_P) || (shift > 12 && (e & SIM_PTE_PSE)) )
            return MS_INVALID_MFN;
        w = w && (e & SIM_PTE_RW);
        r = sim_pte_mfn(e);
    }
    if ( ref )
        *ref = r;
    if ( rw )
        *rw = w;
    return mfn;
}

unsigned long sim_walk(unsigned long l4_mfn, uint64_t va, bool *rw)
{
    return walk(NULL, l4_mfn, va, NULL, rw);
}

unsigned long sim_hvm_walk(struct domain *d, uint64_t va, unsigned long *gfn, bool *rw)
{
    return walk(d, d->vcpu[0].cr3_pfn, va, gfn, rw);
}

void sim_tlb_flush(struct domain *d)
{
    if ( d )
        memset(d->tlb, 0, sizeof(d->tlb));
}

/*
 * A translated guest's access after its own walk: the p2m type decides. A
 * write to a page log-dirty write-protected faults into Xen, which logs it
 * (through the M2P of the frame) and makes the entry writable again: the
 * TLB then caches a writable translation, until the next read of the log
 * write-protects the page again (and flushes). Read-only RAM takes no write.
 */
static unsigned long hvm_access(struct domain *d, uint64_t va, bool write, bool *rw)
{
    unsigned long gfn, mfn = sim_hvm_walk(d, va, &gfn, rw);

    if ( mfn == MS_INVALID_MFN )
        return mfn;
    if ( d->p2m_type[gfn] == SIM_P2MT_RAM_RO )
        *rw = false;
    if ( write && *rw && d->p2m_type[gfn] == SIM_P2MT_RAM_LOGDIRTY )
    {
        sim_paging_mark_dirty(d, mfn);
        d->p2m_type[gfn] = SIM_P2MT_RAM_RW;
    }
    if ( d->p2m_type[gfn] == SIM_P2MT_RAM_LOGDIRTY )
        *rw = false;
    return mfn;
}

unsigned long sim_guest_va_to_mfn(struct domain *d, uint64_t va, bool write)
{
    uint64_t vpage = va >> PAGE_SHIFT;
    struct sim_tlb_entry *t = &d->tlb[vpage % SIM_TLB_ENTRIES];
    unsigned long mfn;
    bool rw = false;

    if ( t->valid && t->vpage == vpage && (!write || t->rw) )
        mfn = t->mfn;
    else
    {
        mfn = sim_translated(d) ? hvm_access(d, va, write, &rw)
                                : sim_walk(d->vcpu[0].guest_table, va, &rw);
        if ( mfn == MS_INVALID_MFN || (write && !rw) )
            return MS_INVALID_MFN;
        *t = (struct sim_tlb_entry){ .vpage = vpage, .mfn = mfn, .rw = rw, .valid = true };
    }
    /*
     * PV log-dirty is shadow paging's: a write through a mapping it made
     * writable was logged when it faulted; logging every write is the same.
     */
    if ( write && !sim_translated(d) )
        sim_paging_mark_dirty(d, mfn);
    return mfn;
}

unsigned long sim_guest_translate(struct domain *d, uint64_t va)
{
    unsigned long gfn;
    bool rw;

    return sim_translated(d) ? sim_hvm_walk(d, va, &gfn, &rw)
                             : sim_walk(d->vcpu[0].guest_table, va, NULL);
}

void *sim_guest_va_ptr(struct domain *d, uint64_t va, bool write)
{
    unsigned long mfn = sim_guest_va_to_mfn(d, va, write);

    if ( mfn == MS_INVALID_MFN )
        return NULL;
    return (unsigned char *)sim_map_frame(mfn) + (va & (PAGE_SIZE - 1));
}

struct sim_shared_info *sim_shared_info(struct domain *d)
{
    if ( d->shared_info_mfn == MS_INVALID_MFN )
        return NULL;
    return sim_map_frame(d->shared_info_mfn);
}

uint64_t sim_guest_p2m_entry(struct domain *d, unsigned long pfn)
{
    const uint64_t *p;

    if ( pfn >= d->p2m_size )
        return SIM_P2M_INVALID;
    p = sim_guest_va_ptr(d, SIM_GUEST_P2M_VA + (uint64_t)pfn * 8, false);
    return p ? *p : SIM_P2M_INVALID;
}

uint64_t sim_p2m_tree_entry(struct domain *d, unsigned long pfn)
{
    struct sim_shared_info *si = sim_shared_info(d);
    unsigned long fll, mid, leaf;

    if ( !si || pfn >= d->p2m_size )
        return SIM_P2M_INVALID;
    fll = (unsigned long)si->arch.pfn_to_mfn_frame_list_list;
    if ( !sim_mfn_valid(fll) )
        return SIM_P2M_INVALID;
    mid = (unsigned long)((const uint64_t *)sim_map_frame(fll))[(pfn >> 18) & 511];
    if ( !sim_mfn_valid(mid) )
        return SIM_P2M_INVALID;
    leaf = (unsigned long)((const uint64_t *)sim_map_frame(mid))[(pfn >> 9) & 511];
    if ( !sim_mfn_valid(leaf) )
        return SIM_P2M_INVALID;
    return ((const uint64_t *)sim_map_frame(leaf))[pfn & 511];
}

/* ---- contents ------------------------------------------------------------- */

uint64_t sim_data_word0(const struct domain *d, unsigned long pfn)
{
    return sim_mix64(d->seed ^ ((uint64_t)pfn * 0x9e3779b97f4a7c15ULL)) | 1;
}

void sim_fill_data(const struct domain *d, unsigned long mfn, unsigned long pfn)
{
    uint64_t *w = sim_map_frame(mfn), x = sim_data_word0(d, pfn);
    uint64_t step = (x >> 7) | 1;
    unsigned int i;

    /* word 0 identifies the page; the rest is a cheap pfn-specific pattern. */
    for ( i = 0; i < 512; i++ )
        w[i] = x + i * step;
}

int sim_guest_read_pfn(unsigned int domid, unsigned long pfn, void *buf4k)
{
    struct domain *d = sim_domain_lookup(domid);
    unsigned long mfn;

    if ( !d || d->is_dom0 )
        return -ESRCH;
    if ( pfn >= d->p2m_size )
        return -EINVAL;
    mfn = sim_guest_translate(d, sim_pfn_va(pfn));
    if ( mfn == MS_INVALID_MFN )
        return -EFAULT;
    memcpy(buf4k, sim_map_frame(mfn), PAGE_SIZE);
    return 0;
}

static uint64_t page_hash(const uint64_t *w)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    unsigned int i;

    for ( i = 0; i < 512; i++ )
        h = (h ^ w[i]) * 0x100000001b3ULL;
    return h;
}

int sim_guest_checksums(unsigned int domid, uint64_t *sums, unsigned long nr)
{
    struct domain *d = sim_domain_lookup(domid);
    unsigned long pfn;
    int n = 0;

    if ( !d || d->is_dom0 )
        return -ESRCH;
    for ( pfn = 0; pfn < nr; pfn++ )
    {
        unsigned long mfn = pfn < d->p2m_size ?
            sim_guest_translate(d, sim_pfn_va(pfn)) : MS_INVALID_MFN;

        sums[pfn] = mfn == MS_INVALID_MFN ? 0 : page_hash(sim_map_frame(mfn));
        n += mfn != MS_INVALID_MFN;
    }
    return n;
}

/* ---- layout (both kinds of guest) --------------------------------------------- */

unsigned long sim_layout_take(struct sim_layout *l, enum sim_pfn_role role)
{
    unsigned long pfn;

    if ( l->next >= l->nr_ram )
        return MS_INVALID_MFN;
    pfn = l->ram[l->next++];
    l->d->pfn_role[pfn] = (uint8_t)role;
    return pfn;
}

unsigned long sim_layout_mfn(const struct sim_layout *l, unsigned long pfn)
{
    return l->p2m ? (unsigned long)l->p2m[pfn] : l->d->p2m_mfn[pfn];
}

uint64_t *sim_layout_page(const struct sim_layout *l, unsigned long pfn)
{
    return sim_map_frame(sim_layout_mfn(l, pfn));
}

uint64_t sim_layout_pte(const struct sim_layout *l, unsigned long pfn, uint64_t flags)
{
    return sim_pte(l->p2m ? (unsigned long)l->p2m[pfn] : pfn, flags);
}

int sim_layout_take_direct_map(struct sim_layout *l)
{
    unsigned long i;

    l->n1 = (l->d->p2m_size + 511) / 512;       /* one L1 per 512 pfns */
    l->n2 = (l->n1 + 511) / 512;
    l->dl2 = calloc(l->n2, sizeof(*l->dl2));
    l->dl1 = calloc(l->n1, sizeof(*l->dl1));
    if ( !l->dl2 || !l->dl1 || l->n2 > 512 )
        return -ENOMEM;
    l->dl3 = sim_layout_take(l, SIM_ROLE_PT);
    for ( i = 0; i < l->n2; i++ )
        l->dl2[i] = sim_layout_take(l, SIM_ROLE_PT);
    for ( i = 0; i < l->n1; i++ )
        l->dl1[i] = sim_layout_take(l, SIM_ROLE_PT);
    return 0;
}

void sim_layout_take_spaces(struct sim_layout *l, bool user_l4)
{
    struct domain *d = l->d;
    unsigned int a, i;

    for ( a = 0; a < d->nr_as; a++ )
    {
        d->kernel_l4_pfn[a] = sim_layout_take(l, SIM_ROLE_PT);
        d->user_l4_pfn[a] = user_l4 ? sim_layout_take(l, SIM_ROLE_PT) : MS_INVALID_MFN;
        l->ul3[a] = sim_layout_take(l, SIM_ROLE_PT);
        l->ul2[a] = sim_layout_take(l, SIM_ROLE_PT);
        l->ul1[a] = sim_layout_take(l, SIM_ROLE_PT);
        for ( i = 0; i < SIM_USER_PAGES; i++ )
            d->user_pfn[a][i] = sim_layout_take(l, SIM_ROLE_USER);
    }
}

void sim_layout_take_devices(struct sim_layout *l)
{
    struct domain *d = l->d;
    unsigned int i;

    if ( !d->with_devices )
        return;
    d->net_tx_ring_pfn = sim_layout_take(l, SIM_ROLE_NET_RING);
    d->net_rx_ring_pfn = sim_layout_take(l, SIM_ROLE_NET_RING);
    for ( i = 0; i < SIM_NET_BUFS; i++ )
    {
        d->net_tx_buf_pfn[i] = sim_layout_take(l, SIM_ROLE_NET_BUF);
        d->net_rx_buf_pfn[i] = sim_layout_take(l, SIM_ROLE_NET_BUF);
    }
    if ( d->type == SIM_GUEST_HVM )
        for ( i = 0; i < 2; i++ )
            d->vram_pfn[i] = sim_layout_take(l, SIM_ROLE_VRAM);
}

void sim_layout_fill(struct sim_layout *l)
{
    struct domain *d = l->d;
    unsigned long i;

    for ( i = 0; i < l->nr_ram; i++ )
    {
        unsigned long pfn = l->ram[i];

        if ( i >= l->next )
            d->pfn_role[pfn] = SIM_ROLE_DATA;
        if ( d->pfn_role[pfn] == SIM_ROLE_DATA || d->pfn_role[pfn] == SIM_ROLE_USER )
            sim_fill_data(d, sim_layout_mfn(l, pfn), pfn);
        else
            memset(sim_layout_page(l, pfn), 0, PAGE_SIZE);
    }
}

void sim_layout_write_direct_map(struct sim_layout *l, bool ro)
{
    struct domain *d = l->d;
    unsigned long i, pfn;

    for ( i = 0; i < l->n2; i++ )
        sim_layout_page(l, l->dl3)[i] = sim_layout_pte(l, l->dl2[i], PTE_TABLE);
    /* The kernel image at __START_KERNEL_map (L4 511, L3 510): its first
     * 1 GiB of physical memory, through the direct map's first L2. */
    sim_layout_page(l, l->kimg_l3)[L3_IDX(SIM_GUEST_KIMG_VA)] =
        sim_layout_pte(l, l->dl2[0], PTE_TABLE);
    for ( i = 0; i < l->n1; i++ )
        sim_layout_page(l, l->dl2[i / 512])[i % 512] = sim_layout_pte(l, l->dl1[i], PTE_TABLE);
    for ( pfn = 0; pfn < d->p2m_size; pfn++ )
    {
        uint8_t role = d->pfn_role[pfn];

        if ( role == SIM_ROLE_NONE )
            continue;
        sim_layout_page(l, l->dl1[pfn / 512])[pfn % 512] =
            sim_layout_pte(l, pfn, ro && (role == SIM_ROLE_PT || role == SIM_ROLE_GDT) ?
                                   PTE_RO : PTE_DATA);
    }
}

void sim_layout_write_user_half(struct sim_layout *l, unsigned int a, uint64_t *kl4,
                                uint64_t *ul4)
{
    struct domain *d = l->d;
    unsigned int i;

    sim_layout_page(l, l->ul3[a])[L3_IDX(SIM_GUEST_USER_VA)] =
        sim_layout_pte(l, l->ul2[a], SIM_PTE_FL_UTABLE);
    sim_layout_page(l, l->ul2[a])[L2_IDX(SIM_GUEST_USER_VA)] =
        sim_layout_pte(l, l->ul1[a], SIM_PTE_FL_UTABLE);
    for ( i = 0; i < SIM_USER_PAGES; i++ )
        sim_layout_page(l, l->ul1[a])[L1_IDX(SIM_GUEST_USER_VA) + i] =
            sim_layout_pte(l, d->user_pfn[a][i], SIM_PTE_FL_UDATA);
    kl4[L4_IDX(SIM_GUEST_USER_VA)] = sim_layout_pte(l, l->ul3[a], SIM_PTE_FL_UTABLE);
    if ( ul4 )
        ul4[L4_IDX(SIM_GUEST_USER_VA)] = kl4[L4_IDX(SIM_GUEST_USER_VA)];
    kl4[L4_IDX(SIM_GUEST_PAGE_OFFSET)] = sim_layout_pte(l, l->dl3, PTE_TABLE);
    kl4[L4_IDX(SIM_GUEST_KIMG_VA)] = sim_layout_pte(l, l->kimg_l3, PTE_TABLE);
}

void sim_layout_free(struct sim_layout *l)
{
    free(l->dl2);
    free(l->dl1);
    free(l->ram);
    l->dl2 = l->dl1 = NULL;
    l->ram = NULL;
}

/* ---- builder -------------------------------------------------------------- */

struct builder {
    struct sim_layout l;
    struct domain *d;
    uint64_t *p2m;              /* [p2m_size] the entries, as built */
    unsigned long hole_start, id_start, ram2_start, ram_end;
};

static unsigned long take(struct builder *b, enum sim_pfn_role role)
{
    return sim_layout_take(&b->l, role);
}

static unsigned long mfn_of(const struct builder *b, unsigned long pfn)
{
    return (unsigned long)b->p2m[pfn];
}

static uint64_t *tab(const struct builder *b, unsigned long pfn)
{
    return sim_map_frame(mfn_of(b, pfn));
}

enum leaf_kind { LEAF_REAL, LEAF_MISSING, LEAF_IDENTITY };

static enum leaf_kind leaf_kind(const struct builder *b, unsigned long li)
{
    unsigned long i, first = li * 512;
    bool all_missing = true, all_id = true;

    for ( i = first; i < first + 512; i++ )
    {
        uint64_t e = i < b->d->p2m_size ? b->p2m[i] : SIM_P2M_INVALID;

        if ( e != SIM_P2M_INVALID )
            all_missing = false;
        if ( e == SIM_P2M_INVALID || !(e & SIM_P2M_IDENTITY) || (e & SIM_P2M_FOREIGN) )
            all_id = false;
    }
    return all_missing ? LEAF_MISSING : all_id ? LEAF_IDENTITY : LEAF_REAL;
}

static void write_start_info(struct builder *b, unsigned long pfn)
{
    struct domain *d = b->d;
    struct sim_start_info *si = (struct sim_start_info *)tab(b, pfn);

    memset(si, 0, sizeof(*si));
    strcpy(si->magic, "xen-3.0-x86_64");
    si->nr_pages = d->nr_ram_pfns;
    si->shared_info = (uint64_t)d->shared_info_mfn << PAGE_SHIFT;
    si->store_mfn = mfn_of(b, d->xenstore_pfn);
    si->store_evtchn = (uint32_t)d->store_evtchn;
    si->console_mfn = mfn_of(b, d->console_pfn);
    si->console_evtchn = (uint32_t)d->console_evtchn;
    si->pt_base = sim_pfn_va(d->kernel_l4_pfn[0]);
    si->mfn_list = SIM_GUEST_P2M_VA;
    snprintf(si->cmd_line, sizeof(si->cmd_line), "root=/dev/xvda1 console=hvc0 memswap.seed=%llu",
             (unsigned long long)d->seed);
}

static void write_gdt(uint64_t *gdt)
{
    /* Linux's per-CPU GDT: flat 64-bit kernel code/data, user code/data. */
    memset(gdt, 0, PAGE_SIZE);
    gdt[1] = 0x00cf9b000000ffffULL;
    gdt[2] = 0x00af9b000000ffffULL;
    gdt[3] = 0x00cf93000000ffffULL;
    gdt[4] = 0x00cffb000000ffffULL;
    gdt[5] = 0x00cff3000000ffffULL;
    gdt[6] = 0x00affb000000ffffULL;
}

static int build_memory(struct builder *b, const struct sim_guest_config *cfg)
{
    struct domain *d = b->d;
    unsigned long M = cfg->mem_bytes >> PAGE_SHIFT, pfn, i;
    int node = cfg->node == MEMSWAP_NODE_ANY ? -1 : (int)cfg->node;

    if ( sim_host_free_frames(node, cfg->colours) < M + 16 )
        return -ENOMEM;

    /* pfn layout: RAM, a 2-leaf hole, a 1-leaf identity range, RAM, then a
     * partial identity tail and (with devices) two foreign entries. A
     * sparse guest (pfn_stride > 1, as after ballooning or hotplug) has
     * one RAM pfn every pfn_stride and nothing in between. */
    if ( cfg->pfn_stride > 1 )
    {
        if ( (unsigned long)cfg->pfn_stride * M > (1UL << 27) )
            return -EINVAL;
        b->hole_start = b->ram2_start = M * cfg->pfn_stride;
        b->id_start = b->hole_start;
        b->ram_end = b->hole_start;
    }
    else
    {
        b->hole_start = ((M / 2) + 511) & ~511UL;
        b->id_start = b->hole_start + 1024;
        b->ram2_start = b->id_start + 512;
        b->ram_end = b->ram2_start + (M - b->hole_start);
    }
    d->p2m_size = b->ram_end + 16 + (cfg->with_devices ? 2 : 0);
    d->nr_ram_pfns = M;
    d->max_pages = M + 64;

    d->pfn_role = calloc(d->p2m_size, 1);
    d->touches = calloc(d->p2m_size, sizeof(*d->touches));
    d->dm_touches = calloc(d->p2m_size, sizeof(*d->dm_touches));
    b->p2m = malloc(d->p2m_size * sizeof(*b->p2m));
    b->l.ram = malloc(M * sizeof(*b->l.ram));
    b->l.p2m = b->p2m;
    if ( !d->pfn_role || !d->touches || !d->dm_touches || !b->p2m || !b->l.ram )
        return -ENOMEM;
    for ( pfn = 0; pfn < d->p2m_size; pfn++ )
        b->p2m[pfn] = SIM_P2M_INVALID;
    for ( pfn = b->id_start; pfn < b->ram2_start; pfn++ )
        b->p2m[pfn] = pfn | SIM_P2M_IDENTITY;
    for ( pfn = b->ram_end; pfn < b->ram_end + 16; pfn++ )
        b->p2m[pfn] = pfn | SIM_P2M_IDENTITY;

    b->l.nr_ram = 0;
    for ( pfn = 0; pfn < b->ram_end; pfn++ )
    {
        unsigned long mfn;

        if ( (pfn >= b->hole_start && pfn < b->ram2_start) ||
             (cfg->pfn_stride > 1 && pfn % cfg->pfn_stride) )
            continue;
        mfn = sim_heap_alloc_any(node, cfg->colours, pfn);
        if ( mfn == MS_INVALID_MFN )
            return -ENOMEM;
        sim_assign_page(d, mfn);
        sim_m2p[mfn] = pfn;
        b->p2m[pfn] = mfn;
        b->l.ram[b->l.nr_ram++] = pfn;
    }
    (void)i;
    return 0;
}

static int build_foreign(struct builder *b)
{
    struct domain *d = b->d, *d0 = sim_domains[0];
    unsigned int k;

    /* Pages dom0 granted to this guest and the guest mapped into pfns whose
     * own memory was ballooned out: the p2m says "foreign". */
    for ( k = 0; k < 2; k++ )
    {
        unsigned long pfn = b->ram_end + 16 + k;
        unsigned long mfn = sim_heap_alloc_any(-1, NULL, pfn);
        uint32_t gref = 16 + d->domid * 2 + k;
        int id;

        if ( mfn == MS_INVALID_MFN )
            return -ENOMEM;
        sim_assign_page(d0, mfn);
        sim_m2p[mfn] = 0x100000 + d->domid * 2 + k;
        memset(sim_map_frame(mfn), 0xd0 + k, PAGE_SIZE);
        sim_gnt_grant(d0, gref, d->domid, mfn, false);
        id = sim_gnt_map(d->domid, 0, gref, true);
        if ( id < 0 )
            return id;
        d->foreign_pfn[k] = pfn;
        d->foreign_mfn[k] = mfn;
        d->foreign_gmap[k] = id;
        b->p2m[pfn] = mfn | SIM_P2M_FOREIGN;
    }
    return 0;
}

int sim_guest_build(struct domain *d, const struct sim_guest_config *cfg)
{
    struct builder bld = { .d = d, .l = { .d = d } }, *b = &bld;
    unsigned long nleaves, nmids, np1, li, i, pfn;
    unsigned long missing, identity, midmiss, top, *mids = NULL, *leaf_pfn = NULL;
    unsigned long pl3, pl2, *pl1 = NULL;
    unsigned int a, v;
    int rc;

    if ( cfg->name[0] )
        snprintf(d->name, SIM_NAME_LEN, "%.*s", SIM_NAME_LEN - 1, cfg->name);
    else
        snprintf(d->name, SIM_NAME_LEN, "guest%u", d->domid);
    d->type = cfg->hvm ? SIM_GUEST_HVM : cfg->type;
    if ( d->type > SIM_GUEST_HVM || (sim_translated(d) && cfg->forks) )
        return -EINVAL;
    d->seed = cfg->seed ^ sim_mix64(d->domid);
    d->node = cfg->node;
    memcpy(d->colours, cfg->colours, sizeof(d->colours));
    d->nr_vcpus = cfg->nr_vcpus;
    d->nr_as = cfg->nr_address_spaces ? cfg->nr_address_spaces : 1;
    d->with_devices = cfg->with_devices;
    d->forks = cfg->forks;
    sim_fork_init(d);
    d->console_evtchn = 2;
    d->store_evtchn = 1;
    d->g.rng = d->seed;

    /* Xen's side: shared_info and grant table frames. */
    d->shared_info_mfn = sim_alloc_xen_frame();
    if ( d->shared_info_mfn == MS_INVALID_MFN )
        return -ENOMEM;
    sim_gnt_init(d);
    if ( sim_translated(d) )
        return sim_hvm_build(d, cfg);

    rc = build_memory(b, cfg);
    if ( rc )
        goto out;
    if ( cfg->with_devices && (rc = build_foreign(b)) )
        goto out;

    /* Roles. */
    rc = -ENOMEM;
    d->start_info_pfn = take(b, SIM_ROLE_START_INFO);
    d->console_pfn = take(b, SIM_ROLE_CONSOLE);
    d->xenstore_pfn = take(b, SIM_ROLE_XENSTORE);
    d->vcpu_info_pfn = take(b, SIM_ROLE_VCPU_INFO);
    for ( v = 0; v < d->nr_vcpus; v++ )
        d->gdt_pfn[v] = take(b, SIM_ROLE_GDT);

    nleaves = (d->p2m_size + 511) / 512;
    nmids = (nleaves + 511) / 512;
    missing = take(b, SIM_ROLE_P2M);
    identity = take(b, SIM_ROLE_P2M);
    midmiss = take(b, SIM_ROLE_P2M);
    top = take(b, SIM_ROLE_P2M);
    mids = calloc(nmids, sizeof(*mids));
    leaf_pfn = calloc(nleaves, sizeof(*leaf_pfn));
    np1 = (nleaves + 511) / 512;
    pl1 = calloc(np1, sizeof(*pl1));
    if ( !mids || !leaf_pfn || !pl1 )
        goto out;
    for ( i = 0; i < nmids; i++ )
        mids[i] = take(b, SIM_ROLE_P2M);
    for ( li = 0; li < nleaves; li++ )
    {
        enum leaf_kind k = leaf_kind(b, li);

        leaf_pfn[li] = k == LEAF_MISSING ? missing : k == LEAF_IDENTITY ? identity :
                       take(b, SIM_ROLE_P2M);
    }
    if ( sim_layout_take_direct_map(&b->l) )
        goto out;
    pl3 = take(b, SIM_ROLE_PT);
    pl2 = take(b, SIM_ROLE_PT);
    for ( i = 0; i < np1; i++ )
        pl1[i] = take(b, SIM_ROLE_PT);
    sim_layout_take_spaces(&b->l, true);
    sim_layout_take_devices(&b->l);
    /* Taken last so that the other roles keep their pfns. */
    b->l.kimg_l3 = d->kimg_l3_pfn = take(b, SIM_ROLE_PT);
    if ( cfg->forks )
        for ( i = 0; i < SIM_FORK_POOL; i++ )
            d->fork.pool[i] = take(b, SIM_ROLE_POOL);
    if ( b->l.next >= b->l.nr_ram )
        goto out;                               /* too small for its own tables */

    /* Contents: data everywhere else, zeroed structures. */
    sim_layout_fill(&b->l);

    /* P2M: leaves, shared pages, mids, top. */
    for ( i = 0; i < 512; i++ )
    {
        tab(b, missing)[i] = SIM_P2M_INVALID;
        tab(b, identity)[i] = i | SIM_P2M_IDENTITY;
        tab(b, midmiss)[i] = mfn_of(b, missing);
        tab(b, top)[i] = i < nmids ? mfn_of(b, mids[i]) : mfn_of(b, midmiss);
    }
    for ( li = 0; li < nleaves; li++ )
    {
        uint64_t *leaf = tab(b, leaf_pfn[li]);

        if ( leaf_pfn[li] != missing && leaf_pfn[li] != identity )
            for ( i = 0; i < 512; i++ )
                leaf[i] = li * 512 + i < d->p2m_size ? b->p2m[li * 512 + i] : SIM_P2M_INVALID;
    }
    for ( i = 0; i < nmids * 512; i++ )
        tab(b, mids[i / 512])[i % 512] = i < nleaves ? mfn_of(b, leaf_pfn[i]) : mfn_of(b, missing);

    /* Kernel half: direct map (tables and GDT read-only) and the linear p2m list. */
    sim_layout_write_direct_map(&b->l, true);
    tab(b, pl3)[L3_IDX(SIM_GUEST_P2M_VA)] = sim_pte(mfn_of(b, pl2), PTE_TABLE);
    for ( i = 0; i < np1; i++ )
        tab(b, pl2)[L2_IDX(SIM_GUEST_P2M_VA) + i] = sim_pte(mfn_of(b, pl1[i]), PTE_TABLE);
    for ( li = 0; li < nleaves; li++ )
    {
        bool shared = leaf_pfn[li] == missing || leaf_pfn[li] == identity;

        tab(b, pl1[li / 512])[li % 512] = sim_pte(mfn_of(b, leaf_pfn[li]), shared ? PTE_RO : PTE_DATA);
    }

    /* Address spaces: user half private, kernel half shared. */
    for ( a = 0; a < d->nr_as; a++ )
    {
        uint64_t *kl4 = tab(b, d->kernel_l4_pfn[a]), *ul4 = tab(b, d->user_l4_pfn[a]);

        sim_layout_write_user_half(&b->l, a, kl4, ul4);
        kl4[L4_IDX(SIM_GUEST_P2M_VA)] = sim_pte(mfn_of(b, pl3), PTE_TABLE);
        sim_init_xen_l4_slots(kl4, mfn_of(b, d->kernel_l4_pfn[a]));
        sim_init_xen_l4_slots(ul4, mfn_of(b, d->user_l4_pfn[a]));
    }
    for ( v = 0; v < d->nr_vcpus; v++ )
        write_gdt(tab(b, d->gdt_pfn[v]));

    /* Xen's registrations: shared_info's p2m fields. */
    {
        struct sim_shared_info *si = sim_shared_info(d);

        si->arch.max_pfn = d->p2m_size;
        si->arch.pfn_to_mfn_frame_list_list = mfn_of(b, top);
        si->arch.p2m_cr3 = (uint64_t)mfn_of(b, d->kernel_l4_pfn[0]) << PAGE_SHIFT;
        si->arch.p2m_vaddr = SIM_GUEST_P2M_VA;
        si->arch.p2m_generation = 1;
    }
    write_start_info(b, d->start_info_pfn);
    {
        struct sim_start_info *st = (struct sim_start_info *)tab(b, d->start_info_pfn);

        st->nr_pt_frames = 0;
        for ( pfn = 0; pfn < d->p2m_size; pfn++ )
            st->nr_pt_frames += d->pfn_role[pfn] == SIM_ROLE_PT;
        st->first_p2m_pfn = top;
        st->nr_p2m_frames = 4 + nmids;
    }

    /* Pin every root (validating everything below), as xen_pgd_pin does. */
    for ( a = 0; a < d->nr_as; a++ )
    {
        rc = sim_pin_table(d, mfn_of(b, d->kernel_l4_pfn[a]), 4);
        if ( !rc )
            rc = sim_pin_table(d, mfn_of(b, d->user_l4_pfn[a]), 4);
        if ( rc )
        {
            sim_log("d%u: pinning address space %u failed: %d", d->domid, a, rc);
            goto out;
        }
    }

    /* vCPUs: CR3s, GDTs, vcpu_info registered in guest RAM. */
    for ( v = 0; v < d->nr_vcpus; v++ )
    {
        struct vcpu *vc = &d->vcpu[v];
        unsigned long vi = mfn_of(b, d->vcpu_info_pfn), gdt = mfn_of(b, d->gdt_pfn[v]);

        vc->as = v % d->nr_as;
        rc = sim_set_guest_table(vc, mfn_of(b, d->kernel_l4_pfn[vc->as]), false);
        if ( !rc )
            rc = sim_set_guest_table(vc, mfn_of(b, d->user_l4_pfn[vc->as]), true);
        if ( !rc && !(rc = sim_get_page_and_type(sim_mfn_to_page(gdt), d, PGT_seg_desc_page)) )
        {
            vc->gdt_frames[0] = gdt;
            vc->nr_gdt_frames = SIM_GDT_FRAMES;
        }
        if ( !rc && !(rc = sim_get_page_and_type(sim_mfn_to_page(vi), d, PGT_writable_page)) )
        {
            vc->vcpu_info_mfn = vc->vcpu_info_map_mfn = vi;
            vc->vcpu_info_offset = 64 + 64 * v;
            /* Xen copies the legacy shared_info slot into the new area. */
            if ( v < SIM_LEGACY_VCPUS )
                memcpy((unsigned char *)sim_map_frame(vi) + vc->vcpu_info_offset,
                       &sim_shared_info(d)->vcpu_info[v], sizeof(struct sim_vcpu_info));
        }
        if ( rc )
            goto out;
        sim_xen_write_vcpu_info(vc, false);
    }

    if ( cfg->with_devices )
        sim_actors_connect(d);
    rc = 0;

out:
    free(mids);
    free(leaf_pfn);
    free(pl1);
    free(b->p2m);
    sim_layout_free(&b->l);
    return rc;
}

/* ---- the guest's own direct map ------------------------------------------- */

int sim_guest_directmap_rw(struct domain *d, unsigned long pfn, bool rw)
{
    uint64_t va = sim_pfn_va(pfn), p2m = sim_guest_p2m_entry(d, pfn);
    unsigned long mfn = d->vcpu[0].guest_table;
    int shift;

    if ( sim_translated(d) )
        return -EINVAL;         /* xen_pin_page is PV's */
    if ( p2m == SIM_P2M_INVALID || (p2m & (SIM_P2M_IDENTITY | SIM_P2M_FOREIGN)) )
        return -EINVAL;
    /* Down to the L1 that maps @va, read as the guest reads its tables. */
    for ( shift = 39; shift > 12; shift -= 9 )
    {
        uint64_t e;

        if ( !sim_mfn_valid(mfn) )
            return -EFAULT;
        e = ((const uint64_t *)sim_map_frame(mfn))[(va >> shift) & 511];
        if ( !(e & SIM_PTE_P) )
            return -EFAULT;
        mfn = sim_pte_mfn(e);
    }
    return sim_mmu_update(d, ((uint64_t)mfn << PAGE_SHIFT) + L1_IDX(va) * 8,
                          sim_pte((unsigned long)p2m, rw ? PTE_DATA : PTE_RO));
}

/* ---- teardown (domain_relinquish_resources) ------------------------------- */

void sim_guest_teardown(struct domain *d)
{
    unsigned int v, i, level;
    uint32_t m;

    if ( sim_translated(d) )
    {
        sim_hvm_teardown(d);
        return;
    }
    sim_actors_disconnect(d);
    for ( i = 0; i < 2; i++ )
        if ( d->foreign_gmap[i] >= 0 )
        {
            sim_gnt_unmap(d->foreign_gmap[i]);
            d->foreign_gmap[i] = -1;
        }
    sim_gnt_release_domain(d);

    for ( v = 0; v < d->nr_vcpus; v++ )
    {
        struct vcpu *vc = &d->vcpu[v];

        sim_set_guest_table(vc, MS_INVALID_MFN, false);
        sim_set_guest_table(vc, MS_INVALID_MFN, true);
        for ( i = 0; i < vc->nr_gdt_frames; i++ )
            sim_put_page_and_type(sim_mfn_to_page(vc->gdt_frames[i]));
        vc->nr_gdt_frames = 0;
        if ( vc->vcpu_info_mfn != MS_INVALID_MFN )
            sim_put_page_and_type(sim_mfn_to_page(vc->vcpu_info_mfn));
        vc->vcpu_info_mfn = vc->vcpu_info_map_mfn = MS_INVALID_MFN;
    }

    /* Unpin, then forcibly devalidate top-down (breaks linear loops), then
     * drop PGC_allocated: pages go back to the heap as their counts hit 0. */
    for ( m = d->page_head; m != SIM_NIL; m = sim_frame_table[m].list_next )
    {
        struct page_info *pg = &sim_frame_table[m];

        if ( pg->u.inuse.type_info & PGT_pinned )
        {
            pg->u.inuse.type_info &= ~PGT_pinned;
            sim_put_page_and_type(pg);
        }
    }
    for ( level = 4; level >= 1; level-- )
        for ( m = d->page_head; m != SIM_NIL; m = sim_frame_table[m].list_next )
        {
            struct page_info *pg = &sim_frame_table[m];

            if ( (pg->u.inuse.type_info & PGT_type_mask) == sim_level_type(level) )
                sim_force_devalidate(pg);
        }
    sim_guest_release_memory(d);
}

void sim_guest_release_memory(struct domain *d)
{
    unsigned int leaked = 0;
    uint32_t m, next;

    for ( m = d->page_head; m != SIM_NIL; m = next )
    {
        struct page_info *pg = &sim_frame_table[m];

        next = pg->list_next;
        if ( pg->count_info & PGC_allocated )
        {
            pg->count_info &= ~PGC_allocated;
            sim_put_page(pg);
        }
    }
    /* Whatever is left is held from outside: report and reclaim it. */
    for ( m = d->page_head; m != SIM_NIL; m = next )
    {
        next = sim_frame_table[m].list_next;
        leaked++;
        sim_page_list_del(d, m);
        sim_heap_free(m);
    }
    if ( leaked )
        sim_log("d%u: %u pages still referenced at destruction, reclaimed", d->domid, leaked);
    sim_gnt_fini(d);
    sim_free_xen_frame(d->shared_info_mfn);
    d->shared_info_mfn = MS_INVALID_MFN;
}

/* ---- frames the guest names, log-dirty ------------------------------------- */

unsigned long sim_p2m_ram_mfn(const struct domain *d, unsigned long gfn)
{
    if ( !d->p2m_type || gfn >= d->p2m_size )
        return MS_INVALID_MFN;
    switch ( d->p2m_type[gfn] )
    {
    case SIM_P2MT_RAM_RW:
    case SIM_P2MT_RAM_LOGDIRTY:
    case SIM_P2MT_RAM_RO:
    case SIM_P2MT_IOREQ:
        return d->p2m_mfn[gfn];
    }
    return MS_INVALID_MFN;
}

unsigned long sim_guest_frame_ref(struct domain *d, unsigned long pfn)
{
    return sim_translated(d) ? pfn : (unsigned long)sim_guest_p2m_entry(d, pfn);
}

unsigned long sim_grant_frame_mfn(const struct domain *d, unsigned long frame)
{
    return sim_translated(d) ? sim_p2m_ram_mfn(d, frame) : frame;
}

void sim_paging_mark_pfn_dirty(struct domain *d, unsigned long pfn)
{
    if ( d->ld_on && pfn < d->p2m_size )
        d->ld_bitmap[pfn / 64] |= 1ULL << (pfn % 64);
}

void sim_paging_mark_dirty(struct domain *d, unsigned long mfn)
{
    if ( d->ld_on && sim_mfn_valid(mfn) )
        sim_paging_mark_pfn_dirty(d, sim_m2p_get(mfn));
}

int sim_logdirty_enable(struct domain *d, bool engine)
{
    unsigned long gfn;

    if ( d->ld_on )
        return -EBUSY;
    if ( !sim_translated(d) && sim_cfg.no_shadow_paging )
        return -EOPNOTSUPP;
    if ( !d->ld_bitmap )
    {
        d->ld_bitmap = calloc((d->p2m_size + 63) / 64, sizeof(*d->ld_bitmap));
        if ( !d->ld_bitmap )
            return -ENOMEM;
    }
    else
        memset(d->ld_bitmap, 0, (d->p2m_size + 63) / 64 * sizeof(*d->ld_bitmap));
    d->ld_on = true;
    d->ld_engine = engine;
    /* HAP: every RAM entry write-protected; nothing cached may still write. */
    for ( gfn = 0; sim_translated(d) && gfn < d->p2m_size; gfn++ )
        if ( d->p2m_type[gfn] == SIM_P2MT_RAM_RW )
            d->p2m_type[gfn] = SIM_P2MT_RAM_LOGDIRTY;
    sim_tlb_flush(d);
    return 0;
}

void sim_logdirty_disable(struct domain *d)
{
    unsigned long gfn;

    if ( !d->ld_on )
        return;
    d->ld_on = d->ld_engine = false;
    for ( gfn = 0; sim_translated(d) && gfn < d->p2m_size; gfn++ )
        if ( d->p2m_type[gfn] == SIM_P2MT_RAM_LOGDIRTY )
            d->p2m_type[gfn] = SIM_P2MT_RAM_RW;
}
