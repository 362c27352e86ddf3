package schedule

import "testing"

// TestSeedReleasedInOrder: a seed comes out by its yield among the other
// work, takes every port, and tells its token when reported.
func TestSeedReleasedInOrder(t *testing.T) {
	var done []any
	s := newSched(t, Config{Done: func(tok any) { done = append(done, tok) }})
	s.Push(Target{Addr: 1, Port: 80}, 0.5, "pred")
	if !s.PushSeed(7, 0.9, "seed") || s.PushSeed(7, 0.1, "dup") { // dup dropped: 7 is queued already
		t.Fatal("PushSeed reports the first seed of 7 dropped or its duplicate queued")
	}
	w := next(t, s)
	if w.Kind != Seed || w.First != 7 || w.Last != 7 || w.Probes != SeedPorts || w.Port != 65535 {
		t.Fatalf("first work %+v, want the seed of 7 on every port", w)
	}
	n := 0
	for tg := range w.Targets() {
		n++
		if tg.Addr != 7 || int(tg.Port) != n {
			t.Fatalf("target %d is %v", n, tg)
		}
	}
	if n != SeedPorts {
		t.Fatalf("seed targets %d, want %d", n, SeedPorts)
	}
	s.Report(w, 3)
	if w := next(t, s); w.Kind != Probe {
		t.Fatalf("second work %+v, want the prediction", w)
	}
	if len(done) != 2 || done[0] != "dup" || done[1] != "seed" {
		t.Fatalf("done %v, want dup then seed", done)
	}
	if st := s.Stats(); st.Seeds != 1 || st.Probes != SeedPorts+1 {
		t.Fatalf("stats %+v, want 1 seed and %d probes", st, SeedPorts+1)
	}
}

// TestSeedDropsPredictions: a prediction on a seeded address is dropped,
// whether pushed before the seed is released or after.
func TestSeedDropsPredictions(t *testing.T) {
	s := newSched(t, Config{})
	s.Push(Target{Addr: 9, Port: 22}, 0.5, nil)
	s.PushSeed(9, 0.9, nil)
	s.Push(Target{Addr: 9, Port: 443}, 0.7, nil)
	if w := next(t, s); w.Kind != Seed {
		t.Fatalf("work %+v, want the seed", w)
	}
	if _, ok, err := s.TryNext(t.Context()); ok || err != nil {
		t.Fatalf("after the seed: ok %v err %v, want nothing left", ok, err)
	}
	if st := s.Stats(); st.Dropped != 2 || !s.Seeded(9) || s.Seeded(8) {
		t.Fatalf("stats %+v, seeded(9) %v: want both predictions dropped", st, s.Seeded(9))
	}
}

// TestSeedCutByBudget: the budget cuts a seed to the ports left.
func TestSeedCutByBudget(t *testing.T) {
	s := newSched(t, Config{Budget: 1000})
	s.Push(Target{Addr: 1, Port: 80}, 0.9, nil)
	s.PushSeed(5, 0.5, nil)
	next(t, s)
	w := next(t, s)
	if w.Kind != Seed || w.Probes != 999 || w.Port != 999 {
		t.Fatalf("work %+v, want the seed cut to 999 ports", w)
	}
	if _, _, err := s.TryNext(t.Context()); err != ErrBudget {
		t.Fatalf("err %v, want ErrBudget", err)
	}
}
