package subscriptions

import (
	stdjson "encoding/json"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	json "github.com/goccy/go-json"
)

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

func TestRefusedOnDecoding(t *testing.T) {
	long := strings.Repeat("9", 310)
	for data, want := range map[string]bool{
		`{}`: false, `{"a":1,"b":-2.5e10,"c":1e308}`: false, `{"a":"\ud83d\ude00"}`: false,
		`{"a":"\ud800"}`: true, `{"a":"x\udfff"}`: true, `{"a":1e309}`: true, `{"a":-1E999}`: true,
		`{"a":[` + long + `]}`: true, `{"a":0.` + long + `}`: false, `{"a":"` + long + `e999"}`: false,
		`{"a":"\"","b":1e999}`: true, `{"a":"\\","b":1e999}`: true, `{"a":"\\\"1e999"}`: false,
		`{"a":"1e999\\\\"}`: false, `{"1e999":0}`: false, `{"a":"\n\ud800"}`: true, `{"a":"\ud83d\ude00\udc00"}`: true,
	} {
		if got := refusedOnDecoding([]byte(data)); got != want {
			t.Errorf("refusedOnDecoding(%s) = %v, want %v", data, got, want)
		}
		_, err := decodeEventFrom(Event{Data: []byte(data)}, Limits{}.withDefaults(), true)
		if (err != nil) != want {
			t.Errorf("decoding %s: %v, refusal expected: %v", data, err, want)
		}
	}
	// Nesting: the parser counts the root object and each value inside
	// as a level, a leaf's own included, up to fastjson.MaxDepth (300).
	nest := func(n int, leaf string) string {
		return `{"a":` + strings.Repeat("[", n) + leaf + strings.Repeat("]", n) + `}`
	}
	for _, c := range []struct {
		data string
		want bool
	}{
		{nest(298, "1"), false}, {nest(299, "1"), true},
		{nest(298, "true"), false}, {nest(299, "false"), true}, {nest(299, "null"), true},
		{nest(298, `"s"`), false}, {nest(299, `"s"`), true}, {nest(298, "-1"), false}, {nest(299, "-1"), true},
		{nest(298, "0"), false}, {nest(299, "0"), true}, {nest(299, "9"), true},
		{nest(299, ""), false}, {nest(300, ""), true}, {nest(298, "{}"), false}, {nest(299, "{}"), true},
		{nest(298, `{"k":1}`), true}, {nest(297, `{"k":1}`), false},
		// Closed levels are left: two deep arrays side by side.
		{`{"a":` + strings.Repeat("[", 299) + strings.Repeat("]", 299) + `,"b":` + strings.Repeat("[", 299) + strings.Repeat("]", 299) + `}`, false},
		// Brackets inside strings are text.
		{`{"a":"` + strings.Repeat("[", 400) + `"}`, false},
	} {
		if got := refusedOnDecoding([]byte(c.data)); got != c.want {
			t.Errorf("refusedOnDecoding(%.40s...) = %v, want %v", c.data, got, c.want)
		}
		_, err := decodeEventFrom(Event{Data: []byte(c.data)}, Limits{}.withDefaults(), true)
		if (err != nil) != c.want {
			t.Errorf("decoding %.40s...: %v, refusal expected: %v", c.data, err, c.want)
		}
	}
	// Other JSON values too, a number that ends the text included.
	for data, want := range map[string]bool{`1e999`: true, `-1`: false, `[2,1e999]`: true, `"\ud800"`: true} {
		if got := refusedOnDecoding([]byte(data)); got != want {
			t.Errorf("refusedOnDecoding(%s) = %v, want %v", data, got, want)
		}
	}
}

func TestOutOfRangeNumberMessageStaysShort(t *testing.T) {
	_, err := decodeEventFrom(Event{Data: []byte(`{"a":1` + strings.Repeat("0", 4000) + `}`)}, Limits{}.withDefaults(), true)
	want := "event data is not valid JSON: the number 10000000000000000000...0000000000 (4001 characters) is beyond the range of a float64"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

// A lone surrogate escape becomes \ufffd, in place (the same length), and
// a pair stays; the text around is kept as it is, even where it ends in
// the middle of an escape.
func TestReplaceLoneSurrogatesRewritesOnlyLoneOnes(t *testing.T) {
	for in, want := range map[string]string{
		`"\ud800"`:         `"\ufffd"`,
		`"\uD9A9"`:         `"\ufffd"`,
		`"\udc00 \ud800x"`: `"\ufffd \ufffdx"`,
		`"\ud83d\ude00"`:   `"\ud83d\ude00"`,
		`"\n\\ud800"`:      `"\n\\ud800"`,
		`"\u00e9\ud800\\`:  `"\u00e9\ufffd\\`,
		`\`:                `\`,
		`"\ud8`:            `"\ud8`,
	} {
		if got := string(replaceLoneSurrogates([]byte(in))); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}

// At each end of the surrogate ranges: a high one (D800-DBFF) is lone
// unless an escape of a low one (DC00-DFFF) follows it at once, a low one
// alone is lone, and the code points just outside are kept. A high one at
// the very end of the text, or before a lone backslash, is read without
// reading past the text.
func TestReplaceLoneSurrogatesAtTheRangesEnds(t *testing.T) {
	for in, want := range map[string]string{
		`"\ud7ff\ue000"`:  `"\ud7ff\ue000"`,
		`"\ud800"`:        `"\ufffd"`,
		`"\udbff"`:        `"\ufffd"`,
		`"\udc00"`:        `"\ufffd"`,
		`"\udfff"`:        `"\ufffd"`,
		`"\ud800\udc00"`:  `"\ud800\udc00"`,
		`"\udbff\udfff"`:  `"\udbff\udfff"`,
		`"\ud800\udbff"`:  `"\ufffd\ufffd"`,
		`"\ud800\ue000"`:  `"\ufffd\ue000"`,
		`"\ud800\u0041"`:  `"\ufffd\u0041"`,
		`"\ud800\udc0"`:   `"\ufffd\udc0"`,
		`"\ud800xudc00"`:  `"\ufffdxudc00"`,
		`"\ud800\\udc00"`: `"\ufffd\\udc00"`,
		`\ud800`:          `\ufffd`,
		`"\ud800\`:        `"\ufffd\`,
		`"\ud800\u`:       `"\ufffd\u`,
	} {
		if got := string(replaceLoneSurrogates([]byte(in))); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}

// A number too large for a float64 is named whole up to 40 characters and
// cut in the middle from 41 on.
func TestOutOfRangeNumberMessageCutsFrom41Characters(t *testing.T) {
	forty := "1" + strings.Repeat("0", 35) + "e999"
	for num, shown := range map[string]string{
		forty:       forty,
		forty + "9": "10000000000000000000...00000e9999 (41 characters)",
	} {
		_, err := decodeEventFrom(Event{Data: []byte(`{"a":` + num + `}`)}, Limits{}.withDefaults(), true)
		want := "event data is not valid JSON: the number " + shown + " is beyond the range of a float64"
		if err == nil || err.Error() != want {
			t.Errorf("%d characters: got %v, want %s", len(num), err, want)
		}
	}
}

// Every byte a number can hold is read as part of it: an exponent with a
// sign is in range, and one too large is refused whichever its sign or case.
func TestRefusedOnDecodingReadsSignedExponents(t *testing.T) {
	for data, want := range map[string]bool{
		`{"a":1e+5}`: false, `{"a":1e-5}`: false, `{"a":2E+5}`: false, `{"a":2.5E-5}`: false, `{"a":1e-999}`: false,
		`{"a":1e+999}`: true, `{"a":1E+999}`: true, `{"a":-1.5e+999}`: true,
	} {
		if got := refusedOnDecoding([]byte(data)); got != want {
			t.Errorf("refusedOnDecoding(%s) = %v, want %v", data, got, want)
		}
	}
}

// An invalid UTF-8 byte in a string decodes as U+FFFD, as encoding/json
// decodes it, wherever the string is.
func TestDecodeJSONReplacesInvalidUTF8(t *testing.T) {
	for in, want := range map[string]any{
		"\"x\xffy\"":         "x\ufffdy",
		"[\"\xc3\"]":         []any{"\ufffd"},
		"{\"a\":[\"\xe9\"]}": map[string]any{"a": []any{"\ufffd"}},
		// A run of invalid bytes: one U+FFFD each, a cut sequence's bytes too.
		"\"x\xff\xfey\"":        "x\ufffd\ufffdy",
		"\"\xe2\x82\"":          "\ufffd\ufffd",
		"\"\xf0\x9f\x98z\xc3\"": "\ufffd\ufffd\ufffdz\ufffd",
	} {
		got, err := decodeJSON([]byte(in))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
		var std any
		if err := stdjson.Unmarshal([]byte(in), &std); err != nil || !reflect.DeepEqual(std, want) {
			t.Errorf("%q: encoding/json gives %q, %v", in, std, err)
		}
	}
}

// getAt answers as get does, whether the hint points at the key (then it
// keeps it), elsewhere (then it moves it to the key) or past the fields: a
// null field is present with a nil value, a missing one absent.
func TestGetAtAnswersAsGetWhateverTheHint(t *testing.T) {
	ev := mustEvent(t, "u", "u", `{"c":3,"a":1,"b":null}`)
	for _, key := range []string{"a", "b", "c", "missing"} {
		want, present := ev.get(key)
		for _, start := range []int32{0, 1, 2, 99} {
			var hint atomic.Int32
			hint.Store(start)
			for try := range 2 { // the second try finds the key at the hint
				if v := ev.getAt(key, &hint); v != want {
					t.Fatalf("getAt(%q) from hint %d, try %d = %v; get = %v", key, start, try, v, want)
				}
			}
			if i := ev.search(key); present && hint.Load() != int32(i) {
				t.Fatalf("getAt(%q) left the hint at %d, the key is at %d", key, hint.Load(), i)
			}
		}
	}
	if _, ok := ev.get("b"); !ok {
		t.Fatal("the null field b is absent")
	}
}

// loneSurrogate finds a lone surrogate escape whatever the case of its hex
// digits, a pair written in lower case is no lone one, and text that ends
// in the middle of an escape has none there, while one whose four digits
// end the text is read whole.
func TestLoneSurrogateReadsEveryHexDigitAndTheEndOfTheText(t *testing.T) {
	for in, want := range map[string]rune{
		`"\udc0a"`:        0xdc0a,
		`"\uDC0A"`:        0xdc0a,
		`"\udabc\u0041"`:  0xdabc,
		`"\ud83d\ude0a"`:  -1,
		`"\ud83d\ude0a\"`: -1,
		`"\u00e9\\`:       -1,
		`\`:               -1,
		`"x\`:             -1,
		`"\ud8`:           -1,
		`"\udc0a`:         0xdc0a,
	} {
		r, ok := loneSurrogate([]byte(in))
		if want < 0 && ok || want >= 0 && (!ok || r != want) {
			t.Errorf("loneSurrogate(%s) = %#x, %v; want %#x", in, r, ok, want)
		}
	}
}

// hex4 reads four hex digits of either case, those that end the slice
// included, and refuses fewer than four or any other byte.
func TestHex4(t *testing.T) {
	for _, c := range []struct {
		in   string
		at   int
		want rune
		ok   bool
	}{
		{`\u00e9`, 2, 0xe9, true}, {`\uaAfF"`, 2, 0xaaff, true}, {`\u09af`, 2, 0x09af, true},
		{`\u00e`, 2, 0, false}, {`\u00g9`, 2, 0, false}, {`\u`, 2, 0, false},
	} {
		r, ok := hex4([]byte(c.in), c.at)
		if r != c.want || ok != c.ok {
			t.Errorf("hex4(%s, %d) = %#x, %v; want %#x, %v", c.in, c.at, r, ok, c.want, c.ok)
		}
	}
}

// When the fast decoder panics, decodeJSON's fallback decodes the same
// value with encoding/json, numbers still as their exact text.
func TestDecodeJSONFallsBackWhenTheFastDecoderPanics(t *testing.T) {
	panicky := func([]byte, *any) error { panic("decoder bug") }
	got, err := decodeJSONWith([]byte(`{"a":[1.50,"x",{"b":null}],"n":12345678901234567890}`), panicky)
	want := map[string]any{"a": []any{json.Number("1.50"), "x", map[string]any{"b": nil}}, "n": json.Number("12345678901234567890")}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, %v; want %#v", got, err, want)
	}
	// Invalid JSON is refused before the fast decoder runs.
	if _, err := decodeJSONWith([]byte(`{"a":}`), panicky); err == nil {
		t.Fatal("invalid JSON decoded")
	}
}

// Releasing a nil decoded event does nothing.
func TestReleaseOfANilDecodedEvent(t *testing.T) {
	var d *decodedEvent
	d.release()
}
