package subscriptions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
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
//   - Publish inserts the event, its transaction's commit stamp, and
//     notifies, in one statement (one round trip, one transaction): the
//     notification is sent when the row commits. PublishBatch does the same
//     for many events. The SQL function (see bus_postgres_schema.go) does
//     the same inside the caller's transaction, where triggers take the
//     stamp.
//   - The listener of each executor holds a dedicated connection that runs
//     LISTEN. On every notification and at least every PollInterval it
//     reads, in commit-stamp order, the rows committed after its position
//     and up to a horizon below which nothing can still commit, and
//     dispatches them (bus_postgres_listener.go).
//   - After a broken connection it reconnects with backoff and reads on from
//     its position, so nothing published meanwhile is lost and nothing is
//     delivered twice. The position is stored after every page: with an
//     InstanceID a restarted executor reads on from it; every listener's
//     stored position holds the pruning back.
//   - Rows of transactions committed longer than Retention ago, and
//     delivered by every live listener, are deleted at most once per
//     minute by whichever listener gets there (deleting twice is harmless).

const (
	pgDefaultTable        = "fraiseql_events"
	pgDefaultChannel      = "fraiseql_events"
	pgDefaultFunction     = "fraiseql_publish"
	pgDefaultRetention    = time.Hour
	pgDefaultPollInterval = time.Second
	pgDefaultTimeout      = 5 * time.Second

	// pgPruneEvery is the minimum time between two prunings by a listener.
	pgPruneEvery = time.Minute
	// pgMaxIdentifier is PostgreSQL's identifier length limit (NAMEDATALEN-1).
	pgMaxIdentifier = 63
	// pgLockClass is the first key of the advisory lock that serialises the
	// creation of the table by several executors starting at once.
	pgLockClass = 0x46514c45 // "FQLE"
	// pgOwnerClass is the first key of the advisory lock by which one
	// listener owns an InstanceID.
	pgOwnerClass = 0x46514c49 // "FQLI"
	// pgOwnWait is how long Start waits for the lock of an InstanceID.
	pgOwnWait = 2 * time.Second
	// pgOrderClass is the first key of the advisory lock between commit
	// stamps and the listeners' horizon.
	pgOrderClass = 0x46514c4f // "FQLO"
)

// PostgresBus is the Bus built on a PostgreSQL table and LISTEN/NOTIFY.
type PostgresBus struct {
	opts       PostgresOptions
	connString string // kept to redact its secrets from error messages
	listenCfg  *pgx.ConnConfig
	pool       *pgxpool.Pool

	schema pgSchema
	// SQL built once from the quoted identifiers.
	tableIdent string // the quoted table name
	// publishing is the publishing statements, once the objects are known
	// to be in place (they name the id sequence).
	publishing    atomic.Pointer[pgPublishSQL]
	orderKey      string // the order lock's two keys, as SQL
	sqlSequence   string // the oid of the table's id sequence, or NULL
	sqlResumePos  string // the stored position of a listener, or a new one after the horizon
	sqlSavePos    string
	sqlPage       string
	sqlPrune      string
	sqlListen     string
	sqlHistory    string // history_postgres.go
	sqlOwn        string // takes the InstanceID's lock, if free
	sqlForget     string // removes the row of an anonymous listener
	sqlForgetGone string // removes the rows of anonymous listeners that are gone

	// Tunables, constants outside tests.
	pruneEvery time.Duration
	prunes     atomic.Uint64 // pruning rounds run (tests wait on it)
	// readFault, nil outside tests (set before Start), runs in the
	// listener before each page is read; an error from it fails the read
	// as a broken connection would.
	readFault func() error

	// listenerID names the listener in the positions table and its lock:
	// the InstanceID, or "~" and a random id for an anonymous listener,
	// whose row only tells the pruning how far it has read.
	listenerID string
	anonymous  bool

	tableReady atomic.Bool // the table, positions and function are known to be in place

	busCounters
	gate      deliveryGate  // Close stops delivery before the executor closes
	listenPID atomic.Uint32 // backend pid of the listener connection
	// ep is the epoch of the positions, startPos the listener's first
	// position (history_postgres.go).
	ep       atomic.Pointer[string]
	startPos atomic.Pointer[position]
	// hold, when set, keeps the listener from reading until it is closed
	// (an executor started paused; see pause.go).
	hold <-chan struct{}

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// withDefaults fills the zero fields with their defaults and checks the
// names' lengths.
func (opts PostgresOptions) withDefaults() (PostgresOptions, error) {
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
	if opts.Function == "" {
		opts.Function = pgDefaultFunction
		if opts.Table != pgDefaultTable {
			opts.Function = suffixed(opts.Table, "_publish")
		}
	}
	if strings.HasPrefix(opts.InstanceID, "~") {
		return opts, valueErrorf("PostgreSQL instance_id %q must not start with \"~\" (kept for listeners without one)", opts.InstanceID)
	}
	if len(opts.Table) > pgMaxIdentifier {
		return opts, valueErrorf("PostgreSQL table name %q is longer than %d bytes", opts.Table, pgMaxIdentifier)
	}
	if len(opts.NotifyChannel) > pgMaxIdentifier {
		return opts, valueErrorf("PostgreSQL notify channel %q is longer than %d bytes", opts.NotifyChannel, pgMaxIdentifier)
	}
	if len(opts.Function) > pgMaxIdentifier {
		return opts, valueErrorf("PostgreSQL function name %q is longer than %d bytes", opts.Function, pgMaxIdentifier)
	}
	return opts, nil
}

// ListenerApplicationName is the application_name of the listener's
// connection, unless the connection string sets one.
const ListenerApplicationName = "fraiseql-listener"

// NewPostgresBus returns a PostgreSQL bus. It validates opts but does not
// connect: Start connects the listener, Publish connects a pool on first use.
func NewPostgresBus(opts PostgresOptions) (Bus, error) {
	b, err := newPostgresBus(opts)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func newPostgresBus(opts PostgresOptions) (*PostgresBus, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
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
	schema := newPgSchema(opts)
	positions := pgx.Identifier{schema.positions}.Sanitize()
	commits := pgx.Identifier{schema.commits}.Sanitize()
	orderKey := fmt.Sprintf("%d, hashtext(%s)", pgOrderClass, quoteLiteral(opts.Table))
	horizon := `current_setting('fraiseql.horizon')::bigint`
	cols := `e.id, e.channel, e.event_type, e.payload, e.created_at`
	// The rest of the position's transaction, then the transactions
	// stamped after it up to the horizon: a nested loop over the commits
	// in stamp order, each transaction's rows read through the index on
	// (xid, id), so that the sort on (stamp, id) is incremental and stops
	// at the page's end.
	page := fmt.Sprintf(`SELECT %[1]s, c.stamp
FROM (SELECT xid, stamp FROM %[2]s WHERE stamp >= $1::bigint AND stamp <= %[5]s ORDER BY stamp LIMIT %[4]d) c,
	LATERAL (SELECT * FROM %[3]s e WHERE e.xid = c.xid AND e.id > CASE WHEN c.stamp > $1::bigint THEN 0 ELSE $2::bigint END
		ORDER BY e.id LIMIT %[4]d) e
ORDER BY c.stamp, e.id LIMIT %[4]d`, cols, commits, table, pgPageSize, horizon)
	listenerID, anonymous := opts.InstanceID, opts.InstanceID == ""
	if anonymous {
		var raw [8]byte
		_, _ = rand.Read(raw[:])
		listenerID = "~" + hex.EncodeToString(raw[:])
	}
	b := &PostgresBus{
		listenerID: listenerID,
		anonymous:  anonymous,
		opts:       opts,
		connString: opts.ConnString,
		listenCfg:  listenCfg,
		pool:       pool,
		schema:     schema,
		tableIdent: table,
		pruneEvery: pgPruneEvery,

		orderKey:    orderKey,
		sqlSequence: `SELECT pg_get_serial_sequence(` + quoteLiteral(table) + `, 'id')::regclass::oid`,
		// A position stored by an earlier version (a snapshot, without
		// after_stamp) resumes at the first transaction that snapshot
		// had not seen finish: nothing is lost, some may come again.
		sqlResumePos: `WITH old AS (SELECT pruned_unread FROM ` + positions + ` WHERE instance_id = $1)
INSERT INTO ` + positions + ` AS p (instance_id, snapshot, after_stamp, after_id)
VALUES ($1, pg_current_snapshot(), ` + horizon + fmt.Sprintf(`, %d)`, int64(pgMaxID)) + `
ON CONFLICT (instance_id) DO UPDATE SET updated_at = now(), pruned_unread = 0,
	after_stamp = coalesce(p.after_stamp, (SELECT min(c.stamp) - 1 FROM ` + commits + ` c
		WHERE NOT pg_visible_in_snapshot(c.xid, p.snapshot)), ` + horizon + `),
	after_id = CASE WHEN p.after_stamp IS NULL THEN ` + fmt.Sprint(int64(pgMaxID)) + ` ELSE p.after_id END
RETURNING after_stamp, after_id, coalesce((SELECT pruned_unread FROM old), 0)`,
		// An upsert: the row of an anonymous listener may have been
		// removed while it was disconnected.
		sqlSavePos: `INSERT INTO ` + positions + ` AS p (instance_id, snapshot, after_stamp, after_id)
VALUES ($1, pg_current_snapshot(), $2::text::bigint, $3::text::bigint)
ON CONFLICT (instance_id) DO UPDATE SET after_stamp = excluded.after_stamp, after_id = excluded.after_id, updated_at = now()`,
		sqlForget: `DELETE FROM ` + positions + ` WHERE instance_id = $1`,
		sqlPage:   page,
		// Retention counts from the commit. Nothing after the position of a
		// live listener (one whose connection holds its lock) is pruned;
		// what is pruned after the position of a stopped one is counted
		// in its row, for it to report when it resumes.
		sqlPrune: `WITH live AS (
	SELECT p.instance_id, p.after_stamp FROM ` + positions + ` p
	WHERE p.after_stamp IS NOT NULL AND EXISTS (SELECT 1 FROM pg_locks k WHERE k.locktype = 'advisory' AND k.granted
		AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND k.classid = ` + fmt.Sprint(pgOwnerClass) + `::oid AND k.objsubid = 2
		AND k.objid = (hashtext(` + quoteLiteral(opts.Table+" ") + ` || p.instance_id)::bigint & 4294967295)::oid)
), upto AS (
	SELECT least($2::bigint, min(after_stamp)) AS stamp FROM live
), gone AS (
	DELETE FROM ` + commits + ` c USING upto WHERE c.committed_at < now() - $1::bigint * interval '1 microsecond'
		AND c.stamp <= upto.stamp RETURNING c.xid, c.stamp
), pruned AS (
	DELETE FROM ` + table + ` e USING gone WHERE e.xid = gone.xid RETURNING gone.stamp
), down AS (
	UPDATE ` + positions + ` p SET pruned_unread = p.pruned_unread + (SELECT count(*) FROM pruned WHERE pruned.stamp > p.after_stamp)
	WHERE p.after_stamp < (SELECT max(stamp) FROM gone) AND p.instance_id NOT LIKE '~%'
		AND p.instance_id NOT IN (SELECT instance_id FROM live)
	RETURNING p.instance_id, p.pruned_unread
)
SELECT (SELECT count(*) FROM pruned), coalesce((SELECT string_agg(instance_id, ', ' ORDER BY instance_id) FROM down), '')`,
		// The rows of anonymous listeners that are gone (needs DELETE on
		// the positions table; skipped without it).
		sqlForgetGone: `DELETE FROM ` + positions + ` p WHERE p.instance_id LIKE '~%' AND NOT EXISTS (
	SELECT 1 FROM pg_locks k WHERE k.locktype = 'advisory' AND k.granted
		AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND k.classid = ` + fmt.Sprint(pgOwnerClass) + `::oid AND k.objsubid = 2
		AND k.objid = (hashtext(` + quoteLiteral(opts.Table+" ") + ` || p.instance_id)::bigint & 4294967295)::oid)`,
		sqlListen: `LISTEN ` + pgx.Identifier{opts.NotifyChannel}.Sanitize(),
		// A session lock: it goes with the listener's connection, also
		// when the process dies.
		sqlOwn: fmt.Sprintf(`SELECT pg_advisory_lock(%d, hashtext($1))`, pgOwnerClass),
	}
	b.sqlHistory = b.historySQL()
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

// Start implements Bus: it connects the listener, creates the table and
// function if missing, LISTENs and takes its position, all within
// ConnectTimeout. Without an InstanceID only the events of transactions
// that commit after Start are delivered; with one, also those committed
// since the executor of that InstanceID last read.
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
	st, err := b.startPosition(cctx, conn)
	if err != nil {
		closeQuietly(conn)
		return b.connectError(cctx, err)
	}

	lctx, lcancel := context.WithCancel(context.Background())
	b.started = true
	b.cancel = lcancel
	b.done = make(chan struct{})
	start := b.rowPosition(st.stamp, st.id)
	b.startPos.Store(&start)
	l := &pgListener{bus: b, conn: conn, st: st, deliver: deliver,
		backoff: backoff{min: 50 * time.Millisecond, max: 2 * time.Second}}
	go l.run(lctx, b.done)
	return nil
}

// startPosition takes the horizon and returns the listener's first
// position: after the horizon, or the InstanceID's stored one.
func (b *PostgresBus) startPosition(ctx context.Context, conn *pgx.Conn) (pgPosition, error) {
	var batch pgconn.Batch
	b.addHorizon(&batch)
	batch.ExecParams(b.sqlResumePos, [][]byte{[]byte(b.listenerID)}, []uint32{pgTextOID}, nil, nil)
	results, err := conn.PgConn().ExecBatch(ctx, &batch).ReadAll()
	if err != nil {
		return pgPosition{}, err
	}
	last := results[len(results)-1]
	if len(last.Rows) != 1 || len(last.Rows[0]) != 3 {
		return pgPosition{}, errors.New("no position returned")
	}
	var st pgPosition
	var pruned int64
	if st.stamp, err = strconv.ParseInt(string(last.Rows[0][0]), 10, 64); err == nil {
		if st.id, err = strconv.ParseInt(string(last.Rows[0][1]), 10, 64); err == nil {
			pruned, err = strconv.ParseInt(string(last.Rows[0][2]), 10, 64)
		}
	}
	if err == nil && pruned > 0 {
		b.prunedUnread.Add(uint64(pruned))
		orNop(b.opts.Logger).Log(LogWarning, "bus", fmt.Sprintf(
			"PostgreSQL bus: %d events of %s were pruned (older than the retention of %s) while the executor with instance_id %q was stopped, before it read them",
			pruned, b.tableIdent, b.opts.Retention, b.opts.InstanceID))
	}
	return st, err
}

// connectListener opens the listener's connection, makes sure the table
// and function exist and LISTENs. ctx bounds the whole.
func (b *PostgresBus) connectListener(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, b.listenCfg.Copy())
	if err != nil {
		return nil, b.connectError(ctx, err)
	}
	if err := b.ensureSchema(ctx, conn); err != nil {
		closeQuietly(conn)
		return nil, err // says itself what failed
	}
	if _, err := conn.Exec(ctx, b.sqlListen); err != nil {
		closeQuietly(conn)
		return nil, b.connectError(ctx, err)
	}
	// Prepared once per connection: every read takes the horizon, and
	// most reads are one page.
	var seq *uint32 // nil without a sequence
	if err := conn.QueryRow(ctx, b.sqlSequence).Scan(&seq); err != nil {
		closeQuietly(conn)
		return nil, b.connectError(ctx, err)
	}
	if _, err := conn.PgConn().Prepare(ctx, pgHorizon, b.horizonSQL(seq), nil); err != nil {
		closeQuietly(conn)
		return nil, b.connectError(ctx, err)
	}
	if _, err := conn.PgConn().Prepare(ctx, pgPage, b.sqlPage, pgPageOIDs); err != nil {
		closeQuietly(conn)
		return nil, b.connectError(ctx, err)
	}
	if err := b.own(ctx, conn); err != nil {
		closeQuietly(conn)
		return nil, err
	}
	// Again on a reconnect: the table may have been created again.
	if err := b.loadEpoch(ctx, conn); err != nil {
		closeQuietly(conn)
		return nil, b.connectError(ctx, err)
	}
	b.listenPID.Store(conn.PgConn().PID())
	return conn, nil
}

// own takes the lock of the listener's id on conn, waiting up to
// pgOwnWait, or fails with ErrInstanceInUse.
func (b *PostgresBus) own(ctx context.Context, conn *pgx.Conn) error {
	// Wait a little: a listener that just closed lets go of the lock when
	// its server process ends, a moment after its connection closed.
	tx, err := conn.Begin(ctx)
	if err == nil {
		wait := min(pgOwnWait, b.opts.ConnectTimeout/2)
		_, err = tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", max(wait.Milliseconds(), 1)))
	}
	if err == nil {
		_, err = tx.Exec(ctx, b.sqlOwn, b.opts.Table+" "+b.listenerID)
	}
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
			return instanceInUse(b.opts.InstanceID, "PostgreSQL", "another listener's connection holds its advisory lock")
		}
		return b.connectError(ctx, err)
	}
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
	// The server's answer first: pgconn lists each attempt (a refused TLS
	// one before the plain one whose answer says what is wrong).
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg = Redacted(pgErr, b.connString) + " (" + msg + ")"
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		msg = fmt.Sprintf("no answer within %v (%s)", b.opts.ConnectTimeout, msg)
	}
	return busError(fmt.Sprintf("connecting to PostgreSQL at %s failed: %s", RedactConnString(b.connString), msg), err)
}

// pgPublishSQL is the bus's publishing statements (see publishSQL).
type pgPublishSQL struct {
	one, batch string
	// With idempotency keys: a row whose key is there already is skipped.
	oneKeyed, batchKeyed string
}

// pgStatement picks one of pgPublishSQL's statements.
type pgStatement func(*pgPublishSQL) string

// publishSQL builds the publishing statements; seq is the table's id
// sequence, quoted (pgSequenceOf). Each is one transaction that inserts
// the events and stamps itself, which the triggers would otherwise do
// (bus_postgres_schema.go) at twice the cost: once every event is in
// (their ids are taken: max reads them all), under the shared order lock
// (held until the commit), the commit row gets a stamp from the sequence,
// above those ids, so that the stamp trigger does not fire for it; the
// arm trigger's mark is set, so that it does not insert the row again.
// The notification goes with the commit row; a statement whose every
// event repeats an idempotency key inserts neither.
func (b *PostgresBus) publishSQL(seq string) *pgPublishSQL {
	table := b.tableIdent
	seqSQL := "pg_get_serial_sequence(" + quoteLiteral(table) + ", 'id')::regclass" // none found: as the triggers do
	if seq != "" {
		seqSQL = quoteLiteral(seq) + "::regclass"
	}
	stamp := `
INSERT INTO ` + pgx.Identifier{b.schema.commits}.Sanitize() + ` (xid, stamp, committed_at)
SELECT pg_current_xact_id(), nextval(` + seqSQL + `), clock_timestamp() FROM (SELECT max(id) AS last FROM ins) i
WHERE i.last IS NOT NULL AND pg_advisory_xact_lock_shared(` + b.orderKey + `) IS NOT NULL
	AND set_config('fraiseql.armed', ` + fmt.Sprintf(pgArmedMark, quoteLiteral(table)+"::regclass::oid") + `, true) IS NOT NULL
RETURNING pg_notify($4, '')`
	keyed := `
	ON CONFLICT (idem_key) WHERE idem_key IS NOT NULL DO NOTHING`
	return &pgPublishSQL{
		one: `WITH ins AS (INSERT INTO ` + table + ` (channel, event_type, payload) VALUES ($1, $2, $3) RETURNING id)` + stamp,
		// ORDER BY the position in the arrays: ids are taken in that order.
		batch: `WITH ins AS (INSERT INTO ` + table + ` (channel, event_type, payload)
	SELECT c, t, p FROM unnest($1::text[], $2::text[], $3::bytea[]) WITH ORDINALITY AS e(c, t, p, n) ORDER BY n
	RETURNING id)` + stamp,
		oneKeyed: `WITH ins AS (INSERT INTO ` + table + ` (channel, event_type, payload, idem_key) VALUES ($1, $2, $3, $5)` +
			keyed + ` RETURNING id)` + stamp,
		batchKeyed: `WITH ins AS (INSERT INTO ` + table + ` (channel, event_type, payload, idem_key)
	SELECT c, t, p, k FROM unnest($1::text[], $2::text[], $3::bytea[], $5::text[]) WITH ORDINALITY AS e(c, t, p, k, n) ORDER BY n` +
			keyed + ` RETURNING id)` + stamp,
	}
}

// Publish implements Bus: the event is inserted, stamped and the
// listeners woken in a single statement.
func (b *PostgresBus) Publish(ctx context.Context, ev Event) error {
	var err error
	if ev.IdempotencyKey == "" {
		err = b.exec(ctx, func(s *pgPublishSQL) string { return s.one }, ev.Channel, ev.Type, notNull(ev.Data), b.opts.NotifyChannel)
	} else {
		err = b.exec(ctx, func(s *pgPublishSQL) string { return s.oneKeyed },
			ev.Channel, ev.Type, notNull(ev.Data), b.opts.NotifyChannel, ev.IdempotencyKey)
	}
	if err != nil {
		return err
	}
	b.published.Add(1)
	return nil
}

// PublishBatch puts evs on the bus in order, in one statement: one
// transaction, one multi-row INSERT and one NOTIFY. It is all or nothing:
// on error no event of evs was published.
func (b *PostgresBus) PublishBatch(ctx context.Context, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	channels := make([]string, len(evs))
	types := make([]string, len(evs))
	payloads := make([][]byte, len(evs))
	var keys []*string // nil unless an event has a key
	for i := range evs {
		channels[i], types[i], payloads[i] = evs[i].Channel, evs[i].Type, notNull(evs[i].Data)
		if evs[i].IdempotencyKey != "" {
			if keys == nil {
				keys = make([]*string, len(evs))
			}
			keys[i] = &evs[i].IdempotencyKey
		}
	}
	var err error
	if keys == nil {
		err = b.exec(ctx, func(s *pgPublishSQL) string { return s.batch }, channels, types, payloads, b.opts.NotifyChannel)
	} else {
		err = b.exec(ctx, func(s *pgPublishSQL) string { return s.batchKeyed }, channels, types, payloads, b.opts.NotifyChannel, keys)
	}
	if err != nil {
		return err
	}
	b.published.Add(uint64(len(evs)))
	return nil
}

// notNull returns data, or an empty payload for nil (the column is NOT
// NULL, and a nil slice is sent as NULL).
func notNull(data []byte) []byte {
	if data == nil {
		return []byte{}
	}
	return data
}

// exec runs a publishing statement, creating the table first if needed.
func (b *PostgresBus) exec(ctx context.Context, sql pgStatement, args ...any) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	err := b.execOnce(ctx, sql, args...)
	// Retry once when nothing was certainly inserted: a pooled connection
	// broken by a server restart that failed before sending anything, or
	// a table dropped since it was created.
	if err != nil && ctx.Err() == nil && (pgconn.SafeToRetry(err) || b.tableMissing(err)) {
		err = b.execOnce(ctx, sql, args...)
	}
	if err != nil {
		msg := Redacted(err, b.connString)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			msg = "the connection to the server was lost (" + msg + ")"
		}
		if pgOutcomeUnknown(err) {
			return outcomeUnknown("PostgreSQL", msg, err)
		}
		return busError("publishing to PostgreSQL failed: "+msg, err)
	}
	return nil
}

// pgOutcomeUnknown tells whether a publishing statement may have
// committed although it failed: neither refused by the server (which
// rolls it back) nor failed before anything was sent.
func pgOutcomeUnknown(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) || pgconn.SafeToRetry(err) {
		return false
	}
	var connectErr *pgconn.ConnectError
	return !errors.As(err, &connectErr) && !errors.Is(err, ErrClosed)
}

func (b *PostgresBus) execOnce(ctx context.Context, sql pgStatement, args ...any) error {
	if !b.tableReady.Load() {
		conn, err := b.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		err = b.ensureSchema(ctx, conn)
		conn.Release()
		if err != nil {
			return err
		}
	}
	_, err := b.pool.Exec(ctx, sql(b.publishing.Load()), args...)
	return err
}

// stopDelivery implements deliveryStopper: the listener stops, and
// delivers nothing once it returns; its position counts only what it
// delivered.
func (b *PostgresBus) stopDelivery() {
	b.mu.Lock()
	if b.cancel != nil {
		b.cancel()
	}
	b.mu.Unlock()
	b.gate.stop()
}

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

func closeQuietly(conn *pgx.Conn) {
	if conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Close(ctx)
}
