package resultpipe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/wire"
)

// recorder is a Handler that records what it applies. It plays dead on
// the first delivery of message dropSeq (takes it without advancing Seq),
// as if that delivery had been lost in flight, so the next one arrives
// after a gap.
type recorder struct {
	c       *Core
	dropSeq uint64
	dropped bool

	mu       sync.Mutex
	applied  []uint64 // sequences applied, in order
	results  int
	resyncs  int
	idles    int
	appliedN int // items reported to Applied
}

func (r *recorder) Apply(ctx context.Context, it *Item) error {
	if r.c.Skip(it) {
		return nil
	}
	if it.Seq == r.dropSeq && !r.dropped {
		r.dropped = true
		return nil
	}
	if it.Err != nil {
		if err := r.c.DeadLetter(ctx, it); err != nil {
			return err
		}
	} else {
		r.c.CountResults(it.Results)
		r.c.Hold(it.Msg)
	}
	r.mu.Lock()
	r.applied = append(r.applied, it.Seq)
	r.results += len(it.Results)
	r.mu.Unlock()
	r.c.SetSeq(it.Seq)
	return nil
}

func (r *recorder) Applied(_ context.Context, items []Item) error {
	r.mu.Lock()
	r.appliedN += len(items)
	r.mu.Unlock()
	return nil
}

func (r *recorder) Idle(ctx context.Context) error {
	r.c.ConfirmAcks(ctx)
	r.mu.Lock()
	r.idles++
	r.mu.Unlock()
	return nil
}

func (r *recorder) Resync(context.Context) error {
	r.mu.Lock()
	r.resyncs++
	r.mu.Unlock()
	return nil
}

func (r *recorder) snapshot() (applied []uint64, results, resyncs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.applied...), r.results, r.resyncs
}

func publishResults(t *testing.T, b *bus.Bus, n int, bad map[int]bool) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		data := []byte("not a result")
		if !bad[i] {
			var err error
			data, err = json.Marshal(wire.Result{V: wire.Version, IP: fmt.Sprintf("127.1.0.%d", i+1), Port: 80, Phase: wire.PhaseSeed,
				Protocol: "http", Data: "HTTP/1.1 200 OK", Time: time.Now().UTC(), Source: "test"})
			if err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.JS.Publish(ctx, wire.ResultsSubject(wire.PhaseSeed), data); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLoopGapResync: a delivery lost in flight is noticed at the next
// message, the consumer is recreated from the first one not processed, and
// every message is processed once, in stream order; a bad one is
// dead-lettered and counts as processed.
func TestLoopGapResync(t *testing.T) {
	b := bustest.New(t)
	const n = 40
	publishResults(t, b, n, map[int]bool{7: true})

	st := &Stats{}
	c := NewCore(b, "looptest", nil, st, nil)
	r := &recorder{c: c, dropSeq: 20}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Loop(ctx, LoopConfig{Fetch: 8}, r) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		if applied, _, _ := r.snapshot(); len(applied) == n {
			break
		}
		if time.Now().After(deadline) {
			applied, _, _ := r.snapshot()
			t.Fatalf("applied %d of %d messages in 30 s: %v", len(applied), n, applied)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("loop: %v", err)
	}
	applied, results, resyncs := r.snapshot()
	for i, seq := range applied {
		if seq != uint64(i+1) {
			t.Fatalf("applied out of order or twice: %v", applied)
		}
	}
	if results != n-1 || st.Results.Load() != n-1 {
		t.Fatalf("%d results applied, %d counted; want %d", results, st.Results.Load(), n-1)
	}
	if resyncs != 1 || st.Resyncs.Load() != 1 {
		t.Fatalf("%d resyncs (%d counted), want 1", resyncs, st.Resyncs.Load())
	}
	if st.Bad.Load() != 1 {
		t.Fatalf("%d dead-lettered, want 1", st.Bad.Load())
	}
	if st.Seq.Load() != n || c.Seq != n {
		t.Fatalf("seq %d (stats %d), want %d", c.Seq, st.Seq.Load(), n)
	}
	// The bad message is on the service's dead-letter subject.
	info, err := b.JS.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := info.Info(context.Background()); err != nil || s.State.Msgs != 1 {
		t.Fatalf("dead letters: %v, err %v; want 1", s.State.Msgs, err)
	}
}

// TestSnapshotter: a snapshot is due after every results or interval when
// the state changed; the final one is stored once and not again when
// nothing changed; a failed upload makes the next one due.
func TestSnapshotter(t *testing.T) {
	st := &Stats{}
	c := NewCore(nil, "snaptest", nil, st, nil)
	var mu sync.Mutex
	var stored []string
	fail := false
	c.Snap.Encode = func(w io.Writer, seq uint64) error {
		_, err := fmt.Fprintf(w, "state at %d", seq)
		return err
	}
	c.Snap.Put = func(_ context.Context, data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return fmt.Errorf("store down")
		}
		stored = append(stored, string(bytes.Clone(data)))
		return nil
	}
	c.Snap.Reset(10)
	if c.Snap.Due(10, 5, time.Hour) {
		t.Fatal("due without a change")
	}
	c.Snap.Since = 4
	if c.Snap.Due(14, 5, time.Hour) {
		t.Fatal("due before every results")
	}
	c.Snap.Since = 5
	if !c.Snap.Due(15, 5, time.Hour) {
		t.Fatal("not due after every results")
	}
	c.Snap.Since = 1
	if !c.Snap.Due(16, 5, 0) {
		t.Fatal("not due after the interval")
	}
	ctx := context.Background()
	c.Snap.Take(ctx, 15, time.Minute)
	c.Snap.Wait()
	if c.Snap.SnapSeq != 15 || c.Snap.Since != 0 || st.Snapshots.Load() != 1 {
		t.Fatalf("after a snapshot: seq %d since %d stored %d", c.Snap.SnapSeq, c.Snap.Since, st.Snapshots.Load())
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	c.Snap.Take(ctx, 16, time.Minute)
	c.Snap.Wait()
	if c.Snap.SnapSeq != 0 || st.Snapshots.Load() != 1 {
		t.Fatalf("after a failed upload: seq %d stored %d; want the next one due", c.Snap.SnapSeq, st.Snapshots.Load())
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	b := bustest.New(t)
	if err := c.Snap.Final(ctx, b, 17); err != nil {
		t.Fatal(err)
	}
	if err := c.Snap.Final(ctx, b, 17); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"state at 15", "state at 17"}; fmt.Sprint(stored) != fmt.Sprint(want) {
		t.Fatalf("stored %q, want %q", stored, want)
	}
}
