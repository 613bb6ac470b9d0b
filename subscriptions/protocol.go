package subscriptions

import (
	"strings"
	"unicode/utf8"

	json "github.com/goccy/go-json"
)

// nextPrefix returns the bytes that precede a payload in a "next" frame
// for subscription id: {"type":"next","id":"<id>","payload":
func nextPrefix(id string) string {
	var b strings.Builder
	b.WriteString(`{"type":"next","id":`)
	b.Write(quoteJSON(id))
	b.WriteString(`,"payload":`)
	return b.String()
}

// nextSuffix closes a "next" frame.
const nextSuffix = "}"

// quoteJSON returns s as a JSON string literal.
func quoteJSON(s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// GraphQLMessage is one graphql-transport-ws message.
type GraphQLMessage struct {
	Type string `json:"type"`
	// ID is empty when the message has none.
	ID string `json:"id,omitempty"`
	// Payload is the raw JSON payload (an object, or a list for "error"),
	// nil when absent or null.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// DecodeGraphQLMessage decodes and checks one message: "type" must be a
// non-empty string, "id" a string when present, "payload" an object or a
// list (for "error") when present.
func DecodeGraphQLMessage(b []byte) (GraphQLMessage, error) {
	v, err := decodeJSON(b)
	if err != nil {
		return GraphQLMessage{}, valueErrorf("message is not valid JSON: %v", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return GraphQLMessage{}, valueErrorf("message must be a JSON object, got %s", jsonKind(v))
	}
	var m GraphQLMessage
	switch t := obj["type"].(type) {
	case string:
		if t == "" {
			return m, valueErrorf("message field 'type' must not be empty")
		}
		if !utf8.ValidString(t) {
			return m, valueErrorf("message field 'type' is not valid UTF-8")
		}
		m.Type = t
	case nil:
		return m, valueErrorf("message is missing the required field 'type'")
	default:
		return m, valueErrorf("message field 'type' must be a string, got %s", jsonKind(t))
	}
	switch id := obj["id"].(type) {
	case string:
		if !utf8.ValidString(id) {
			return m, valueErrorf("message field 'id' is not valid UTF-8")
		}
		m.ID = id
	case nil:
	default:
		return m, valueErrorf("message field 'id' must be a string, got %s", jsonKind(id))
	}
	switch p := obj["payload"].(type) {
	case nil:
	case map[string]any, []any:
		raw, err := json.Marshal(p)
		if err != nil {
			return m, valueErrorf("message field 'payload' cannot be encoded: %v", err)
		}
		m.Payload = raw
	default:
		return m, valueErrorf("message field 'payload' must be an object or a list, got %s", jsonKind(p))
	}
	return m, nil
}

// Encode returns the compact JSON form of m.
func (m GraphQLMessage) Encode() []byte {
	b, _ := json.Marshal(m) // fields are a string and valid raw JSON
	return b
}
