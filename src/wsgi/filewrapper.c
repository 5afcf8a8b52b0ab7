/*
 * filewrapper.c - wsgi.file_wrapper. Iterating it reads blksize blocks; the
 * worker recognises its instances and sends the file with sendfile(2) instead
 * when the file has a real descriptor.
 */
#include "wsgi.h"

#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *filelike; /* owned */
    Py_ssize_t blksize;
} cg_wsgi_file_wrapper_t;

static int cg__fw_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    cg_wsgi_file_wrapper_t *fw = (cg_wsgi_file_wrapper_t *)self;
    static char *kwlist[] = {"filelike", "blksize", NULL};
    PyObject *filelike;
    Py_ssize_t blksize = 8192;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|n:FileWrapper", kwlist, &filelike, &blksize))
        return -1;
    Py_INCREF(filelike);
    Py_XSETREF(fw->filelike, filelike);
    fw->blksize = blksize > 0 ? blksize : 8192;
    return 0;
}

static void cg__fw_dealloc(PyObject *self)
{
    cg_wsgi_file_wrapper_t *fw = (cg_wsgi_file_wrapper_t *)self;
    PyObject_GC_UnTrack(self);
    Py_CLEAR(fw->filelike);
    Py_TYPE(self)->tp_free(self);
}

static int cg__fw_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((cg_wsgi_file_wrapper_t *)self)->filelike);
    return 0;
}

static int cg__fw_clear(PyObject *self)
{
    Py_CLEAR(((cg_wsgi_file_wrapper_t *)self)->filelike);
    return 0;
}

static PyObject *cg__fw_next(PyObject *self)
{
    cg_wsgi_file_wrapper_t *fw = (cg_wsgi_file_wrapper_t *)self;
    if (fw->filelike == NULL)
        return NULL;
    PyObject *data = PyObject_CallMethod(fw->filelike, "read", "n", fw->blksize); /* new */
    if (data == NULL)
        return NULL;
    int truth = PyObject_IsTrue(data);
    if (truth <= 0) {
        Py_DECREF(data);
        return NULL; /* empty read: StopIteration (or the error of IsTrue) */
    }
    return data;
}

/* close() is delegated to the file, as PEP 3333 asks. */
static PyObject *cg__fw_close(PyObject *self, PyObject *unused)
{
    cg_wsgi_file_wrapper_t *fw = (cg_wsgi_file_wrapper_t *)self;
    if (fw->filelike != NULL && PyObject_HasAttrString(fw->filelike, "close"))
        return PyObject_CallMethod(fw->filelike, "close", NULL);
    Py_RETURN_NONE;
}

static PyMethodDef cg__fw_methods[] = {
    {"close", cg__fw_close, METH_NOARGS, "Close the wrapped file."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef cg__fw_members[] = {
    {"filelike", T_OBJECT, offsetof(cg_wsgi_file_wrapper_t, filelike), READONLY, NULL},
    {"blksize", T_PYSSIZET, offsetof(cg_wsgi_file_wrapper_t, blksize), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject cg_wsgi_file_wrapper_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "cgunicorn.FileWrapper",
    .tp_basicsize = sizeof(cg_wsgi_file_wrapper_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = cg__fw_init,
    .tp_dealloc = cg__fw_dealloc,
    .tp_traverse = cg__fw_traverse,
    .tp_clear = cg__fw_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = cg__fw_next,
    .tp_methods = cg__fw_methods,
    .tp_members = cg__fw_members,
};
