/* The argument test of a compiled tape's repeated-call path, in C.
 *
 * tapediff/fastpath.py generates one Python function per call path; for
 * every array argument it tested, in Python, the exact type, the shape, the
 * dtype and the C-contiguous layout (2.8 of the 10.3 us of a 2-50-2 MLP's
 * value+gradient, six arrays: benchmarks/results/bench-calls-2026-12-05-
 * {685902f,71a96e6}.txt). td_argcheck does the same tests for all the arrays
 * of a call at once, as a builtin function (METH_FASTCALL, the GIL held):
 *
 *     check(dims, dtypes, a0, a1, ..., an)  ->  True / False
 *
 * dims   bytes: int64 per array, its ndim then its dims (the expected shapes)
 * dtypes tuple: the expected dtype of each array
 * flags  the last entry of dims: 1 when the arrays must also be writeable
 *        (out= buffers)
 *
 * True when every a_k is exactly an ndarray (not a subclass) of the expected
 * shape and dtype, C-contiguous (NumPy's flag, the Python path's test), and
 * writeable where asked. False otherwise: the caller then runs the Python
 * tests, which copy an array of another layout or give up on the path.
 *
 * Built once per machine through the cffi module cache (tapediff/runtime/
 * argcheck.py), which hands Python the address of the method definition;
 * the function object is made with PyCFunction_NewEx.
 */
#define NPY_NO_DEPRECATED_API NPY_2_0_API_VERSION
#include <numpy/arrayobject.h>
#include <stdint.h>
#include <string.h>

static int td_numpy_ready = 0;

static PyObject *td_argcheck(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (!td_numpy_ready) {
        if (PyArray_ImportNumPyAPI() < 0)
            return NULL;
        td_numpy_ready = 1;
    }
    if (nargs < 2 || !PyBytes_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "td_argcheck(dims: bytes, dtypes: tuple, *arrays)");
        return NULL;
    }
    const Py_ssize_t n = nargs - 2;
    const int64_t *d = (const int64_t *)PyBytes_AS_STRING(args[0]);
    const Py_ssize_t nd_words = PyBytes_GET_SIZE(args[0]) / (Py_ssize_t)sizeof(int64_t);
    if (PyTuple_GET_SIZE(args[1]) != n || nd_words < 1) {
        PyErr_SetString(PyExc_ValueError, "td_argcheck: dims and dtypes do not fit the arrays");
        return NULL;
    }
    const int writeable = (int)d[nd_words - 1];
    Py_ssize_t w = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *o = args[k + 2];
        if (Py_TYPE(o) != &PyArray_Type)
            Py_RETURN_FALSE;
        PyArrayObject *a = (PyArrayObject *)o;
        const int nd = PyArray_NDIM(a);
        if (w >= nd_words - 1 || d[w] != nd || w + 1 + nd > nd_words - 1)
            Py_RETURN_FALSE;
        const npy_intp *dims = PyArray_DIMS(a);
        for (int j = 0; j < nd; j++)
            if ((int64_t)dims[j] != d[w + 1 + j])
                Py_RETURN_FALSE;
        w += 1 + nd;
        PyObject *w_obj = PyTuple_GET_ITEM(args[1], k);
        if (!PyArray_DescrCheck(w_obj)) {
            PyErr_SetString(PyExc_TypeError, "td_argcheck: dtypes must hold numpy dtypes");
            return NULL;
        }
        PyArray_Descr *want = (PyArray_Descr *)w_obj;
        PyArray_Descr *have = PyArray_DESCR(a);
        if (have != want && !PyArray_EquivTypes(have, want))
            Py_RETURN_FALSE;
        if (!PyArray_IS_C_CONTIGUOUS(a) || (writeable && !PyArray_ISWRITEABLE(a)))
            Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

static PyMethodDef td_argcheck_method = {
    "td_argcheck", (PyCFunction)(void (*)(void))td_argcheck, METH_FASTCALL,
    "check(dims, dtypes, *arrays): the arrays' type, shapes, dtypes and layout "
    "(tapediff's repeated-call paths)"};

void *td_argcheck_def(void) { return &td_argcheck_method; }
