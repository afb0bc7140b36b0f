/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memswap._memswap: declarations shared by the extension's source files.
 *
 * Layout (psutil's habits): _memswap.c holds only the method table and the
 * module init; every group of functions lives in its own file and exports
 * its PyCFunctions here. Errors are raised with ms_raise*() (errors.c) as
 * MemswapError(errno, strerror, call), an OSError subclass.
 */
#ifndef MEMSWAP_EXT_H
#define MEMSWAP_EXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* errors.c */
extern PyObject *ms_MemswapError;
int ms_errors_init(PyObject *module);
/* Raise MemswapError(err, strerror(err), call); returns NULL. */
PyObject *ms_raise(int err, const char *call);
/* Same with an explanatory text appended to strerror(err). */
PyObject *ms_raise_msg(int err, const char *call, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Set an extra attribute on the exception currently being raised. */
void ms_error_set_attr(const char *name, PyObject *value /* stolen */);

/* util.c: a list of colour numbers -> bitmap of `words` 64-bit words;
 * each colour must be < nr_colours. Returns 0, or -1 with ValueError/TypeError. */
int ms_colours_from_py(PyObject *obj, unsigned int nr_colours,
                       unsigned long long *bitmap, unsigned int words);
/* d[key] = v; 0 or -1 with an exception. */
int ms_dict_set_u64(PyObject *d, const char *key, unsigned long long v);
/*
 * The query's answer, the same for both backends: dict(colours=[frames on
 * colour c], nodes=[frames on node n], frames=[frame of pfn, -1 if none] or
 * None, nr_pfns, frames_counted, tot_pages, translated).
 */
PyObject *ms_occupancy_dict(const uint64_t *colours, unsigned int nr_colours,
                            const uint64_t *nodes, unsigned int nr_nodes,
                            const uint64_t *frames, uint64_t nr_frames, int want_frames,
                            uint64_t nr_pfns, uint64_t frames_counted, uint64_t tot_pages,
                            int translated);

/* sim_backend.c */
PyObject *ms_sim_host_create(PyObject *self, PyObject *args, PyObject *kw);
PyObject *ms_sim_host_destroy(PyObject *self, PyObject *noargs);
PyObject *ms_sim_host_exists(PyObject *self, PyObject *noargs);
PyObject *ms_sim_domain_create(PyObject *self, PyObject *args, PyObject *kw);
PyObject *ms_sim_domain_destroy(PyObject *self, PyObject *args);
PyObject *ms_sim_domain_pause(PyObject *self, PyObject *args);
PyObject *ms_sim_domain_unpause(PyObject *self, PyObject *args);
PyObject *ms_sim_domain_set_dying(PyObject *self, PyObject *args);
PyObject *ms_sim_domain_list(PyObject *self, PyObject *noargs);
PyObject *ms_sim_geometry(PyObject *self, PyObject *noargs);
PyObject *ms_sim_colour_counts(PyObject *self, PyObject *args);
PyObject *ms_sim_free_frames(PyObject *self, PyObject *args, PyObject *kw);
PyObject *ms_sim_set_workload(PyObject *self, PyObject *args, PyObject *kw);
PyObject *ms_sim_llc_run(PyObject *self, PyObject *args);
PyObject *ms_sim_world_step(PyObject *self, PyObject *args);
PyObject *ms_sim_counters(PyObject *self, PyObject *args);
PyObject *ms_sim_llc_occupancy(PyObject *self, PyObject *args);
PyObject *ms_sim_audit(PyObject *self, PyObject *noargs);
PyObject *ms_sim_io_stats(PyObject *self, PyObject *args);
PyObject *ms_sim_swap(PyObject *self, PyObject *args, PyObject *kw);
PyObject *ms_sim_p2m(PyObject *self, PyObject *args);
PyObject *ms_sim_checksums(PyObject *self, PyObject *args);
PyObject *ms_sim_query(PyObject *self, PyObject *args, PyObject *kw);
PyObject *ms_sim_set_dirty_rate(PyObject *self, PyObject *args);
PyObject *ms_sim_verify(PyObject *self, PyObject *args);
PyObject *ms_sim_domain_set_features(PyObject *self, PyObject *args, PyObject *kw);
PyObject *ms_sim_set_trace(PyObject *self, PyObject *args, PyObject *kw);
PyObject *ms_sim_trace_counts(PyObject *self, PyObject *args);

/* xen_backend.c */
PyObject *ms_xen_open(PyObject *self, PyObject *noargs);
PyObject *ms_xen_close(PyObject *self, PyObject *noargs);
PyObject *ms_xen_domain_list(PyObject *self, PyObject *noargs);
PyObject *ms_xen_own_domid(PyObject *self, PyObject *noargs);
PyObject *ms_xen_physinfo(PyObject *self, PyObject *noargs);
PyObject *ms_xen_numainfo(PyObject *self, PyObject *noargs);
PyObject *ms_xen_swap(PyObject *self, PyObject *args, PyObject *kw);
PyObject *ms_xen_p2m(PyObject *self, PyObject *args);
PyObject *ms_xen_xs_read(PyObject *self, PyObject *args);
PyObject *ms_xen_xs_write(PyObject *self, PyObject *args);
PyObject *ms_xen_xs_directory(PyObject *self, PyObject *args);
PyObject *ms_xen_xs_watch(PyObject *self, PyObject *args);
PyObject *ms_xen_xs_unwatch(PyObject *self, PyObject *args);
PyObject *ms_xen_xs_read_watch(PyObject *self, PyObject *args, PyObject *kw);
PyObject *ms_xen_psr_cmt(PyObject *self, PyObject *args);
PyObject *ms_xen_resume_suspended(PyObject *self, PyObject *args);
PyObject *ms_xen_cancel_swap(PyObject *self, PyObject *args);
PyObject *ms_xen_query_domain(PyObject *self, PyObject *args, PyObject *kw);

/* perf.c */
extern PyTypeObject ms_PerfGroupType;
PyObject *ms_perf_open_group(PyObject *self, PyObject *args, PyObject *kw);
PyObject *ms_perf_events(PyObject *self, PyObject *noargs);

#endif /* MEMSWAP_EXT_H */
