/* The sanitizer build of the hand-written entry points (make asan).

   Go's runtime and an AddressSanitizer-instrumented cgo extension loaded
   into an uninstrumented interpreter do not mix, so this program compiles
   pyapi/fastcall.c and pyapi/encode.c with -fsanitize=address,undefined
   on their own, embeds CPython, and stands in for the Go exports with a
   small engine in C: subscriptions with queues of frames, connections,
   publish, and the read-ahead window, following the contract fastcall.go
   documents (-need when the buffer is small, -1 with a message, the
   window's compare-and-swap and take-back). tools/asan/drive.py then
   calls every entry point the way the test suite does, finalizers and
   threads included. What it checks is the C side only: every read and
   write of the entry points and the encoder stays inside live memory, and
   no undefined behaviour, under the same re-entrancy the tests arm. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_cgo_export.h"

int fq_attach(const char *module);

typedef struct frame {
	char *p;
	long long n;
	struct frame *next;
} frame;

typedef struct {
	char *conn, *id, *channel;
	frame *head, *tail;
	long long queued;
} sub;

#define MAX_SUBS 64
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static sub subs[MAX_SUBS];
static int nsubs;
static fq_window *win;
static int win_holds;
static int win_owner = -1;

static int same(const char *s, const char *p, long long n) {
	return (long long)strlen(s) == n && memcmp(s, p, (size_t)n) == 0;
}

static int find(const char *id, long long n) {
	for (int i = 0; i < nsubs; i++) {
		if (same(subs[i].id, id, n)) {
			return i;
		}
	}
	return -1;
}

static void pop(sub *s) {
	frame *f = s->head;
	s->head = f->next;
	if (s->head == NULL) {
		s->tail = NULL;
	}
	s->queued--;
	free(f->p);
	free(f);
}

static void push(sub *s, const char *p, long long n) {
	frame *f = calloc(1, sizeof *f);
	f->p = malloc((size_t)n + 1);
	memcpy(f->p, p, (size_t)n);
	f->n = n;
	if (s->tail != NULL) {
		s->tail->next = f;
	} else {
		s->head = f;
	}
	s->tail = f;
	s->queued++;
}

/* take_back ends a lend: the frames the reader took were read. */
static void take_back(void) {
	if (win == NULL || win_owner < 0) {
		return;
	}
	int64_t count = win->count;
	int64_t taken = __atomic_exchange_n(&win->next, count, __ATOMIC_SEQ_CST);
	for (int64_t i = 0; i < taken && i < count; i++) {
		pop(&subs[win_owner]);
	}
	win_owner = -1;
}

static void lend(int i) {
	sub *s = &subs[i];
	long long at = 0;
	int count = 0;
	for (frame *f = s->head; f != NULL && count < FQ_WIN_FRAMES; f = f->next) {
		if (at + f->n > FQ_WIN_BYTES) {
			break;
		}
		memcpy(win->buf + at, f->p, (size_t)f->n);
		win->off[count] = (uint32_t)at;
		win->len[count] = (uint32_t)f->n;
		at += f->n;
		count++;
	}
	size_t idn = strlen(s->id);
	if (count == 0 || idn > FQ_WIN_ID_BYTES) {
		return;
	}
	memcpy(win->id, s->id, idn);
	win->id_len = (int64_t)idn;
	win->count = count;
	__atomic_store_n(&win->next, 0, __ATOMIC_RELEASE);
	win_owner = i;
}

static long long fail(fq_status *st, char *msg, long long cap, int kind, const char *text, const char *arg,
                      long long argn) {
	char tmp[512];
	int n = snprintf(tmp, sizeof tmp, "%s%.*s", text, (int)(argn < 200 ? argn : 200), arg);
	if (n > cap) {
		n = (int)cap;
	}
	memcpy(msg, tmp, (size_t)n);
	st->kind = kind;
	st->msg_len = n;
	return -1;
}

long long fraiseqlPyNext(long long fid, char *sid, long long sidLen, char *buf, long long bufCap, fq_status *st,
                         int ahead) {
	pthread_mutex_lock(&mu);
	long long r;
	int i = find(sid, sidLen);
	if (fid != 1) {
		r = fail(st, buf, bufCap, FQ_ERR_RUNTIME, "executor is closed", "", 0);
	} else if (i < 0) {
		r = fail(st, buf, bufCap, FQ_ERR_NOT_FOUND, "Subscription not found: ", sid, sidLen);
	} else {
		take_back();
		sub *s = &subs[i];
		if (s->head == NULL) {
			r = 0;
		} else if (s->head->n > bufCap) {
			r = -s->head->n;
		} else {
			memcpy(buf, s->head->p, (size_t)s->head->n);
			r = s->head->n;
			pop(s);
			if (ahead && win != NULL) {
				lend(i);
			}
		}
	}
	pthread_mutex_unlock(&mu);
	return r;
}

long long fraiseqlPyDrain(long long fid, char *cid, long long cidLen, long long max, char *buf, long long bufCap,
                          fq_status *st) {
	pthread_mutex_lock(&mu);
	long long r = 0, count = 0, need = 0;
	if (fid != 1) {
		r = fail(st, buf, bufCap, FQ_ERR_RUNTIME, "executor is closed", "", 0);
		goto out;
	}
	take_back();
	for (int i = 0; i < nsubs; i++) {
		if (!same(subs[i].conn, cid, cidLen)) {
			continue;
		}
		for (frame *f = subs[i].head; f != NULL && (max == 0 || count < max); f = f->next) {
			need += (count > 0) + f->n;
			count++;
		}
	}
	if (need > bufCap) {
		r = -need;
		goto out;
	}
	long long taken = 0;
	for (int i = 0; i < nsubs; i++) {
		if (!same(subs[i].conn, cid, cidLen)) {
			continue;
		}
		while (subs[i].head != NULL && taken < count) {
			if (taken > 0) {
				buf[r++] = '\n';
			}
			memcpy(buf + r, subs[i].head->p, (size_t)subs[i].head->n);
			r += subs[i].head->n;
			pop(&subs[i]);
			taken++;
		}
	}
	st->count = count;
out:
	pthread_mutex_unlock(&mu);
	return r;
}

/* A publish with the idempotency key "lost" fails as one whose answer was
   lost (after it was published). */
long long fraiseqlPyPublish(long long fid, char *typ, long long typLen, char *ch, long long chLen, char *data,
                            long long dataLen, char *key, long long keyLen, char *msg, long long msgCap,
                            fq_status *st) {
	(void)typ;
	(void)typLen;
	pthread_mutex_lock(&mu);
	long long r = 0;
	if (fid != 1) {
		r = fail(st, msg, msgCap, FQ_ERR_RUNTIME, "executor is closed", "", 0);
	} else if (keyLen == 4 && memcmp(key, "lost", 4) == 0) {
		r = fail(st, msg, msgCap, FQ_ERR_OUTCOME_UNKNOWN, "the outcome is unknown: key ", key, keyLen);
	} else if (dataLen == 0 || data[0] != '{' || data[dataLen - 1] != '}') {
		r = fail(st, msg, msgCap, FQ_ERR_VALUE, "data is not a JSON object: ", data, dataLen);
	} else {
		for (int i = 0; i < nsubs; i++) {
			if (!same(subs[i].channel, ch, chLen)) {
				continue;
			}
			size_t idn = strlen(subs[i].id);
			long long n = 64 + (long long)idn + dataLen;
			char *f = malloc((size_t)n);
			int k = snprintf(f, (size_t)n, "{\"type\":\"next\",\"id\":\"%s\",\"payload\":", subs[i].id);
			memcpy(f + k, data, (size_t)dataLen);
			f[k + dataLen] = '}';
			push(&subs[i], f, k + dataLen + 1);
			free(f);
		}
	}
	pthread_mutex_unlock(&mu);
	return r;
}

fq_window *fraiseqlPyWindow(long long fid) {
	if (fid != 1) {
		return NULL;
	}
	pthread_mutex_lock(&mu);
	if (win == NULL) {
		win = calloc(1, sizeof *win);
	}
	win_holds++;
	fq_window *w = win;
	pthread_mutex_unlock(&mu);
	return w;
}

void fraiseqlPyWindowRelease(fq_window *w) {
	pthread_mutex_lock(&mu);
	if (w == win && --win_holds == 0) {
		take_back();
		free(win);
		win = NULL;
	}
	pthread_mutex_unlock(&mu);
}

long long fraiseqlPyWindowHolds(long long fid) {
	pthread_mutex_lock(&mu);
	long long n = (fid == 1 && win != NULL) ? win_holds : 0;
	pthread_mutex_unlock(&mu);
	return n;
}

/* ---- the module drive.py controls the engine with ---- */

static PyObject *m_add(PyObject *self, PyObject *args) {
	const char *conn, *id, *channel;
	if (!PyArg_ParseTuple(args, "sss", &conn, &id, &channel)) {
		return NULL;
	}
	pthread_mutex_lock(&mu);
	if (nsubs < MAX_SUBS) {
		subs[nsubs].conn = strdup(conn);
		subs[nsubs].id = strdup(id);
		subs[nsubs].channel = strdup(channel);
		nsubs++;
	}
	pthread_mutex_unlock(&mu);
	Py_RETURN_NONE;
}

static PyObject *m_push(PyObject *self, PyObject *args) {
	const char *id;
	const char *p;
	Py_ssize_t n;
	if (!PyArg_ParseTuple(args, "sy#", &id, &p, &n)) {
		return NULL;
	}
	pthread_mutex_lock(&mu);
	int i = find(id, (long long)strlen(id));
	if (i >= 0) {
		push(&subs[i], p, n);
	}
	pthread_mutex_unlock(&mu);
	if (i < 0) {
		PyErr_SetString(PyExc_KeyError, id);
		return NULL;
	}
	Py_RETURN_NONE;
}

static PyObject *m_queued(PyObject *self, PyObject *args) {
	const char *id;
	if (!PyArg_ParseTuple(args, "s", &id)) {
		return NULL;
	}
	pthread_mutex_lock(&mu);
	int i = find(id, (long long)strlen(id));
	long long q = i >= 0 ? subs[i].queued : -1;
	pthread_mutex_unlock(&mu);
	return PyLong_FromLongLong(q);
}

static PyObject *m_reset(PyObject *self, PyObject *args) {
	pthread_mutex_lock(&mu);
	take_back();
	for (int i = 0; i < nsubs; i++) {
		while (subs[i].head != NULL) {
			pop(&subs[i]);
		}
		free(subs[i].conn);
		free(subs[i].id);
		free(subs[i].channel);
	}
	nsubs = 0;
	pthread_mutex_unlock(&mu);
	Py_RETURN_NONE;
}

static PyMethodDef m_defs[] = {
	{"add", m_add, METH_VARARGS, NULL},
	{"push", m_push, METH_VARARGS, NULL},
	{"queued", m_queued, METH_VARARGS, NULL},
	{"reset", m_reset, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef m_module = {PyModuleDef_HEAD_INIT, "fqasan", NULL, -1, m_defs};

static PyObject *m_init(void) { return PyModule_Create(&m_module); }

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: %s drive.py\n", argv[0]);
		return 2;
	}
	PyImport_AppendInittab("fqasan", m_init);
	Py_Initialize();
	PyObject *m = PyImport_ImportModule("fqasan");
	if (m == NULL || fq_attach("fqasan") != 0) {
		PyErr_Print();
		return 1;
	}
	Py_DECREF(m);
	FILE *f = fopen(argv[1], "r");
	if (f == NULL) {
		perror(argv[1]);
		return 2;
	}
	int rc = PyRun_SimpleFileEx(f, argv[1], 1);
	if (Py_FinalizeEx() < 0) {
		rc = 1;
	}
	return rc == 0 ? 0 : 1;
}
