/* SPDX-License-Identifier: GPL-2.0-only */
/* The swap sequence on the simulated host (see sim_coop.h). */
#include "sim_coop.h"

#include <errno.h>
#include <string.h>

static int set_fail(struct ms_sim_swap_op *s, int rc, const char *call)
{
    s->err = rc < 0 ? -rc : rc;
    s->call = call;
    s->msg[0] = 0;
    return s->err;
}

static int sim_preflight(void *arg, struct ms_swap_facts *fp)
{
    struct ms_sim_swap_op *s = arg;
    struct ms_swap_facts f;
    struct memswap_request dry = s->req;
    struct sim_domain_info info;
    int dry_err = 0, err;

    memset(&f, 0, sizeof(f));
    f.domid = s->req.domid;
    f.own_domid = 0;            /* the simulator's caller is its dom0 */
    if ( f.domid != 0 )
    {
        /* The simulated hypervisor's own verdict, as on Xen. */
        dry.flags |= MEMSWAP_F_DRY_RUN;
        dry_err = -sim_swap(&dry, NULL, &s->res);
        f.dry_run_err = dry_err;
        if ( (err = -sim_domain_info(f.domid, &info)) )
            return set_fail(s, dry_err && dry_err != EAGAIN ? dry_err : err,
                            dry_err && dry_err != EAGAIN ? "sim_swap" : "sim_domain_info");
        f.have_info = 1;
        f.dying = info.state == SIM_DOM_DYING;
        f.paused = info.state == SIM_DOM_PAUSED;
        f.translated = info.hvm;
        f.live = !!(s->req.flags & MEMSWAP_F_LIVE);
    }
    err = ms_swap_refusal(&f, s->msg, sizeof(s->msg));
    *fp = f;
    if ( err )
    {
        s->err = err;
        s->call = MS_REFUSAL_CALL;
        return err;
    }
    /* Not refused, but the request fails (too few free frames...). */
    if ( dry_err && dry_err != EAGAIN )
        return set_fail(s, dry_err, "sim_swap");
    return 0;
}

static int sim_suspend(void *arg)
{
    struct ms_sim_swap_op *s = arg;
    int rc = sim_domain_suspend(s->req.domid);

    return rc ? set_fail(s, rc, "sim_domain_suspend") : 0;
}

/* sim_swap()'s answer @rc as a step's. */
static int swap_result(struct ms_sim_swap_op *s, int rc)
{
    if ( !rc )
        return 0;
    set_fail(s, rc, "sim_swap");
    /* A cancelled caller does not want another attempt. */
    return s->cancelled && s->err == EAGAIN ? ECANCELED : s->err;
}

static int sim_do_swap(void *arg)
{
    struct ms_sim_swap_op *s = arg;

    return swap_result(s, sim_swap(&s->req, s->opts, &s->res));
}

/*
 * A held live swap: the simulator drives the whole hypercall in one
 * sim_swap() and calls opts->held at the hold (after the pre-copy); a
 * non-zero answer there cancels the swap (-EINTR, nothing changed).
 */
struct sim_hold {
    int (*at_hold)(void *ctx);
    void *ctx;
    int err;
};

static int sim_held(void *arg)
{
    struct sim_hold *h = arg;

    h->err = h->at_hold(h->ctx);
    return h->err != 0;
}

static int sim_swap_held(void *arg, int (*at_hold)(void *ctx), void *ctx)
{
    struct ms_sim_swap_op *s = arg;
    struct memswap_request req = s->req;
    struct sim_swap_opts opts = *s->opts;
    struct sim_hold h = { at_hold, ctx, 0 };
    int rc;

    req.flags |= MEMSWAP_F_LIVE | MEMSWAP_F_HOLD;
    opts.held = sim_held;
    opts.held_arg = &h;
    rc = sim_swap(&req, &opts, &s->res);
    if ( h.err )
        return h.err;          /* the suspend's diagnostics are in @s */
    return swap_result(s, rc);
}

static int sim_resume(void *arg)
{
    struct ms_sim_swap_op *s = arg;
    int rc = sim_domain_resume_cancelled(s->req.domid);

    return rc ? set_fail(s, rc, "sim_domain_resume_cancelled") : 0;
}

/* The guest runs (and finishes what it was building) between attempts. */
static void sim_wait(void *arg, unsigned int steps)
{
    while ( steps-- )
        sim_world_step();
}

static const struct ms_coop_ops sim_ops = {
    .preflight = sim_preflight,
    .suspend = sim_suspend,
    .swap = sim_do_swap,
    .swap_held = sim_swap_held,
    .resume = sim_resume,
    .wait = sim_wait,
};

int ms_sim_swap_run(struct ms_sim_swap_op *s, const struct ms_coop_policy *p,
                    struct ms_coop_outcome *o)
{
    s->err = 0;
    s->call = NULL;
    s->msg[0] = 0;
    return ms_coop_run(&sim_ops, s, p, o);
}
