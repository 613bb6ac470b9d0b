package subscriptions

import "testing"

// A ring emptied after a burst gives its buffer back only when the burst
// grew it beyond 64 messages: an idle subscription keeps a small buffer
// instead of reallocating it on every message.
func TestRingReleasesOnlyABurstsBuffer(t *testing.T) {
	for _, c := range []struct {
		pushed, wantCap int
	}{{64, 64}, {65, 0}, {3, 4}} {
		r := newRing(1000)
		for i := range c.pushed {
			if r.push(message{seq: uint64(i)}) {
				t.Fatalf("pushed %d: dropped below the limit", i)
			}
		}
		for i := range c.pushed {
			if m, ok := r.pop(); !ok || m.seq != uint64(i) {
				t.Fatalf("pop %d: %v %v", i, m.seq, ok)
			}
		}
		if _, ok := r.pop(); ok {
			t.Fatal("pop from an empty ring")
		}
		if len(r.buf) != c.wantCap {
			t.Fatalf("%d pushed and popped: buffer of %d, want %d", c.pushed, len(r.buf), c.wantCap)
		}
	}
}
