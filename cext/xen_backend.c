/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The Xen backend: libxenctrl, libxencall, libxenforeignmemory and
 * libxenstore from Debian's libxen-dev (Xen 4.17).
 *
 * xen_open() opens the handles once per process; the other functions use
 * them. Every hypercall and xenstore request runs with the GIL released.
 * The libxenctrl/xencall/foreignmemory handles are serialised by xen_lock
 * (taken only with the GIL released); libxenstore is thread-safe on its own
 * (it has its own locking and a reader thread for watches).
 *
 * The memswap domctl is issued directly through libxencall: libxenctrl has
 * no wrapper for a domctl Debian's Xen does not know, and its do_domctl()
 * is private. The request goes in a hypercall-safe buffer
 * (xencall_alloc_buffer) as struct xen_domctl with
 * cmd = XEN_DOMCTL_memswap and Debian's XEN_DOMCTL_INTERFACE_VERSION.
 * Preemption happens inside Xen (hypercall continuations re-enter the
 * domctl transparently), so one xencall1() is one complete swap.
 */
#include "memswap_ext.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenguest.h>
#include <xencall.h>
#include <xenforeignmemory.h>
#include <xenstore.h>

#include "core/memswap.h"

#include "core/xen_domctl_memswap.h"

#define MS_XEN_COLOUR_WORDS (XEN_DOMCTL_MEMSWAP_MAX_COLOURS / 64)

/* struct xen_domctl with the memswap member in its union, as the patched
 * Xen sees it (the member fits the union's 128 bytes, so the size is
 * Debian's). It sits at the start of one hypercall-safe page; the colour
 * bitmap the request's guest handle points at follows it in that page. */
struct ms_domctl {
    uint32_t cmd;
    uint32_t interface_version;
    domid_t  domain;
    uint16_t _pad[3];
    union {
        struct xen_domctl_memswap memswap;
        uint8_t pad[128];
    } u;
};
_Static_assert(sizeof(struct ms_domctl) == sizeof(struct xen_domctl),
               "memswap domctl must not change struct xen_domctl's size");
#define MS_BITMAP_OFFSET 512

#define PRIVCMD "/dev/xen/privcmd"

static pthread_mutex_t xen_lock = PTHREAD_MUTEX_INITIALIZER;
static xc_interface *xch;
static xencall_handle *xcall;
static xenforeignmemory_handle *xfm;
static struct xs_handle *xsh;

#define XEN_RUN(stmt) do {                         \
        Py_BEGIN_ALLOW_THREADS                     \
        pthread_mutex_lock(&xen_lock);             \
        stmt;                                      \
        pthread_mutex_unlock(&xen_lock);           \
        Py_END_ALLOW_THREADS                       \
    } while ( 0 )

#define XS_RUN(stmt) do {                          \
        Py_BEGIN_ALLOW_THREADS                     \
        stmt;                                      \
        Py_END_ALLOW_THREADS                       \
    } while ( 0 )

static int need_xc(const char *call)
{
    if ( !xch )
    {
        ms_raise_msg(ENXIO, call, "Xen interface not open: call xen_open() first");
        return -1;
    }
    return 0;
}

static int need_xs(const char *call)
{
    if ( !xsh )
    {
        ms_raise_msg(ENXIO, call, "xenstore not open: call xen_open() first");
        return -1;
    }
    return 0;
}

static void close_all(void)
{
    if ( xsh )
        xs_close(xsh);
    if ( xfm )
        xenforeignmemory_close(xfm);
    if ( xcall )
        xencall_close(xcall);
    if ( xch )
        xc_interface_close(xch);
    xsh = NULL;
    xfm = NULL;
    xcall = NULL;
    xch = NULL;
}

PyObject *ms_xen_open(PyObject *self, PyObject *noargs)
{
    int fd, err = 0;
    const char *call = NULL;

    if ( xch )
        Py_RETURN_NONE;

    /* Say clearly why, before libxenctrl prints its own complaint. */
    fd = open(PRIVCMD, O_RDWR | O_CLOEXEC);
    if ( fd < 0 )
    {
        err = errno;
        if ( err == ENOENT )
            return ms_raise_msg(err, "xc_interface_open",
                                PRIVCMD " does not exist: not a Xen dom0, or the "
                                "xen privcmd driver is not loaded");
        if ( err == EACCES || err == EPERM )
            return ms_raise_msg(err, "xc_interface_open",
                                "cannot open " PRIVCMD ": memswap needs root in dom0");
        return ms_raise_msg(err, "xc_interface_open", "cannot open " PRIVCMD);
    }
    close(fd);

    XEN_RUN(
        xch = xc_interface_open(NULL, NULL, 0);
        if ( !xch ) { err = errno; call = "xc_interface_open"; goto out; }
        xcall = xencall_open(NULL, 0);
        if ( !xcall ) { err = errno; call = "xencall_open"; goto out; }
        xfm = xenforeignmemory_open(NULL, 0);
        if ( !xfm ) { err = errno; call = "xenforeignmemory_open"; goto out; }
        xsh = xs_open(0);
        if ( !xsh ) { err = errno; call = "xs_open"; goto out; }
      out:
        if ( call ) close_all());
    if ( call )
        return ms_raise(err ? err : EIO, call);
    Py_RETURN_NONE;
}

PyObject *ms_xen_close(PyObject *self, PyObject *noargs)
{
    XEN_RUN(close_all());
    Py_RETURN_NONE;
}

/* ---- domains and host ------------------------------------------------------ */

static const char *dom_state(uint32_t flags)
{
    if ( flags & XEN_DOMINF_dying )
        return "dying";
    if ( flags & XEN_DOMINF_shutdown )
        return "shutdown";
    if ( flags & XEN_DOMINF_paused )
        return "paused";
    return "running";
}

#define MAX_DOMS 1024

PyObject *ms_xen_domain_list(PyObject *self, PyObject *noargs)
{
    xc_domaininfo_t *info;
    char **names;
    int n = 0, i, err = 0;
    PyObject *list = NULL;

    if ( need_xc("xc_domain_getinfolist") )
        return NULL;
    info = calloc(MAX_DOMS, sizeof(*info));
    names = calloc(MAX_DOMS, sizeof(*names));
    if ( !info || !names )
    {
        free(info);
        free(names);
        return PyErr_NoMemory();
    }
    XEN_RUN(n = xc_domain_getinfolist(xch, 0, MAX_DOMS, info);
            if ( n < 0 ) err = errno);
    if ( n < 0 )
    {
        ms_raise(err, "xc_domain_getinfolist");
        goto out;
    }
    XS_RUN(for ( i = 0; i < n; i++ )
           {
               char path[64];
               unsigned int len;

               snprintf(path, sizeof(path), "/local/domain/%u/name", info[i].domain);
               names[i] = xs_read(xsh, XBT_NULL, path, &len);
           });
    list = PyList_New(0);
    for ( i = 0; list && i < n; i++ )
    {
        PyObject *d = Py_BuildValue(
            "{sIsssssIsKsKsOsK}",
            "domid", (unsigned int)info[i].domain,
            "name", names[i] ? names[i] : "",
            "state", dom_state(info[i].flags),
            "vcpus", info[i].nr_online_vcpus,
            "tot_pages", (unsigned long long)info[i].tot_pages,
            "max_pages", (unsigned long long)info[i].max_pages,
            "hvm", (info[i].flags & XEN_DOMINF_hvm_guest) ? Py_True : Py_False,
            "shared_info_frame", (unsigned long long)info[i].shared_info_frame);

        if ( !d || PyList_Append(list, d) < 0 )
            Py_CLEAR(list);
        Py_XDECREF(d);
    }
 out:
    for ( i = 0; i < n; i++ )
        free(names[i]);
    free(names);
    free(info);
    return list;
}

PyObject *ms_xen_physinfo(PyObject *self, PyObject *noargs)
{
    xc_physinfo_t pi;
    int rc, err = 0;

    if ( need_xc("xc_physinfo") )
        return NULL;
    memset(&pi, 0, sizeof(pi));
    XEN_RUN(rc = xc_physinfo(xch, &pi); if ( rc ) err = errno);
    if ( rc )
        return ms_raise(err, "xc_physinfo");
    return Py_BuildValue("{sKsKsKsIsIsIsIsIsK}",
                         "total_pages", (unsigned long long)pi.total_pages,
                         "free_pages", (unsigned long long)pi.free_pages,
                         "scrub_pages", (unsigned long long)pi.scrub_pages,
                         "nr_nodes", pi.nr_nodes,
                         "nr_cpus", pi.nr_cpus,
                         "threads_per_core", pi.threads_per_core,
                         "cores_per_socket", pi.cores_per_socket,
                         "cpu_khz", pi.cpu_khz,
                         "max_mfn", (unsigned long long)pi.max_mfn);
}

/* ---- the swap -------------------------------------------------------------- */

/* Issue XEN_DOMCTL_memswap; *dcp is the buffer (results), free it after. */
static int memswap_hypercall(unsigned int domid, int dry_run, uint32_t node,
                             unsigned int nr_colours, unsigned int shift,
                             const unsigned long long *bm,
                             struct ms_domctl **dcp, int *err)
{
    struct ms_domctl *dc;
    struct xen_domctl_memswap *ms;
    uint64_t *bitmap;
    unsigned int i;
    int rc;

    *dcp = dc = xencall_alloc_buffer(xcall, XC_PAGE_SIZE);
    if ( !dc )
    {
        *err = errno;
        return -1;
    }
    memset(dc, 0, XC_PAGE_SIZE);
    dc->cmd = XEN_DOMCTL_memswap;
    dc->interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    dc->domain = (domid_t)domid;
    ms = &dc->u.memswap;
    ms->flags = dry_run ? XEN_DOMCTL_MEMSWAP_F_DRY_RUN : 0;
    ms->node = node;
    ms->nr_colours = nr_colours;
    ms->colour_shift = shift;
    ms->resume = 0;
    bitmap = (uint64_t *)((char *)dc + MS_BITMAP_OFFSET);
    for ( i = 0; i < (nr_colours + 63) / 64; i++ )
        bitmap[i] = bm[i];
    set_xen_guest_handle_raw(ms->colours, bitmap);
    rc = xencall1(xcall, __HYPERVISOR_domctl, (uint64_t)(uintptr_t)dc);
    if ( rc < 0 )
        *err = errno;
    return rc;
}

/* ---- the cooperative swap: suspend, swap, cancel the suspend --------------- */

/*
 * A Linux PV guest keeps the page tables of an mm under construction (fork)
 * or teardown unpinned: plain writable pages holding MFNs that Xen does not
 * see as page tables, which a swap cannot translate (the engine refuses with
 * EAGAIN when it sees one). Suspending the guest the way `xl save -c` does
 * makes Linux freeze its processes and pin every page table before it
 * issues SCHEDOP_shutdown(SHUTDOWN_suspend); after the swap the domain is
 * resumed "cancelled" (xc_domain_resume(fast=1): the guest's suspend
 * hypercall returns 1 and it carries on with its devices still connected),
 * and xenstored is told the domain runs again (xs_resume_domain).
 *
 * Protocol (as the toolstack drives it): write "suspend" to
 * /local/domain/<id>/control/shutdown; the guest's watch acknowledges by
 * clearing the node, then suspends. Linux advertises the request with
 * control/feature-suspend = 1 (drivers/xen/manage.c writes feature-<cmd>
 * for poweroff, reboot and, with CONFIG_HIBERNATE_CALLBACKS, suspend).
 *
 * Everything here runs with the GIL released. The libxenctrl handle is used
 * under xen_lock, one call at a time, so the lock is never held across a
 * wait.
 */

#define SUSPEND_POLL_MIN_US   500
#define SUSPEND_POLL_MAX_US   5000
#define RETRY_BACKOFF_MIN_MS  10
#define RETRY_BACKOFF_MAX_MS  250

struct swap_req {
    unsigned int domid, nr_colours, shift, retries;
    unsigned int suspend_timeout_ms;
    int dry_run, cooperative, force_suspend;
    uint32_t node;
    const unsigned long long *bm;
};

struct swap_out {
    struct ms_domctl *dc;       /* the last attempt's buffer (results) */
    int err;                    /* errno of the failure, 0 on success */
    const char *call;           /* the failing call */
    char msg[200];              /* explanation ("" for strerror only) */
    int swap_err;               /* the domctl's errno when resume failed after it */
    int suspended;              /* the swap ran with the guest suspended */
    unsigned int retries;
    uint64_t suspend_ns, resume_ns;
    int xs_resume_failed;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_us(unsigned int us)
{
    struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };

    while ( nanosleep(&ts, &ts) && errno == EINTR )
        ;
}

static void set_fail(struct swap_out *o, int err, const char *call, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_fail(struct swap_out *o, int err, const char *call, const char *fmt, ...)
{
    va_list ap;

    o->err = err ? err : EIO;
    o->call = call;
    o->msg[0] = 0;
    if ( fmt )
    {
        va_start(ap, fmt);
        vsnprintf(o->msg, sizeof(o->msg), fmt, ap);
        va_end(ap);
    }
}

/* 0 and *info, or an errno (ESRCH: no such domain). Takes xen_lock. */
static int get_dominfo(unsigned int domid, xc_domaininfo_t *info)
{
    int n, err = 0;

    pthread_mutex_lock(&xen_lock);
    n = xc_domain_getinfolist(xch, domid, 1, info);
    if ( n < 0 )
        err = errno ? errno : EIO;
    else if ( n != 1 || info->domain != domid )
        err = ESRCH;
    pthread_mutex_unlock(&xen_lock);
    return err;
}

static unsigned int shutdown_reason(const xc_domaininfo_t *info)
{
    return (info->flags >> XEN_DOMINF_shutdownshift) & XEN_DOMINF_shutdownmask;
}

static int is_suspended(const xc_domaininfo_t *info)
{
    return (info->flags & XEN_DOMINF_shutdown) && shutdown_reason(info) == SHUTDOWN_suspend;
}

/* Take back our request if the guest has not acknowledged it yet.
 * Returns 1 if it was still pending (now removed), 0 if the guest took it. */
static int withdraw_request(const char *path)
{
    for ( ;; )
    {
        xs_transaction_t t = xs_transaction_start(xsh);
        unsigned int len = 0;
        char *v;
        int pending;

        if ( t == XBT_NULL )
            return 0;
        v = xs_read(xsh, t, path, &len);
        pending = v && len == 7 && !memcmp(v, "suspend", 7);
        free(v);
        if ( pending )
            xs_rm(xsh, t, path);
        if ( xs_transaction_end(xsh, t, false) )
            return pending;
        if ( errno != EAGAIN )
            return 0;
    }
}

/* Cancel-resume a suspended domain; 0 or an errno (o->call set). */
static int resume_guest(unsigned int domid, struct swap_out *o)
{
    uint64_t t0 = now_ns();
    int rc, err = 0;

    pthread_mutex_lock(&xen_lock);
    rc = xc_domain_resume(xch, domid, 1);
    if ( rc )
        err = errno ? errno : EIO;
    pthread_mutex_unlock(&xen_lock);
    if ( err )
    {
        o->call = "xc_domain_resume";
        return err;
    }
    /* xenstored marked the domain shut down; without this it would not
     * fire @releaseDomain for the domain's next (real) shutdown. */
    if ( !xs_resume_domain(xsh, domid) )
        o->xs_resume_failed = 1;
    o->resume_ns += now_ns() - t0;
    return 0;
}

/* Suspend the guest; 0, or -1 with o->err/call/msg set (guest left running). */
static int suspend_guest(const struct swap_req *rq, struct swap_out *o)
{
    char base[64], path[96];
    xc_domaininfo_t info;
    uint64_t t0, deadline;
    unsigned int poll_us = SUSPEND_POLL_MIN_US;
    unsigned int len = 0;
    char *v;
    char **ents;
    int err;

    snprintf(base, sizeof(base), "/local/domain/%u/control", rq->domid);
    if ( (err = get_dominfo(rq->domid, &info)) )
    {
        set_fail(o, err, "xc_domain_getinfolist", NULL);
        return -1;
    }
    if ( info.flags & XEN_DOMINF_dying )
    {
        set_fail(o, ENODEV, "suspend", "domain %u is dying", rq->domid);
        return -1;
    }
    if ( info.flags & XEN_DOMINF_hvm_guest )
    {
        set_fail(o, EOPNOTSUPP, "suspend", "domain %u is HVM: memswap moves PV domains only",
                 rq->domid);
        return -1;
    }
    if ( info.flags & XEN_DOMINF_shutdown )
    {
        set_fail(o, EBUSY, "suspend", "domain %u is already shut down (reason %u): "
                 "another toolstack operation (save/migrate?) is in progress",
                 rq->domid, shutdown_reason(&info));
        return -1;
    }
    if ( info.flags & XEN_DOMINF_paused )
    {
        set_fail(o, EBUSY, "suspend", "domain %u is paused and cannot suspend itself: "
                 "unpause it, or swap without suspending", rq->domid);
        return -1;
    }
    if ( !rq->force_suspend )
    {
        unsigned int n = 0;

        ents = xs_directory(xsh, XBT_NULL, base, &n);
        if ( !ents )
        {
            set_fail(o, EOPNOTSUPP, "suspend", "%s does not exist: the guest has no "
                     "PV shutdown driver to suspend it", base);
            return -1;
        }
        free(ents);
        snprintf(path, sizeof(path), "%s/feature-suspend", base);
        v = xs_read(xsh, XBT_NULL, path, &len);
        if ( !v || len == 0 || strtoul(v, NULL, 10) == 0 )
        {
            free(v);
            set_fail(o, EOPNOTSUPP, "suspend", "the guest does not advertise %s = 1: "
                     "it cannot be suspended cooperatively", path);
            return -1;
        }
        free(v);
    }

    snprintf(path, sizeof(path), "%s/shutdown", base);
    t0 = now_ns();
    if ( !xs_write(xsh, XBT_NULL, path, "suspend", 7) )
    {
        set_fail(o, errno, "xs_write", "cannot write %s", path);
        return -1;
    }
    deadline = t0 + (uint64_t)rq->suspend_timeout_ms * 1000000ull;
    for ( ;; )
    {
        if ( (err = get_dominfo(rq->domid, &info)) )
        {
            withdraw_request(path);
            set_fail(o, err, "xc_domain_getinfolist", "domain %u vanished while suspending",
                     rq->domid);
            return -1;
        }
        if ( is_suspended(&info) )
            break;
        if ( info.flags & (XEN_DOMINF_shutdown | XEN_DOMINF_dying) )
        {
            set_fail(o, EIO, "suspend", "domain %u shut down with reason %u instead of "
                     "suspending", rq->domid, shutdown_reason(&info));
            return -1;
        }
        if ( now_ns() >= deadline )
        {
            uint64_t grace;

            if ( withdraw_request(path) )
            {
                /* The guest never saw it: nothing will happen. */
                set_fail(o, ETIMEDOUT, "suspend", "domain %u did not suspend within %u ms "
                         "(request withdrawn)", rq->domid, rq->suspend_timeout_ms);
                return -1;
            }
            /* The guest acknowledged and is on its way: it cannot be called
             * back. Give it as long again; if it suspends, cancel that at once
             * so that it is never left suspended. */
            grace = now_ns() + (uint64_t)(rq->suspend_timeout_ms ? rq->suspend_timeout_ms
                                                                 : 1000) * 1000000ull;
            while ( now_ns() < grace )
            {
                if ( get_dominfo(rq->domid, &info) || is_suspended(&info) ||
                     (info.flags & (XEN_DOMINF_shutdown | XEN_DOMINF_dying)) )
                    break;
                sleep_us(SUSPEND_POLL_MAX_US);
            }
            if ( !get_dominfo(rq->domid, &info) && is_suspended(&info) )
            {
                struct swap_out tmp = { 0 };

                if ( (err = resume_guest(rq->domid, &tmp)) )
                {
                    set_fail(o, err, tmp.call, "domain %u suspended after the timeout and "
                             "could not be resumed: it is left suspended", rq->domid);
                    return -1;
                }
            }
            set_fail(o, ETIMEDOUT, "suspend", "domain %u acknowledged the suspend request "
                     "but did not suspend within %u ms", rq->domid, rq->suspend_timeout_ms);
            return -1;
        }
        sleep_us(poll_us);
        if ( poll_us < SUSPEND_POLL_MAX_US )
            poll_us *= 2;
    }
    o->suspend_ns += now_ns() - t0;
    return 0;
}

/* The whole operation, GIL released. 0, or -1 with o->err etc. set. */
static int do_swap(const struct swap_req *rq, struct swap_out *o)
{
    unsigned int attempt;
    int rc, err;

    for ( attempt = 0; ; attempt++ )
    {
        int coop = rq->cooperative && !rq->dry_run;

        if ( o->dc )
        {
            pthread_mutex_lock(&xen_lock);
            xencall_free_buffer(xcall, o->dc);
            pthread_mutex_unlock(&xen_lock);
            o->dc = NULL;
        }
        if ( coop && suspend_guest(rq, o) )
            return -1;
        o->suspended = coop;
        err = 0;
        pthread_mutex_lock(&xen_lock);
        rc = memswap_hypercall(rq->domid, rq->dry_run, rq->node, rq->nr_colours, rq->shift,
                               rq->bm, &o->dc, &err);
        pthread_mutex_unlock(&xen_lock);
        if ( coop )
        {
            int rerr = resume_guest(rq->domid, o);

            if ( rerr )
            {
                o->swap_err = rc < 0 ? err : 0;
                set_fail(o, rerr, o->call, "domain %u is left suspended: the swap %s, "
                         "then its cancelled resume failed", rq->domid,
                         rc < 0 ? "failed" : "succeeded");
                return -1;
            }
        }
        if ( !o->dc )
        {
            set_fail(o, err, "xencall_alloc_buffer", NULL);
            return -1;
        }
        if ( rc >= 0 )
            return 0;
        if ( err == EAGAIN && attempt < rq->retries )
        {
            unsigned int ms = RETRY_BACKOFF_MIN_MS << (attempt < 5 ? attempt : 5);

            o->retries++;
            sleep_us((ms < RETRY_BACKOFF_MAX_MS ? ms : RETRY_BACKOFF_MAX_MS) * 1000);
            continue;
        }
        if ( err == ENOSYS )
            set_fail(o, err, "XEN_DOMCTL_memswap",
                     "this hypervisor has no memswap domctl: boot the patched Xen");
        else if ( err == EAGAIN )
            set_fail(o, err, "XEN_DOMCTL_memswap", "the guest kept unpinned page tables "
                     "after %u retr%s (nothing was moved)%s", o->retries,
                     o->retries == 1 ? "y" : "ies",
                     rq->cooperative ? "" : ": try a cooperative (suspending) swap");
        else
            set_fail(o, err, "XEN_DOMCTL_memswap", NULL);
        return -1;
    }
}

PyObject *ms_xen_swap(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "domid", "colours", "nr_colours", "colour_shift",
                              "node", "dry_run", "cooperative", "suspend_timeout_ms",
                              "retries", "force_suspend", NULL };
    unsigned int domid, nr_colours = 1, shift = 0;
    PyObject *col_o = Py_None, *node_o = Py_None;
    int dry_run = 0, cooperative = 0, force_suspend = 0, rc = 0;
    int timeout_ms = 10000, retries = 0;
    unsigned long long bm[MS_XEN_COLOUR_WORDS];
    struct swap_req rq;
    struct swap_out o;
    struct xen_domctl_memswap *ms;
    uint32_t node = XEN_DOMCTL_MEMSWAP_NODE_ANY;
    PyObject *kept, *ret;

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "I|OIIOppiip", kwlist, &domid, &col_o,
                                      &nr_colours, &shift, &node_o, &dry_run,
                                      &cooperative, &timeout_ms, &retries, &force_suspend) )
        return NULL;
    if ( nr_colours == 0 || (nr_colours & (nr_colours - 1)) ||
         nr_colours > XEN_DOMCTL_MEMSWAP_MAX_COLOURS )
        return PyErr_Format(PyExc_ValueError,
                            "nr_colours must be a power of two <= %u",
                            (unsigned int)(MS_XEN_COLOUR_WORDS * 64));
    if ( timeout_ms <= 0 || timeout_ms > 3600 * 1000 )
        return PyErr_Format(PyExc_ValueError,
                            "suspend_timeout_ms must be 1..3600000, not %d", timeout_ms);
    if ( retries < 0 || retries > 100 )
        return PyErr_Format(PyExc_ValueError, "retries must be 0..100, not %d", retries);
    if ( ms_colours_from_py(col_o, nr_colours, bm, MS_XEN_COLOUR_WORDS) )
        return NULL;
    if ( node_o != Py_None )
    {
        long n = PyLong_AsLong(node_o);

        if ( n == -1 && PyErr_Occurred() )
            return NULL;
        if ( n < 0 )
            return PyErr_Format(PyExc_ValueError, "node %ld out of range", n);
        node = (uint32_t)n;
    }
    if ( need_xc("xencall1") || need_xs("xs_write") )
        return NULL;

    memset(&rq, 0, sizeof(rq));
    memset(&o, 0, sizeof(o));
    rq.domid = domid;
    rq.nr_colours = nr_colours;
    rq.shift = shift;
    rq.retries = (unsigned int)retries;
    rq.suspend_timeout_ms = (unsigned int)timeout_ms;
    rq.dry_run = dry_run;
    rq.cooperative = cooperative;
    rq.force_suspend = force_suspend;
    rq.node = node;
    rq.bm = bm;

    Py_BEGIN_ALLOW_THREADS
    rc = do_swap(&rq, &o);
    Py_END_ALLOW_THREADS

    if ( rc < 0 )
    {
        if ( o.msg[0] )
            ms_raise_msg(o.err, o.call, "%s", o.msg);
        else
            ms_raise(o.err, o.call);
        if ( o.dc && !strcmp(o.call, "XEN_DOMCTL_memswap") )
            ms_error_set_attr("phase", PyUnicode_FromString(
                memswap_phase_name(o.dc->u.memswap.failed_phase)));
        ms_error_set_attr("retries", PyLong_FromUnsignedLong(o.retries));
        if ( o.swap_err )
            ms_error_set_attr("swap_errno", PyLong_FromLong(o.swap_err));
        if ( o.dc )
            XEN_RUN(xencall_free_buffer(xcall, o.dc));
        return NULL;
    }
    ms = &o.dc->u.memswap;
    kept = Py_BuildValue("{sKsKsKsK}",
                         "granted", (unsigned long long)ms->frames_kept[MEMSWAP_KEPT_GRANTED],
                         "foreign", (unsigned long long)ms->frames_kept[MEMSWAP_KEPT_FOREIGN],
                         "unexplained", (unsigned long long)ms->frames_kept[MEMSWAP_KEPT_UNEXPLAINED],
                         "not_in_p2m", (unsigned long long)ms->frames_kept[MEMSWAP_KEPT_NOT_IN_P2M]);
    ret = kept ? Py_BuildValue("{sKsKsNsKsKsKsKs{}s{}sOsOsKsKsIsO}",
                               "frames_total", (unsigned long long)ms->frames_total,
                               "moved", (unsigned long long)ms->frames_moved,
                               "kept", kept,
                               "bytes_copied", (unsigned long long)ms->bytes_copied,
                               "paused_ns", (unsigned long long)ms->paused_ns,
                               "continuations", (unsigned long long)ms->continuations,
                               "extra_bytes_peak", (unsigned long long)ms->extra_bytes_peak,
                               "by_class", "phase_ns",
                               "dry_run", dry_run ? Py_True : Py_False,
                               "cooperative", o.suspended ? Py_True : Py_False,
                               "suspend_ns", (unsigned long long)o.suspend_ns,
                               "resume_ns", (unsigned long long)o.resume_ns,
                               "retries", o.retries,
                               "xs_resume_failed", o.xs_resume_failed ? Py_True : Py_False)
               : NULL;
    XEN_RUN(xencall_free_buffer(xcall, o.dc));
    return ret;
}

/* ---- the guest's P2M ------------------------------------------------------- */

#define FPP (XC_PAGE_SIZE / sizeof(uint64_t))    /* 64-bit entries per frame */

/*
 * Read a 64-bit PV guest's P2M through its 3-level frame-list tree:
 * shared_info.arch.pfn_to_mfn_frame_list_list -> mid frames -> leaf
 * frames, all foreign-mapped read-only (PV: the frame numbers are MFNs).
 * Returns 0 or an errno with *call set; on success *out holds max_pfn mfns.
 */
static int read_p2m(uint32_t domid, uint64_t **out, unsigned long *nr_out,
                    const char **call)
{
    xc_domaininfo_t info;
    unsigned int width;
    shared_info_any_t *si = NULL;
    uint64_t *fll = NULL, *mids = NULL, *leaves = NULL, *p2m = NULL;
    xen_pfn_t pfn, *arr = NULL;
    unsigned long max_pfn, nr_leaves, nr_mids, i;
    int err = 0;

    *call = "xc_domain_getinfolist";
    if ( xc_domain_getinfolist(xch, domid, 1, &info) != 1 || info.domain != domid )
        return errno && errno != EINVAL ? errno : ESRCH;
    if ( info.flags & XEN_DOMINF_hvm_guest )
    {
        *call = "xen_p2m";
        return EOPNOTSUPP;
    }
    *call = "xc_domain_get_guest_width";
    if ( xc_domain_get_guest_width(xch, domid, &width) )
        return errno;
    if ( width != 8 )
    {
        *call = "xen_p2m";
        return EOPNOTSUPP;   /* 32-bit PV guests: not supported */
    }

    *call = "xenforeignmemory_map";
    pfn = info.shared_info_frame;
    si = xenforeignmemory_map(xfm, domid, PROT_READ, 1, &pfn, NULL);
    if ( !si )
        return errno;
    max_pfn = si->x64.arch.max_pfn;
    pfn = si->x64.arch.pfn_to_mfn_frame_list_list;
    xenforeignmemory_unmap(xfm, si, 1);
    if ( pfn == 0 || pfn == ~(xen_pfn_t)0 )
    {
        *call = "xen_p2m";      /* no 3-level tree (linear p2m only) */
        return EOPNOTSUPP;
    }
    nr_leaves = (max_pfn + FPP - 1) / FPP;
    nr_mids = (nr_leaves + FPP - 1) / FPP;
    if ( nr_mids > FPP )
    {
        *call = "xen_p2m";
        return EFBIG;
    }
    fll = xenforeignmemory_map(xfm, domid, PROT_READ, 1, &pfn, NULL);
    if ( !fll )
        return errno;
    arr = calloc(nr_leaves ? nr_leaves : 1, sizeof(*arr));
    p2m = malloc((max_pfn ? max_pfn : 1) * sizeof(*p2m));
    if ( !arr || !p2m )
    {
        err = ENOMEM;
        goto out;
    }
    for ( i = 0; i < nr_mids; i++ )
        arr[i] = fll[i];
    if ( nr_mids )
    {
        mids = xenforeignmemory_map(xfm, domid, PROT_READ, nr_mids, arr, NULL);
        if ( !mids )
        {
            err = errno;
            goto out;
        }
        for ( i = 0; i < nr_leaves; i++ )
            arr[i] = mids[i];
        leaves = xenforeignmemory_map(xfm, domid, PROT_READ, nr_leaves, arr, NULL);
        if ( !leaves )
        {
            err = errno;
            goto out;
        }
        memcpy(p2m, leaves, max_pfn * sizeof(*p2m));
    }
    *out = p2m;
    *nr_out = max_pfn;
    p2m = NULL;
 out:
    if ( leaves )
        xenforeignmemory_unmap(xfm, leaves, nr_leaves);
    if ( mids )
        xenforeignmemory_unmap(xfm, mids, nr_mids);
    xenforeignmemory_unmap(xfm, fll, 1);
    free(arr);
    free(p2m);
    return err;
}

PyObject *ms_xen_p2m(PyObject *self, PyObject *args)
{
    unsigned int domid;
    uint64_t *p2m = NULL;
    unsigned long nr = 0, i;
    const char *call = NULL;
    int err;
    PyObject *list;

    if ( !PyArg_ParseTuple(args, "I", &domid) )
        return NULL;
    if ( need_xc("xen_p2m") )
        return NULL;
    XEN_RUN(err = read_p2m(domid, &p2m, &nr, &call));
    if ( err )
        return ms_raise(err, call);
    list = PyList_New(nr);
    for ( i = 0; list && i < nr; i++ )
    {
        PyObject *v = PyLong_FromUnsignedLongLong(p2m[i]);

        if ( !v )
        {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, v);
    }
    free(p2m);
    return list;
}

/* ---- xenstore -------------------------------------------------------------- */

/* Returns the value as str, or None if the node does not exist. */
PyObject *ms_xen_xs_read(PyObject *self, PyObject *args)
{
    const char *path;
    char *val;
    unsigned int len = 0;
    int err = 0;
    PyObject *ret;

    if ( !PyArg_ParseTuple(args, "s", &path) || need_xs("xs_read") )
        return NULL;
    XS_RUN(val = xs_read(xsh, XBT_NULL, path, &len); if ( !val ) err = errno);
    if ( !val )
    {
        if ( err == ENOENT )
            Py_RETURN_NONE;
        return ms_raise(err, "xs_read");
    }
    ret = PyUnicode_DecodeUTF8(val, len, "surrogateescape");
    free(val);
    return ret;
}

PyObject *ms_xen_xs_write(PyObject *self, PyObject *args)
{
    const char *path, *value;
    Py_ssize_t len;
    bool ok;
    int err = 0;

    if ( !PyArg_ParseTuple(args, "ss#", &path, &value, &len) || need_xs("xs_write") )
        return NULL;
    XS_RUN(ok = xs_write(xsh, XBT_NULL, path, value, (unsigned int)len);
           if ( !ok ) err = errno);
    if ( !ok )
        return ms_raise(err, "xs_write");
    Py_RETURN_NONE;
}

/* Returns the list of children, or None if the node does not exist. */
PyObject *ms_xen_xs_directory(PyObject *self, PyObject *args)
{
    const char *path;
    char **ents;
    unsigned int n = 0, i;
    int err = 0;
    PyObject *list;

    if ( !PyArg_ParseTuple(args, "s", &path) || need_xs("xs_directory") )
        return NULL;
    XS_RUN(ents = xs_directory(xsh, XBT_NULL, path, &n); if ( !ents ) err = errno);
    if ( !ents )
    {
        if ( err == ENOENT )
            Py_RETURN_NONE;
        return ms_raise(err, "xs_directory");
    }
    list = PyList_New(n);
    for ( i = 0; list && i < n; i++ )
    {
        PyObject *s = PyUnicode_DecodeUTF8(ents[i], strlen(ents[i]), "surrogateescape");

        if ( !s )
        {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, s);
    }
    free(ents);
    return list;
}

PyObject *ms_xen_xs_watch(PyObject *self, PyObject *args)
{
    const char *path, *token;
    bool ok;
    int err = 0;

    if ( !PyArg_ParseTuple(args, "ss", &path, &token) || need_xs("xs_watch") )
        return NULL;
    XS_RUN(ok = xs_watch(xsh, path, token); if ( !ok ) err = errno);
    if ( !ok )
        return ms_raise(err, "xs_watch");
    Py_RETURN_NONE;
}

PyObject *ms_xen_xs_unwatch(PyObject *self, PyObject *args)
{
    const char *path, *token;
    bool ok;
    int err = 0;

    if ( !PyArg_ParseTuple(args, "ss", &path, &token) || need_xs("xs_unwatch") )
        return NULL;
    XS_RUN(ok = xs_unwatch(xsh, path, token); if ( !ok ) err = errno);
    if ( !ok )
        return ms_raise(err, "xs_unwatch");
    Py_RETURN_NONE;
}

static char **wait_watch(int fd, int timeout_ms, int *err)
{
    char **ev;
    int pr;

    for ( ;; )
    {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        ev = xs_check_watch(xsh);
        if ( ev )
            return ev;
        if ( errno != EAGAIN )
        {
            *err = errno;
            return NULL;
        }
        pr = poll(&pfd, 1, timeout_ms);
        if ( pr < 0 )
        {
            *err = errno;
            return NULL;
        }
        if ( pr == 0 )
            return NULL;              /* timeout */
    }
}

/*
 * Wait for a watch event: returns (path, token), or None after @timeout
 * seconds (None: wait forever). Uses xs_fileno + xs_check_watch so the wait
 * can time out; the GIL is released while waiting.
 */
PyObject *ms_xen_xs_read_watch(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "timeout", NULL };
    PyObject *to_o = Py_None, *ret;
    char **ev;
    int ms = -1, fd, err = 0;

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &to_o) ||
         need_xs("xs_read_watch") )
        return NULL;
    if ( to_o != Py_None )
    {
        double t = PyFloat_AsDouble(to_o);

        if ( t == -1.0 && PyErr_Occurred() )
            return NULL;
        ms = t <= 0 ? 0 : (int)(t * 1000.0 + 0.5);
    }
    fd = xs_fileno(xsh);
    if ( fd < 0 )
        return ms_raise(errno, "xs_fileno");
    XS_RUN(ev = wait_watch(fd, ms, &err));
    if ( err == EINTR )
    {
        if ( PyErr_CheckSignals() < 0 )
            return NULL;
        Py_RETURN_NONE;
    }
    if ( !ev )
    {
        if ( err )
            return ms_raise(err, "xs_check_watch");
        Py_RETURN_NONE;
    }
    ret = Py_BuildValue("(ss)", ev[XS_WATCH_PATH], ev[XS_WATCH_TOKEN]);
    free(ev);
    return ret;
}

/* ---- Intel CMT (PSR): LLC occupancy ---------------------------------------- */

/* Returns NULL, or the failing call with *err set. */
static const char *psr_cmt_read(unsigned int domid, uint64_t *total, int *err)
{
    uint32_t rmid = 0, factor = 0;
    uint64_t data, tsc;
    xc_physinfo_t pi;
    unsigned int s, nr_sockets, cpus_per_socket;

    if ( !xc_psr_cmt_enabled(xch) )
    {
        *err = EOPNOTSUPP;
        return "xc_psr_cmt_enabled";
    }
    if ( xc_psr_cmt_get_domain_rmid(xch, domid, &rmid) )
        goto fail_rmid;
    if ( rmid == 0 &&
         (xc_psr_cmt_attach(xch, domid) ||
          xc_psr_cmt_get_domain_rmid(xch, domid, &rmid)) )
    {
        *err = errno;
        return "xc_psr_cmt_attach";
    }
    if ( xc_psr_cmt_get_l3_upscaling_factor(xch, &factor) )
    {
        *err = errno;
        return "xc_psr_cmt_get_l3_upscaling_factor";
    }
    memset(&pi, 0, sizeof(pi));
    if ( xc_physinfo(xch, &pi) )
    {
        *err = errno;
        return "xc_physinfo";
    }
    cpus_per_socket = pi.cores_per_socket * pi.threads_per_core;
    if ( !cpus_per_socket )
        cpus_per_socket = 1;
    nr_sockets = (pi.nr_cpus + cpus_per_socket - 1) / cpus_per_socket;
    /* Occupancy is per socket (per L3): sum a reading from a CPU of each. */
    *total = 0;
    for ( s = 0; s < nr_sockets; s++ )
    {
        if ( xc_psr_cmt_get_data(xch, rmid, s * cpus_per_socket,
                                 XC_PSR_CMT_L3_OCCUPANCY, &data, &tsc) )
        {
            *err = errno;
            return "xc_psr_cmt_get_data";
        }
        *total += data * factor;
    }
    return NULL;

 fail_rmid:
    *err = errno;
    return "xc_psr_cmt_get_domain_rmid";
}

PyObject *ms_xen_psr_cmt(PyObject *self, PyObject *args)
{
    unsigned int domid;
    uint64_t total = 0;
    int err = 0;
    const char *call = NULL;

    if ( !PyArg_ParseTuple(args, "I", &domid) || need_xc("xc_psr_cmt_enabled") )
        return NULL;
    XEN_RUN(call = psr_cmt_read(domid, &total, &err));
    if ( call )
        return ms_raise(err ? err : EIO, call);
    return PyLong_FromUnsignedLongLong(total);
}

/*
 * A guest left suspended by a cooperative swap whose caller died between
 * the suspend and the resume (memswapd killed): resume it cancelled, as
 * the swap would have. Refused (EINVAL) for a domain that is not shut
 * down for suspend, so it can never resume a guest that really stopped.
 */
PyObject *ms_xen_resume_suspended(PyObject *self, PyObject *args)
{
    unsigned int domid;
    xc_domaininfo_t info;
    struct swap_out o;
    int rc = 0, err = 0;

    if ( !PyArg_ParseTuple(args, "I", &domid) || need_xc("xc_domain_getinfolist") )
        return NULL;
    memset(&o, 0, sizeof(o));
    XEN_RUN(rc = xc_domain_getinfolist(xch, domid, 1, &info); err = errno);
    if ( rc != 1 || info.domain != domid )
        return ms_raise(rc < 0 ? err : ESRCH, "xc_domain_getinfolist");
    if ( !(info.flags & XEN_DOMINF_shutdown) ||
         ((info.flags >> XEN_DOMINF_shutdownshift) & XEN_DOMINF_shutdownmask) != SHUTDOWN_suspend )
        return ms_raise_msg(EINVAL, "xc_domain_resume", "domain is not suspended");
    Py_BEGIN_ALLOW_THREADS
    err = resume_guest(domid, &o);
    Py_END_ALLOW_THREADS
    if ( err )
        return ms_raise(err, o.call ? o.call : "xc_domain_resume");
    Py_RETURN_NONE;
}
