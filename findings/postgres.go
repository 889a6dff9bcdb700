package findings

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/prometheus/client_golang/prometheus"
)

// postgresMigrations is the PostgreSQL schema: SQLite's, with PostgreSQL's
// types.
var postgresMigrations = func() []string {
	out := make([]string, len(sqliteMigrations))
	r := strings.NewReplacer(" INTEGER", " BIGINT", " REAL", " DOUBLE PRECISION", " BLOB", " BYTEA")
	for i, m := range sqliteMigrations {
		out[i] = r.Replace(m)
	}
	return out
}()

// migrationLockID is the advisory lock replicas take while migrating.
const migrationLockID = 0x76696769

func openPostgres(ctx context.Context, cfg StoreConfig, log *slog.Logger, reg prometheus.Registerer) (Store, error) {
	db, err := sql.Open("pgx", cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("open postgres store %s: %w", redactURL(cfg.URL), err)
	}
	db.SetMaxOpenConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", redactURL(cfg.URL), err)
	}
	d := dialect{
		name:           "postgres",
		numbered:       true,
		forUpdate:      " FOR UPDATE",
		migrations:     postgresMigrations,
		lockMigrations: fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrationLockID),
		retryable:      pgRetryable,
		prefix:         postgresPrefix,
	}
	return newSQLStore(ctx, db, d, cfg, log, reg)
}

// pgRetryable reports deadlocks, serialization failures and unique
// violations: all mean another replica won a race and the transaction can run
// again against the new state.
func pgRetryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01", "23505":
		return true
	}
	return false
}
