package pyapi

import (
	"math"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/fraiseql/fraiseql-subscriptions/subscriptions"
)

// EventBusConfig mirrors PyEventBusConfig.
type EventBusConfig struct {
	cfg subscriptions.BusConfig
}

// NewMemoryBusConfig returns the in-process bus configuration.
func NewMemoryBusConfig() *EventBusConfig {
	return &EventBusConfig{cfg: subscriptions.MemoryBusConfig()}
}

// NewRedisBusConfig validates url and consumerGroup.
func NewRedisBusConfig(url, consumerGroup string) (c *EventBusConfig, err error) {
	defer recoverTo(&err)
	cfg, err := subscriptions.RedisBusConfig(url, consumerGroup)
	if err != nil {
		return nil, pyError(err)
	}
	cfg.Logger = goLogs
	return &EventBusConfig{cfg: cfg}, nil
}

// NewPostgresBusConfig validates connString.
func NewPostgresBusConfig(connString string) (c *EventBusConfig, err error) {
	defer recoverTo(&err)
	cfg, err := subscriptions.PostgresBusConfig(connString)
	if err != nil {
		return nil, pyError(err)
	}
	cfg.Logger = goLogs
	return &EventBusConfig{cfg: cfg}, nil
}

// BusType is "memory", "redis" or "postgresql".
func (c *EventBusConfig) BusType() (kind string, err error) {
	defer recoverTo(&err)
	return c.cfg.Kind, nil
}

// Repr describes the configuration without secrets.
func (c *EventBusConfig) Repr() (repr string, err error) {
	defer recoverTo(&err)
	return c.cfg.String(), nil
}

// busOptions are the optional settings of a bus, as JSON from Python.
type busOptions struct {
	InstanceID       *string     `json:"instance_id"`
	Stream           *string     `json:"stream"`
	MaxLen           json.Number `json:"max_len"`
	GroupIdleSeconds *float64    `json:"group_idle_timeout"`
	ConnectSeconds   *float64    `json:"connect_timeout"`
	Table            *string     `json:"table"`
	NotifyChannel    *string     `json:"notify_channel"`
	RetentionSeconds *float64    `json:"retention"`
	PollSeconds      *float64    `json:"poll_interval"`
	CreateSchema     *bool       `json:"create_schema"`
}

// SetOptions applies optional settings given as a JSON object; unknown
// keys are an error.
func (c *EventBusConfig) SetOptions(optionsJSON string) (ok bool, err error) {
	defer recoverTo(&err)
	var o busOptions
	dec := json.NewDecoder(strings.NewReader(optionsJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return done(pyError(subscriptions.ValueError("invalid bus option: %v", err)))
	}
	r, p := &c.cfg.Redis, &c.cfg.Postgres
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	dur := func(dst *time.Duration, v *float64, name string) error {
		if v == nil {
			return nil
		}
		d, err := secondsOption(name, *v)
		*dst = d
		return err
	}
	set(&r.InstanceID, o.InstanceID)
	set(&r.Stream, o.Stream)
	maxLen, err := intOption("max_len", o.MaxLen, math.MaxInt64)
	if err != nil {
		return done(pyError(err))
	}
	r.MaxLen = maxLen
	set(&p.InstanceID, o.InstanceID)
	set(&p.Table, o.Table)
	set(&p.NotifyChannel, o.NotifyChannel)
	if o.CreateSchema != nil {
		p.VerifySchema = !*o.CreateSchema
	}
	for _, d := range []struct {
		dst  *time.Duration
		v    *float64
		name string
	}{
		{&r.GroupIdleTimeout, o.GroupIdleSeconds, "group_idle_timeout"},
		{&r.DialTimeout, o.ConnectSeconds, "connect_timeout"},
		{&p.ConnectTimeout, o.ConnectSeconds, "connect_timeout"},
		{&p.Retention, o.RetentionSeconds, "retention"},
		{&p.PollInterval, o.PollSeconds, "poll_interval"},
	} {
		if err := dur(d.dst, d.v, d.name); err != nil {
			return done(pyError(err))
		}
	}
	return done(nil)
}
