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
	owner  *subscription // the last subscription lent to; touched by the reader's calls only
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
		w.owner = nil
		s.conn.mu.Lock()
		defer s.conn.mu.Unlock()
		if s.window == w {
			s.takeBack()
		}
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
	if len(s.id) > len(sh.ID) {
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
	s.window, s.lent, s.taken = w, count, 0
	w.owner = s
	return count
}

// syncWindow pops the lent messages the reader has taken since the last
// sync: they were read. Under s.conn.mu.
func (s *subscription) syncWindow() {
	if s.window == nil {
		return
	}
	s.popTaken(int(s.window.shared.Next.Load()))
}

// takeBack ends s's lend: the messages the reader took are popped as
// read, the others stay queued for any reader. Under s.conn.mu.
func (s *subscription) takeBack() {
	if s.window == nil {
		return
	}
	w := s.window
	s.popTaken(int(w.shared.Next.Swap(int64(s.lent))))
	s.window, s.lent, s.taken = nil, 0, 0
}

func (s *subscription) popTaken(next int) {
	n := next - s.taken
	for i := 0; i < n; i++ {
		s.queue.pop()
	}
	s.taken = next
	s.read += uint64(n)
	s.window.e.m.read.Add(uint64(n))
}
