/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The simulator's rendering of Xen 4.17's x86 frame-table vocabulary.
 *
 * core/ is written against these names (see core/private.h); in the
 * hypervisor they come from xen/include and asm-x86/mm.h. Bit positions
 * follow Xen 4.17's x86 layout so that values printed by the simulator read
 * like those in `xl dmesg` (e.g. caf=8000000000000002: PGC_allocated and two
 * references). As in 4.17's asm/mm.h: count_info has PGC_allocated (63),
 * PGC_xen_heap (62), PGC_page_table (61), PGC_broken (60), the page state
 * (59-58), PGC_extra (57) and the count below; type_info has the type
 * (63-61), PGT_locked, _pinned, _validated, _pae_xen_l2, _partial,
 * PGT_non_coherent (55, XSA-402) and the type count below.
 */
#ifndef SIM_XEN_COMPAT_H
#define SIM_XEN_COMPAT_H

#include <stdbool.h>
#include <stdint.h>

#define PAGE_SHIFT          12
#define PAGE_SIZE           4096UL
#define BITS_PER_LONG       64

#define PG_shift(idx)       (BITS_PER_LONG - (idx))
#define PG_mask(x, idx)     ((unsigned long)(x) << PG_shift(idx))

/* type_info: the page's current type and its type reference count. */
#define PGT_none            PG_mask(0, 3)
#define PGT_l1_page_table   PG_mask(1, 3)
#define PGT_l2_page_table   PG_mask(2, 3)
#define PGT_l3_page_table   PG_mask(3, 3)
#define PGT_l4_page_table   PG_mask(4, 3)
#define PGT_seg_desc_page   PG_mask(5, 3)
#define PGT_shared_page     PG_mask(6, 3)
#define PGT_writable_page   PG_mask(7, 3)
#define PGT_type_mask       PG_mask(7, 3)
#define _PGT_locked         PG_shift(4)
#define PGT_locked          PG_mask(1, 4)
#define _PGT_pinned         PG_shift(5)
#define PGT_pinned          PG_mask(1, 5)
#define _PGT_validated      PG_shift(6)
#define PGT_validated       PG_mask(1, 6)
#define _PGT_pae_xen_l2     PG_shift(7)
#define PGT_pae_xen_l2      PG_mask(1, 7)
#define _PGT_partial        PG_shift(8)
#define PGT_partial         PG_mask(1, 8)
/* Mapped writable with a non-coherent memory type (XSA-402): flush before reuse. */
#define _PGT_non_coherent   PG_shift(9)
#define PGT_non_coherent    PG_mask(1, 9)
#define PGT_count_width     PG_shift(9)
#define PGT_count_mask      ((1UL << PGT_count_width) - 1)

/* count_info: flags and the general reference count. */
#define _PGC_allocated      PG_shift(1)
#define PGC_allocated       PG_mask(1, 1)
#define _PGC_xen_heap       PG_shift(2)
#define PGC_xen_heap        PG_mask(1, 2)
#define _PGC_page_table     PG_shift(3)
#define PGC_page_table      PG_mask(1, 3)
#define _PGC_broken         PG_shift(4)
#define PGC_broken          PG_mask(1, 4)
#define PGC_state           PG_mask(3, 6)
#define PGC_state_inuse     PG_mask(0, 6)
#define PGC_state_offlining PG_mask(1, 6)
#define PGC_state_offlined  PG_mask(2, 6)
#define PGC_state_free      PG_mask(3, 6)
#define page_state_is(pg, st) (((pg)->count_info & PGC_state) == PGC_state_##st)
#define _PGC_extra          PG_shift(7)
#define PGC_extra           PG_mask(1, 7)
#define PGC_count_width     PG_shift(7)
#define PGC_count_mask      ((1UL << PGC_count_width) - 1)

#define INVALID_M2P_ENTRY   (~0UL)

struct domain;   /* sim/sim_internal.h */
struct vcpu;

struct page_info {
    unsigned long count_info;
    union {
        struct { unsigned long type_info; } inuse;
        struct { unsigned int order; } free;
    } u;
    struct domain *owner;
    /* Simulator bookkeeping: intrusive list links (domain page list / heap). */
    uint32_t list_next, list_prev;
    uint32_t heap_bucket;      /* free list index (node, colour) when free */
    uint32_t linear_entries;   /* Xen's linear_pt_count analogue (unused by core) */
};

static inline struct domain *page_get_owner(const struct page_info *pg)
{
    return pg->owner;
}

/* The machine: frame table, RAM and M2P (sim/host.c). */
extern struct page_info *sim_frame_table;
extern unsigned char *sim_ram;          /* machine frame n at sim_ram + n*4096 */
extern unsigned long *sim_m2p;
extern unsigned long sim_nr_frames;

static inline bool sim_mfn_valid(unsigned long mfn) { return mfn < sim_nr_frames; }
static inline struct page_info *sim_mfn_to_page(unsigned long mfn) { return &sim_frame_table[mfn]; }
static inline unsigned long sim_page_to_mfn(const struct page_info *pg)
{
    return (unsigned long)(pg - sim_frame_table);
}
static inline void *sim_map_frame(unsigned long mfn) { return sim_ram + (mfn << PAGE_SHIFT); }
static inline unsigned long sim_m2p_get(unsigned long mfn) { return sim_m2p[mfn]; }
static inline void sim_m2p_set(unsigned long mfn, unsigned long pfn) { sim_m2p[mfn] = pfn; }

/* Diagnostics (stderr when SIM_VERBOSE is set, otherwise dropped). */
void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* SIM_XEN_COMPAT_H */
