package subscriptions

import (
	"errors"
	"sync/atomic"
)

// Window sizes: the frames one read can lend, the bytes they may take,
// and the longest subscription id a window names.
const (
	WindowFrames  = 64
	WindowBytes   = 16 << 10
	WindowIDBytes = 256
)

// WindowShared is the part of a Window that a reader outside Go reads in
// place (the CPython entry point of next_event, whose C struct fq_window
// has this layout). It holds copies of the frames of the first Count
// messages of the queue of the subscription named by ID[:IDLen]; the
// messages stay queued until taken. (The reader compares the id it is
// asked for with ID, so a window can never hand one subscription's frames
// to a call for another.) The reader takes frame i by moving Next from i to i+1 with a
// compare-and-swap, and only then owns the frame. The engine takes the
// rest back by swapping Count into Next. Frames and Count change only
// inside NextAhead, which the reader calls itself, one call at a time.
type WindowShared struct {
	Next  atomic.Int64
	Count int64
	IDLen int64
	ID    [WindowIDBytes]byte
	Off   [WindowFrames]uint32
	Len   [WindowFrames]uint32
	Buf   [WindowBytes]byte
}

// Window lends a subscription's next frames to a reader that takes them
// without calling the engine: one call of NextAhead serves many messages
// of a backlog. An executor's windows are used by one reader at a time
// (the CPython entry points hold the GIL); the engine takes a window's
// frames back whenever it reads, drops or discards the messages they copy,
// so each message is delivered once and counted once.
type Window struct {
	e      *Executor
	shared *WindowShared
	// owner is the last subscription lent to; set by the reader's calls
	// only. Its connection's window is w while the lend lasts; lent and
	// taken (frames lent, and taken by the reader as of the last sync)
	// are guarded by that connection's mutex.
	owner *subscription
	lent  int
	taken int
}

// NewWindow returns a window for NextAhead on e. Its shared part is an
// allocation of its own, so that it can be pinned for a C reader.
func (e *Executor) NewWindow() *Window {
	return &Window{e: e, shared: new(WindowShared)}
}

// Shared returns the part of w the reader reads in place.
func (w *Window) Shared() *WindowShared { return w.shared }

// Close takes back what w lends; w is not used again.
func (w *Window) Close() {
	if s := w.owner; s != nil {
		s.conn.mu.Lock()
		defer s.conn.mu.Unlock()
		s.takeBack()
	}
}

var errForeignWindow = errors.New("read-ahead window of another executor")

// NextAhead is NextInto that also lends the subscription's following
// messages to w, as many whole frames as fit, and returns how many it
// lent. Whatever w lent before is taken back first (the reader calls it
// once it has taken every frame, or to read another subscription).
func (e *Executor) NextAhead(id string, dst []byte, w *Window) (n, need, lent int, err error) {
	if w.e != e {
		return 0, 0, 0, errForeignWindow
	}
	s, err := e.lookup(id)
	if err != nil {
		return 0, 0, 0, err
	}
	if w.owner != nil && w.owner != s {
		w.Close()
	}
	s.conn.mu.Lock()
	defer s.conn.mu.Unlock()
	s.takeBack()
	if s.queue.len() == 0 {
		return 0, 0, 0, nil
	}
	m := s.queue.at(0)
	size := len(s.prefix) + len(m.payload) + len(nextSuffix)
	if size > len(dst) {
		return 0, size, 0, nil
	}
	s.queue.pop()
	s.read++
	s.noteRead()
	e.m.read.Add(1)
	n = copy(dst, s.prefix)
	n += copy(dst[n:], m.payload)
	n += copy(dst[n:], nextSuffix)
	return n, 0, s.lend(w), nil
}

// lend copies the frames of s's first queued messages into w. Under
// s.conn.mu, with nothing lent.
func (s *subscription) lend(w *Window) int {
	sh := w.shared
	if len(s.id) > len(sh.ID) || s.conn.window != nil || s.pos != nil {
		// (A subscription with positions is refilled as it is read: its
		// reads go through the engine.)
		return 0
	}
	count, at := 0, 0
	for count < WindowFrames && count < s.queue.len() {
		m := s.queue.at(count)
		size := len(s.prefix) + len(m.payload) + len(nextSuffix)
		if at+size > len(sh.Buf) {
			break
		}
		sh.Off[count], sh.Len[count] = uint32(at), uint32(size)
		at += copy(sh.Buf[at:], s.prefix)
		at += copy(sh.Buf[at:], m.payload)
		at += copy(sh.Buf[at:], nextSuffix)
		count++
	}
	if count == 0 {
		return 0
	}
	sh.IDLen = int64(copy(sh.ID[:], s.id))
	sh.Count = int64(count)
	sh.Next.Store(0)
	w.owner, w.lent, w.taken = s, count, 0
	s.conn.window = w
	return count
}

// lendingTo returns the window lending s's frames, or nil. Under
// s.conn.mu. (Small enough to inline: drains ask it for every
// subscription of a connection.)
func (s *subscription) lendingTo() *Window {
	if w := s.conn.window; w != nil && w.owner == s {
		return w
	}
	return nil
}

// syncWindow pops the lent messages the reader has taken since the last
// sync: they were read. Under s.conn.mu.
func (s *subscription) syncWindow() {
	if w := s.lendingTo(); w != nil {
		w.popTaken(int(w.shared.Next.Load()))
	}
}

// takeBack ends s's lend: the messages the reader took are popped as
// read, the others stay queued for any reader. Under s.conn.mu.
func (s *subscription) takeBack() {
	if w := s.lendingTo(); w != nil {
		w.endLend()
	}
}

// makeRoom readies s's full queue for a push that drops its oldest
// message: what the reader took leaves the queue first, and a message to
// drop must not stay lent. Under s.conn.mu.
//
//go:noinline
func (s *subscription) makeRoom() {
	if w := s.lendingTo(); w != nil {
		w.popTaken(int(w.shared.Next.Load()))
		if s.queue.len() == s.queue.limit {
			w.endLend()
		}
	}
}

func (w *Window) endLend() {
	w.popTaken(int(w.shared.Next.Swap(int64(w.lent))))
	w.owner.conn.window = nil
	w.lent, w.taken = 0, 0
}

// popTaken pops from the owner's queue the messages taken up to next.
func (w *Window) popTaken(next int) {
	s, n := w.owner, next-w.taken
	for i := 0; i < n; i++ {
		s.queue.pop()
	}
	w.taken = next
	s.read += uint64(n)
	w.e.m.read.Add(uint64(n))
}
