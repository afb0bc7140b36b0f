/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * sim_swap(): the memswap domctl as the hypervisor glue runs it. A
 * preempted memswap_run() becomes a "continuation": the world moves on
 * (Xen, daemons, backends and other guests run) before the call resumes,
 * which is exactly the window in which P1's writes happen.
 */
#include <errno.h>
#include <string.h>

#include "sim_internal.h"
#include "../core/private.h"

int sim_swap(const struct memswap_request *req, const struct sim_swap_opts *opts,
             struct memswap_result *res)
{
    static const struct sim_swap_opts none = { .alloc_fail_at = -1 };
    const struct sim_swap_opts *o = opts ? opts : &none;
    struct memswap_ctx *ctx = NULL;
    struct domain *d;
    uint64_t conts = 0;
    int rc;

    if ( res )
        memset(res, 0, sizeof(*res));
    if ( !req )
        return -EINVAL;
    d = sim_domain_lookup(req->domid);
    if ( !d )
        return -ESRCH;
    if ( sim_swap_cur_ctx )
        return -EBUSY;              /* one swap at a time on this host */

    sim_swap_cur_opts = o;
    sim_swap_checks = 0;
    sim_swap_allocs = 0;
    sim_swap_prepares = sim_swap_dirty_reads = 0;
    sim_swap_last_yield_ns = ms_host_now_ns();
    sim_swap_meta_peak = sim_swap_meta_bytes;
    rc = memswap_begin(d, req, &ctx);
    if ( rc )
    {
        sim_swap_cur_opts = NULL;
        return rc;
    }
    sim_swap_cur_ctx = ctx;
    for ( ;; )
    {
        rc = memswap_run(ctx);
        if ( rc == MEMSWAP_HELD )
        {
            /* The caller's turn between pre-copy and final stop. */
            if ( o->held && o->held(o->held_arg) )
            {
                while ( (rc = memswap_cancel(ctx)) == MEMSWAP_PREEMPTED )
                    if ( o->world_runs )
                        sim_world_step();
                break;
            }
            continue;
        }
        if ( rc != MEMSWAP_PREEMPTED )
            break;
        conts++;
        if ( o->at )
            o->at(ctx, o->at_arg);
        if ( o->progress )
            o->progress(o->progress_arg, memswap_phase(ctx), (uint64_t)memswap_phase(ctx),
                        MEMSWAP_PH_DONE);
        /* Between continuations the rest of the machine runs. */
        if ( o->world_runs )
            sim_world_step();
        if ( o->between )
            o->between(o->between_arg);
        sim_swap_last_yield_ns = ms_host_now_ns();
        if ( o->abort_after_continuations && conts >= o->abort_after_continuations )
        {
            rc = memswap_abort(ctx);
            break;
        }
    }
    if ( o->progress )
        o->progress(o->progress_arg, memswap_phase(ctx), MEMSWAP_PH_DONE, MEMSWAP_PH_DONE);
    if ( res )
        *res = *memswap_result(ctx);
    memswap_end(ctx);
    sim_swap_cur_ctx = NULL;
    sim_swap_cur_opts = NULL;
    return rc;
}
