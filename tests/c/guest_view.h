/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What a guest sees, independent of where its memory lives: the C tests'
 * yardstick for "every pfn's bytes are identical after a swap".
 */
#ifndef TESTS_GUEST_VIEW_H
#define TESTS_GUEST_VIEW_H

#include <stdbool.h>
#include <stdint.h>

struct domain;

/* The frame belongs to @d. */
bool guest_owns(struct domain *d, unsigned long mfn);

/*
 * Hash of @pfn's bytes read through the guest's own page tables (0 if it
 * does not translate), with every MFN-bearing word of a PV guest's page
 * table, a page directory Xen does not know, or a P2M frame that names one
 * of the guest's own frames replaced by that frame's pfn (save/restore's
 * canonical form); a translated guest's bytes as they are.
 * Equal before and after a swap iff data was copied and tables and P2M were
 * translated right.
 */
uint64_t guest_canonical_hash(struct domain *d, unsigned long pfn);

/*
 * The first plain data pfn of @d from @from on, and (if @pte_maddr) the
 * machine address of the guest's direct-map L1 entry that maps it.
 */
unsigned long guest_data_pfn(struct domain *d, unsigned long from, uint64_t *pte_maddr);

/* The L1 of @d's first address space that maps its user pages (SIM_GUEST_USER_VA). */
unsigned long guest_user_l1(struct domain *d);

#endif /* TESTS_GUEST_VIEW_H */
