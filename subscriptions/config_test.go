package subscriptions

import (
	"context"
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
