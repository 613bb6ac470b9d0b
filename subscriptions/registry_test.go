package subscriptions

import (
	"fmt"
	"slices"
	"testing"
)

// markWords returns how many subscriptions connection connID has and how
// many words its queued marks hold (0, 0 once it has none).
func markWords(e *Executor, connID string) (subs, words int) {
	e.mu.RLock()
	c := e.reg.conns[connID]
	e.mu.RUnlock()
	if c == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.subs), len(c.queuedBits)
}

// A connection's queued marks hold the words its subscriptions need and no
// more, as they join and as they leave: a drain visits every word, and
// drop cuts the marks to that size, so append must grow them to it too.
func TestQueuedMarksHoldTheWordsNeeded(t *testing.T) {
	e := newTestExecutor(t, Options{})
	check := func(want int) {
		t.Helper()
		subs, words := markWords(e, "c")
		if subs != want || words != (want+63)/64 {
			t.Fatalf("%d subscriptions (want %d) in %d words of marks, want %d", subs, want, words, (want+63)/64)
		}
	}
	const n = 130 // three words, and both word boundaries crossed
	for i := range n {
		register(t, e, sub{id: fmt.Sprintf("s%03d", i)})
		check(i + 1)
	}
	// Leaving from the end, then from the start: the marks shrink in both cases.
	for i := n - 1; i >= 60; i-- {
		e.Complete(fmt.Sprintf("s%03d", i))
		check(i)
	}
	for i := range 60 {
		e.Complete(fmt.Sprintf("s%03d", i))
		check(59 - i)
	}
	// Joining again after the marks shrank grows them back the same way.
	for i := range n {
		register(t, e, sub{id: fmt.Sprintf("t%03d", i)})
		check(i + 1)
	}
}

// queuedMarks returns the queued marks of connection connID.
func queuedMarks(e *Executor, connID string) []uint64 {
	e.mu.RLock()
	c := e.reg.conns[connID]
	e.mu.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.queuedBits)
}

// A drain that finds queues empty clears their marks, so that later drains
// do not visit them again: those of every position in a word, past the
// first word too.
func TestDrainClearsTheMarksOfEmptyQueues(t *testing.T) {
	e := newTestExecutor(t, Options{})
	const n = 70
	for i := range n {
		register(t, e, sub{id: fmt.Sprintf("s%02d", i)})
	}
	publish(t, e, "users", `{"id":1}`)
	if _, got, err := e.DrainConnection("c", 0); got != n || err != nil {
		t.Fatalf("drained %d frames (%v), want %d", got, err, n)
	}
	if _, got, err := e.DrainConnection("c", 0); got != 0 || err != nil {
		t.Fatalf("drained %d frames (%v) from empty queues", got, err)
	}
	if marks := queuedMarks(e, "c"); slices.ContainsFunc(marks, func(w uint64) bool { return w != 0 }) {
		t.Fatalf("marks left after a drain found every queue empty: %x", marks)
	}
}

// Removing the last subscription of a root field forgets the field, so
// that dispatch and the registry's maps keep no entry per field once used.
func TestRemoveForgetsAnEmptiedRootField(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "a"}, sub{id: "b", query: `subscription { users { name } }`})
	fields := func() int {
		e.mu.RLock()
		defer e.mu.RUnlock()
		return len(e.reg.byField)
	}
	e.Complete("a")
	if n := fields(); n != 1 {
		t.Fatalf("%d root fields indexed while a group of users remains, want 1", n)
	}
	e.Complete("b")
	if n := fields(); n != 0 {
		t.Fatalf("%d root fields indexed after the last subscription left, want 0", n)
	}
}
