package subscriptions

import (
	"errors"
	"strings"
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

// A position of maxPositionBytes is read; one byte more is refused
// before anything else is looked at.
func TestParsePositionBoundsItsLength(t *testing.T) {
	epoch := "m" + strings.Repeat("a", maxPositionBytes-3)
	s := epoch + ":7"
	if got, err := parsePosition(s, epoch); err != nil || got != (position{epoch: epoch, lo: 7}) {
		t.Fatalf("parsePosition of %d bytes = %+v, %v", len(s), got, err)
	}
	long := epoch + "a:7"
	if _, err := parsePosition(long, epoch+"a"); !errors.Is(err, ErrPositionInvalid) {
		t.Fatalf("parsePosition of %d bytes: %v, want ErrPositionInvalid", len(long), err)
	}
}

// A position without an epoch is refused, even when compared with an
// empty epoch; one without a colon too.
func TestParsePositionRefusesAnEmptyEpoch(t *testing.T) {
	for _, tt := range [][2]string{{":7", ""}, {":", ""}, {"", ""}, {"m1", "m1"}, {"r1", "r1"}} {
		if got, err := parsePosition(tt[0], tt[1]); !errors.Is(err, ErrPositionInvalid) {
			t.Errorf("parsePosition(%q, %q) = %+v, %v; want ErrPositionInvalid", tt[0], tt[1], got, err)
		}
	}
}
