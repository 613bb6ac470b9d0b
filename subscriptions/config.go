package subscriptions

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
)

// Bus kinds.
const (
	BusMemory   = "memory"
	BusRedis    = "redis"
	BusPostgres = "postgresql"
)

// BusConfig selects and configures the bus of an executor.
type BusConfig struct {
	Kind     string // BusMemory (the default), BusRedis or BusPostgres
	Redis    RedisOptions
	Postgres PostgresOptions
	// Logger receives the bus's connection events (lost, restored); it is
	// given to the bus's options unless they set their own. Default: none.
	Logger Logger
}

// RedisOptions configure the Redis Streams bus. Zero fields take the
// documented defaults.
type RedisOptions struct {
	// URL is a redis:// or rediss:// URL as redis.ParseURL accepts it.
	URL string
	// ConsumerGroup prefixes the consumer group of every executor; the
	// group of one executor is ConsumerGroup + ":" + InstanceID.
	ConsumerGroup string
	// InstanceID names this executor. Empty: a random id, and the group is
	// destroyed on Close. Set it to resume from the same position after a
	// restart. One running executor at a time owns an InstanceID (a lease
	// key with an expiry that it renews): Start fails with
	// ErrInstanceInUse while another holds it, or until the lease of one
	// that crashed expires.
	InstanceID string
	// Stream is the one stream every channel shares. Default "fraiseql:events".
	Stream string
	// MaxLen trims the stream approximately (XADD MAXLEN ~). Default 100000.
	MaxLen int64
	// GroupIdleTimeout: groups of this ConsumerGroup whose consumers have
	// been idle longer are destroyed (executors that crashed). Default 1h.
	GroupIdleTimeout time.Duration
	// DialTimeout bounds connecting at start and on reconnects. Default 5s.
	DialTimeout time.Duration
	// Logger is told when the connection is lost and restored. Default:
	// nothing is logged.
	Logger Logger
}

// PostgresOptions configure the PostgreSQL bus. Zero fields take the
// documented defaults.
type PostgresOptions struct {
	// ConnString is a URL or key=value connection string as
	// pgconn.ParseConfig accepts it.
	ConnString string
	// Table is the event log table, created if missing. Default "fraiseql_events".
	Table string
	// NotifyChannel is the LISTEN/NOTIFY channel used as a wake-up.
	// Default "fraiseql_events".
	NotifyChannel string
	// Retention: rows older than this are pruned. Default 1h.
	Retention time.Duration
	// PollInterval: the listener also reads the table this often, in case
	// a notification was missed. Default 1s.
	PollInterval time.Duration
	// ConnectTimeout bounds connecting at start and on reconnects. Default 5s.
	ConnectTimeout time.Duration
	// InstanceID names this executor. Empty: the executor starts at new
	// events. Set: its position is stored in the table Table+"_positions"
	// and a restart delivers, once, every event committed meanwhile (within
	// Retention). One running executor at a time owns an InstanceID (a
	// session advisory lock of its listener): Start fails with
	// ErrInstanceInUse while another holds it.
	InstanceID string
	// Function is the SQL function that publishes from the database,
	// created beside Table. Default "fraiseql_publish" with the default
	// table, Table+"_publish" with another one.
	Function string
	// VerifySchema: never create or alter anything on the server. The
	// objects (SchemaSQL prints them) must be in place; if any is not,
	// Start fails with ErrSchemaMissing naming each missing one. Default
	// false: missing objects are created.
	VerifySchema bool
	// Logger is told when the listener's connection is lost and restored.
	// Default: nothing is logged.
	Logger Logger
}

// MemoryBusConfig returns the configuration of the in-process bus.
func MemoryBusConfig() BusConfig { return BusConfig{Kind: BusMemory} }

// RedisBusConfig validates url and group and returns a Redis bus configuration.
func RedisBusConfig(rawURL, consumerGroup string) (BusConfig, error) {
	if _, err := redis.ParseURL(rawURL); err != nil {
		return BusConfig{}, valueErrorf("invalid Redis URL %s: %s", RedactURL(rawURL), redactSecrets(err.Error(), rawURL))
	}
	if strings.TrimSpace(consumerGroup) == "" {
		return BusConfig{}, valueErrorf("consumer_group must not be empty")
	}
	return BusConfig{Kind: BusRedis, Redis: RedisOptions{URL: rawURL, ConsumerGroup: consumerGroup}}, nil
}

// PostgresBusConfig validates connString and returns a PostgreSQL bus configuration.
func PostgresBusConfig(connString string) (BusConfig, error) {
	if strings.TrimSpace(connString) == "" {
		return BusConfig{}, valueErrorf("connection_string must not be empty")
	}
	if _, err := pgconn.ParseConfig(connString); err != nil {
		// pgconn's own message never repeats the password, but it may
		// quote the string; redact to be sure.
		return BusConfig{}, valueErrorf("invalid PostgreSQL connection string %s: %s", RedactConnString(connString), redactSecrets(err.Error(), connString))
	}
	return BusConfig{Kind: BusPostgres, Postgres: PostgresOptions{ConnString: connString}}, nil
}

// String describes the configuration without any password.
func (c BusConfig) String() string {
	switch c.Kind {
	case BusRedis:
		return fmt.Sprintf("EventBusConfig(bus_type='redis', url='%s', consumer_group='%s')", RedactURL(c.Redis.URL), c.Redis.ConsumerGroup)
	case BusPostgres:
		return fmt.Sprintf("EventBusConfig(bus_type='postgresql', connection_string='%s')", RedactConnString(c.Postgres.ConnString))
	default:
		return "EventBusConfig(bus_type='memory')"
	}
}

// RedactURL replaces the password of a URL with "***".
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	changed := false
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "***")
			changed = true
		}
	}
	// A password may also come as a query parameter (?password=...), in
	// any letter case.
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "password") {
			q[k] = []string{"***"}
			changed = true
		}
	}
	if !changed {
		return raw
	}
	u.RawQuery = q.Encode()
	return strings.Replace(u.String(), "%2A%2A%2A", "***", -1)
}

// RedactConnString hides the password of a PostgreSQL URL or key=value
// connection string.
func RedactConnString(s string) string {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		return RedactURL(s)
	}
	cfg, err := pgconn.ParseConfig(s)
	out := s
	if err == nil && cfg.Password != "" {
		out = strings.ReplaceAll(out, cfg.Password, "***")
	}
	// Also hide a password=... pair that could not be parsed.
	fields := strings.Fields(out)
	for i, f := range fields {
		if strings.HasPrefix(strings.ToLower(f), "password=") {
			fields[i] = "password=***"
		}
	}
	return strings.Join(fields, " ")
}

// redactSecrets removes from msg any password contained in the URL or
// connection string raw.
func redactSecrets(msg, raw string) string {
	for _, secret := range secretsOf(raw) {
		if len(secret) >= 3 {
			msg = strings.ReplaceAll(msg, secret, "***")
		}
	}
	if strings.Contains(msg, raw) {
		msg = strings.ReplaceAll(msg, raw, "<connection string>")
	}
	return msg
}

// secretsOf lists the passwords found in a URL or key=value string.
func secretsOf(raw string) []string {
	var out []string
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	if u, err := url.Parse(raw); err == nil {
		for k, vs := range u.Query() {
			if strings.EqualFold(k, "password") {
				out = append(out, vs...)
			}
		}
	}
	for _, f := range strings.Fields(raw) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.EqualFold(k, "password") {
			out = append(out, strings.Trim(v, "'"))
		}
	}
	return out
}

// Redacted returns err's message with the secrets of raw removed.
func Redacted(err error, raw string) string { return redactSecrets(err.Error(), raw) }
