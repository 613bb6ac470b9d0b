package pyapi

import "testing"

func TestPausedOption(t *testing.T) {
	_, err := NewSubscriptionExecutor(nil, `{"paused":true}`)
	if err == nil || err.Error() != "ValueError: paused needs a Redis or PostgreSQL bus" {
		t.Fatalf("paused on the memory bus: %v", err)
	}
	x, err := NewSubscriptionExecutor(nil, `{"paused":false}`)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := x.Resume(); !ok || err != nil {
		t.Fatalf("Resume when not paused: %v %v", ok, err)
	}
	if _, err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Resume(); err == nil || err.Error() != "executor is closed" {
		t.Fatalf("Resume after Close: %v", err)
	}
}
