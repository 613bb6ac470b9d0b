package subscriptions

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A position names one event of a bus: the bus's epoch and the event's
// offset in the bus's order. Clients see it as an opaque string,
// "<epoch>:<offset>"; the epoch starts with a letter naming the kind of
// bus ("m" memory, "r" Redis, "p" PostgreSQL), so a position from another kind of bus, from
// another stream, or from an earlier life of this one (a restarted memory
// bus, a recreated Redis stream) never matches the epoch in force and is
// refused instead of being read as an offset of today's history. The
// offset is "hi-lo" on Redis (the entry id) and PostgreSQL (commit stamp
// and id), a number on the memory bus.
type position struct {
	epoch  string
	hi, lo uint64 // the offset: Redis "ms-seq", PostgreSQL "stamp-id", memory 0 and a sequence
}

// isZero tells whether p is unset (an event of a bus without positions).
func (p position) isZero() bool { return p.epoch == "" }

// after tells whether p comes after q in bus order (same epoch assumed).
func (p position) after(q position) bool {
	return p.hi > q.hi || (p.hi == q.hi && p.lo > q.lo)
}

// String is the form clients see and send back.
func (p position) String() string {
	return string(p.appendTo(make([]byte, 0, len(p.epoch)+24)))
}

// appendTo appends p's string form to dst.
func (p position) appendTo(dst []byte) []byte {
	dst = append(dst, p.epoch...)
	dst = append(dst, ':')
	if p.epoch != "" && p.epoch[0] != 'm' {
		dst = strconv.AppendUint(dst, p.hi, 10)
		dst = append(dst, '-')
	}
	return strconv.AppendUint(dst, p.lo, 10)
}

// maxPositionBytes bounds what parsePosition reads.
const maxPositionBytes = 128

// parsePosition reads a position sent by a client for a bus whose epoch
// is epoch. Anything else than a position of that epoch is refused with
// ErrPositionInvalid.
func parsePosition(s, epoch string) (position, error) {
	if len(s) > maxPositionBytes {
		return position{}, positionError(ErrPositionInvalid, "", "the position is not one of this bus (over %d bytes)", maxPositionBytes)
	}
	ep, off, ok := strings.Cut(s, ":")
	if !ok || ep == "" {
		return position{}, positionError(ErrPositionInvalid, s, "the position %q is not one of this bus (malformed)", s)
	}
	if ep != epoch {
		return position{}, positionError(ErrPositionInvalid, s,
			"the position %q is not one of this bus: it belongs to another bus or to an earlier epoch of this one (restarted, or its stream recreated)", s)
	}
	p := position{epoch: ep}
	var err error
	if ep[0] != 'm' {
		hi, lo, found := strings.Cut(off, "-")
		if !found {
			return position{}, positionError(ErrPositionInvalid, s, "the position %q is not one of this bus (malformed)", s)
		}
		if p.hi, err = strconv.ParseUint(hi, 10, 64); err == nil {
			p.lo, err = strconv.ParseUint(lo, 10, 64)
		}
	} else {
		p.lo, err = strconv.ParseUint(off, 10, 64)
	}
	if err != nil {
		return position{}, positionError(ErrPositionInvalid, s, "the position %q is not one of this bus (malformed)", s)
	}
	return p, nil
}

// newEpoch returns a random epoch for a bus of the kind letter.
func newEpoch(kind byte) string {
	var raw [8]byte
	_, _ = rand.Read(raw[:]) // never fails (crypto/rand panics instead)
	return string(kind) + hex.EncodeToString(raw[:])
}

// ErrPositionInvalid is matched (errors.Is) by the error about a position
// that is not one of the bus: malformed, from another bus, or from an
// earlier epoch of it. Its client-facing code is "POSITION_INVALID".
var ErrPositionInvalid = errors.New("POSITION_INVALID")

// ErrPositionExpired is matched (errors.Is) by the error about a position
// of this bus whose following events have left its history (a trimmed
// stream, the memory bus's bounded history). Its code is "POSITION_EXPIRED".
var ErrPositionExpired = errors.New("POSITION_EXPIRED")

// PositionError is the refusal of a position; Code is "POSITION_INVALID" or
// "POSITION_EXPIRED", and Position the position refused. A client that
// gets one refetches and subscribes again without a position.
type PositionError struct {
	Code     string
	Position string
	msg      string
	sentinel error
}

func (e *PositionError) Error() string { return e.msg }

// Unwrap returns ErrPositionInvalid or ErrPositionExpired.
func (e *PositionError) Unwrap() error { return e.sentinel }

func positionError(sentinel error, pos, format string, args ...any) *PositionError {
	return &PositionError{Code: sentinel.Error(), Position: pos, msg: fmt.Sprintf(format, args...), sentinel: sentinel}
}
