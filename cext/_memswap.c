/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memswap._memswap: the method table and module init. The implementations
 * live in sim_backend.c (the simulated host), xen_backend.c (libxenctrl,
 * libxencall, libxenforeignmemory, libxenstore), perf.c (perf_event
 * groups) and errors.c (MemswapError). Python-facing documentation of the
 * whole API is in daemon/memswap/host.py and perf.py.
 */
#include "memswap_ext.h"

#include "core/memswap.h"

#define KW (METH_VARARGS | METH_KEYWORDS)
#define FN(f) ((PyCFunction)(void (*)(void))(f))

static PyMethodDef methods[] = {
    /* simulator */
    { "sim_host_create", FN(ms_sim_host_create), KW,
      "sim_host_create(ram_bytes=512M, nr_nodes=1, llc_bytes=8M, ways=16, line=64, seed=1)" },
    { "sim_host_destroy", ms_sim_host_destroy, METH_NOARGS, "Destroy the simulated host." },
    { "sim_host_exists", ms_sim_host_exists, METH_NOARGS, "True if a simulated host exists." },
    { "sim_domain_create", FN(ms_sim_domain_create), KW,
      "sim_domain_create(name, mem_bytes, vcpus=1, address_spaces=2, node=None,\n"
      "                  colours=None, hvm=False, with_devices=True, seed=0,\n"
      "                  forks=False, type=None) -> domid\n"
      "type: 'pv' (the default), 'pvh' or 'hvm' (hvm=True is type='hvm')." },
    { "sim_domain_destroy", ms_sim_domain_destroy, METH_VARARGS, "sim_domain_destroy(domid)" },
    { "sim_domain_pause", ms_sim_domain_pause, METH_VARARGS, "sim_domain_pause(domid)" },
    { "sim_domain_unpause", ms_sim_domain_unpause, METH_VARARGS, "sim_domain_unpause(domid)" },
    { "sim_domain_set_dying", ms_sim_domain_set_dying, METH_VARARGS, "sim_domain_set_dying(domid)" },
    { "sim_domain_list", ms_sim_domain_list, METH_NOARGS,
      "sim_domain_list() -> [dict(domid, name, state, vcpus, tot_pages, max_pages, hvm,\n"
      "                          shutdown_reason=None)]" },
    { "sim_geometry", ms_sim_geometry, METH_NOARGS,
      "sim_geometry() -> dict(nr_colours, colour_shift, llc_bytes, ways, line_bytes,\n"
      "                       nr_nodes, total_frames, free_frames)" },
    { "sim_colour_counts", ms_sim_colour_counts, METH_VARARGS,
      "sim_colour_counts(domid) -> [frames on colour c for c in range(nr_colours)]" },
    { "sim_p2m", ms_sim_p2m, METH_VARARGS,
      "sim_p2m(domid) -> [mfn of pfn, -1 if absent]" },
    { "sim_checksums", ms_sim_checksums, METH_VARARGS,
      "sim_checksums(domid) -> [checksum of pfn's bytes as the guest reads them]" },
    { "sim_free_frames", FN(ms_sim_free_frames), KW,
      "sim_free_frames(node=None, colours=None) -> free frames" },
    { "sim_set_workload", FN(ms_sim_set_workload), KW,
      "sim_set_workload(domid, wss_bytes, pattern='random', stride=64, intensity=30, weight=1)" },
    { "sim_set_trace", FN(ms_sim_set_trace), KW,
      "sim_set_trace(domid, path, weight=1, loop=True, offset_pages=0)\n"
      "Replay a program's trace (make traces: build/traces/<name>.mtr) as the\n"
      "domain's workload instead of a synthetic one: its k-th page on working-set\n"
      "page (k + offset_pages) mod n, through the guest's page tables; weight its\n"
      "share of sim_llc_run(), in trace records; loop: restart at its end. The\n"
      "file is loaded and checked with the GIL released (MemswapError, call\n"
      "'sim_trace_load', for a missing or damaged file)." },
    { "sim_trace_counts", ms_sim_trace_counts, METH_VARARGS,
      "sim_trace_counts(domid) -> dict(records, loops, i_refs, d_reads, d_writes,\n"
      "    i1_misses, d1_read_misses, d1_write_misses, ll_i_misses, ll_d_read_misses,\n"
      "    ll_d_write_misses, unmapped, done): the replay's counts, cachegrind's\n"
      "categories (ENOENT: the domain replays no trace)" },
    { "sim_llc_run", ms_sim_llc_run, METH_VARARGS,
      "sim_llc_run(accesses): run every domain's workload (GIL released)" },
    { "sim_world_step", ms_sim_world_step, METH_VARARGS,
      "sim_world_step(n=1): n scheduling steps of guests, dom0 daemons and Xen" },
    { "sim_counters", ms_sim_counters, METH_VARARGS,
      "sim_counters(domid) -> dict(instructions, llc_references, llc_misses, cycles)" },
    { "sim_llc_occupancy", ms_sim_llc_occupancy, METH_VARARGS,
      "sim_llc_occupancy(domid) -> bytes of the LLC holding the domain's frames (as CMT)" },
    { "sim_audit", ms_sim_audit, METH_NOARGS, "sim_audit() -> (problems, text)" },
    { "sim_io_stats", ms_sim_io_stats, METH_VARARGS,
      "sim_io_stats(domid) -> dict(console_lines, xenstore_replies, net_rx_ok,\n"
      "                            net_tx_ok, io_errors)" },
    { "sim_swap", FN(ms_sim_swap), KW,
      "sim_swap(domid, colours=None, node=None, dry_run=False, progress=None,\n"
      "         preempt_every=0, cooperative=False, retries=0, backoff_steps=4,\n"
      "         backoff_max_steps=64, live=False, max_rounds=0, dirty_threshold=0)\n"
      "         -> result dict\n"
      "live: pre-copy while the guest runs (it is preempted every millisecond\n"
      "unless preempt_every says otherwise), stop after max_rounds rounds or\n"
      "when fewer than dirty_threshold pages were written (0: 5 and 50).\n"
      "Refused first (MemswapError, call 'swap-preflight'): dom0 EACCES, dying\n"
      "ENODEV, a passed-through device or sharing/paging/altp2m EOPNOTSUPP,\n"
      "paused or suspended by someone or log-dirty on EBUSY.\n"
      "cooperative: suspend a PV guest (forks finish, every table pinned), swap,\n"
      "resume it cancelled; live, suspend it only for the final stop (a held\n"
      "swap); a PVH/HVM guest is never suspended. EAGAIN is retried up to\n"
      "retries times, the guest running backoff_steps world steps before the\n"
      "first retry, doubling up to backoff_max_steps. progress(phase, done, total) is called from the swap\n"
      "(GIL reacquired)." },
    { "sim_query", FN(ms_sim_query), KW,
      "sim_query(domid, nr_colours=0, colour_shift=0, frames=False)\n"
      "    -> dict(colours, nodes, frames, nr_pfns, frames_counted, tot_pages, translated)\n"
      "Where the domain's memory is: frames per colour (nr_colours 0: the host's\n"
      "geometry) and per node, and with frames=True the frame of every pfn (-1\n"
      "where none). PV and translated guests alike." },
    { "sim_set_dirty_rate", ms_sim_set_dirty_rate, METH_VARARGS,
      "sim_set_dirty_rate(domid, pages): the guest writes that many more data\n"
      "pages at each of its steps (through its page tables: log-dirty sees them)" },
    { "sim_domain_set_features", FN(ms_sim_domain_set_features), KW,
      "sim_domain_set_features(domid, log_dirty=None, iommu=None, sharing=None,\n"
      "                        paging=None, altp2m=None): what a toolstack turns\n"
      "on under a running domain (a save's log-dirty mode, a passed-through\n"
      "device, memory sharing, paging, altp2m); None leaves one as it is" },
    { "sim_verify", ms_sim_verify, METH_VARARGS,
      "sim_verify(domid) -> (wrong data pages, first wrong pfn or None): every data\n"
      "page read the guest's way against what its writers wrote" },
    /* Xen */
    { "xen_open", ms_xen_open, METH_NOARGS,
      "xen_open(): open libxenctrl, xencall, foreignmemory and xenstore handles" },
    { "xen_close", ms_xen_close, METH_NOARGS, "xen_close()" },
    { "xen_domain_list", ms_xen_domain_list, METH_NOARGS,
      "xen_domain_list() -> [dict(domid, name, state, vcpus, tot_pages, max_pages, hvm,\n"
      "                          shared_info_frame, shutdown_reason, type)]\n"
      "type: 'pv', 'pvh' or 'hvm'\n"
      "shutdown_reason: SHUTDOWN_* of a shut-down domain (2: suspend), else None" },
    { "xen_own_domid", ms_xen_own_domid, METH_NOARGS,
      "xen_own_domid() -> the caller's own domain id (xenstore relative \"domid\")" },
    { "xen_physinfo", ms_xen_physinfo, METH_NOARGS,
      "xen_physinfo() -> dict(total_pages, free_pages, nr_nodes, nr_cpus, ...)" },
    { "xen_numainfo", ms_xen_numainfo, METH_NOARGS,
      "xen_numainfo() -> [dict(node, memsize, memfree) in bytes] by node (all ones:\n"
      "an offline node)" },
    { "xen_swap", FN(ms_xen_swap), KW,
      "xen_swap(domid, colours=None, nr_colours=1, colour_shift=0, node=None,\n"
      "         dry_run=False, cooperative=False, suspend_timeout_ms=10000,\n"
      "         retries=0, force_suspend=False, backoff_ms=10, backoff_max_ms=250,\n"
      "         live=False, max_rounds=0, dirty_threshold=0)\n"
      "         -> result dict (XEN_DOMCTL_memswap)\n"
      "live: pre-copy while the guest runs under log-dirty, stop after max_rounds\n"
      "rounds or when fewer than dirty_threshold pages were written (0: the\n"
      "hypervisor's 5 and 50); the result has live_rounds, live_precopy_pages,\n"
      "live_final_pages, and paused_ns is the final stop's.\n"
      "Refused before anything is written to xenstore or paused (MemswapError,\n"
      "call 'swap-preflight'): dom0 or a domain the hypervisor refuses (dry run)\n"
      "EACCES, the caller's own domain EDEADLK, shut down, paused, a pending\n"
      "control/shutdown request or log-dirty EBUSY, dying ENODEV, a domain the\n"
      "hypervisor cannot swap EOPNOTSUPP. cooperative (PV guests; a PVH/HVM\n"
      "guest is never suspended): write control/shutdown = suspend in a\n"
      "transaction that finds it empty (live: after the pre-copy, the swap held), wait up to suspend_timeout_ms, swap, resume the guest\n"
      "cancelled; EAGAIN is retried up to retries times after backoff_ms,\n"
      "doubling up to backoff_max_ms. The result has suspend_ns, resume_ns,\n"
      "retries; an error has .stage (preflight, suspend, swap, resume)." },
    { "xen_query", FN(ms_xen_query_domain), KW,
      "xen_query(domid, nr_colours=1, colour_shift=0, frames=False)\n"
      "    -> dict(colours, nodes, frames, nr_pfns, frames_counted, tot_pages, translated)\n"
      "XEN_DOMCTL_MEMSWAP_OP_QUERY: where the domain's memory is, PV and\n"
      "translated guests alike (frames: the frame of every pfn, -1 where none)." },
    { "xen_p2m", ms_xen_p2m, METH_VARARGS,
      "xen_p2m(domid) -> [mfn of pfn, -1 where none] (64-bit PV guests, 3-level\n"
      "p2m tree); refuses dom0 (EACCES) and the caller's own domain (EDEADLK)" },
    { "xen_xs_read", ms_xen_xs_read, METH_VARARGS, "xen_xs_read(path) -> str or None" },
    { "xen_xs_write", ms_xen_xs_write, METH_VARARGS, "xen_xs_write(path, value)" },
    { "xen_xs_directory", ms_xen_xs_directory, METH_VARARGS,
      "xen_xs_directory(path) -> [names] or None" },
    { "xen_xs_watch", ms_xen_xs_watch, METH_VARARGS, "xen_xs_watch(path, token)" },
    { "xen_xs_unwatch", ms_xen_xs_unwatch, METH_VARARGS, "xen_xs_unwatch(path, token)" },
    { "xen_xs_read_watch", FN(ms_xen_xs_read_watch), KW,
      "xen_xs_read_watch(timeout=None) -> (path, token) or None on timeout" },
    { "xen_resume_suspended", ms_xen_resume_suspended, METH_VARARGS,
      "xen_resume_suspended(domid): resume (cancelled) a guest a cooperative swap\n"
      "left suspended; EINVAL if it is not suspended" },
    { "xen_cancel_swap", ms_xen_cancel_swap, METH_VARARGS,
      "xen_cancel_swap(domid) -> None or dict(moved, frames_total, failed_phase)\n"
      "XEN_DOMCTL_MEMSWAP_OP_CANCEL: roll back (or, past its point of no return,\n"
      "finish) the swap the hypervisor holds or runs for the domain; None if none" },
    { "xen_psr_cmt", ms_xen_psr_cmt, METH_VARARGS,
      "xen_psr_cmt(domid) -> LLC occupancy in bytes (EOPNOTSUPP without CMT)" },
    /* perf */
    { "perf_open_group", FN(ms_perf_open_group), KW,
      "perf_open_group(pid=None, cgroup=None, cpu=-1, events=None) -> PerfGroup" },
    { "perf_events", ms_perf_events, METH_NOARGS,
      "perf_events() -> {name: 'hardware'|'software'}" },
    { NULL, NULL, 0, NULL }
};

static int add_names(PyObject *m, const char *attr, const char *(*fn)(int), int n)
{
    PyObject *t = PyTuple_New(n);
    int i;

    for ( i = 0; t && i < n; i++ )
    {
        PyObject *s = PyUnicode_FromString(fn(i));

        if ( !s )
            Py_CLEAR(t);
        else
            PyTuple_SET_ITEM(t, i, s);
    }
    if ( !t || PyModule_AddObject(m, attr, t) < 0 )
    {
        Py_XDECREF(t);
        return -1;
    }
    return 0;
}

static const char *phase_name(int i) { return memswap_phase_name(i); }
static const char *kept_name(int i) { return memswap_kept_name(i); }
static const char *class_name(int i) { return memswap_class_name(i); }

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "memswap._memswap",
    .m_doc = "memswap's C extension: simulator, Xen and perf_event backends.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__memswap(void)
{
    PyObject *m;

    if ( PyType_Ready(&ms_PerfGroupType) < 0 )
        return NULL;
    m = PyModule_Create(&moduledef);
    if ( !m )
        return NULL;
    if ( ms_errors_init(m) < 0 )
        goto fail;
    Py_INCREF(&ms_PerfGroupType);
    if ( PyModule_AddObject(m, "PerfGroup", (PyObject *)&ms_PerfGroupType) < 0 )
    {
        Py_DECREF(&ms_PerfGroupType);
        goto fail;
    }
    if ( PyModule_AddIntConstant(m, "NODE_ANY", MEMSWAP_NODE_ANY) < 0 ||
         PyModule_AddIntConstant(m, "MAX_COLOURS", MEMSWAP_MAX_COLOURS) < 0 ||
         add_names(m, "PHASES", phase_name, MEMSWAP_PH_NR) < 0 ||
         add_names(m, "KEPT_REASONS", kept_name, MEMSWAP_KEPT_NR) < 0 ||
         add_names(m, "FRAME_CLASSES", class_name, MEMSWAP_FC_NR) < 0 )
        goto fail;
    return m;

 fail:
    Py_DECREF(m);
    return NULL;
}
