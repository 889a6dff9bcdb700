package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Spool file layout: one file per batch, named by a spool-local id in hex
// so names sort in arrival order, holding a fixed header and then the
// SensorMessage frame exactly as it goes on the wire.
const (
	spoolMagic      = "VGS2"
	spoolExt        = ".vsp"
	spoolBootIDLen  = 64
	spoolHeaderSize = 4 + 8 + 4 + 4 + spoolBootIDLen + 8 + 8 // magic, seq, events, crc32c, boot id, carried drops
	spoolStateFile  = "state"
	spoolStateSize  = 512
	// spoolMemoryBytes is how much of a disk spool is also kept in memory,
	// so a connected sensor never reads its own batches back from disk.
	spoolMemoryBytes = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// spoolEntry is one sealed batch waiting for its ack.
type spoolEntry struct {
	id     uint64
	seq    uint64
	events uint32
	bootID string
	size   int64  // bytes counted against the limit
	frame  []byte // nil when only on disk
	onDisk bool
	sealed time.Time
	// carried* are the earlier drops this batch reports; if it is dropped
	// too they pass to the next batch, so no loss goes unreported.
	carriedBatches, carriedEvents uint64
	// sent is set while the batch is in flight on a stream: dropping it
	// then would report as lost a batch the backend may well accept.
	sent bool
}

// spoolStats are the spool's figures for health reports.
type spoolStats struct {
	bytes, limit                  int64
	entries                       int
	droppedBatches, droppedEvents uint64
}

// spool is the bounded queue of sealed batches. With a directory it
// survives restarts (written behind while connected, at once while not, and
// in full on close); without one it lives in memory. Writes are not
// fsynced: the spool exists to ride out a backend outage or a sensor
// restart, and a host crash changes the boot id anyway.
type spool struct {
	dir string
	max int64

	mu       sync.Mutex
	entries  []*spoolEntry
	bytes    int64
	memBytes int64
	nextID   uint64
	notify   chan struct{}
	// lost is signalled when a drop happened outside append (a refused or
	// unreadable batch), so that a loss report goes out without waiting
	// for the next event.
	lost chan struct{}

	bootID    string
	lastSeq   uint64
	lastAcked uint64
	// pending* are drops not yet reported in a batch.
	pendingBatches, pendingEvents uint64
	// dropped* are all drops since the spool opened, for health.
	droppedBatches, droppedEvents uint64
	state                         *os.File
	// connected is set while a stream is up. Batches are then written to
	// disk only once they are older than writeAfter (the backend
	// normally acknowledges them within milliseconds), or when memory is
	// short; while the backend is away every batch is written at once.
	connected  bool
	writeAfter time.Duration
}

// defaultSpoolWriteAfter is how long a batch may stay memory-only while
// connected: a sensor killed outright loses at most this much
// unacknowledged data.
const defaultSpoolWriteAfter = time.Second

// openSpool opens (or creates) the spool in dir for bootID. Batches left
// by an earlier run are queued for replay, in order. A spool without a
// directory starts its sequence at the current time in microseconds, so
// that a restarted sensor never reuses a sequence number the backend has
// already seen for this boot.
func openSpool(dir string, max int64, bootID string) (*spool, []string, error) {
	s := &spool{dir: dir, max: max, bootID: bootID, nextID: 1, notify: make(chan struct{}, 1), lost: make(chan struct{}, 1), writeAfter: defaultSpoolWriteAfter}
	if dir == "" {
		s.lastSeq = uint64(time.Now().UnixMicro())
		return s, nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create spool dir: %w", err)
	}
	st, err := os.OpenFile(filepath.Join(dir, spoolStateFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open spool state: %w", err)
	}
	s.state = st
	s.readState()
	problems, err := s.load()
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return s, problems, nil
}

// readState restores the sequence counter and unreported drops. A state
// for another boot id means the host rebooted: sequences start again at 1
// (the old boot's batches still carry their own boot id).
func (s *spool) readState() {
	buf := make([]byte, spoolStateSize)
	n, _ := s.state.ReadAt(buf, 0)
	fields := strings.Fields(string(buf[:n]))
	if len(fields) < 5 || fields[0] != s.bootID {
		return
	}
	var v [4]uint64
	for i := range v {
		x, err := strconv.ParseUint(fields[i+1], 10, 64)
		if err != nil {
			return
		}
		v[i] = x
	}
	s.lastSeq, s.lastAcked, s.pendingBatches, s.pendingEvents = v[0], v[1], v[2], v[3]
}

// writeState records the counters in place; the fixed-size record fits
// one page, so a torn write is not a practical concern.
func (s *spool) writeState() error {
	if s.state == nil {
		return nil
	}
	rec := fmt.Sprintf("%s %d %d %d %d\n", s.bootID, s.lastSeq, s.lastAcked, s.pendingBatches, s.pendingEvents)
	buf := make([]byte, spoolStateSize)
	copy(buf, rec)
	for i := len(rec); i < len(buf); i++ {
		buf[i] = ' '
	}
	if _, err := s.state.WriteAt(buf, 0); err != nil {
		return fmt.Errorf("write spool state: %w", err)
	}
	return nil
}

// load lists the spool's files; unreadable ones are removed and counted
// as dropped, and described in the returned problems.
func (s *spool) load() ([]string, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read spool dir: %w", err)
	}
	var problems []string
	for _, de := range des {
		name := de.Name()
		if !strings.HasSuffix(name, spoolExt) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, spoolExt), 16, 64)
		if err != nil {
			continue
		}
		e, err := s.readHeader(id)
		if e != nil {
			e.onDisk = true
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v (removed)", name, err))
			os.Remove(s.path(id))
			s.pendingBatches++
			s.droppedBatches++
			select {
			case s.lost <- struct{}{}:
			default:
			}
			continue
		}
		s.entries = append(s.entries, e)
		s.bytes += e.size
		if id >= s.nextID {
			s.nextID = id + 1
		}
	}
	sort.Slice(s.entries, func(i, j int) bool { return s.entries[i].id < s.entries[j].id })
	return problems, nil
}

func (s *spool) path(id uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016x%s", id, spoolExt))
}

func (s *spool) readHeader(id uint64) (*spoolEntry, error) {
	f, err := os.Open(s.path(id))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var h [spoolHeaderSize]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if string(h[:4]) != spoolMagic {
		return nil, errors.New("not a spool file")
	}
	return &spoolEntry{
		id:     id,
		seq:    binary.LittleEndian.Uint64(h[4:]),
		events: binary.LittleEndian.Uint32(h[12:]),
		bootID: strings.TrimRight(string(h[20:20+spoolBootIDLen]), "\x00"),
		size:   fi.Size(),

		carriedBatches: binary.LittleEndian.Uint64(h[20+spoolBootIDLen:]),
		carriedEvents:  binary.LittleEndian.Uint64(h[28+spoolBootIDLen:]),
	}, nil
}

// errFrameTooLarge means one batch is larger than the whole spool.
var errFrameTooLarge = errors.New("batch larger than the spool")

// append seals b with the next sequence number and queues it, dropping the
// oldest batches when it does not fit. Drops, including those made here,
// are carried in the batch it seals.
func (s *spool) append(b *batchBuilder, sensorID string, now time.Time) (*spoolEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	need := int64(b.sizeEstimate(sensorID, s.bootID) + spoolHeaderSize)
	if s.max > 0 && need > s.max {
		// Count the batch itself as dropped rather than fail the sensor.
		s.pendingBatches++
		s.pendingEvents += uint64(b.count)
		s.droppedBatches++
		s.droppedEvents += uint64(b.count)
		b.reset()
		return nil, errFrameTooLarge
	}
	for s.max > 0 && s.bytes+need > s.max {
		victim := s.oldestUnsentLocked()
		if victim == nil {
			break // only in-flight batches left; go over the limit briefly
		}
		s.dropLocked(victim)
	}
	s.lastSeq++
	events := uint32(b.count)
	frame := b.seal(batchHeader{
		sensorID:       sensorID,
		bootID:         s.bootID,
		sequence:       s.lastSeq,
		sentAt:         now,
		droppedBatches: s.pendingBatches,
		droppedEvents:  s.pendingEvents,
	})
	e := &spoolEntry{id: s.nextID, seq: s.lastSeq, events: events, bootID: s.bootID, size: int64(len(frame) + spoolHeaderSize), frame: frame, sealed: now,
		carriedBatches: s.pendingBatches, carriedEvents: s.pendingEvents}
	s.pendingBatches, s.pendingEvents = 0, 0
	s.nextID++
	s.entries = append(s.entries, e)
	s.bytes += e.size
	s.memBytes += int64(len(e.frame))
	select {
	case s.notify <- struct{}{}:
	default:
	}
	if s.dir != "" {
		// The entry is queued either way; an error means it is (for now)
		// only in memory.
		err := s.writeState()
		if werr := s.writeBehindLocked(now); err == nil {
			err = werr
		}
		if err != nil {
			return e, err
		}
	}
	return e, nil
}

// writeBehindLocked writes the batches that must be on disk now: all of
// them while disconnected, else those older than writeAfter; and it
// releases memory-held copies beyond spoolMemoryBytes.
func (s *spool) writeBehindLocked(now time.Time) error {
	for _, e := range s.entries {
		if e.onDisk {
			continue
		}
		if s.connected && now.Sub(e.sealed) < s.writeAfter && s.memBytes <= spoolMemoryBytes {
			// Entries are in sealing order: the rest are younger.
			break
		}
		if err := s.writeFile(e); err != nil {
			return err
		}
		e.onDisk = true
	}
	if s.memBytes > spoolMemoryBytes {
		for _, e := range s.entries {
			if e.onDisk && e.frame != nil {
				s.memBytes -= int64(len(e.frame))
				e.frame = nil
				if s.memBytes <= spoolMemoryBytes/2 {
					break
				}
			}
		}
	}
	return nil
}

// writeBehind writes the batches that have waited writeAfter for an ack.
func (s *spool) writeBehind(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		return nil
	}
	return s.writeBehindLocked(now)
}

// setConnected tells the spool whether a stream is up; on disconnect every
// memory-only batch goes to disk.
func (s *spool) setConnected(up bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connected = up
	if s.dir == "" || up {
		return nil
	}
	return s.writeBehindLocked(time.Now())
}

func (s *spool) writeFile(e *spoolEntry) error {
	f, err := os.OpenFile(s.path(e.id), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool batch: %w", err)
	}
	var h [spoolHeaderSize]byte
	copy(h[:], spoolMagic)
	binary.LittleEndian.PutUint64(h[4:], e.seq)
	binary.LittleEndian.PutUint32(h[12:], e.events)
	binary.LittleEndian.PutUint32(h[16:], crc32.Checksum(e.frame, crcTable))
	copy(h[20:], e.bootID)
	binary.LittleEndian.PutUint64(h[20+spoolBootIDLen:], e.carriedBatches)
	binary.LittleEndian.PutUint64(h[28+spoolBootIDLen:], e.carriedEvents)
	_, err = f.Write(h[:])
	if err == nil {
		_, err = f.Write(e.frame)
	}
	if err != nil {
		f.Close()
		os.Remove(s.path(e.id))
		return fmt.Errorf("spool batch: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("spool batch: %w", err)
	}
	return nil
}

func (s *spool) oldestUnsentLocked() *spoolEntry {
	for _, e := range s.entries {
		if !e.sent {
			return e
		}
	}
	return nil
}

// markSent flags e as in flight (sent true) or back in the queue.
func (s *spool) markSent(e *spoolEntry, sent bool) {
	s.mu.Lock()
	e.sent = sent
	s.mu.Unlock()
}

// dropLocked removes e and counts it as lost.
func (s *spool) dropLocked(e *spoolEntry) {
	select {
	case s.lost <- struct{}{}:
	default:
	}
	s.pendingBatches += 1 + e.carriedBatches
	s.pendingEvents += uint64(e.events) + e.carriedEvents
	s.droppedBatches++
	s.droppedEvents += uint64(e.events)
	s.removeLocked(e.id)
}

func (s *spool) removeLocked(id uint64) bool {
	for i, e := range s.entries {
		if e.id != id {
			continue
		}
		s.entries = append(s.entries[:i], s.entries[i+1:]...)
		s.bytes -= e.size
		s.memBytes -= int64(len(e.frame))
		if e.onDisk {
			os.Remove(s.path(id))
		}
		return true
	}
	return false
}

// ack removes an acknowledged batch.
func (s *spool) ack(e *spoolEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(e.id)
	if e.bootID == s.bootID && e.seq > s.lastAcked {
		s.lastAcked = e.seq
	}
}

// quarantine drops a batch the backend refused, counting its events as
// lost so that the loss is reported, and keeps a copy of the file under
// quarantine/ for a human to inspect (only the latest one is kept).
func (s *spool) quarantine(e *spoolEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir != "" {
		qdir := filepath.Join(s.dir, "quarantine")
		if err := os.MkdirAll(qdir, 0o700); err == nil {
			if !e.onDisk && e.frame != nil && s.writeFile(e) == nil {
				e.onDisk = true
			}
			if e.onDisk && os.Rename(s.path(e.id), filepath.Join(qdir, "last"+spoolExt)) == nil {
				e.onDisk = false
			}
		}
	}
	for _, x := range s.entries {
		if x.id == e.id {
			s.dropLocked(x)
			break
		}
	}
	s.writeState()
}

// next returns the first queued entry with an id above after (0 for the
// head), or nil.
func (s *spool) next(after uint64) *spoolEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if e.id > after {
			return e
		}
	}
	return nil
}

// frame returns e's bytes, from memory or from its file. A file that is
// missing or fails its checksum is dropped and counted.
func (s *spool) frame(e *spoolEntry) ([]byte, error) {
	if e.frame != nil {
		return e.frame, nil
	}
	buf, err := os.ReadFile(s.path(e.id))
	if err == nil && len(buf) >= spoolHeaderSize {
		frame := buf[spoolHeaderSize:]
		if crc32.Checksum(frame, crcTable) == binary.LittleEndian.Uint32(buf[16:]) {
			return frame, nil
		}
		err = errors.New("checksum mismatch")
	} else if err == nil {
		err = errors.New("truncated")
	}
	if errors.Is(err, fs.ErrNotExist) {
		// Dropped (spool full) while we were about to send it.
		return nil, fmt.Errorf("read spooled batch %d: %w", e.seq, err)
	}
	s.mu.Lock()
	s.dropLocked(e)
	s.mu.Unlock()
	return nil, fmt.Errorf("read spooled batch %d: %w", e.seq, err)
}

// unreported says whether drops wait to be reported in a batch.
func (s *spool) unreported() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pendingBatches > 0 || s.pendingEvents > 0
}

func (s *spool) lastAckedSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAcked
}

func (s *spool) stats() spoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return spoolStats{bytes: s.bytes, limit: s.max, entries: len(s.entries), droppedBatches: s.droppedBatches, droppedEvents: s.droppedEvents}
}

// close saves the counters and releases the state file.
func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == nil {
		return nil
	}
	s.connected = false
	err := s.writeBehindLocked(time.Now())
	if serr := s.writeState(); err == nil {
		err = serr
	}
	if cerr := s.state.Close(); err == nil {
		err = cerr
	}
	s.state = nil
	return err
}
