package pyapi

// #include <stdlib.h>
// #include "fastcall.h"
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/fraiseql/fraiseql-subscriptions/subscriptions"
)

// The Go side of fastcall.c. Exported C symbols are global in the process,
// so they carry the fraiseqlPy prefix. Arguments arrive as pointer and
// length into memory Python owns for the duration of the call: Go reads
// them in place (unsafe.String) and never keeps them. Results are copied
// into the caller's C buffer. Each export recovers panics into a
// RuntimeError, since a panic here would abort the interpreter.

func attach(module string) error {
	if err := checkWindowLayout(); err != nil {
		return err
	}
	name := C.CString(module)
	defer C.free(unsafe.Pointer(name))
	if C.fq_attach(name) != 0 {
		return fmt.Errorf("cannot add the fast entry points to module %q", module)
	}
	return nil
}

func cString(p *C.char, n C.longlong) string {
	if n <= 0 {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Pointer(p)), int(n))
}

func cBytes(p *C.char, n C.longlong) []byte {
	if n <= 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
}

// fail reports err through st and msg; the export then returns -1.
func fail(err error, msg []byte, st *C.fq_status) C.longlong {
	kind := C.FQ_ERR_RUNTIME
	switch subscriptions.KindOf(err) {
	case subscriptions.KindValue:
		kind = C.FQ_ERR_VALUE
		if isNotFound(err) {
			kind = C.FQ_ERR_NOT_FOUND
		}
	case subscriptions.KindType:
		kind = C.FQ_ERR_TYPE
	default:
		if errors.Is(err, subscriptions.ErrOutcomeUnknown) {
			kind = C.FQ_ERR_OUTCOME_UNKNOWN
		}
	}
	st.kind = C.int(kind)
	st.msg_len = C.longlong(copy(msg, errorText(err, len(msg))))
	return -1
}

// errorText is err's message as valid UTF-8, which Python decodes (a
// server's error reply, passed on, may hold any bytes), cut on a rune
// boundary to at most room bytes.
func errorText(err error, room int) string {
	text := strings.ToValidUTF8(err.Error(), "\uFFFD")
	if len(text) > room {
		text = text[:room]
		for len(text) > 0 && !utf8.ValidString(text) { // cut on a rune boundary
			text = text[:len(text)-1]
		}
	}
	return text
}

// isNotFound tells a missing subscription, which Python raises as
// SubscriptionNotFound.
func isNotFound(err error) bool { return errors.Is(err, subscriptions.ErrSubscriptionNotFound) }

// recoverFast turns a panic into a RuntimeError reported through st.
func recoverFast(r *C.longlong, msg []byte, st *C.fq_status) {
	if p := recover(); p != nil {
		*r = fail(fmt.Errorf("internal error (please report): %v\n%s", p, debug.Stack()), msg, st)
	}
}

// fraiseqlPyNext writes the next frame of subscription sid into buf:
// returns its length, 0 when nothing is pending, -1 on error (st, message
// in buf), or -need when buf is too small (nothing removed). With ahead
// set it also lends the following frames to the executor's read-ahead
// window (see fraiseqlPyWindow), their count in st.count.
//
//export fraiseqlPyNext
func fraiseqlPyNext(fid C.longlong, sid *C.char, sidLen C.longlong, buf *C.char, bufCap C.longlong, st *C.fq_status,
	ahead C.int) (r C.longlong) {
	out := cBytes(buf, bufCap)
	defer recoverFast(&r, out, st)
	x, err := fastEntry(int64(fid))
	if err != nil {
		return fail(err, out, st)
	}
	x.debugPanic()
	var n, need, lent int
	if w := x.window.Load(); ahead != 0 && w != nil {
		n, need, lent, err = x.e.NextAhead(cString(sid, sidLen), out, w.w)
	} else {
		n, need, err = x.e.NextInto(cString(sid, sidLen), out)
	}
	st.count = C.longlong(lent)
	switch {
	case err != nil:
		return fail(err, out, st)
	case need > 0:
		return -C.longlong(need)
	}
	return C.longlong(n)
}

// fraiseqlPyDrain writes up to max pending frames of connection cid into
// buf, separated by '\n': returns their total length with their count in
// st.count, -1 on error, or -need when buf is too small (nothing removed).
//
//export fraiseqlPyDrain
func fraiseqlPyDrain(fid C.longlong, cid *C.char, cidLen C.longlong, max C.longlong, buf *C.char, bufCap C.longlong, st *C.fq_status) (r C.longlong) {
	out := cBytes(buf, bufCap)
	defer recoverFast(&r, out, st)
	x, err := fastEntry(int64(fid))
	if err != nil {
		return fail(err, out, st)
	}
	x.debugPanic()
	size, n, need, err := x.e.DrainInto(cString(cid, cidLen), int(max), out)
	switch {
	case err != nil:
		return fail(err, out, st)
	case need > 0:
		return -C.longlong(need)
	}
	st.count = C.longlong(n)
	return C.longlong(size)
}

// fraiseqlPyPublish publishes one event whose data is JSON text, with the
// idempotency key key (none when keyLen is 0): 0, or -1 on error (st,
// message in msg). It runs without the GIL.
//
//export fraiseqlPyPublish
func fraiseqlPyPublish(fid C.longlong, typ *C.char, typLen C.longlong, ch *C.char, chLen C.longlong,
	data *C.char, dataLen C.longlong, key *C.char, keyLen C.longlong, msg *C.char, msgCap C.longlong, st *C.fq_status) (r C.longlong) {
	out := cBytes(msg, msgCap)
	defer recoverFast(&r, out, st)
	x, err := fastEntry(int64(fid))
	if err != nil {
		return fail(err, out, st)
	}
	x.debugPanic()
	// Copies: the bus may keep the event after this call returns.
	ev := subscriptions.Event{
		Type:    strings.Clone(cString(typ, typLen)),
		Channel: strings.Clone(cString(ch, chLen)),
		Data:    append([]byte(nil), cBytes(data, dataLen)...),

		IdempotencyKey: strings.Clone(cString(key, keyLen)),
	}
	if ev.Data == nil {
		ev.Data = []byte{}
	}
	if err := x.e.PublishValid(context.Background(), ev); err != nil {
		return fail(err, out, st)
	}
	return 0
}

// fraiseqlPyWindow returns the read-ahead window of the executor of fid,
// pinned until as many fraiseqlPyWindowRelease calls as this one had
// (bound next_event entries hold it); nil when fid is unknown.
//
//export fraiseqlPyWindow
func fraiseqlPyWindow(fid C.longlong) (r *C.fq_window) {
	defer func() {
		if recover() != nil {
			r = nil
		}
	}()
	x, err := fastEntry(int64(fid))
	if err != nil {
		return nil
	}
	return (*C.fq_window)(unsafe.Pointer(x.openWindow().w.Shared()))
}

// fraiseqlPyWindowRelease drops a hold on a window from fraiseqlPyWindow;
// the last one takes back what it lends and unpins it.
//
//export fraiseqlPyWindowRelease
func fraiseqlPyWindowRelease(w *C.fq_window) {
	defer func() { _ = recover() }()
	releaseWindow(unsafe.Pointer(w))
}

// fraiseqlPyWindowHolds returns how many holds C has on the read-ahead
// window of the executor of fid, 0 without a window or an executor: for
// tests, which check that each hold taken is given back.
//
//export fraiseqlPyWindowHolds
func fraiseqlPyWindowHolds(fid C.longlong) C.longlong {
	x, err := fastEntry(int64(fid))
	if err != nil {
		return 0
	}
	fastMu.Lock()
	defer fastMu.Unlock()
	if pw := x.window.Load(); pw != nil {
		return C.longlong(pw.holds)
	}
	return 0
}

// checkWindowLayout compares fq_window with subscriptions.WindowShared.
func checkWindowLayout() error {
	var w subscriptions.WindowShared
	want := []uintptr{unsafe.Offsetof(w.Next), unsafe.Offsetof(w.Count), unsafe.Offsetof(w.IDLen),
		unsafe.Offsetof(w.ID), unsafe.Offsetof(w.Off), unsafe.Offsetof(w.Len), unsafe.Offsetof(w.Buf), unsafe.Sizeof(w)}
	for i, off := range want {
		if got := uintptr(C.fq_window_layout(C.int(i))); got != off {
			return fmt.Errorf("fq_window field %d at %d, subscriptions.WindowShared's at %d", i, got, off)
		}
	}
	return nil
}
