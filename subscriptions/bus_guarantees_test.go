//go:build !mutate

// The buses' guarantees, against real servers: redis-server and
// PostgreSQL. The engine area of `make mutate` leaves these tests out, as
// the other bus tests; the buses area runs them.

package subscriptions

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/redis/go-redis/v9"

	"github.com/fraiseql/fraiseql-subscriptions/internal/pgtest"
	"github.com/fraiseql/fraiseql-subscriptions/internal/redistest"
)

// busFixture opens executors with a given InstanceID on one bus, paused
// (Resume starts their reader), and a publisher that is not an executor.
type busFixture struct {
	cfg     func(instanceID string) BusConfig
	open    func(t *testing.T, instanceID string) *Executor
	publish func(t *testing.T, evs []Event)
}

func redisFixture(t *testing.T) busFixture {
	srv := redistest.Start(t)
	return redisFixtureOn(t, srv.URL())
}

func redisFixtureOn(t *testing.T, url string) busFixture {
	cfg := func(id string) BusConfig {
		return BusConfig{Kind: BusRedis, Redis: RedisOptions{URL: url, ConsumerGroup: "g", InstanceID: id, DialTimeout: 2 * time.Second}}
	}
	return busFixture{
		cfg:  cfg,
		open: func(t *testing.T, id string) *Executor { return openExecutor(t, cfg(id)) },
		publish: func(t *testing.T, evs []Event) {
			publishBatchOn(t, cfg(""), evs)
		},
	}
}

func postgresFixture(t *testing.T) busFixture {
	srv := pgtest.Start(t)
	return postgresFixtureOn(t, srv.ConnString())
}

func postgresFixtureOn(t *testing.T, connString string) busFixture {
	cfg := func(id string) BusConfig {
		return BusConfig{Kind: BusPostgres, Postgres: PostgresOptions{ConnString: connString, InstanceID: id,
			PollInterval: 50 * time.Millisecond, ConnectTimeout: 5 * time.Second}}
	}
	return busFixture{
		cfg:  cfg,
		open: func(t *testing.T, id string) *Executor { return openExecutor(t, cfg(id)) },
		publish: func(t *testing.T, evs []Event) {
			publishBatchOn(t, cfg(""), evs)
		},
	}
}

func openExecutor(t *testing.T, cfg BusConfig) *Executor {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := NewExecutor(ctx, Options{Bus: cfg, QueueSize: 1 << 16, Paused: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// publishBatchOn publishes evs, in batches, through a bus that is not
// started.
func publishBatchOn(t *testing.T, cfg BusConfig, evs []Event) {
	t.Helper()
	bus, err := NewBus(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close(context.Background())
	for start := 0; start < len(evs); start += 500 {
		if err := bus.PublishBatch(context.Background(), evs[start:min(start+500, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
}

func resume(t *testing.T, e *Executor) {
	t.Helper()
	if err := e.Resume(); err != nil {
		t.Fatal(err)
	}
}

func userEvents(from, n int) []Event {
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = Event{Type: "changed", Channel: "users", Data: []byte(fmt.Sprintf(`{"id":%d}`, from+i))}
	}
	return evs
}

// subscribeMany registers k subscriptions to users (dispatch then takes
// long enough for Close to land inside a read) and one to done.
func subscribeMany(t *testing.T, e *Executor, k int) {
	t.Helper()
	for i := 0; i < k; i++ {
		register(t, e, sub{id: fmt.Sprintf("s%d", i)})
	}
	register(t, e, sub{id: "done", query: `subscription { done { id } }`})
}

// Close while a read is being dispatched: what the reader took and did not
// dispatch is neither acknowledged nor stored, so the next executor with
// the same InstanceID dispatches exactly the rest.
func checkCloseLosesNothing(t *testing.T, f busFixture) {
	for round := 0; round < 3; round++ {
		closeOnce(t, f, round)
	}
}

func closeOnce(t *testing.T, f busFixture, round int) {
	const n, k = 3000, 40
	for attempt := 0; ; attempt++ {
		id := fmt.Sprintf("close-%d-%d", round, attempt)
		a := f.open(t, id)
		subscribeMany(t, a, k)
		f.publish(t, userEvents(0, n))
		resume(t, a) // the reader faces a backlog of whole pages
		deadline := time.Now().Add(20 * time.Second)
		for a.Metrics().EventsDelivered == 0 {
			if time.Now().After(deadline) {
				t.Fatal("nothing dispatched")
			}
			runtime.Gosched()
		}
		if err := a.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		gotA := a.Metrics().EventsDelivered / k
		if gotA == n {
			if attempt == 4 {
				t.Fatal("Close never landed inside a read")
			}
			continue
		}
		b := f.open(t, id)
		subscribeMany(t, b, k)
		resume(t, b)
		f.publish(t, []Event{{Type: "changed", Channel: "done", Data: []byte(`{"id":1}`)}})
		if fr := nextWait(t, b, "done"); fr != frame("done", `{"done":{"id":1}}`) {
			t.Fatal(fr)
		}
		// The next run dispatches exactly the rest, in order.
		frames := nextAll(t, b, "s0")
		if len(frames) != n-int(gotA) {
			t.Fatalf("closed after %d events, the next run dispatched %d: %d of %d", gotA, len(frames), int(gotA)+len(frames), n)
		}
		for i, fr := range frames {
			if want := frame("s0", fmt.Sprintf(`{"users":{"id":%d}}`, int(gotA)+i)); fr != want {
				t.Fatalf("closed after %d events, the next run's event %d is %s", gotA, i, fr)
			}
		}
		return
	}
}

// Close returns, its listener done and its pool closed: the listener's last
// step, which for an anonymous listener removes its position row on a
// pooled connection, gives that connection back. (The first test of the
// PostgreSQL bus in file order: a Close that hangs fails here, and go test
// -failfast stops, rather than hanging at the end of every later test.)
func TestPostgresBusCloseReturns(t *testing.T) {
	srv := pgtest.Start(t)
	var c collector
	bus := startPgBus(t, PostgresOptions{ConnString: srv.ConnString()}, &c)
	waitReads(t, bus, 1)
	closed := make(chan error, 1)
	go func() { closed <- bus.Close(context.Background()) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a hang guard, generous for a loaded machine
		t.Fatal("Close did not return")
	}
	var rows int
	if err := pgConnect(t, srv.ConnString()).QueryRow(context.Background(),
		`SELECT count(*) FROM fraiseql_events_positions WHERE instance_id = $1`, bus.listenerID).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("the anonymous listener's position: %d rows (%v)", rows, err)
	}
}

func TestRedisBusCloseLosesNothing(t *testing.T) { checkCloseLosesNothing(t, redisFixture(t)) }

func TestPostgresBusCloseLosesNothing(t *testing.T) { checkCloseLosesNothing(t, postgresFixture(t)) }

// Concurrent publishers, from Go and from SQL transactions that commit
// later than they publish: two live listeners, one stopped and resumed
// midway and one that starts after all of it deliver every event once, in
// the same order.
func TestPostgresBusOneOrder(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	opts := func(id string) PostgresOptions {
		return PostgresOptions{ConnString: srv.ConnString(), InstanceID: id, PollInterval: 20 * time.Millisecond}
	}
	var live1, live2, resumed, late collector
	startPgBus(t, opts(""), &live1)
	startPgBus(t, opts(""), &live2)
	first := startPgBus(t, opts("resumed"), &resumed)
	lateBus := startPgBus(t, opts("late"), &late) // stores its position, then stops
	if err := lateBus.Close(ctx); err != nil {
		t.Fatal(err)
	}
	pub := startPgBus(t, opts(""), nil)

	const publishers, txs = 6, 40
	var wg sync.WaitGroup
	total := 0
	for p := 0; p < publishers; p++ {
		total += txs * 2
		conn := pgConnect(t, srv.ConnString())
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < txs; i++ {
				if p%2 == 0 { // from Go: a batch of two, one transaction
					if err := pub.PublishBatch(ctx, []Event{pgEvent(fmt.Sprint(p), 2*i), pgEvent(fmt.Sprint(p), 2*i+1)}); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				// From SQL: two publishes, then a pause before the commit,
				// so that transactions stamped later commit earlier.
				tx, err := conn.Begin(ctx)
				if err == nil {
					_, err = tx.Exec(ctx, `SELECT fraiseql_publish('ch', 'tick', jsonb_build_object('src', $1::text, 'n', $2::int)),
						fraiseql_publish('ch', 'tick', jsonb_build_object('src', $1::text, 'n', $2::int + 1)), pg_sleep(random() * 0.004)`,
						fmt.Sprint(p), 2*i)
				}
				if err == nil {
					err = tx.Commit(ctx)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}(p)
	}
	// The resumed listener stops midway and starts again from its position.
	for len(resumed.events()) < total/3 {
		time.Sleep(time.Millisecond)
	}
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	startPgBus(t, opts("resumed"), &resumed)
	startPgBus(t, opts("late"), &late)

	want := live1.waitFor(t, total, 30*time.Second)
	seen := map[string]bool{}
	for _, ev := range want {
		if seen[string(ev.Data)] {
			t.Fatalf("%s delivered twice", ev.Data)
		}
		seen[string(ev.Data)] = true
	}
	for name, c := range map[string]*collector{"live": &live2, "resumed": &resumed, "late": &late} {
		got := c.waitFor(t, total, 30*time.Second)
		differ := 0
		for i := range want {
			if string(got[i].Data) != string(want[i].Data) {
				differ++
			}
		}
		if differ > 0 {
			t.Errorf("the %s listener's order differs from the first's at %d of %d places", name, differ, total)
		}
	}
}

// One running executor per InstanceID: a second is refused with
// ErrInstanceInUse, and starts once the first has closed.
func checkOneOwner(t *testing.T, f busFixture) {
	a := f.open(t, "owner")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	second, err := NewExecutor(ctx, Options{Bus: f.cfg("owner")})
	if err == nil {
		second.Close(ctx)
		t.Fatal("a second executor started with an instance id in use")
	}
	if !errors.Is(err, ErrInstanceInUse) || KindOf(err) != KindValue || !strings.Contains(err.Error(), `instance_id "owner" is in use`) {
		t.Fatalf("got %v, want ErrInstanceInUse", err)
	}
	// Another id is free meanwhile.
	f.open(t, "other")
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b := f.open(t, "owner")
	resume(t, b)
	register(t, b, sub{id: "s"})
	f.publish(t, userEvents(0, 1))
	if fr := nextWait(t, b, "s"); fr != frame("s", `{"users":{"id":0}}`) {
		t.Fatal(fr)
	}
}

func TestRedisBusOneOwnerPerInstance(t *testing.T) { checkOneOwner(t, redisFixture(t)) }

func TestPostgresBusOneOwnerPerInstance(t *testing.T) { checkOneOwner(t, postgresFixture(t)) }

// The lease of a Redis executor that died without closing expires, and
// then a successor starts.
func TestRedisBusLeaseOfCrashedOwnerExpires(t *testing.T) {
	srv := redistest.Start(t)
	f := redisFixtureOn(t, srv.URL())
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer raw.Close()
	key := defaultRedisStream + ":owner:g:crashed"
	if err := raw.Set(context.Background(), key, "a dead executor's token", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewExecutor(context.Background(), Options{Bus: f.cfg("crashed")}); !errors.Is(err, ErrInstanceInUse) {
		t.Fatalf("got %v, want ErrInstanceInUse", err)
	}
	for raw.Exists(context.Background(), key).Val() == 1 {
		time.Sleep(20 * time.Millisecond)
	}
	e := f.open(t, "crashed")
	if ttl := raw.PTTL(context.Background(), key).Val(); ttl <= 0 || ttl > redisLeaseTTL {
		t.Fatalf("the successor's lease has a TTL of %v", ttl)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if raw.Exists(context.Background(), key).Val() != 0 {
		t.Fatal("Close left the lease")
	}
}

// TestCrashChild is the child process of the crash tests: it starts a bus
// named by the environment and prints each event it delivers, until it is
// killed. Run directly, it does nothing.
func TestCrashChild(t *testing.T) {
	kind, target := os.Getenv("FRAISEQL_CRASH_BUS"), os.Getenv("FRAISEQL_CRASH_TARGET")
	if kind == "" {
		return
	}
	var bus Bus
	var err error
	switch kind {
	case BusRedis:
		var rb Bus
		if rb, err = NewRedisBus(RedisOptions{URL: target, ConsumerGroup: "g", InstanceID: "crash"}); err == nil {
			rb.(*redisBus).lease.ttl = time.Second // its successor waits that long
		}
		bus = rb
	default:
		bus, err = NewPostgresBus(PostgresOptions{ConnString: target, InstanceID: "crash", PollInterval: 50 * time.Millisecond})
	}
	if err == nil {
		err = bus.Start(context.Background(), func(ev Event) { os.Stdout.Write(append(ev.Data, '\n')) })
	}
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	time.Sleep(time.Minute) // until killed
}

// checkCrashReplay: a process reading a backlog of n events is killed
// (SIGKILL) mid-read; its successor with the same InstanceID delivers
// every event the first did not, and repeats at most bound of those the
// first delivered.
func checkCrashReplay(t *testing.T, kind, target string, cfg BusConfig, bound int) {
	const n, killAt = 5000, 1500
	// The instance's place on the bus, before the backlog.
	first := openExecutor(t, cfg)
	if err := first.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	bus, err := NewBus(BusConfig{Kind: cfg.Kind, Redis: RedisOptions{URL: cfg.Redis.URL, ConsumerGroup: "g"},
		Postgres: PostgresOptions{ConnString: cfg.Postgres.ConnString}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.PublishBatch(context.Background(), userEvents(0, n)); err != nil { // one transaction on PostgreSQL
		t.Fatal(err)
	}
	bus.Close(context.Background())

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), "FRAISEQL_CRASH_BUS="+kind, "FRAISEQL_CRASH_TARGET="+target)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	byChild := map[int]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var ev struct{ ID *int }
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.ID == nil {
			continue // the test framework's own lines, or a line cut by the kill
		}
		byChild[*ev.ID] = true
		if len(byChild) == killAt {
			cmd.Process.Kill()
		}
	}
	cmd.Wait()
	if len(byChild) < killAt || len(byChild) == n {
		t.Fatalf("the child delivered %d events before it was killed", len(byChild))
	}

	var c collector
	var next Bus
	for deadline := time.Now().Add(15 * time.Second); ; {
		if next, err = NewBus(cfg); err != nil {
			t.Fatal(err)
		}
		if err = next.Start(context.Background(), c.deliver); err == nil {
			break
		}
		if !errors.Is(err, ErrInstanceInUse) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the dead owner's lock or lease goes
	}
	defer next.Close(context.Background())
	repeated := 0
	for deadline := time.Now().Add(20 * time.Second); ; {
		evs := c.events()
		if len(evs) > 0 && string(evs[len(evs)-1].Data) == fmt.Sprintf(`{"id":%d}`, n-1) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the successor delivered %d events", len(evs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := map[int]bool{}
	for _, ev := range c.events() {
		var d struct{ ID int }
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		if got[d.ID] {
			t.Fatalf("the successor delivered %d twice", d.ID)
		}
		got[d.ID] = true
		if byChild[d.ID] {
			repeated++
		}
	}
	for i := 0; i < n; i++ {
		if !got[i] && !byChild[i] {
			t.Fatalf("event %d was lost", i)
		}
	}
	t.Logf("killed after %d events; the successor repeated %d", len(byChild), repeated)
	if repeated > bound {
		t.Fatalf("the successor repeated %d events, over the bound of %d", repeated, bound)
	}
}

func TestRedisBusCrashReplayIsBounded(t *testing.T) {
	srv := redistest.Start(t)
	checkCrashReplay(t, BusRedis, srv.URL(), BusConfig{Kind: BusRedis,
		Redis: RedisOptions{URL: srv.URL(), ConsumerGroup: "g", InstanceID: "crash"}}, redisAckEvery)
}

func TestPostgresBusCrashReplayIsBounded(t *testing.T) {
	srv := pgtest.Start(t)
	checkCrashReplay(t, BusPostgres, srv.ConnString(), BusConfig{Kind: BusPostgres,
		Postgres: PostgresOptions{ConnString: srv.ConnString(), InstanceID: "crash", PollInterval: 50 * time.Millisecond}}, pgPageSize)
}

// Pruning spares what a live listener has not read, even one that has not
// read at all yet, and counts and logs what it takes from a stopped
// InstanceID, which reports it when it starts again.
func TestPostgresBusPruningSparesLiveListeners(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	newBus := func(id string, hold <-chan struct{}, c *collector, log Logger) *PostgresBus {
		t.Helper()
		b, err := newPostgresBus(PostgresOptions{ConnString: srv.ConnString(), InstanceID: id, Retention: time.Microsecond,
			PollInterval: 20 * time.Millisecond, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		b.pruneEvery = 20 * time.Millisecond
		c.settle = func(t *testing.T) { waitReads(t, b, 2) }
		if hold != nil {
			b.holdReader(hold)
		}
		t.Cleanup(func() { b.Close(context.Background()) })
		if err := b.Start(ctx, c.deliver); err != nil {
			t.Fatal(err)
		}
		return b
	}
	rows := func() int {
		var n int
		if err := pgConnect(t, srv.ConnString()).QueryRow(ctx, `SELECT count(*) FROM fraiseql_events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var cd, cl, ca, cr collector
	if err := newBus("down", nil, &cd, nil).Close(ctx); err != nil { // stored, then stopped
		t.Fatal(err)
	}
	hold := make(chan struct{})
	newBus("", hold, &cl, nil)     // live, anonymous, not reading yet
	newBus("late", hold, &cr, nil) // live, with an InstanceID, not reading yet
	a := newBus("", nil, &ca, nil) // reads and prunes
	if err := a.PublishBatch(ctx, userEvents(0, 10)); err != nil {
		t.Fatal(err)
	}
	ca.waitFor(t, 10, 10*time.Second)
	for before, deadline := a.prunes.Load(), time.Now().Add(20*time.Second); a.prunes.Load() < before+3; {
		if time.Now().After(deadline) {
			t.Fatalf("%d prunings in 20 s, want 3", a.prunes.Load()-before)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := rows(); n != 10 {
		t.Fatalf("%d of 10 rows left while two live listeners had not read them", n)
	}
	close(hold)
	cl.waitFor(t, 10, 10*time.Second)
	cr.waitFor(t, 10, 10*time.Second)
	for deadline := time.Now().Add(10 * time.Second); rows() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d rows left once every live listener read them", rows())
		}
		time.Sleep(10 * time.Millisecond)
	}
	sink := NewLogSink(0)
	down := newBus("down", nil, &cd, sink)
	if got := down.Stats().PrunedUnread; got != 10 {
		t.Fatalf("the stopped listener reports %d events pruned before it read them, want 10", got)
	}
	recs, _ := sink.Wait(ctx)
	if len(recs) == 0 || !strings.Contains(recs[0].Msg, `10 events of "fraiseql_events" were pruned`) || recs[0].Level != LogWarning {
		t.Fatalf("log: %+v", recs)
	}
}

// Concurrent publishers share transactions (group commit); events that
// PostgreSQL would refuse fail alone: a NUL in a channel before grouping,
// an event a constraint refuses after the shared transaction failed, when
// the others are published again one by one.
func TestPostgresGroupCommitFailsOnlyBadEvents(t *testing.T) {
	srv := pgtest.Start(t)
	e := openExecutor(t, postgresFixtureOn(t, srv.ConnString()).cfg(""))
	srv.Exec(t, `ALTER TABLE fraiseql_events ADD CONSTRAINT no_poison CHECK (event_type <> 'poison')`)
	const threads, each = 16, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for th := 0; th < threads; th++ {
		wg.Add(1)
		go func(th int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				ev := Event{Type: "changed", Channel: "users", Data: []byte(fmt.Sprintf(`{"id":%d}`, th*each+i))}
				want := ""
				switch i % 10 {
				case 3:
					ev.Channel, want = "us\x00ers", "channel must not contain NUL characters"
				case 7:
					ev.Type, want = "poison", "no_poison"
				}
				err := e.Publish(context.Background(), ev)
				var got string
				if err != nil {
					got = err.Error()
				}
				if (want == "") != (err == nil) || (want != "" && !strings.Contains(got, want)) {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%q %q: got %q, want %q", ev.Channel, ev.Type, got, want))
					mu.Unlock()
				}
			}
		}(th)
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d wrong outcomes, first: %s", len(failures), failures[0])
	}
	if st := e.GroupCommitStats(); st.Events <= st.Flushes {
		t.Fatalf("no transaction was shared (%d events in %d flushes)", st.Events, st.Flushes)
	}
	var n int
	if err := pgConnect(t, srv.ConnString()).QueryRow(context.Background(), `SELECT count(*) FROM fraiseql_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != threads*each*8/10 {
		t.Fatalf("%d events published, want %d", n, threads*each*8/10)
	}
}

// A position stored by an earlier release (a snapshot, no stamp) resumes
// at the first transaction that snapshot had not seen finish.
func TestPostgresBusResumesAnOlderPosition(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	pub := startPgBus(t, PostgresOptions{ConnString: srv.ConnString()}, nil)
	if err := pub.Publish(ctx, pgEvent("before", 0)); err != nil { // creates the schema
		t.Fatal(err)
	}
	admin := pgConnect(t, srv.ConnString())
	mustExec(t, admin, `INSERT INTO fraiseql_events_positions (instance_id, snapshot) VALUES ('old', pg_current_snapshot())`)
	want := []Event{pgEvent("after", 1), pgEvent("after", 2), pgEvent("after", 3)}
	for _, ev := range want {
		if err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	var c collector
	startPgBus(t, PostgresOptions{ConnString: srv.ConnString(), InstanceID: "old", PollInterval: 20 * time.Millisecond}, &c)
	checkInOrder(t, c.waitFor(t, len(want), 10*time.Second), want)
}

// dropProxy forwards TCP connections to target; once armed, it swallows
// the next reply of the server and breaks that connection, as a network
// failure after a request was sent would.
type dropProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
}

func startDropProxy(t *testing.T, target string) *dropProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *dropProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *dropProxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	go func() { io.Copy(server, client); server.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 && p.armed.CompareAndSwap(true, false) {
			break // the reply is lost with the connection
		}
		if n > 0 {
			if _, werr := client.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	client.Close()
	server.Close()
}

// A publish whose reply is lost raises ErrOutcomeUnknown although the
// event was published; a retry with the same idempotency key is accepted
// and the event is delivered once. Errors that mean "not published" stay
// as they are.
func checkRetrySafePublish(t *testing.T, direct, proxied busFixture, proxy *dropProxy) {
	ctx := context.Background()
	reader := direct.open(t, "")
	resume(t, reader)
	register(t, reader, sub{id: "s"})
	// A bus without a reader: the proxy then carries the publisher's
	// traffic alone.
	pub, err := NewBus(proxied.cfg(""))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	ev := func(n int, key string) Event {
		return Event{Type: "changed", Channel: "users", Data: []byte(fmt.Sprintf(`{"id":%d}`, n)), IdempotencyKey: key}
	}
	if err := pub.Publish(ctx, ev(0, "")); err != nil { // warm: the connection and the schema
		t.Fatal(err)
	}
	for _, batch := range []bool{false, true} {
		key := fmt.Sprintf("retry-%v", batch)
		proxy.armed.Store(true)
		var err error
		if batch {
			err = pub.PublishBatch(ctx, []Event{ev(1, key+"-a"), ev(2, key+"-b")})
		} else {
			err = pub.Publish(ctx, ev(1, key))
		}
		if !errors.Is(err, ErrOutcomeUnknown) || !strings.Contains(err.Error(), "the outcome is unknown") {
			t.Fatalf("batch=%v: got %v, want ErrOutcomeUnknown", batch, err)
		}
		// The retry, with the same keys, is accepted.
		if batch {
			err = pub.PublishBatch(ctx, []Event{ev(1, key+"-a"), ev(2, key+"-b")})
		} else {
			err = pub.Publish(ctx, ev(1, key))
		}
		if err != nil {
			t.Fatalf("batch=%v: the retry: %v", batch, err)
		}
	}
	if err := pub.Publish(ctx, ev(9, "")); err != nil {
		t.Fatal(err)
	}
	want := []string{`{"users":{"id":0}}`, `{"users":{"id":1}}`, `{"users":{"id":1}}`, `{"users":{"id":2}}`, `{"users":{"id":9}}`}
	for i, w := range want {
		if fr := nextWait(t, reader, "s"); fr != frame("s", w) {
			t.Fatalf("event %d: got %s, want %s (a retry delivered twice?)", i, fr, w)
		}
	}
	// Refused before sending: not an unknown outcome.
	if err := reader.Publish(ctx, Event{Type: "changed", Channel: "us\x00ers", Data: []byte(`{}`)}); errors.Is(err, ErrOutcomeUnknown) || err == nil {
		t.Fatalf("a refused event: %v", err)
	}
}

func TestRedisBusRetrySafePublish(t *testing.T) {
	srv := redistest.Start(t)
	proxy := startDropProxy(t, srv.Addr())
	checkRetrySafePublish(t, redisFixtureOn(t, srv.URL()), redisFixtureOn(t, fmt.Sprintf("redis://127.0.0.1:%d/0", proxy.port())), proxy)
}

func TestPostgresBusRetrySafePublish(t *testing.T) {
	srv := pgtest.Start(t)
	proxy := startDropProxy(t, fmt.Sprintf("127.0.0.1:%d", srv.Port))
	checkRetrySafePublish(t, postgresFixtureOn(t, srv.ConnString()),
		postgresFixtureOn(t, fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", proxy.port())), proxy)
}
