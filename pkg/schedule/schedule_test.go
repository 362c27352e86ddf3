package schedule

import (
	"context"
	"errors"
	"testing"
	"time"
)

func newSched(t *testing.T, c Config) *Scheduler {
	t.Helper()
	if c.Clock == nil {
		c.Clock = NewSimClock(time.Unix(0, 0))
	}
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func next(t *testing.T, s *Scheduler) Work {
	t.Helper()
	w, ok, err := s.TryNext(context.Background())
	if err != nil || !ok {
		t.Fatalf("TryNext: ok %v, err %v", ok, err)
	}
	return w
}

func pushSweep(t *testing.T, s *Scheduler, sw Sweep, token any) {
	t.Helper()
	if err := s.PushSweep(sw, token); err != nil {
		t.Fatal(err)
	}
}

const p16 = 10 << 24 // 10.0.0.0/16

// TestPredictionMidSweep: a prediction pushed while a sweep runs comes out
// before the sweep's next chunk, and the sweep then goes on.
func TestPredictionMidSweep(t *testing.T) {
	s := newSched(t, Config{})
	pushSweep(t, s, Sweep{Prefix: p16, Bits: 16, Port: 80, PriorHits: 10, PriorProbes: 1000}, nil)
	w := next(t, s)
	if w.Kind != Chunk || w.Probes != DefaultChunk || w.Last-w.First != DefaultChunk-1 {
		t.Fatalf("first work %+v, want a chunk of %d", w, DefaultChunk)
	}
	s.Report(w, 3)
	pred := Target{Addr: p16 + 0xff00 + 7, Port: 443}
	s.Push(pred, 0.2, nil)
	if w := next(t, s); w.Kind != Probe || w.Target != pred {
		t.Fatalf("after the push: %+v, want the prediction %v", w, pred)
	}
	if w := next(t, s); w.Kind != Chunk || w.Port != 80 {
		t.Fatalf("after the prediction: %+v, want the sweep's next chunk", w)
	}
}

// TestChunksCoverTheSweep: a sweep's chunks cover its prefix exactly once,
// not in address order.
func TestChunksCoverTheSweep(t *testing.T) {
	for _, c := range []struct {
		bits  int
		chunk uint64
	}{{16, 256}, {16, 1 << 16}, {24, 256}, {20, 1024}, {30, 256}, {0, 1 << 32}} {
		s := newSched(t, Config{Chunk: c.chunk})
		pushSweep(t, s, Sweep{Prefix: p16, Bits: c.bits, Port: 22, PriorHits: 1, PriorProbes: 100}, nil)
		span := uint64(1) << (32 - c.bits)
		seen := map[uint32]bool{}
		inOrder := true
		var prev uint32
		var total uint64
		for s.Len() > 0 {
			w := next(t, s)
			if seen[w.First] {
				t.Fatalf("/%d chunk %d: %d released twice", c.bits, c.chunk, w.First)
			}
			if len(seen) > 0 && w.First < prev {
				inOrder = false
			}
			seen[w.First], prev = true, w.First
			total += w.Probes
			s.Report(w, 0)
		}
		if total != span || uint64(len(seen)) != span/min(c.chunk, span) {
			t.Fatalf("/%d chunk %d: %d probes in %d chunks, want %d", c.bits, c.chunk, total, len(seen), span)
		}
		if len(seen) > 8 && inOrder {
			t.Errorf("/%d chunk %d: chunks in address order", c.bits, c.chunk)
		}
	}
}

// TestLearning: of two sweeps with one prior, the one whose chunks find
// nothing falls below the one whose chunks find more than expected.
func TestLearning(t *testing.T) {
	s := newSched(t, Config{})
	prior := Sweep{Bits: 16, Port: 80, PriorHits: 2, PriorProbes: 2000}
	a, b := prior, prior
	a.Prefix, b.Prefix = p16, p16+1<<16
	pushSweep(t, s, a, nil)
	pushSweep(t, s, b, nil)
	wa := next(t, s)
	if wa.First>>16 != a.Prefix>>16 {
		t.Fatalf("first chunk from %x, want sweep a (pushed first)", wa.First)
	}
	s.Report(wa, 0)
	wb := next(t, s)
	if wb.First>>16 != b.Prefix>>16 {
		t.Fatalf("second chunk from %x, want sweep b: a found nothing", wb.First)
	}
	s.Report(wb, 5)
	for range 10 {
		w := next(t, s)
		if w.First>>16 != b.Prefix>>16 {
			t.Fatalf("chunk from %x while b finds more than a", w.First)
		}
		if w.Yield <= wa.Yield {
			t.Fatalf("b's yield %g is not above its prior %g", w.Yield, wa.Yield)
		}
		s.Report(w, 1)
	}
	// NoLearning keeps push order among equal priors.
	s = newSched(t, Config{NoLearning: true})
	pushSweep(t, s, a, nil)
	pushSweep(t, s, b, nil)
	s.Report(next(t, s), 0)
	if w := next(t, s); w.First>>16 != a.Prefix>>16 {
		t.Fatalf("without learning, a's next chunk should follow; got %x", w.First)
	}
}

// TestBudget: the scheduler stops after exactly the budget, with the best
// work released first and the last chunk cut to fit.
func TestBudget(t *testing.T) {
	skip := NewAddrs([]uint32{p16 + 1, p16 + 2, p16 + 300})
	s := newSched(t, Config{Budget: 1000, Skip: skip})
	pushSweep(t, s, Sweep{Prefix: p16, Bits: 16, Port: 80, PriorHits: 1, PriorProbes: 10}, nil)     // 0.1
	pushSweep(t, s, Sweep{Prefix: p16, Bits: 16, Port: 21, PriorHits: 1, PriorProbes: 100000}, nil) // 1e-5
	for i := range 5 {
		s.Push(Target{Addr: p16 + 5000 + uint32(i), Port: 8080}, 0.5, nil)
	}
	var probes uint64
	preds := 0
	for {
		w, ok, err := s.TryNext(context.Background())
		if errors.Is(err, ErrBudget) {
			break
		}
		if err != nil || !ok {
			t.Fatalf("ok %v, err %v before the budget", ok, err)
		}
		if w.Port == 21 {
			t.Fatalf("the low-yield sweep ran within the budget: %+v", w)
		}
		if w.Kind == Probe {
			preds++
		}
		n := uint64(0)
		for range w.Targets() {
			n++
		}
		if n != w.Probes {
			t.Fatalf("work %+v yields %d targets", w, n)
		}
		probes += w.Probes
		s.Report(w, 0)
	}
	if probes != 1000 || preds != 5 {
		t.Fatalf("%d probes (%d predictions), want exactly 1000 with the 5 predictions", probes, preds)
	}
	if st := s.Stats(); st.Probes != 1000 {
		t.Fatalf("stats say %d probes", st.Probes)
	}
}

// TestRate: with a rate, work i is released at (probes before it)/rate on
// the clock; waiting on a cancelled context fails.
func TestRate(t *testing.T) {
	clock := NewSimClock(time.Unix(0, 0))
	s := newSched(t, Config{Rate: 1000, Clock: clock})
	pushSweep(t, s, Sweep{Prefix: p16, Bits: 22, Port: 80, PriorHits: 1, PriorProbes: 10}, nil) // 4 chunks
	s.Push(Target{Addr: 1, Port: 1}, 0.9, nil)
	var before uint64
	for s.Len() > 0 {
		w := next(t, s)
		if got, want := clock.Now().Sub(time.Unix(0, 0)), time.Duration(before)*time.Millisecond; got != want {
			t.Fatalf("work after %d probes released at %v, want %v", before, got, want)
		}
		before += w.Probes
		s.Report(w, 0)
	}
	if before != 1+1024 {
		t.Fatalf("%d probes", before)
	}
	s.Push(Target{Addr: 2, Port: 1}, 0.9, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.TryNext(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("TryNext with a cancelled context and a wait due: %v", err)
	}
	// The real clock waits: 1,025 probes at 20K/s is about 51 ms.
	s = newSched(t, Config{Rate: 20000, Clock: RealClock{}})
	s.Push(Target{Addr: 1, Port: 1}, 0.9, nil)
	s.Push(Target{Addr: 2, Port: 1}, 0.8, nil)
	ctx, cancel = context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if _, err := s.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDedup: a target is released once; a prediction inside a released
// chunk is dropped, one inside a chunk still pending is not; a sweep pushed
// twice runs once; skipped addresses are left out of chunks.
func TestDedup(t *testing.T) {
	skip := NewAddrs([]uint32{p16 + 3, p16 + 3, p16 + 9})
	s := newSched(t, Config{Chunk: 16, Skip: skip})
	pushSweep(t, s, Sweep{Prefix: p16, Bits: 24, Port: 80, PriorHits: 1, PriorProbes: 10}, nil)
	pushSweep(t, s, Sweep{Prefix: p16 + 5, Bits: 24, Port: 80, PriorHits: 9, PriorProbes: 10}, nil) // the same sweep
	w := next(t, s)
	if w.Kind != Chunk {
		t.Fatalf("%+v", w)
	}
	s.Report(w, 0)
	inside := Target{Addr: w.First + 4, Port: 80}
	outside := Target{Addr: (w.First+16)&0xff | p16, Port: 80}
	s.Push(inside, 0.9, nil)
	s.Push(outside, 0.9, nil)
	s.Push(outside, 0.8, nil)
	s.Push(Target{Addr: w.First + 4, Port: 81}, 0.85, nil)
	got := []Target{}
	for s.Len() > 0 {
		w := next(t, s)
		if w.Kind == Probe {
			got = append(got, w.Target)
		} else {
			for x := range w.Targets() {
				if skip.Contains(x.Addr) {
					t.Fatalf("chunk %+v probes skipped %v", w, x)
				}
			}
			if w.First == p16 && w.Probes != 14 {
				t.Fatalf("chunk at %x costs %d, want 16 less 2 skipped", w.First, w.Probes)
			}
		}
		s.Report(w, 0)
	}
	if len(got) != 2 || got[0] != outside || got[1].Port != 81 {
		t.Fatalf("released predictions %v, want %v then port 81", got, outside)
	}
	if st := s.Stats(); st.Probes != 256-2+2 || st.Dropped != 2 || st.Sweeps != 1 {
		t.Fatalf("stats %+v: want 256 probes, 2 dropped, 1 sweep", st)
	}
}

// TestTokens: Done is called for a token once all its work is reported or
// dropped, and not before.
func TestTokens(t *testing.T) {
	var done []any
	s := newSched(t, Config{Chunk: 128, Done: func(tok any) { done = append(done, tok) }})
	pushSweep(t, s, Sweep{Prefix: p16, Bits: 24, Port: 80, PriorHits: 1, PriorProbes: 10}, "plan") // 2 chunks
	s.Push(Target{Addr: 1, Port: 1}, 0.9, "pred")
	s.Push(Target{Addr: 2, Port: 1}, 0.001, "pred")
	w1, w2 := next(t, s), next(t, s)
	if w1.Kind != Probe || w2.Kind != Chunk {
		t.Fatalf("order %+v %+v", w1, w2)
	}
	s.Report(w1, 1)
	s.Report(w2, 0)
	if len(done) != 0 {
		t.Fatalf("done early: %v", done)
	}
	w3 := next(t, s)
	s.Report(w3, 0)
	if len(done) != 1 || done[0] != "plan" {
		t.Fatalf("after the sweep: %v, want plan", done)
	}
	s.Push(Target{Addr: 1, Port: 1}, 0.9, "dup") // sent before: dropped at once
	if len(done) != 2 || done[1] != "dup" {
		t.Fatalf("a dropped-only token: %v", done)
	}
	s.Report(next(t, s), 0)
	if len(done) != 3 || done[2] != "pred" {
		t.Fatalf("after the last prediction: %v", done)
	}
}

// TestOpenClose: a token held open does not complete between two pushes,
// even when its first item is probed before the second is pushed; one
// opened and closed with nothing pushed completes at Close.
func TestOpenClose(t *testing.T) {
	var done []any
	s := newSched(t, Config{Done: func(tok any) { done = append(done, tok) }})
	s.Open("msg")
	s.Push(Target{Addr: 1, Port: 1}, 1, "msg")
	s.Report(next(t, s), 0)
	if len(done) != 0 {
		t.Fatalf("done while open: %v", done)
	}
	s.Push(Target{Addr: 2, Port: 1}, 1, "msg")
	s.Close("msg")
	if len(done) != 0 {
		t.Fatalf("done with an item pending: %v", done)
	}
	s.Report(next(t, s), 0)
	if len(done) != 1 || done[0] != "msg" {
		t.Fatalf("after the last item: %v, want msg once", done)
	}
	s.Open("empty")
	s.Close("empty")
	if len(done) != 2 || done[1] != "empty" {
		t.Fatalf("an empty token: %v", done)
	}
}

// TestNextWaitsForPush: Next blocks on an empty scheduler until work is
// pushed, and returns ctx's error when ctx ends.
func TestNextWaitsForPush(t *testing.T) {
	s := newSched(t, Config{})
	go s.Push(Target{Addr: 7, Port: 7}, 0.5, nil)
	w, err := s.Next(context.Background())
	if err != nil || w.Target != (Target{Addr: 7, Port: 7}) {
		t.Fatalf("Next: %+v, %v", w, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next on a cancelled context: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	for _, c := range []Config{{Chunk: 100}, {PriorWeight: -1}, {Rate: -5}} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	s := newSched(t, Config{})
	for _, sw := range []Sweep{{Bits: 33, PriorProbes: 1}, {Bits: 16}, {Bits: 16, PriorProbes: 1, PriorHits: -1}} {
		if err := s.PushSweep(sw, nil); err == nil {
			t.Errorf("PushSweep(%+v) accepted", sw)
		}
	}
}

// TestSweepSkip: a sweep's own Skip is left out of its chunks and their
// probe counts, and replaces Config.Skip; Sent says which targets went out
// as single probes.
func TestSweepSkip(t *testing.T) {
	s := newSched(t, Config{Chunk: 256, Skip: NewAddrs([]uint32{p16 + 1})})
	own := NewAddrs([]uint32{p16 + 5, p16 + 9, p16 + 300}).Within(p16, p16+255)
	pushSweep(t, s, Sweep{Prefix: p16, Bits: 24, Port: 80, PriorHits: 1, PriorProbes: 10, Skip: own}, nil)
	w := next(t, s)
	if w.Probes != 254 {
		t.Fatalf("chunk of %d probes, want 254 (its own skip, not Config.Skip)", w.Probes)
	}
	n := 0
	for x := range w.Targets() {
		if x.Addr == p16+5 || x.Addr == p16+9 {
			t.Errorf("skipped %v released", x)
		}
		n++
	}
	if n != 254 {
		t.Errorf("%d targets, want 254", n)
	}
	s.Report(w, 0)
	pred := Target{Addr: p16 + 1<<8, Port: 22}
	if s.Sent(pred) {
		t.Error("Sent before the push")
	}
	s.Push(pred, 0.5, nil)
	s.Report(next(t, s), 1)
	if !s.Sent(pred) {
		t.Error("not Sent after its release")
	}
}

// TestPushRaises: a prediction pushed again at a higher probability raises
// the pending one (it goes out once, at the new place, and the first
// token completes at once); pushed again no higher, it is dropped.
func TestPushRaises(t *testing.T) {
	var done []any
	s := newSched(t, Config{Done: func(tok any) { done = append(done, tok) }})
	a, b := Target{Addr: 1, Port: 80}, Target{Addr: 2, Port: 80}
	s.Push(a, 0.1, "a1")
	s.Push(b, 0.5, "b")
	s.Push(a, 0.05, "a0") // lower: dropped
	if len(done) != 1 || done[0] != "a0" {
		t.Fatalf("after a lower push: done %v, want a0", done)
	}
	s.Push(a, 0.9, "a2") // higher: raised above b, a1 completes
	if len(done) != 2 || done[1] != "a1" {
		t.Fatalf("after a higher push: done %v, want a1 too", done)
	}
	if s.Len() != 2 {
		t.Fatalf("%d items pending, want 2: a raise is no new item", s.Len())
	}
	w := next(t, s)
	if w.Target != a || w.Yield != 0.9 || w.Token != "a2" {
		t.Fatalf("first out %+v, want %v at 0.9 with token a2", w, a)
	}
	s.Report(w, 0)
	if w := next(t, s); w.Target != b {
		t.Fatalf("second out %+v, want %v", w, b)
	}
	if _, ok, _ := s.TryNext(context.Background()); ok {
		t.Fatal("a target was released twice")
	}
	if st := s.Stats(); st.Predictions != 2 || st.Dropped != 2 {
		t.Fatalf("stats %+v, want 2 released and 2 dropped", st)
	}
}
