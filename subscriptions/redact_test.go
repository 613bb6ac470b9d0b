package subscriptions

import (
	"errors"
	"strings"
	"testing"
)

// Regression (issue 5): a password given as a query parameter was shown
// by RedactURL, so in the error for a Redis URL that go-redis refuses.
func TestRedactURLQueryPassword(t *testing.T) {
	const pw = "s3cr3tpw"
	for _, raw := range []string{
		"redis://localhost:6379/0?password=" + pw,
		"redis://h/0?Password=" + pw + "&x=1",
		"redis://:" + pw + "@h:1/0?password=" + pw,
		"postgresql://bob@h/db?password=" + pw,
	} {
		if got := RedactURL(raw); strings.Contains(got, pw) || !strings.Contains(got, "***") {
			t.Errorf("RedactURL(%q) = %q", raw, got)
		}
		if _, err := RedisBusConfig(raw, "g"); err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("RedisBusConfig(%q): %v", raw, err)
		}
	}
	// A password in the user part alone is hidden too.
	for raw, want := range map[string]string{
		"redis://:" + pw + "@h:1/0":             "redis://:***@h:1/0",
		"postgresql://bob:" + pw + "@h:5432/db": "postgresql://bob:***@h:5432/db",
	} {
		if got := RedactURL(raw); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
	if got := RedactURL("redis://h:1/0?db=2"); got != "redis://h:1/0?db=2" {
		t.Errorf("a URL without a password changed: %q", got)
	}
}

// An error naming a password of the connection string (in the URL's user
// part, a query parameter or a key=value field) shows it as ***; the
// whole string as <connection string>. A password shorter than three
// characters is left: replacing it would garble the message.
func TestRedactedRemovesThePasswordsOfTheConnectionString(t *testing.T) {
	for _, c := range []struct{ raw, msg, want string }{
		{"postgresql://bob:hunter22@h/db", "auth failed for hunter22 at h", "auth failed for *** at h"},
		{"host=h user=bob password=zebra42", "zebra42 refused", "*** refused"},
		{"redis://h/0?password=q1w2e3", "q1w2e3!", "***!"},
		{"redis://:ab@h/0", "ab: wrong password for ab", "ab: wrong password for ab"},
		{"redis://:long-secret@h/0", "dial redis://:long-secret@h/0: refused", "dial redis://:***@h/0: refused"},
		{"host=h user=bob dbname=x", "cannot parse host=h user=bob dbname=x", "cannot parse <connection string>"},
	} {
		if got := Redacted(errors.New(c.msg), c.raw); got != c.want {
			t.Errorf("Redacted(%q, %q) = %q, want %q", c.msg, c.raw, got, c.want)
		}
	}
}

// A password of exactly three characters is long enough to hide.
func TestRedactedHidesAThreeCharacterPassword(t *testing.T) {
	if got := Redacted(errors.New("k3y refused"), "redis://:k3y@h/0"); got != "*** refused" {
		t.Fatalf("Redacted = %q", got)
	}
}

// RedactConnString hides the password of a key=value string wherever it
// occurs, a quoted one holding a space whole (the pair alone would leave
// its second word), and changes nothing in a string without one.
func TestRedactConnStringOfKeyValueStrings(t *testing.T) {
	for raw, want := range map[string]string{
		"host=h user=bob password=zebra42 dbname=zebra42": "host=h user=bob password=*** dbname=***",
		"host=h password='two words' dbname=x":            "host=h password=*** dbname=x",
		"host=h user=bob dbname=x":                        "host=h user=bob dbname=x",
	} {
		if got := RedactConnString(raw); got != want {
			t.Errorf("RedactConnString(%q) = %q, want %q", raw, got, want)
		}
	}
}
