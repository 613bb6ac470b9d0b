package pyapi

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/fraiseql/fraiseql-subscriptions/subscriptions"
)

// The per-message calls (next_event, drain_connection, publish_event) do
// not go through gopy's generated wrappers: hand-written CPython entry
// points (fastcall.c, fastcall.go) find the executor by a small id in a
// copy-on-write table read with one atomic load. AttachFast adds them to
// the module once it is loaded.

var (
	fastMu    sync.Mutex
	fastTable atomic.Pointer[[]*SubscriptionExecutor] // index id-1; copy on write
	fastIDs   = map[*SubscriptionExecutor]int{}       // guarded by fastMu
)

// FastID returns the id under which the fast entry points find x,
// registering it on the first call.
func (x *SubscriptionExecutor) FastID() (id int, err error) {
	defer recoverTo(&err)
	fastMu.Lock()
	defer fastMu.Unlock()
	if id := fastIDs[x]; id != 0 {
		return id, nil
	}
	var cur []*SubscriptionExecutor
	if p := fastTable.Load(); p != nil {
		cur = *p
	}
	next := make([]*SubscriptionExecutor, len(cur)+1)
	copy(next, cur)
	next[len(cur)] = x
	fastTable.Store(&next)
	fastIDs[x] = len(next)
	return len(next), nil
}

// ReleaseFastID forgets the executor of id, once Python has dropped it.
// Unknown ids are ignored.
func ReleaseFastID(id int) {
	fastMu.Lock()
	defer fastMu.Unlock()
	p := fastTable.Load()
	if p == nil || id < 1 || id > len(*p) {
		return
	}
	next := make([]*SubscriptionExecutor, len(*p))
	copy(next, *p)
	delete(fastIDs, next[id-1])
	next[id-1] = nil
	fastTable.Store(&next)
}

// pinnedWindow is an executor's read-ahead window while C holds it.
type pinnedWindow struct {
	x     *SubscriptionExecutor
	w     *subscriptions.Window
	pin   runtime.Pinner
	holds int // guarded by fastMu
}

// windows finds a pinned window by the address C holds. Guarded by fastMu.
var windows = map[unsafe.Pointer]*pinnedWindow{}

// openWindow returns x's read-ahead window, pinned, with one more hold.
func (x *SubscriptionExecutor) openWindow() *pinnedWindow {
	fastMu.Lock()
	defer fastMu.Unlock()
	pw := x.window.Load()
	if pw == nil {
		pw = &pinnedWindow{x: x, w: x.e.NewWindow()}
		pw.pin.Pin(pw.w.Shared())
		windows[unsafe.Pointer(pw.w.Shared())] = pw
		x.window.Store(pw)
	}
	pw.holds++
	return pw
}

// releaseWindow drops a hold on the window at p; the last takes back what
// it lends and unpins it. Unknown addresses are ignored.
func releaseWindow(p unsafe.Pointer) {
	fastMu.Lock()
	defer fastMu.Unlock()
	pw := windows[p]
	if pw == nil {
		return
	}
	if pw.holds--; pw.holds > 0 {
		return
	}
	delete(windows, p)
	pw.x.window.CompareAndSwap(pw, nil)
	pw.w.Close()
	pw.pin.Unpin()
}

// fastEntry returns the executor registered under id.
func fastEntry(id int64) (*SubscriptionExecutor, error) {
	if p := fastTable.Load(); p != nil && id >= 1 && id <= int64(len(*p)) {
		if x := (*p)[id-1]; x != nil {
			return x, nil
		}
	}
	return nil, subscriptions.ErrClosed
}

// fastExecutor returns the engine of the executor registered under id.
func fastExecutor(id int) (*subscriptions.Executor, error) {
	x, err := fastEntry(int64(id))
	if err != nil {
		return nil, err
	}
	return x.e, nil
}

// AttachFast adds the hand-written entry points to the loaded extension
// module named module (the shim passes its own module's __name__). The
// shim calls it once, right after the import.
func AttachFast(module string) (ok bool, err error) {
	defer recoverTo(&err)
	if err := attach(module); err != nil {
		return false, err
	}
	return true, nil
}

// debugPanic panics once after the "panic_fast" debug hook.
func (x *SubscriptionExecutor) debugPanic() {
	if x.panicFast.Load() && x.panicFast.CompareAndSwap(true, false) {
		panic("test panic in a fast entry point")
	}
}
