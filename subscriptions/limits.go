package subscriptions

// Limits bound what one subscription document or one event may cost.
// A zero field means "use the default".
type Limits struct {
	// MaxQueryBytes bounds the subscription document's length. Default 100 KiB.
	MaxQueryBytes int
	// MaxFields bounds the number of fields selected, counted after
	// fragments are expanded. Default 500.
	MaxFields int
	// MaxDepth bounds the nesting of selection sets. Default 15.
	MaxDepth int
	// MaxPayloadBytes bounds an event's JSON data. Default 1 MiB.
	MaxPayloadBytes int
}

// Default limits.
const (
	DefaultMaxQueryBytes   = 100 * 1024
	DefaultMaxFields       = 500
	DefaultMaxDepth        = 15
	DefaultMaxPayloadBytes = 1024 * 1024
)

// withDefaults returns l with zero fields replaced by the defaults.
func (l Limits) withDefaults() Limits {
	if l.MaxQueryBytes <= 0 {
		l.MaxQueryBytes = DefaultMaxQueryBytes
	}
	if l.MaxFields <= 0 {
		l.MaxFields = DefaultMaxFields
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxPayloadBytes <= 0 {
		l.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	return l
}
