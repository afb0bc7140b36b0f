/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The swap sequence (cext/coop.h) on the simulated host: the refusals of
 * contract A as far as the simulator models a host (the control domain,
 * dying, paused or suspended by someone, and what its hypervisor refuses:
 * log-dirty in use, a passed-through device...; the simulator's dom0 is
 * the caller, and it has no xenstore control node), then, for a PV guest
 * swapped cooperatively, suspend, swap with EAGAIN retries, always resume;
 * a translated guest is swapped without its cooperation. Python-free; the caller holds the
 * simulator (one host per process).
 */
#ifndef MEMSWAP_SIM_COOP_H
#define MEMSWAP_SIM_COOP_H

#include "cext/coop.h"
#include "sim/sim.h"

struct ms_sim_swap_op {
    /* in */
    struct memswap_request req;         /* the request (dry run or not) */
    const struct sim_swap_opts *opts;   /* its options (progress, preemption) */
    int cancelled;                      /* set by a progress callback: stop retrying */
    /* out */
    struct memswap_result res;          /* of the last swap or dry-run request */
    int err;                            /* errno of the failing step */
    const char *call;                   /* its name */
    char msg[256];                      /* why ("" for strerror only) */
};

/* Run the sequence; 0 or an errno (s->err, s->call, s->msg, o->stage). */
int ms_sim_swap_run(struct ms_sim_swap_op *s, const struct ms_coop_policy *p,
                    struct ms_coop_outcome *o);

#endif /* MEMSWAP_SIM_COOP_H */
