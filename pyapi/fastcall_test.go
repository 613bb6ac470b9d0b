package pyapi

import (
	"errors"
	"testing"
)

// An error's text reaches Python as valid UTF-8 (bytes that are not become
// U+FFFD), cut on a rune boundary when longer than the room for it.
func TestErrorTextIsValidUTF8WithinItsRoom(t *testing.T) {
	cases := []struct {
		text string
		room int
		want string
	}{
		{"not found: s", 64, "not found: s"},
		{"ERR \xff\xfe reply", 64, "ERR \uFFFD reply"}, // a run of invalid bytes is one U+FFFD
		{"ab\u00e9", 4, "ab\u00e9"},                    // exactly its room
		{"ab\u00e9", 3, "ab"},                          // é does not fit whole
		{"abc\xff", 4, "abc"},                          // its U+FFFD does not fit
		{"\xff", 3, "\uFFFD"},
		{"abc", 0, ""},
	}
	for _, c := range cases {
		if got := errorText(errors.New(c.text), c.room); got != c.want {
			t.Errorf("errorText(%q, %d) = %q, want %q", c.text, c.room, got, c.want)
		}
	}
}
