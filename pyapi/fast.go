package pyapi

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/fraiseql/fraiseql-subscriptions/subscriptions"
)

// The per-message calls (next_event, drain_connection, publish_event) do
// not go through gopy's generated wrappers: hand-written CPython entry
// points (fastcall.c, fastcall.go) find the executor by a small id in a
// table read without locks. AttachFast adds them to the module once it is
// loaded.
//
// The table is chunks of slots that never move once allocated: a reader
// loads the chunk and then the slot, and registration or release stores one
// slot, so neither copies the table. A released slot is reused by the next
// executor; the id carries the slot's generation, so an id kept after its
// executor was released (a bound next_event outliving it) finds nothing
// rather than the slot's next owner.

const (
	fastChunkSlots = 256
	fastChunks     = 4096 // at most fastChunks*fastChunkSlots executors alive at once
	fastSlotBits   = 32   // id = generation<<fastSlotBits | slot+1
)

type fastChunk struct {
	x   [fastChunkSlots]atomic.Pointer[SubscriptionExecutor]
	gen [fastChunkSlots]uint32 // guarded by fastMu
}

var (
	fastMu    sync.Mutex
	fastTable [fastChunks]atomic.Pointer[fastChunk]
	fastFree  []int // released slots, reused first; guarded by fastMu
	fastSlots int   // slots handed out so far (the table's extent); guarded by fastMu
)

var errTooManyExecutors = errors.New("too many executors alive at once")

// FastID returns the id under which the fast entry points find x,
// registering it on the first call.
func (x *SubscriptionExecutor) FastID() (id int, err error) {
	defer recoverTo(&err)
	fastMu.Lock()
	defer fastMu.Unlock()
	if id := x.fastID.Load(); id != 0 {
		return int(id), nil
	}
	var slot int
	if n := len(fastFree); n > 0 {
		slot, fastFree = fastFree[n-1], fastFree[:n-1]
	} else {
		if fastSlots == fastChunks*fastChunkSlots {
			return 0, errTooManyExecutors
		}
		slot = fastSlots
		fastSlots++
	}
	c := fastTable[slot/fastChunkSlots].Load()
	if c == nil {
		c = new(fastChunk)
		fastTable[slot/fastChunkSlots].Store(c)
	}
	i := slot % fastChunkSlots
	c.gen[i]++
	fid := int64(c.gen[i])<<fastSlotBits | int64(slot+1)
	x.fastID.Store(fid)
	c.x[i].Store(x)
	return int(fid), nil
}

// ReleaseFastID forgets the executor of id, once Python has dropped it;
// its slot serves the next executor. Unknown ids are ignored.
func ReleaseFastID(id int) {
	fastMu.Lock()
	defer fastMu.Unlock()
	c, i := fastSlot(int64(id))
	if c == nil {
		return
	}
	if x := c.x[i].Load(); x != nil && x.fastID.Load() == int64(id) {
		c.x[i].Store(nil)
		x.fastID.Store(0)
		fastFree = append(fastFree, int(int64(id)&(1<<fastSlotBits-1))-1)
	}
}

// FastTableSlots is the number of slots the fast-id table has handed out:
// the most executors that were alive at once, however many came and went.
func FastTableSlots() (n int, err error) {
	defer recoverTo(&err)
	fastMu.Lock()
	defer fastMu.Unlock()
	return fastSlots, nil
}

// fastSlot returns the chunk and index of id's slot, or nil.
func fastSlot(id int64) (*fastChunk, int) {
	slot := id&(1<<fastSlotBits-1) - 1
	if slot < 0 || slot >= fastChunks*fastChunkSlots {
		return nil, 0
	}
	return fastTable[slot/fastChunkSlots].Load(), int(slot % fastChunkSlots)
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
	if c, i := fastSlot(id); c != nil {
		if x := c.x[i].Load(); x != nil && x.fastID.Load() == id {
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
		return done(err)
	}
	return done(nil)
}

// debugPanic panics once after the "panic_fast" debug hook.
func (x *SubscriptionExecutor) debugPanic() {
	if x.panicFast.Load() && x.panicFast.CompareAndSwap(true, false) {
		panic("test panic in a fast entry point")
	}
}
