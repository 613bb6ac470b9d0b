package subscriptions

import (
	"context"
	"strings"
	"testing"
)

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

// namedLogger is a Logger told apart from others by its name.
type namedLogger struct{ name string }

func (*namedLogger) Log(LogLevel, string, string) {}

// NewBus gives a Redis bus the BusConfig's Logger when its own options set
// none, and leaves it the one they set.
func TestNewBusGivesTheRedisBusTheConfigsLogger(t *testing.T) {
	shared, own := &namedLogger{"shared"}, &namedLogger{"own"}
	for _, c := range []struct {
		set, want Logger
	}{{nil, shared}, {own, own}} {
		bus, err := NewBus(BusConfig{Kind: BusRedis, Logger: shared,
			Redis: RedisOptions{URL: "redis://127.0.0.1:1/0", ConsumerGroup: "g", Logger: c.set}})
		if err != nil {
			t.Fatal(err)
		}
		rb := bus.(*redisBus)
		if rb.log != c.want {
			t.Errorf("options' Logger %v: the bus logs to %v, want %v", c.set, rb.log, c.want)
		}
		if err := bus.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// RedisBusConfig keeps a valid URL and consumer group as given, and
// refuses a URL go-redis cannot read or an empty or blank group as value
// errors.
func TestRedisBusConfigValidatesItsURLAndGroup(t *testing.T) {
	const url = "redis://cache.example:6379/2"
	cfg, err := RedisBusConfig(url, "workers")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kind != BusRedis || cfg.Redis.URL != url || cfg.Redis.ConsumerGroup != "workers" {
		t.Fatalf("config %+v", cfg)
	}
	if _, err := RedisBusConfig("http://cache.example:6379", "workers"); err == nil || KindOf(err) != KindValue ||
		!strings.HasPrefix(err.Error(), "invalid Redis URL http://cache.example:6379: ") {
		t.Errorf("a URL of another scheme: %v", err)
	}
	for _, group := range []string{"", " \t"} {
		_, err := RedisBusConfig(url, group)
		if err == nil || err.Error() != "consumer_group must not be empty" || KindOf(err) != KindValue {
			t.Errorf("consumer group %q: %v", group, err)
		}
	}
}

// A URL without a password comes back from RedactURL exactly as given,
// even where encoding it again would write it differently (the order of
// its query parameters, their escapes, an empty query).
func TestRedactURLLeavesAURLWithoutPasswordAsItIs(t *testing.T) {
	for _, raw := range []string{"redis://h:1/0?b=1&a=2", "redis://h/0?name=a%20b", "redis://h:1/0?", "postgresql://bob@h/db?sslmode=disable&application_name=x"} {
		if got := RedactURL(raw); got != raw {
			t.Errorf("RedactURL(%q) = %q", raw, got)
		}
	}
}

// In a PostgreSQL URL only the password is hidden, though the same text
// is also its database's name.
func TestRedactConnStringOfAURLHidesOnlyThePassword(t *testing.T) {
	for raw, want := range map[string]string{
		"postgresql://app:events@db.example/events": "postgresql://app:***@db.example/events",
		"postgres://app:events@db.example/events":   "postgres://app:***@db.example/events",
	} {
		if got := RedactConnString(raw); got != want {
			t.Errorf("RedactConnString(%q) = %q, want %q", raw, got, want)
		}
	}
}

// NewBus gives a PostgreSQL bus the BusConfig's Logger when its own
// options set none, and leaves it the one they set.
func TestNewBusGivesThePostgresBusTheConfigsLogger(t *testing.T) {
	shared, own := &namedLogger{"shared"}, &namedLogger{"own"}
	for _, c := range []struct {
		set, want Logger
	}{{nil, shared}, {own, own}} {
		bus, err := NewBus(BusConfig{Kind: BusPostgres, Logger: shared,
			Postgres: PostgresOptions{ConnString: "postgres://app@127.0.0.1:1/events", Logger: c.set}})
		if err != nil {
			t.Fatal(err)
		}
		if pb := bus.(*PostgresBus); pb.opts.Logger != c.want {
			t.Errorf("options' Logger %v: the bus logs to %v, want %v", c.set, pb.opts.Logger, c.want)
		}
		if err := bus.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
