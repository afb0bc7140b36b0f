/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The Xen backend's Python layer: argument parsing, results and errors
 * around the Python-free Xen code of cext/xen/ (the memswap domctl, the
 * swap sequence with its refusals, the P2M) and a few direct libxenctrl
 * and libxenstore calls. Debian's libxen-dev (Xen 4.17).
 *
 * xen_open() opens the handles once per process. Every call runs with the
 * GIL released and xen_lock held for reading, so calls run concurrently (a
 * swap that takes seconds inside Xen does not hold up a domain list; the
 * libraries are reentrant, see cext/xen/xenhost.h); xen_open() and
 * xen_close() take it for writing, so the handles never go away under a
 * running call.
 */
#include "memswap_ext.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/memswap.h"
#include "cext/xen/xenhost.h"

#define PRIVCMD "/dev/xen/privcmd"

static pthread_rwlock_t xen_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct ms_xen xen;

/*
 * Run @stmt without the GIL, with the handles held open; @closed is set
 * (and @stmt not run) if they are not open.
 */
#define XEN_RUN(closed, stmt) do {                 \
        Py_BEGIN_ALLOW_THREADS                     \
        pthread_rwlock_rdlock(&xen_lock);          \
        (closed) = xen.xch == NULL;                \
        if ( !(closed) ) { stmt; }                 \
        pthread_rwlock_unlock(&xen_lock);          \
        Py_END_ALLOW_THREADS                       \
    } while ( 0 )

static PyObject *not_open(const char *call)
{
    return ms_raise_msg(ENXIO, call, "Xen interface not open: call xen_open() first");
}

static PyObject *raise_xen(const struct ms_xen_error *e)
{
    if ( e->msg[0] )
        return ms_raise_msg(e->err, e->call, "%s", e->msg);
    return ms_raise(e->err, e->call);
}

static void close_all(void)
{
    if ( xen.xsh )
        xs_close(xen.xsh);
    if ( xen.xfm )
        xenforeignmemory_close(xen.xfm);
    if ( xen.xcall )
        xencall_close(xen.xcall);
    if ( xen.xch )
        xc_interface_close(xen.xch);
    memset(&xen, 0, sizeof(xen));
}

PyObject *ms_xen_open(PyObject *self, PyObject *noargs)
{
    int fd, err = 0, is_open;
    const char *call = NULL;

    Py_BEGIN_ALLOW_THREADS
    pthread_rwlock_rdlock(&xen_lock);
    is_open = xen.xch != NULL;
    pthread_rwlock_unlock(&xen_lock);
    Py_END_ALLOW_THREADS
    if ( is_open )
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

    Py_BEGIN_ALLOW_THREADS
    pthread_rwlock_wrlock(&xen_lock);
    if ( !xen.xch )
    {
        /* Reentrant handles (no XC_OPENFLAG_NON_REENTRANT): see xenhost.h. */
        if ( !(xen.xch = xc_interface_open(NULL, NULL, 0)) )
            call = "xc_interface_open";
        else if ( !(xen.xcall = xencall_open(NULL, 0)) )
            call = "xencall_open";
        else if ( !(xen.xfm = xenforeignmemory_open(NULL, 0)) )
            call = "xenforeignmemory_open";
        else if ( !(xen.xsh = xs_open(0)) )
            call = "xs_open";
        if ( call )
        {
            err = errno;
            close_all();
        }
    }
    pthread_rwlock_unlock(&xen_lock);
    Py_END_ALLOW_THREADS
    if ( call )
        return ms_raise(err ? err : EIO, call);
    Py_RETURN_NONE;
}

PyObject *ms_xen_close(PyObject *self, PyObject *noargs)
{
    Py_BEGIN_ALLOW_THREADS
    pthread_rwlock_wrlock(&xen_lock);
    close_all();
    pthread_rwlock_unlock(&xen_lock);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* ---- domains and host ------------------------------------------------------ */

/*
 * A translated guest is PVH when the hypervisor emulates nothing of a PC
 * for it but the local APIC (and vPCI, for a PVH hardware domain), as
 * libxl creates one; HVM otherwise.
 */
static const char *guest_type(const xc_domaininfo_t *info)
{
    if ( !(info->flags & XEN_DOMINF_hvm_guest) )
        return "pv";
    return (info->arch_config.emulation_flags &
            ~(XEN_X86_EMU_LAPIC | XEN_X86_EMU_VPCI)) ? "hvm" : "pvh";
}

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
    int n = 0, i, err = 0, closed;
    PyObject *list = NULL;

    info = calloc(MAX_DOMS, sizeof(*info));
    names = calloc(MAX_DOMS, sizeof(*names));
    if ( !info || !names )
    {
        free(info);
        free(names);
        return PyErr_NoMemory();
    }
    XEN_RUN(closed,
            n = xc_domain_getinfolist(xen.xch, 0, MAX_DOMS, info);
            if ( n < 0 ) err = errno;
            for ( i = 0; i < n; i++ )
            {
                char path[64];
                unsigned int len;

                snprintf(path, sizeof(path), "/local/domain/%u/name", info[i].domain);
                names[i] = xs_read(xen.xsh, XBT_NULL, path, &len);
            });
    if ( closed )
        not_open("xc_domain_getinfolist");
    else if ( n < 0 )
        ms_raise(err, "xc_domain_getinfolist");
    else
        list = PyList_New(0);
    for ( i = 0; list && i < n; i++ )
    {
        int reason = ms_xen_shutdown_reason(&info[i]);
        PyObject *sr = reason < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(reason);
        PyObject *d = sr ? Py_BuildValue(
            "{sIsssssIsKsKsOsKsNss}",
            "domid", (unsigned int)info[i].domain,
            "name", names[i] ? names[i] : "",
            "state", dom_state(info[i].flags),
            "vcpus", info[i].nr_online_vcpus,
            "tot_pages", (unsigned long long)info[i].tot_pages,
            "max_pages", (unsigned long long)info[i].max_pages,
            "hvm", (info[i].flags & XEN_DOMINF_hvm_guest) ? Py_True : Py_False,
            "shared_info_frame", (unsigned long long)info[i].shared_info_frame,
            "shutdown_reason", sr,
            "type", guest_type(&info[i])) : NULL;

        if ( !d || PyList_Append(list, d) < 0 )
            Py_CLEAR(list);
        Py_XDECREF(d);
    }
    for ( i = 0; i < n; i++ )
        free(names[i]);
    free(names);
    free(info);
    return list;
}

PyObject *ms_xen_own_domid(PyObject *self, PyObject *noargs)
{
    int id = 0, closed;

    XEN_RUN(closed, id = ms_xen_read_own_domid(&xen));
    if ( closed )
        return not_open("xs_read");
    if ( id < 0 )
        return ms_raise_msg(-id, "xs_read", "cannot read this domain's own id "
                            "(the relative xenstore path \"domid\")");
    return PyLong_FromLong(id);
}

PyObject *ms_xen_physinfo(PyObject *self, PyObject *noargs)
{
    xc_physinfo_t pi;
    int rc = 0, err = 0, closed;

    memset(&pi, 0, sizeof(pi));
    XEN_RUN(closed, rc = xc_physinfo(xen.xch, &pi); if ( rc ) err = errno);
    if ( closed )
        return not_open("xc_physinfo");
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

/*
 * Memory by NUMA node, as the planner needs it to place a swap: Xen's
 * sysctl numainfo through libxenctrl, at most MS_XEN_MAX_NODES nodes. An
 * offline node reports memsize and memfree as XEN_INVALID_MEM_SZ (all ones),
 * passed through as is: the caller decides what it means.
 */
#define MS_XEN_MAX_NODES 64

PyObject *ms_xen_numainfo(PyObject *self, PyObject *noargs)
{
    xc_meminfo_t mem[MS_XEN_MAX_NODES];
    unsigned int nr = MS_XEN_MAX_NODES, i;
    int rc = 0, err = 0, closed;
    PyObject *list;

    memset(mem, 0, sizeof(mem));
    XEN_RUN(closed, rc = xc_numainfo(xen.xch, &nr, mem, NULL); if ( rc ) err = errno);
    if ( closed )
        return not_open("xc_numainfo");
    if ( rc )
        return ms_raise(err, "xc_numainfo");
    if ( nr > MS_XEN_MAX_NODES )
        nr = MS_XEN_MAX_NODES;
    if ( !(list = PyList_New(nr)) )
        return NULL;
    for ( i = 0; i < nr; i++ )
    {
        PyObject *d = Py_BuildValue("{sIsKsK}", "node", i,
                                    "memsize", (unsigned long long)mem[i].memsize,
                                    "memfree", (unsigned long long)mem[i].memfree);

        if ( !d )
        {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, d);
    }
    return list;
}

/* ---- the swap -------------------------------------------------------------- */

static const char *const stage_names[] = {
    [MS_COOP_DONE] = "done", [MS_COOP_PREFLIGHT] = "preflight",
    [MS_COOP_SUSPEND] = "suspend", [MS_COOP_SWAP] = "swap", [MS_COOP_RESUME] = "resume",
};

PyObject *ms_xen_swap(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "domid", "colours", "nr_colours", "colour_shift",
                              "node", "dry_run", "cooperative", "suspend_timeout_ms",
                              "retries", "force_suspend", "backoff_ms", "backoff_max_ms",
                              "live", "max_rounds", "dirty_threshold", NULL };
    unsigned int domid, nr_colours = 1, shift = 0, i, max_rounds = 0, dirty_threshold = 0;
    PyObject *col_o = Py_None, *node_o = Py_None, *kept, *ret;
    int dry_run = 0, cooperative = 0, force_suspend = 0, rc = 0, closed, live = 0;
    int timeout_ms = 10000, retries = 0, backoff_ms = 10, backoff_max_ms = 250;
    unsigned long long bm[MS_XEN_COLOUR_WORDS];
    struct ms_xen_swap_op s;
    struct ms_coop_policy pol;
    struct ms_coop_outcome o;
    const struct xen_domctl_memswap_swap *ms;

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "I|OIIOppiipiipII", kwlist, &domid, &col_o,
                                      &nr_colours, &shift, &node_o, &dry_run,
                                      &cooperative, &timeout_ms, &retries, &force_suspend,
                                      &backoff_ms, &backoff_max_ms, &live, &max_rounds,
                                      &dirty_threshold) )
        return NULL;
    if ( max_rounds > XEN_DOMCTL_MEMSWAP_LIVE_ROUNDS_MAX )
        return PyErr_Format(PyExc_ValueError, "max_rounds must be 0..%u (0: the default)",
                            (unsigned int)XEN_DOMCTL_MEMSWAP_LIVE_ROUNDS_MAX);
    if ( !live && (max_rounds || dirty_threshold) )
        return PyErr_Format(PyExc_ValueError, "max_rounds and dirty_threshold need live=True");
    if ( nr_colours == 0 || (nr_colours & (nr_colours - 1)) ||
         nr_colours > XEN_DOMCTL_MEMSWAP_MAX_COLOURS )
        return PyErr_Format(PyExc_ValueError,
                            "nr_colours must be a power of two <= %u",
                            (unsigned int)XEN_DOMCTL_MEMSWAP_MAX_COLOURS);
    if ( timeout_ms <= 0 || timeout_ms > 3600 * 1000 )
        return PyErr_Format(PyExc_ValueError,
                            "suspend_timeout_ms must be 1..3600000, not %d", timeout_ms);
    if ( retries < 0 || retries > 100 )
        return PyErr_Format(PyExc_ValueError, "retries must be 0..100, not %d", retries);
    if ( backoff_ms < 0 || backoff_max_ms < backoff_ms || backoff_max_ms > 60000 )
        return PyErr_Format(PyExc_ValueError, "backoff_ms and backoff_max_ms must satisfy "
                            "0 <= backoff_ms <= backoff_max_ms <= 60000");
    if ( ms_colours_from_py(col_o, nr_colours, bm, MS_XEN_COLOUR_WORDS) )
        return NULL;

    memset(&s, 0, sizeof(s));
    s.rq.node = XEN_DOMCTL_MEMSWAP_NODE_ANY;
    if ( node_o != Py_None )
    {
        long n = PyLong_AsLong(node_o);

        if ( n == -1 && PyErr_Occurred() )
            return NULL;
        if ( n < 0 || n >= XEN_DOMCTL_MEMSWAP_NODE_ANY )
            return PyErr_Format(PyExc_ValueError, "node %ld out of range", n);
        s.rq.node = (uint32_t)n;
    }
    s.x = &xen;
    s.rq.domid = domid;
    s.rq.flags = (dry_run ? XEN_DOMCTL_MEMSWAP_F_DRY_RUN : 0) |
                 (live ? XEN_DOMCTL_MEMSWAP_F_LIVE : 0);
    s.rq.live_max_rounds = max_rounds;
    s.rq.live_dirty_threshold = dirty_threshold;
    s.rq.nr_colours = nr_colours;
    s.rq.colour_shift = shift;
    for ( i = 0; i < MS_XEN_COLOUR_WORDS; i++ )
        s.rq.colours[i] = bm[i];
    s.suspend_timeout_ms = (unsigned int)timeout_ms;
    s.force_suspend = force_suspend;
    memset(&pol, 0, sizeof(pol));
    pol.cooperative = cooperative && !dry_run;   /* a plan never disturbs the guest */
    pol.retries = (unsigned int)retries;
    pol.backoff = (unsigned int)backoff_ms;
    pol.backoff_max = (unsigned int)backoff_max_ms;

    XEN_RUN(closed, rc = ms_xen_swap_run(&s, &pol, &o));
    if ( closed )
        return not_open("xencall1");
    ms = &s.result.u.swap;
    if ( rc )
    {
        raise_xen(&s.e);
        ms_error_set_attr("stage", PyUnicode_FromString(stage_names[o.stage]));
        if ( s.have_result && s.e.call && !strcmp(s.e.call, "XEN_DOMCTL_memswap") )
            ms_error_set_attr("phase", PyUnicode_FromString(
                memswap_phase_name(ms->failed_phase)));
        ms_error_set_attr("retries", PyLong_FromUnsignedLong(o.retries));
        if ( o.stage == MS_COOP_RESUME )
            ms_error_set_attr("swap_errno", PyLong_FromLong(o.swap_err));
        return NULL;
    }
    kept = Py_BuildValue("{sKsKsKsKsKsKsK}",
                         "granted", (unsigned long long)ms->frames_kept[MEMSWAP_KEPT_GRANTED],
                         "foreign", (unsigned long long)ms->frames_kept[MEMSWAP_KEPT_FOREIGN],
                         "unexplained", (unsigned long long)ms->frames_kept[MEMSWAP_KEPT_UNEXPLAINED],
                         "not_in_p2m", (unsigned long long)ms->frames_kept[MEMSWAP_KEPT_NOT_IN_P2M],
                         "xen", (unsigned long long)ms->frames_kept[MEMSWAP_KEPT_XEN],
                         "p2m_type", (unsigned long long)ms->frames_kept[MEMSWAP_KEPT_P2M_TYPE],
                         "changed", (unsigned long long)ms->frames_kept[MEMSWAP_KEPT_CHANGED]);
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
                               "suspend_ns", (unsigned long long)s.suspend_ns,
                               "resume_ns", (unsigned long long)s.resume_ns,
                               "retries", o.retries,
                               "xs_resume_failed", s.xs_resume_failed ? Py_True : Py_False)
               : NULL;
    if ( ret && (ms_dict_set_u64(ret, "live_rounds", ms->live_rounds) ||
                 ms_dict_set_u64(ret, "live_precopy_pages", ms->live_precopy_pages) ||
                 ms_dict_set_u64(ret, "live_final_pages", ms->live_final_pages) ||
                 PyDict_SetItemString(ret, "live", live ? Py_True : Py_False) ||
                 PyDict_SetItemString(ret, "translated", o.translated ? Py_True : Py_False)) )
        Py_CLEAR(ret);
    return ret;
}

/* ---- where a domain's memory is ---------------------------------------------- */

PyObject *ms_xen_query_domain(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "domid", "nr_colours", "colour_shift", "frames", NULL };
    unsigned int domid, nr_colours = 1, shift = 0;
    struct ms_xen_occupancy o;
    struct ms_xen_error e;
    int frames = 0, err = 0, closed;
    PyObject *d;

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "I|IIp", kwlist, &domid, &nr_colours, &shift,
                                      &frames) )
        return NULL;
    if ( nr_colours == 0 || (nr_colours & (nr_colours - 1)) ||
         nr_colours > XEN_DOMCTL_MEMSWAP_MAX_COLOURS || shift > 32 )
        return PyErr_Format(PyExc_ValueError, "nr_colours must be a power of two <= %u "
                            "and colour_shift <= 32", (unsigned int)XEN_DOMCTL_MEMSWAP_MAX_COLOURS);
    XEN_RUN(closed, err = ms_xen_occupancy(&xen, domid, nr_colours, shift, frames, &o, &e));
    if ( closed )
        return not_open("xen_query");
    if ( err )
        return raise_xen(&e);
    d = ms_occupancy_dict(o.colour_counts, o.nr_colours, o.node_counts, o.host_nr_nodes,
                          o.frames, frames ? o.nr_pfns : 0, frames, o.nr_pfns,
                          o.frames_counted, o.tot_pages, o.translated);
    ms_xen_occupancy_free(&o);
    return d;
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
    struct ms_xen_error e;
    int err = 0, closed;

    if ( !PyArg_ParseTuple(args, "I", &domid) )
        return NULL;
    XEN_RUN(closed, err = ms_xen_resume_cancelled(&xen, domid, &e));
    if ( closed )
        return not_open("xc_domain_resume");
    if ( err )
        return raise_xen(&e);
    Py_RETURN_NONE;
}

/*
 * A swap the hypervisor still holds or runs for a domain whose caller died
 * (memswapd killed between a live swap's hold and its final stop, or in
 * the hypercall): XEN_DOMCTL_MEMSWAP_OP_CANCEL rolls it back, or finishes
 * it past its point of no return. None when there was none (ENOENT), else
 * dict(moved, frames_total, failed_phase) of the abandoned swap.
 */
PyObject *ms_xen_cancel_swap(PyObject *self, PyObject *args)
{
    unsigned int domid;
    struct xen_domctl_memswap out;
    int err = 0, closed;

    if ( !PyArg_ParseTuple(args, "I", &domid) )
        return NULL;
    memset(&out, 0, sizeof(out));
    XEN_RUN(closed, err = ms_xen_memswap_cancel(&xen, domid, 0, &out));
    if ( closed )
        return not_open("XEN_DOMCTL_memswap");
    if ( err == ENOENT )
        Py_RETURN_NONE;
    if ( err )
        return ms_raise(err, "XEN_DOMCTL_memswap");
    return Py_BuildValue("{sKsKss}",
                         "moved", (unsigned long long)out.u.swap.frames_moved,
                         "frames_total", (unsigned long long)out.u.swap.frames_total,
                         "failed_phase", memswap_phase_name(out.u.swap.failed_phase));
}

/* ---- the guest's P2M ------------------------------------------------------- */

PyObject *ms_xen_p2m(PyObject *self, PyObject *args)
{
    unsigned int domid;
    uint64_t *p2m = NULL;
    unsigned long nr = 0, i;
    struct ms_xen_error e;
    int err = 0, closed;
    PyObject *list;

    if ( !PyArg_ParseTuple(args, "I", &domid) )
        return NULL;
    XEN_RUN(closed,
            err = ms_xen_read_p2m(&xen, domid, ms_xen_read_own_domid(&xen), &p2m, &nr, &e));
    if ( closed )
        return not_open("xen_p2m");
    if ( err )
        return raise_xen(&e);
    list = PyList_New(nr);
    for ( i = 0; list && i < nr; i++ )
    {
        PyObject *v = p2m[i] == MS_XEN_P2M_NONE ? PyLong_FromLong(-1)
                                                : PyLong_FromUnsignedLongLong(p2m[i]);

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
    char *val = NULL;
    unsigned int len = 0;
    int err = 0, closed;
    PyObject *ret;

    if ( !PyArg_ParseTuple(args, "s", &path) )
        return NULL;
    XEN_RUN(closed, val = xs_read(xen.xsh, XBT_NULL, path, &len); if ( !val ) err = errno);
    if ( closed )
        return not_open("xs_read");
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
    bool ok = false;
    int err = 0, closed;

    if ( !PyArg_ParseTuple(args, "ss#", &path, &value, &len) )
        return NULL;
    XEN_RUN(closed, ok = xs_write(xen.xsh, XBT_NULL, path, value, (unsigned int)len);
            if ( !ok ) err = errno);
    if ( closed )
        return not_open("xs_write");
    if ( !ok )
        return ms_raise(err, "xs_write");
    Py_RETURN_NONE;
}

/* Returns the list of children, or None if the node does not exist. */
PyObject *ms_xen_xs_directory(PyObject *self, PyObject *args)
{
    const char *path;
    char **ents = NULL;
    unsigned int n = 0, i;
    int err = 0, closed;
    PyObject *list;

    if ( !PyArg_ParseTuple(args, "s", &path) )
        return NULL;
    XEN_RUN(closed, ents = xs_directory(xen.xsh, XBT_NULL, path, &n); if ( !ents ) err = errno);
    if ( closed )
        return not_open("xs_directory");
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

static PyObject *xs_watch_op(PyObject *args, bool watch)
{
    const char *path, *token, *call = watch ? "xs_watch" : "xs_unwatch";
    bool ok = false;
    int err = 0, closed;

    if ( !PyArg_ParseTuple(args, "ss", &path, &token) )
        return NULL;
    XEN_RUN(closed, ok = watch ? xs_watch(xen.xsh, path, token)
                               : xs_unwatch(xen.xsh, path, token);
            if ( !ok ) err = errno);
    if ( closed )
        return not_open(call);
    if ( !ok )
        return ms_raise(err, call);
    Py_RETURN_NONE;
}

PyObject *ms_xen_xs_watch(PyObject *self, PyObject *args)
{
    return xs_watch_op(args, true);
}

PyObject *ms_xen_xs_unwatch(PyObject *self, PyObject *args)
{
    return xs_watch_op(args, false);
}

static char **wait_watch(struct xs_handle *xsh, int timeout_ms, int *err)
{
    int fd = xs_fileno(xsh), pr;
    char **ev;

    if ( fd < 0 )
    {
        *err = errno;
        return NULL;
    }
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
 * can time out; the GIL is released while waiting (xen_close() waits for
 * it to end).
 */
PyObject *ms_xen_xs_read_watch(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "timeout", NULL };
    PyObject *to_o = Py_None, *ret;
    char **ev = NULL;
    int ms = -1, err = 0, closed;

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &to_o) )
        return NULL;
    if ( to_o != Py_None )
    {
        double t = PyFloat_AsDouble(to_o);

        if ( t == -1.0 && PyErr_Occurred() )
            return NULL;
        if ( t != t )
            return PyErr_Format(PyExc_ValueError, "timeout must be a number, not NaN");
        ms = t <= 0 ? 0 : t > 86400.0 ? 86400 * 1000 : (int)(t * 1000.0 + 0.5);
    }
    XEN_RUN(closed, ev = wait_watch(xen.xsh, ms, &err));
    if ( closed )
        return not_open("xs_read_watch");
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

    if ( !xc_psr_cmt_enabled(xen.xch) )
    {
        *err = EOPNOTSUPP;
        return "xc_psr_cmt_enabled";
    }
    if ( xc_psr_cmt_get_domain_rmid(xen.xch, domid, &rmid) )
        goto fail_rmid;
    if ( rmid == 0 &&
         (xc_psr_cmt_attach(xen.xch, domid) ||
          xc_psr_cmt_get_domain_rmid(xen.xch, domid, &rmid)) )
    {
        *err = errno;
        return "xc_psr_cmt_attach";
    }
    if ( xc_psr_cmt_get_l3_upscaling_factor(xen.xch, &factor) )
    {
        *err = errno;
        return "xc_psr_cmt_get_l3_upscaling_factor";
    }
    memset(&pi, 0, sizeof(pi));
    if ( xc_physinfo(xen.xch, &pi) )
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
        if ( xc_psr_cmt_get_data(xen.xch, rmid, s * cpus_per_socket,
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
    int err = 0, closed;
    const char *call = NULL;

    if ( !PyArg_ParseTuple(args, "I", &domid) )
        return NULL;
    XEN_RUN(closed, call = psr_cmt_read(domid, &total, &err));
    if ( closed )
        return not_open("xc_psr_cmt_enabled");
    if ( call )
        return ms_raise(err ? err : EIO, call);
    return PyLong_FromUnsignedLongLong(total);
}
