package subscriptions

// message is one queued delivery: the payload is shared by every
// subscription of a group, the frame around it is built when it is read.
type message struct {
	seq     uint64 // executor-wide event order, to merge queues on drain
	payload []byte // {"data":{...}}, never modified once queued
}

// ring is a bounded FIFO of messages. Pushing onto a full ring drops the
// oldest message. It is not safe for concurrent use; its connection's
// mutex guards it.
type ring struct {
	buf   []message
	head  int // index of the oldest message
	count int
	limit int
}

func newRing(limit int) ring { return ring{limit: limit} }

// push appends m and reports whether the oldest message was dropped.
func (r *ring) push(m message) (dropped bool) {
	if r.count == r.limit {
		r.buf[r.head] = m
		r.head = r.wrap(r.head + 1)
		return true
	}
	if r.count == len(r.buf) {
		r.grow()
	}
	r.buf[r.wrap(r.head+r.count)] = m
	r.count++
	return false
}

// grow doubles the buffer up to the limit, so idle subscriptions stay small.
func (r *ring) grow() {
	n := len(r.buf) * 2
	if n == 0 {
		n = 4
	}
	if n > r.limit {
		n = r.limit
	}
	buf := make([]message, n)
	for i := 0; i < r.count; i++ {
		buf[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = buf, 0
}

// pop removes and returns the oldest message.
func (r *ring) pop() (message, bool) {
	if r.count == 0 {
		return message{}, false
	}
	m := r.buf[r.head]
	r.buf[r.head] = message{}
	r.head = r.wrap(r.head + 1)
	r.count--
	if r.count == 0 && len(r.buf) > 64 {
		// Give back the memory a burst took.
		r.buf, r.head = nil, 0
	}
	return m, true
}

func (r *ring) len() int { return r.count }

// at returns the i-th oldest message, 0 <= i < len().
func (r *ring) at(i int) message { return r.buf[r.wrap(r.head+i)] }

// wrap maps i in [0, 2*len(buf)) into the buffer without a division (the
// modulo was a visible part of a delivery's cost).
func (r *ring) wrap(i int) int {
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	return i
}
