package subscriptions

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzCompile(f *testing.F) {
	f.Add("subscription { u { id } }", "", "")
	f.Add("subscription S($id: ID!) { u(id: $id) { id ...F } } fragment F on User { name }", "S", `{"id":"7"}`)
	ev := mustEvent(f, "User", "u", `{"__typename":"User","id":7,"name":"Ann","tags":["a"],"c":{"x":1}}`)
	f.Fuzz(func(t *testing.T, query, opName, varsJSON string) {
		// Not decodeJSON: goccy's Decoder.Token can panic on garbage after
		// the value, and that is event.go's to fix, not this target's.
		var vars map[string]any
		dec := json.NewDecoder(strings.NewReader(varsJSON))
		dec.UseNumber()
		_ = dec.Decode(&vars)
		p, err := Compile(query, opName, vars, Limits{MaxQueryBytes: 4096}.withDefaults())
		if err != nil {
			if k := KindOf(err); k != KindValue && k != KindType {
				t.Fatalf("error kind %v: %v", k, err)
			}
			return
		}
		p.Match(ev)
		checkPayload(t, p.AppendPayload(nil, ev))
	})
}

func FuzzProject(f *testing.F) {
	f.Add("subscription { u { id name } }", `{"id":1,"name":"x"}`)
	f.Add("subscription { u }", "{ \"a\" : \"\xff\" }")
	f.Fuzz(func(t *testing.T, query, data string) {
		p, err := Compile(query, "", nil, Limits{MaxQueryBytes: 4096}.withDefaults())
		if err != nil {
			return
		}
		ev, err := decodeEvent(Event{Type: "User", Channel: "u", Data: []byte(data)}, Limits{}.withDefaults())
		if err != nil {
			return
		}
		p.Match(ev)
		checkPayload(t, p.AppendPayload(nil, ev))
	})
}

func checkPayload(t *testing.T, out []byte) {
	t.Helper()
	if !utf8.Valid(out) || !json.Valid(out) {
		t.Fatalf("invalid payload %q", out)
	}
	var v map[string]map[string]any
	if err := json.Unmarshal(out, &v); err != nil || len(v["data"]) != 1 {
		t.Fatalf("payload %q is not {\"data\":{key:value}}: %v", out, err)
	}
}
