/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The C tests' yardstick for a swap: docs/DESIGN.md's contract, checked the
 * same way for PV and translated guests, stop-and-copy and live.
 *
 * check_swap() after a successful swap:
 *  - every pfn's bytes read through the guest's own page tables are what
 *    they were (a guest held paused by the test), or, for a guest that ran
 *    during a live swap, every data page holds exactly what its writers
 *    wrote (sim_guest_verify()) and the pages nobody writes - page tables,
 *    the P2M, user pages - are what they were; Xen's vcpu_info writes made
 *    during the swap are visible;
 *  - the audit is clean (counts and types recomputed from scratch, P2M/M2P);
 *  - every moved old frame is free, and free memory is back where it was;
 *  - the kept frames are exactly those someone outside holds, each with its
 *    reason (granted, foreign, Xen's mappings, a p2m type), and nothing is
 *    kept unexplained;
 *  - every new frame is on the requested colours and node.
 * Tests then show the same checker catching broken swaps (mutations).
 */
#ifndef TESTS_SWAP_CHECK_H
#define TESTS_SWAP_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include "sim/sim_internal.h"

#define MiB (1ULL << 20)

extern struct memswap_geometry geom;

/* A fresh host (any previous one destroyed); geom set. 0 or -errno. */
int host(uint64_t ram, unsigned int nodes, uint64_t seed);
/* A guest with devices: PV, or of @type; its domid or -errno. */
int guest(const char *name, uint64_t mem, unsigned int vcpus, unsigned int as, uint64_t seed);
int guest_of_type(unsigned int type, const char *name, uint64_t mem, unsigned int vcpus,
                  unsigned int as, uint64_t seed);
void request(struct memswap_request *req, unsigned int domid);
void set_colour_range(struct memswap_request *req, unsigned int from, unsigned int to);

struct snapshot {
    unsigned int domid;
    unsigned long nr;           /* p2m size */
    unsigned long *mfn;         /* pfn -> mfn before */
    uint64_t *sum;              /* guest-visible checksum per pfn */
    unsigned long free_frames;
    uint64_t tot_pages;
    struct sim_io_stats io;
};
void snapshot_take(struct snapshot *s, unsigned int domid);
void snapshot_free(struct snapshot *s);

/* Why someone outside holds frame @mfn of pfn @pfn (a kept reason), or -1. */
int outside_reason(struct domain *d, unsigned long pfn, unsigned long mfn);
bool is_vcpu_info_pfn(struct domain *d, unsigned long pfn);

#define CHECK_PRINT 1u          /* describe the first violations on stderr */
#define CHECK_LIVE  2u          /* the guest ran during the swap */
/* The contract after a successful swap: the number of violations. */
int check_swap(const struct snapshot *s, const struct memswap_request *req,
               const struct memswap_result *res, unsigned int flags);
/* The guest and its devices keep working for @steps steps: 0 or 1. */
int check_io(unsigned int domid, unsigned int steps);
/* One complete swap of a guest held paused, checked: violations, -1 if it failed. */
int swap_and_check(unsigned int domid, struct memswap_request *req,
                   struct sim_swap_opts *opts, struct memswap_result *res, bool print);
/* One complete live swap of a running (writing) guest, checked likewise. */
int live_swap_and_check(unsigned int domid, struct memswap_request *req,
                        struct sim_swap_opts *opts, struct memswap_result *res, bool print);
/* After a failed swap: everything as it was (0), else the violations. */
int check_unchanged(const struct snapshot *s);
/*
 * A swap that must fail with @want_rc in @want_phase and change nothing:
 * 0, else the violations (a wrong result counts as one).
 */
int swap_fails_unchanged(unsigned int domid, struct memswap_request *req,
                         struct sim_swap_opts *opts, struct memswap_result *res,
                         int want_rc, enum memswap_phase want_phase);

/*
 * Drive a swap as sim_swap() does, calling @at at every continuation with
 * the engine's context (its phase and progress), before the world runs.
 */
typedef void (*at_continuation_fn)(struct memswap_ctx *ctx, void *arg);
int drive(const struct memswap_request *req, const struct sim_swap_opts *o,
          at_continuation_fn at, void *arg, struct memswap_result *res);

#endif /* TESTS_SWAP_CHECK_H */
