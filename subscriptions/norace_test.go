//go:build !race

package subscriptions

// raceEnabled: the race detector is on (see race_test.go).
const raceEnabled = false
