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

// Bus order: commit stamps, delivered up to a horizon.
//
// Ids come from a sequence when a row is inserted, but the row becomes
// visible when its transaction commits, which may be much later: neither
// ids nor read timing give one order. So every transaction that inserts
// into the table gets a commit stamp, a value of the id sequence taken by
// a deferred trigger as it commits (see bus_postgres_schema.go), or at the
// end of the statement that is the whole transaction for the bus's own
// publishes, and the bus order is (stamp, id): a transaction's rows
// together, in the order it wrote them, transactions in stamp order. When
// two transactions write the same row, the second can only write it after
// the first committed, so its stamp is the greater: they are delivered in
// commit order (the bus's own transactions only insert new rows).
//
// A stamp is taken just before its transaction commits, so a smaller
// stamp may still become visible after a greater one. A read therefore
// delivers only up to a horizon below which nothing can still appear:
// whoever stamps holds a shared advisory lock from before the stamp to
// the end of its transaction, and the listener takes that lock
// exclusively, reads the sequence's last value and lets go (in one
// statement, see horizonSQL). Every stamp up to that value
// belongs to a transaction that was over when the lock was granted, and
// every later stamp is greater. A read's rows are those with a stamp up
// to the horizon after the position, so every listener, live, late or
// resumed, delivers the same sequence, whatever its read timing.
//
// The position of a listener is the (stamp, id) of the last row it
// delivered: two integers that can be stored, and an identity of each
// event that a consumer can use to recognise a repeat. Reads go a page at
// a time, each page one statement (keyset pagination), so a transaction
// of any size is read in bounded memory, and a read can break after any
// row without losing its place.

const (
	// pgPageSize is the number of rows fetched per round trip.
	pgPageSize = 1000
	// pgPage names the prepared page query, pgHorizon the horizon's.
	pgPage    = "fraiseql_page"
	pgHorizon = "fraiseql_horizon"
	// pgMaxID stands for "after every row of the transaction".
	pgMaxID = math.MaxInt64
	// pgAnonymousSaveEvery spaces the stored positions of a listener
	// without an InstanceID.
	pgAnonymousSaveEvery = time.Second
)

// pgPosition is what a listener has delivered: every row up to (stamp, id)
// in bus order.
type pgPosition struct {
	stamp, id int64
}

// pgListener is the goroutine that reads the table and calls deliver.
type pgListener struct {
	bus     *PostgresBus
	conn    *pgx.Conn // nil while disconnected
	st      pgPosition
	deliver func(Event)
	// unsaved: st moved past what is stored in the positions table.
	unsaved bool
	savedAt time.Time // when the position was last stored

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
			b.reads.Add(1)
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
	warned := false
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
		if errors.Is(err, ErrInstanceInUse) && !warned {
			// Another executor started with this InstanceID while this
			// one was disconnected: this one waits for it to let go.
			warned = true
			orNop(l.bus.opts.Logger).Log(LogWarning, "bus", "PostgreSQL bus listener cannot reconnect: "+err.Error())
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
		// The id is free once Close returns, not when the server
		// process ends.
		l.conn.Exec(ctx, "SELECT pg_advisory_unlock_all()")
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

// drain delivers the rows committed up to a new horizon after the
// position, a page at a time, storing the position after each page. On
// error the connection must be dropped (it may hold the horizon's lock);
// the position says what was delivered.
func (l *pgListener) drain(ctx context.Context) error {
	l.discardQueued()
	n, err := l.page(ctx, true)
	for err == nil && n == pgPageSize {
		n, err = l.page(ctx, false)
	}
	if err == nil {
		err = l.savePosition(ctx)
	}
	return err
}

// horizonSQL is the statement that sets the session's horizon: take the
// order lock, read the last value of the id sequence (seq, its oid; nil
// for none), let go. One statement, so that the lock is held while it
// runs only; its steps are ordered by what each needs: the lock is the
// condition that yields the sequence read, and the unlock is in the
// outer query, computed from the subquery's row.
func (b *PostgresBus) horizonSQL(seq *uint32) string {
	seqSQL := "NULL"
	if seq != nil {
		seqSQL = strconv.FormatUint(uint64(*seq), 10)
	}
	return `SELECT set_config('fraiseql.horizon', h.last::text, false) AS horizon, pg_advisory_unlock(` + b.orderKey + `)
FROM (SELECT coalesce(pg_sequence_last_value(CASE WHEN pg_advisory_lock(` + b.orderKey + `) IS NULL THEN NULL
	ELSE ` + seqSQL + `::regclass END), 0) AS last OFFSET 0) h`
}

// addHorizon adds to batch the statement that sets the session's horizon
// (see the top of this file), prepared on the connection. The lock is a
// session lock, held within that statement; a failure drops the
// connection, and the lock with it. The page that follows is another
// statement: its snapshot is taken after the horizon.
func (b *PostgresBus) addHorizon(batch *pgconn.Batch) {
	batch.ExecPrepared(pgHorizon, nil, nil, nil)
}

// page sends the page query, after the horizon's statement when
// horizon is set, and delivers the page. It returns the number of rows of
// the page.
func (l *pgListener) page(ctx context.Context, horizon bool) (int, error) {
	if l.bus.readFault != nil {
		if err := l.bus.readFault(); err != nil {
			return 0, err
		}
	}
	var batch pgconn.Batch
	if horizon {
		l.bus.addHorizon(&batch)
	}
	batch.ExecPrepared(pgPage, l.pageArgs(), nil, []int16{pgBinary})
	qctx, cancel := l.pageContext(ctx)
	defer cancel()
	mrr := l.conn.PgConn().ExecBatch(qctx, &batch)
	var n int
	var err error
	for i := 0; mrr.NextResult(); i++ {
		rr := mrr.ResultReader()
		if !horizon || i == 1 { // the page; the horizon's result is ignored
			n, err = l.dispatch(rr)
		}
		if _, cerr := rr.Close(); err == nil {
			err = cerr
		}
	}
	if cerr := mrr.Close(); err == nil {
		err = cerr
	}
	if err == nil && n == pgPageSize {
		// Between pages, the position is stored: a crash repeats at most
		// the page that was being delivered.
		err = l.savePosition(ctx)
	}
	return n, err
}

// pageArgs are the parameters of the page query, as text.
func (l *pgListener) pageArgs() [][]byte {
	return [][]byte{strconv.AppendInt(nil, l.st.stamp, 10), strconv.AppendInt(nil, l.st.id, 10)}
}

// savePosition stores the position if it moved since it was last stored:
// at once for an InstanceID, at most every pgAnonymousSaveEvery for an
// anonymous listener (its row only holds the pruning back, and an older
// position holds it back more).
func (l *pgListener) savePosition(ctx context.Context) error {
	b := l.bus
	if !l.unsaved || (b.anonymous && time.Since(l.savedAt) < pgAnonymousSaveEvery) {
		return nil
	}
	qctx, cancel := l.pageContext(ctx)
	defer cancel()
	if _, err := l.conn.PgConn().ExecParams(qctx, b.sqlSavePos, savePosArgs(b.listenerID, l.st), pgSaveOIDs, nil, nil).Close(); err != nil {
		return err
	}
	l.unsaved = false
	l.savedAt = time.Now()
	return nil
}

// savePosArgs are the parameters of sqlSavePos, as text.
func savePosArgs(instanceID string, st pgPosition) [][]byte {
	return [][]byte{[]byte(instanceID), strconv.AppendInt(nil, st.stamp, 10), strconv.AppendInt(nil, st.id, 10)}
}

// saveOnExit stores the position of an InstanceID if it moved since it
// was last stored (Close during a read, or a failed save). The
// listener's connection is gone by then; the publishing pool is still
// open.
func (l *pgListener) saveOnExit() {
	b := l.bus
	if !l.unsaved && !b.anonymous {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.ConnectTimeout)
	defer cancel()
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return
	}
	defer conn.Release()
	if b.anonymous {
		// Best effort (it needs DELETE on the positions table): a row left
		// behind is removed by the next pruning that may.
		_, _ = conn.Conn().PgConn().ExecParams(ctx, b.sqlForget, [][]byte{[]byte(b.listenerID)}, []uint32{pgTextOID}, nil, nil).Close()
		return
	}
	rr := conn.Conn().PgConn().ExecParams(ctx, b.sqlSavePos, savePosArgs(b.listenerID, l.st), pgSaveOIDs, nil, nil)
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

// The types of the parameters of sqlSavePos: all sent as text.
var (
	pgSaveOIDs = []uint32{pgTextOID, pgTextOID, pgTextOID}
	pgPageOIDs = []uint32{pgTextOID, pgTextOID}
)

// dispatch delivers the rows of one page (id, channel, event_type,
// payload, created_at, stamp in binary format) as they arrive, moving the
// position past each, and returns how many there were.
func (l *pgListener) dispatch(rr *pgconn.ResultReader) (int, error) {
	b := l.bus
	n := 0
	for rr.NextRow() {
		v := rr.Values()
		if len(v) != 6 || len(v[0]) != 8 || len(v[4]) != 8 || len(v[5]) != 8 {
			return n, fmt.Errorf("unexpected row shape from %s", b.tableIdent)
		}
		if b.panicNext.CompareAndSwap(true, false) {
			panic("test panic in the PostgreSQL listener") // armed by tests only
		}
		n++
		// The values point into the connection's buffer: copy.
		ev := Event{Type: string(v[2]), Channel: string(v[1]), Data: append([]byte(nil), v[3]...)}
		ev.pos = b.rowPosition(int64(binary.BigEndian.Uint64(v[5])), int64(binary.BigEndian.Uint64(v[0])))
		// Counted before delivery, so that Stats agrees with what
		// subscribers got once they got it; uncounted if refused.
		// created_at is the server's clock: clock skew between the
		// server and this host shows in the lag.
		if us := int64(binary.BigEndian.Uint64(v[4])); us != math.MaxInt64 && us != math.MinInt64 {
			b.receivedAt(pgEpoch.Add(time.Duration(us) * time.Microsecond))
		} else {
			b.received.Add(1)
		}
		if !b.gate.deliver(l.deliver, ev) {
			b.received.Add(^uint64(0))
			return n, errDeliveryStopped // the position stays before this row
		}
		l.st.id = int64(binary.BigEndian.Uint64(v[0]))
		l.st.stamp = int64(binary.BigEndian.Uint64(v[5]))
		l.unsaved = true
	}
	return n, nil
}

// pgEpoch is the zero of PostgreSQL's binary timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// maybePrune deletes, at most every pruneEvery, the rows of transactions
// that committed longer than Retention ago and that every live listener,
// this one included, has delivered (see sqlPrune). It logs what it pruned
// that a stopped InstanceID had not read. Errors are ignored: pruning is
// retried later, and a broken connection is noticed by the next read.
func (l *pgListener) maybePrune(ctx context.Context) {
	b := l.bus
	if !l.lastPrune.IsZero() && time.Since(l.lastPrune) < b.pruneEvery {
		return
	}
	l.lastPrune = time.Now()
	pctx, cancel := l.pageContext(ctx)
	defer cancel()
	var pruned int64
	var down string
	if err := l.conn.QueryRow(pctx, b.sqlPrune, b.opts.Retention.Microseconds(), l.st.stamp).Scan(&pruned, &down); err == nil && down != "" {
		orNop(b.opts.Logger).Log(LogWarning, "bus", fmt.Sprintf(
			"PostgreSQL bus: pruned %d events of %s older than the retention of %s, some of them not yet read by the stopped executors with instance_id %s",
			pruned, b.tableIdent, b.opts.Retention, down))
	}
	_, _ = l.conn.Exec(pctx, b.sqlForgetGone)
	b.prunes.Add(1)
}
