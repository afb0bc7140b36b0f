/* SPDX-License-Identifier: GPL-2.0-only */
/* Small conversions shared by the backends. */
#include "memswap_ext.h"

int ms_colours_from_py(PyObject *obj, unsigned int nr_colours,
                       unsigned long long *bitmap, unsigned int words)
{
    PyObject *seq;
    Py_ssize_t i, n;

    memset(bitmap, 0, words * sizeof(*bitmap));
    if ( obj == NULL || obj == Py_None )
        return 0;
    seq = PySequence_Fast(obj, "colours must be a sequence of ints or None");
    if ( !seq )
        return -1;
    n = PySequence_Fast_GET_SIZE(seq);
    for ( i = 0; i < n; i++ )
    {
        long c = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));

        if ( c == -1 && PyErr_Occurred() )
            goto fail;
        if ( c < 0 || (unsigned long)c >= nr_colours ||
             (unsigned long)c >= words * 64UL )
        {
            PyErr_Format(PyExc_ValueError, "colour %ld out of range 0..%u",
                         c, nr_colours - 1);
            goto fail;
        }
        bitmap[c / 64] |= 1ULL << (c % 64);
    }
    Py_DECREF(seq);
    return 0;

 fail:
    Py_DECREF(seq);
    return -1;
}

int ms_dict_set_u64(PyObject *d, const char *key, unsigned long long v)
{
    PyObject *o = PyLong_FromUnsignedLongLong(v);
    int rc = o ? PyDict_SetItemString(d, key, o) : -1;

    Py_XDECREF(o);
    return rc;
}

/* A list of @n counts; frame numbers when @frames (all ones: -1). */
static PyObject *u64_list(const uint64_t *v, uint64_t n, int frames)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    uint64_t i;

    for ( i = 0; list && i < n; i++ )
    {
        PyObject *x = frames && v[i] == ~(uint64_t)0 ? PyLong_FromLong(-1)
                                                      : PyLong_FromUnsignedLongLong(v[i]);

        if ( !x )
        {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, x);
    }
    return list;
}

PyObject *ms_occupancy_dict(const uint64_t *colours, unsigned int nr_colours,
                            const uint64_t *nodes, unsigned int nr_nodes,
                            const uint64_t *frames, uint64_t nr_frames, int want_frames,
                            uint64_t nr_pfns, uint64_t frames_counted, uint64_t tot_pages,
                            int translated)
{
    PyObject *c = u64_list(colours, nr_colours, 0), *n = u64_list(nodes, nr_nodes, 0);
    PyObject *f = want_frames ? u64_list(frames, nr_frames, 1) : (Py_INCREF(Py_None), Py_None);
    PyObject *d = NULL;

    if ( c && n && f )
        d = Py_BuildValue("{sOsOsOsKsKsKsO}", "colours", c, "nodes", n, "frames", f,
                          "nr_pfns", (unsigned long long)nr_pfns,
                          "frames_counted", (unsigned long long)frames_counted,
                          "tot_pages", (unsigned long long)tot_pages,
                          "translated", translated ? Py_True : Py_False);
    Py_XDECREF(c);
    Py_XDECREF(n);
    Py_XDECREF(f);
    return d;
}
