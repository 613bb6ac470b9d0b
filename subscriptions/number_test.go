package subscriptions

import "testing"

// compareNumbers on parsed numbers must decide as numCompare does on
// their texts, and numbersEqual as equal does.
var numberTexts = []string{
	"0", "-0", "0.0", "0e5", "1", "-1", "7", "7.0", "7e0", "70e-1", "100", "99.999", "100.0001",
	"9007199254740992", "9007199254740993", "9007199254740993.0", "-9007199254740993",
	"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
	"1e308", "1e309", "1e-400", "-1e-400", "123456789012345678901234567890", "1.5", "1.50", "2.5e-3",
	"0.1", "0.30000000000000004", "1E2", "abc", "", "01", "1.", ".5", "-",
}

func checkNumberPair(t *testing.T, a, b string) {
	x, y := parseNumber(a), parseNumber(b)
	if x.valid && y.valid {
		if got, want := compareNumbers(x, y), numCompare(a, b); got != want {
			t.Fatalf("compareNumbers(%q, %q) = %d, numCompare gives %d", a, b, got, want)
		}
	}
	want := a == b || (isJSONNumber(a) && isJSONNumber(b) && numCompare(a, b) == 0)
	if got := numbersEqual(x, y); got != want {
		t.Fatalf("numbersEqual(%q, %q) = %v, want %v", a, b, got, want)
	}
}

func TestCompareNumbersAsNumCompare(t *testing.T) {
	for _, a := range numberTexts {
		for _, b := range numberTexts {
			checkNumberPair(t, a, b)
		}
	}
}

func FuzzCompareNumbers(f *testing.F) {
	for i, a := range numberTexts {
		f.Add(a, numberTexts[(i*7+3)%len(numberTexts)])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if len(a) > 400 || len(b) > 400 {
			return
		}
		checkNumberPair(t, a, b)
	})
}
