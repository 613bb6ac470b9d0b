package subscriptions

import (
	"errors"
	"testing"
)

// A Redis or PostgreSQL position ("<epoch>:<hi>-<lo>") sent back reads as
// the position it was written from, both halves of its offset; one with
// either half missing or malformed is refused.
func TestParsePositionReadsBothHalvesOfAnOffset(t *testing.T) {
	const epoch = "r5f3a"
	p := position{epoch: epoch, hi: 1700000000123, lo: 7}
	got, err := parsePosition(p.String(), epoch)
	if err != nil || got != p {
		t.Fatalf("parsePosition(%q) = %+v, %v; want %+v", p.String(), got, err, p)
	}
	if q := (position{epoch: epoch, hi: p.hi, lo: 8}); !q.after(got) {
		t.Fatalf("%s is not after %s", q, got)
	}
	for _, s := range []string{epoch + ":x-7", epoch + ":-7", epoch + ":5-", epoch + ":5-x", epoch + ":5", epoch + ":5-7-1"} {
		if got, err := parsePosition(s, epoch); !errors.Is(err, ErrPositionInvalid) {
			t.Errorf("parsePosition(%q) = %+v, %v; want ErrPositionInvalid", s, got, err)
		}
	}
}

// Bus order of offsets: the first half decides, the second only between
// equal first halves; a position is not after itself.
func TestPositionAfterOrdersByBothHalves(t *testing.T) {
	const epoch = "r5f3a"
	at := func(hi, lo uint64) position { return position{epoch: epoch, hi: hi, lo: lo} }
	for _, tt := range []struct {
		p, q position
		want bool
	}{
		{at(2, 0), at(1, 9), true},
		{at(1, 9), at(2, 0), false},
		{at(5, 8), at(5, 7), true},
		{at(5, 7), at(5, 8), false},
		{at(5, 7), at(5, 7), false},
	} {
		if got := tt.p.after(tt.q); got != tt.want {
			t.Errorf("%s after %s = %v, want %v", tt.p, tt.q, got, tt.want)
		}
	}
}
