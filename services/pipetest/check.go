package pipetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/wire"
	"github.com/gpsscan/gps/services/modeler"
)

// ReplayPredictions is the oracle of the predictor: the predictions a
// predictor makes reading these results in this order, without any crash,
// and the messages it publishes (a target again each time its probability
// rises).
func ReplayPredictions(results []wire.Result, hitrate float64) (map[gps.Target]bool, int) {
	m := model.New()
	found := map[uint32][]model.Found{}
	at := map[uint32]int{}
	best := map[gps.Target]float64{}
	predicted := map[gps.Target]bool{}
	msgs, cycle := 0, 0
	for i := range results {
		r := &results[i]
		s, err := r.Service()
		if err != nil {
			continue
		}
		if r.Cycle > cycle {
			// A new cycle predicts every host afresh, as the predictor.
			cycle = r.Cycle
			clear(best)
			clear(at)
		}
		if r.Gone {
			// Retracted, nothing predicted; a host with nothing found left
			// is forgotten, what was published for it too.
			m.Remove(s.Addr, uint16(s.Port))
			if fs := model.RemoveFound(found[s.Addr], uint16(s.Port)); len(fs) > 0 {
				found[s.Addr] = fs
			} else {
				delete(found, s.Addr)
				delete(at, s.Addr)
				for t := range best {
					if t.Addr == s.Addr {
						delete(best, t)
					}
				}
			}
			continue
		}
		isNew := m.Add(&s)
		fs := model.AddFound(found[s.Addr], uint16(s.Port), m.Dict().Of(nil, &s, false))
		found[s.Addr] = fs
		if r.Phase == wire.PhaseSeed {
			continue // seed hosts were scanned on every port
		}
		if at[s.Addr] > 0 && !isNew && !m.Stale(at[s.Addr]) {
			continue // found again, the model barely changed: as the predictor
		}
		at[s.Addr] = m.Len()
		for _, p := range m.Predict(fs, hitrate) {
			t := gps.Target{Addr: s.Addr, Port: p.Port}
			if q, ok := best[t]; !ok || p.Hitrate > q {
				best[t] = p.Hitrate
				predicted[t] = true
				msgs++
			}
		}
	}
	return predicted, msgs
}

// ApplyResult applies r to m as the modeler does: a gone result removes its
// service, any other is added.
func ApplyResult(m *model.Model, r *wire.Result) {
	s, err := r.Service()
	if err != nil {
		return
	}
	if r.Gone {
		m.Remove(s.Addr, uint16(s.Port))
		return
	}
	m.Add(&s)
}

// CheckExact checks what must hold in any run, crash or not: the modeler's
// final model is exactly the model of the RESULTS stream, each result
// applied once, and the predictions are exactly those of the stream replayed
// through a predictor that never crashed, each message published once.
func CheckExact(t testing.TB, b *bus.Bus, o Outcome) {
	t.Helper()
	ctx := context.Background()
	store, err := b.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, err := store.GetBytes(ctx, modeler.SnapshotObject)
	if err != nil {
		t.Fatalf("modeler snapshot: %v", err)
	}
	got, seq, err := modeler.DecodeSnapshot(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if seq != uint64(o.ResultMsgs) {
		t.Fatalf("modeler snapshot covers RESULTS up to %d of %d", seq, o.ResultMsgs)
	}
	want := model.New()
	for i := range o.Results {
		ApplyResult(want, &o.Results[i])
	}
	if got.Version() != want.Version() {
		t.Fatalf("modeler applied %d results, the stream has %d: a result counted twice or lost", got.Version(), want.Version())
	}
	if err := got.Verify(); err != nil {
		t.Fatal(err)
	}
	if a, w := Counts(got), Counts(want); a != w {
		t.Fatalf("modeler counts differ from the stream's:\n got %s\nwant %s", a, w)
	}
	replay, msgs := ReplayPredictions(o.Results, Hitrate)
	if o.PredMsgs != msgs {
		t.Fatalf("%d prediction messages, a crash-free replay publishes %d: some published twice or lost", o.PredMsgs, msgs)
	}
	if len(replay) != len(o.Preds) {
		t.Fatalf("%d predictions published, a crash-free replay makes %d", len(o.Preds), len(replay))
	}
	for p := range replay {
		if !o.Preds[p] {
			t.Fatalf("prediction %v lost", p)
		}
	}
}

// Counts digests a model's counts: rows and the total of every count.
func Counts(m *model.Model) string {
	var keys, support, co uint64
	m.Each(func(k model.Key, s uint32, c []model.PortCount) {
		keys++
		support += uint64(s)
		for _, x := range c {
			co += uint64(x.N) * uint64(x.Port)
		}
	})
	rows := m.Rows(Hitrate)
	var h uint64
	for _, r := range rows {
		h = h*31 + uint64(r.Addr) + uint64(r.P)<<32 + uint64(r.NeededP)<<48 + uint64(r.Count)
	}
	return fmt.Sprintf("keys %d support %d co %d rows %d hash %x", keys, support, co, len(rows), h)
}

// SymDiff is the size of the symmetric difference of a and b.
func SymDiff(a, b map[gps.Target]bool) int {
	n := 0
	for k := range a {
		if !b[k] {
			n++
		}
	}
	for k := range b {
		if !a[k] {
			n++
		}
	}
	return n
}

// CheckClose checks a run against a reference one (`gps all`): the same
// services found, within half a percent, and the same predictions within
// two. Predictions depend on the order in which results reach the
// predictor (a rule crosses its count or hitrate threshold earlier or later
// for a host), and that order moves from run to run with the batches the
// prober cuts by time: two fault-free runs of one world differ by up to
// about 0.6 % in their predictions, while the services they lead to agree.
func CheckClose(t testing.TB, o, ref Outcome) {
	t.Helper()
	df := SymDiff(o.Found, ref.Found)
	dp := SymDiff(o.Preds, ref.Preds)
	t.Logf("found %d (reference %d, %d differ); predictions %d (reference %d, %d differ)", len(o.Found), len(ref.Found), df, len(o.Preds), len(ref.Preds), dp)
	if float64(df) > 0.005*float64(len(ref.Found)) {
		t.Fatalf("the services found differ from the reference's by more than 0.5%%")
	}
	if float64(dp) > 0.02*float64(len(ref.Preds)) {
		t.Fatalf("the predictions differ from the reference's by more than 2%%")
	}
}
