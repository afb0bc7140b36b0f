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
static inline void ms_copy_page(void *dst, const void *src) { copy_page(dst, src); }
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
static inline void ms_copy_page(void *dst, const void *src)
{
    const __m128i *s = src;
    __m128i *d = dst;
    unsigned int i;

    for ( i = 0; i < 4096 / 16; i += 4 )
    {
        __m128i a = _mm_load_si128(s + i), b = _mm_load_si128(s + i + 1);
        __m128i c = _mm_load_si128(s + i + 2), e = _mm_load_si128(s + i + 3);

        _mm_stream_si128(d + i, a);
        _mm_stream_si128(d + i + 1, b);
        _mm_stream_si128(d + i + 2, c);
        _mm_stream_si128(d + i + 3, e);
    }
    _mm_sfence();
}
#define ms_memset memset
#define ms_memcpy memcpy
#define ms_memcmp memcmp
#define MS_PADDR_MASK       0x000ffffffffff000ULL
#define ms_log(fmt, ...)    sim_log("memswap: " fmt, ## __VA_ARGS__)

#endif /* __XEN__ */

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
void ms_host_pause(struct domain *d);
void ms_host_unpause(struct domain *d);
/*
 * -errno if @d may not be swapped (dying, HVM/PVH, control domain, an
 * IOMMU, log-dirty or another paging mode, ...). Asked at the start and
 * again on every continuation before the point of no return: the answer
 * can change while the swap waits between two of them.
 */
int ms_host_check_domain(struct domain *d);

/*
 * Guest P2M registration from shared_info: MFN of the frame-list-list,
 * p2m_cr3 (a CR3 value: mfn << 12, 0 if unset) and max_pfn. And their update
 * at commit (shared_info is a Xen page: it never moves).
 */
void ms_host_p2m_info(struct domain *d, unsigned long *fll_mfn,
                      uint64_t *p2m_cr3, unsigned long *max_pfn);
void ms_host_set_p2m_info(struct domain *d, unsigned long fll_mfn,
                          uint64_t p2m_cr3);

/* vCPUs: iterate by index (0..max-1; NULL for holes). */
unsigned int ms_host_max_vcpus(const struct domain *d);
struct vcpu *ms_host_vcpu(struct domain *d, unsigned int i);

/*
 * MFNs a vCPU holds references on (MS_INVALID_MFN when unset):
 * guest_table, guest_table_user, the page holding its vcpu_info (only when
 * registered in guest RAM), GDT frames (up to *nr, returns how many).
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
 * frame (Xen may have written it during the swap) and marks all events
 * pending so the guest rescans anything delivered in between.
 */
void ms_host_vcpu_set_guest_tables(struct vcpu *v, unsigned long kernel_mfn,
                                   unsigned long user_mfn);
void ms_host_vcpu_move_vcpu_info(struct vcpu *v, unsigned long old_mfn,
                                 unsigned long new_mfn);
void ms_host_vcpu_set_gdt_frame(struct vcpu *v, unsigned int i,
                                unsigned long new_mfn);

/*
 * Every frame a grant entry of @d permits access to (v1 frames are MFNs)
 * or an active grant pins: fn(arg, mfn) for each. Under the grant lock.
 */
void ms_host_grant_frames(struct domain *d,
                          void (*fn)(void *arg, unsigned long mfn), void *arg);

/*
 * Xen's reserved L4 slots: whether slot i of a guest L4 belongs to the
 * guest, and writing Xen's entries (including the linear-pagetable slot,
 * which maps the L4 itself) into a new L4 at @l4_mfn.
 */
bool ms_host_is_guest_l4_slot(const struct domain *d, unsigned int i);
void ms_host_init_xen_l4_slots(struct domain *d, ms_pte_t *l4,
                               unsigned long l4_mfn);

/*
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
 * its transfer. Only the count and PGC_allocated change.
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

/* Flush every TLB that may hold a translation of @d's (all CPUs that ran it). */
void ms_host_flush_tlbs(struct domain *d);

#endif /* MEMSWAP_PRIVATE_H */
