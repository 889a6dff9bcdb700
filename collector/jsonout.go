package collector

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// WriteJSON writes each event from in to w as one line of the protobuf JSON
// mapping, until in is closed or ctx is done. Output is buffered and flushed
// at least every flushEvery, so a slow terminal or pipe does not hold up the
// reader once per event.
func WriteJSON(ctx context.Context, w io.Writer, in <-chan *vigilv1.Event, flushEvery time.Duration) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	defer bw.Flush()
	opts := protojson.MarshalOptions{}
	var buf []byte
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("flush events: %w", err)
			}
		case ev, ok := <-in:
			if !ok {
				return nil
			}
			var err error
			buf, err = opts.MarshalAppend(buf[:0], ev)
			if err != nil {
				return fmt.Errorf("marshal event: %w", err)
			}
			buf = append(buf, '\n')
			if _, err := bw.Write(buf); err != nil {
				return fmt.Errorf("write event: %w", err)
			}
		}
	}
}
