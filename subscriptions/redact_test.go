package subscriptions

import (
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
	if got := RedactURL("redis://h:1/0?db=2"); got != "redis://h:1/0?db=2" {
		t.Errorf("a URL without a password changed: %q", got)
	}
}
