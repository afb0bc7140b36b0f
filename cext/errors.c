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
 * The class is defined in Python source executed at module init: an
 * OSError subclass needs a custom __init__ to take a third argument
 * without OSError treating it as a filename, and that is two lines of
 * Python against a page of C.
 */
#include "memswap_ext.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

PyObject *ms_MemswapError;

static const char error_src[] =
"class MemswapError(OSError):\n"
"    \"\"\"A memswap operation failed.\n"
"\n"
"    An OSError: .errno and .strerror as usual, and .call, the name of the\n"
"    failing call (e.g. 'sim_swap', 'xc_interface_open', 'perf_event_open').\n"
"    Constructed as MemswapError(errno, strerror, call).\n"
"    \"\"\"\n"
"    def __init__(self, errno, strerror, call=None):\n"
"        super().__init__(errno, strerror)\n"
"        self.call = call\n"
"\n"
"    def __str__(self):\n"
"        s = '[Errno %s] %s' % (self.errno, self.strerror)\n"
"        return '%s: %s' % (self.call, s) if self.call else s\n";

int ms_errors_init(PyObject *module)
{
    PyObject *globals, *res, *name;
    int rc;

    globals = PyDict_New();
    if ( !globals )
        return -1;
    name = PyModule_GetNameObject(module);
    if ( !name )
        goto fail;
    rc = PyDict_SetItemString(globals, "__name__", name);
    Py_DECREF(name);
    if ( rc < 0 ||
         PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0 )
        goto fail;
    res = PyRun_String(error_src, Py_file_input, globals, globals);
    if ( !res )
        goto fail;
    Py_DECREF(res);
    ms_MemswapError = PyDict_GetItemString(globals, "MemswapError"); /* borrowed */
    if ( !ms_MemswapError )
        goto fail;
    Py_INCREF(ms_MemswapError);
    Py_DECREF(globals);
    Py_INCREF(ms_MemswapError);
    if ( PyModule_AddObject(module, "MemswapError", ms_MemswapError) < 0 )
    {
        Py_DECREF(ms_MemswapError);
        return -1;
    }
    return 0;

 fail:
    Py_DECREF(globals);
    return -1;
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
