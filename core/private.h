/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the swap engine needs from its host, split on __XEN__.
 *
 * core/memswap.c is compiled twice: into the hypervisor (by the patch
 * series, with __XEN__ defined) and into the simulator (sim/). It speaks
 * Xen's own vocabulary - struct page_info with count_info and
 * u.inuse.type_info, PGC_* and PGT_* bits, the M2P - so that the code reads
 * as hypervisor code. The hot accessors below are inline on both sides;
 * the operations that differ in substance between Xen and the simulator
 * (allocation by colour, re-pointing vCPU state, grant scans, pausing) are
 * the ms_host_*() functions, implemented by xen/common/memswap-glue.c in the
 * patched tree and by sim/glue.c in the simulator.
 *
 * Calling context, for every ms_host_*() below unless it says otherwise:
 * the engine runs inside XEN_DOMCTL_memswap (or domain_kill()), with
 * domctl_lock held and an RCU reference on @d, never in interrupt context,
 * never holding a lock of its own across a call. It calls
 * ms_host_preempt_check() between pieces of bounded work and returns to the
 * glue when it says so; the glue's continuation re-enters memswap_run().
 * Between two entries the domain may run (live pre-copy, a held swap) or
 * stay paused (the engine's pause is only dropped by ms_host_unpause()).
 *
 * The operations fall in four groups: domain facts and control; the PV
 * guest's own structures (shared_info's P2M registration, vCPU page-table
 * roots and GDT frames, Xen's L4 slots); the translated guest's p2m (Xen's:
 * look up, replace); and what both share (vcpu_info, grants, frames Xen
 * maps, references, freezing, the transfer of a frame, log-dirty, TLBs,
 * allocation).
 *
 * When the domain may be running. The engine pauses a stop-and-copy swap
 * at its start and a live one for its final stop only, and unpauses before
 * FREE. With the domain running it calls: the domain facts and
 * ms_host_check_domain(), the getters (P2M registration, vCPU holders,
 * grants, frames Xen maps, p2m lookups), references, allocation, log-dirty,
 * ms_host_release_frame()/ms_host_flush_cache() (FREE), and - translated
 * only, in live mode - p2m batches with their freeze, replace, transfer and
 * thaw. Only with the domain paused by the engine: the vCPU setters and
 * ms_host_vcpu_move_vcpu_info(), ms_host_set_p2m_info(), the PV freeze and
 * transfer of frames, ms_host_flush_tlbs(). memswap_query_size() and
 * memswap_query_range() run without a swap context, the domain in any
 * state, and only read (P2M registration and frames, p2m lookups, frame
 * owners, the M2P, ms_host_mfn_node()).
 */
#ifndef MEMSWAP_PRIVATE_H
#define MEMSWAP_PRIVATE_H

#ifdef __XEN__

#include <xen/errno.h>
#include <xen/lib.h>
#include <xen/mm.h>
#include <xen/sched.h>
#include <xen/domain_page.h>
#include <xen/prefetch.h>
#include <asm/page.h>

typedef uint64_t ms_pte_t;
#define MS_INVALID_MFN      (~0UL)
#define MS_INVALID_PFN      (~0UL)

static inline bool ms_mfn_valid(unsigned long mfn) { return mfn_valid(_mfn(mfn)); }
static inline struct page_info *ms_page(unsigned long mfn) { return mfn_to_page(_mfn(mfn)); }
static inline unsigned long ms_page_mfn(const struct page_info *pg) { return mfn_x(page_to_mfn(pg)); }
static inline struct domain *ms_page_owner(const struct page_info *pg) { return page_get_owner(pg); }
static inline void *ms_map(unsigned long mfn) { return map_domain_page(_mfn(mfn)); }
static inline void ms_unmap(const void *p) { unmap_domain_page(p); }
static inline unsigned long ms_m2p_get(unsigned long mfn) { return get_gpfn_from_mfn(mfn); }
static inline void ms_m2p_set(unsigned long mfn, unsigned long pfn) { set_gpfn_from_mfn(mfn, pfn); }
/* Up to MS_COPY_BATCH pages at once (see the simulator's side). */
static inline void ms_copy_pages(void *const *dst, const void *const *src, unsigned int n)
{
    unsigned int i;

    for ( i = 0; i < n; i++ )
        copy_page(dst[i], src[i]);
}
/* copy_page_sse2() ends with its own sfence. */
static inline void ms_copy_sync(void) { }
static inline void ms_prefetch_frame(unsigned long mfn)
{
    prefetch(mfn_to_page(_mfn(mfn)));
    prefetch(&machine_to_phys_mapping[mfn]);
}
#define ms_memset memset
#define ms_memcpy memcpy
#define ms_memcmp memcmp
/* Frame-number bits of a PTE (Xen's PADDR_MASK also covers the flag bits). */
#define MS_PADDR_MASK       (PADDR_MASK & PAGE_MASK)
#define ms_log(fmt, ...)    gdprintk(XENLOG_INFO, "memswap: " fmt, ## __VA_ARGS__)

#else /* !__XEN__: the simulator */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include "../sim/xen_compat.h"   /* page_info, PGC_/PGT_, frame table, M2P */

typedef uint64_t ms_pte_t;
#define MS_INVALID_MFN      (~0UL)
#define MS_INVALID_PFN      (~0UL)

static inline bool ms_mfn_valid(unsigned long mfn) { return sim_mfn_valid(mfn); }
static inline struct page_info *ms_page(unsigned long mfn) { return sim_mfn_to_page(mfn); }
static inline unsigned long ms_page_mfn(const struct page_info *pg) { return sim_page_to_mfn(pg); }
static inline struct domain *ms_page_owner(const struct page_info *pg) { return page_get_owner(pg); }
static inline void *ms_map(unsigned long mfn) { return sim_map_frame(mfn); }
static inline void ms_unmap(const void *p) { (void)p; }
static inline unsigned long ms_m2p_get(unsigned long mfn) { return sim_m2p_get(mfn); }
static inline void ms_prefetch_frame(unsigned long mfn)
{
    __builtin_prefetch(sim_mfn_to_page(mfn));
    __builtin_prefetch(&sim_m2p[mfn]);
}
static inline void ms_m2p_set(unsigned long mfn, unsigned long pfn) { sim_m2p_set(mfn, pfn); }
/*
 * Like Xen's copy_page() (movnti): non-temporal stores, so that copying a
 * domain does not evict everyone's cache lines and skips the
 * read-for-ownership of the destination.
 */
#include <emmintrin.h>
static inline void ms_copy_line(__m128i *d, const __m128i *s)
{
    __m128i a = _mm_load_si128(s), b = _mm_load_si128(s + 1);
    __m128i c = _mm_load_si128(s + 2), e = _mm_load_si128(s + 3);

    _mm_stream_si128(d, a);
    _mm_stream_si128(d + 1, b);
    _mm_stream_si128(d + 2, c);
    _mm_stream_si128(d + 3, e);
}

/*
 * Up to MS_COPY_BATCH pages at once, a line of each in turn, as glibc's
 * memcpy does for large copies: one stream per page keeps several DRAM
 * pages open at a time, where page after page leaves the memory system
 * waiting on each page's first lines. No fence per batch: a fence waits
 * for the write-combining buffers to drain, and one per batch of pages
 * cost 8% of the copy rate here. The engine calls ms_copy_sync() before
 * anything relies on the copies being visible to another CPU.
 */
static inline void ms_copy_pages(void *const *dst, const void *const *src, unsigned int n)
{
    unsigned int i, p;

    for ( i = 0; i < 4096 / 16; i += 4 )
        for ( p = 0; p < n; p++ )
            ms_copy_line((__m128i *)dst[p] + i, (const __m128i *)src[p] + i);
}
static inline void ms_copy_sync(void) { _mm_sfence(); }
#define ms_memset memset
#define ms_memcpy memcpy
#define ms_memcmp memcmp
#define MS_PADDR_MASK       0x000ffffffffff000ULL
#define ms_log(fmt, ...)    sim_log("memswap: " fmt, ## __VA_ARGS__)

#endif /* __XEN__ */

/* Pages ms_copy_pages() takes at once. */
#define MS_COPY_BATCH       4

/* x86-64 PTE bits the engine looks at (identical in Xen and the simulator). */
#define MS_PAGE_PRESENT     0x001ULL
#define MS_PAGE_RW          0x002ULL
#define MS_PAGE_PSE         0x080ULL
#define MS_PTES_PER_PAGE    512

/* Linux PV P2M entry markers (arch/x86/include/asm/xen/page.h). */
#define MS_P2M_FOREIGN_BIT  (1ULL << 63)
#define MS_P2M_IDENTITY_BIT (1ULL << 62)
#define MS_P2M_INVALID      (~0ULL)
#define MS_P2M_PER_PAGE     512         /* 8-byte entries */

/* ------------------------------------------------------------------------
 * Host operations. Every function is implemented on both sides. "d" is the
 * domain being swapped; "v" one of its vCPUs.
 */
struct domain;
struct vcpu;
struct memswap_request;

/* Memory for the engine's context (zeroed), and its release. */
void *ms_host_zalloc(size_t bytes);
void ms_host_free(void *p, size_t bytes);

/* Monotonic time in ns, for phase timing and the pause figure. */
uint64_t ms_host_now_ns(void);

/* Preemption: true when the engine should save progress and return. */
bool ms_host_preempt_check(void);

/* Domain facts and control. */
unsigned int ms_host_domid(const struct domain *d);
unsigned long ms_host_tot_pages(const struct domain *d);
/*
 * Pause and unpause (domain_pause()/domain_unpause()): the engine pairs
 * them; the glue keeps a record so that domain destruction can undo a pause
 * left behind. On return from ms_host_pause() no vCPU of @d runs.
 */
void ms_host_pause(struct domain *d);
void ms_host_unpause(struct domain *d);

/*
 * A translated guest (HVM, PVH): Xen's p2m maps its gfns, its page tables
 * hold gfns, its grant entries hold gfns. Fixed for the life of @d.
 */
bool ms_host_translated(const struct domain *d);

/* flags of ms_host_check_domain() */
#define MS_CHECK_LOGDIRTY       (1u << 0)  /* the swap needs log-dirty (live, or translated) */
#define MS_CHECK_LOGDIRTY_OURS  (1u << 1)  /* the engine has it on for this swap */

/*
 * -errno if @d may not be swapped, 0 otherwise. Changes nothing. Asked by
 * memswap_begin() and again on every entry before the point of no return
 * (the answer can change while the swap waits between two of them; the
 * engine rolls back with the errno). In this order:
 *  -EACCES      the control or hardware domain;
 *  -EDEADLK     the caller's own domain;
 *  -ENODEV      dying;
 *  -EOPNOTSUPP  32-bit PV; translated without HAP (shadow-paged HVM) or
 *               with nested virtualisation; memory sharing, memory paging
 *               or altp2m in use; a device passed through (is_iommu_enabled:
 *               DMA by frame number would miss the move); with
 *               MS_CHECK_LOGDIRTY, a domain that cannot have log-dirty (PV
 *               on a hypervisor without CONFIG_SHADOW_PAGING);
 *  -EBUSY       log-dirty (or, for PV, any paging mode) on while the engine
 *               does not own it (a save, a migration, VRAM tracking); with
 *               MS_CHECK_LOGDIRTY_OURS, log-dirty no longer on (someone
 *               turned ours off: the dirty log cannot be trusted).
 */
int ms_host_check_domain(struct domain *d, unsigned int flags);

/* ---- PV guests ------------------------------------------------------------
 *
 * Guest P2M registration from shared_info: MFN of the frame-list-list,
 * p2m_cr3 (a CR3 value: mfn << 12, 0 if unset) and max_pfn. And their update
 * at commit (shared_info is a Xen page: it never moves).
 */
void ms_host_p2m_info(struct domain *d, unsigned long *fll_mfn,
                      uint64_t *p2m_cr3, unsigned long *max_pfn);
void ms_host_set_p2m_info(struct domain *d, unsigned long fll_mfn,
                          uint64_t p2m_cr3);

/* ---- vCPUs (both kinds) ------------------------------------------------------
 * Iterate by index (0..max-1; NULL for holes). */
unsigned int ms_host_max_vcpus(const struct domain *d);
struct vcpu *ms_host_vcpu(struct domain *d, unsigned int i);

/*
 * MFNs a vCPU holds references on (MS_INVALID_MFN when unset):
 * guest_table, guest_table_user, the page holding its vcpu_info (only when
 * registered in guest RAM: VCPUOP_register_vcpu_info, by MFN for PV, by gfn
 * for a translated guest; one general and one PGT_writable_page type
 * reference each), GDT frames (up to *nr, returns how many). A translated
 * guest's vCPU holds no guest frame through guest_table, guest_table_user
 * or the GDT (MS_INVALID_MFN, 0 frames): only vcpu_info.
 */
unsigned long ms_host_vcpu_guest_table(const struct vcpu *v);
unsigned long ms_host_vcpu_guest_table_user(const struct vcpu *v);
unsigned long ms_host_vcpu_info_mfn(const struct vcpu *v);
unsigned int ms_host_vcpu_gdt_frames(const struct vcpu *v, unsigned long *mfns,
                                     unsigned int max);

/*
 * Re-point a vCPU at its new frames (commit, domain paused). The references
 * these holders own were carried over with the page counts; only pointers
 * and mappings change. Re-pointing vcpu_info copies it again from the old
 * frame (Xen writes it through its own mapping, paused or not, and such
 * writes are not logged in log-dirty mode) and marks all events pending so
 * the guest rescans anything delivered in between; for both kinds (the
 * frame of a translated guest's vcpu_info has moved in its p2m already).
 * set_guest_tables and set_gdt_frame are PV only.
 */
void ms_host_vcpu_set_guest_tables(struct vcpu *v, unsigned long kernel_mfn,
                                   unsigned long user_mfn);
void ms_host_vcpu_move_vcpu_info(struct vcpu *v, unsigned long old_mfn,
                                 unsigned long new_mfn);
void ms_host_vcpu_set_gdt_frame(struct vcpu *v, unsigned int i,
                                unsigned long new_mfn);

/*
 * Grants. PV: every frame a grant entry of @d permits access to (v1 frames
 * are MFNs) or an active grant pins. Translated: only the frames active
 * grants pin (act->mfn of entries with pins): a shared entry names a gfn,
 * which follows the p2m, and a grant copy or map takes its reference
 * through the p2m (get_page_from_gfn(), under the p2m lock the commit of a
 * frame holds). fn(arg, mfn) for each; under the grant table's read lock.
 */
void ms_host_grant_frames(struct domain *d,
                          void (*fn)(void *arg, unsigned long mfn), void *arg);

/*
 * Frames of @d that Xen maps for the guest and keeps mapped, other than
 * vcpu_info (which the engine re-points): the FIFO event-channel control
 * block of each vCPU and the event-array pages (map_guest_page():
 * domain_page_map_to_mfn() of their global mappings), the vPMU page
 * (XENPMU_init), the pages of legacy ioreq servers mapped by gfn
 * (hvm_map_ioreq_gfn). They stay where they are (MEMSWAP_KEPT_XEN): Xen
 * writes them through its own mappings at any time, unlogged. fn(arg, mfn)
 * for each, under d->event_lock (and whatever else keeps the list stable);
 * for both kinds.
 */
void ms_host_xen_mapped_frames(struct domain *d,
                               void (*fn)(void *arg, unsigned long mfn), void *arg);

/*
 * Xen's reserved L4 slots: whether slot i of a guest L4 belongs to the
 * guest, and writing Xen's entries (including the linear-pagetable slot,
 * which maps the L4 itself) into a new L4 at @l4_mfn.
 */
bool ms_host_is_guest_l4_slot(const struct domain *d, unsigned int i);
void ms_host_init_xen_l4_slots(struct domain *d, ms_pte_t *l4,
                               unsigned long l4_mfn);

/* ---- Translated guests: Xen's p2m ---------------------------------------------
 *
 * The engine classifies each p2m entry by these kinds (from p2m_type_t).
 */
enum ms_p2m_type {
    MS_P2MT_NONE = 0,   /* no frame: p2m_invalid, p2m_populate_on_demand */
    MS_P2MT_RAM,        /* p2m_ram_rw, p2m_ram_logdirty: ordinary RAM, may move */
    MS_P2MT_RAM_RO,     /* p2m_ram_ro: may move, stays read-only */
    MS_P2MT_GRANT,      /* p2m_grant_map_rw/_ro: another domain's frame */
    MS_P2MT_FOREIGN,    /* p2m_map_foreign: another domain's frame */
    MS_P2MT_MMIO,       /* p2m_mmio_direct, p2m_mmio_dm: not RAM */
    MS_P2MT_IOREQ,      /* p2m_ioreq_server: an ioreq server sees its writes: stays */
    MS_P2MT_SHARED,     /* p2m_ram_shared: stays */
    MS_P2MT_PAGED,      /* p2m_ram_paging_out, _paged, _paging_in: stays */
    MS_P2MT_BROKEN,     /* p2m_ram_broken: stays */
};

/*
 * One past the highest gfn the p2m maps (p2m->max_mapped_pfn + 1), read at
 * the start of a walk. Gfns populated beyond it later are not swapped.
 */
unsigned long ms_host_p2m_size(struct domain *d);

/*
 * The entries of gfns [gfn, gfn + nr), nr <= MS_P2M_LOOKUP_MAX: mfns[i]
 * (MS_INVALID_MFN where the entry has no frame) and types[i] (enum
 * ms_p2m_type). Under the p2m read lock, no reference taken, nothing
 * populated, unshared or paged in (get_gfn_query_unlocked() semantics).
 * The domain may be running: the answer is a snapshot, the engine checks
 * frames again before it commits them.
 */
#define MS_P2M_LOOKUP_MAX   512
void ms_host_p2m_lookup(struct domain *d, unsigned long gfn, unsigned int nr,
                        unsigned long *mfns, uint8_t *types);

/*
 * Make the entries of gfns [gfn, gfn + nr), nr <= MS_P2M_LOOKUP_MAX,
 * replaceable one 4K frame at a time without allocating: a superpage entry
 * is split into 4K entries of the same frames, type and access
 * (p2m_set_entry() at order 0 does it; the split may need p2m pages).
 * Called in ALLOC, before the point of no return, for the gfns whose frames
 * move, possibly with the domain running. 0 or -ENOMEM (the swap rolls
 * back; what was split stays split, which the guest cannot observe).
 */
int ms_host_p2m_prepare(struct domain *d, unsigned long gfn, unsigned int nr);

/*
 * A batch of p2m replacements. batch_begin takes the p2m write lock (and
 * defers the flushes p2m updates need); inside a batch the engine commits
 * up to MS_P2M_BATCH frames, each with ms_host_freeze_frame(),
 * ms_m2p_set(new, gfn), ms_host_p2m_replace(), ms_host_transfer_frame()
 * and ms_host_thaw_frame() (and, in the final stop, ms_copy_page()); it
 * never pauses, yields or calls anything else inside a batch. The lock
 * order is p2m lock, then d->page_alloc_lock (taken by transfer), as in
 * Xen's own p2m code. batch_end must, before it drops the p2m lock,
 * invalidate every translation of @d's guest-physical addresses any CPU
 * may have cached (guest TLBs - VPID/ASID - and EPT/NPT paging-structure
 * caches on every CPU in d->dirty_cpumask, e.g. p2m_tlb_flush_sync()):
 * while the domain runs, a vCPU's next write to a replaced gfn faults and
 * waits for the p2m lock, and no vCPU may still read the old frame once
 * another has written the new one.
 */
#define MS_P2M_BATCH        64
void ms_host_p2m_batch_begin(struct domain *d);
void ms_host_p2m_batch_end(struct domain *d);

/*
 * Inside a batch: replace the entry of @gfn, which must still map @old_mfn
 * with a RAM kind (MS_P2MT_RAM or MS_P2MT_RAM_RO), by @new_mfn, keeping
 * the entry's type (p2m_ram_logdirty stays p2m_ram_logdirty, so the next
 * write is logged, through the M2P entry of @new_mfn that the engine set
 * first) and access rights, at order 4K (ms_host_p2m_prepare() split it
 * already; should it still need memory: -ENOMEM, nothing changed, and the
 * frame stays where it is). With
 * @if_clean, only if @gfn was not written since the last
 * ms_host_logdirty_read(clear) of its range: its dirty bit is clear and
 * (HAP) its type is still p2m_ram_logdirty, i.e. a vCPU's write would have
 * faulted into the p2m lock we hold. Returns 0; -EAGAIN written since
 * (nothing changed); -ENOENT the entry no longer maps @old_mfn with a RAM
 * type (nothing changed); -ENOMEM. Takes and drops no page references: the
 * engine transfers the frame.
 */
int ms_host_p2m_replace(struct domain *d, unsigned long gfn,
                        unsigned long old_mfn, unsigned long new_mfn,
                        bool if_clean);

/* ---- Log-dirty (live mode for both kinds; every translated swap) ------------
 *
 * ms_host_logdirty_enable(): turn log-dirty on for @d, as
 * XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY would (paging_log_dirty_enable(d,
 * true): HAP write-protects the p2m, PV turns shadow paging on), clearing
 * the log. 0, -EBUSY already on (someone else's), -EOPNOTSUPP not possible
 * for @d, -ENOMEM. While the engine has it on (until
 * ms_host_logdirty_disable(), which the engine calls before every way out:
 * done, rollback, cancel, domain destruction), the glue refuses every other
 * log-dirty operation on @d with -EBUSY (XEN_DOMCTL_shadow_op's log-dirty
 * ops, XEN_DMOP_track_dirty_vram): another reader clearing the log would
 * hide writes from the engine.
 *
 * ms_host_logdirty_read(): the dirty bits of pfns [first, first + nr)
 * (first and nr multiples of 64, nr <= MS_LOGDIRTY_CHUNK; pfns the domain
 * does not have read as clean) into @bitmap (bit i of word i / 64 for pfn
 * first + i); returns how many are set, or -EINVAL if log-dirty is not on.
 * A write is logged (paging_mark_dirty(), through the M2P entry of the
 * frame written) by a vCPU's store and by grant copies, writable grant
 * unmaps, descriptor and page-table updates, MMU_MACHPHYS_UPDATE and
 * XEN_DMOP_modified_memory; not by Xen's own writes through its global
 * mappings (vcpu_info, the frames of ms_host_xen_mapped_frames()).
 * With @clear, the bits read are cleared and every page whose bit was set
 * is write-protected again (HAP: p2m_ram_rw -> p2m_ram_logdirty; shadow:
 * its writable mappings removed) with the flush of stale writable
 * translations done before returning, so that any write after the return
 * is logged again. Without @clear, nothing changes.
 */
#define MS_LOGDIRTY_CHUNK   32768
int ms_host_logdirty_enable(struct domain *d);
void ms_host_logdirty_disable(struct domain *d);
long ms_host_logdirty_read(struct domain *d, unsigned long first, unsigned long nr,
                           uint64_t *bitmap, bool clear);

/* ---- Target frames, references, the commit of a frame (both kinds) ----------
 *
 * Target frames. Free frames usable for @req (colours and node), possibly
 * an estimate in Xen; one anonymous frame for @pfn (the host spreads
 * consecutive pfns over the allowed colours), or MS_INVALID_MFN; and the
 * return of such a frame that was never given to the domain.
 */
unsigned long ms_host_free_frames(struct domain *d,
                                  const struct memswap_request *req);
unsigned long ms_host_alloc_frame(struct domain *d,
                                  const struct memswap_request *req,
                                  unsigned long pfn);
void ms_host_free_frame(unsigned long mfn);

/*
 * References, with get_page()/put_page() semantics: the engine holds one on
 * every frame it indexes, from SCAN until FREE or rollback, so that nothing
 * it looks at can be freed (and reused) under it. get fails on a frame with
 * no references or another owner; the last put frees the frame (after
 * Xen's cleanup of its mappings).
 */
bool ms_host_get_frame(struct domain *d, unsigned long mfn);
void ms_host_put_frame(unsigned long mfn);

/*
 * Freezing, as steal_page() does it: one cmpxchg on count_info that
 * succeeds only if the general count is exactly @count (every reference
 * the plan accounts for, the engine's own included) with PGC_allocated,
 * and leaves count 0 with PGC_allocated clear. Nobody can take a
 * reference to a frame with count 0 (page_get_owner_and_reference()
 * refuses it), and as nobody else holds one, nobody can drop one. Thawing
 * puts @count and PGC_allocated back; it also makes a new frame live after
 * its transfer. Only the count and PGC_allocated change. A PV swap freezes
 * every frame it commits before the commit starts (the domain paused); a
 * translated swap freezes each frame inside its p2m batch, so that a
 * lookup through the p2m waits for the lock instead of failing on it.
 */
bool ms_host_freeze_frame(struct domain *d, unsigned long mfn, unsigned long count);
void ms_host_thaw_frame(struct domain *d, unsigned long mfn, unsigned long count);

/*
 * Commit of one frame (both frozen): @new_mfn takes @old_mfn's place in
 * @d's page list and ownership, with its type word and count_info's flags,
 * still frozen (the engine thaws it with the count). @old_mfn is left
 * disowned, count 0, off every list, its type word cleared but for
 * PGT_non_coherent, for ms_host_release_frame(). tot_pages does not change.
 */
void ms_host_transfer_frame(struct domain *d, unsigned long old_mfn,
                            unsigned long new_mfn);
void ms_host_release_frame(unsigned long mfn);

/*
 * Write back and invalidate the cache lines of a frame (XSA-402: a frame
 * mapped writable with a non-coherent memory type, PGT_non_coherent, may
 * have stale lines; Xen flushes it before it changes use).
 */
void ms_host_flush_cache(unsigned long mfn);

/*
 * Flush every TLB that may hold a translation of @d's (all CPUs that ran
 * it): PV, guest linear translations (and XPTI root tables); translated,
 * guest TLBs (VPID/ASID) and EPT/NPT caches. Called once at the end of a
 * commit, domain paused.
 */
void ms_host_flush_tlbs(struct domain *d);

/* NUMA node of a frame (OP_QUERY's per-node counts). */
unsigned int ms_host_mfn_node(unsigned long mfn);

#endif /* MEMSWAP_PRIVATE_H */
