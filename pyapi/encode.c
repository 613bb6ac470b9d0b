/* The JSON encoder of publish_event's data: the bytes
   json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode writes,
   for the values that are exactly dict, list, tuple, str, int, float,
   bool or None. Anything else (a subclass, an int that does not fit 64
   bits, NaN or an infinity, a key that is not a str, nesting deeper than
   FQ_ENC_DEPTH, which a circular structure reaches) is left to that
   encoder: fq_encode reports it and the shim encodes with the standard
   library, which raises its usual errors. So the data and the errors are
   the standard library's; this is only faster on the common shapes.
   tests/test_encode.py compares the two encoders byte for byte.

   It keeps fastcall.c's rule: it runs no Python code (it allocates no
   Python object and calls no method), so the containers it walks cannot
   change under it, and it keeps nothing between calls. Its C stack use
   does not grow with the data's nesting (see fq_value). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"

#pragma weak PyDict_Next
#pragma weak PyErr_NoMemory
#pragma weak PyLong_AsLongLongAndOverflow
#pragma weak PyMem_Free
#pragma weak PyOS_double_to_string
#pragma weak _Py_FalseStruct
#pragma weak _Py_NoneStruct
#pragma weak _Py_TrueStruct
#pragma weak PyDict_Type
#pragma weak PyFloat_Type
#pragma weak PyList_Type
#pragma weak PyLong_Type
#pragma weak PyTuple_Type
#pragma weak PyUnicode_Type
#if PY_VERSION_HEX < 0x030C0000
#pragma weak _PyUnicode_Ready
#endif

/* Deeper data goes to the standard library, which counts its recursion
   against the interpreter's limit and finds circular references. */
#define FQ_ENC_DEPTH 200

/* memmove, not memcpy: glibc versions memcpy at 2.14, which would cost
   the wheels their widest manylinux tag. */

static int fq_reserve(fq_out *o, size_t more) {
	if (o->len + more <= o->cap) {
		return 0;
	}
	size_t cap = o->cap ? o->cap * 2 : 4096;
	while (cap < o->len + more) {
		cap *= 2;
	}
	char *p = o->heap ? realloc(o->p, cap) : malloc(cap);
	if (p == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	if (!o->heap) {
		memmove(p, o->p, o->len);
		o->heap = 1;
	}
	o->p = p;
	o->cap = cap;
	return 0;
}

static int fq_put(fq_out *o, const char *s, size_t n) {
	if (fq_reserve(o, n) < 0) {
		return -1;
	}
	memmove(o->p + o->len, s, n);
	o->len += n;
	return 0;
}

static const char fq_hex[] = "0123456789abcdef";

/* fq_escape writes the escape of c as py_encode_basestring_ascii does;
   room for 12 bytes is reserved by the caller. */
static char *fq_escape(char *w, Py_UCS4 c) {
	*w++ = '\\';
	switch (c) {
	case '\\': *w++ = '\\'; return w;
	case '"': *w++ = '"'; return w;
	case '\b': *w++ = 'b'; return w;
	case '\f': *w++ = 'f'; return w;
	case '\n': *w++ = 'n'; return w;
	case '\r': *w++ = 'r'; return w;
	case '\t': *w++ = 't'; return w;
	}
	if (c >= 0x10000) {
		Py_UCS4 v = c - 0x10000;
		Py_UCS4 hi = 0xd800 | ((v >> 10) & 0x3ff);
		*w++ = 'u';
		*w++ = fq_hex[(hi >> 12) & 0xf];
		*w++ = fq_hex[(hi >> 8) & 0xf];
		*w++ = fq_hex[(hi >> 4) & 0xf];
		*w++ = fq_hex[hi & 0xf];
		c = 0xdc00 | (v & 0x3ff);
		*w++ = '\\';
	}
	*w++ = 'u';
	*w++ = fq_hex[(c >> 12) & 0xf];
	*w++ = fq_hex[(c >> 8) & 0xf];
	*w++ = fq_hex[(c >> 4) & 0xf];
	*w++ = fq_hex[c & 0xf];
	return w;
}

/* Printable ASCII other than '"' and '\\' is written as is. */
static inline int fq_plain(Py_UCS4 c) { return c >= ' ' && c <= '~' && c != '"' && c != '\\'; }

/* fq_plain_run returns how many of the n bytes at p, from the start, are
   plain: eight at a time while no byte of the word needs an escape (a
   control character, '"', '\\', DEL or a byte of 0x80 and above). */
#define FQ_ONES 0x0101010101010101ULL
#define FQ_HIGHS 0x8080808080808080ULL
static inline unsigned long long fq_zero_byte(unsigned long long v) { return (v - FQ_ONES) & ~v & FQ_HIGHS; }
static Py_ssize_t fq_plain_run(const unsigned char *p, Py_ssize_t n) {
	Py_ssize_t j = 0;
	for (; j + 8 <= n; j += 8) {
		unsigned long long v;
		memmove(&v, p + j, 8); /* an unaligned load once compiled */
		unsigned long long bad = (v & FQ_HIGHS) | ((v - FQ_ONES * 0x20) & ~v & FQ_HIGHS) |
		                         fq_zero_byte(v ^ (FQ_ONES * '"')) | fq_zero_byte(v ^ (FQ_ONES * '\\')) |
		                         fq_zero_byte(v ^ (FQ_ONES * 0x7f));
		if (bad != 0) {
			break;
		}
	}
	while (j < n && fq_plain(p[j])) {
		j++;
	}
	return j;
}

static int fq_str_json(fq_out *o, PyObject *s) {
#if PY_VERSION_HEX < 0x030C0000
	if (PyUnicode_READY(s) < 0) {
		return -1;
	}
#endif
	Py_ssize_t n = PyUnicode_GET_LENGTH(s);
	int kind = PyUnicode_KIND(s);
	const void *data = PyUnicode_DATA(s);
	/* At most 12 bytes per character, and the quotes. */
	if (fq_reserve(o, (size_t)n * 12 + 2) < 0) {
		return -1;
	}
	char *w = o->p + o->len;
	*w++ = '"';
	if (kind == PyUnicode_1BYTE_KIND) {
		const unsigned char *p = data;
		Py_ssize_t i = 0;
		while (i < n) {
			Py_ssize_t j = i + fq_plain_run(p + i, n - i);
			memmove(w, p + i, (size_t)(j - i));
			w += j - i;
			if (j < n) {
				w = fq_escape(w, p[j]);
				j++;
			}
			i = j;
		}
	} else {
		for (Py_ssize_t i = 0; i < n; i++) {
			Py_UCS4 c = PyUnicode_READ(kind, data, i);
			if (fq_plain(c)) {
				*w++ = (char)c;
			} else {
				w = fq_escape(w, c);
			}
		}
	}
	*w++ = '"';
	o->len = (size_t)(w - o->p);
	return 0;
}


static int fq_float(fq_out *o, PyObject *v) {
	double d = PyFloat_AS_DOUBLE(v);
	/* By the bits: isfinite() was found true for infinity in this
	   extension's build, whose C flags come from gopy and the
	   interpreter's configuration. */
	union {
		double d;
		unsigned long long bits;
	} u = {d};
	if ((u.bits & 0x7ff0000000000000ULL) == 0x7ff0000000000000ULL) {
		return FQ_ENC_UNSUPPORTED; /* allow_nan=False raises there */
	}
	/* float.__repr__, which the standard encoder calls. */
	char *s = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
	if (s == NULL) {
		return -1;
	}
	int r = fq_put(o, s, strlen(s));
	PyMem_Free(s);
	return r;
}

static int fq_int(fq_out *o, PyObject *v) {
	int overflow;
	long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
	if (overflow) {
		return FQ_ENC_UNSUPPORTED;
	}
	if (x == -1 && PyErr_Occurred()) {
		return -1;
	}
	char buf[24], *e = buf + sizeof buf, *p = e;
	unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (x < 0) {
		*--p = '-';
	}
	return fq_put(o, p, (size_t)(e - p));
}
#pragma weak PyErr_Occurred

/* fq_scalar writes v when it is not a container: 0, -1 on error, or
   FQ_ENC_UNSUPPORTED. */
static int fq_scalar(fq_out *o, PyObject *v) {
	if (PyUnicode_CheckExact(v)) {
		return fq_str_json(o, v);
	}
	if (v == Py_None) {
		return fq_put(o, "null", 4);
	}
	if (v == Py_True) {
		return fq_put(o, "true", 4);
	}
	if (v == Py_False) {
		return fq_put(o, "false", 5);
	}
	if (PyLong_CheckExact(v)) {
		return fq_int(o, v);
	}
	if (PyFloat_CheckExact(v)) {
		return fq_float(o, v);
	}
	return FQ_ENC_UNSUPPORTED;
}

/* An open container: a dict (items NULL; at is PyDict_Next's position) or
   a list or tuple (items[at] is the next item). */
typedef struct {
	PyObject *dict;
	PyObject *const *items;
	Py_ssize_t n, at;
} fq_open;

/* Open containers kept on the C stack; deeper ones move to the heap. */
#define FQ_ENC_FRAMES 16

/* fq_value writes v without recursion, so that its C stack use does not
   grow with the nesting: a thread with a small stack encodes as deep as
   the standard library's encoder does (FQ_ENC_DEPTH, then the standard
   library itself). No Python code runs while it walks the containers, so
   none of them can change under it. */
static int fq_value(fq_out *o, PyObject *v) {
	fq_open small[FQ_ENC_FRAMES], *open = small;
	int depth = 0, cap = FQ_ENC_FRAMES, r = 0;
	for (;;) {
		if (depth > FQ_ENC_DEPTH) {
			r = FQ_ENC_UNSUPPORTED;
			break;
		}
		int is_dict = PyDict_CheckExact(v);
		if (is_dict || PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
			if (depth == cap) {
				fq_open *more = malloc(sizeof *more * (size_t)cap * 2);
				if (more == NULL) {
					PyErr_NoMemory();
					r = -1;
					break;
				}
				memmove(more, open, sizeof *more * (size_t)depth);
				if (open != small) {
					free(open);
				}
				open = more;
				cap *= 2;
			}
			fq_open *f = &open[depth++];
			f->dict = is_dict ? v : NULL;
			f->items = is_dict ? NULL : PySequence_Fast_ITEMS(v);
			f->n = is_dict ? 0 : PySequence_Fast_GET_SIZE(v);
			f->at = 0;
			if ((r = fq_put(o, is_dict ? "{" : "[", 1)) != 0) {
				break;
			}
		} else if ((r = fq_scalar(o, v)) != 0) {
			break;
		}
		/* The next value: the next item of the innermost open container
		   that has one, closing the finished ones. */
		v = NULL;
		while (depth > 0 && v == NULL) {
			fq_open *f = &open[depth - 1];
			if (f->dict != NULL) {
				PyObject *key, *value;
				Py_ssize_t before = f->at;
				if (PyDict_Next(f->dict, &f->at, &key, &value)) {
					if (!PyUnicode_CheckExact(key)) {
						r = FQ_ENC_UNSUPPORTED;
						break;
					}
					if ((before > 0 && fq_put(o, ",", 1) < 0) || fq_str_json(o, key) < 0 ||
					    fq_put(o, ":", 1) < 0) {
						r = -1;
						break;
					}
					v = value;
					continue;
				}
			} else if (f->at < f->n) {
				if (f->at > 0 && fq_put(o, ",", 1) < 0) {
					r = -1;
					break;
				}
				v = f->items[f->at++];
				continue;
			}
			if (fq_put(o, f->dict != NULL ? "}" : "]", 1) < 0) {
				r = -1;
				break;
			}
			depth--;
		}
		if (r != 0 || v == NULL) {
			break;
		}
	}
	if (open != small) {
		free(open);
	}
	return r;
}

int fq_encode(fq_out *o, PyObject *v) {
	o->len = 0;
	return fq_value(o, v);
}

void fq_out_free(fq_out *o) {
	if (o->heap) {
		free(o->p);
		o->heap = 0;
	}
	o->p = NULL;
	o->len = o->cap = 0;
}
