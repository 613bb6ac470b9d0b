//go:build race

package subscriptions

// raceEnabled: the race detector is on. Its sync.Pool drops a quarter of
// what is put back, at random, so tests of pooled memory skip.
const raceEnabled = true
