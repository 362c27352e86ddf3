package modeler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// churn is the results of a world that changes: the seed and later rows,
// then every third later row and every fifth seed row gone, a tenth of
// those back again (refresh), and refreshes of live services. live is
// what is left.
func churn(t testing.TB) (rs []wire.Result, live []row.Row) {
	t.Helper()
	w := world(t)
	now := time.Now().UTC()
	add := func(r row.Row, phase string) { rs = append(rs, wire.ResultFromRow(r, phase, now, "probe")) }
	gone := func(r row.Row) {
		rs = append(rs, wire.Result{V: wire.Version, IP: r.IP, Port: r.Port, Phase: wire.PhaseRefresh, Time: now, Source: "probe", Gone: true})
	}
	seed, rest := w.Seed, later(w, 1000)
	for _, r := range seed {
		add(r, wire.PhaseSeed)
	}
	for _, r := range rest {
		add(r, wire.PhasePriors)
	}
	isGone := map[int]bool{}
	all := append(slices.Clone(seed), rest...)
	for i, r := range all {
		if i%5 == 0 && i < len(seed) || i >= len(seed) && i%3 == 0 {
			gone(r)
			isGone[i] = true
		}
	}
	gone(rest[0]) // gone twice: nothing more to take out
	for i, r := range all {
		switch {
		case isGone[i] && i%10 == 0:
			add(r, wire.PhaseRefresh) // back again
			isGone[i] = false
		case !isGone[i] && i%7 == 0:
			add(r, wire.PhaseRefresh) // answers again: merged
		}
	}
	for i, r := range all {
		if !isGone[i] {
			live = append(live, r)
		}
	}
	return rs, live
}

// publishResults publishes results one a message, returning the stream
// sequence of each; the first is result number from of the test's.
func publishResults(t testing.TB, b *bus.Bus, rs []wire.Result, from int) []uint64 {
	t.Helper()
	seqs := make([]uint64, len(rs))
	for i := range rs {
		data, err := json.Marshal(&rs[i])
		if err != nil {
			t.Fatal(err)
		}
		seqs[i] = publishRaw(t, b, wire.ResultsSubject(rs[i].Phase), data, fmt.Sprintf("gone-test:%d", from+i))
	}
	return seqs
}

// The model after gone results, a crash and a restart from an older
// snapshot equals a batch build of the live services.
func TestGoneRetracts(t *testing.T) {
	rs, live := churn(t)
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			b := bustest.New(t)
			cfg := Config{}
			cfg.SnapshotEvery = 300
			half := len(rs) * 3 / 4 // among the gone results
			seqs := publishResults(t, b, rs[:half], 0)
			r := start(t, b, cfg)
			servicetest.WaitFor(t, "the first part", func() bool { return r.Stats.Seq.Load() == seqs[half-1] })
			r.Stop(t)
			if crash {
				// The crashed modeler's last snapshot is older, before any gone result.
				store, _ := b.Snapshots(context.Background())
				var buf bytes.Buffer
				if err := EncodeSnapshot(&buf, 100, direct(t, rs100(t, rs))); err != nil {
					t.Fatal(err)
				}
				if err := putSnapshot(context.Background(), store, SnapshotObject, buf.Bytes()); err != nil {
					t.Fatal(err)
				}
			}
			seqs = publishResults(t, b, rs[half:], half)
			r = start(t, b, cfg)
			last := seqs[len(seqs)-1]
			servicetest.WaitFor(t, "the rest", func() bool { return r.Stats.Seq.Load() == last })
			r.Stop(t)
			m, seq := storedModel(t, b)
			if seq != last {
				t.Errorf("snapshot seq = %d, want %d", seq, last)
			}
			if err := m.Verify(); err != nil {
				t.Error(err)
			}
			want := direct(t, live)
			if got, w := modelCounts(m), modelCounts(want); !maps.Equal(got, w) {
				t.Fatalf("counts differ from a batch build of the live services: %d entries, want %d", len(got), len(w))
			}
			if g, w := m.Stats().Services, want.Stats().Services; g != w {
				t.Errorf("services = %d, want %d", g, w)
			}
		})
	}
}

// rs100 is the rows of the first 100 results (none gone).
func rs100(t testing.TB, rs []wire.Result) []row.Row {
	t.Helper()
	var out []row.Row
	for _, r := range rs[:100] {
		if r.Gone {
			t.Fatal("a gone result among the first 100")
		}
		out = append(out, r.Row())
	}
	return out
}
