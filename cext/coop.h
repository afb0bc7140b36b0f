/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The swap sequence every backend runs, without Python and without Xen:
 *
 *  1. refusals (ms_swap_refusal): what must never be swapped, decided from
 *     facts the backend gathered before touching the domain;
 *  2. the sequence (ms_coop_run): preflight, suspend the guest if the swap
 *     is cooperative, swap, always resume what was suspended, and retry a
 *     swap the engine refused with EAGAIN (a page table under construction,
 *     a reference taken during the swap, a translated guest that gained
 *     frames) after a wait that doubles up to a cap.
 *
 * Two kinds of guest, one sequence. A PV guest's page tables hold machine
 * frames the guest may be rewriting where Xen cannot see them, so the
 * product suspends it around a stop-and-copy swap (cooperative), or, in
 * live mode, only for the final stop: the hypervisor pre-copies while the
 * guest runs and holds the swap (F_HOLD), the guest is suspended, and the
 * held swap is finished (its final stop and commit) before the guest is
 * resumed. A translated guest (HVM, PVH) never sees machine frames: the
 * hypervisor moves them behind its p2m without the guest's help, so it is
 * never suspended - Xen pauses it itself, for the whole copy (stop mode)
 * or only for the final stop after pre-copy rounds under log-dirty (live
 * mode, the LIVE flag in the backend's request).
 *
 * Backends provide the steps as ms_coop_ops: the Xen one (cext/xen/coop.c:
 * hypercalls and xenstore) and the simulated one (cext/sim/coop.c). The
 * policy (retries, waits) comes from the caller, i.e. from Python.
 */
#ifndef MEMSWAP_COOP_H
#define MEMSWAP_COOP_H

#include <stddef.h>

/* ---- refusals ------------------------------------------------------------ */

/*
 * What a backend learnt about a domain before deciding to touch it. A
 * refusal is decided before anything is written to xenstore, any suspend
 * is requested or the domain is paused.
 */
struct ms_swap_facts {
    unsigned int domid;
    int own_domid;              /* the caller's own domain, -1 if unknown */
    int dry_run_err;            /* errno of the dry-run swap request, 0 if it passed */
    int have_info;              /* the flags below are valid */
    int dying;
    int shutdown;               /* shut down, for any reason (e.g. suspended by xl save) */
    unsigned int shutdown_reason;
    int paused;                 /* paused by someone (the toolstack, an admin) */
    int translated;             /* HVM/PVH: not a PV guest */
    int live;                   /* the request is a live swap */
    const char *pending_request;/* control/shutdown's value: NULL or "" when none */
};

/* The errnos of a refusal: the hypervisor's (dry run) and ours. */
int ms_is_refusal(int err);

/*
 * 0: the domain may be swapped; otherwise the refusal's errno (EACCES the
 * control domain, EDEADLK the caller's own domain, EBUSY shut down, paused,
 * a pending shutdown request, log-dirty mode in use or a swap in progress,
 * ENODEV dying, EOPNOTSUPP a domain the hypervisor cannot swap - a
 * passed-through device, memory sharing/paging/altp2m, 32-bit PV, a live
 * swap of a PV guest on a hypervisor without shadow paging) with a
 * one-line reason in @msg.
 * A dry-run error that is not a refusal (ESRCH, ENOMEM, ...) is not decided
 * here: the caller reports it as the swap's own failure.
 */
int ms_swap_refusal(const struct ms_swap_facts *f, char *msg, size_t len);

/* The failing call a refusal is reported with. */
#define MS_REFUSAL_CALL "swap-preflight"

/* Name of a SHUTDOWN_* reason ("suspend", ...; "reason N" beyond the known). */
const char *ms_shutdown_reason_name(unsigned int reason, char *buf, size_t len);

/* ---- the cooperative sequence -------------------------------------------- */

struct ms_coop_policy {
    int cooperative;            /* suspend a PV guest around the swap (a translated
                                 * guest is never suspended) */
    unsigned int retries;       /* swaps refused with EAGAIN retried this often */
    unsigned int backoff;       /* first wait between attempts, in the backend's unit */
    unsigned int backoff_max;   /* waits double up to this */
};

/*
 * Each step returns 0 or an errno and keeps its own diagnostics in @arg.
 * preflight: decide whether the domain may be swapped (nothing done to it)
 *            with the facts it gathered in @f (translated, live...);
 * suspend:   on failure the domain is left running (or resumed again);
 * swap:      one swap request;
 * swap_held: one live swap request that holds after its pre-copy (the
 *            guest running), calls @at_hold(@ctx) and, if that returns 0,
 *            finishes the swap (final stop, commit); if it returns an
 *            errno, cancels the held swap (nothing changed) and returns
 *            that errno;
 * resume:    on failure the domain is left suspended;
 * wait:      let the guest run for @units (milliseconds, simulator steps).
 */
struct ms_coop_ops {
    int (*preflight)(void *arg, struct ms_swap_facts *f);
    int (*suspend)(void *arg);
    int (*swap)(void *arg);
    int (*swap_held)(void *arg, int (*at_hold)(void *ctx), void *ctx);
    int (*resume)(void *arg);
    void (*wait)(void *arg, unsigned int units);
};

enum ms_coop_stage { MS_COOP_DONE, MS_COOP_PREFLIGHT, MS_COOP_SUSPEND, MS_COOP_SWAP,
                     MS_COOP_RESUME };

struct ms_coop_outcome {
    int err;                    /* 0, or the errno of the failing stage */
    enum ms_coop_stage stage;   /* MS_COOP_DONE on success */
    int swap_err;               /* the swap's errno (0: it succeeded) when the resume failed */
    unsigned int retries;       /* EAGAIN retries made */
    unsigned int attempts;      /* swap requests issued */
    int suspended;              /* the last swap ran with the guest suspended */
    int translated;             /* the domain is HVM/PVH (never suspended) */
};

/*
 * For each attempt: preflight; then, for a PV guest swapped cooperatively,
 * suspend, swap, resume - or, live, a held swap with the suspend at its
 * hold; otherwise (a translated guest, or not cooperative) one swap. What
 * was suspended is always resumed, whatever the swap did. A swap refused with
 * EAGAIN is retried up to policy->retries times after waiting
 * min(backoff << n, backoff_max). Returns 0 or the failing errno (also in
 * @o->err, with the stage).
 */
int ms_coop_run(const struct ms_coop_ops *ops, void *arg,
                const struct ms_coop_policy *policy, struct ms_coop_outcome *o);

/* The wait before retry @n (0-based): min(backoff << n, backoff_max). */
unsigned int ms_coop_backoff(const struct ms_coop_policy *policy, unsigned int n);

#endif /* MEMSWAP_COOP_H */
