/* SPDX-License-Identifier: GPL-2.0-only */
/* The swap sequence shared by the backends (see coop.h). */
#include "coop.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* SHUTDOWN_* of xen/sched.h (a public ABI: the numbers never change). */
static const char *const shutdown_names[] = {
    "poweroff", "reboot", "suspend", "crash", "watchdog", "soft_reset",
};

const char *ms_shutdown_reason_name(unsigned int reason, char *buf, size_t len)
{
    if ( reason < sizeof(shutdown_names) / sizeof(shutdown_names[0]) )
        return shutdown_names[reason];
    snprintf(buf, len, "reason %u", reason);
    return buf;
}

int ms_is_refusal(int err)
{
    switch ( err )
    {
    case EACCES:
    case EDEADLK:
    case EBUSY:
    case ENODEV:
    case EOPNOTSUPP:
        return 1;
    default:
        return 0;
    }
}

/*
 * What the hypervisor's refusal means (the memswap domctl's errnos, see
 * core/xen_domctl_memswap.h), for the kind of guest it refused.
 */
static const char *hypervisor_reason(int err, const struct ms_swap_facts *f)
{
    switch ( err )
    {
    case EACCES:     return "it is a control or hardware domain";
    case EDEADLK:    return "it is the caller's own domain";
    case EBUSY:      return "a swap of it is in progress or held, or log-dirty mode is on "
                            "(a live migration, a save, VRAM tracking)";
    case ENODEV:     return "it is dying";
    case EOPNOTSUPP:
        if ( f->have_info && f->translated )
            return "it has a passed-through device, memory sharing, paging or altp2m "
                   "in use, or no hardware-assisted paging";
        if ( f->have_info && f->live )
            return "it has a passed-through device, or this hypervisor has no shadow "
                   "paging, which a PV guest's live swap needs for log-dirty mode";
        return "it has a passed-through device or is not a 64-bit PV domain";
    default:         return "refused";
    }
}

/* A guest-writable string, printable and at most ~32 characters, in
 * @out (QUOTE_LEN bytes). */
#define QUOTE_LEN 48
static void quote(const char *s, char out[QUOTE_LEN])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for ( ; *s; s++ )
    {
        unsigned char c = (unsigned char)*s;

        if ( o >= 32 )
        {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if ( c >= 0x20 && c < 0x7f && c != '\'' && c != '\\' )
            out[o++] = (char)c;
        else
        {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;     /* o <= 35 + 3 < QUOTE_LEN */
}

int ms_swap_refusal(const struct ms_swap_facts *f, char *msg, size_t len)
{
    char q[QUOTE_LEN], rb[24];

    msg[0] = 0;
    if ( f->domid == 0 )
    {
        snprintf(msg, len, "domain 0 is the control domain");
        return EACCES;
    }
    if ( ms_is_refusal(f->dry_run_err) )
    {
        snprintf(msg, len, "the hypervisor refuses domain %u: %s", f->domid,
                 hypervisor_reason(f->dry_run_err, f));
        return f->dry_run_err;
    }
    if ( f->own_domid >= 0 && f->domid == (unsigned int)f->own_domid )
    {
        snprintf(msg, len, "domain %u is the caller's own domain", f->domid);
        return EDEADLK;
    }
    if ( f->have_info )
    {
        if ( f->dying )
        {
            snprintf(msg, len, "domain %u is dying", f->domid);
            return ENODEV;
        }
        if ( f->shutdown )
        {
            snprintf(msg, len, "domain %u is shut down (%s): the toolstack may be "
                     "saving, migrating or destroying it", f->domid,
                     ms_shutdown_reason_name(f->shutdown_reason, rb, sizeof(rb)));
            return EBUSY;
        }
        if ( f->paused )
        {
            snprintf(msg, len, "domain %u is paused by someone else (the toolstack "
                     "or an administrator)", f->domid);
            return EBUSY;
        }
    }
    if ( f->pending_request && f->pending_request[0] )
    {
        quote(f->pending_request, q);
        snprintf(msg, len, "domain %u has a pending shutdown request '%s' in "
                 "control/shutdown", f->domid, q);
        return EBUSY;
    }
    return 0;
}

unsigned int ms_coop_backoff(const struct ms_coop_policy *p, unsigned int n)
{
    unsigned int w = p->backoff;

    while ( n-- && w < p->backoff_max )
        w = w > p->backoff_max / 2 ? p->backoff_max : w * 2;
    return w < p->backoff_max ? w : p->backoff_max;
}

static int fail(struct ms_coop_outcome *o, enum ms_coop_stage stage, int err)
{
    o->err = err ? err : EIO;
    o->stage = stage;
    return o->err;
}

/* The suspend a held swap makes at its hold (ms_coop_ops.swap_held). */
struct hold {
    const struct ms_coop_ops *ops;
    void *arg;
    int suspend_err;            /* the suspend failed: the swap was cancelled */
    int suspended;
};

static int suspend_at_hold(void *ctx)
{
    struct hold *h = ctx;

    if ( (h->suspend_err = h->ops->suspend(h->arg)) )
        return h->suspend_err;
    h->suspended = 1;
    return 0;
}

int ms_coop_run(const struct ms_coop_ops *ops, void *arg,
                const struct ms_coop_policy *p, struct ms_coop_outcome *o)
{
    struct ms_swap_facts f;
    struct hold h;
    unsigned int attempt;
    int err, rerr, coop;

    memset(o, 0, sizeof(*o));
    for ( attempt = 0; ; attempt++ )
    {
        /* Every attempt is checked afresh: the toolstack may have started
         * saving or migrating the guest while it ran between two. */
        memset(&f, 0, sizeof(f));
        if ( (err = ops->preflight(arg, &f)) )
            return fail(o, MS_COOP_PREFLIGHT, err);
        o->translated = f.translated;
        /* A translated guest never sees its machine frames: the hypervisor
         * pauses it itself (stop) or only for the final stop (live). */
        coop = p->cooperative && !f.translated;
        memset(&h, 0, sizeof(h));
        if ( coop && f.live )
        {
            /* PV live: the guest runs through the pre-copy and is suspended
             * for the final stop only. */
            h.ops = ops;
            h.arg = arg;
            o->attempts++;
            err = ops->swap_held(arg, suspend_at_hold, &h);
            if ( h.suspend_err )
                return fail(o, MS_COOP_SUSPEND, h.suspend_err);
        }
        else
        {
            if ( coop && (err = ops->suspend(arg)) )
                return fail(o, MS_COOP_SUSPEND, err);
            h.suspended = coop;
            o->attempts++;
            err = ops->swap(arg);
        }
        o->suspended = h.suspended;
        /* Always resume what we suspended, whatever the swap did. */
        if ( h.suspended && (rerr = ops->resume(arg)) )
        {
            o->swap_err = err;
            return fail(o, MS_COOP_RESUME, rerr);
        }
        if ( !err )
            return 0;
        if ( err != EAGAIN || attempt >= p->retries )
            return fail(o, MS_COOP_SWAP, err);
        ops->wait(arg, ms_coop_backoff(p, attempt));
        o->retries++;
    }
}
