/* The JSON encoder of publish_event's data (encode.c). Include after
   Python.h. */
#ifndef FRAISEQL_ENCODE_H
#define FRAISEQL_ENCODE_H

#include <stddef.h>

/* An output buffer, grown as needed: it starts in memory the caller
   provides (on its stack, for the common small event) and moves to the
   heap when that is too small. */
typedef struct {
	char *p;
	size_t len, cap;
	int heap; /* p was allocated here: fq_out_free frees it */
} fq_out;

/* fq_encode's result when the value is for the standard library's encoder
   (no exception set); -1 is an error with an exception set, 0 success. */
#define FQ_ENC_UNSUPPORTED 1

int fq_encode(fq_out *o, PyObject *v);
void fq_out_free(fq_out *o);

#endif
