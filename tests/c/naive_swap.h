/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The seed post's memory switch (S1-S9), reproduced on the simulator as a
 * test fixture: it is what memswap must not be. See tests/c/naive_swap.c.
 */
#ifndef TESTS_NAIVE_SWAP_H
#define TESTS_NAIVE_SWAP_H

#include <stdint.h>

struct naive_result {
    unsigned long nr_pfns;          /* pfns of the P2M (max_pfn) */
    unsigned long moved;            /* frames switched */
    unsigned long pt_pages, p2m_pages, wr_pages;
    unsigned long old_not_freed;    /* S6 could not release these (P2) */
    unsigned long *old_mfn;         /* [nr_pfns] old frame per pfn (or ~0) */
    unsigned long *new_mfn;         /* [nr_pfns] new frame per pfn (or ~0) */
};

/*
 * Run S1-S9 on @domid; @world_steps scheduling steps of the rest of the
 * machine happen between the copy (S3) and the release (S6), as time
 * passes during a real switch. Returns 0 or -errno. Free with naive_free().
 */
int naive_swap(unsigned int domid, unsigned int world_steps, struct naive_result *r);
void naive_free(struct naive_result *r);

#endif /* TESTS_NAIVE_SWAP_H */
