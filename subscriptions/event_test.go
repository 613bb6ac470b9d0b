package subscriptions

import "testing"

// Once warm, decoding an event and releasing it allocates nothing: release
// gives the decoder's state back to its pool.
func TestDecodeEventAndReleaseAllocateNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops items at random")
	}
	lim := Limits{}.withDefaults()
	ev := Event{Type: "u", Channel: "u", Data: []byte(`{"id":7,"name":"Ann","tags":["a","b"],"n":1.5,"o":{"p":null}}`)}
	for _, wellFormed := range []bool{false, true} {
		n := testing.AllocsPerRun(100, func() {
			d, err := decodeEventFrom(ev, lim, wellFormed)
			if err != nil {
				t.Fatal(err)
			}
			d.release()
		})
		if n != 0 {
			t.Errorf("wellFormed %v: %v allocations per event", wellFormed, n)
		}
	}
}
