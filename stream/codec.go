package stream

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // the default proto codec we delegate to
	"google.golang.org/grpc/mem"
)

// zstdName is the grpc-encoding name of our compressor.
const zstdName = "zstd"

// maxDecompressedBytes bounds what one compressed message may expand to,
// whatever a server's message limit, so a small message cannot exhaust
// memory. gRPC then applies the server's own, smaller, limit.
const maxDecompressedBytes = 256 << 20

var registerZstdOnce sync.Once

// registerZstd adds zstd to gRPC's compressor registry. gRPC has no zstd of
// its own and keeps compressors in a process-wide registry; we register from
// NewClient and NewServer, once, rather than from init(), so importing this
// package has no side effect.
func registerZstd() {
	registerZstdOnce.Do(func() {
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1),
			zstd.WithZeroFrames(true))
		if err != nil {
			panic(fmt.Sprintf("zstd encoder: %v", err)) // only on invalid static options
		}
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(maxDecompressedBytes))
		if err != nil {
			panic(fmt.Sprintf("zstd decoder: %v", err))
		}
		encoding.RegisterCompressor(&zstdCompressor{enc: enc, dec: dec})
	})
}

// zstdCompressor compresses whole messages with EncodeAll/DecodeAll, which
// are safe for concurrent use and faster than zstd's streaming API for
// messages of a few hundred KiB.
type zstdCompressor struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func (z *zstdCompressor) Name() string { return zstdName }

func (z *zstdCompressor) Compress(w io.Writer) (io.WriteCloser, error) {
	return &zstdWriter{z: z, w: w}, nil
}

func (z *zstdCompressor) Decompress(r io.Reader) (io.Reader, error) {
	src, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read compressed message: %w", err)
	}
	out, err := z.dec.DecodeAll(src, nil)
	if err != nil {
		return nil, fmt.Errorf("zstd decode: %w", err)
	}
	return bytes.NewReader(out), nil
}

// zstdWriter collects a message and compresses it on Close.
type zstdWriter struct {
	z   *zstdCompressor
	w   io.Writer
	buf []byte
}

func (zw *zstdWriter) Write(p []byte) (int, error) {
	zw.buf = append(zw.buf, p...)
	return len(p), nil
}

func (zw *zstdWriter) Close() error {
	out := zw.z.enc.EncodeAll(zw.buf, make([]byte, 0, len(zw.buf)/4+64))
	_, err := zw.w.Write(out)
	return err
}

// rawFrame is a SensorMessage already in protobuf wire format: batches are
// marshalled once, when sealed, and sent from the spool as they are.
type rawFrame []byte

// frameCodec is the client's codec: it sends a rawFrame's bytes unchanged
// and hands everything else to gRPC's proto codec. Its name is "proto", so
// the backend sees an ordinary protobuf stream.
type frameCodec struct {
	proto encoding.CodecV2
}

func newFrameCodec() *frameCodec {
	return &frameCodec{proto: encoding.GetCodecV2("proto")}
}

func (c *frameCodec) Name() string { return "proto" }

func (c *frameCodec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(rawFrame); ok {
		return mem.BufferSlice{mem.SliceBuffer(f)}, nil
	}
	return c.proto.Marshal(v)
}

func (c *frameCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return c.proto.Unmarshal(data, v)
}
