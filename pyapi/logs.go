package pyapi

import (
	"context"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/fraiseql/fraiseql-subscriptions/subscriptions"
)

// goLogs keeps the engine's log records until the Python layer's log
// thread takes them (WaitLogs) and hands them to Python's logging. Every
// bus configuration made here logs into it.
var goLogs = subscriptions.NewLogSink(subscriptions.DefaultLogSinkSize)

// logLine is one record as WaitLogs returns it.
type logLine struct {
	Time    float64 `json:"t"` // Unix time in seconds
	Level   int     `json:"l"` // Python logging level
	Name    string  `json:"n"` // logger name under "fraiseql.subscriptions"
	Msg     string  `json:"m"`
	Dropped uint64  `json:"dropped,omitempty"`
}

// WaitLogs waits up to timeoutSeconds for log records and returns them as
// JSON objects, one a line ("" when none came). When the buffer overflowed
// since the last call, a first line says how many records were dropped.
// gopy releases the GIL for the wait.
func WaitLogs(timeoutSeconds float64) (records string, err error) {
	defer recoverTo(&err)
	if !(timeoutSeconds >= 0) || timeoutSeconds > 3600 {
		return "", pyError(subscriptions.ValueError("timeout must be a number of seconds between 0 and 3600"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutSeconds*float64(time.Second)))
	defer cancel()
	recs, dropped := goLogs.Wait(ctx)
	var b strings.Builder
	enc := json.NewEncoder(&b)
	if dropped > 0 {
		_ = enc.Encode(logLine{Time: float64(time.Now().UnixMicro()) / 1e6, Level: int(subscriptions.LogWarning), Name: "bus", Dropped: dropped})
	}
	for _, r := range recs {
		_ = enc.Encode(logLine{Time: float64(r.Time.UnixMicro()) / 1e6, Level: int(r.Level), Name: r.Name, Msg: r.Msg})
	}
	return b.String(), nil
}

// LogForTest records a log line as the engine would, for the tests of the
// Python log thread.
func LogForTest(level int, name, msg string) (ok bool, err error) {
	defer recoverTo(&err)
	goLogs.Log(subscriptions.LogLevel(level), name, msg)
	return done(nil)
}
