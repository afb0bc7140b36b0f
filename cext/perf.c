/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * perf_event counter groups for Python: perf_open_group() returns a
 * PerfGroup whose read() gives every event's value in one read() per CPU,
 * scaled by time_enabled/time_running. An event the machine cannot count
 * is None and listed in `unavailable` - never 0. Reads, ioctls and the
 * opening itself run with the GIL released.
 */
#include "memswap_ext.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <linux/perf_event.h>

#include "perf_core.h"

typedef struct {
    PyObject_HEAD
    struct perf_group g;
    int open;
    PyObject *events;        /* tuple of names, in request order */
} PerfGroupObject;

static const char *default_events[] = {
    "instructions", "cycles", "cache-references", "cache-misses",
};

static int check_open(PerfGroupObject *self)
{
    if ( !self->open )
    {
        PyErr_SetString(PyExc_ValueError, "I/O operation on a closed PerfGroup");
        return -1;
    }
    return 0;
}

static PyObject *unavailable_set(PerfGroupObject *self, const int *valid)
{
    PyObject *set = PyFrozenSet_New(NULL);
    int i;

    for ( i = 0; set && i < self->g.nr_events; i++ )
    {
        if ( valid ? valid[i] : self->g.available[i] )
            continue;
        if ( PySet_Add(set, PyTuple_GET_ITEM(self->events, i)) < 0 )
            Py_CLEAR(set);
    }
    return set;
}

static PyObject *PerfGroup_read(PerfGroupObject *self, PyObject *noargs)
{
    struct pg_reading r;
    PyObject *values = NULL, *raw = NULL, *unav = NULL;
    int rc, i;

    if ( check_open(self) )
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = pg_read(&self->g, &r);
    Py_END_ALLOW_THREADS
    if ( rc < 0 )
        return ms_raise(-rc, "read(perf_event)");

    values = PyDict_New();
    raw = PyDict_New();
    if ( !values || !raw )
        goto fail;
    for ( i = 0; i < self->g.nr_events; i++ )
    {
        PyObject *name = PyTuple_GET_ITEM(self->events, i), *v, *rv;

        if ( r.valid[i] )
        {
            v = PyLong_FromUnsignedLongLong(r.scaled[i]);
            rv = PyLong_FromUnsignedLongLong(r.raw[i]);
        }
        else
        {
            v = Py_NewRef(Py_None);
            rv = Py_NewRef(Py_None);
        }
        if ( !v || !rv || PyDict_SetItem(values, name, v) < 0 ||
             PyDict_SetItem(raw, name, rv) < 0 )
        {
            Py_XDECREF(v);
            Py_XDECREF(rv);
            goto fail;
        }
        Py_DECREF(v);
        Py_DECREF(rv);
    }
    unav = unavailable_set(self, r.valid);
    if ( !unav )
        goto fail;
    return Py_BuildValue("{sNsNsKsKsN}",
                         "values", values, "raw", raw,
                         "time_enabled", (unsigned long long)r.time_enabled,
                         "time_running", (unsigned long long)r.time_running,
                         "unavailable", unav);
 fail:
    Py_XDECREF(values);
    Py_XDECREF(raw);
    return NULL;
}

static PyObject *group_ioctl(PerfGroupObject *self, unsigned long req, const char *call)
{
    int rc;

    if ( check_open(self) )
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = pg_ioctl_all(&self->g, req);
    Py_END_ALLOW_THREADS
    if ( rc < 0 )
        return ms_raise(-rc, call);
    Py_RETURN_NONE;
}

static PyObject *PerfGroup_reset(PerfGroupObject *self, PyObject *noargs)
{
    return group_ioctl(self, PERF_EVENT_IOC_RESET, "ioctl(PERF_EVENT_IOC_RESET)");
}

static PyObject *PerfGroup_enable(PerfGroupObject *self, PyObject *noargs)
{
    return group_ioctl(self, PERF_EVENT_IOC_ENABLE, "ioctl(PERF_EVENT_IOC_ENABLE)");
}

static PyObject *PerfGroup_disable(PerfGroupObject *self, PyObject *noargs)
{
    return group_ioctl(self, PERF_EVENT_IOC_DISABLE, "ioctl(PERF_EVENT_IOC_DISABLE)");
}

static PyObject *PerfGroup_close(PerfGroupObject *self, PyObject *noargs)
{
    if ( self->open )
    {
        pg_close(&self->g);
        self->open = 0;
    }
    Py_RETURN_NONE;
}

static PyObject *PerfGroup_enter(PerfGroupObject *self, PyObject *noargs)
{
    if ( check_open(self) )
        return NULL;
    return Py_NewRef(self);
}

static PyObject *PerfGroup_exit(PerfGroupObject *self, PyObject *args)
{
    return PerfGroup_close(self, NULL);
}

static PyObject *PerfGroup_get_unavailable(PerfGroupObject *self, void *closure)
{
    return unavailable_set(self, NULL);
}

static PyObject *PerfGroup_get_events(PerfGroupObject *self, void *closure)
{
    return Py_NewRef(self->events);
}

static PyObject *PerfGroup_get_cpus(PerfGroupObject *self, void *closure)
{
    PyObject *t;
    int i;

    if ( !self->open )
        return PyTuple_New(0);
    t = PyTuple_New(self->g.nr_cpus);
    for ( i = 0; t && i < self->g.nr_cpus; i++ )
    {
        PyObject *v = PyLong_FromLong(self->g.cpus[i]);

        if ( !v )
        {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PyObject *PerfGroup_get_closed(PerfGroupObject *self, void *closure)
{
    return PyBool_FromLong(!self->open);
}

static PyObject *PerfGroup_get_errors(PerfGroupObject *self, void *closure)
{
    PyObject *d = PyDict_New();
    int i;

    for ( i = 0; d && i < self->g.nr_events; i++ )
    {
        PyObject *v;

        if ( self->g.available[i] )
            continue;
        v = PyLong_FromLong(self->g.open_errno[i]);
        if ( !v || PyDict_SetItem(d, PyTuple_GET_ITEM(self->events, i), v) < 0 )
            Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}

static void PerfGroup_dealloc(PerfGroupObject *self)
{
    if ( self->open )
        pg_close(&self->g);
    Py_XDECREF(self->events);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef PerfGroup_methods[] = {
    { "read", (PyCFunction)PerfGroup_read, METH_NOARGS,
      "read() -> dict(values, raw, time_enabled, time_running, unavailable).\n"
      "values: event -> count scaled by enabled/running, or None when unavailable;\n"
      "raw: the unscaled counts. Counts are cumulative since open (or reset)." },
    { "reset", (PyCFunction)PerfGroup_reset, METH_NOARGS, "Zero every counter." },
    { "enable", (PyCFunction)PerfGroup_enable, METH_NOARGS, "Start counting." },
    { "disable", (PyCFunction)PerfGroup_disable, METH_NOARGS, "Stop counting." },
    { "close", (PyCFunction)PerfGroup_close, METH_NOARGS, "Close the counters." },
    { "__enter__", (PyCFunction)PerfGroup_enter, METH_NOARGS, NULL },
    { "__exit__", (PyCFunction)PerfGroup_exit, METH_VARARGS, NULL },
    { NULL }
};

static PyGetSetDef PerfGroup_getset[] = {
    { "events", (getter)PerfGroup_get_events, NULL, "requested events (tuple)", NULL },
    { "unavailable", (getter)PerfGroup_get_unavailable, NULL,
      "events this machine cannot count (frozenset)", NULL },
    { "open_errors", (getter)PerfGroup_get_errors, NULL,
      "errno from perf_event_open for each unavailable event", NULL },
    { "cpus", (getter)PerfGroup_get_cpus, NULL,
      "CPUs with a group (-1: the task's, on any CPU)", NULL },
    { "closed", (getter)PerfGroup_get_closed, NULL, NULL, NULL },
    { NULL }
};

PyTypeObject ms_PerfGroupType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "memswap._memswap.PerfGroup",
    .tp_basicsize = sizeof(PerfGroupObject),
    .tp_dealloc = (destructor)PerfGroup_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A perf_event counter group (made by perf_open_group()).",
    .tp_methods = PerfGroup_methods,
    .tp_getset = PerfGroup_getset,
};

/*
 * perf_open_group(pid=None, cgroup=None, cpu=-1, events=None) -> PerfGroup
 *
 * pid:    count this task (cpu -1: on any CPU);
 * cgroup: an fd of, or the path to, a cgroup directory (perf's cgroup
 *         mode); cpu -1: every online CPU;
 * neither: CPU-wide; cpu -1: every online CPU.
 * events: names (default instructions, cycles, cache-references,
 *         cache-misses).
 */
PyObject *ms_perf_open_group(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "pid", "cgroup", "cpu", "events", NULL };
    PyObject *pid_o = Py_None, *cg_o = Py_None, *ev_o = Py_None, *seq = NULL;
    PyObject *names = NULL;
    int cpu = -1, pid = -1, cgfd = -1, cg_owned = 0, nr, i, rc;
    enum pg_target target;
    const char *evs[PG_MAX_EVENTS];
    const char *call = "perf_event_open";
    PerfGroupObject *obj;

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "|OOiO", kwlist, &pid_o, &cg_o,
                                      &cpu, &ev_o) )
        return NULL;
    if ( pid_o != Py_None && cg_o != Py_None )
        return PyErr_Format(PyExc_ValueError, "give pid or cgroup, not both");

    if ( ev_o == Py_None )
    {
        nr = 4;
        names = PyTuple_New(nr);
        for ( i = 0; names && i < nr; i++ )
        {
            PyObject *s = PyUnicode_FromString(default_events[i]);

            if ( !s )
                Py_CLEAR(names);
            else
                PyTuple_SET_ITEM(names, i, s);
        }
    }
    else
    {
        if ( PyUnicode_Check(ev_o) )
            return PyErr_Format(PyExc_TypeError, "events must be a sequence of names");
        seq = PySequence_Fast(ev_o, "events must be a sequence of names");
        if ( !seq )
            return NULL;
        names = PySequence_Tuple(seq);
        Py_DECREF(seq);
    }
    if ( !names )
        return NULL;
    nr = (int)PyTuple_GET_SIZE(names);
    if ( nr < 1 || nr > PG_MAX_EVENTS )
    {
        Py_DECREF(names);
        return PyErr_Format(PyExc_ValueError, "1..%d events", PG_MAX_EVENTS);
    }
    for ( i = 0; i < nr; i++ )
    {
        PyObject *s = PyTuple_GET_ITEM(names, i);

        evs[i] = PyUnicode_Check(s) ? PyUnicode_AsUTF8(s) : NULL;
        if ( !evs[i] )
        {
            Py_DECREF(names);
            if ( !PyErr_Occurred() )
                PyErr_SetString(PyExc_TypeError, "event names must be str");
            return NULL;
        }
        if ( !pg_event_lookup(evs[i]) )
        {
            Py_DECREF(names);
            return PyErr_Format(PyExc_ValueError, "unknown perf event %R", s);
        }
    }

    if ( pid_o != Py_None )
    {
        pid = PyLong_AsLong(pid_o);
        if ( pid == -1 && PyErr_Occurred() )
            goto fail_names;
        if ( pid < 0 )
        {
            PyErr_SetString(PyExc_ValueError, "pid must be >= 0");
            goto fail_names;
        }
        target = PG_TARGET_PID;
    }
    else if ( cg_o != Py_None )
    {
        target = PG_TARGET_CGROUP;
        if ( PyLong_Check(cg_o) )
        {
            cgfd = PyLong_AsLong(cg_o);
            if ( cgfd == -1 && PyErr_Occurred() )
                goto fail_names;
        }
        else
        {
            PyObject *path = NULL;
            int err = 0;

            if ( !PyUnicode_FSConverter(cg_o, &path) )
                goto fail_names;
            Py_BEGIN_ALLOW_THREADS
            cgfd = open(PyBytes_AS_STRING(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if ( cgfd < 0 )
                err = errno;
            Py_END_ALLOW_THREADS
            Py_DECREF(path);
            if ( cgfd < 0 )
            {
                ms_raise(err, "open(cgroup)");
                goto fail_names;
            }
            cg_owned = 1;
        }
    }
    else
        target = PG_TARGET_CPU;

    obj = PyObject_New(PerfGroupObject, &ms_PerfGroupType);
    if ( !obj )
    {
        if ( cg_owned )
            close(cgfd);
        goto fail_names;
    }
    obj->open = 0;
    obj->events = names;   /* the object owns it now */
    memset(&obj->g, 0, sizeof(obj->g));

    Py_BEGIN_ALLOW_THREADS
    rc = pg_open(&obj->g, target, pid, cgfd, cpu, evs, nr, &call);
    Py_END_ALLOW_THREADS
    if ( rc < 0 )
    {
        if ( cg_owned )
            close(cgfd);
        Py_DECREF(obj);
        return ms_raise(-rc, call);
    }
    obj->g.cgroup_fd_owned = cg_owned;
    obj->open = 1;
    return (PyObject *)obj;

 fail_names:
    Py_DECREF(names);
    return NULL;
}

PyObject *ms_perf_events(PyObject *self, PyObject *noargs)
{
    const struct pg_event_def *e;
    PyObject *d = PyDict_New();

    for ( e = pg_events; d && e->name; e++ )
    {
        PyObject *v = PyUnicode_FromString(e->type == PERF_TYPE_HARDWARE
                                           ? "hardware" : "software");

        if ( !v || PyDict_SetItemString(d, e->name, v) < 0 )
            Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}
