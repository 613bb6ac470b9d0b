/* Declarations shared by fastcall.c and the Go exports of fastcall.go.
   No Python types here: cgo's generated export header includes this file
   and must compile without Python.h. */
#ifndef FRAISEQL_FASTCALL_H
#define FRAISEQL_FASTCALL_H

#include <stddef.h>

/* What a Go export reports back. On failure (return value -1) kind is one
   of the FQ_ERR_* codes and the message is in the caller's buffer,
   msg_len bytes long. */
typedef struct {
	int kind;
	long long msg_len;
	long long count; /* frames written by a drain */
} fq_status;

enum {
	FQ_ERR_RUNTIME = 0,
	FQ_ERR_VALUE = 1,
	FQ_ERR_TYPE = 2,
	FQ_ERR_NOT_FOUND = 3
};

/* fq_attach adds the fast entry points to the loaded module named module
   (a NUL-terminated name); 0 on success. Called from Go, without the GIL. */
int fq_attach(const char *module);

#endif
