package subscriptions

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
)

// The PostgreSQL bus's positions are the bus order, (commit stamp, id),
// under an epoch made of a random number kept in the positions table (in
// the row of the instance id "", which no executor uses) and the table's
// oid: another database or cluster has another number, and a table
// dropped and created again another oid, so their positions are refused.
// The history is the table itself, up to Retention: a position whose
// transaction was pruned has lost what followed it (pruning goes oldest
// commit first), and is refused as expired.

// pgEpochRow is the instance id of the positions table's epoch row.
const pgEpochRow = ""

// loadEpoch reads the epoch on conn, creating its number if missing (the
// only write, so that an executor without INSERT on the positions table
// can read an epoch that exists).
func (b *PostgresBus) loadEpoch(ctx context.Context, conn *pgx.Conn) error {
	positions := pgx.Identifier{b.schema.positions}.Sanitize()
	read := `SELECT p.after_id, to_regclass($2)::oid::bigint FROM ` + positions + ` p WHERE p.instance_id = $1`
	var n, oid int64
	err := conn.QueryRow(ctx, read, pgEpochRow, b.tableIdent).Scan(&n, &oid)
	if err == pgx.ErrNoRows {
		var raw [8]byte
		_, _ = rand.Read(raw[:])
		number := int64(binary.BigEndian.Uint64(raw[:]) & math.MaxInt64)
		if _, err = conn.Exec(ctx, `INSERT INTO `+positions+` (instance_id, snapshot, after_id)
VALUES ($1, pg_current_snapshot(), $2) ON CONFLICT (instance_id) DO NOTHING`, pgEpochRow, number); err != nil {
			return err
		}
		err = conn.QueryRow(ctx, read, pgEpochRow, b.tableIdent).Scan(&n, &oid)
	}
	if err != nil {
		return err
	}
	ep := fmt.Sprintf("p%x.%x", n, oid)
	b.ep.Store(&ep)
	return nil
}

func (b *PostgresBus) epoch() string {
	if ep := b.ep.Load(); ep != nil {
		return *ep
	}
	return ""
}

// rowPosition is the position of the row (stamp, id).
func (b *PostgresBus) rowPosition(stamp, id int64) position {
	return position{epoch: b.epoch(), hi: uint64(stamp), lo: uint64(id)}
}

func (b *PostgresBus) expiredError(p position) error {
	return positionError(ErrPositionExpired, p.String(),
		"the events after position %s are no longer in the PostgreSQL table %q (retention %s)", p, b.opts.Table, b.opts.Retention)
}

func (b *PostgresBus) checkPosition(ctx context.Context, p position) error {
	if p.hi > math.MaxInt64 || p.lo > math.MaxInt64 {
		return positionError(ErrPositionInvalid, p.String(), "the position %s is not one of this bus (malformed)", p)
	}
	commits := pgx.Identifier{b.schema.commits}.Sanitize()
	var kept bool
	var last int64
	err := b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+commits+` WHERE stamp = $1),
	coalesce(pg_sequence_last_value(pg_get_serial_sequence($2, 'id')::regclass), 0)`, int64(p.hi), b.tableIdent).Scan(&kept, &last)
	if err != nil {
		return busError("reading the PostgreSQL bus's history failed: "+Redacted(err, b.connString), err)
	}
	switch {
	case int64(p.hi) > last:
		return positionError(ErrPositionInvalid, p.String(), "the position %s is after the last event of this bus", p)
	case !kept:
		return b.expiredError(p)
	}
	return nil
}

// history reads, in one statement, whether p's transaction is still in
// the table and up to n rows after p, up to upto: the listener delivers
// in that order only up to its horizon, so what it has not delivered yet
// is left to it. Before this executor's first event, upto is the
// listener's starting position.
func (b *PostgresBus) history(ctx context.Context, p position, n int, upto position) ([]Event, error) {
	if start := b.startPos.Load(); start != nil && start.after(upto) {
		upto = *start
	}
	rows, err := b.pool.Query(ctx, b.sqlHistory, int64(p.hi), int64(p.lo), int64(upto.hi), int64(upto.lo), n)
	if err != nil {
		return nil, busError("reading the PostgreSQL bus's history failed: "+Redacted(err, b.connString), err)
	}
	defer rows.Close()
	var out []Event
	kept := false
	for rows.Next() {
		var ok bool
		var id, stamp *int64
		var channel, typ *string
		var payload []byte
		if err := rows.Scan(&ok, &id, &channel, &typ, &payload, &stamp); err != nil {
			return nil, busError("reading the PostgreSQL bus's history failed: "+Redacted(err, b.connString), err)
		}
		kept = ok
		if id == nil {
			continue
		}
		ev := Event{Type: *typ, Channel: *channel, Data: payload}
		ev.pos = b.rowPosition(*stamp, *id)
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, busError("reading the PostgreSQL bus's history failed: "+Redacted(err, b.connString), err)
	}
	if !kept {
		return nil, b.expiredError(p)
	}
	return out, nil
}

// historySQL is the statement of history.
func (b *PostgresBus) historySQL() string {
	commits := pgx.Identifier{b.schema.commits}.Sanitize()
	rows := `SELECT e.id, e.channel, e.event_type, e.payload, c.stamp
	FROM ` + b.tableIdent + ` e JOIN ` + commits + ` c ON c.xid = e.xid`
	// As the listener's page: the rest of p's transaction (found by its
	// xid, so that the (xid, id) index serves it), then the transactions
	// after it, each part in an index's order.
	return `SELECT k.kept, w.id, w.channel, w.event_type, w.payload, w.stamp
FROM (SELECT EXISTS (SELECT 1 FROM ` + commits + ` WHERE stamp = $1::bigint) AS kept) k
LEFT JOIN LATERAL (SELECT * FROM (
	(SELECT e.id, e.channel, e.event_type, e.payload, $1::bigint AS stamp FROM ` + b.tableIdent + ` e
		WHERE e.xid = (SELECT xid FROM ` + commits + ` WHERE stamp = $1::bigint) AND e.id > $2::bigint
		AND ($1::bigint, e.id) <= ($3::bigint, $4::bigint) ORDER BY e.id LIMIT $5)
	UNION ALL
	(` + rows + ` WHERE c.stamp > $1::bigint AND (c.stamp, e.id) <= ($3::bigint, $4::bigint) ORDER BY c.stamp, e.id LIMIT $5)
) u ORDER BY stamp, id LIMIT $5) w ON true
ORDER BY w.stamp, w.id`
}
