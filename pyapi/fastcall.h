/* Declarations shared by fastcall.c and the Go exports of fastcall.go.
   No Python types here: cgo's generated export header includes this file
   and must compile without Python.h. */
#ifndef FRAISEQL_FASTCALL_H
#define FRAISEQL_FASTCALL_H

#include <stddef.h>
#include <stdint.h>

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
	FQ_ERR_NOT_FOUND = 3,
	FQ_ERR_OUTCOME_UNKNOWN = 4 /* a publish that may have happened (ErrOutcomeUnknown) */
};

/* A read-ahead window: frames of one subscription's queue that next_event
   takes without calling Go. The layout is subscriptions.WindowShared's (Go
   memory, pinned while a binding holds it); fq_window_layout lets Go check
   it. Frame i is buf[off[i] : off[i] + len[i]]; frames [next, count) are
   lent to the subscription named by id[:id_len]. A reader takes frame k by
   compare-and-swap of next from k to k + 1; the engine takes the rest back
   by swapping count into next. count, the id and the frames change only
   in a call of fraiseqlPyNext that asks for read-ahead, made with the GIL
   held, like every read of them. */
#define FQ_WIN_FRAMES 64
#define FQ_WIN_BYTES (16 * 1024)
#define FQ_WIN_ID_BYTES 256
typedef struct {
	int64_t next;
	int64_t count;
	int64_t id_len;
	char id[FQ_WIN_ID_BYTES];
	uint32_t off[FQ_WIN_FRAMES];
	uint32_t len[FQ_WIN_FRAMES];
	char buf[FQ_WIN_BYTES];
} fq_window;

/* The offset of fq_window's field i (in declaration order), or its size
   for i == 7. */
long long fq_window_layout(int i);

/* fq_attach adds the fast entry points to the loaded module named module
   (a NUL-terminated name); 0 on success. Called from Go, without the GIL. */
int fq_attach(const char *module);

#endif
