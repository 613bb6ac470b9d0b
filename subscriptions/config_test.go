package subscriptions

import "testing"

// PostgresBusConfig refuses an empty or blank connection string as a value
// error (pgconn would read it as "connect to the defaults"), and keeps a
// valid one as given.
func TestPostgresBusConfigRefusesAnEmptyConnectionString(t *testing.T) {
	for _, s := range []string{"", "  \t"} {
		_, err := PostgresBusConfig(s)
		if err == nil || err.Error() != "connection_string must not be empty" || KindOf(err) != KindValue {
			t.Errorf("PostgresBusConfig(%q): %v", s, err)
		}
	}
	const dsn = "postgres://app@db.example/events"
	cfg, err := PostgresBusConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kind != BusPostgres || cfg.Postgres.ConnString != dsn {
		t.Fatalf("config %+v", cfg)
	}
	if _, err := PostgresBusConfig("postgres://app@db.example:notaport/events"); err == nil || KindOf(err) != KindValue {
		t.Fatalf("invalid connection string: %v", err)
	}
}
