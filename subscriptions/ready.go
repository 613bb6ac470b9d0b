package subscriptions

import (
	"strings"
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

// take drains the pipe and returns the ready ids joined by '\n'.
func (r *readySignal) take() string {
	var buf [64]byte
	for {
		if n, err := syscall.Read(r.r, buf[:]); n <= 0 || err != nil {
			break
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := strings.Join(r.ids, "\n")
	r.ids = r.ids[:0]
	clear(r.seen)
	return out
}

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
// whose queue stops being empty is reported by TakeReady.
func (e *Executor) ReadyFD() (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
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
// the last call, separated by '\n'.
func (e *Executor) TakeReady() string {
	e.mu.RLock()
	rs := e.ready
	e.mu.RUnlock()
	if rs == nil {
		return ""
	}
	return rs.take()
}
