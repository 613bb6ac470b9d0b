/* What cgo's export header declares for fastcall.c, for the sanitizer
   build (tools/asan), where engine.c stands in for the Go exports. */
#ifndef FRAISEQL_ASAN_CGO_EXPORT_H
#define FRAISEQL_ASAN_CGO_EXPORT_H

#include "fastcall.h"

long long fraiseqlPyNext(long long fid, char *sid, long long sidLen, char *buf, long long bufCap, fq_status *st,
                         int ahead);
long long fraiseqlPyDrain(long long fid, char *cid, long long cidLen, long long max, char *buf, long long bufCap,
                          fq_status *st);
long long fraiseqlPyPublish(long long fid, char *typ, long long typLen, char *ch, long long chLen, char *data,
                            long long dataLen, char *key, long long keyLen, char *msg, long long msgCap,
                            fq_status *st);
fq_window *fraiseqlPyWindow(long long fid);
void fraiseqlPyWindowRelease(fq_window *w);
long long fraiseqlPyWindowHolds(long long fid);

#endif
