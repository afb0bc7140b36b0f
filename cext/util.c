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
