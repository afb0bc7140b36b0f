/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * MemswapError: the extension's one exception type.
 *
 * An OSError subclass carrying errno, strerror and the name of the failing
 * call (`call`), so that callers can tell "no such domain" (ESRCH from
 * sim_swap or xc_domain_getinfolist) from "not a Xen host" (ENOENT from
 * xc_interface_open) the way they would with any OSError, and say which
 * call failed. It is raised as MemswapError(errno, strerror, call).
 *
 * Made with PyErr_NewExceptionWithDoc; its __init__ takes the third
 * argument as `call` (OSError would take it for a filename) and its
 * __str__ names the call first.
 */
#include "memswap_ext.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

PyObject *ms_MemswapError;

static const char error_doc[] =
"A memswap operation failed.\n"
"\n"
"An OSError: .errno and .strerror as usual, and .call, the name of the\n"
"failing call (e.g. 'sim_swap', 'xc_interface_open', 'swap-preflight').\n"
"Constructed as MemswapError(errno, strerror, call).";

/* __init__(self, errno, strerror, call=None) */
static PyObject *error_init(PyObject *unused, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "self", "errno", "strerror", "call", NULL };
    PyObject *self, *err, *text, *call = Py_None, *r;

    if ( !PyArg_ParseTupleAndKeywords(args, kw, "OOO|O:MemswapError", kwlist,
                                      &self, &err, &text, &call) )
        return NULL;
    r = PyObject_CallMethod(PyExc_OSError, "__init__", "OOO", self, err, text);
    if ( !r )
        return NULL;
    Py_DECREF(r);
    if ( PyObject_SetAttrString(self, "call", call) < 0 )
        return NULL;
    Py_RETURN_NONE;
}

/* "call: [Errno N] text", or OSError's own text without a call */
static PyObject *error_str(PyObject *unused, PyObject *self)
{
    PyObject *call, *err, *text, *s = NULL;

    call = PyObject_GetAttrString(self, "call");
    if ( !call )
    {
        PyErr_Clear();
        call = Py_NewRef(Py_None);
    }
    err = PyObject_GetAttrString(self, "errno");
    text = err ? PyObject_GetAttrString(self, "strerror") : NULL;
    if ( err && text )
        s = call == Py_None ? PyUnicode_FromFormat("[Errno %S] %S", err, text)
                            : PyUnicode_FromFormat("%S: [Errno %S] %S", call, err, text);
    Py_XDECREF(err);
    Py_XDECREF(text);
    Py_DECREF(call);
    return s;
}

static PyMethodDef error_init_def = {
    "__init__", (PyCFunction)(void (*)(void))error_init, METH_VARARGS | METH_KEYWORDS,
    "MemswapError(errno, strerror, call=None)"
};
static PyMethodDef error_str_def = { "__str__", error_str, METH_O, NULL };

/* A method for the class dict: a builtin wrapped so that it binds self. */
static int add_method(PyObject *dict, PyMethodDef *def)
{
    PyObject *fn = PyCFunction_New(def, NULL), *m;
    int rc;

    if ( !fn )
        return -1;
    m = PyInstanceMethod_New(fn);
    Py_DECREF(fn);
    if ( !m )
        return -1;
    rc = PyDict_SetItemString(dict, def->ml_name, m);
    Py_DECREF(m);
    return rc;
}

int ms_errors_init(PyObject *module)
{
    PyObject *dict = PyDict_New();

    if ( !dict )
        return -1;
    if ( add_method(dict, &error_init_def) < 0 || add_method(dict, &error_str_def) < 0 )
    {
        Py_DECREF(dict);
        return -1;
    }
    ms_MemswapError = PyErr_NewExceptionWithDoc("memswap._memswap.MemswapError",
                                                error_doc, PyExc_OSError, dict);
    Py_DECREF(dict);
    if ( !ms_MemswapError )
        return -1;
    Py_INCREF(ms_MemswapError);
    if ( PyModule_AddObject(module, "MemswapError", ms_MemswapError) < 0 )
    {
        Py_DECREF(ms_MemswapError);
        return -1;
    }
    return 0;
}

static PyObject *raise_text(int err, const char *call, const char *text)
{
    PyObject *exc = PyObject_CallFunction(ms_MemswapError, "iss", err, text, call);

    if ( exc )
    {
        PyErr_SetObject(ms_MemswapError, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyObject *ms_raise(int err, const char *call)
{
    return raise_text(err, call, strerror(err));
}

PyObject *ms_raise_msg(int err, const char *call, const char *fmt, ...)
{
    char extra[512], text[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(extra, sizeof(extra), fmt, ap);
    va_end(ap);
    snprintf(text, sizeof(text), "%s (%s)", strerror(err), extra);
    return raise_text(err, call, text);
}

void ms_error_set_attr(const char *name, PyObject *value)
{
    PyObject *type, *val, *tb;

    if ( !value )
    {
        PyErr_Clear();
        return;
    }
    PyErr_Fetch(&type, &val, &tb);
    PyErr_NormalizeException(&type, &val, &tb);
    if ( val && PyObject_SetAttrString(val, name, value) < 0 )
        PyErr_Clear();
    Py_DECREF(value);
    PyErr_Restore(type, val, tb);
}
