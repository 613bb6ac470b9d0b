package subscriptions

import (
	stdjson "encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeEvent feeds arbitrary bytes to the event decoder, as a Redis or
// PostgreSQL bus does with what another process published: it must never
// panic, refuse exactly what is not a JSON object (with a ValueError or
// TypeError kind), and what it accepts must project to valid JSON.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"id":1}`, `{"tenant_id":"t","user_id":7,"__typename":"User"}`,
		`{"tenant_id":null,"user_id":[1]}`, `[]`, `null`, `1`, `"x"`, ``, `{`, `{"a":1}x`,
		`{"a":1,}`, `{"a":01}`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"a":1e999}`,
		`{"n":123456789012345678901234567890}`, `{"a":{"b":{"c":[1,2,{"d":null}]}}}`,
		"{\"a\":\"\x00\"}", `{"a":1} {"b":2}`, `{"__typename":5}`, `{"a":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	plan, err := Compile("subscription { u { id tenant_id c { x } } }", "", nil, Limits{}.withDefaults())
	if err != nil {
		f.Fatal(err)
	}
	whole, err := Compile("subscription { u }", "", nil, Limits{}.withDefaults())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decodeEvent(Event{Type: "User", Channel: "u", Data: data}, Limits{MaxPayloadBytes: 1 << 16})
		var v any
		stdErr := stdjson.Unmarshal(data, &v)
		_, isObj := v.(map[string]any)
		if err != nil {
			if k := KindOf(err); k != KindValue && k != KindType {
				t.Fatalf("error kind %v: %v", k, err)
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("error message is not UTF-8: %q", err.Error())
			}
			// fastjson refuses nesting deeper than fastjson.MaxDepth levels.
			deep := err.Error() == "event data is not valid JSON: nested deeper than 300 levels"
			if stdErr == nil && isObj && len(data) <= 1<<16 && !deep {
				t.Fatalf("valid object %q refused: %v", data, err)
			}
			return
		}
		if stdErr != nil || !isObj {
			t.Fatalf("accepted %q, which is not a JSON object (%v)", data, stdErr)
		}
		if d.root == nil || d.obj == nil {
			t.Fatalf("accepted %q without a value", data)
		}
		for _, p := range []*Plan{plan, whole} {
			p.Match(d)
			checkPayload(t, p.AppendPayload(nil, d))
		}
	})
}

// FuzzDecodeGraphQLMessage feeds arbitrary bytes to the graphql-transport-ws
// message decoder: no panic, only ValueError-kind errors, and an accepted
// message re-encodes to JSON that decodes to the same message.
func FuzzDecodeGraphQLMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"connection_init"}`, `{"type":"ping","payload":{}}`,
		`{"type":"subscribe","id":"1","payload":{"query":"subscription { u { id } }","variables":{"a":1}}}`,
		`{"type":"error","id":"1","payload":[{"message":"x"}]}`, `{"type":"complete","id":"1"}`,
		`{"type":""}`, `{"type":1}`, `{"id":"1"}`, `{"type":"x","id":2}`, `{"type":"x","payload":"s"}`,
		`{"type":"x","payload":null}`, `[]`, `null`, ``, `{"type":"x"} trailing`, `{"type":"\ud800"}`,
		"{\"type\":\"\xff\"}", `{"type":"x","payload":{"n":1e400}}`, `{"type":"x","type":"y"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeGraphQLMessage(data)
		if err != nil {
			if k := KindOf(err); k != KindValue {
				t.Fatalf("error kind %v: %v", k, err)
			}
			return
		}
		if m.Type == "" {
			t.Fatalf("accepted %q with an empty type", data)
		}
		if m.Payload != nil && !stdjson.Valid(m.Payload) {
			t.Fatalf("payload %q of %q is not valid JSON", m.Payload, data)
		}
		out := m.Encode()
		if !stdjson.Valid(out) {
			t.Fatalf("encoding %q of %q is not valid JSON", out, data)
		}
		again, err := DecodeGraphQLMessage(out)
		if err != nil {
			t.Fatalf("re-decoding %q: %v", out, err)
		}
		if again.Type != m.Type || again.ID != m.ID {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
		var p1, p2 any
		if m.Payload != nil {
			_ = stdjson.Unmarshal(m.Payload, &p1)
			_ = stdjson.Unmarshal(again.Payload, &p2)
			if !reflect.DeepEqual(p1, p2) {
				t.Fatalf("round trip changed payload %s into %s", m.Payload, again.Payload)
			}
		}
	})
}
