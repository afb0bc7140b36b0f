/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The simulator backend: module-level functions over sim/sim.h.
 *
 * The simulator is one host per process (its frame table and RAM are
 * process globals), so these are plain functions, not methods. Every call
 * into the simulator releases the GIL and then takes sim_lock, a mutex that
 * serialises the simulator between Python threads; the lock is only ever
 * taken with the GIL released, so a thread holding it may reacquire the GIL
 * (the swap's progress callback does) without deadlock. A progress callback
 * that calls back into the simulator gets MemswapError(EDEADLK) instead of
 * hanging.
 */
#include "memswap_ext.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim.h"
#include "cext/sim/sim_coop.h"

static pthread_mutex_t sim_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t sim_owner;
static int sim_owned;                 /* sim_owner valid (atomic access) */

static int host_up;                   /* a host exists (GIL-protected) */
static struct sim_host_config host_cfg;

static void sim_acquire(void)
{
    pthread_mutex_lock(&sim_lock);
    sim_owner = pthread_self();
    __atomic_store_n(&sim_owned, 1, __ATOMIC_RELEASE);
}

static void sim_release(void)
{
    __atomic_store_n(&sim_owned, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&sim_lock);
}

/* With the GIL held: refuse re-entry from a callback, and a missing host. */
static int sim_check(const char *call, int need_host)
{
    if ( __atomic_load_n(&sim_owned, __ATOMIC_ACQUIRE) &&
         pthread_equal(sim_owner, pthread_self()) )
    {
        ms_raise_msg(EDEADLK, call, "the simulator is busy in this thread: "
                     "do not call it from a progress callback");
        return -1;
    }
    if ( need_host && !host_up )
    {
        ms_raise_msg(ENXIO, call, "no simulated host: call sim_host_create() first");
        return -1;
    }
    return 0;
}

/* Run @stmt on the simulator with the GIL released and the sim lock held. */
#define SIM_RUN(stmt) do {                         \
        Py_BEGIN_ALLOW_THREADS                     \
        sim_acquire();                             \
        stmt;                                      \
        sim_release();                             \
        Py_END_ALLOW_THREADS                       \
    } while ( 0 )

#define SIM_ENTER(call) do { if ( sim_check(call, 1) ) return NULL; } while ( 0 )

static int get_domid(PyObject *args, unsigned int *domid)
{
    return PyArg_ParseTuple(args, "I", domid) ? 0 : -1;
}

static int node_from_py(PyObject *obj, uint32_t *node)
{
    long n;

    if ( obj == NULL || obj == Py_None )
    {
        *node = MEMSWAP_NODE_ANY;
        return 0;
    }
    n = PyLong_AsLong(obj);
    if ( n == -1 && PyErr_Occurred() )
        return -1;
    if ( n < 0 || n >= 64 )
    {
        PyErr_Format(PyExc_ValueError, "node %ld out of range", n);
        return -1;
    }
    *node = (uint32_t)n;
    return 0;
}

static unsigned int host_nr_colours(void)
{
    struct memswap_geometry g;

    SIM_RUN(sim_host_geometry(&g));
    return g.nr_colours;
}

/* ---- host ------------------------------------------------------------------ */

PyObject *ms_sim_host_create(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "ram_bytes", "nr_nodes", "llc_bytes", "ways",
                              "line", "seed", NULL };
    unsigned long long ram = 512ULL << 20, llc = 8ULL << 20, seed = 1;
    unsigned int nodes = 1, ways = 16, line = 64;
    struct sim_host_config cfg;
    int rc;

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "|KIKIIK", kwlist, &ram, &nodes,
                                      &llc, &ways, &line, &seed) )
        return NULL;
    if ( sim_check("sim_host_create", 0) )
        return NULL;
    if ( host_up )
        return ms_raise_msg(EEXIST, "sim_host_create",
                            "a simulated host exists: sim_host_destroy() it first");
    memset(&cfg, 0, sizeof(cfg));
    cfg.ram_bytes = ram;
    cfg.nr_nodes = nodes;
    cfg.llc.size_bytes = llc;
    cfg.llc.ways = ways;
    cfg.llc.line_bytes = line;
    cfg.seed = seed;
    cfg.prefault = false;
    SIM_RUN(rc = sim_host_create(&cfg));
    if ( rc < 0 )
        return ms_raise(-rc, "sim_host_create");
    host_up = 1;
    host_cfg = cfg;
    Py_RETURN_NONE;
}

PyObject *ms_sim_host_destroy(PyObject *self, PyObject *noargs)
{
    if ( sim_check("sim_host_destroy", 0) )
        return NULL;
    if ( host_up )
    {
        SIM_RUN(sim_host_destroy());
        host_up = 0;
    }
    Py_RETURN_NONE;
}

PyObject *ms_sim_host_exists(PyObject *self, PyObject *noargs)
{
    return PyBool_FromLong(host_up);
}

PyObject *ms_sim_geometry(PyObject *self, PyObject *noargs)
{
    struct memswap_geometry g;
    unsigned int nodes;
    unsigned long total, free_frames;

    SIM_ENTER("sim_geometry");
    SIM_RUN(sim_host_geometry(&g); nodes = sim_host_nr_nodes();
            total = sim_host_total_frames(); free_frames = sim_host_free_frames(-1, NULL));
    return Py_BuildValue("{sIsIsKsIsIsIsksk}",
                         "nr_colours", g.nr_colours,
                         "colour_shift", g.colour_shift,
                         "llc_bytes", (unsigned long long)host_cfg.llc.size_bytes,
                         "ways", host_cfg.llc.ways,
                         "line_bytes", host_cfg.llc.line_bytes,
                         "nr_nodes", nodes,
                         "total_frames", total,
                         "free_frames", free_frames);
}

PyObject *ms_sim_free_frames(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "node", "colours", NULL };
    PyObject *node_o = Py_None, *col_o = Py_None;
    unsigned long long bm[MEMSWAP_COLOUR_WORDS];
    uint64_t bm64[MEMSWAP_COLOUR_WORDS];
    uint32_t node;
    unsigned long n;
    int i;

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "|OO", kwlist, &node_o, &col_o) )
        return NULL;
    SIM_ENTER("sim_host_free_frames");
    if ( node_from_py(node_o, &node) ||
         ms_colours_from_py(col_o, host_nr_colours(), bm, MEMSWAP_COLOUR_WORDS) )
        return NULL;
    for ( i = 0; i < MEMSWAP_COLOUR_WORDS; i++ )
        bm64[i] = bm[i];
    SIM_RUN(n = sim_host_free_frames(node == MEMSWAP_NODE_ANY ? -1 : (int)node,
                                     col_o == Py_None ? NULL : bm64));
    return PyLong_FromUnsignedLong(n);
}

/* ---- domains --------------------------------------------------------------- */

static const char *const guest_type_names[] = {
    [SIM_GUEST_PV] = "pv", [SIM_GUEST_PVH] = "pvh", [SIM_GUEST_HVM] = "hvm",
};

static int guest_type_from_name(const char *name, uint32_t *type)
{
    uint32_t t;

    for ( t = 0; t < sizeof(guest_type_names) / sizeof(guest_type_names[0]); t++ )
        if ( !strcmp(name, guest_type_names[t]) )
        {
            *type = t;
            return 0;
        }
    return -1;
}

PyObject *ms_sim_domain_create(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "name", "mem_bytes", "vcpus", "address_spaces",
                              "node", "colours", "hvm", "with_devices", "seed",
                              "forks", "type", NULL };
    const char *name, *type = NULL;
    unsigned long long mem, seed = 0;
    unsigned int vcpus = 1, aspaces = 2;
    PyObject *node_o = Py_None, *col_o = Py_None;
    int hvm = 0, devices = 1, forks = 0, rc, i;
    unsigned long long bm[MEMSWAP_COLOUR_WORDS];
    struct sim_guest_config cfg;

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "sK|IIOOppKpz", kwlist, &name, &mem,
                                      &vcpus, &aspaces, &node_o, &col_o, &hvm,
                                      &devices, &seed, &forks, &type) )
        return NULL;
    SIM_ENTER("sim_domain_create");
    if ( strlen(name) >= SIM_NAME_LEN )
        return PyErr_Format(PyExc_ValueError, "name longer than %d bytes",
                            SIM_NAME_LEN - 1);
    memset(&cfg, 0, sizeof(cfg));
    if ( node_from_py(node_o, &cfg.node) ||
         ms_colours_from_py(col_o, host_nr_colours(), bm, MEMSWAP_COLOUR_WORDS) )
        return NULL;
    strcpy(cfg.name, name);
    cfg.mem_bytes = mem;
    cfg.nr_vcpus = vcpus;
    cfg.nr_address_spaces = aspaces;
    for ( i = 0; i < MEMSWAP_COLOUR_WORDS; i++ )
        cfg.colours[i] = bm[i];
    cfg.hvm = hvm;
    if ( type && guest_type_from_name(type, &cfg.type) )
        return PyErr_Format(PyExc_ValueError, "type must be 'pv', 'pvh' or 'hvm', not '%s'",
                            type);
    cfg.with_devices = devices;
    cfg.seed = seed;
    cfg.forks = forks;
    SIM_RUN(rc = sim_domain_create(&cfg));
    if ( rc < 0 )
        return ms_raise(-rc, "sim_domain_create");
    return PyLong_FromLong(rc);
}

#define DOMID_OP(fn, call)                                        \
PyObject *ms_##fn(PyObject *self, PyObject *args)                 \
{                                                                 \
    unsigned int domid;                                           \
    int rc;                                                       \
                                                                  \
    if ( get_domid(args, &domid) )                                \
        return NULL;                                              \
    SIM_ENTER(call);                                              \
    SIM_RUN(rc = fn(domid));                                      \
    if ( rc < 0 )                                                 \
        return ms_raise(-rc, call);                               \
    Py_RETURN_NONE;                                               \
}

DOMID_OP(sim_domain_destroy, "sim_domain_destroy")
DOMID_OP(sim_domain_pause, "sim_domain_pause")
DOMID_OP(sim_domain_unpause, "sim_domain_unpause")
DOMID_OP(sim_domain_set_dying, "sim_domain_set_dying")

static const char *state_name(enum sim_dom_state s)
{
    switch ( s )
    {
    case SIM_DOM_RUNNING: return "running";
    case SIM_DOM_PAUSED:  return "paused";
    case SIM_DOM_DYING:   return "dying";
    }
    return "unknown";
}

PyObject *ms_sim_domain_list(PyObject *self, PyObject *noargs)
{
    unsigned int domids[SIM_MAX_DOMAINS];
    struct sim_domain_info info[SIM_MAX_DOMAINS];
    int rcs[SIM_MAX_DOMAINS];
    int n = 0, i;
    PyObject *list;

    SIM_ENTER("sim_domain_list");
    SIM_RUN(n = sim_domain_list(domids, SIM_MAX_DOMAINS);
            for ( i = 0; i < n; i++ )
                rcs[i] = sim_domain_info(domids[i], &info[i]));
    if ( n < 0 )
        return ms_raise(-n, "sim_domain_list");
    list = PyList_New(0);
    if ( !list )
        return NULL;
    for ( i = 0; i < n; i++ )
    {
        PyObject *d;

        if ( rcs[i] < 0 )
            continue;   /* vanished between list and info */
        /* shutdown_reason as on Xen: the simulator never shuts a domain down
         * (its suspended guests show as paused). */
        d = Py_BuildValue("{sIsssssIsKsKsOsO}",
                          "domid", info[i].domid,
                          "name", info[i].name,
                          "state", state_name(info[i].state),
                          "vcpus", info[i].nr_vcpus,
                          "tot_pages", (unsigned long long)info[i].tot_pages,
                          "max_pages", (unsigned long long)info[i].max_pages,
                          "hvm", info[i].hvm ? Py_True : Py_False,
                          "shutdown_reason", Py_None);
        if ( d )
        {
            PyObject *t = PyUnicode_FromString(guest_type_names[info[i].type]);

            if ( !t || PyDict_SetItemString(d, "type", t) < 0 )
                Py_CLEAR(d);
            Py_XDECREF(t);
        }
        if ( !d || PyList_Append(list, d) < 0 )
        {
            Py_XDECREF(d);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(d);
    }
    return list;
}

PyObject *ms_sim_colour_counts(PyObject *self, PyObject *args)
{
    unsigned int domid, nr, i;
    uint64_t *counts;
    PyObject *list;
    int rc;

    if ( get_domid(args, &domid) )
        return NULL;
    SIM_ENTER("sim_domain_colour_counts");
    nr = host_nr_colours();
    counts = PyMem_Calloc(nr ? nr : 1, sizeof(*counts));
    if ( !counts )
        return PyErr_NoMemory();
    SIM_RUN(rc = sim_domain_colour_counts(domid, counts, nr));
    if ( rc < 0 )
    {
        PyMem_Free(counts);
        return ms_raise(-rc, "sim_domain_colour_counts");
    }
    list = PyList_New(nr);
    for ( i = 0; list && i < nr; i++ )
    {
        PyObject *v = PyLong_FromUnsignedLongLong(counts[i]);

        if ( !v )
        {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, v);
    }
    PyMem_Free(counts);
    return list;
}

/* The guest's P2M as the simulator sees it (pfn -> mfn, -1 if absent). */
PyObject *ms_sim_p2m(PyObject *self, PyObject *args)
{
    unsigned int domid;
    struct sim_domain_info info;
    unsigned long *mfns = NULL, i, nr = 0;
    PyObject *list;
    int rc;

    if ( get_domid(args, &domid) )
        return NULL;
    SIM_ENTER("sim_domain_pfn_to_mfn");
    SIM_RUN(rc = sim_domain_info(domid, &info);
            if ( rc == 0 )
            {
                nr = info.max_pfn;
                mfns = malloc((nr ? nr : 1) * sizeof(*mfns));
                if ( !mfns )
                    rc = -ENOMEM;
                for ( i = 0; mfns && i < nr; i++ )
                    mfns[i] = sim_domain_pfn_to_mfn(domid, i);
            });
    if ( rc < 0 )
        return ms_raise(-rc, "sim_domain_info");
    list = PyList_New(nr);
    for ( i = 0; list && i < nr; i++ )
    {
        PyObject *v = mfns[i] == ~0UL ? PyLong_FromLong(-1)
                                      : PyLong_FromUnsignedLong(mfns[i]);
        if ( !v )
        {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, v);
    }
    free(mfns);
    return list;
}

/* Checksums of every pfn's bytes as the guest sees them (0: not populated). */
PyObject *ms_sim_checksums(PyObject *self, PyObject *args)
{
    unsigned int domid;
    struct sim_domain_info info;
    uint64_t *sums = NULL;
    unsigned long nr = 0, i;
    PyObject *list;
    int rc;

    if ( get_domid(args, &domid) )
        return NULL;
    SIM_ENTER("sim_guest_checksums");
    SIM_RUN(rc = sim_domain_info(domid, &info);
            if ( rc == 0 )
            {
                nr = info.max_pfn;
                sums = calloc(nr ? nr : 1, sizeof(*sums));
                rc = sums ? sim_guest_checksums(domid, sums, nr) : -ENOMEM;
            });
    if ( rc < 0 )
    {
        free(sums);
        return ms_raise(-rc, "sim_guest_checksums");
    }
    list = PyList_New(nr);
    for ( i = 0; list && i < nr; i++ )
    {
        PyObject *v = PyLong_FromUnsignedLongLong(sums[i]);

        if ( !v )
        {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, v);
    }
    free(sums);
    return list;
}

/* ---- cache model ----------------------------------------------------------- */

static int pattern_from_py(PyObject *obj, enum sim_pattern *p)
{
    if ( PyUnicode_Check(obj) )
    {
        const char *s = PyUnicode_AsUTF8(obj);

        if ( !s )
            return -1;
        if ( !strcmp(s, "sequential") || !strcmp(s, "seq") )
            *p = SIM_PAT_SEQUENTIAL;
        else if ( !strcmp(s, "random") )
            *p = SIM_PAT_RANDOM;
        else if ( !strcmp(s, "stride") )
            *p = SIM_PAT_STRIDE;
        else
        {
            PyErr_Format(PyExc_ValueError,
                         "pattern must be 'sequential', 'random' or 'stride', not %R", obj);
            return -1;
        }
        return 0;
    }
    PyErr_SetString(PyExc_TypeError, "pattern must be a str");
    return -1;
}

PyObject *ms_sim_set_workload(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "domid", "wss_bytes", "pattern", "stride",
                              "intensity", "weight", NULL };
    unsigned int domid, stride = 64, intensity = 30, weight = 1;
    unsigned long long wss;
    PyObject *pat_o = NULL;
    struct sim_workload w;
    int rc;

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "IK|OIII", kwlist, &domid, &wss,
                                      &pat_o, &stride, &intensity, &weight) )
        return NULL;
    SIM_ENTER("sim_domain_set_workload");
    memset(&w, 0, sizeof(w));
    w.pattern = SIM_PAT_RANDOM;
    if ( pat_o && pattern_from_py(pat_o, &w.pattern) )
        return NULL;
    w.wss_bytes = wss;
    w.stride_bytes = stride;
    w.intensity = intensity;
    w.weight = weight;
    SIM_RUN(rc = sim_domain_set_workload(domid, &w));
    if ( rc < 0 )
        return ms_raise(-rc, "sim_domain_set_workload");
    Py_RETURN_NONE;
}

PyObject *ms_sim_llc_run(PyObject *self, PyObject *args)
{
    unsigned long long accesses;

    if ( !PyArg_ParseTuple(args, "K", &accesses) )
        return NULL;
    SIM_ENTER("sim_llc_run");
    SIM_RUN(sim_llc_run(accesses));
    Py_RETURN_NONE;
}

PyObject *ms_sim_world_step(PyObject *self, PyObject *args)
{
    unsigned int n = 1, i;

    if ( !PyArg_ParseTuple(args, "|I", &n) )
        return NULL;
    SIM_ENTER("sim_world_step");
    SIM_RUN(for ( i = 0; i < n; i++ ) sim_world_step());
    Py_RETURN_NONE;
}

PyObject *ms_sim_counters(PyObject *self, PyObject *args)
{
    unsigned int domid;
    struct sim_counters c;
    int rc;

    if ( get_domid(args, &domid) )
        return NULL;
    SIM_ENTER("sim_domain_counters");
    memset(&c, 0, sizeof(c));
    SIM_RUN(rc = sim_domain_counters(domid, &c));
    if ( rc < 0 )
        return ms_raise(-rc, "sim_domain_counters");
    return Py_BuildValue("{sKsKsKsK}",
                         "instructions", (unsigned long long)c.instructions,
                         "llc_references", (unsigned long long)c.accesses,
                         "llc_misses", (unsigned long long)c.misses,
                         "cycles", (unsigned long long)c.cycles);
}

PyObject *ms_sim_llc_occupancy(PyObject *self, PyObject *args)
{
    unsigned int domid;
    uint64_t bytes = 0;
    int rc;

    if ( get_domid(args, &domid) )
        return NULL;
    SIM_ENTER("sim_domain_llc_occupancy");
    SIM_RUN(rc = sim_domain_llc_occupancy(domid, &bytes));
    if ( rc < 0 )
        return ms_raise(-rc, "sim_domain_llc_occupancy");
    return PyLong_FromUnsignedLongLong(bytes);
}

PyObject *ms_sim_io_stats(PyObject *self, PyObject *args)
{
    unsigned int domid;
    struct sim_io_stats st;
    int rc;

    if ( get_domid(args, &domid) )
        return NULL;
    SIM_ENTER("sim_domain_io_stats");
    memset(&st, 0, sizeof(st));
    SIM_RUN(rc = sim_domain_io_stats(domid, &st));
    if ( rc < 0 )
        return ms_raise(-rc, "sim_domain_io_stats");
    return Py_BuildValue("{sKsKsKsKsKsK}",
                         "console_lines", (unsigned long long)st.console_lines,
                         "xenstore_replies", (unsigned long long)st.xenstore_replies,
                         "net_rx_ok", (unsigned long long)st.net_rx_ok,
                         "net_tx_ok", (unsigned long long)st.net_tx_ok,
                         "io_errors", (unsigned long long)st.io_errors,
                         "pt_errors", (unsigned long long)st.pt_errors);
}

#define AUDIT_BUF (64 * 1024)

PyObject *ms_sim_audit(PyObject *self, PyObject *noargs)
{
    char *buf;
    int n;
    PyObject *ret;

    SIM_ENTER("sim_audit");
    buf = PyMem_Malloc(AUDIT_BUF);
    if ( !buf )
        return PyErr_NoMemory();
    buf[0] = '\0';
    SIM_RUN(n = sim_audit(buf, AUDIT_BUF); buf[AUDIT_BUF - 1] = '\0');
    if ( n < 0 )
    {
        PyMem_Free(buf);
        return ms_raise(-n, "sim_audit");
    }
    ret = Py_BuildValue("(is)", n, buf);
    PyMem_Free(buf);
    return ret;
}

/* ---- the swap -------------------------------------------------------------- */

struct progress {
    PyObject *callable;        /* borrowed (alive for the call) */
    PyObject *exc_type, *exc_value, *exc_tb;   /* first exception it raised */
    int last_phase;
    uint64_t last_done;
    int *cancelled;            /* set when the callable raised: no more attempts */
};

/*
 * Called by sim_swap() with the GIL released and the sim lock held. Calls
 * progress(phase_name, done, total) for each new phase, at the end of a
 * phase and about every 1/64 of a phase's work in between (the engine may
 * report per frame; calling Python that often would dominate the swap).
 */
static void progress_cb(void *arg, enum memswap_phase ph, uint64_t done, uint64_t total)
{
    struct progress *p = arg;
    PyGILState_STATE g;
    PyObject *r;

    if ( p->exc_type )
        return;
    if ( (int)ph == p->last_phase && done != total &&
         done - p->last_done < (total / 64 ? total / 64 : 1) )
        return;
    p->last_phase = ph;
    p->last_done = done;
    g = PyGILState_Ensure();
    r = PyObject_CallFunction(p->callable, "sKK", memswap_phase_name(ph),
                              (unsigned long long)done, (unsigned long long)total);
    if ( r )
        Py_DECREF(r);
    else
    {
        PyErr_Fetch(&p->exc_type, &p->exc_value, &p->exc_tb);
        *p->cancelled = 1;
    }
    PyGILState_Release(g);
}

static PyObject *u64_dict(const char *(*namefn)(int), const uint64_t *v, int n)
{
    PyObject *d = PyDict_New();
    int i;

    for ( i = 0; d && i < n; i++ )
    {
        PyObject *x = PyLong_FromUnsignedLongLong(v[i]);

        if ( !x || PyDict_SetItemString(d, namefn(i), x) < 0 )
        {
            Py_XDECREF(x);
            Py_CLEAR(d);
            break;
        }
        Py_DECREF(x);
    }
    return d;
}

static const char *kept_name(int i) { return memswap_kept_name(i); }
static const char *class_name(int i) { return memswap_class_name(i); }
static const char *phase_name(int i) { return memswap_phase_name(i); }

/* The result dict shared with xen_backend.c's layout. */
static PyObject *result_dict(const struct memswap_result *r, int dry_run)
{
    PyObject *kept, *by_class, *phases, *d;

    kept = u64_dict(kept_name, r->frames_kept, MEMSWAP_KEPT_NR);
    by_class = u64_dict(class_name, r->frames_by_class, MEMSWAP_FC_NR);
    phases = u64_dict(phase_name, r->phase_ns, MEMSWAP_PH_NR);
    if ( !kept || !by_class || !phases )
    {
        Py_XDECREF(kept);
        Py_XDECREF(by_class);
        Py_XDECREF(phases);
        return NULL;
    }
    d = Py_BuildValue("{sKsKsNsNsKsKsKsNsKsKsKsO}",
                      "frames_total", (unsigned long long)r->frames_total,
                      "moved", (unsigned long long)r->frames_moved,
                      "kept", kept,
                      "by_class", by_class,
                      "bytes_copied", (unsigned long long)r->bytes_copied,
                      "paused_ns", (unsigned long long)r->paused_ns,
                      "continuations", (unsigned long long)r->continuations,
                      "phase_ns", phases,
                      "ptes_translated", (unsigned long long)r->ptes_translated,
                      "extra_bytes_peak", (unsigned long long)r->extra_bytes_peak,
                      "unpinned_pgds", (unsigned long long)r->unpinned_pgds,
                      "dry_run", dry_run ? Py_True : Py_False);
    if ( d && (ms_dict_set_u64(d, "live_rounds", r->live_rounds) ||
               ms_dict_set_u64(d, "live_precopy_pages", r->live_precopy_pages) ||
               ms_dict_set_u64(d, "live_final_pages", r->live_final_pages) ||
               ms_dict_set_u64(d, "live_committed_running", r->live_committed_running) ||
               PyDict_SetItemString(d, "translated", r->translated ? Py_True : Py_False)) )
        Py_CLEAR(d);
    return d;
}


PyObject *ms_sim_swap(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "domid", "colours", "node", "dry_run", "progress",
                              "preempt_every", "cooperative", "retries", "backoff_steps",
                              "backoff_max_steps", "live", "max_rounds", "dirty_threshold",
                              NULL };
    unsigned int domid, preempt_every = 0, retries = 0, backoff = 4, backoff_max = 64;
    unsigned int max_rounds = 0, dirty_threshold = 0;
    PyObject *col_o = Py_None, *node_o = Py_None, *prog_o = Py_None, *d;
    int dry_run = 0, cooperative = 0, live = 0, rc, i;
    unsigned long long bm[MEMSWAP_COLOUR_WORDS];
    struct ms_sim_swap_op s;
    struct ms_coop_policy pol;
    struct ms_coop_outcome o;
    struct sim_swap_opts opts;
    struct progress prog;

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "I|OOpOIpIIIpII", kwlist, &domid, &col_o,
                                      &node_o, &dry_run, &prog_o, &preempt_every,
                                      &cooperative, &retries, &backoff, &backoff_max,
                                      &live, &max_rounds, &dirty_threshold) )
        return NULL;
    if ( max_rounds > MEMSWAP_LIVE_ROUNDS_MAX )
        return PyErr_Format(PyExc_ValueError, "max_rounds must be 0..%u (0: the default)",
                            (unsigned int)MEMSWAP_LIVE_ROUNDS_MAX);
    if ( !live && (max_rounds || dirty_threshold) )
        return PyErr_Format(PyExc_ValueError, "max_rounds and dirty_threshold need live=True");
    if ( prog_o != Py_None && !PyCallable_Check(prog_o) )
        return PyErr_Format(PyExc_TypeError, "progress must be callable or None");
    if ( retries > 100 )
        return PyErr_Format(PyExc_ValueError, "retries must be 0..100");
    if ( backoff > backoff_max || backoff_max > 4096 )
        return PyErr_Format(PyExc_ValueError, "backoff_steps and backoff_max_steps must "
                            "satisfy backoff_steps <= backoff_max_steps <= 4096");
    SIM_ENTER("sim_swap");

    memset(&s, 0, sizeof(s));
    s.req.domid = domid;
    s.req.flags = (dry_run ? MEMSWAP_F_DRY_RUN : 0) | (live ? MEMSWAP_F_LIVE : 0);
    s.req.live_max_rounds = max_rounds;
    s.req.live_dirty_threshold = dirty_threshold;
    SIM_RUN(sim_host_geometry(&s.req.geom));
    if ( node_from_py(node_o, &s.req.node) ||
         ms_colours_from_py(col_o, s.req.geom.nr_colours, bm, MEMSWAP_COLOUR_WORDS) )
        return NULL;
    for ( i = 0; i < MEMSWAP_COLOUR_WORDS; i++ )
        s.req.colours[i] = bm[i];

    memset(&opts, 0, sizeof(opts));
    opts.preempt_every = preempt_every;
    opts.alloc_fail_at = -1;
    opts.world_runs = true;    /* dom0's daemons and backends run during the swap */
    /* A live swap yields as a hypervisor's would, and the guest runs meanwhile. */
    if ( live && !preempt_every )
        opts.preempt_ns = 1000000;
    memset(&prog, 0, sizeof(prog));
    prog.last_phase = -1;
    prog.cancelled = &s.cancelled;
    if ( prog_o != Py_None )
    {
        prog.callable = prog_o;
        opts.progress = progress_cb;
        opts.progress_arg = &prog;
    }
    s.opts = &opts;
    memset(&pol, 0, sizeof(pol));
    pol.cooperative = cooperative && !dry_run;   /* a plan never disturbs the guest */
    pol.retries = retries;
    pol.backoff = backoff;
    pol.backoff_max = backoff_max;

    Py_INCREF(prog_o);   /* keep the callable alive while the GIL is released */
    SIM_RUN(rc = ms_sim_swap_run(&s, &pol, &o));
    Py_DECREF(prog_o);

    if ( prog.exc_type )
    {
        /* The swap itself ran to its end (it cannot be interrupted from
         * here); the callback's exception is what the caller sees. */
        PyErr_Restore(prog.exc_type, prog.exc_value, prog.exc_tb);
        return NULL;
    }
    if ( rc )
    {
        if ( s.msg[0] )
            ms_raise_msg(s.err, s.call, "%s", s.msg);
        else
            ms_raise(s.err, s.call);
        if ( !strcmp(s.call, "sim_swap") )
            ms_error_set_attr("phase",
                              PyUnicode_FromString(memswap_phase_name(s.res.failed_phase)));
        ms_error_set_attr("retries", PyLong_FromUnsignedLong(o.retries));
        return NULL;
    }
    d = result_dict(&s.res, dry_run);
    if ( d && (PyDict_SetItemString(d, "cooperative", o.suspended ? Py_True : Py_False) ||
               PyDict_SetItemString(d, "live", live ? Py_True : Py_False) ||
               ms_dict_set_u64(d, "retries", o.retries)) )
        Py_CLEAR(d);
    return d;
}

/* ---- where a domain's memory is, a guest that keeps writing ------------------ */

PyObject *ms_sim_query(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "domid", "nr_colours", "colour_shift", "frames", NULL };
    unsigned int domid, nr_colours = 0, shift = 0, nr_nodes = 0;
    struct memswap_geometry g;
    struct sim_query_info qi;
    uint64_t *colours = NULL, *nodes = NULL, *frames = NULL;
    struct sim_domain_info info;
    int want_frames = 0, rc = 0;
    PyObject *d = NULL;

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "I|IIp", kwlist, &domid, &nr_colours, &shift,
                                      &want_frames) )
        return NULL;
    SIM_ENTER("sim_query");
    SIM_RUN(sim_host_geometry(&g); nr_nodes = sim_host_nr_nodes();
            rc = sim_domain_info(domid, &info));
    if ( rc )
        return ms_raise(-rc, "sim_query");
    if ( nr_colours )
    {
        if ( (nr_colours & (nr_colours - 1)) || nr_colours > MEMSWAP_MAX_COLOURS || shift > 32 )
            return PyErr_Format(PyExc_ValueError, "nr_colours must be a power of two <= %u "
                                "and colour_shift <= 32", (unsigned int)MEMSWAP_MAX_COLOURS);
        g.nr_colours = nr_colours;
        g.colour_shift = shift;
    }
    colours = calloc(g.nr_colours, sizeof(*colours));
    nodes = calloc(nr_nodes, sizeof(*nodes));
    frames = want_frames ? calloc(info.max_pfn + 1, sizeof(*frames)) : NULL;
    if ( !colours || !nodes || (want_frames && !frames) )
    {
        PyErr_NoMemory();
        goto out;
    }
    SIM_RUN(rc = sim_query(domid, &g, colours, nodes, nr_nodes, 0, want_frames ? info.max_pfn : 0,
                           frames, &qi));
    if ( rc )
    {
        ms_raise(-rc, "sim_query");
        goto out;
    }
    d = ms_occupancy_dict(colours, g.nr_colours, nodes, nr_nodes, frames, qi.nr_pfns,
                          want_frames, qi.nr_pfns, qi.frames_counted, qi.tot_pages,
                          qi.translated);
 out:
    free(colours);
    free(nodes);
    free(frames);
    return d;
}

PyObject *ms_sim_set_dirty_rate(PyObject *self, PyObject *args)
{
    unsigned int domid;
    unsigned long pages;
    int rc;

    if ( !PyArg_ParseTuple(args, "Ik", &domid, &pages) )
        return NULL;
    SIM_ENTER("sim_set_dirty_rate");
    SIM_RUN(rc = sim_domain_set_dirty_rate(domid, pages));
    if ( rc )
        return ms_raise(-rc, "sim_set_dirty_rate");
    Py_RETURN_NONE;
}

/* What a toolstack can turn on under a running domain (sim/sim.h). */
PyObject *ms_sim_domain_set_features(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "domid", "log_dirty", "iommu", "sharing", "paging", "altp2m",
                              NULL };
    static const int feature[] = { -1, -1, SIM_FEAT_SHARING, SIM_FEAT_PAGING,
                                   SIM_FEAT_ALTP2M };
    static const char *const call[] = { "sim_domain_set_log_dirty", "sim_domain_set_iommu",
                                        "sim_domain_set_feature", "sim_domain_set_feature",
                                        "sim_domain_set_feature" };
    PyObject *v[5] = { Py_None, Py_None, Py_None, Py_None, Py_None };
    int on[5] = { 0 }, i, rc;
    unsigned int domid;

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "I|OOOOO", kwlist, &domid, &v[0], &v[1],
                                      &v[2], &v[3], &v[4]) )
        return NULL;
    for ( i = 0; i < 5; i++ )
        if ( v[i] != Py_None && (on[i] = PyObject_IsTrue(v[i])) < 0 )
            return NULL;
    SIM_ENTER("sim_domain_set_features");
    for ( i = 0; i < 5; i++ )
    {
        if ( v[i] == Py_None )
            continue;
        SIM_RUN(rc = i == 0 ? sim_domain_set_log_dirty(domid, on[i]) :
                     i == 1 ? sim_domain_set_iommu(domid, on[i]) :
                              sim_domain_set_feature(domid, feature[i], on[i]));
        if ( rc < 0 )
            return ms_raise(-rc, call[i]);
    }
    Py_RETURN_NONE;
}

PyObject *ms_sim_verify(PyObject *self, PyObject *args)
{
    unsigned int domid;
    unsigned long first = 0;
    long bad;

    if ( !PyArg_ParseTuple(args, "I", &domid) )
        return NULL;
    SIM_ENTER("sim_verify");
    SIM_RUN(bad = sim_guest_verify(domid, &first));
    if ( bad < 0 )
        return ms_raise((int)-bad, "sim_verify");
    return Py_BuildValue("(lO)", bad, bad ? PyLong_FromUnsignedLong(first) : Py_None);
}

/* ---- program traces as workloads --------------------------------------------- */

/*
 * sim_set_trace(domid, path, weight=1, loop=True, offset_pages=0): load the
 * trace at @path (sim/trace.h's format, as make traces writes it) and
 * replay it as the domain's workload. The load maps and checks the whole
 * file (seconds for a large one); it touches no simulator state, so it runs
 * with the GIL released and without the sim lock. The domain keeps its own
 * reference to the trace; ours is dropped under the lock, where every other
 * reference is taken and dropped.
 */
PyObject *ms_sim_set_trace(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "domid", "path", "weight", "loop", "offset_pages", NULL };
    unsigned int domid, weight = 1;
    unsigned long long offset = 0;
    int loop = 1, rc;
    PyObject *path_o = NULL;
    const char *path;
    struct sim_trace *t = NULL;
    struct sim_trace_workload tw;
    char err[512];

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "IO&|IpK", kwlist, &domid,
                                      PyUnicode_FSConverter, &path_o, &weight, &loop,
                                      &offset) )
        return NULL;
    if ( weight == 0 )
    {
        Py_DECREF(path_o);
        return PyErr_Format(PyExc_ValueError, "weight must be at least 1");
    }
    if ( sim_check("sim_trace_load", 1) )
    {
        Py_DECREF(path_o);
        return NULL;
    }
    path = PyBytes_AS_STRING(path_o);
    err[0] = '\0';
    Py_BEGIN_ALLOW_THREADS
    rc = sim_trace_load(path, &t, err, sizeof(err));
    Py_END_ALLOW_THREADS
    if ( rc < 0 )
    {
        /* The loader's sentence names the file; for a system error it
         * repeats strerror, which MemswapError already carries. */
        if ( rc == -EINVAL && err[0] )
            ms_raise_msg(-rc, "sim_trace_load", "%s", err);
        else
            ms_raise_msg(-rc, "sim_trace_load", "%s", path);
        Py_DECREF(path_o);
        return NULL;
    }
    Py_DECREF(path_o);

    memset(&tw, 0, sizeof(tw));
    tw.trace = t;
    tw.weight = weight;
    tw.loop = loop;
    tw.offset_pages = offset;
    SIM_RUN(rc = sim_domain_set_trace(domid, &tw); sim_trace_put(t));
    if ( rc < 0 )
        return ms_raise(-rc, "sim_domain_set_trace");
    Py_RETURN_NONE;
}

PyObject *ms_sim_trace_counts(PyObject *self, PyObject *args)
{
    unsigned int domid;
    struct sim_trace_counts c;
    int rc;

    if ( get_domid(args, &domid) )
        return NULL;
    SIM_ENTER("sim_domain_trace_counts");
    memset(&c, 0, sizeof(c));
    SIM_RUN(rc = sim_domain_trace_counts(domid, &c));
    if ( rc < 0 )
        return rc == -ENOENT
            ? ms_raise_msg(ENOENT, "sim_domain_trace_counts",
                           "domain %u replays no trace", domid)
            : ms_raise(-rc, "sim_domain_trace_counts");
    return Py_BuildValue("{sKsKsKsKsKsKsKsKsKsKsKsKsO}",
                         "records", (unsigned long long)c.records,
                         "loops", (unsigned long long)c.loops,
                         "i_refs", (unsigned long long)c.i_refs,
                         "d_reads", (unsigned long long)c.d_reads,
                         "d_writes", (unsigned long long)c.d_writes,
                         "i1_misses", (unsigned long long)c.i1_misses,
                         "d1_read_misses", (unsigned long long)c.d1_read_misses,
                         "d1_write_misses", (unsigned long long)c.d1_write_misses,
                         "ll_i_misses", (unsigned long long)c.ll_i_misses,
                         "ll_d_read_misses", (unsigned long long)c.ll_d_read_misses,
                         "ll_d_write_misses", (unsigned long long)c.ll_d_write_misses,
                         "unmapped", (unsigned long long)c.unmapped,
                         "done", c.done ? Py_True : Py_False);
}
