package subscriptions

import (
	"context"
	"sync"
	"time"
)

// LogLevel is a record's severity, numbered like Python's logging levels so
// that the Python layer can pass it on unchanged.
type LogLevel int

// Log levels.
const (
	LogDebug   LogLevel = 10
	LogInfo    LogLevel = 20
	LogWarning LogLevel = 30
	LogError   LogLevel = 40
)

// Logger receives what the engine has to say outside of errors: a bus that
// lost or regained its connection, for example. Messages never contain
// secrets. Implementations must not block.
type Logger interface {
	// Log records msg; name is the component ("bus"), which the Python
	// layer appends to the logger name "fraiseql.subscriptions.".
	Log(level LogLevel, name, msg string)
}

// nopLogger is the Logger of options that set none.
type nopLogger struct{}

func (nopLogger) Log(LogLevel, string, string) {}

// orNop returns l, or a Logger that discards everything when l is nil.
func orNop(l Logger) Logger {
	if l == nil {
		return nopLogger{}
	}
	return l
}

// LogRecord is one record kept by a LogSink.
type LogRecord struct {
	Time  time.Time
	Level LogLevel
	Name  string
	Msg   string
}

// DefaultLogSinkSize bounds the records a LogSink keeps before its reader
// takes them.
const DefaultLogSinkSize = 1024

// LogSink is a Logger that keeps records in a bounded buffer until a
// reader takes them with Wait. When the buffer is full the oldest record is
// dropped and counted, so that logging never blocks the engine, nor grows
// without bound when nobody reads.
type LogSink struct {
	mu      sync.Mutex
	size    int
	recs    []LogRecord
	dropped uint64
	wake    chan struct{} // closed when a record arrives; nil when nobody waits
}

// NewLogSink returns a sink that keeps at most size records
// (DefaultLogSinkSize when size <= 0).
func NewLogSink(size int) *LogSink {
	if size <= 0 {
		size = DefaultLogSinkSize
	}
	return &LogSink{size: size}
}

// Log implements Logger.
func (s *LogSink) Log(level LogLevel, name, msg string) {
	s.mu.Lock()
	if len(s.recs) >= s.size {
		copy(s.recs, s.recs[1:])
		s.recs = s.recs[:len(s.recs)-1]
		s.dropped++
	}
	s.recs = append(s.recs, LogRecord{Time: time.Now(), Level: level, Name: name, Msg: msg})
	wake := s.wake
	s.wake = nil
	s.mu.Unlock()
	if wake != nil {
		close(wake)
	}
}

// Wait returns the records kept so far, waiting until there is at least
// one or ctx ends, and how many were dropped since the last call.
func (s *LogSink) Wait(ctx context.Context) ([]LogRecord, uint64) {
	for {
		s.mu.Lock()
		if len(s.recs) > 0 || s.dropped > 0 {
			recs, dropped := s.recs, s.dropped
			s.recs, s.dropped = nil, 0
			s.mu.Unlock()
			return recs, dropped
		}
		if s.wake == nil {
			s.wake = make(chan struct{})
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, 0
		}
	}
}
