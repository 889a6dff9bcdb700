package findings

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// lossOf is what a sensor lost according to one health report: records
// the kernel could not queue and batches dropped from a full spool. The
// rate limit is policy, not loss.
func lossOf(h *vigilv1.SensorHealth) int64 {
	return int64(h.GetLostRecords() + h.GetSpoolDroppedEvents() + h.GetDecodeErrors())
}

// RecordHealth implements Store.
func (s *sqlStore) RecordHealth(ctx context.Context, hello *vigilv1.Hello, h *vigilv1.SensorHealth) error {
	id := hello.GetSensorId()
	if id == "" {
		id = h.GetSensorId()
	}
	if id == "" {
		return fmt.Errorf("record health: no sensor id")
	}
	now := s.cfg.Now().UnixNano()
	return s.retry(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO sensors (sensor_id, first_seen, last_contact) VALUES (?, ?, ?) ON CONFLICT (sensor_id) DO NOTHING`), id, now, now); err != nil {
			return fmt.Errorf("record health: %w", err)
		}
		var lossTotal int64
		if err := tx.QueryRowContext(ctx, s.q(`SELECT loss_total FROM sensors WHERE sensor_id = ?`+s.d.forUpdate), id).Scan(&lossTotal); err != nil {
			return fmt.Errorf("record health: read sensor: %w", err)
		}
		if hello != nil {
			// A sensor that remembers fewer acknowledged batches than we
			// accepted lost its spool: its sequence numbers restart and its
			// next batches would look like replays.
			var accepted sql.NullInt64
			if err := tx.QueryRowContext(ctx, s.q(`SELECT max(sequence) FROM batches WHERE sensor_id = ? AND boot_id = ?`), id, hello.GetBootId()).Scan(&accepted); err != nil {
				return fmt.Errorf("record health: accepted sequences: %w", err)
			}
			problem := ""
			if accepted.Valid && uint64(accepted.Int64) > hello.GetLastAckedSequence() {
				problem = fmt.Sprintf("sensor remembers batch %d acknowledged but the backend accepted up to %d for boot %s: it lost its spool state",
					hello.GetLastAckedSequence(), accepted.Int64, hello.GetBootId())
			}
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE sensors SET stream_problem = ? WHERE sensor_id = ?`), problem, id); err != nil {
				return fmt.Errorf("record health: %w", err)
			}
			data, err := proto.Marshal(hello)
			if err != nil {
				return fmt.Errorf("record health: encode hello: %w", err)
			}
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE sensors SET hello = ?, version = ?, last_contact = ? WHERE sensor_id = ?`), data, hello.GetVersion(), now, id); err != nil {
				return fmt.Errorf("record health: hello: %w", err)
			}
		}
		if h != nil {
			data, err := proto.Marshal(h)
			if err != nil {
				return fmt.Errorf("record health: encode health: %w", err)
			}
			loss := lossOf(h)
			delta := loss - lossTotal
			if delta < 0 {
				// Counters restart with the sensor.
				delta = loss
			}
			q := `UPDATE sensors SET health = ?, last_health = ?, last_contact = ?, loss_total = ?, loss_delta = ? WHERE sensor_id = ?`
			args := []any{data, now, now, loss, delta, id}
			if h.GetVersion() != "" {
				q = `UPDATE sensors SET health = ?, last_health = ?, last_contact = ?, loss_total = ?, loss_delta = ?, version = ? WHERE sensor_id = ?`
				args = []any{data, now, now, loss, delta, h.GetVersion(), id}
			}
			if _, err := tx.ExecContext(ctx, s.q(q), args...); err != nil {
				return fmt.Errorf("record health: health: %w", err)
			}
		}
		return nil
	})
}

const sensorColumns = `sensor_id, first_seen, last_contact, batches_total, events_total, version, hello, health, last_health, loss_delta, stream_problem`

// ListSensors implements Store.
func (s *sqlStore) ListSensors(ctx context.Context) ([]*vigilv1.SensorStatus, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+sensorColumns+` FROM sensors ORDER BY sensor_id`)
	if err != nil {
		return nil, fmt.Errorf("list sensors: %w", err)
	}
	defer rows.Close()
	var out []*vigilv1.SensorStatus
	for rows.Next() {
		st, err := s.scanSensor(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sensors: %w", err)
	}
	return out, nil
}

// GetSensor implements Store.
func (s *sqlStore) GetSensor(ctx context.Context, sensorID string) (*vigilv1.SensorStatus, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+sensorColumns+` FROM sensors WHERE sensor_id = ?`), sensorID)
	if err != nil {
		return nil, fmt.Errorf("get sensor: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("get sensor: %w", err)
		}
		return nil, fmt.Errorf("sensor %s: %w", sensorID, ErrNotFound)
	}
	return s.scanSensor(rows)
}

func (s *sqlStore) scanSensor(rows *sql.Rows) (*vigilv1.SensorStatus, error) {
	var (
		id, version, streamProblem                string
		firstSeen, lastContact, lastHealth, delta int64
		batches, events                           int64
		helloData, healthData                     []byte
	)
	if err := rows.Scan(&id, &firstSeen, &lastContact, &batches, &events, &version, &helloData, &healthData, &lastHealth, &delta, &streamProblem); err != nil {
		return nil, fmt.Errorf("scan sensor: %w", err)
	}
	st := &vigilv1.SensorStatus{
		SensorId:     id,
		Version:      version,
		FirstSeen:    timestamppb.New(time.Unix(0, firstSeen)),
		LastContact:  timestamppb.New(time.Unix(0, lastContact)),
		BatchesTotal: uint64(batches),
		EventsTotal:  uint64(events),
	}
	if len(helloData) > 0 {
		hello := &vigilv1.Hello{}
		if err := proto.Unmarshal(helloData, hello); err != nil {
			return nil, fmt.Errorf("decode hello of %s: %w", id, err)
		}
		st.Host = hello.GetHost()
	}
	if len(healthData) > 0 {
		h := &vigilv1.SensorHealth{}
		if err := proto.Unmarshal(healthData, h); err != nil {
			return nil, fmt.Errorf("decode health of %s: %w", id, err)
		}
		st.Health = h
		if st.Host == nil {
			st.Host = h.GetHost()
		}
	}
	now := s.cfg.Now()
	switch {
	case st.Health == nil && now.Sub(time.Unix(0, firstSeen)) > s.cfg.HealthWindow:
		st.Problems = append(st.Problems, "no health report received")
	case st.Health != nil && now.Sub(time.Unix(0, lastHealth)) > s.cfg.HealthWindow:
		st.Problems = append(st.Problems, fmt.Sprintf("no health report for %s", now.Sub(time.Unix(0, lastHealth)).Truncate(time.Second)))
	}
	if streamProblem != "" {
		st.Problems = append(st.Problems, streamProblem)
	}
	if delta > 0 {
		st.Problems = append(st.Problems, fmt.Sprintf("lost %d events since the previous report", delta))
	}
	if h := st.Health; h != nil && h.GetSpoolLimitBytes() > 0 && h.GetSpoolBytes()*10 >= h.GetSpoolLimitBytes()*9 {
		st.Problems = append(st.Problems, "spool at least 90% full")
	}
	st.Healthy = len(st.Problems) == 0
	return st, nil
}
