package subscriptions

import (
	"bytes"
	"context"
	stdjson "encoding/json"
	"fmt"
	"strings"
	"testing"
)

// publishSeeds are inputs of both publish fuzz targets: Python's
// json.dumps output (what PublishValid receives) and malformed JSON.
var publishSeeds = []string{
	`{}`, `{"id": 1, "name": "Ann", "tenant_id": "t1"}`, `{"id":1,"c":{"x":[1,2.5,-3e2,null,true]}}`,
	`{"id": "\u00e9\ud83d\ude00", "n": 1.5e300}`, `{"id":9007199254740993,"user_id":7}`,
	`{"a": {"b": {"c": {"d": [[[[]]]]}}}}`, `{"id":1,"id":2}`, `{"k\u0000":"\u0000"}`,
	`{"id":1} `, ` {"id":1}`, "{\"id\":\"\xff\"}", `{"id":1}x`, `{"id":1,}`, `{"id":01}`,
	`[{"id":1}]`, `"s"`, `null`, ``, `{`, `{"id":"\ud800"}`, `{"id":1e999}`, `{"__typename":"U"}`,
}

// publishExecutor is a memory-bus executor whose subscriptions exercise
// projection, filters and the security checks on u events.
func publishExecutor(tb testing.TB) *Executor {
	e, err := NewExecutor(context.Background(), Options{Limits: Limits{MaxPayloadBytes: 1 << 16}})
	if err != nil {
		tb.Fatal(err)
	}
	for i, q := range []string{
		`subscription { u { id name tenant_id c { x } } }`,
		`subscription { u }`,
		`subscription { u(where: {id: {gt: 0}}) { __typename id } }`,
		`subscription { u(where: {OR: [{name: {startswith: "A"}}, {c: {x: {contains: 1}}}]}) { id } }`,
	} {
		if err := e.Register(Registration{ConnectionID: "c", SubscriptionID: fmt.Sprint(i), Query: q, TenantID: "t1", UserID: "7"}); err != nil {
			tb.Fatal(err)
		}
	}
	return e
}

// FuzzPublish publishes arbitrary bytes, as a bus delivers what another
// process published: Publish never panics, refuses with a ValueError or
// TypeError kind exactly what is not a JSON object (or too large), and
// every frame it queues is valid JSON.
func FuzzPublish(f *testing.F) {
	for _, s := range publishSeeds {
		f.Add([]byte(s))
	}
	e := publishExecutor(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		err := e.Publish(context.Background(), Event{Type: "U", Channel: "u", Data: data})
		var v any
		isObj := false
		if stdjson.Unmarshal(data, &v) == nil {
			_, isObj = v.(map[string]any)
		}
		if err != nil {
			if k := KindOf(err); k != KindValue && k != KindType {
				t.Fatalf("error kind %v: %v", k, err)
			}
			if isObj && len(data) <= 1<<16 {
				t.Fatalf("object %q refused: %v", data, err)
			}
		} else if !isObj {
			t.Fatalf("accepted %q, which is not a JSON object", data)
		}
		frames, _, err := e.DrainConnection("c", 0)
		if err != nil {
			t.Fatal(err)
		}
		if frames == "" {
			return
		}
		for _, fr := range splitFrames(frames) {
			if !stdjson.Valid([]byte(fr)) {
				t.Fatalf("frame %q of %q is not valid JSON", fr, data)
			}
		}
	})
}

// FuzzPublishValid checks the fast path for data from Python
// (PublishValid, which skips the strict validation pass) against
// Publish: for well-formed JSON, the same error or the same frames. On
// malformed JSON, which its contract excludes, it must still not panic
// and queue only valid JSON.
func FuzzPublishValid(f *testing.F) {
	for _, s := range publishSeeds {
		f.Add([]byte(s))
	}
	strict, fast := publishExecutor(f), publishExecutor(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ev := Event{Type: "U", Channel: "u", Data: data}
		if !stdjson.Valid(data) {
			_ = fast.PublishValid(context.Background(), ev)
			frames, _, _ := fast.DrainConnection("c", 0)
			for _, fr := range splitFrames(frames) {
				if frames != "" && !stdjson.Valid([]byte(fr)) {
					t.Fatalf("frame %q of %q is not valid JSON", fr, data)
				}
			}
			return
		}
		errS, errF := strict.Publish(context.Background(), ev), fast.PublishValid(context.Background(), ev)
		if errF != nil && strings.HasPrefix(errF.Error(), loneSurrogateRefusal) {
			// The one intended difference: data from Python that carries a
			// lone surrogate is refused (Publish keeps encoding/json's
			// U+FFFD), so the user's data is never silently changed.
			if !bytes.Contains(data, []byte(`\u`)) || KindOf(errF) != KindValue {
				t.Fatalf("%q refused as a lone surrogate: %v", data, errF)
			}
			_, _, _ = strict.DrainConnection("c", 0)
			return
		}
		if fmt.Sprint(errS) != fmt.Sprint(errF) || KindOf(errS) != KindOf(errF) {
			t.Fatalf("%q: Publish %v, PublishValid %v", data, errS, errF)
		}
		fs, _, _ := strict.DrainConnection("c", 0)
		ff, _, _ := fast.DrainConnection("c", 0)
		if fs != ff {
			t.Fatalf("%q: frames differ:\n%s\n%s", data, fs, ff)
		}
	})
}

const loneSurrogateRefusal = "data is not valid Unicode: it contains the lone surrogate"

func splitFrames(frames string) []string {
	var out []string
	start := 0
	for i := 0; i < len(frames); i++ {
		if frames[i] == '\n' {
			out = append(out, frames[start:i])
			start = i + 1
		}
	}
	return append(out, frames[start:])
}
