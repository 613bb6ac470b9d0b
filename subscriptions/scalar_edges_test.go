package subscriptions

import "testing"

// scalarOf is the JSON value raw as an event carries it.
func scalarOf(t *testing.T, raw string) jv {
	t.Helper()
	v, _ := field(objectOf(mustEvent(t, "evt", "c", `{"v":`+raw+`}`).root), "v")
	return v
}

// A space, '~' and a no-break space are printed as themselves; the control
// characters below the space and from DEL to U+009F are escaped, as
// graphql-core's print_string does.
func TestPrintStringEscapesControlsNotSpace(t *testing.T) {
	for in, want := range map[string]string{
		"a b":     `"a b"`,
		"\x1f":    `"\u001F"`,
		"\x00 \t": `"\u0000 \t"`,
		"\u007e":  `"~"`,
		"\u007f":  `"\u007F"`,
		"\u009f":  `"\u009F"`,
		"\u00a0":  "\"\u00a0\"",
	} {
		if got := printString(in); got != want {
			t.Errorf("printString(%q) = %s, want %s", in, got, want)
		}
	}
}

// Serializing to Int refuses a number with a fraction; to Float, a string
// that parses to infinity ("inf" is no number to graphql-core).
func TestSerializeScalarRefusesFractionsAndInfinity(t *testing.T) {
	for _, tt := range []struct{ scalar, raw, want string }{
		{"Int", `1.5`, "Int cannot represent non-integer value: 1.5"},
		{"Int", `3.0`, ""},
		{"Float", `"inf"`, "Float cannot represent non numeric value: 'inf'"},
		{"Float", `"-Infinity"`, "Float cannot represent non numeric value: '-Infinity'"},
		{"Float", `"nan"`, "Float cannot represent non numeric value: 'nan'"},
		{"Float", `"2.5"`, ""},
	} {
		got, msg := serializeScalar(nil, tt.scalar, scalarOf(t, tt.raw))
		if msg != tt.want {
			t.Errorf("%s %s: message %q (wrote %q), want %q", tt.scalar, tt.raw, msg, got, tt.want)
		}
	}
}

// A Boolean argument takes true and false only.
func TestParseScalarBoolean(t *testing.T) {
	if v, msg := parseScalar("Boolean", true); v != true || msg != "" {
		t.Errorf("true: %v %q", v, msg)
	}
	want := "Boolean cannot represent a non boolean value: 'x'"
	if v, msg := parseScalar("Boolean", "x"); v != nil || msg != want {
		t.Errorf("'x': %v %q, want %q", v, msg, want)
	}
}
