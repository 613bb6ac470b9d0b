/* The JSON encoder of publish_event's data (encode.c). Include after
   Python.h. */
#ifndef FRAISEQL_ENCODE_H
#define FRAISEQL_ENCODE_H

#include <stddef.h>

/* An output buffer, grown as needed. */
typedef struct {
	char *p;
	size_t len, cap;
} fq_out;

/* fq_encode's result when the value is for the standard library's encoder
   (no exception set); -1 is an error with an exception set, 0 success. */
#define FQ_ENC_UNSUPPORTED 1

/* A buffer grown past this is freed after use. */
#define FQ_ENC_KEEP (1024 * 1024)

int fq_encode(fq_out *o, PyObject *v);
void fq_out_trim(fq_out *o);

#endif
