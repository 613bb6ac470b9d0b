package subscriptions

import (
	"sync"
	"syscall"
)

// readySignal tells an event loop which subscriptions have messages: it
// writes one byte to a pipe when the first subscription becomes ready, and
// the loop collects the ids with TakeReady. One pipe per executor, however
// many subscriptions wait.
type readySignal struct {
	mu     sync.Mutex
	ids    []string
	seen   map[string]struct{}
	r, w   int
	closed bool
}

func newReadySignal() (*readySignal, error) {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		return nil, err
	}
	return &readySignal{r: fds[0], w: fds[1], seen: map[string]struct{}{}}, nil
}

func (r *readySignal) signal(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if _, dup := r.seen[id]; dup {
		return
	}
	r.seen[id] = struct{}{}
	r.ids = append(r.ids, id)
	if len(r.ids) == 1 {
		_, _ = syscall.Write(r.w, []byte{1}) // a full pipe already wakes the reader
	}
}

// take drains the pipe and returns the ready ids, in the order they became
// ready (a new slice: the caller keeps it). The
// pipe is read under mu, so close cannot release its descriptors (whose
// numbers the process may then reuse for other files) while they are in
// use here; after close, take reads nothing and fails.
func (r *readySignal) take() ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	var buf [64]byte
	for {
		if n, err := syscall.Read(r.r, buf[:]); n <= 0 || err != nil {
			break
		}
	}
	out := append([]string(nil), r.ids...)
	clear(r.ids)
	r.ids = r.ids[:0]
	clear(r.seen)
	return out, nil
}

// close closes the pipe. An event loop watching the read end must stop
// watching it when the executor closes (TakeReady then fails): the number
// may be reused by the next file the process opens.
func (r *readySignal) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		_ = syscall.Close(r.w)
		_ = syscall.Close(r.r)
	}
}

// ReadyFD enables readiness signalling and returns the file descriptor an
// event loop should watch for reading. Once enabled, every subscription
// whose queue stops being empty is reported by TakeReady. The descriptor
// belongs to the executor and is closed by Close.
func (e *Executor) ReadyFD() (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return -1, ErrClosed
	}
	if e.ready == nil {
		rs, err := newReadySignal()
		if err != nil {
			return -1, err
		}
		e.ready = rs
	}
	return e.ready.r, nil
}

// TakeReady returns the ids of the subscriptions that became ready since
// the last call (nil when none did), whatever characters they hold. After
// Close it fails with ErrClosed without touching the descriptor ReadyFD
// returned.
func (e *Executor) TakeReady() ([]string, error) {
	rs, err := e.readySignal()
	if rs == nil {
		return nil, err
	}
	return rs.take()
}

func (e *Executor) readySignal() (*readySignal, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return nil, ErrClosed
	}
	return e.ready, nil
}
