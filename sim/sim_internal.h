/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The simulator's internal structures, shared by the sim/ sources and by the C tests
 * that need to look behind sim.h (tests/c). core/ never includes this: the
 * engine sees the host only through core/private.h.
 *
 * Conventions:
 *  - frames are indices into sim_frame_table / sim_ram (xen_compat.h);
 *  - intrusive lists (domain page lists, heap free lists) link frames through
 *    page_info.list_next/list_prev with SIM_NIL as the end marker, so every
 *    list operation is O(1) and no per-page allocation happens;
 *  - a guest finds its own memory through its own page tables (the vCPU's
 *    guest_table is what CR3 would hold), never through the frame table, so
 *    that a swap that forgets a holder shows up as a guest-visible failure.
 */
#ifndef SIM_INTERNAL_H
#define SIM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sim.h"
#include "xen_compat.h"

#define SIM_NIL             0xffffffffu
#define SIM_SCRUB_POISON    0xf4eef4eef4eef4eeULL   /* word 0 of a scrubbed frame */
#ifndef MS_INVALID_MFN
#define MS_INVALID_MFN      (~0UL)      /* token-identical to core/private.h */
#endif
#define SIM_MAX_VCPUS       8
#define SIM_MAX_AS          16
#define SIM_GDT_FRAMES      1          /* Linux PV: one GDT page per CPU */
#define SIM_MAX_GDT_FRAMES  16         /* Xen's limit (FIRST_RESERVED_GDT_PAGE) */
#define SIM_XEN_L4_FIRST    256        /* ROOT_PAGETABLE_FIRST_XEN_SLOT */
#define SIM_XEN_L4_LAST     271        /* ROOT_PAGETABLE_LAST_XEN_SLOT */
#define SIM_L4_LINEAR_SLOT  258        /* LINEAR_PT_VIRT_START */

/* x86-64 PTE bits. */
#define SIM_PTE_P           0x001ULL
#define SIM_PTE_RW          0x002ULL
#define SIM_PTE_US          0x004ULL
#define SIM_PTE_A           0x020ULL
#define SIM_PTE_D           0x040ULL
#define SIM_PTE_PSE         0x080ULL
#define SIM_PTE_G           0x100ULL
#define SIM_PTE_NX          (1ULL << 63)
#define SIM_PTE_ADDR        0x000ffffffffff000ULL
/* L1 cache attributes (PAT, PCD, PWT); Xen's PAT makes PAT alone WC. */
#define SIM_PTE_PWT         0x008ULL
#define SIM_PTE_PCD         0x010ULL
#define SIM_PTE_PAT         0x080ULL
#define SIM_PTE_CACHE_ATTRS (SIM_PTE_PAT | SIM_PTE_PCD | SIM_PTE_PWT)
#define SIM_PTE_WC          SIM_PTE_PAT
#define SIM_PTE_XEN_RW      (SIM_PTE_P | SIM_PTE_RW | SIM_PTE_A | SIM_PTE_D)

/* What the guest builders put in PTEs, and the index of a VA at each level. */
#define SIM_PTE_FL_DATA     (SIM_PTE_P | SIM_PTE_RW | SIM_PTE_A | SIM_PTE_D | SIM_PTE_NX)
#define SIM_PTE_FL_RO       (SIM_PTE_P | SIM_PTE_A | SIM_PTE_NX)
#define SIM_PTE_FL_TABLE    (SIM_PTE_P | SIM_PTE_RW | SIM_PTE_A)
#define SIM_PTE_FL_UTABLE   (SIM_PTE_P | SIM_PTE_RW | SIM_PTE_US | SIM_PTE_A)
#define SIM_PTE_FL_UDATA    (SIM_PTE_FL_DATA | SIM_PTE_US)
#define SIM_L4_IDX(va)      ((unsigned int)(((va) >> 39) & 511))
#define SIM_L3_IDX(va)      ((unsigned int)(((va) >> 30) & 511))
#define SIM_L2_IDX(va)      ((unsigned int)(((va) >> 21) & 511))
#define SIM_L1_IDX(va)      ((unsigned int)(((va) >> 12) & 511))

static inline unsigned long sim_pte_mfn(uint64_t e) { return (unsigned long)((e & SIM_PTE_ADDR) >> PAGE_SHIFT); }
static inline uint64_t sim_pte(unsigned long mfn, uint64_t flags) { return ((uint64_t)mfn << PAGE_SHIFT) | flags; }

/* Guest virtual layout (Linux x86-64). */
#define SIM_GUEST_P2M_VA    0xffffc90000000000ULL  /* vmalloc area: linear p2m list */
#define SIM_GUEST_USER_VA   0x0000000000400000ULL  /* user private pages */
#define SIM_GUEST_KIMG_VA   0xffffffff80000000ULL  /* __START_KERNEL_map */
#define SIM_LINUX_KERNEL_PGD_FIRST 273             /* pgd_index(PAGE_OFFSET) */
#define SIM_USER_PAGES      8

/* Linux PV P2M entry markers. */
#define SIM_P2M_INVALID     (~0ULL)
#define SIM_P2M_IDENTITY    (1ULL << 62)
#define SIM_P2M_FOREIGN     (1ULL << 63)

/* What the builder made of a pfn (the guest's own knowledge of itself). */
enum sim_pfn_role {
    SIM_ROLE_NONE = 0,          /* hole / identity / foreign: no own frame */
    SIM_ROLE_DATA,
    SIM_ROLE_START_INFO,
    SIM_ROLE_CONSOLE,
    SIM_ROLE_XENSTORE,
    SIM_ROLE_PT,                /* L1..L4 */
    SIM_ROLE_P2M,               /* leaf, mid, top, missing/identity/mid-missing */
    SIM_ROLE_GDT,
    SIM_ROLE_VCPU_INFO,
    SIM_ROLE_NET_RING,
    SIM_ROLE_NET_BUF,
    SIM_ROLE_USER,              /* user-space private data */
    SIM_ROLE_POOL,              /* spare pfns the fork actor builds tables in */
    SIM_ROLE_FIFO,              /* translated: FIFO event-channel page Xen maps */
    SIM_ROLE_VRAM,              /* HVM: video memory the device model keeps mapped */
    SIM_ROLE_IOREQ,             /* translated: the ioreq server's page (p2m_ioreq_server) */
};

/*
 * Xen's p2m entry types for a translated guest (our rendering of
 * p2m_type_t): what the simulated p2m holds.
 */
enum sim_p2mt {
    SIM_P2MT_NONE = 0,          /* no entry */
    SIM_P2MT_RAM_RW,
    SIM_P2MT_RAM_LOGDIRTY,      /* RAM, write-protected by log-dirty */
    SIM_P2MT_RAM_RO,
    SIM_P2MT_MMIO,              /* p2m_mmio_direct: not RAM */
    SIM_P2MT_IOREQ,             /* p2m_ioreq_server */
};

/* The fork actor (sim/actors.c): stages of one child address space. */
#define SIM_FORK_POOL       8          /* spare pfns reserved by the builder */
enum sim_fork_stage {
    SIM_FORK_IDLE = 0,
    SIM_FORK_PGD,                      /* pgd allocated, kernel half cloned */
    SIM_FORK_L3, SIM_FORK_L2, SIM_FORK_L1,
    SIM_FORK_PTES_LO, SIM_FORK_PTES_HI,/* user PTEs written, in two steps */
    SIM_FORK_PINNED,                   /* xen_dup_mmap: pgd pinned */
    SIM_FORK_RUNNING,                  /* a vCPU runs on the child pgd */
    SIM_FORK_UNPINNED,                 /* exit_mmap: unpinned, tables linked */
    SIM_FORK_PGD_ONLY,                 /* lower tables freed, pgd left */
};
struct sim_fork {
    enum sim_fork_stage stage;
    uint64_t steps;                    /* guest steps seen */
    uint64_t next_start;
    unsigned long pool[SIM_FORK_POOL]; /* pfns */
    bool pool_used[SIM_FORK_POOL];
    unsigned long pgd, l3, l2, l1;     /* pfns of the child's tables, or ~0 */
    unsigned int vcpu;                 /* the vCPU that runs the child */
    bool suspend_pinned;               /* sim_domain_suspend pinned the pgd */
    uint64_t forks_done;
};

/* ---- Xen-side and guest-side shared layouts (our own rendering) ---------- */

struct sim_vcpu_time_info {
    uint32_t version;
    uint32_t pad0;
    uint64_t tsc_timestamp;
    uint64_t system_time;
    uint32_t tsc_to_system_mul;
    int8_t   tsc_shift;
    uint8_t  flags;
    uint8_t  pad1[2];
};

/* Xen's struct vcpu_info for x86-64: 64 bytes. */
struct sim_vcpu_info {
    uint8_t  evtchn_upcall_pending;
    uint8_t  evtchn_upcall_mask;
    uint8_t  pad[6];
    uint64_t evtchn_pending_sel;
    uint64_t cr2;
    uint64_t arch_pad;
    struct sim_vcpu_time_info time;
};
_Static_assert(sizeof(struct sim_vcpu_info) == 64, "vcpu_info is 64 bytes");

#define SIM_LEGACY_VCPUS    32
struct sim_shared_info {
    struct sim_vcpu_info vcpu_info[SIM_LEGACY_VCPUS];
    uint64_t evtchn_pending[64];
    uint64_t evtchn_mask[64];
    uint32_t wc_version, wc_sec, wc_nsec, wc_sec_hi;
    struct {                    /* arch_shared_info */
        uint64_t max_pfn;
        uint64_t pfn_to_mfn_frame_list_list;
        uint64_t nmi_reason;
        uint64_t p2m_cr3;
        uint64_t p2m_vaddr;
        uint64_t p2m_generation;
    } arch;
};

struct sim_start_info {
    char     magic[32];         /* "xen-3.0-x86_64" */
    uint64_t nr_pages;
    uint64_t shared_info;       /* machine address of shared_info */
    uint32_t flags;
    uint32_t pad0;
    uint64_t store_mfn;
    uint32_t store_evtchn;
    uint32_t pad1;
    uint64_t console_mfn;
    uint32_t console_evtchn;
    uint32_t pad2;
    uint64_t pt_base;           /* VA of the initial L4 */
    uint64_t nr_pt_frames;
    uint64_t mfn_list;          /* VA of the linear p2m list */
    uint64_t mod_start, mod_len;
    char     cmd_line[1024];
    uint64_t first_p2m_pfn, nr_p2m_frames;
};

/* Grant table v1 entry (Xen public grant_table.h facts). */
struct sim_grant_entry_v1 {
    uint16_t flags;
    uint16_t domid;
    uint32_t frame;
};
#define SIM_GTF_permit_access   1u
#define SIM_GTF_readonly        (1u << 2)
#define SIM_GTF_reading         (1u << 3)
#define SIM_GTF_writing         (1u << 4)
#define SIM_GNT_PER_FRAME       (PAGE_SIZE / sizeof(struct sim_grant_entry_v1))
#define SIM_GNT_FRAMES          1
#define SIM_NR_GRANTS           (SIM_GNT_FRAMES * SIM_GNT_PER_FRAME)
#define SIM_GNTTAB_CONSOLE      0      /* GNTTAB_RESERVED_CONSOLE */
#define SIM_GNTTAB_XENSTORE     1      /* GNTTAB_RESERVED_XENSTORE */

struct sim_grant_active {
    uint32_t pin_rw, pin_ro;    /* mappings through this entry */
    unsigned long frame;        /* frame pinned by the mappings */
};

/* ---- netfront/netback (simplified netif rings) --------------------------- */

#define SIM_NET_RING        32
#define SIM_NET_BUFS        8
struct sim_net_req  { uint32_t gref; uint16_t id; uint16_t size; uint32_t seq; uint32_t pad; };
struct sim_net_rsp  { uint16_t id; int16_t status; uint32_t seq; uint32_t size; uint32_t pad; };
struct sim_net_sring {
    uint32_t req_prod, req_event, rsp_prod, rsp_event;
    uint8_t  pad[48];
    union { struct sim_net_req req; struct sim_net_rsp rsp; } ring[SIM_NET_RING];
};

/* ---- domain and vCPU ---------------------------------------------------- */

struct vcpu {
    struct domain *domain;
    unsigned int vcpu_id;
    unsigned int as;                   /* address space it runs */
    unsigned long cr3_pfn;             /* translated: the gfn of its L4 */
    unsigned long guest_table;         /* kernel L4 (CR3), MS_INVALID_MFN if unset */
    unsigned long guest_table_user;    /* user L4 */
    unsigned long vcpu_info_mfn;       /* registered vcpu_info page, or invalid */
    unsigned int vcpu_info_offset;
    unsigned long vcpu_info_map_mfn;   /* what Xen's global mapping points at */
    unsigned long gdt_frames[SIM_MAX_GDT_FRAMES];
    unsigned int nr_gdt_frames;
    uint32_t time_version;             /* Xen's side of the time protocol */
    uint64_t events_unacked;           /* pending_sel bits Xen set, guest not yet seen */
    uint64_t system_time;
};

/* A small software TLB per domain: what a real CPU would keep after a walk. */
#define SIM_TLB_ENTRIES     64
struct sim_tlb_entry { uint64_t vpage; unsigned long mfn; bool rw; bool valid; };

/* What the guest kernel keeps for its drivers (in guest memory in reality). */
struct sim_guest_state {
    uint64_t rng;
    uint64_t hb_seq;                   /* console heartbeat */
    uint32_t xs_req_id;                /* outstanding xenstore request (0: none) */
    uint32_t xs_next_id;
    uint32_t tx_req_prod, tx_rsp_cons, rx_req_prod, rx_rsp_cons;
    uint32_t tx_seq, rx_expect_seq;
    uint32_t tx_busy;                  /* bitmap of tx buffers in flight */
};

/* Daemons' and backend's state about one guest (dom0 side). */
struct sim_backend_state {
    bool connected;
    int con_map, store_map;            /* foreign mappings (sim_fmap ids) */
    unsigned long con_mfn, store_mfn;  /* as read once at introduction */
    uint64_t con_expect;               /* next heartbeat xenconsoled expects */
    char con_line[128];
    unsigned int con_len;
    int tx_ring_map, rx_ring_map;      /* grant mappings (sim_gmap ids) */
    uint32_t tx_req_cons, rx_req_cons, tx_rsp_prod, rx_rsp_prod;
    uint32_t tx_expect_seq, rx_seq;
};

struct domain {
    unsigned int domid;
    char name[SIM_NAME_LEN];
    bool exists, dying, is_dom0;
    unsigned int type;                 /* enum sim_guest_type */
    bool iommu;                        /* a device assigned: DMA by MFN */
    bool mem_sharing, mem_paging, altp2m;
    /* Log-dirty: on, whose (a swap's, or a toolstack's), the bits by pfn. */
    bool ld_on, ld_engine;
    uint64_t *ld_bitmap;
    unsigned int pause_count;
    uint64_t seed;

    /* memory */
    uint32_t page_head, page_tail;     /* page list (frames), SIM_NIL-terminated */
    unsigned long tot_pages, max_pages;
    unsigned int node;
    uint64_t colours[MEMSWAP_COLOUR_WORDS];

    /* vCPUs and Xen-side pages */
    unsigned int nr_vcpus;
    struct vcpu vcpu[SIM_MAX_VCPUS];
    unsigned long shared_info_mfn;     /* Xen heap */
    unsigned long gnt_mfn[SIM_GNT_FRAMES];   /* Xen heap: shared grant entries */
    struct sim_grant_active gnt_active[SIM_NR_GRANTS];

    /* What the guest knows about its own layout (builder's record). */
    unsigned long p2m_size;            /* max_pfn: entries in the p2m */
    unsigned long nr_ram_pfns;
    uint8_t *pfn_role;                 /* [p2m_size] enum sim_pfn_role */
    unsigned int nr_as;
    unsigned long kernel_l4_pfn[SIM_MAX_AS], user_l4_pfn[SIM_MAX_AS];
    unsigned long start_info_pfn, console_pfn, xenstore_pfn, vcpu_info_pfn;
    unsigned long gdt_pfn[SIM_MAX_VCPUS];
    unsigned long user_pfn[SIM_MAX_AS][SIM_USER_PAGES];
    bool with_devices;
    unsigned long net_tx_ring_pfn, net_rx_ring_pfn;
    unsigned long net_tx_buf_pfn[SIM_NET_BUFS], net_rx_buf_pfn[SIM_NET_BUFS];
    uint32_t gref_tx_ring, gref_rx_ring, gref_tx_buf0, gref_rx_buf0;
    unsigned long foreign_pfn[2];      /* p2m entries marked foreign */
    unsigned long foreign_mfn[2];
    int foreign_gmap[2];
    unsigned long console_evtchn, store_evtchn;
    unsigned long kimg_l3_pfn;         /* kernel image mapping: L4 slot 511 */

    bool forks, suspended;
    struct sim_fork fork;

    /* Translated: Xen's p2m, [p2m_size] each. */
    unsigned long *p2m_mfn;
    uint8_t *p2m_type;                 /* enum sim_p2mt */
    unsigned long mmio_pfn, nr_mmio;   /* the MMIO hole */
    unsigned long ioreq_pfn, shinfo_pfn, gnt_pfn;
    /* FIFO event channels: one control block per vCPU, one event array page. */
    unsigned long fifo_cb_pfn[SIM_MAX_VCPUS], fifo_array_pfn;
    unsigned long fifo_cb_mfn[SIM_MAX_VCPUS], fifo_array_mfn;  /* what Xen maps */
    uint64_t fifo_raised;              /* events Xen wrote into the array */
    /* HVM: the device model's video memory mappings. */
    unsigned long vram_pfn[2];
    int dm_map[2];
    /* Every write to a data page, for sim_guest_verify(). */
    uint32_t *touches, *dm_touches;    /* [p2m_size]: to word 1 (guest), word 2 (DM) */
    unsigned long dirty_rate;          /* data pages written per scheduling step */

    struct sim_guest_state g;
    struct sim_backend_state be;
    struct sim_io_stats io;
    struct sim_tlb_entry tlb[SIM_TLB_ENTRIES];

    void *llc_priv;                    /* owned by sim/llc.c */
};

/* ---- host.c ------------------------------------------------------------- */

extern struct domain *sim_domains[SIM_MAX_DOMAINS];
extern struct domain sim_dom_xen;      /* owner of Xen heap frames */
extern struct sim_host_config sim_cfg;
extern unsigned int sim_nr_colours;
extern unsigned int sim_current_domid; /* "current" for log prefixes */
extern uint64_t sim_step_count;
extern unsigned long sim_bugs;         /* refcount underflows seen (Xen would BUG) */
extern unsigned long sim_xen_slot_mfn[SIM_XEN_L4_LAST - SIM_XEN_L4_FIRST + 1];
void sim_init_xen_l4_slots(uint64_t *l4, unsigned long l4_mfn);

/* Heap. Allocated frames come back owner-less, count 0, type 0, state inuse. */
unsigned long sim_heap_alloc(int node, unsigned int colour);      /* exact bucket */
unsigned long sim_heap_alloc_any(int node, const uint64_t *colours, unsigned long hint);
/* From the first non-empty of list[(hint + k) % nlist] (colours). */
unsigned long sim_heap_alloc_from(int node, const uint16_t *list, unsigned int nlist,
                                  unsigned long hint);
void sim_heap_free(unsigned long mfn);
unsigned int sim_mfn_colour(unsigned long mfn);
unsigned long sim_heap_bucket_count(unsigned int node, unsigned int colour);

/* Domain page lists. */
void sim_page_list_add(struct domain *d, unsigned long mfn);
void sim_page_list_del(struct domain *d, unsigned long mfn);
void sim_page_list_replace(struct domain *d, unsigned long old_mfn, unsigned long new_mfn);
/* Assign a fresh heap frame to d: PGC_allocated + 1, on its page list. */
void sim_assign_page(struct domain *d, unsigned long mfn);
/* A frame for Xen itself (owner dom_xen, PGC_xen_heap). */
unsigned long sim_alloc_xen_frame(void);
void sim_free_xen_frame(unsigned long mfn);

struct domain *sim_domain_alloc(unsigned int domid);
void sim_domain_free_struct(struct domain *d);
unsigned int sim_owner_domid(const struct page_info *pg);

uint64_t sim_rand(uint64_t *state);
uint64_t sim_mix64(uint64_t x);

/* Log capture, for tests (also declared in sim.h). */

/* ---- mm.c --------------------------------------------------------------- */

bool sim_get_page(struct page_info *pg, struct domain *d);
void sim_put_page(struct page_info *pg);
int  sim_get_page_type(struct page_info *pg, unsigned long type);
void sim_put_page_type(struct page_info *pg);
int  sim_get_page_and_type(struct page_info *pg, struct domain *d, unsigned long type);
void sim_put_page_and_type(struct page_info *pg);
bool sim_is_pt_type(unsigned long type);
unsigned int sim_pt_level(unsigned long type);    /* 1..4, 0 if not a PT type */
unsigned long sim_level_type(unsigned int level);

/* MMUEXT-like operations of a PV guest on its own memory (domain d). */
int sim_pin_table(struct domain *d, unsigned long mfn, unsigned int level);
int sim_unpin_table(struct domain *d, unsigned long mfn);
/* MMU_NORMAL_PT_UPDATE: write PTE at machine address @ptr (8-aligned). */
int sim_mmu_update(struct domain *d, uint64_t ptr, uint64_t val);
int sim_set_guest_table(struct vcpu *v, unsigned long mfn, bool user);
/* Relinquish-like forced devalidation (Xen's relinquish_memory does this). */
int sim_force_devalidate(struct page_info *pg);
/* Write back and invalidate a frame's cache lines (counted, logged). */
void sim_cache_flush(unsigned long mfn);
extern unsigned long sim_cache_flushes;

/* dom0 foreign mappings (privcmd/xc_map_foreign_range -> mmu_update with FD). */
int  sim_fmap_map(unsigned int domid, unsigned long mfn, bool rw);     /* id or -errno */
void sim_fmap_unmap(int id);
void *sim_fmap_ptr(int id);
struct sim_fmap { unsigned int domid; unsigned long mfn; bool rw; bool used; };
extern struct sim_fmap *sim_fmaps;
extern unsigned int sim_nr_fmaps;

/* ---- grant.c ------------------------------------------------------------ */

struct sim_grant_entry_v1 *sim_gnt_entry(struct domain *d, uint32_t gref);
void sim_gnt_init(struct domain *d);
void sim_gnt_fini(struct domain *d);
/* The granting domain's guest writes an entry. */
void sim_gnt_grant(struct domain *d, uint32_t gref, unsigned int to_domid,
                   unsigned long frame, bool readonly);
/* GNTTABOP_map_grant_ref by @mapper: returns map id or -errno. */
int  sim_gnt_map(unsigned int mapper, unsigned int granter, uint32_t gref, bool rw);
void sim_gnt_unmap(int id);
void *sim_gnt_map_ptr(int id);
/* GNTTABOP_copy to/from a granted frame (@to_guest: write into it). */
int  sim_gnt_copy(unsigned int granter, uint32_t gref, unsigned int off,
                  void *buf, unsigned int len, bool to_guest);
struct sim_gmap { unsigned int mapper, granter; uint32_t gref; unsigned long mfn; bool rw; bool used; };
extern struct sim_gmap *sim_gmaps;
extern unsigned int sim_nr_gmaps;
void sim_gnt_release_domain(struct domain *d);

/* ---- guest.c ------------------------------------------------------------ */

/* Walk @d's page tables from CR3 = @l4_mfn; MS_INVALID_MFN if not mapped. */
unsigned long sim_walk(unsigned long l4_mfn, uint64_t va, bool *rw);
/* The guest's own view (kernel mode of vCPU 0), through the domain's TLB. */
unsigned long sim_guest_va_to_mfn(struct domain *d, uint64_t va, bool write);
void *sim_guest_va_ptr(struct domain *d, uint64_t va, bool write);
static inline uint64_t sim_pfn_va(unsigned long pfn) { return SIM_GUEST_PAGE_OFFSET + ((uint64_t)pfn << PAGE_SHIFT); }
void sim_tlb_flush(struct domain *d);
/* The guest's p2m as the guest reads it (through its linear p2m mapping). */
uint64_t sim_guest_p2m_entry(struct domain *d, unsigned long pfn);
/* Same through the frame-list tree from shared_info (what tools read). */
uint64_t sim_p2m_tree_entry(struct domain *d, unsigned long pfn);
struct sim_shared_info *sim_shared_info(struct domain *d);
int sim_guest_build(struct domain *d, const struct sim_guest_config *cfg);
void sim_guest_teardown(struct domain *d);
/* Teardown's end, both kinds: allocation references dropped, what others
 * still hold reclaimed (and logged), grant table and shared_info freed. */
void sim_guest_release_memory(struct domain *d);
uint64_t sim_data_word0(const struct domain *d, unsigned long pfn);
/* A data page's contents as built: word i = word0 + i * step. */
void sim_fill_data(const struct domain *d, unsigned long mfn, unsigned long pfn);
/* The guest's translation of @va, read-only, without its TLB or logging:
 * what a cache model replays through (MS_INVALID_MFN if unmapped). */
unsigned long sim_guest_translate(struct domain *d, uint64_t va);

static inline bool sim_translated(const struct domain *d) { return d->type != SIM_GUEST_PV; }
/* Translated: the frame of @gfn if its p2m entry is the guest's RAM (any
 * RAM type, ioreq included), MS_INVALID_MFN otherwise. */
unsigned long sim_p2m_ram_mfn(const struct domain *d, unsigned long gfn);
/*
 * The frame number @d's guest puts in a grant entry for its page @pfn (PV:
 * the MFN from its own P2M; translated: the gfn), and the frame a grant
 * entry's @frame names (translated: through Xen's p2m).
 */
unsigned long sim_guest_frame_ref(struct domain *d, unsigned long pfn);
unsigned long sim_grant_frame_mfn(const struct domain *d, unsigned long frame);

/*
 * Log-dirty (paging_mark_dirty(): the bit of the pfn the M2P names for the
 * frame written; nothing when log-dirty is off or the M2P names no pfn of
 * @d). enable: -EBUSY already on, -EOPNOTSUPP PV without shadow paging;
 * translated RAM entries become write-protected (p2m_ram_logdirty).
 */
void sim_paging_mark_dirty(struct domain *d, unsigned long mfn);
void sim_paging_mark_pfn_dirty(struct domain *d, unsigned long pfn);
int  sim_logdirty_enable(struct domain *d, bool engine);
void sim_logdirty_disable(struct domain *d);

/*
 * A guest's layout as both builders lay it out (the PV one in guest.c, the
 * translated one in hvm.c): roles handed out from its RAM pfns in order,
 * and the page tables every guest has - the direct map of its memory at
 * PAGE_OFFSET, the kernel image, per address space a user half mapping
 * SIM_USER_PAGES pages. A PV guest's PTEs name frames (its P2M as built), a
 * translated guest's gfns.
 */
struct sim_layout {
    struct domain *d;
    const uint64_t *p2m;                /* PV: pfn -> frame as built; NULL: Xen's p2m */
    unsigned long *ram;                 /* RAM pfns in order */
    unsigned long nr_ram, next;         /* role cursor */
    unsigned long ul3[SIM_MAX_AS], ul2[SIM_MAX_AS], ul1[SIM_MAX_AS];
    unsigned long dl3, *dl2, *dl1, n2, n1;  /* the direct map */
    unsigned long kimg_l3;
};
/* The next RAM pfn, given @role (MS_INVALID_MFN when none is left). */
unsigned long sim_layout_take(struct sim_layout *l, enum sim_pfn_role role);
unsigned long sim_layout_mfn(const struct sim_layout *l, unsigned long pfn);
uint64_t *sim_layout_page(const struct sim_layout *l, unsigned long pfn);
/* A PTE of the guest's naming its page @pfn. */
uint64_t sim_layout_pte(const struct sim_layout *l, unsigned long pfn, uint64_t flags);
/* Roles: the direct map's tables (0 or -ENOMEM), the address spaces
 * (@user_l4: 64-bit PV's separate user L4s), the device rings and buffers. */
int  sim_layout_take_direct_map(struct sim_layout *l);
void sim_layout_take_spaces(struct sim_layout *l, bool user_l4);
void sim_layout_take_devices(struct sim_layout *l);
/* Every pfn without a role becomes data; data and user pages filled, others zeroed. */
void sim_layout_fill(struct sim_layout *l);
/* The direct map of every pfn with a role (@ro: those a PV guest may not
 * write: its tables and GDT), and the kernel image through its first L2. */
void sim_layout_write_direct_map(struct sim_layout *l, bool ro);
/* Address space @a's user half, named from its L4s (@ul4 may be NULL). */
void sim_layout_write_user_half(struct sim_layout *l, unsigned int a, uint64_t *kl4, uint64_t *ul4);
void sim_layout_free(struct sim_layout *l);

/* ---- hvm.c -------------------------------------------------------------- */

int  sim_hvm_build(struct domain *d, const struct sim_guest_config *cfg);
void sim_hvm_teardown(struct domain *d);
/* Translated: walk the guest's tables (gfns) from vCPU 0's CR3; the frame
 * and whether a write is allowed by the PTEs; MS_INVALID_MFN if unmapped. */
unsigned long sim_hvm_walk(struct domain *d, uint64_t va, unsigned long *gfn, bool *rw);

/* ---- actors.c ----------------------------------------------------------- */

void sim_actors_connect(struct domain *d);
void sim_actors_disconnect(struct domain *d);
void sim_xen_write_vcpu_info(struct vcpu *v, bool deliver_event);
/* The guest writes word 1 of data page @pfn through its own tables (recorded). */
bool sim_guest_touch_pfn(struct domain *d, unsigned long pfn);
void sim_fork_init(struct domain *d);
/* The guest's direct map PTE of @pfn made read-only or writable again
 * (xen_pin_page / xen_unpin_page do this through update_va_mapping). */
int sim_guest_directmap_rw(struct domain *d, unsigned long pfn, bool rw);

/* ---- glue.c / swap.c ---------------------------------------------------- */

extern const struct sim_swap_opts *sim_swap_cur_opts;
extern struct memswap_ctx *sim_swap_cur_ctx;
extern uint64_t sim_swap_checks, sim_swap_allocs;
extern uint64_t sim_swap_prepares, sim_swap_dirty_reads, sim_swap_last_yield_ns;
extern uint64_t sim_swap_meta_bytes, sim_swap_meta_peak;   /* ms_host_zalloc'd now, at most */

#endif /* SIM_INTERNAL_H */
