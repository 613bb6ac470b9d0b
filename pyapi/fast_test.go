package pyapi

import "testing"

// Creating and closing executors must not make the table grow nor copy
// it: after 100,000 come and go, with a few alive at a time, the table
// has handed out only as many slots as were alive at once.
func TestFastIDReusesSlots(t *testing.T) {
	before, _ := FastTableSlots()
	var alive [3]*SubscriptionExecutor
	seen := map[int]bool{}
	for i := 0; i < 100_000; i++ {
		k := i % len(alive)
		if old := alive[k]; old != nil {
			id := int(old.fastID.Load())
			ReleaseFastID(id)
			if _, err := fastEntry(int64(id)); err == nil {
				t.Fatalf("released id %d still finds an executor", id)
			}
		}
		x := &SubscriptionExecutor{}
		id, err := x.FastID()
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := x.FastID(); again != id {
			t.Fatalf("FastID twice: %d then %d", id, again)
		}
		if got, err := fastEntry(int64(id)); err != nil || got != x {
			t.Fatalf("fastEntry(%d) = %p, %v; want %p", id, got, err, x)
		}
		if i < 1000 {
			if seen[id] {
				t.Fatalf("id %d handed out twice", id)
			}
			seen[id] = true
		}
		alive[k] = x
	}
	for _, x := range alive {
		ReleaseFastID(int(x.fastID.Load()))
	}
	after, _ := FastTableSlots()
	if after-before > len(alive) {
		t.Fatalf("the table grew by %d slots for %d executors alive at once", after-before, len(alive))
	}
}

// An id kept after its executor was released must not find the executor
// that reuses its slot.
func TestFastIDStaleIDFindsNothing(t *testing.T) {
	a := &SubscriptionExecutor{}
	idA, _ := a.FastID()
	ReleaseFastID(idA)
	b := &SubscriptionExecutor{}
	idB, _ := b.FastID()
	defer ReleaseFastID(idB)
	if idA == idB {
		t.Fatalf("the reused slot kept the id %d", idA)
	}
	if x, err := fastEntry(int64(idA)); err == nil {
		t.Fatalf("stale id %d found %p", idA, x)
	}
	ReleaseFastID(idA) // a second release of the stale id leaves b alone
	if x, err := fastEntry(int64(idB)); err != nil || x != b {
		t.Fatalf("after a stale release: %p, %v", x, err)
	}
	for _, id := range []int64{0, -1, 1 << 40, 1<<32 - 1} {
		if _, err := fastEntry(id); err == nil {
			t.Fatalf("fastEntry(%d) found an executor", id)
		}
	}
}
