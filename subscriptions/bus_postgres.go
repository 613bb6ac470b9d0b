package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The PostgreSQL bus.
//
// NOTIFY alone is not a reliable bus: a notification sent while a listener
// is reconnecting is lost, and payloads are capped at 8000 bytes. So a table
// is the log of events and NOTIFY is only a wake-up:
//
//   - Publish inserts the event and notifies, in one statement (one round
//     trip, one transaction): the notification is sent when the row commits.
//   - The listener of each executor holds a dedicated connection that runs
//     LISTEN. It remembers the id of the last row it dispatched (its
//     position) and, on every notification and at least every PollInterval,
//     reads the rows after its position in id order and dispatches them.
//   - After a broken connection it reconnects with backoff and reads on from
//     its position, so nothing published meanwhile is lost and nothing is
//     delivered twice.
//   - Rows older than Retention are deleted, at most once per minute, by
//     whichever listener gets there (deleting twice is harmless).

const (
	pgDefaultTable        = "fraiseql_events"
	pgDefaultChannel      = "fraiseql_events"
	pgDefaultRetention    = time.Hour
	pgDefaultPollInterval = time.Second
	pgDefaultTimeout      = 5 * time.Second

	// pgBatchSize bounds the rows read by one query of the listener.
	pgBatchSize = 1000
	// pgGapGrace is how long the listener waits for a missing id to appear
	// before it moves past it (see pgListener.dispatch).
	pgGapGrace = 500 * time.Millisecond
	// pgPruneEvery is the minimum time between two prunings by a listener.
	pgPruneEvery = time.Minute
	// pgMaxIdentifier is PostgreSQL's identifier length limit (NAMEDATALEN-1).
	pgMaxIdentifier = 63
	// pgLockClass is the first key of the advisory lock that serialises the
	// creation of the table by several executors starting at once.
	pgLockClass = 0x46514c45 // "FQLE"
)

// PostgresBus is the Bus built on a PostgreSQL table and LISTEN/NOTIFY.
type PostgresBus struct {
	opts       PostgresOptions
	connString string // kept to redact its secrets from error messages
	listenCfg  *pgx.ConnConfig
	pool       *pgxpool.Pool

	// SQL built once from the quoted identifiers.
	tableIdent string // the quoted table name
	sqlCreate  string
	sqlPublish string
	sqlMax     string
	sqlRead    string
	sqlPrune   string
	sqlListen  string

	// Tunables, constants outside tests.
	gapGrace   time.Duration
	pruneEvery time.Duration

	tableReady atomic.Bool // the table is known to exist

	published  atomic.Uint64
	received   atomic.Uint64
	reconnects atomic.Uint64
	panics     atomic.Uint64 // recovered in the listener goroutine
	lagBits    atomic.Uint64 // math.Float64bits of the last lag
	// panicNext makes the listener panic before its next row (tests).
	panicNext atomic.Bool
	listenPID atomic.Uint32 // backend pid of the listener connection

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// ListenerApplicationName is the application_name of the listener's
// connection, unless the connection string sets one.
const ListenerApplicationName = "fraiseql-listener"

// NewPostgresBus returns a PostgreSQL bus. It validates opts but does not
// connect: Start connects the listener, Publish connects a pool on first use.
func NewPostgresBus(ctx context.Context, opts PostgresOptions) (Bus, error) {
	b, err := newPostgresBus(opts)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func newPostgresBus(opts PostgresOptions) (*PostgresBus, error) {
	if opts.Table == "" {
		opts.Table = pgDefaultTable
	}
	if opts.NotifyChannel == "" {
		opts.NotifyChannel = pgDefaultChannel
	}
	if opts.Retention <= 0 {
		opts.Retention = pgDefaultRetention
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = pgDefaultPollInterval
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = pgDefaultTimeout
	}
	if len(opts.Table) > pgMaxIdentifier {
		return nil, valueErrorf("PostgreSQL table name %q is longer than %d bytes", opts.Table, pgMaxIdentifier)
	}
	if len(opts.NotifyChannel) > pgMaxIdentifier {
		return nil, valueErrorf("PostgreSQL notify channel %q is longer than %d bytes", opts.NotifyChannel, pgMaxIdentifier)
	}

	poolCfg, err := pgxpool.ParseConfig(opts.ConnString)
	if err != nil {
		return nil, valueErrorf("invalid PostgreSQL connection string %s: %s",
			RedactConnString(opts.ConnString), Redacted(err, opts.ConnString))
	}
	poolCfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	listenCfg := poolCfg.ConnConfig.Copy()
	if _, set := listenCfg.RuntimeParams["application_name"]; !set {
		// Lets operators tell the listener from the publishers in pg_stat_activity.
		listenCfg.RuntimeParams["application_name"] = ListenerApplicationName
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), poolCfg) // does not connect
	if err != nil {
		return nil, valueErrorf("invalid PostgreSQL configuration: %s", Redacted(err, opts.ConnString))
	}

	table := pgx.Identifier{opts.Table}.Sanitize()
	index := pgx.Identifier{truncateIdent(opts.Table, pgMaxIdentifier-len("_created_at_idx")) + "_created_at_idx"}.Sanitize()
	b := &PostgresBus{
		opts:       opts,
		connString: opts.ConnString,
		listenCfg:  listenCfg,
		pool:       pool,
		tableIdent: table,
		gapGrace:   pgGapGrace,
		pruneEvery: pgPruneEvery,

		// payload is bytea so that the bytes come back exactly as published
		// (text would reject NUL bytes and invalid UTF-8; jsonb would
		// re-encode).
		sqlCreate: `CREATE TABLE IF NOT EXISTS ` + table + ` (
	id bigserial PRIMARY KEY,
	channel text NOT NULL,
	event_type text NOT NULL,
	payload bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ` + index + ` ON ` + table + ` (created_at)`,
		sqlPublish: `WITH ins AS (INSERT INTO ` + table + ` (channel, event_type, payload) VALUES ($1, $2, $3) RETURNING id)
SELECT pg_notify($4, id::text) FROM ins`,
		// The start position is the last id handed out, committed or
		// not: max(id) alone would be lower when the newest rows were
		// pruned or rolled back, and the listener would then wait for
		// ids that will never come (see dispatch).
		sqlMax:    `SELECT greatest(coalesce(max(id), 0), coalesce(pg_sequence_last_value(pg_get_serial_sequence($1, 'id')), 0)) FROM ` + table,
		sqlRead:   fmt.Sprintf(`SELECT id, channel, event_type, payload, created_at FROM %s WHERE id > $1 ORDER BY id LIMIT %d`, table, pgBatchSize),
		sqlPrune:  `DELETE FROM ` + table + ` WHERE created_at < now() - $1::bigint * interval '1 microsecond'`,
		sqlListen: `LISTEN ` + pgx.Identifier{opts.NotifyChannel}.Sanitize(),
	}
	return b, nil
}

// truncateIdent cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncateIdent(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// Start implements Bus: it connects the listener, creates the table if
// missing, LISTENs and records the current last id, all within
// ConnectTimeout. Only events published after Start are delivered.
func (b *PostgresBus) Start(ctx context.Context, deliver func(Event)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.started {
		return valueErrorf("the PostgreSQL bus is already started")
	}
	if deliver == nil {
		return valueErrorf("deliver must not be nil")
	}

	cctx, cancel := context.WithTimeout(ctx, b.opts.ConnectTimeout)
	defer cancel()
	conn, err := b.connectListener(cctx)
	if err != nil {
		return err
	}
	var pos int64
	if err := conn.QueryRow(cctx, b.sqlMax, b.tableIdent).Scan(&pos); err != nil {
		closeQuietly(conn)
		return b.connectError(cctx, err)
	}

	lctx, lcancel := context.WithCancel(context.Background())
	b.started = true
	b.cancel = lcancel
	b.done = make(chan struct{})
	l := &pgListener{bus: b, conn: conn, pos: pos, deliver: deliver, seen: map[int64]time.Time{},
		backoff: backoff{min: 50 * time.Millisecond, max: 2 * time.Second}}
	go l.run(lctx, b.done)
	return nil
}

// connectListener opens the listener's connection, makes sure the table
// exists and LISTENs. ctx bounds the whole.
func (b *PostgresBus) connectListener(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, b.listenCfg.Copy())
	if err != nil {
		return nil, b.connectError(ctx, err)
	}
	if err := b.ensureTable(ctx, conn); err != nil {
		closeQuietly(conn)
		return nil, b.connectError(ctx, err)
	}
	if _, err := conn.Exec(ctx, b.sqlListen); err != nil {
		closeQuietly(conn)
		return nil, b.connectError(ctx, err)
	}
	b.listenPID.Store(conn.PgConn().PID())
	return conn, nil
}

// ensureTable creates the table and its index if missing. An advisory lock
// serialises executors starting together: concurrent CREATE TABLE IF NOT
// EXISTS can otherwise fail on a unique violation in the catalog.
func (b *PostgresBus) ensureTable(ctx context.Context, q interface {
	Begin(context.Context) (pgx.Tx, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}) error {
	if b.tableReady.Load() {
		return nil
	}
	// When the table exists, do not run CREATE at all: it needs the CREATE
	// privilege on the schema, which an executor's role may lack.
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", b.tableIdent).Scan(&exists); err != nil {
		return err
	}
	if exists {
		b.tableReady.Store(true)
		return nil
	}
	tx, err := q.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", int32(pgLockClass), b.opts.Table); err != nil {
		return err
	}
	// Simple protocol: two statements, no parameters.
	if _, err := tx.Exec(ctx, b.sqlCreate, pgx.QueryExecModeSimpleProtocol); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	b.tableReady.Store(true)
	return nil
}

// tableMissing reports whether err says that the table does not exist, and
// if so forgets that it was created, so that it is created again.
func (b *PostgresBus) tableMissing(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		b.tableReady.Store(false)
		return true
	}
	return false
}

// connectError describes a failure to connect, without secrets.
func (b *PostgresBus) connectError(ctx context.Context, err error) error {
	msg := Redacted(err, b.connString)
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		msg = fmt.Sprintf("no answer within %v (%s)", b.opts.ConnectTimeout, msg)
	}
	return busError(fmt.Sprintf("connecting to PostgreSQL at %s failed: %s", RedactConnString(b.connString), msg), err)
}

// Publish implements Bus: the event is inserted and the listeners woken
// in a single statement.
func (b *PostgresBus) Publish(ctx context.Context, ev Event) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	data := []byte(ev.Data)
	if data == nil {
		data = []byte{} // NOT NULL column; nil would be sent as NULL
	}
	err := b.publish(ctx, ev, data)
	// Retry once when the event was certainly not inserted: a pooled
	// connection broken by a server restart that failed before sending
	// anything, or a table dropped since it was created.
	if err != nil && ctx.Err() == nil && (pgconn.SafeToRetry(err) || b.tableMissing(err)) {
		err = b.publish(ctx, ev, data)
	}
	if err != nil {
		msg := Redacted(err, b.connString)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			msg = "the connection to the server was lost (" + msg + ")"
		}
		return busError("publishing to PostgreSQL failed: "+msg, err)
	}
	b.published.Add(1)
	return nil
}

func (b *PostgresBus) publish(ctx context.Context, ev Event, data []byte) error {
	if !b.tableReady.Load() {
		conn, err := b.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		err = b.ensureTable(ctx, conn)
		conn.Release()
		if err != nil {
			return err
		}
	}
	_, err := b.pool.Exec(ctx, b.sqlPublish, ev.Channel, ev.Type, data, b.opts.NotifyChannel)
	return err
}

// Stats implements Bus.
func (b *PostgresBus) Stats() BusStats {
	return BusStats{
		Published:  b.published.Load(),
		Received:   b.received.Load(),
		Reconnects: b.reconnects.Load(),
		Panics:     b.panics.Load(),
		LagMillis:  math.Float64frombits(b.lagBits.Load()),
	}
}

// armReaderPanic makes the listener panic before it dispatches its next
// row (a test hook, see Executor.InjectFault).
func (b *PostgresBus) armReaderPanic() { b.panicNext.Store(true) }

// Close implements Bus: it stops the listener (which UNLISTENs and closes
// its connection) and closes the publishing pool. ctx bounds the wait for
// the listener; it is idempotent.
func (b *PostgresBus) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	cancel, done := b.cancel, b.done
	b.mu.Unlock()
	if cancel != nil {
		cancel()
		select {
		case <-done:
		case <-ctx.Done(): // the listener finishes on its own, its context cancelled
		}
	}
	b.pool.Close()
	return nil
}

// pgListener is the goroutine that reads the table and calls deliver.
type pgListener struct {
	bus     *PostgresBus
	conn    *pgx.Conn // nil while disconnected
	pos     int64     // id of the last dispatched row
	deliver func(Event)

	// seen records when rows waiting behind a gap were first read: the
	// gap before such a row has existed at least since then.
	seen      map[int64]time.Time
	lastPrune time.Time
	// backoff spaces reconnections; it is reset once a connection has
	// proved usable, so a connection that fails right after connecting
	// does not cause a tight loop.
	backoff backoff
}

type pgRow struct {
	id        int64
	channel   string
	eventType string
	payload   []byte
	createdAt time.Time
}

// run is the listener goroutine. A panic (deliver recovers its own, so
// one here is a bug of the listener) is counted and the listener starts
// over on a new connection from its position, so no row is lost.
func (l *pgListener) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	defer l.disconnect()
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
		wait, err := l.drain(ctx)
		if err == nil {
			l.backoff.reset()
			l.maybePrune(ctx)
			wctx, cancel := context.WithTimeout(ctx, wait)
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

// drain reads and dispatches the rows after the position until none are
// left or a gap must be waited for. It returns how long to wait for a
// notification before reading again.
func (l *pgListener) drain(ctx context.Context) (time.Duration, error) {
	b := l.bus
	for {
		l.discardQueued()
		rows, err := l.read(ctx)
		if err != nil {
			return 0, err
		}
		blocked, wait := l.dispatch(rows)
		if blocked {
			return min(wait, b.opts.PollInterval), nil
		}
		if len(rows) < pgBatchSize {
			return b.opts.PollInterval, nil
		}
	}
}

// discardQueued drops the notifications already received: the read that
// follows sees every row committed before they were sent. Without this,
// a burst of N events costs N reads that find nothing. Notifications that
// arrive during the read are kept, since their rows may be too recent for
// it.
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

// read fetches the next batch of rows after the position.
func (l *pgListener) read(ctx context.Context) ([]pgRow, error) {
	b := l.bus
	// Bound the query so that a connection that went silent is noticed.
	qctx, cancel := context.WithTimeout(ctx, b.opts.ConnectTimeout+30*time.Second)
	defer cancel()
	rows, err := l.conn.Query(qctx, b.sqlRead, l.pos)
	if err != nil {
		return nil, err
	}
	var out []pgRow
	for rows.Next() {
		var r pgRow
		if err := rows.Scan(&r.id, &r.channel, &r.eventType, &r.payload, &r.createdAt); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// dispatch delivers rows (in id order) until it meets a gap that must be
// waited for; then it returns true and how long is left to wait.
//
// Sequence gaps: ids come from a sequence when the row is inserted, but rows
// become visible when their transaction commits, so with concurrent
// publishers id 6 can be visible before id 5. Moving the position past 5
// when reading 6 would lose 5 forever (the listener never goes back). So
// when the next row's id is not position+1, the rows up to the gap have
// been delivered and the listener waits for the gap to fill, for at most
// gapGrace measured from when the row after the gap was first read (the
// gap has existed at least since). Gaps that never fill also exist:
// rolled-back inserts, and sequence values lost by a server crash. After
// gapGrace the listener moves past the gap. A publisher whose insert takes
// longer than gapGrace to commit while later ids commit may therefore have
// its event skipped by listeners that already moved past it.
//
// Exactly once: a row is dispatched only if its id is above the position,
// and the position only grows.
func (l *pgListener) dispatch(rows []pgRow) (bool, time.Duration) {
	b := l.bus
	now := time.Now()
	for i := range rows {
		r := &rows[i]
		if r.id <= l.pos {
			continue // never twice
		}
		if r.id != l.pos+1 {
			first, ok := l.seen[r.id]
			if !ok {
				// Record every row from here: rows behind later gaps start
				// their grace now too.
				for j := i; j < len(rows); j++ {
					if _, ok := l.seen[rows[j].id]; !ok {
						l.seen[rows[j].id] = now
					}
				}
				first = now
			}
			if waited := now.Sub(first); waited < b.gapGrace {
				return true, b.gapGrace - waited + time.Millisecond
			}
		}
		if b.panicNext.CompareAndSwap(true, false) {
			panic("test panic in the PostgreSQL listener") // armed by tests only
		}
		delete(l.seen, r.id)
		l.pos = r.id
		b.received.Add(1)
		// created_at is the server's clock: clock skew between the
		// server and this host shows in the lag (negative lags read 0).
		lag := float64(now.Sub(r.createdAt).Microseconds()) / 1000
		b.lagBits.Store(math.Float64bits(max(lag, 0)))
		l.deliver(Event{Type: r.eventType, Channel: r.channel, Data: r.payload})
	}
	for id := range l.seen {
		if id <= l.pos {
			delete(l.seen, id)
		}
	}
	return false, 0
}

// maybePrune deletes rows older than Retention, at most every pruneEvery.
// Errors are ignored: pruning is retried later, and a broken connection is
// noticed by the next read.
func (l *pgListener) maybePrune(ctx context.Context) {
	b := l.bus
	if !l.lastPrune.IsZero() && time.Since(l.lastPrune) < b.pruneEvery {
		return
	}
	l.lastPrune = time.Now()
	pctx, cancel := context.WithTimeout(ctx, b.opts.ConnectTimeout+30*time.Second)
	defer cancel()
	l.conn.Exec(pctx, b.sqlPrune, b.opts.Retention.Microseconds())
}

func closeQuietly(conn *pgx.Conn) {
	if conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Close(ctx)
}
