// Package servicetest holds what the in-process tests of the services
// share: a service run in the background and stopped, waiting for a
// condition, publish acks, and reading what a stream holds.
package servicetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/wire"
)

// Running is a service started in the background by Start, with the stats
// it keeps.
type Running[S any] struct {
	Stats  *S
	cancel context.CancelFunc
	done   chan error
}

// Start calls run in the background with new stats, until Stop or the end
// of the test.
func Start[S any](t testing.TB, run func(ctx context.Context, st *S) error) *Running[S] {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running[S]{Stats: new(S), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx, r.Stats) }()
	t.Cleanup(func() { r.Stop(t) })
	return r
}

// Stop cancels the run and waits for it to return: an error, or none within
// 30 s, fails the test. Stopping again does nothing.
func (r *Running[S]) Stop(t testing.TB) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// WaitFor polls cond until it holds, failing the test after 20 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitWithin(t, 20*time.Second, what, cond)
}

// WaitWithin polls cond every 5 ms until it holds, failing the test after
// d: the one poller of the tests (they poll, never sleep and hope).
func WaitWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Acks waits for the acks of asynchronous publishes and returns their
// stream sequences, in the order of futs.
func Acks(t testing.TB, futs []jetstream.PubAckFuture) []uint64 {
	t.Helper()
	seqs := make([]uint64, len(futs))
	for i, f := range futs {
		select {
		case a := <-f.Ok():
			seqs[i] = a.Sequence
		case err := <-f.Err():
			t.Fatal(err)
		case <-time.After(30 * time.Second):
			t.Fatal("no publish ack")
		}
	}
	return seqs
}

// Stored returns the messages a stream holds, in order. Sequences with no
// message (a work queue's acked ones) are passed over.
func Stored(t testing.TB, b *bus.Bus, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := b.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get %s seq %d: %v", stream, seq, err)
		}
		out = append(out, m)
	}
	return out
}

// DeadLetter returns the last message a service dead-lettered.
func DeadLetter(t testing.TB, b *bus.Bus, service string) *jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := b.JS.Stream(ctx, bus.StreamDeadLetter)
	if err != nil {
		t.Fatalf("stream %s: %v", bus.StreamDeadLetter, err)
	}
	m, err := s.GetLastMsgForSubject(ctx, wire.DeadLetterPrefix+service)
	if err != nil {
		t.Fatalf("dead letter of %s: %v", service, err)
	}
	return m
}

// OversizedBytes is the size of the message that made a prober retry its
// dead letter forever: it fits the server's default max payload (1 MiB),
// but not with the headers of a dead letter added.
const OversizedBytes = 1_048_476

// Oversized returns a message of exactly size bytes: head, then x's, then
// tail (the x's are the value a decoder finds bad).
func Oversized(size int, head, tail string) []byte {
	return []byte(head + strings.Repeat("x", max(0, size-len(head)-len(tail))) + tail)
}

// MaxLogEntry bounds the text of one log entry in the tests of hostile
// input: no log repeats a long value of a message.
const MaxLogEntry = 2048

// ShortLogs returns a logger that fails the test, when it ends, if an entry
// (message and fields) is longer than MaxLogEntry bytes.
func ShortLogs(t testing.TB) *zap.Logger {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	t.Cleanup(func() {
		for _, e := range logs.All() {
			n := len(e.Message)
			for k, v := range e.ContextMap() {
				n += len(k) + len(fmt.Sprint(v))
			}
			if n > MaxLogEntry {
				t.Errorf("log entry %q of %d bytes", e.Message, n)
			}
		}
	})
	return zap.New(core)
}
