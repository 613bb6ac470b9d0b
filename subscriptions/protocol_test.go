package subscriptions

import "testing"

// Every refusal of DecodeGraphQLMessage names what was wrong, JSON syntax
// errors included.
func TestDecodeGraphQLMessageErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"type":`, "message is not valid JSON: unexpected end of JSON input"},
		{`{"type":"x",}`, "message is not valid JSON: invalid character '}' looking for beginning of object key string"},
		{`[1]`, "message must be a JSON object, got array"},
		{`{"type":""}`, "message field 'type' must not be empty"},
		{`{"id":"1"}`, "message is missing the required field 'type'"},
		{`{"type":1}`, "message field 'type' must be a string, got number"},
		{`{"type":"x","id":2}`, "message field 'id' must be a string, got number"},
		{`{"type":"x","payload":"s"}`, "message field 'payload' must be an object or a list, got string"},
	} {
		_, err := DecodeGraphQLMessage([]byte(c.in))
		if err == nil || err.Error() != c.want || KindOf(err) != KindValue {
			t.Errorf("%s: got %v, want %q", c.in, err, c.want)
		}
	}
	m, err := DecodeGraphQLMessage([]byte(`{"type":"subscribe","id":"1","payload":{"query":"q"}}`))
	if err != nil || m.Type != "subscribe" || m.ID != "1" || string(m.Payload) != `{"query":"q"}` {
		t.Fatalf("%+v %v", m, err)
	}
}

// A subscription id that is not UTF-8 is quoted with each run of invalid
// bytes as one U+FFFD, as strings.ToValidUTF8 makes it, not one per byte.
func TestQuoteJSONInvalidUTF8(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a\xff\xfeb", `"a` + "\uFFFD" + `b"`},
		{"ok", `"ok"`},
	} {
		if got := string(quoteJSON(c.in)); got != c.want {
			t.Errorf("quoteJSON(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}
