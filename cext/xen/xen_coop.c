/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The memswap domctl and the swap sequence on Xen (see xenhost.h).
 *
 * The cooperative swap. A Linux PV guest keeps the page tables of an mm
 * under construction (fork) or teardown unpinned: plain writable pages
 * holding MFNs that Xen does not see as page tables, which a swap cannot
 * translate (the engine refuses with EAGAIN when it meets one). Suspending
 * the guest the way `xl save -c` does makes Linux freeze its processes and
 * pin every page table before it issues SCHEDOP_shutdown(SHUTDOWN_suspend);
 * after the swap the domain is resumed "cancelled" (xc_domain_resume(fast):
 * the guest's suspend hypercall returns 1 and it carries on with its
 * devices connected; libxc sets the return value in the way the guest's
 * type needs), and xenstored is told the domain runs again.
 *
 * Protocol, as the toolstack drives it: write "suspend" to
 * /local/domain/<id>/control/shutdown; the guest's watch acknowledges by
 * clearing the node, then suspends. A guest that does not acknowledge
 * within the caller's timeout has its request withdrawn.
 */
#include "xenhost.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xenguest.h>

_Static_assert(sizeof(struct ms_xen_domctl) == sizeof(struct xen_domctl),
               "the memswap domctl must not change struct xen_domctl's size");
_Static_assert(sizeof(struct xen_domctl_memswap) == XEN_DOMCTL_MEMSWAP_SIZE,
               "memswap ABI size");
_Static_assert(MS_XEN_BITMAP_OFFSET >= sizeof(struct ms_xen_domctl) &&
               MS_XEN_BITMAP_OFFSET + MS_XEN_COLOUR_WORDS * 8 <= XC_PAGE_SIZE,
               "the colour bitmap shares the domctl's page");

/* Polling for the guest to suspend: mechanism, not policy (the timeout is
 * the caller's). */
#define SUSPEND_POLL_MIN_US     500
#define SUSPEND_POLL_MAX_US     5000
/* xenstore transactions that conflict with another writer are retried;
 * this many conflicts in a row is a xenstore in trouble. */
#define XS_TRANSACTION_TRIES    100

static void set_err(struct ms_xen_error *e, int err, const char *call, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_err(struct ms_xen_error *e, int err, const char *call, const char *fmt, ...)
{
    va_list ap;

    e->err = err ? err : EIO;
    e->call = call;
    e->msg[0] = 0;
    if ( fmt )
    {
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_us(uint64_t us)
{
    struct timespec ts = { .tv_sec = (time_t)(us / 1000000),
                           .tv_nsec = (long)(us % 1000000) * 1000 };

    while ( nanosleep(&ts, &ts) && errno == EINTR )
        ;
}

/* ---- the domctl --------------------------------------------------------------- */

static void domctl_fail(struct ms_xen_error *e, int err)
{
    if ( err == ENOSYS )
        set_err(e, err, "XEN_DOMCTL_memswap",
                "this hypervisor has no memswap domctl: boot the patched Xen");
    else
        set_err(e, err, "XEN_DOMCTL_memswap", NULL);
}


void ms_xen_domctl_build(void *page, const struct ms_xen_request *rq)
{
    struct ms_xen_domctl *dc = page;
    struct xen_domctl_memswap_swap *ms = &dc->u.memswap.u.swap;
    uint64_t *bitmap = (uint64_t *)((char *)page + MS_XEN_BITMAP_OFFSET);
    unsigned int i, words = (rq->nr_colours + 63) / 64, any = 0;

    memset(page, 0, XC_PAGE_SIZE);
    dc->cmd = XEN_DOMCTL_memswap;
    dc->interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    dc->domain = (domid_t)rq->domid;
    dc->u.memswap.op = XEN_DOMCTL_MEMSWAP_OP_SWAP;
    dc->u.memswap.flags = rq->flags;
    dc->u.memswap.resume = rq->resume;
    ms->node = rq->node;
    ms->nr_colours = rq->nr_colours;
    ms->colour_shift = rq->colour_shift;
    ms->live_max_rounds = rq->live_max_rounds;
    ms->live_dirty_threshold = rq->live_dirty_threshold;
    if ( words > MS_XEN_COLOUR_WORDS )
        words = MS_XEN_COLOUR_WORDS;
    for ( i = 0; i < words; i++ )
    {
        bitmap[i] = rq->colours[i];
        any |= rq->colours[i] != 0;
    }
    /* A null handle: any colour (the hypervisor reads nothing). */
    if ( any )
        set_xen_guest_handle_raw(ms->colours, bitmap);
}

/* One domctl from a page built by @build(page, arg); outputs in @out. */
static int memswap_domctl(struct ms_xen *x, void (*build)(void *page, const void *arg),
                          const void *arg, struct xen_domctl_memswap *out)
{
    void *page;
    int rc, err = 0;

    page = xencall_alloc_buffer(x->xcall, XC_PAGE_SIZE);
    if ( !page )
        return errno ? errno : ENOMEM;
    build(page, arg);
    /* Preemption happens inside Xen: continuations re-enter the domctl, so
     * one hypercall is one complete operation (up to a hold). */
    rc = xencall1(x->xcall, __HYPERVISOR_domctl, (uint64_t)(uintptr_t)page);
    if ( rc < 0 )
        err = errno ? errno : EIO;
    if ( out )
        *out = ((struct ms_xen_domctl *)page)->u.memswap;
    xencall_free_buffer(x->xcall, page);
    return err;
}

static void build_swap(void *page, const void *arg)
{
    ms_xen_domctl_build(page, arg);
}

int ms_xen_memswap(struct ms_xen *x, const struct ms_xen_request *rq,
                   struct xen_domctl_memswap *out)
{
    return memswap_domctl(x, build_swap, rq, out);
}

void ms_xen_cancel_build(void *page, unsigned int domid, uint64_t resume)
{
    struct ms_xen_domctl *dc = page;

    memset(page, 0, XC_PAGE_SIZE);
    dc->cmd = XEN_DOMCTL_memswap;
    dc->interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    dc->domain = (domid_t)domid;
    dc->u.memswap.op = XEN_DOMCTL_MEMSWAP_OP_CANCEL;
    dc->u.memswap.resume = resume;
}

struct cancel_args {
    unsigned int domid;
    uint64_t resume;
};

static void build_cancel(void *page, const void *arg)
{
    const struct cancel_args *c = arg;

    ms_xen_cancel_build(page, c->domid, c->resume);
}

int ms_xen_memswap_cancel(struct ms_xen *x, unsigned int domid, uint64_t resume,
                          struct xen_domctl_memswap *out)
{
    struct cancel_args c = { domid, resume };

    return memswap_domctl(x, build_cancel, &c, out);
}

/* The query's buffer: the domctl, then colour counts, node counts, frames. */
#define QUERY_ARRAYS_OFFSET     ((sizeof(struct ms_xen_domctl) + 63) & ~(size_t)63)

size_t ms_xen_query_size(const struct ms_xen_query *q)
{
    return QUERY_ARRAYS_OFFSET +
           ((size_t)q->nr_colours + q->nr_nodes + q->nr_frames) * sizeof(uint64_t);
}

void ms_xen_query_build(void *buf, const struct ms_xen_query *q)
{
    struct ms_xen_domctl *dc = buf;
    struct xen_domctl_memswap_query *mq = &dc->u.memswap.u.query;
    uint64_t *arrays = (uint64_t *)((char *)buf + QUERY_ARRAYS_OFFSET);

    memset(buf, 0, ms_xen_query_size(q));
    dc->cmd = XEN_DOMCTL_memswap;
    dc->interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    dc->domain = (domid_t)q->domid;
    dc->u.memswap.op = XEN_DOMCTL_MEMSWAP_OP_QUERY;
    mq->nr_colours = q->nr_colours;
    mq->colour_shift = q->colour_shift;
    mq->nr_nodes = q->nr_nodes;
    mq->nr_frames = q->nr_frames;
    mq->first_pfn = q->first_pfn;
    if ( q->nr_colours )
        set_xen_guest_handle_raw(mq->colour_counts, arrays);
    if ( q->nr_nodes )
        set_xen_guest_handle_raw(mq->node_counts, arrays + q->nr_colours);
    if ( q->nr_frames )
        set_xen_guest_handle_raw(mq->frames, arrays + q->nr_colours + q->nr_nodes);
}

int ms_xen_query(struct ms_xen *x, struct ms_xen_query *q, void *buf, struct ms_xen_error *e)
{
    const struct xen_domctl_memswap_query *mq =
        &((const struct ms_xen_domctl *)buf)->u.memswap.u.query;
    const uint64_t *arrays = (const uint64_t *)((const char *)buf + QUERY_ARRAYS_OFFSET);

    if ( xencall1(x->xcall, __HYPERVISOR_domctl, (uint64_t)(uintptr_t)buf) < 0 )
    {
        domctl_fail(e, errno ? errno : EIO);
        return e->err;
    }
    q->colour_counts = q->nr_colours ? arrays : NULL;
    q->node_counts = q->nr_nodes ? arrays + q->nr_colours : NULL;
    q->frames = q->nr_frames ? arrays + q->nr_colours + q->nr_nodes : NULL;
    q->nr_pfns = mq->nr_pfns;
    q->frames_counted = mq->frames_counted;
    q->tot_pages = mq->tot_pages;
    q->host_nr_nodes = mq->host_nr_nodes;
    q->translated = !!mq->translated;
    return 0;
}

void ms_xen_occupancy_free(struct ms_xen_occupancy *o)
{
    free(o->colour_counts);
    free(o->node_counts);
    free(o->frames);
    memset(o, 0, sizeof(*o));
}

/* One query into hypercall memory, its arrays copied out into @o. */
static int occupancy_once(struct ms_xen *x, struct ms_xen_query *q, struct ms_xen_occupancy *o,
                          struct ms_xen_error *e)
{
    size_t size = ms_xen_query_size(q);
    void *buf = xencall_alloc_buffer(x->xcall, size);
    int err;

    if ( !buf )
    {
        set_err(e, errno ? errno : ENOMEM, "xencall_alloc_buffer", NULL);
        return e->err;
    }
    ms_xen_query_build(buf, q);
    if ( !(err = ms_xen_query(x, q, buf, e)) )
    {
        uint32_t nodes = q->host_nr_nodes < q->nr_nodes ? q->host_nr_nodes : q->nr_nodes;

        ms_xen_occupancy_free(o);
        o->nr_colours = q->nr_colours;
        o->nr_pfns = q->nr_pfns;
        o->frames_counted = q->frames_counted;
        o->tot_pages = q->tot_pages;
        o->host_nr_nodes = nodes;
        o->translated = q->translated;
        o->colour_counts = malloc(q->nr_colours * sizeof(uint64_t) + 1);
        o->node_counts = malloc(nodes * sizeof(uint64_t) + 1);
        o->frames = q->nr_frames ? malloc(q->nr_frames * sizeof(uint64_t)) : NULL;
        if ( !o->colour_counts || !o->node_counts || (q->nr_frames && !o->frames) )
        {
            ms_xen_occupancy_free(o);
            set_err(e, ENOMEM, "malloc", NULL);
            err = ENOMEM;
        }
        else
        {
            memcpy(o->colour_counts, q->colour_counts, q->nr_colours * sizeof(uint64_t));
            memcpy(o->node_counts, q->node_counts, nodes * sizeof(uint64_t));
            if ( q->nr_frames )
                memcpy(o->frames, q->frames, q->nr_frames * sizeof(uint64_t));
        }
    }
    xencall_free_buffer(x->xcall, buf);
    return err;
}

int ms_xen_occupancy(struct ms_xen *x, unsigned int domid, uint32_t nr_colours,
                     uint32_t colour_shift, int frames, struct ms_xen_occupancy *o,
                     struct ms_xen_error *e)
{
    struct ms_xen_query q = { .domid = domid, .nr_colours = nr_colours,
                              .colour_shift = colour_shift, .nr_nodes = MS_XEN_QUERY_NODES };
    int err;

    memset(o, 0, sizeof(*o));
    if ( (err = occupancy_once(x, &q, o, e)) || !frames )
        return err;
    /* The frames of every pfn: the first answer said how many. */
    if ( o->nr_pfns > MS_XEN_QUERY_MAX_PFNS )
    {
        set_err(e, EFBIG, "XEN_DOMCTL_memswap", "domain %u claims %llu pfns", domid,
                (unsigned long long)o->nr_pfns);
        ms_xen_occupancy_free(o);
        return EFBIG;
    }
    q.nr_frames = (uint32_t)o->nr_pfns;
    if ( (err = occupancy_once(x, &q, o, e)) )
        return err;
    /* Grown since (ballooned up): report only the pfns the frames cover. */
    if ( o->nr_pfns > q.nr_frames )
        o->nr_pfns = q.nr_frames;
    return 0;
}

static int is_suspended(const xc_domaininfo_t *info)
{
    return ms_xen_shutdown_reason(info) == SHUTDOWN_suspend;
}

/* ---- preflight ----------------------------------------------------------------- */


/* The preflight, with the facts it gathered in @fp. */
static int preflight(struct ms_xen_swap_op *s, struct ms_swap_facts *fp)
{
    struct ms_xen *x = s->x;
    struct ms_swap_facts f;
    struct ms_xen_request dry;
    xc_domaininfo_t info;
    char path[96], *pending = NULL;
    unsigned int len = 0;
    int err, dry_err = 0, own;

    memset(&f, 0, sizeof(f));
    f.domid = s->rq.domid;
    f.own_domid = -1;
    if ( f.domid != 0 )
    {
        /* The hypervisor's own refusal is authoritative; a dry run changes
         * nothing and does not pause. */
        dry = s->rq;
        dry.flags |= XEN_DOMCTL_MEMSWAP_F_DRY_RUN;
        memset(&s->result, 0, sizeof(s->result));
        dry_err = ms_xen_memswap(x, &dry, &s->result);
        s->have_result = 1;
        f.dry_run_err = dry_err;
        if ( (err = ms_xen_domain_info(x, f.domid, &info)) )
        {
            if ( dry_err && dry_err != EAGAIN )
                domctl_fail(&s->e, dry_err);
            else
                set_err(&s->e, err, "xc_domain_getinfolist", NULL);
            return s->e.err;
        }
        f.have_info = 1;
        f.dying = !!(info.flags & XEN_DOMINF_dying);
        f.shutdown = !!(info.flags & XEN_DOMINF_shutdown);
        f.shutdown_reason = f.shutdown ? (unsigned int)ms_xen_shutdown_reason(&info) : 0;
        f.paused = !!(info.flags & XEN_DOMINF_paused);
        f.translated = !!(info.flags & XEN_DOMINF_hvm_guest);
        f.live = !!(s->rq.flags & XEN_DOMCTL_MEMSWAP_F_LIVE);
        own = ms_xen_read_own_domid(x);
        f.own_domid = own >= 0 ? own : -1;  /* unknown: the hypervisor's EDEADLK stands */
        snprintf(path, sizeof(path), "/local/domain/%u/control/shutdown", f.domid);
        pending = xs_read(x->xsh, XBT_NULL, path, &len);
        f.pending_request = pending;
    }
    err = ms_swap_refusal(&f, s->e.msg, sizeof(s->e.msg));
    free(pending);
    f.pending_request = NULL;
    *fp = f;
    if ( err )
    {
        s->e.err = err;
        s->e.call = MS_REFUSAL_CALL;
        return err;
    }
    /* Not refused, but the request itself fails (too few free frames, no
     * memswap in this Xen...): nothing was done either. EAGAIN is what a
     * cooperative swap cures. */
    if ( dry_err && dry_err != EAGAIN )
    {
        domctl_fail(&s->e, dry_err);
        return dry_err;
    }
    return 0;
}

int ms_xen_preflight(struct ms_xen_swap_op *s)
{
    struct ms_swap_facts f;

    return preflight(s, &f);
}

/* ---- suspend and resume --------------------------------------------------------- */

static int resume_guest(struct ms_xen *x, unsigned int domid, struct ms_xen_error *e,
                        int *xs_failed)
{
    xc_domaininfo_t info;
    int err;

    if ( (err = ms_xen_domain_info(x, domid, &info)) )
    {
        set_err(e, err, "xc_domain_getinfolist", NULL);
        return err;
    }
    /* Only a domain shut down for suspend: never one that really stopped. */
    if ( !is_suspended(&info) || (info.flags & XEN_DOMINF_dying) )
    {
        set_err(e, EINVAL, "xc_domain_resume", "domain %u is not suspended", domid);
        return EINVAL;
    }
    if ( xc_domain_resume(x->xch, domid, 1) )
    {
        set_err(e, errno, "xc_domain_resume", NULL);
        return e->err;
    }
    /* xenstored marked the domain shut down; without this it would not fire
     * @releaseDomain for the domain's next (real) shutdown. */
    if ( !xs_resume_domain(x->xsh, domid) && xs_failed )
        *xs_failed = 1;
    return 0;
}

int ms_xen_resume_cancelled(struct ms_xen *x, unsigned int domid, struct ms_xen_error *e)
{
    memset(e, 0, sizeof(*e));
    return resume_guest(x, domid, e, NULL);
}

/*
 * Write "suspend" to @path in a transaction that finds the node empty: a
 * request someone else (xl save, shutdown, migrate) wrote after the
 * preflight is never overwritten. 0 or an errno (@e).
 */
static int request_suspend(struct ms_xen *x, unsigned int domid, const char *path,
                           struct ms_xen_error *e)
{
    struct ms_swap_facts f;
    unsigned int tries, len;
    char *v;
    int err;

    for ( tries = 0; tries < XS_TRANSACTION_TRIES; tries++ )
    {
        xs_transaction_t t = xs_transaction_start(x->xsh);

        if ( t == XBT_NULL )
        {
            set_err(e, errno, "xs_transaction_start", NULL);
            return e->err;
        }
        len = 0;
        v = xs_read(x->xsh, t, path, &len);
        if ( !v && errno != ENOENT )
        {
            err = errno;
            xs_transaction_end(x->xsh, t, true);
            set_err(e, err, "xs_read", "cannot read %s", path);
            return e->err;
        }
        if ( v && len )
        {
            memset(&f, 0, sizeof(f));
            f.domid = domid;
            f.own_domid = -1;
            f.pending_request = v;
            err = ms_swap_refusal(&f, e->msg, sizeof(e->msg));
            free(v);
            xs_transaction_end(x->xsh, t, true);
            e->err = err;
            e->call = MS_REFUSAL_CALL;
            return err;
        }
        free(v);
        if ( !xs_write(x->xsh, t, path, "suspend", 7) )
        {
            err = errno;
            xs_transaction_end(x->xsh, t, true);
            set_err(e, err, "xs_write", "cannot write %s", path);
            return e->err;
        }
        if ( xs_transaction_end(x->xsh, t, false) )
            return 0;
        if ( errno != EAGAIN )
        {
            set_err(e, errno, "xs_transaction_end", "writing %s", path);
            return e->err;
        }
    }
    set_err(e, EAGAIN, "xs_transaction_end", "writing %s: %u conflicting transactions",
            path, XS_TRANSACTION_TRIES);
    return EAGAIN;
}

/*
 * Take back our request if the guest has not acknowledged it yet, clearing
 * the node as the guest would (it keeps the permissions the toolstack gave
 * it). Returns 1 if it was still pending (now withdrawn), 0 otherwise.
 */
static int withdraw_request(struct ms_xen *x, const char *path)
{
    unsigned int tries;

    for ( tries = 0; tries < XS_TRANSACTION_TRIES; tries++ )
    {
        xs_transaction_t t = xs_transaction_start(x->xsh);
        unsigned int len = 0;
        char *v;
        int pending;

        if ( t == XBT_NULL )
            return 0;
        v = xs_read(x->xsh, t, path, &len);
        pending = v && len == 7 && !memcmp(v, "suspend", 7);
        free(v);
        if ( pending && !xs_write(x->xsh, t, path, "", 0) )
        {
            xs_transaction_end(x->xsh, t, true);
            return 0;
        }
        if ( xs_transaction_end(x->xsh, t, false) )
            return pending;
        if ( errno != EAGAIN )
            return 0;
    }
    return 0;
}

static int xen_suspend(void *arg)
{
    struct ms_xen_swap_op *s = arg;
    struct ms_xen *x = s->x;
    unsigned int domid = s->rq.domid, poll_us = SUSPEND_POLL_MIN_US, len = 0;
    char base[64], path[96], rb[24], *v, **ents;
    xc_domaininfo_t info;
    uint64_t t0, deadline, grace;
    int err;

    snprintf(base, sizeof(base), "/local/domain/%u/control", domid);
    snprintf(path, sizeof(path), "%s/shutdown", base);
    if ( !s->force_suspend )
    {
        unsigned int n = 0;

        ents = xs_directory(x->xsh, XBT_NULL, base, &n);
        if ( !ents )
        {
            set_err(&s->e, EOPNOTSUPP, "suspend", "%s does not exist: the guest has no "
                    "PV shutdown driver to suspend it", base);
            return EOPNOTSUPP;
        }
        free(ents);
        /*
         * Linux writes feature-suspend = 1 when it boots, but not again
         * after a restore or a migration, so its absence proves nothing:
         * like libxl, count on the guest acknowledging the request (and
         * withdraw it if it does not). Only an explicit 0 is a refusal.
         */
        snprintf(path, sizeof(path), "%s/feature-suspend", base);
        v = xs_read(x->xsh, XBT_NULL, path, &len);
        if ( v && len == 1 && v[0] == '0' )
        {
            free(v);
            set_err(&s->e, EOPNOTSUPP, "suspend", "the guest says %s = 0: it cannot be "
                    "suspended cooperatively", path);
            return EOPNOTSUPP;
        }
        free(v);
        snprintf(path, sizeof(path), "%s/shutdown", base);
    }

    t0 = now_ns();
    if ( (err = request_suspend(x, domid, path, &s->e)) )
        return err;
    deadline = t0 + (uint64_t)s->suspend_timeout_ms * 1000000ull;
    for ( ;; )
    {
        if ( (err = ms_xen_domain_info(x, domid, &info)) )
        {
            withdraw_request(x, path);
            set_err(&s->e, err, "xc_domain_getinfolist", "domain %u vanished while "
                    "suspending", domid);
            return err;
        }
        if ( is_suspended(&info) )
            break;
        if ( info.flags & (XEN_DOMINF_shutdown | XEN_DOMINF_dying) )
        {
            set_err(&s->e, EIO, "suspend", "domain %u shut down (%s) instead of "
                    "suspending", domid,
                    (info.flags & XEN_DOMINF_dying) ? "dying" :
                    ms_shutdown_reason_name((unsigned int)ms_xen_shutdown_reason(&info),
                                            rb, sizeof(rb)));
            return EIO;
        }
        if ( now_ns() >= deadline )
            break;
        sleep_us(poll_us);
        if ( poll_us < SUSPEND_POLL_MAX_US )
            poll_us *= 2;
    }
    if ( is_suspended(&info) )
    {
        s->suspend_ns += now_ns() - t0;
        return 0;
    }

    if ( withdraw_request(x, path) )
    {
        /* The guest never saw it: nothing will happen. */
        set_err(&s->e, ETIMEDOUT, "suspend", "domain %u did not suspend within %u ms "
                "(request withdrawn)", domid, s->suspend_timeout_ms);
        return ETIMEDOUT;
    }
    /* The guest acknowledged and is on its way: it cannot be called back.
     * Give it as long again; if it suspends, resume it at once so that it is
     * never left suspended. */
    grace = now_ns() + (uint64_t)s->suspend_timeout_ms * 1000000ull;
    while ( now_ns() < grace )
    {
        if ( ms_xen_domain_info(x, domid, &info) ||
             (info.flags & (XEN_DOMINF_shutdown | XEN_DOMINF_dying)) )
            break;
        sleep_us(SUSPEND_POLL_MAX_US);
    }
    if ( !ms_xen_domain_info(x, domid, &info) && is_suspended(&info) )
    {
        struct ms_xen_error re = { 0 };

        if ( resume_guest(x, domid, &re, &s->xs_resume_failed) )
        {
            set_err(&s->e, re.err, re.call, "domain %u suspended after the timeout and "
                    "could not be resumed: it is left suspended", domid);
            return s->e.err;
        }
    }
    set_err(&s->e, ETIMEDOUT, "suspend", "domain %u acknowledged the suspend request "
            "but did not suspend within %u ms", domid, s->suspend_timeout_ms);
    return ETIMEDOUT;
}

static int xen_resume(void *arg)
{
    struct ms_xen_swap_op *s = arg;
    uint64_t t0 = now_ns();
    struct ms_xen_error re = { 0 };
    int err = resume_guest(s->x, s->rq.domid, &re, &s->xs_resume_failed);

    s->resume_ns += now_ns() - t0;
    if ( err )
        s->e = re;
    return err;
}

static int xen_preflight(void *arg, struct ms_swap_facts *f)
{
    return preflight(arg, f);
}

static int xen_do_swap(void *arg)
{
    struct ms_xen_swap_op *s = arg;
    int err = ms_xen_memswap(s->x, &s->rq, &s->result);

    s->have_result = 1;
    if ( err )
        domctl_fail(&s->e, err);
    return err;
}

/*
 * A live swap held after its pre-copy (F_HOLD: the domctl returns 0 with
 * a token in resume, log-dirty still on, nothing the guest can observe
 * changed), then @at_hold (the guest's suspend), then the same request
 * again with the token: the final stop and the commit. A failed @at_hold
 * cancels the held swap, which gives everything back.
 */
static int xen_swap_held(void *arg, int (*at_hold)(void *ctx), void *ctx)
{
    struct ms_xen_swap_op *s = arg;
    struct ms_xen_request rq = s->rq;
    struct xen_domctl_memswap out;
    struct ms_xen_error held_e;
    uint64_t token;
    int err, cerr;

    rq.flags |= XEN_DOMCTL_MEMSWAP_F_LIVE | XEN_DOMCTL_MEMSWAP_F_HOLD;
    err = ms_xen_memswap(s->x, &rq, &s->result);
    s->have_result = 1;
    if ( err )
    {
        domctl_fail(&s->e, err);
        return err;
    }
    if ( !(token = s->result.resume) )
        return 0;               /* finished without holding */
    if ( (err = at_hold(ctx)) )
    {
        held_e = s->e;          /* why the guest did not suspend */
        cerr = ms_xen_memswap_cancel(s->x, rq.domid, token, &out);
        if ( cerr )
            set_err(&s->e, held_e.err, held_e.call, "%s; and the held swap could not be "
                    "cancelled (%s): it keeps its frames until it is cancelled or the "
                    "domain is destroyed", held_e.msg[0] ? held_e.msg : strerror(held_e.err),
                    strerror(cerr));
        return err;
    }
    rq.resume = token;
    err = ms_xen_memswap(s->x, &rq, &s->result);
    if ( err )
        domctl_fail(&s->e, err);
    return err;
}

static void xen_wait(void *arg, unsigned int ms)
{
    sleep_us((uint64_t)ms * 1000);
}

static const struct ms_coop_ops xen_ops = {
    .preflight = xen_preflight,
    .suspend = xen_suspend,
    .swap = xen_do_swap,
    .swap_held = xen_swap_held,
    .resume = xen_resume,
    .wait = xen_wait,
};

int ms_xen_swap_run(struct ms_xen_swap_op *s, const struct ms_coop_policy *p,
                    struct ms_coop_outcome *o)
{
    struct ms_xen_error swap_e;
    int err;

    memset(&s->e, 0, sizeof(s->e));
    s->have_result = 0;
    err = ms_coop_run(&xen_ops, s, p, o);
    if ( !err )
        return 0;
    if ( o->stage == MS_COOP_RESUME )
    {
        swap_e = s->e;
        set_err(&s->e, swap_e.err, swap_e.call, "domain %u is left suspended: the swap "
                "%s, then its cancelled resume failed%s%s", s->rq.domid,
                o->swap_err ? "failed" : "succeeded", swap_e.msg[0] ? ": " : "", swap_e.msg);
    }
    else if ( o->stage == MS_COOP_SWAP && err == EAGAIN && o->translated )
        set_err(&s->e, err, "XEN_DOMCTL_memswap", "the domain's memory kept changing under "
                "the swap (it gained frames) after %u retr%s (nothing was moved)",
                o->retries, o->retries == 1 ? "y" : "ies");
    else if ( o->stage == MS_COOP_SWAP && err == EAGAIN )
        set_err(&s->e, err, "XEN_DOMCTL_memswap", "the guest kept unpinned page tables "
                "after %u retr%s (nothing was moved)%s", o->retries,
                o->retries == 1 ? "y" : "ies",
                p->cooperative ? "" : ": try a cooperative (suspending) swap");
    return err;
}
