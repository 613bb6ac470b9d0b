package subscriptions

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The listener reads by transaction, not by id.
//
// Ids come from a sequence when a row is inserted, but the row becomes
// visible when its transaction commits, which may be much later: an id
// that is missing now may still appear. So the position of a listener is
// a snapshot (pg_snapshot), not an id: every transaction that snapshot
// sees as finished has been read. Each read takes a new snapshot and
// delivers the rows of the transactions that finished between the two,
// that is the rows whose xid the old snapshot does not see as finished
// (xid in its in-progress list, or at or above its xmax). Nothing is
// skipped however long a transaction stays open, a rollback leaves
// nothing to wait for, and the position is a value that can be stored.
//
// Order: a transaction's rows are delivered together, in id order, which
// is the order it wrote them. Transactions are ordered by a key: for one
// that published through the SQL function, its commit stamp, a value of
// the id sequence taken by a deferred trigger as it commits (see
// bus_postgres_schema.go); for others (publishes from Go, one statement
// each), its last id. When two transactions write the same row, the
// second can only write it after the first committed, so its stamp,
// taken after that write, is above every value the first took: they are
// delivered in commit order wherever their events came in each. A
// transaction's rows are all in one read (they become visible at once),
// and a transaction that committed after another is never in an earlier
// read than it.
//
// The snapshot recorded and the rows read must agree. A read's first page
// is one prepared statement that returns both (a statement reads with its
// own snapshot, which pg_current_snapshot returns); most reads end there.
// When the page is full, the rest comes through a cursor, a page at a
// time, limited to the transactions the first page's snapshot saw as
// finished, so a transaction of any size is read in bounded memory.
//
// Exactly once across failures: rows are dispatched as they arrive, so a
// read can break after dispatching some of them. The position then says
// so (pgPosition.upto and the key of the last row dispatched), and the
// next read delivers the rest of that read before going on.

const (
	// pgPageSize is the number of rows fetched per round trip.
	pgPageSize = 1000
	// pgCursor names the listener's cursor.
	pgCursor = "fraiseql_read"
	// pgFirstPage names the prepared first page of a read.
	pgFirstPage = "fraiseql_first_page"
)

// pgPosition is what a listener has delivered: every transaction that
// pos sees as finished and, when upto is set, the rows of the transactions
// upto sees as finished (and pos does not) up to the key (last, id) in
// read order.
type pgPosition struct {
	pos      string // pg_snapshot text
	upto     string // pg_snapshot text of a read in progress, or ""
	last, id int64
}

// pgListener is the goroutine that reads the table and calls deliver.
type pgListener struct {
	bus     *PostgresBus
	conn    *pgx.Conn // nil while disconnected
	st      pgPosition
	deliver func(Event)
	// unsaved: st moved past what is stored for the InstanceID.
	unsaved bool

	lastPrune time.Time
	// backoff spaces reconnections; it is reset once a connection has
	// proved usable, so a connection that fails right after connecting
	// does not cause a tight loop.
	backoff backoff
}

// run is the listener goroutine. A panic (deliver recovers its own, so
// one here is a bug of the listener) is counted and the listener starts
// over on a new connection from its position, so no row is lost.
func (l *pgListener) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	defer l.saveOnExit()
	defer l.disconnect()
	if !l.waitResumed(ctx) {
		return
	}
	for !l.runUntilDone(ctx) {
		closeQuietly(l.conn)
		l.conn = nil
	}
}

// runUntilDone runs the listener loop until ctx ends (true) or it panics (false).
func (l *pgListener) runUntilDone(ctx context.Context) (done bool) {
	defer func() {
		if recover() != nil {
			l.bus.panics.Add(1)
			done = false
		}
	}()
	l.loop(ctx)
	return true
}

func (l *pgListener) loop(ctx context.Context) {
	b := l.bus
	for {
		if l.conn == nil {
			if !l.reconnect(ctx) {
				return
			}
		}
		err := l.drain(ctx)
		if err == nil {
			l.backoff.reset()
			l.maybePrune(ctx)
			wctx, cancel := context.WithTimeout(ctx, b.opts.PollInterval)
			_, err = l.conn.WaitForNotification(wctx)
			cancel()
			if err != nil && ctx.Err() == nil && !l.conn.IsClosed() && (pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded)) {
				err = nil // poll timeout
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			b.tableMissing(err)
			orNop(b.opts.Logger).Log(LogWarning, "bus", fmt.Sprintf("PostgreSQL bus listener connection lost to %s: %s; reconnecting",
				RedactConnString(b.connString), Redacted(err, b.connString)))
			// The connection is broken (terminated backend, restart,
			// network) or unusable: start over on a new one.
			closeQuietly(l.conn)
			l.conn = nil
		}
	}
}

// reconnect connects again with backoff until it succeeds (true) or ctx
// ends (false).
func (l *pgListener) reconnect(ctx context.Context) bool {
	for {
		t := time.NewTimer(l.backoff.next())
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, l.bus.opts.ConnectTimeout)
		conn, err := l.bus.connectListener(cctx)
		cancel()
		if err == nil {
			l.conn = conn
			l.bus.reconnects.Add(1)
			orNop(l.bus.opts.Logger).Log(LogInfo, "bus", "PostgreSQL bus listener connection restored to "+
				RedactConnString(l.bus.connString)+"; reading on from its position")
			return true
		}
		if ctx.Err() != nil {
			return false
		}
	}
}

// disconnect UNLISTENs and closes the connection, on the way out.
func (l *pgListener) disconnect() {
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if !l.conn.IsClosed() {
		l.conn.Exec(ctx, "UNLISTEN *")
	}
	l.conn.Close(ctx)
	l.conn = nil
}

// discardQueued drops the notifications already received: the read that
// follows sees every transaction committed before they were sent. Without
// this, a burst of N events costs N reads. Notifications that arrive
// during the read are kept, since their transactions may be too recent
// for it.
func (l *pgListener) discardQueued() {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		// With a done context, WaitForNotification only pops the queue.
		if n, _ := l.conn.WaitForNotification(done); n == nil {
			return
		}
	}
}

// pageContext bounds one round trip, so that a connection that went
// silent is noticed.
func (l *pgListener) pageContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.bus.opts.ConnectTimeout+30*time.Second)
}

// drain delivers the rows of every transaction that finished since the
// position. On error the connection must be dropped (it may be inside the
// read transaction); the position says what was delivered.
func (l *pgListener) drain(ctx context.Context) error {
	l.discardQueued()
	for {
		resuming := l.st.upto != ""
		var err error
		if resuming {
			err = l.read(ctx)
		} else {
			err = l.quickRead(ctx)
		}
		if err != nil {
			return err
		}
		if !resuming && l.st.upto == "" {
			return nil
		}
		// After the rest of a read: what committed since. After a full
		// first page: the rest of that read.
	}
}

// quickRead starts a new read and delivers its first page, in one
// statement (no transaction: see sqlFirstPage). A full page leaves the read open in the position (upto and the
// last key), for read to finish.
func (l *pgListener) quickRead(ctx context.Context) error {
	qctx, cancel := l.pageContext(ctx)
	rr := l.conn.PgConn().ExecPrepared(qctx, pgFirstPage, l.readArgs(), nil, []int16{pgBinary})
	n, err := l.dispatch(rr, true)
	if _, cerr := rr.Close(); err == nil {
		err = cerr
	}
	cancel()
	if err == nil && l.st.upto == "" {
		err = errors.New("the read returned no snapshot")
	}
	if err != nil || n == pgPageSize {
		return l.readFailed(err)
	}
	return l.complete(ctx)
}

// readArgs are the parameters of the read queries, as text.
func (l *pgListener) readArgs() [][]byte {
	var upto []byte
	if l.st.upto != "" {
		upto = []byte(l.st.upto)
	}
	return [][]byte{[]byte(l.st.pos), upto, strconv.AppendInt(nil, l.st.last, 10), strconv.AppendInt(nil, l.st.id, 10)}
}

// readFailed keeps the position of a read that delivered rows, and drops
// one that delivered none.
func (l *pgListener) readFailed(err error) error {
	if l.st.last == 0 && l.st.id == 0 {
		l.st.upto = ""
	}
	return err
}

// complete moves the position past a read whose rows were all delivered
// and, with an InstanceID, stores it if rows were delivered (otherwise the
// stored position leads to the same rows).
func (l *pgListener) complete(ctx context.Context) error {
	b := l.bus
	l.st = pgPosition{pos: l.st.upto}
	if !l.unsaved || b.opts.InstanceID == "" {
		return nil
	}
	qctx, cancel := l.pageContext(ctx)
	defer cancel()
	if _, err := l.conn.PgConn().ExecParams(qctx, b.sqlSavePos, savePosArgs(b.opts.InstanceID, l.st), pgSaveOIDs, nil, nil).Close(); err != nil {
		return err
	}
	l.unsaved = false
	return nil
}

// read delivers the rest of the read in progress (l.st.upto) through a
// cursor.
func (l *pgListener) read(ctx context.Context) error {
	var batch pgconn.Batch
	batch.ExecParams("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", nil, nil, nil, nil)
	batch.ExecParams("SELECT pg_current_snapshot()::text", nil, nil, nil, nil)
	batch.ExecParams(l.bus.sqlDeclare, l.readArgs(), pgReadOIDs, nil, nil)
	batch.ExecParams(l.bus.sqlFetch, nil, nil, nil, []int16{pgBinary})
	n, err := l.runFirst(ctx, &batch)
	// Further pages, until one is short.
	for err == nil && n == pgPageSize {
		qctx, cancel := l.pageContext(ctx)
		rr := l.conn.PgConn().ExecParams(qctx, l.bus.sqlFetch, nil, nil, nil, []int16{pgBinary})
		n, err = l.dispatch(rr, false)
		if _, cerr := rr.Close(); err == nil {
			err = cerr
		}
		cancel()
	}
	if err == nil {
		err = l.exec(ctx, "COMMIT")
	}
	if err != nil {
		return l.readFailed(err)
	}
	return l.complete(ctx)
}

// exec runs one statement without parameters on the listener's connection.
func (l *pgListener) exec(ctx context.Context, sql string) error {
	qctx, cancel := l.pageContext(ctx)
	defer cancel()
	_, err := l.conn.PgConn().ExecParams(qctx, sql, nil, nil, nil, nil).Close()
	return err
}

// runFirst sends batch (BEGIN, the snapshot, the query or cursor, a page,
// ...) and dispatches the page. A new read takes its snapshot as upto. It
// returns the number of rows of the page.
func (l *pgListener) runFirst(ctx context.Context, batch *pgconn.Batch) (int, error) {
	qctx, cancel := l.pageContext(ctx)
	defer cancel()
	mrr := l.conn.PgConn().ExecBatch(qctx, batch)
	var snap string
	var n int
	var err error
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		fields := rr.FieldDescriptions()
		switch {
		case len(fields) == 1: // the snapshot
			for rr.NextRow() {
				snap = string(rr.Values()[0])
			}
			if l.st.upto == "" { // a new read, up to this snapshot
				l.st.upto, l.st.last, l.st.id = snap, 0, 0
			}
		case len(fields) > 1: // the page
			n, err = l.dispatch(rr, false)
		}
		if _, cerr := rr.Close(); err == nil {
			err = cerr
		}
	}
	if cerr := mrr.Close(); err == nil {
		err = cerr
	}
	if err == nil && snap == "" {
		err = errors.New("the read returned no snapshot")
	}
	return n, err
}

// savePosArgs are the parameters of sqlSavePos, as text.
func savePosArgs(instanceID string, st pgPosition) [][]byte {
	var upto []byte
	if st.upto != "" {
		upto = []byte(st.upto)
	}
	return [][]byte{[]byte(instanceID), []byte(st.pos), upto,
		strconv.AppendInt(nil, st.last, 10), strconv.AppendInt(nil, st.id, 10)}
}

// saveOnExit stores the position of an InstanceID if it moved since it
// was last stored (Close during a read, or a read whose commit failed).
// The listener's connection is gone by then; the publishing pool is
// still open.
func (l *pgListener) saveOnExit() {
	b := l.bus
	if !l.unsaved || b.opts.InstanceID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.ConnectTimeout)
	defer cancel()
	args := savePosArgs(b.opts.InstanceID, l.st)
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return
	}
	defer conn.Release()
	rr := conn.Conn().PgConn().ExecParams(ctx, b.sqlSavePos, args, pgSaveOIDs, nil, nil)
	if _, err := rr.Close(); err == nil {
		l.unsaved = false
	}
}

// Wire-protocol codes: the type of the parameters the listener sends (as
// text), and the binary format it reads rows in.
const (
	pgTextOID = 25
	pgBinary  = 1
)

// The types of the parameters of sqlSavePos and of the read queries: all
// sent as text.
var (
	pgSaveOIDs = []uint32{pgTextOID, pgTextOID, pgTextOID, pgTextOID, pgTextOID}
	pgReadOIDs = []uint32{pgTextOID, pgTextOID, pgTextOID, pgTextOID}
)

// dispatch delivers the rows of one page (id, channel, event_type,
// payload, created_at, last in binary format) as they arrive, moving the
// position past each, and returns how many there were. With snapshot,
// each row starts with the read's snapshot, which a new read takes as
// upto, and a row whose event is NULL stands for an empty page.
func (l *pgListener) dispatch(rr *pgconn.ResultReader, snapshot bool) (int, error) {
	b := l.bus
	n := 0
	for rr.NextRow() {
		v := rr.Values()
		if snapshot {
			if len(v) != 7 {
				return n, fmt.Errorf("unexpected row shape from %s", b.tableIdent)
			}
			if l.st.upto == "" {
				l.st.upto, l.st.last, l.st.id = string(v[0]), 0, 0
			}
			if v = v[1:]; v[0] == nil {
				continue
			}
		}
		if len(v) != 6 || len(v[0]) != 8 || len(v[4]) != 8 || len(v[5]) != 8 {
			return n, fmt.Errorf("unexpected row shape from %s", b.tableIdent)
		}
		if b.panicNext.CompareAndSwap(true, false) {
			panic("test panic in the PostgreSQL listener") // armed by tests only
		}
		n++
		// The values point into the connection's buffer: copy.
		ev := Event{Type: string(v[2]), Channel: string(v[1]), Data: append([]byte(nil), v[3]...)}
		if !b.gate.deliver(l.deliver, ev) {
			return n, errDeliveryStopped // the position stays before this row
		}
		l.st.id = int64(binary.BigEndian.Uint64(v[0]))
		l.st.last = int64(binary.BigEndian.Uint64(v[5]))
		l.unsaved = true
		// created_at is the server's clock: clock skew between the
		// server and this host shows in the lag.
		if us := int64(binary.BigEndian.Uint64(v[4])); us != math.MaxInt64 && us != math.MinInt64 {
			b.receivedAt(pgEpoch.Add(time.Duration(us) * time.Microsecond))
		} else {
			b.received.Add(1)
		}
	}
	return n, nil
}

// pgEpoch is the zero of PostgreSQL's binary timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// maybePrune deletes rows older than Retention, at most every pruneEvery,
// among those this listener has read (a row committed after its last
// read is not pruned before it reads it, however old created_at says it
// is). Errors are ignored: pruning is retried later, and a broken
// connection is noticed by the next read.
func (l *pgListener) maybePrune(ctx context.Context) {
	b := l.bus
	if !l.lastPrune.IsZero() && time.Since(l.lastPrune) < b.pruneEvery {
		return
	}
	l.lastPrune = time.Now()
	pctx, cancel := l.pageContext(ctx)
	defer cancel()
	l.conn.Exec(pctx, b.sqlPrune, b.opts.Retention.Microseconds(), l.st.pos)
}
