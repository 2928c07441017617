package gateway

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	wsync "github.com/walletless/walletless/sync"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Errors of the PostgreSQL ledger's schema check (OpenPG).
var (
	// ErrSchemaMissing: the database has no ledger schema (or an older one): run
	// posgw migrate.
	ErrSchemaMissing = errors.New("gateway: the ledger database is not migrated")
	// ErrSchemaNewer: the database was migrated by a newer posgw.
	ErrSchemaNewer = errors.New("gateway: the ledger database schema is newer than this posgw knows")
	// ErrLedgerURL: the connection URL cannot be parsed.
	ErrLedgerURL = errors.New("gateway: bad ledger URL")
)

// migration is one embedded schema migration, migrations/NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("gateway: migrations: %w", err)
	}
	var out []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("gateway: migration file %s is not NNNN_name.sql", base)
		}
		raw, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("gateway: migrations: %w", err)
		}
		out = append(out, migration{version: v, name: base, sql: string(raw)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("gateway: migrations are not numbered 1, 2, …: %s", m.name)
		}
	}
	return out, nil
}

// SchemaVersion is the ledger schema version this posgw reads and writes.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// migrateLock is the advisory lock key that serializes posgw migrate runs.
const migrateLock = 0x706f736777 // "posgw"

// Migrate brings the database at url to this posgw's schema: it applies, each in its
// own transaction and recorded in schema_migrations, every embedded migration the
// database does not have yet. Running it again is a no-op; several at once are
// serialized by an advisory lock. A database migrated by a newer posgw is refused
// (ErrSchemaNewer). It returns the versions it applied.
func Migrate(ctx context.Context, url string) ([]int, error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("gateway: migrate: connect: %w", redactErr(err))
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrateLock)); err != nil {
		return nil, fmt.Errorf("gateway: migrate: lock: %w", err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(migrateLock)) //nolint:errcheck // closing the connection unlocks too
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY,
		name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		return nil, fmt.Errorf("gateway: migrate: %w", err)
	}
	have, err := schemaVersion(ctx, conn)
	if err != nil {
		return nil, err
	}
	if have > len(ms) {
		return nil, fmt.Errorf("%w: the database is at version %d, this posgw knows up to %d (upgrade posgw)", ErrSchemaNewer, have, len(ms))
	}
	var applied []int
	for _, m := range ms[have:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("gateway: migrate: %s: %w", m.name, err)
		}
		applied = append(applied, m.version)
	}
	return applied, nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// schemaVersion returns the highest applied migration, 0 when none (or no
// schema_migrations table).
func schemaVersion(ctx context.Context, q querier) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("gateway: schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("gateway: schema version: %w", err)
	}
	return v, nil
}

// PGConfig configures a PostgreSQL ledger.
type PGConfig struct {
	// URL is a libpq connection URL or DSN (postgres://user@host/db?sslmode=…); with
	// several hosts and target_session_attrs=read-write, new connections go to
	// whichever is the primary (failover).
	URL string
	// MaxConns bounds the connection pool; default pgxpool's (4 or the CPU count).
	MaxConns int32
	// RetryMin and RetryMax bound the wait between attempts while the database is
	// unreachable; it doubles with ±25% jitter. Defaults 100ms and 5s.
	RetryMin, RetryMax time.Duration
	Log                *slog.Logger
}

// PGLedger is the ledger in PostgreSQL: any number of posgw processes may decide on
// one database. Each Transact is one READ COMMITTED transaction; a key is decided
// once because the entry's primary key admits one insert, and the transaction that
// loses the race is run again and reads the stored decision. Rows it changes are read
// FOR UPDATE, so concurrent replays, reversals and refunds of one sale serialize.
type PGLedger struct {
	pool *pgxpool.Pool
	cfg  PGConfig
	log  *slog.Logger
}

// OpenPG connects to the ledger database and checks its schema: a database that is
// not migrated to this posgw's version is refused with ErrSchemaMissing (run posgw
// migrate), one migrated by a newer posgw with ErrSchemaNewer. The pool connects
// lazily afterwards: a database that goes away later is waited for (Transact).
func OpenPG(ctx context.Context, cfg PGConfig) (*PGLedger, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLedgerURL, redactErr(err))
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	// A posgw cut off from the database in the middle of a transaction must not hold
	// its row locks (and so other workers' keys) for long.
	if _, ok := pc.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		pc.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "30s"
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(5*time.Second, cfg.RetryMin)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("gateway: ledger database: %w", redactErr(err))
	}
	have, err := schemaVersion(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, redactErr(err)
	}
	switch want := SchemaVersion(); {
	case have < want:
		pool.Close()
		return nil, fmt.Errorf("%w: schema version %d, this posgw needs %d: run posgw migrate -ledger URL", ErrSchemaMissing, have, want)
	case have > want:
		pool.Close()
		return nil, fmt.Errorf("%w: schema version %d, this posgw knows up to %d: upgrade posgw", ErrSchemaNewer, have, want)
	}
	return &PGLedger{pool: pool, cfg: cfg, log: cfg.Log}, nil
}

// Close closes the connection pool.
func (p *PGLedger) Close() error { p.pool.Close(); return nil }

// redactErr keeps a connection error from carrying a password from the URL.
func redactErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		if at := strings.Index(msg[i:], "@"); at >= 0 {
			if colon := strings.Index(msg[i+3:i+at], ":"); colon >= 0 {
				return errors.New(msg[:i+3+colon] + ":xxxxx" + msg[i+at:])
			}
		}
	}
	return err
}

// maxRaces bounds how often one Transact is run again after losing a race (a key
// inserted by another transaction, a serialization failure or a deadlock); each run
// after a lost race reads what the winner stored, so two are the norm.
const maxRaces = 50

// Transact runs fn in one transaction and commits it. A transaction that lost a race
// for a key, or a deadlock, is run again at once; one cut off from the database (down,
// restarting, failing over) is run again after a backoff with jitter, for as long as
// ctx lasts: nothing is decided without being stored, and the caller answers only
// after Transact returned nil. Other errors (a value the database refuses) are
// returned.
func (p *PGLedger) Transact(ctx context.Context, fn func(LedgerTx) error) error {
	b := wsync.Backoff{Min: p.cfg.RetryMin, Max: p.cfg.RetryMax}
	races, outage := 0, 0
	for {
		err := p.once(ctx, fn)
		if err == nil {
			if outage > 0 {
				p.log.Info("ledger database works again", "failed_attempts", outage)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("gateway: ledger: %w", err)
		}
		switch classify(err) {
		case errRace:
			if races++; races > maxRaces {
				return fmt.Errorf("gateway: ledger: lost %d races in a row: %w", races, err)
			}
			continue
		case errDown:
			if outage == 0 || outage%20 == 0 {
				p.log.Warn("ledger database unavailable; retrying, nothing is answered meanwhile", "attempt", outage+1, "err", redactErr(err))
			}
			outage++
			var rdonly *pgconn.PgError
			if errors.As(err, &rdonly) && rdonly.Code == "25006" {
				// Connected to a standby (a failover happened): drop the pool so new
				// connections find the primary.
				p.pool.Reset()
			}
			t := time.NewTimer(b.Next())
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("gateway: ledger: %w", err)
			case <-t.C:
			}
		default:
			return fmt.Errorf("gateway: ledger: %w", err)
		}
	}
}

type errClass int

const (
	errFatal errClass = iota
	errRace
	errDown
)

// classify sorts an error of one transaction run.
func classify(err error) errClass {
	var fe *fnError
	if errors.As(err, &fe) {
		return errFatal
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505", pe.Code == "40001", pe.Code == "40P01":
			return errRace
		case pe.Code == "25006", // read-only transaction: a standby
			strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"), // insufficient resources (too many connections)
			strings.HasPrefix(pe.Code, "57"), // operator intervention: shutdown, cannot connect now
			pe.Code == "55P03":               // lock not available
			return errDown
		}
		return errFatal
	}
	// Anything else came from the connection: refused, reset, closed, timed out.
	return errDown
}

// fnError is an error of the transaction's own logic (not of the database).
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }
func (e *fnError) Unwrap() error { return e.err }

func (p *PGLedger) once(ctx context.Context, fn func(LedgerTx) error) error {
	tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit it is a no-op
	t := &pgTx{ctx: ctx, tx: tx, known: map[string]bool{}}
	if err := fn(t); err != nil {
		if t.dbErr != nil {
			return t.dbErr
		}
		return &fnError{err}
	}
	return tx.Commit(ctx)
}

// pgTx is one PostgreSQL ledger transaction.
type pgTx struct {
	ctx   context.Context
	tx    pgx.Tx
	known map[string]bool // entry keys this transaction read or wrote
	dbErr error           // the first database error, which decides retrying
}

func (t *pgTx) fail(err error) error {
	if t.dbErr == nil {
		t.dbErr = err
	}
	return err
}

// LockKeys takes a transaction-scoped advisory lock for each key, in the order of
// their 64-bit hashes (the same for every process), in one round trip. Two keys with
// one hash share a lock, which only serializes them.
func (t *pgTx) LockKeys(keys []string) error {
	seen := map[int64]bool{}
	hs := make([]int64, 0, len(keys))
	for _, k := range keys {
		h := fnv.New64a()
		h.Write([]byte(k))
		v := int64(h.Sum64())
		if !seen[v] {
			seen[v] = true
			hs = append(hs, v)
		}
	}
	slices.Sort(hs)
	var b pgx.Batch
	for _, h := range hs {
		b.Queue(`SELECT pg_advisory_xact_lock($1)`, h)
	}
	if err := t.tx.SendBatch(t.ctx, &b).Close(); err != nil {
		return t.fail(err)
	}
	return nil
}

const entryCols = `key, type, device, amount_minor, currency, scheme, masked_code, status, reason,
	created_at, batch, decided_at, requests, original_key, refunded_minor, reversed_at`

// nullTime is a time column: NULL for the zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func utc(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func scanEntry(row pgx.Row) (Entry, error) {
	var (
		e                 Entry
		created, reversed *time.Time
		decided           time.Time
	)
	err := row.Scan(&e.Key, &e.Type, &e.Device, &e.AmountMinor, &e.Currency, &e.Scheme, &e.MaskedCode, &e.Status,
		&e.Reason, &created, &e.Batch, &decided, &e.Requests, &e.OriginalKey, &e.RefundedMinor, &reversed)
	e.CreatedAt, e.DecidedAt, e.ReversedAt = utc(created), decided.UTC(), utc(reversed)
	return e, err
}

// text makes a device's free text storable: PostgreSQL's text holds no NUL byte (a
// JSON "\u0000" decodes to one), which would fail the whole batch again at every
// resend; it is stored as U+FFFD.
func text(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

func entryArgs(e Entry) []any {
	typ := e.Type
	if typ == "" {
		typ = TypeSale
	}
	return []any{e.Key, typ, e.Device, e.AmountMinor, e.Currency, text(e.Scheme), text(e.MaskedCode), e.Status, text(e.Reason),
		nullTime(e.CreatedAt), text(e.Batch), e.DecidedAt, e.Requests, e.OriginalKey, e.RefundedMinor, nullTime(e.ReversedAt)}
}

// Entry reads the entry under key and locks it for the rest of the transaction.
func (t *pgTx) Entry(key string) (Entry, bool, error) {
	e, err := scanEntry(t.tx.QueryRow(t.ctx, `SELECT `+entryCols+` FROM entries WHERE key = $1 FOR UPDATE`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, t.fail(err)
	}
	t.known[key] = true
	return e, true, nil
}

// PutEntry updates an entry this transaction read, and inserts any other: when
// another transaction stored the key first, the insert fails on the primary key and
// the whole transaction is run again (Transact), reading the stored entry this time.
func (t *pgTx) PutEntry(e Entry) error {
	args := entryArgs(e)
	if t.known[e.Key] {
		_, err := t.tx.Exec(t.ctx, `UPDATE entries SET type = $2, device = $3, amount_minor = $4, currency = $5,
			scheme = $6, masked_code = $7, status = $8, reason = $9, created_at = $10, batch = $11, decided_at = $12,
			requests = $13, original_key = $14, refunded_minor = $15, reversed_at = $16 WHERE key = $1`, args...)
		if err != nil {
			return t.fail(err)
		}
		return nil
	}
	if _, err := t.tx.Exec(t.ctx, `INSERT INTO entries (`+entryCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`, args...); err != nil {
		return t.fail(err)
	}
	t.known[e.Key] = true
	return nil
}

const attemptCols = `key, device, amount_minor, currency, kind, scheme, masked_code, outcome, reason, created_at, recorded_at`

func scanAttempt(row pgx.Row) (Attempt, error) {
	var (
		a        Attempt
		created  *time.Time
		recorded time.Time
	)
	err := row.Scan(&a.Key, &a.Device, &a.AmountMinor, &a.Currency, &a.Kind, &a.Scheme, &a.MaskedCode, &a.Outcome,
		&a.Reason, &created, &recorded)
	a.CreatedAt, a.RecordedAt = utc(created), recorded.UTC()
	return a, err
}

// Attempt returns the audit record under key.
func (t *pgTx) Attempt(key string) (Attempt, bool, error) {
	a, err := scanAttempt(t.tx.QueryRow(t.ctx, `SELECT `+attemptCols+` FROM attempts WHERE key = $1`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return Attempt{}, false, nil
	}
	if err != nil {
		return Attempt{}, false, t.fail(err)
	}
	return a, true, nil
}

// PutAttempt inserts a; a key stored meanwhile by another transaction fails it (and
// Transact runs it again).
func (t *pgTx) PutAttempt(a Attempt) error {
	_, err := t.tx.Exec(t.ctx, `INSERT INTO attempts (`+attemptCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		a.Key, a.Device, a.AmountMinor, a.Currency, text(a.Kind), text(a.Scheme), text(a.MaskedCode), text(a.Outcome), text(a.Reason),
		nullTime(a.CreatedAt), a.RecordedAt)
	if err != nil {
		return t.fail(err)
	}
	return nil
}

const batchCols = `key, device, opened_at, closed_at, totals, status, reason, recorded_at`

func scanBatch(row pgx.Row) (Batch, error) {
	var (
		b              Batch
		opened, closed *time.Time
		recorded       time.Time
		totals         []byte
	)
	if err := row.Scan(&b.Key, &b.Device, &opened, &closed, &totals, &b.Status, &b.Reason, &recorded); err != nil {
		return b, err
	}
	b.OpenedAt, b.ClosedAt, b.RecordedAt = utc(opened), utc(closed), recorded.UTC()
	if err := json.Unmarshal(totals, &b.Totals); err != nil {
		return b, fmt.Errorf("gateway: batch %q totals: %w", b.Key, err)
	}
	return b, nil
}

// Batch returns the batch close under key.
func (t *pgTx) Batch(key string) (Batch, bool, error) {
	b, err := scanBatch(t.tx.QueryRow(t.ctx, `SELECT `+batchCols+` FROM batches WHERE key = $1`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return Batch{}, false, nil
	}
	if err != nil {
		return Batch{}, false, t.fail(err)
	}
	return b, true, nil
}

// PutBatch inserts b; a key stored meanwhile by another transaction fails it (and
// Transact runs it again).
func (t *pgTx) PutBatch(b Batch) error {
	totals, err := json.Marshal(b.Totals)
	if err != nil {
		return err
	}
	_, err = t.tx.Exec(t.ctx, `INSERT INTO batches (`+batchCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		b.Key, b.Device, nullTime(b.OpenedAt), nullTime(b.ClosedAt), totals, b.Status, text(b.Reason), b.RecordedAt)
	if err != nil {
		return t.fail(err)
	}
	return nil
}

// ForBatch reads the batch's entries through the two partial indexes.
func (t *pgTx) ForBatch(device, batch string, opened, closed time.Time, fn func(Entry) error) error {
	rows, err := t.tx.Query(t.ctx, `SELECT `+entryCols+` FROM entries WHERE device = $1 AND batch = $2 AND batch <> ''
		UNION ALL
		SELECT `+entryCols+` FROM entries WHERE device = $1 AND batch = '' AND created_at >= $3 AND created_at < $4
		ORDER BY key`, device, batch, opened, closed)
	if err != nil {
		return t.fail(err)
	}
	var es []Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			rows.Close()
			return t.fail(err)
		}
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return t.fail(err)
	}
	for _, e := range es {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// each streams one query's rows to fn.
func each[T any](p *PGLedger, sql string, scan func(pgx.Row) (T, error), fn func(T) error) error {
	ctx := context.Background()
	rows, err := p.pool.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("gateway: ledger: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return fmt.Errorf("gateway: ledger: %w", err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("gateway: ledger: %w", err)
	}
	return nil
}

// ForEach calls fn for every sale and refund in key order.
func (p *PGLedger) ForEach(fn func(Entry) error) error {
	return each(p, `SELECT `+entryCols+` FROM entries ORDER BY key`, scanEntry, fn)
}

// ForEachAttempt calls fn for every audit record in key order.
func (p *PGLedger) ForEachAttempt(fn func(Attempt) error) error {
	return each(p, `SELECT `+attemptCols+` FROM attempts ORDER BY key`, scanAttempt, fn)
}

// ForEachBatch calls fn for every batch close in key order.
func (p *PGLedger) ForEachBatch(fn func(Batch) error) error {
	return each(p, `SELECT `+batchCols+` FROM batches ORDER BY key`, scanBatch, fn)
}

// Totals sums the ledger per device and currency in the database, sorted by device
// then currency (the same sums as Ledger.Totals).
func (p *PGLedger) Totals() ([]Total, error) {
	const q = `SELECT device, currency,
		count(*) FILTER (WHERE type = 'sale' AND status = 'approved'),
		coalesce(sum(amount_minor) FILTER (WHERE type = 'sale' AND status = 'approved'), 0)::bigint,
		count(*) FILTER (WHERE type = 'refund' AND status = 'approved'),
		coalesce(sum(amount_minor) FILTER (WHERE type = 'refund' AND status = 'approved'), 0)::bigint,
		count(*) FILTER (WHERE type = 'sale' AND status = 'declined'),
		count(*) FILTER (WHERE type = 'sale' AND status = 'reversed')
		FROM entries GROUP BY device, currency ORDER BY device, currency`
	var out []Total
	err := each(p, q, func(r pgx.Row) (Total, error) {
		var t Total
		err := r.Scan(&t.Device, &t.Currency, &t.SalesCount, &t.SalesMinor, &t.RefundsCount, &t.RefundsMinor, &t.Declined, &t.Reversed)
		t.NetMinor = t.SalesMinor - t.RefundsMinor
		return t, err
	}, func(t Total) error { out = append(out, t); return nil })
	if out == nil {
		out = []Total{}
	}
	return out, err
}
