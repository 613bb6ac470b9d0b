package subscriptions

import (
	"errors"
	"testing"
)

// Once closed, a readySignal neither records ids nor reads its pipe, whose
// numbers may already name other files: take fails with ErrClosed even when
// it was fetched before the executor closed, and a second close does not
// close the numbers again.
func TestReadySignalAfterClose(t *testing.T) {
	rs, err := newReadySignal()
	if err != nil {
		t.Fatal(err)
	}
	rs.signal("a")
	rs.close()
	if ids, err := rs.take(); ids != nil || !errors.Is(err, ErrClosed) {
		t.Fatalf("take after close = %q, %v; want nil, ErrClosed", ids, err)
	}
	rs.signal("b")
	if len(rs.ids) != 1 {
		t.Fatalf("ids after a signal on a closed pipe: %q", rs.ids)
	}
	rs.close()
}
