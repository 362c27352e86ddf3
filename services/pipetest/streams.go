package pipetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// Outcome is what a run left in the streams.
type Outcome struct {
	Found, Preds map[gps.Target]bool
	PredMsgs     int
	Results      []wire.Result // every result in RESULTS, batches unpacked, in order
	ResultMsgs   int           // RESULTS messages
}

// Collect reads RESULTS and PREDICTIONS.
func Collect(t testing.TB, b *bus.Bus) Outcome {
	t.Helper()
	ctx := context.Background()
	o := Outcome{Found: map[gps.Target]bool{}, Preds: map[gps.Target]bool{}}
	if err := b.EachMessage(ctx, bus.StreamResults, func(d []byte) {
		rs, err := wire.DecodeResults(d)
		if err != nil {
			t.Fatalf("a bad result in RESULTS: %v", err)
		}
		for _, r := range rs {
			a, _ := row.ParseAddr(r.IP)
			o.Found[gps.Target{Addr: a, Port: uint16(r.Port)}] = true
		}
		o.Results = append(o.Results, rs...)
		o.ResultMsgs++
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.EachMessage(ctx, bus.StreamPredictions, func(d []byte) {
		p, err := wire.DecodePrediction(d)
		if err != nil {
			t.Fatalf("a bad prediction: %v", err)
		}
		a, _ := row.ParseAddr(p.IP)
		o.Preds[gps.Target{Addr: a, Port: uint16(p.Port)}] = true
		o.PredMsgs++
	}); err != nil {
		t.Fatal(err)
	}
	return o
}

// StreamMsgs is the number of messages in a stream (-1 while the request
// fails, e.g. during a leader election).
func StreamMsgs(ctx context.Context, b *bus.Bus, stream string) int64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := b.JS.Stream(ctx, stream)
	if err != nil {
		return -1
	}
	info, err := s.Info(ctx)
	if err != nil {
		return -1
	}
	return int64(info.State.Msgs)
}

// ResultCounter counts the results in RESULTS, batches unpacked, reading
// at each call only the messages stored since the last; not for concurrent
// use.
type ResultCounter struct {
	b    *bus.Bus
	next uint64 // sequence of the next message to read
	n    int64
}

// NewResultCounter counts the results of b's RESULTS stream.
func NewResultCounter(b *bus.Bus) *ResultCounter { return &ResultCounter{b: b, next: 1} }

// Count is the number of results stored so far (-1 while the stream cannot
// be read, e.g. during a leader election; the next call goes on from there).
func (c *ResultCounter) Count(ctx context.Context) int64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := c.b.JS.Stream(ctx, bus.StreamResults)
	if err != nil {
		return -1
	}
	info, err := s.Info(ctx)
	if err != nil {
		return -1
	}
	for ; c.next <= info.State.LastSeq; c.next++ {
		m, err := s.GetMsg(ctx, c.next)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return -1
		}
		rs, _ := wire.DecodeResults(m.Data)
		c.n += int64(len(rs))
	}
	return c.n
}
