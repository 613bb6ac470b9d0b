package pyapi

import (
	"math"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/fraiseql/fraiseql-subscriptions/subscriptions"
)

func TestIntOption(t *testing.T) {
	for _, c := range []struct {
		in   json.Number
		want int64
		err  string
	}{
		{"", 0, ""},
		{"0", 0, ""},
		{"7", 7, ""},
		{"2147483647", math.MaxInt32, ""},
		{"2147483648", 0, "queue_size must be an int from 0 (the default) to 2147483647, not 2147483648"},
		{"-1", 0, "queue_size must be an int from 0 (the default) to 2147483647, not -1"},
		{"1208925819614629174706176", 0, "queue_size must be an int from 0 (the default) to 2147483647, not 1208925819614629174706176"},
		{"1.5", 0, "queue_size must be an int from 0 (the default) to 2147483647, not 1.5"},
	} {
		got, err := intOption("queue_size", c.in, math.MaxInt32)
		if c.err == "" {
			if err != nil || got != c.want {
				t.Errorf("intOption(%q) = %d, %v; want %d", c.in, got, err, c.want)
			}
			continue
		}
		if err == nil || err.Error() != c.err || subscriptions.KindOf(err) != subscriptions.KindValue {
			t.Errorf("intOption(%q) error = %v; want ValueError %q", c.in, err, c.err)
		}
	}
}

func TestSecondsOption(t *testing.T) {
	const msg = "retention must be a positive number of seconds, at most 1e9"
	for _, bad := range []float64{0, -1, math.NaN(), math.Inf(1), 1e9 + 1} {
		if _, err := secondsOption("retention", bad); err == nil || err.Error() != msg {
			t.Errorf("secondsOption(%v) error = %v; want %q", bad, err, msg)
		}
	}
	if d, err := secondsOption("retention", 1.5); err != nil || d.Milliseconds() != 1500 {
		t.Errorf("secondsOption(1.5) = %v, %v", d, err)
	}
}

// A limit given as 0 becomes its default; one not given stays 0, which
// UpdateLimits reads as "unchanged".
func TestLimitsPatch(t *testing.T) {
	var l limitsJSON
	if err := decodeStrict(`{"max_fields": 0, "max_depth": 3}`, &l); err != nil {
		t.Fatal(err)
	}
	got, err := l.patch()
	want := subscriptions.Limits{MaxFields: subscriptions.DefaultMaxFields, MaxDepth: 3}
	if err != nil || got != want {
		t.Fatalf("patch() = %+v, %v; want %+v", got, err, want)
	}
}
