package predictor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
	"github.com/gpsscan/gps/services/pipetest"
	"github.com/gpsscan/gps/services/predictor"
)

// goneScenario: a seed, then hosts found one service after another; then
// the first ten hosts gone whole, the next ten their first service gone and
// the others refreshed (predicted again from what is left). It returns the
// results and the hosts the predictor should still track.
func goneScenario(t testing.TB) ([]wire.Result, int) {
	t.Helper()
	w := labtest.World(t, lab.Config{Seed: 1, Hosts: 3000, Slash16s: 4, SeedFrac: 0.2})
	now := time.Now().UTC()
	var rs []wire.Result
	hosts := map[string]bool{}
	seed := map[string]bool{}
	for _, r := range w.Seed {
		seed[r.IP] = true
		hosts[r.IP] = true
		rs = append(rs, wire.ResultFromRow(r, wire.PhaseSeed, now, "import"))
	}
	byHost := map[string][]row.Row{}
	var order []string
	for _, r := range w.Truth {
		if seed[r.IP] {
			continue
		}
		if byHost[r.IP] == nil {
			order = append(order, r.IP)
		}
		byHost[r.IP] = append(byHost[r.IP], r)
	}
	var multi []string // hosts of two services or more
	for _, ip := range order {
		if len(byHost[ip]) > 1 && len(multi) < 60 {
			multi = append(multi, ip)
		}
	}
	for _, ip := range multi {
		hosts[ip] = true
		for i, r := range byHost[ip] {
			phase := wire.PhasePredicted
			if i == 0 {
				phase = wire.PhasePriors
			}
			rs = append(rs, wire.ResultFromRow(r, phase, now, "probe"))
		}
	}
	gone := func(r row.Row) wire.Result {
		return wire.Result{V: wire.Version, IP: r.IP, Port: r.Port, Phase: wire.PhaseRefresh, Time: now, Source: "probe", Gone: true}
	}
	for _, ip := range multi[:10] {
		delete(hosts, ip)
		for _, r := range byHost[ip] {
			rs = append(rs, gone(r))
		}
	}
	for _, ip := range multi[10:20] {
		rows := byHost[ip]
		rs = append(rs, gone(rows[0]))
		for _, r := range rows[1:] {
			rs = append(rs, wire.ResultFromRow(r, wire.PhaseRefresh, now, "probe"))
		}
	}
	return rs, len(hosts)
}

// The predictor retracts gone services: a host with nothing left is
// dropped, a gone result predicts nothing, and what it publishes is what
// pipetest.ReplayPredictions (the oracle of the pipeline tests) says.
func TestGone(t *testing.T) {
	rs, hosts := goneScenario(t)
	st, stored, got := predictAll(t, rs)
	if got := st.Hosts.Load(); got != int64(hosts) {
		t.Errorf("predictor tracks %d hosts, want %d (hosts gone whole are dropped)", got, hosts)
	}
	want, msgs := pipetest.ReplayPredictions(rs, predictor.DefaultHitrate)
	if len(stored) != msgs || pipetest.SymDiff(got, want) != 0 {
		t.Errorf("%d prediction messages of %d targets, the replay publishes %d of %d (%d differ)",
			len(stored), len(got), msgs, len(want), pipetest.SymDiff(got, want))
	}
}

// predictAll publishes rs on RESULTS, runs a predictor through them and
// returns its stats, the prediction messages stored and their targets.
func predictAll(t *testing.T, rs []wire.Result) (*predictor.Stats, []*jetstream.RawStreamMsg, map[gps.Target]bool) {
	t.Helper()
	b := bustest.New(t)
	var last uint64
	for i := range rs {
		data, err := json.Marshal(&rs[i])
		if err != nil {
			t.Fatal(err)
		}
		a, err := b.JS.Publish(context.Background(), wire.ResultsSubject(rs[i].Phase), data, jetstream.WithMsgID(fmt.Sprint("predict-all:", i)))
		if err != nil {
			t.Fatal(err)
		}
		last = a.Sequence
	}
	r := servicetest.Start(t, func(ctx context.Context, st *predictor.Stats) error {
		return predictor.Run(ctx, predictor.Deps{Bus: b, Log: zaptest.NewLogger(t), Stats: st})
	})
	servicetest.WaitFor(t, "every result", func() bool { return r.Stats.Seq.Load() == last })
	r.Stop(t)
	stored := servicetest.Stored(t, b, bus.StreamPredictions)
	got := map[gps.Target]bool{}
	for _, m := range stored {
		p, err := wire.DecodePrediction(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := row.ParseAddr(p.IP)
		got[gps.Target{Addr: a, Port: uint16(p.Port)}] = true
	}
	return r.Stats, stored, got
}

// TestCyclePredictsAfresh: the first result of a new cycle (wire.Result.Cycle)
// makes the predictor predict every host afresh, as the replay's continuous
// policy does with a scheduler of its own each cycle: a refresh in cycle 1
// publishes its host's predictions again, under new message ids, though
// their probabilities did not rise. What it publishes is what
// pipetest.ReplayPredictions says.
func TestCyclePredictsAfresh(t *testing.T) {
	cycle0, _ := goneScenario(t)
	rs := slices.Clone(cycle0)
	for _, r := range cycle0 {
		if r.Phase == wire.PhasePriors { // each host's first service
			r.Phase, r.Cycle = wire.PhaseRefresh, 1
			rs = append(rs, r)
		}
	}
	_, before := pipetest.ReplayPredictions(cycle0, predictor.DefaultHitrate)
	want, msgs := pipetest.ReplayPredictions(rs, predictor.DefaultHitrate)
	if msgs <= before {
		t.Fatalf("the oracle publishes nothing in cycle 1 (%d messages, %d in cycle 0)", msgs, before)
	}
	_, stored, got := predictAll(t, rs)
	again := 0
	for _, m := range stored {
		if strings.HasSuffix(m.Header.Get(jetstream.MsgIDHeader), "#1") {
			again++
		}
	}
	if len(stored) != msgs || pipetest.SymDiff(got, want) != 0 {
		t.Errorf("%d prediction messages of %d targets, the replay publishes %d of %d (%d differ)",
			len(stored), len(got), msgs, len(want), pipetest.SymDiff(got, want))
	}
	if again != msgs-before {
		t.Errorf("%d predictions published in cycle 1, want %d", again, msgs-before)
	}
}
