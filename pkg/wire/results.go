package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// A RESULTS message carries one result or a batch of them: results of
// version 1, one JSON object per line (JSON lines, no trailing newline
// needed). A message of one line is exactly the single-result message of
// before batches, so old messages and streams read the same; and json.Marshal
// never writes a raw newline inside a value, so a line is always a whole
// result. Producers batch because every message costs the server (storing,
// delivering, acking) and the consumers (a delivery, an ack) the same
// whatever its size: at 100+ results a message that cost is gone from the
// per-result path.
//
// Limits that producers keep to: at most BatchResults results and, past
// the first result, BatchBytes bytes in one message (NATS refuses a payload
// over 1 MB by default); and no result waits more than BatchDelay for its
// batch to fill, so batching does not hold up the predictions a result
// triggers.
const (
	BatchResults = 128
	BatchBytes   = 256 << 10
	BatchDelay   = 10 * time.Millisecond
)

// DecodeResults parses and checks a RESULTS message: one result, or several,
// one per line. It fails, naming the result, if any result is bad: a
// message is used whole or not at all (dead-lettered whole, with the
// reason), so what a consumer applies never depends on where a batch broke.
func DecodeResults(b []byte) ([]Result, error) {
	rs, ok := decodeLinesFast(b)
	if !ok {
		var err error
		if rs, err = decodeStream(b); err != nil {
			return nil, err
		}
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("%w: results: empty message", ErrBad)
	}
	for i := range rs {
		if err := rs[i].check(); err != nil {
			if len(rs) == 1 {
				return nil, err
			}
			return nil, fmt.Errorf("result %d of %d: %w", i+1, len(rs), err)
		}
	}
	return rs, nil
}

// decodeStream is the general decoder: a sequence of JSON values, so a
// result pretty-printed over several lines (a tool's own producer) reads
// too. It gives what the fast decoder gives wherever that one succeeds.
func decodeStream(b []byte) ([]Result, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var rs []Result
	for {
		var r Result
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			return rs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: result %d: %s", ErrBad, len(rs)+1, short(err))
		}
		rs = append(rs, r)
	}
}

// check validates a decoded result.
func (r *Result) check() error {
	if r.V != Version {
		return fmt.Errorf("%w: result version %d, want %d", ErrBad, r.V, Version)
	}
	if !ValidPhase(r.Phase) {
		return fmt.Errorf("%w: result phase %s", ErrBad, quote(r.Phase))
	}
	if r.Cycle < 0 {
		return fmt.Errorf("%w: result cycle %d", ErrBad, r.Cycle)
	}
	if _, err := r.Service(); err != nil {
		return fmt.Errorf("%w: result: %s", ErrBad, short(err))
	}
	return nil
}

// ResultBatch builds a RESULTS message of many results (see BatchResults).
// The zero value is an empty batch.
type ResultBatch struct {
	buf     []byte
	n       int
	firstIP string
	first   int // port of the first result
	sum     uint64
	started time.Time // when the first result was added
}

// Add appends r to the batch. It adds nothing and returns false when the
// batch is not empty and r would take it past BatchBytes: send the batch,
// then add r again.
func (b *ResultBatch) Add(r *Result) (bool, error) {
	line, err := json.Marshal(r)
	if err != nil {
		return false, fmt.Errorf("encode result: %w", err)
	}
	if b.n > 0 && len(b.buf)+1+len(line) > BatchBytes {
		return false, nil
	}
	if b.n == 0 {
		b.firstIP, b.first, b.started, b.sum = r.IP, r.Port, time.Now(), fnvOffset
	} else {
		b.buf = append(b.buf, '\n')
	}
	b.buf = append(b.buf, line...)
	b.n++
	b.sum = mix(b.sum, r.IP, r.Port)
	return true, nil
}

// FNV-1a, 64 bits.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// mix adds an (ip, port) to an FNV-1a hash.
func mix(h uint64, ip string, port int) uint64 {
	const prime = fnvPrime
	for i := 0; i < len(ip); i++ {
		h = (h ^ uint64(ip[i])) * prime
	}
	h = (h ^ ':') * prime
	for p := uint64(port); ; p /= 10 {
		h = (h ^ ('0' + p%10)) * prime
		if p < 10 {
			break
		}
	}
	return (h ^ ';') * prime
}

// Len is the number of results in the batch.
func (b *ResultBatch) Len() int { return b.n }

// Full reports whether the batch should be sent: it holds BatchResults
// results or BatchBytes bytes.
func (b *ResultBatch) Full() bool { return b.n >= BatchResults || len(b.buf) >= BatchBytes }

// Due reports whether the oldest result has waited BatchDelay or more.
func (b *ResultBatch) Due(now time.Time) bool { return b.n > 0 && now.Sub(b.started) >= BatchDelay }

// ID is a Nats-Msg-Id for the batch, the same for the same results in the
// same order: "<prefix>:<ip>:<port>" of its first result, which is the id
// of a single result, and for more than one result ":<n>:<hash>", the
// hash (FNV-1a, 64 bits, hex) of every (ip, port) in order. A republished
// batch is thus de-duplicated by the server, and two different batches
// never share an id (which would drop the second).
func (b *ResultBatch) ID(prefix string) string {
	id := prefix + ":" + b.firstIP + ":" + strconv.Itoa(b.first)
	if b.n > 1 {
		id += ":" + strconv.Itoa(b.n) + ":" + strconv.FormatUint(b.sum, 16)
	}
	return id
}

// First is the address and port of the first result.
func (b *ResultBatch) First() (string, int) { return b.firstIP, b.first }

// Sum is the hash of the batch's (ip, port)s in order (see ID).
func (b *ResultBatch) Sum() uint64 { return b.sum }

// Take returns the message and empties the batch; the message is the
// caller's (a retried publish resends it).
func (b *ResultBatch) Take() []byte {
	data := b.buf
	*b = ResultBatch{buf: make([]byte, 0, len(data))} // the next batch is most likely as big
	return data
}
