/* Hand-written METH_FASTCALL entry points for the per-message calls
   (next_event, drain_connection, publish_event), added to the gopy-built
   module when it loads. gopy's generated wrapper costs ~250 ns per call
   before any work (argument parsing, GIL release, C string copies, str
   results); these read their arguments in place, call Go once, and build
   the result once as bytes or a list of bytes. See the README's "How the
   build works".

   The rule every entry here (and encode.c) keeps: memory that Go writes
   for a call belongs to that call alone until its Python objects are
   built. Between Go's write and the copy into those objects nothing may
   run that can run Python code or let another thread in: on CPython 3.11
   and older, allocating any object the cyclic collector tracks (a list, a
   tuple, a dict, an exception instance) can run a collection on the spot,
   and with it __del__ methods and weakref callbacks, which may call these
   same entries or release the GIL (every gopy call does). Hence:
   - the result buffer of next and drain is lent to one call at a time
     (fq_lend / fq_giveback): a call that starts while it is out, nested in
     a finalizer or on another thread, gets a buffer of its own, so the
     drain may allocate its list after Go has written its frames;
   - frames in a read-ahead window (Go memory shared by every call of the
     executor) are copied by PyBytes_FromStringAndSize, which the collector
     never runs in (bytes are not tracked), and kept only if the
     compare-and-swap that claims them succeeds;
   - publish and the encoder write into the caller's stack frame, or a
     heap block of the call's own;
   - no state in this file but the lent buffer's spare, the fork flag and
     the three objects of _fq_init outlives a call.
   Stack use is bounded too (small fixed buffers, the heap beyond them),
   since entries run on threads with small stacks.

   Every Python symbol used here is declared weak so that `go test` and
   `go vet` can link package pyapi into a program without libpython; in
   the extension they resolve against the interpreter when it loads. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <string.h>
#include <stdlib.h>

#include "fastcall.h"
#include "encode.h"
#include "_cgo_export.h"

#pragma weak PyBytes_FromStringAndSize
#pragma weak PyCapsule_GetPointer
#pragma weak PyCapsule_New
#pragma weak PyCallable_Check
#pragma weak PyCFunction_Type
#pragma weak PyCMethod_New
#pragma weak PyDict_New
#pragma weak PyDict_SetItem
#pragma weak PyErr_Clear
#pragma weak PyErr_NoMemory
#pragma weak PyErr_SetString
#pragma weak PyErr_Format
#pragma weak PyEval_RestoreThread
#pragma weak PyEval_SaveThread
#pragma weak PyGILState_Ensure
#pragma weak PyGILState_Release
#pragma weak PyImport_ImportModule
#pragma weak PyList_New
#pragma weak PyLong_AsLongLongAndOverflow
#pragma weak PyLong_FromLongLong
#pragma weak PyModule_AddFunctions
#pragma weak PyObject_Call
#pragma weak PyObject_CallObject
#pragma weak PyTuple_New
#pragma weak PyType_IsSubtype
#pragma weak PyUnicode_AsUTF8AndSize
#pragma weak PyUnicode_FromStringAndSize
#pragma weak _Py_Dealloc
#pragma weak _Py_NoneStruct
#pragma weak _Py_NotImplementedStruct
#pragma weak PyExc_RuntimeError
#pragma weak PyExc_TypeError
#pragma weak PyExc_ValueError
#pragma weak PyLong_Type
#pragma weak PyUnicode_Type
#pragma weak PyDict_Type

/* Set in a forked child: the Go runtime does not survive fork(), so every
   entry raises instead of calling into it. */
static volatile int fq_forked;
static PyObject *fq_fork_message;  /* str, from _fq_init */
static PyObject *fq_not_found;     /* SubscriptionNotFound, from _fq_init */
static PyObject *fq_outcome_unknown; /* PublishOutcomeUnknown, from _fq_init */

/* The result buffer of next and drain. Every entry runs with the GIL
   held until it has its result, so a spare buffer serves them all: a call
   takes it (fq_lend), Go copies frames into it, and the call gives it back
   once its Python objects are built (fq_giveback). A call that starts
   while the spare is out gets a new one. A result that does not fit is
   reported with its size and the call repeated with a larger buffer;
   buffers larger than FQ_BUF_KEEP are freed, not kept. */
#define FQ_BUF_DEFAULT (64 * 1024)
#define FQ_BUF_KEEP (1024 * 1024)
typedef struct {
	char *p;
	long long cap;
} fq_buffer;
static fq_buffer fq_spare; /* p NULL while lent */

static void fq_child_after_fork(void) { fq_forked = 1; }

static PyObject *fq_fork_error(void) {
	if (fq_fork_message != NULL) {
		PyObject *m = fq_fork_message;
		Py_ssize_t n;
		const char *s = PyUnicode_AsUTF8AndSize(m, &n);
		if (s != NULL) {
			PyErr_SetString(PyExc_RuntimeError, s);
			return NULL;
		}
		PyErr_Clear();
	}
	PyErr_SetString(PyExc_RuntimeError, "the fraiseql engine cannot be used in a process forked after it started");
	return NULL;
}

static int fq_lend(fq_buffer *b) {
	if (fq_spare.p != NULL) {
		*b = fq_spare;
		fq_spare.p = NULL;
		fq_spare.cap = 0;
		return 0;
	}
	b->p = malloc(FQ_BUF_DEFAULT);
	if (b->p == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	b->cap = FQ_BUF_DEFAULT;
	return 0;
}

static void fq_giveback(fq_buffer *b) {
	if (fq_spare.p == NULL && b->cap <= FQ_BUF_KEEP) {
		fq_spare = *b;
	} else {
		free(b->p);
	}
	b->p = NULL;
	b->cap = 0;
}

/* fq_grow replaces b by a buffer of at least need bytes. */
static int fq_grow(fq_buffer *b, long long need) {
	long long cap = b->cap * 2;
	if (cap < need) {
		cap = need;
	}
	char *p = malloc((size_t)cap);
	if (p == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	free(b->p);
	b->p = p;
	b->cap = cap;
	return 0;
}

/* fq_raise sets the exception a Go export reported: msg is its message. */
static PyObject *fq_raise(const fq_status *st, const char *msg) {
	PyObject *type;
	switch (st->kind) {
	case FQ_ERR_VALUE:
		type = PyExc_ValueError;
		break;
	case FQ_ERR_TYPE:
		type = PyExc_TypeError;
		break;
	case FQ_ERR_NOT_FOUND:
		type = fq_not_found != NULL ? fq_not_found : PyExc_ValueError;
		break;
	case FQ_ERR_OUTCOME_UNKNOWN:
		type = fq_outcome_unknown != NULL ? fq_outcome_unknown : PyExc_RuntimeError;
		break;
	default:
		type = PyExc_RuntimeError;
	}
	/* Messages are UTF-8 from Go; decode with replacement so a truncated
	   message still raises the right type. */
	PyObject *text = PyUnicode_FromStringAndSize(msg, (Py_ssize_t)st->msg_len);
	if (text == NULL) {
		PyErr_Clear();
		PyErr_SetString(type, "(undecodable error message)");
		return NULL;
	}
	PyErr_SetObject(type, text);
	Py_DECREF(text);
	return NULL;
}
#pragma weak PyErr_SetObject

/* An argument read in place: valid while the caller holds the object. */
typedef struct {
	const char *p;
	Py_ssize_t n;
} fq_str;

/* fq_plain_str reads a str without NUL characters or lone surrogates;
   0 when the argument is anything else (no exception left set). */
static int fq_plain_str(PyObject *o, fq_str *out) {
	if (!PyUnicode_Check(o)) {
		return 0;
	}
	out->p = PyUnicode_AsUTF8AndSize(o, &out->n);
	if (out->p == NULL) {
		PyErr_Clear();
		return 0;
	}
	return memchr(out->p, 0, (size_t)out->n) == NULL;
}

/* ---- the cores: arguments already checked ---- */

/* fq_next_core asks Go for sid's next frame; with ahead set, Go also lends
   the following frames to the executor's window. */
static PyObject *fq_next_core(long long fid, fq_str sid, int ahead) {
	fq_buffer buf;
	if (fq_lend(&buf) < 0) {
		return NULL;
	}
	PyObject *out;
	for (;;) {
		fq_status st = {0, 0, 0};
		long long r = fraiseqlPyNext(fid, (char *)sid.p, sid.n, buf.p, buf.cap, &st, ahead);
		if (r > 0) {
			out = PyBytes_FromStringAndSize(buf.p, (Py_ssize_t)r);
			break;
		}
		if (r == 0) {
			Py_INCREF(Py_None);
			out = Py_None;
			break;
		}
		if (r == -1) {
			out = fq_raise(&st, buf.p);
			break;
		}
		if (fq_grow(&buf, -r) < 0) {
			out = NULL;
			break;
		}
	}
	fq_giveback(&buf);
	return out;
}

/* fq_frames splits the count frames of buf[:size], separated by '\n', into
   a list of bytes. The list's allocation may run a collection: buf is this
   call's own. */
static PyObject *fq_frames(const char *buf, long long size, long long count) {
	PyObject *list = PyList_New((Py_ssize_t)count);
	if (list == NULL) {
		return NULL;
	}
	/* Frames are compact JSON, which never holds a raw newline. */
	const char *p = buf, *end = buf + size;
	for (Py_ssize_t i = 0; i < (Py_ssize_t)count; i++) {
		const char *nl = i + 1 < count ? memchr(p, '\n', (size_t)(end - p)) : NULL;
		const char *stop = nl != NULL ? nl : end;
		PyObject *b = PyBytes_FromStringAndSize(p, stop - p);
		if (b == NULL) {
			Py_DECREF(list);
			return NULL;
		}
		PyList_SET_ITEM(list, i, b);
		p = stop + 1;
	}
	return list;
}

static PyObject *fq_drain_core(long long fid, fq_str cid, long long max) {
	fq_buffer buf;
	if (fq_lend(&buf) < 0) {
		return NULL;
	}
	PyObject *out;
	for (;;) {
		fq_status st = {0, 0, 0};
		long long r = fraiseqlPyDrain(fid, (char *)cid.p, cid.n, max, buf.p, buf.cap, &st);
		if (r >= 0) {
			out = fq_frames(buf.p, r, st.count);
			break;
		}
		if (r == -1) {
			out = fq_raise(&st, buf.p);
			break;
		}
		if (fq_grow(&buf, -r) < 0) {
			out = NULL;
			break;
		}
	}
	fq_giveback(&buf);
	return out;
}

/* ---- module-level entries, for the shim's own calls ---- */

static int fq_fid(PyObject *o, long long *fid) {
	if (!PyLong_CheckExact(o)) {
		PyErr_SetString(PyExc_TypeError, "executor id must be an int");
		return 0;
	}
	int overflow = 0;
	*fid = PyLong_AsLongLongAndOverflow(o, &overflow);
	if (overflow != 0 || (*fid == -1 && PyErr_Occurred())) {
		PyErr_Clear();
		PyErr_SetString(PyExc_ValueError, "executor id out of range");
		return 0;
	}
	return 1;
}
#pragma weak PyErr_Occurred

static int fq_need_str(PyObject *o, fq_str *out, const char *name) {
	if (!fq_plain_str(o, out)) {
		PyErr_Format(PyExc_TypeError, "%s must be a str without NUL characters or lone surrogates", name);
		return 0;
	}
	return 1;
}

/* max_messages as the shim clamps it: to [0, 2**31 - 1]. */
static int fq_max(PyObject *o, long long *max) {
	if (!PyLong_CheckExact(o)) {
		return 0;
	}
	int overflow = 0;
	long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
	if (v == -1 && overflow == 0 && PyErr_Occurred()) {
		PyErr_Clear();
		return 0;
	}
	if (overflow > 0 || v > 2147483647LL) {
		v = 2147483647LL;
	}
	if (overflow < 0 || v < 0) {
		v = 0;
	}
	*max = v;
	return 1;
}

/* _fq_next(fid, subscription_id) */
static PyObject *fq_mod_next(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
	long long fid;
	fq_str sid;
	if (fq_forked) {
		return fq_fork_error();
	}
	if (nargs != 2) {
		PyErr_SetString(PyExc_TypeError, "_fq_next(fid, subscription_id)");
		return NULL;
	}
	if (!fq_fid(args[0], &fid) || !fq_need_str(args[1], &sid, "subscription_id")) {
		return NULL;
	}
	return fq_next_core(fid, sid, 0);
}

/* _fq_drain(fid, connection_id, max_messages) */
static PyObject *fq_mod_drain(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
	long long fid, max;
	fq_str cid;
	if (fq_forked) {
		return fq_fork_error();
	}
	if (nargs != 3) {
		PyErr_SetString(PyExc_TypeError, "_fq_drain(fid, connection_id, max_messages)");
		return NULL;
	}
	if (!fq_fid(args[0], &fid) || !fq_need_str(args[1], &cid, "connection_id")) {
		return NULL;
	}
	if (!fq_max(args[2], &max)) {
		PyErr_SetString(PyExc_TypeError, "max_messages must be an int");
		return NULL;
	}
	return fq_drain_core(fid, cid, max);
}

/* Room on the stack for an encoded event and for an error message;
   larger events go to the heap. Small, since the caller may be a thread
   with a small stack. (Not a buffer per thread: thread-local storage would
   make the extension need the dynamic loader's __tls_get_addr, an external
   library for auditwheel.) */
#define FQ_ENC_STACK (4 * 1024)
#define FQ_MSG_STACK 1024

/* fq_publish_core publishes data (a dict, encoded here, or its JSON text
   as a str) with the idempotency key key (none when key.n is 0), with the
   GIL released while Go decodes and dispatches. When the dict holds what
   only the standard library's encoder handles (see encode.c) it returns
   NotImplemented, and nothing is published. */
static PyObject *fq_publish_core(long long fid, fq_str typ, fq_str ch, PyObject *value, fq_str key) {
	fq_str data;
	char stack[FQ_ENC_STACK];
	fq_out enc = {stack, 0, sizeof stack, 0};
	if (PyUnicode_Check(value)) {
		data.p = PyUnicode_AsUTF8AndSize(value, &data.n);
		if (data.p == NULL) {
			return NULL;
		}
	} else if (PyDict_Check(value)) {
		int e = fq_encode(&enc, value);
		if (e != 0) {
			fq_out_free(&enc);
			if (e < 0) {
				return NULL;
			}
			Py_RETURN_NOTIMPLEMENTED;
		}
		data.p = enc.p;
		data.n = (Py_ssize_t)enc.len;
	} else {
		PyErr_SetString(PyExc_TypeError, "data must be a dict or its JSON text");
		return NULL;
	}
	char msg[FQ_MSG_STACK];
	fq_status st = {0, 0, 0};
	long long r;
	Py_BEGIN_ALLOW_THREADS
	r = fraiseqlPyPublish(fid, (char *)typ.p, typ.n, (char *)ch.p, ch.n, (char *)data.p, data.n, (char *)key.p,
	                      key.n, msg, (long long)sizeof msg, &st);
	Py_END_ALLOW_THREADS
	fq_out_free(&enc); /* nothing to free unless encoding moved to the heap */
	if (r < 0) {
		return fq_raise(&st, msg);
	}
	Py_RETURN_NONE;
}

/* _fq_publish(fid, event_type, channel, data[, idempotency_key]): see
   fq_publish_core. The shim's publish_event method, which runs only for
   calls the bound entry leaves to it, passes the standard library's text. */
static PyObject *fq_mod_publish(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
	long long fid;
	fq_str typ, ch, key = {NULL, 0};
	if (fq_forked) {
		return fq_fork_error();
	}
	if (nargs != 4 && nargs != 5) {
		PyErr_SetString(PyExc_TypeError, "_fq_publish(fid, event_type, channel, data[, idempotency_key])");
		return NULL;
	}
	if (!fq_fid(args[0], &fid) || !fq_need_str(args[1], &typ, "event_type") ||
	    !fq_need_str(args[2], &ch, "channel") || (nargs == 5 && !fq_need_str(args[4], &key, "idempotency_key"))) {
		return NULL;
	}
	return fq_publish_core(fid, typ, ch, args[3], key);
}

/* _fq_encode(value): value encoded as publish encodes data, as bytes, or
   NotImplemented (see encode.c); publish_events and the gathered asyncio
   publishes use it for their lists. */
static PyObject *fq_mod_encode(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 1) {
		PyErr_SetString(PyExc_TypeError, "_fq_encode(value)");
		return NULL;
	}
	char stack[FQ_ENC_STACK];
	fq_out out = {stack, 0, sizeof stack, 0};
	int e = fq_encode(&out, args[0]);
	PyObject *r = NULL;
	if (e == 0) {
		r = PyBytes_FromStringAndSize(out.p, (Py_ssize_t)out.len);
	} else if (e == FQ_ENC_UNSUPPORTED) {
		Py_INCREF(Py_NotImplemented);
		r = Py_NotImplemented;
	}
	fq_out_free(&out);
	return r;
}

/* ---- per-executor bound entries: executor.next_event is one of these ---- */

typedef struct {
	long long fid;
	PyObject *executor; /* weakref.ref to the executor: no reference cycle */
	PyObject *fallback; /* the Python method, called as fallback(executor, *args, **kwargs) */
	fq_window *win;     /* next_event's read-ahead (Go memory pinned until released), or NULL */
	PyObject *claim_hook; /* a test's callable (see _fq_claim_hook), NULL outside tests */
} fq_binding;

static void fq_binding_free(PyObject *capsule) {
	fq_binding *b = PyCapsule_GetPointer(capsule, NULL);
	if (b != NULL) {
		if (b->win != NULL && !fq_forked) { /* a forked child must not call Go */
			fraiseqlPyWindowRelease(b->win);
		}
		Py_XDECREF(b->executor);
		Py_XDECREF(b->fallback);
		Py_XDECREF(b->claim_hook);
		free(b);
	}
}

/* fq_run_claim_hook runs b's test hook once; -1 with its exception set if it
   raised. Out of line: next_event's fast path only tests the pointer. */
__attribute__((noinline, cold)) static int fq_run_claim_hook(fq_binding *b) {
	PyObject *hook = b->claim_hook;
	b->claim_hook = NULL;
	PyObject *r = PyObject_CallObject(hook, NULL);
	Py_DECREF(hook);
	if (r == NULL) {
		return -1;
	}
	Py_DECREF(r);
	return 0;
}

/* fq_fallback runs the Python method, which gives the exact messages of
   every unusual call. */
static PyObject *fq_fallback(fq_binding *b, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
	PyObject *ex = PyObject_CallObject(b->executor, NULL);
	if (ex == NULL) {
		return NULL;
	}
	if (ex == Py_None) {
		Py_DECREF(ex);
		PyErr_SetString(PyExc_RuntimeError, "executor is closed");
		return NULL;
	}
	Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
	PyObject *tuple = PyTuple_New(1 + nargs);
	if (tuple == NULL) {
		Py_DECREF(ex);
		return NULL;
	}
	PyTuple_SET_ITEM(tuple, 0, ex); /* steals ex */
	for (Py_ssize_t i = 0; i < nargs; i++) {
		Py_INCREF(args[i]);
		PyTuple_SET_ITEM(tuple, 1 + i, args[i]);
	}
	PyObject *kw = NULL;
	if (nkw > 0) {
		kw = PyDict_New();
		if (kw == NULL) {
			Py_DECREF(tuple);
			return NULL;
		}
		for (Py_ssize_t i = 0; i < nkw; i++) {
			if (PyDict_SetItem(kw, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
				Py_DECREF(kw);
				Py_DECREF(tuple);
				return NULL;
			}
		}
	}
	PyObject *out = PyObject_Call(b->fallback, tuple, kw);
	Py_DECREF(tuple);
	Py_XDECREF(kw);
	return out;
}

static PyObject *fq_bound_next(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
	fq_binding *b = PyCapsule_GetPointer(self, NULL);
	fq_str sid;
	if (b == NULL) {
		return NULL;
	}
	if (fq_forked) {
		return fq_fork_error();
	}
	if (nargs != 1 || kwnames != NULL || !fq_plain_str(args[0], &sid)) {
		return fq_fallback(b, args, nargs, kwnames);
	}
	/* A backlog is served from the window without calling Go: the frame is
	   ours once the compare-and-swap moves next past it (the engine may
	   take the window back at any time, from another thread). The window
	   is shared by every call on this executor, but its frames change only
	   in a call of fraiseqlPyNext with read-ahead, and nothing between the
	   checks and the compare-and-swap can run one: PyBytes_FromStringAndSize
	   copies the frame and runs no Python code (bytes are not tracked by
	   the collector, so their allocation never starts a collection). */
	fq_window *w = b->win;
	if (w != NULL) {
		int64_t k = __atomic_load_n(&w->next, __ATOMIC_ACQUIRE);
		/* A test's hook may take the window back here, as another thread can:
		   the claim below must then fail. */
		if (__builtin_expect(b->claim_hook != NULL, 0) && k < w->count && fq_run_claim_hook(b) < 0) {
			return NULL;
		}
		if (k < w->count && w->id_len == (int64_t)sid.n && memcmp(w->id, sid.p, (size_t)sid.n) == 0) {
			do {
				PyObject *out = PyBytes_FromStringAndSize(w->buf + w->off[k], (Py_ssize_t)w->len[k]);
				if (out == NULL) {
					return NULL;
				}
				if (__atomic_compare_exchange_n(&w->next, &k, k + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
					return out;
				}
				Py_DECREF(out);
			} while (k < w->count);
		}
	}
	return fq_next_core(b->fid, sid, w != NULL);
}

static PyObject *fq_bound_drain(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
	fq_binding *b = PyCapsule_GetPointer(self, NULL);
	fq_str cid;
	long long max = 0;
	if (b == NULL) {
		return NULL;
	}
	if (fq_forked) {
		return fq_fork_error();
	}
	if (nargs < 1 || nargs > 2 || kwnames != NULL || !fq_plain_str(args[0], &cid) ||
	    (nargs == 2 && !fq_max(args[1], &max))) {
		return fq_fallback(b, args, nargs, kwnames);
	}
	return fq_drain_core(b->fid, cid, max);
}

/* executor.publish_event(event_type, channel, data): a plain call with a
   dict the extension encodes runs no Python frame; anything else (and a
   dict only the standard library's encoder handles) runs the method. */
static PyObject *fq_bound_publish(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
	fq_binding *b = PyCapsule_GetPointer(self, NULL);
	fq_str typ, ch;
	if (b == NULL) {
		return NULL;
	}
	if (fq_forked) {
		return fq_fork_error();
	}
	if (nargs != 3 || kwnames != NULL || !PyDict_Check(args[2]) || !fq_plain_str(args[0], &typ) ||
	    !fq_plain_str(args[1], &ch)) {
		return fq_fallback(b, args, nargs, kwnames);
	}
	fq_str nokey = {NULL, 0};
	PyObject *r = fq_publish_core(b->fid, typ, ch, args[2], nokey);
	if (r == Py_NotImplemented) {
		Py_DECREF(r);
		return fq_fallback(b, args, nargs, kwnames);
	}
	return r;
}

static PyMethodDef fq_bound_defs[] = {
	{"next_event", (PyCFunction)(void (*)(void))fq_bound_next, METH_FASTCALL | METH_KEYWORDS,
	 "The next message as bytes, or None when nothing is pending."},
	{"drain_connection", (PyCFunction)(void (*)(void))fq_bound_drain, METH_FASTCALL | METH_KEYWORDS,
	 "Every pending message of a connection's subscriptions, in publish order."},
	{"publish_event", (PyCFunction)(void (*)(void))fq_bound_publish, METH_FASTCALL | METH_KEYWORDS,
	 "Publish data (a dict) on channel; the GIL is released while Go works."},
};

/* _fq_bind(which, fid, executor_weakref, fallback): which is 0 for
   next_event, 1 for drain_connection, 2 for publish_event. */
static PyObject *fq_mod_bind(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
	long long which, fid;
	if (nargs != 4) {
		PyErr_SetString(PyExc_TypeError, "_fq_bind(which, fid, executor_weakref, fallback)");
		return NULL;
	}
	if (!fq_fid(args[0], &which) || !fq_fid(args[1], &fid)) {
		return NULL;
	}
	if (which < 0 || which > 2) {
		PyErr_SetString(PyExc_ValueError, "which must be 0, 1 or 2");
		return NULL;
	}
	fq_binding *b = malloc(sizeof *b);
	if (b == NULL) {
		return PyErr_NoMemory();
	}
	b->fid = fid;
	b->win = which == 0 ? fraiseqlPyWindow(fid) : NULL; /* NULL: no read-ahead */
	b->claim_hook = NULL;
	b->executor = args[2];
	b->fallback = args[3];
	Py_INCREF(b->executor);
	Py_INCREF(b->fallback);
	PyObject *capsule = PyCapsule_New(b, NULL, fq_binding_free);
	if (capsule == NULL) {
		if (b->win != NULL) {
			fraiseqlPyWindowRelease(b->win);
		}
		Py_DECREF(b->executor);
		Py_DECREF(b->fallback);
		free(b);
		return NULL;
	}
	PyObject *f = PyCFunction_NewEx(&fq_bound_defs[which], capsule, NULL);
	Py_DECREF(capsule);
	return f;
}

/* _fq_claim_hook(next_event, hook): a test's hook on a bound next_event.
   hook() runs once, in the next call that finds frames lent, between its
   load of the window's next frame and its claim of it (the
   compare-and-swap), so that a test can take the window back there as the
   engine may from another thread at any time. The shim allows it only on
   executors made with debug_hooks. */
static PyObject *fq_mod_claim_hook(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 2 || !PyCFunction_Check(args[0]) ||
	    PyCFunction_GET_FUNCTION(args[0]) != (PyCFunction)(void (*)(void))fq_bound_next || !PyCallable_Check(args[1])) {
		PyErr_SetString(PyExc_TypeError, "_fq_claim_hook(next_event, hook): a bound next_event and a callable");
		return NULL;
	}
	fq_binding *b = PyCapsule_GetPointer(PyCFunction_GET_SELF(args[0]), NULL);
	if (b == NULL) {
		return NULL;
	}
	Py_INCREF(args[1]);
	Py_XSETREF(b->claim_hook, args[1]);
	Py_RETURN_NONE;
}

/* _fq_window_holds(fid): how many holds the bound next_event entries have
   on the read-ahead window of the executor of fid (0 without one), for the
   tests that check each hold is given back. */
static PyObject *fq_mod_window_holds(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
	long long fid;
	if (nargs != 1) {
		PyErr_SetString(PyExc_TypeError, "_fq_window_holds(fid)");
		return NULL;
	}
	if (!fq_fid(args[0], &fid)) {
		return NULL;
	}
	return PyLong_FromLongLong(fraiseqlPyWindowHolds(fid));
}

/* _fq_init(not_found_class, outcome_unknown_class, fork_message) */
static PyObject *fq_mod_init(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
	static int atfork_done;
	if (nargs != 3 || !PyUnicode_Check(args[2])) {
		PyErr_SetString(PyExc_TypeError, "_fq_init(not_found_class, outcome_unknown_class, fork_message)");
		return NULL;
	}
	Py_INCREF(args[0]);
	Py_XSETREF(fq_not_found, args[0]);
	Py_INCREF(args[1]);
	Py_XSETREF(fq_outcome_unknown, args[1]);
	Py_INCREF(args[2]);
	Py_XSETREF(fq_fork_message, args[2]);
	if (!atfork_done) {
		if (pthread_atfork(NULL, NULL, fq_child_after_fork) != 0) {
			PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
			return NULL;
		}
		atfork_done = 1;
	}
	Py_RETURN_NONE;
}

static PyMethodDef fq_module_defs[] = {
	{"_fq_init", (PyCFunction)(void (*)(void))fq_mod_init, METH_FASTCALL, NULL},
	{"_fq_bind", (PyCFunction)(void (*)(void))fq_mod_bind, METH_FASTCALL, NULL},
	{"_fq_claim_hook", (PyCFunction)(void (*)(void))fq_mod_claim_hook, METH_FASTCALL, NULL},
	{"_fq_window_holds", (PyCFunction)(void (*)(void))fq_mod_window_holds, METH_FASTCALL, NULL},
	{"_fq_next", (PyCFunction)(void (*)(void))fq_mod_next, METH_FASTCALL, NULL},
	{"_fq_drain", (PyCFunction)(void (*)(void))fq_mod_drain, METH_FASTCALL, NULL},
	{"_fq_publish", (PyCFunction)(void (*)(void))fq_mod_publish, METH_FASTCALL, NULL},
	{"_fq_encode", (PyCFunction)(void (*)(void))fq_mod_encode, METH_FASTCALL, NULL},
	{NULL, NULL, 0, NULL},
};

long long fq_window_layout(int i) {
	switch (i) {
	case 0:
		return (long long)offsetof(fq_window, next);
	case 1:
		return (long long)offsetof(fq_window, count);
	case 2:
		return (long long)offsetof(fq_window, id_len);
	case 3:
		return (long long)offsetof(fq_window, id);
	case 4:
		return (long long)offsetof(fq_window, off);
	case 5:
		return (long long)offsetof(fq_window, len);
	case 6:
		return (long long)offsetof(fq_window, buf);
	case 7:
		return (long long)sizeof(fq_window);
	}
	return -1;
}

int fq_attach(const char *module) {
	PyGILState_STATE g = PyGILState_Ensure();
	int rc = -1;
	PyObject *m = PyImport_ImportModule(module);
	if (m != NULL) {
		rc = PyModule_AddFunctions(m, fq_module_defs);
		Py_DECREF(m);
	}
	if (rc != 0) {
		PyErr_Clear();
	}
	PyGILState_Release(g);
	return rc;
}
