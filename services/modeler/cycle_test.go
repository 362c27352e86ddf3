package modeler

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// TestCyclePlanExplainsItsSeed: the plan of a later cycle sweeps, as extra
// groups, the (prefix, port) of that cycle's seed services no rule
// explains, and its sweeps leave that cycle's seed hosts out, as the
// replay's continuous policy plans; a seed result of another cycle counts
// for nothing there.
func TestCyclePlanExplainsItsSeed(t *testing.T) {
	w := world(t)
	b := bustest.New(t)
	ctx := context.Background()
	if err := b.PutJSON(ctx, bus.KeyCycle, bus.Cycle{V: wire.Version, Started: time.Now().UTC(), SeedDone: true}); err != nil {
		t.Fatal(err)
	}
	last := publish(t, b, w.Seed, wire.PhaseSeed)
	seedDone(t, b, len(w.Seed), last)
	cfg := Config{Hitrate: 1e-5, Step: 16}
	r := start(t, b, cfg)
	servicetest.WaitFor(t, "cycle 0 planned", func() bool { return r.Stats.Planned.Load() })

	// Cycle 1's seed: hosts of the truth, and a host on more ports than a
	// model row allows (no rule explains them); another such host with a
	// seed result of cycle 0.
	pseudo := func(ip string, from, cycle int) (rs []wire.Result) {
		for port := from; port <= from+model.MaxPorts; port++ {
			x := wire.ResultFromRow(w.Seed[0], wire.PhaseSeed, time.Now().UTC(), "probe")
			x.IP, x.Port, x.Cycle = ip, port, cycle
			rs = append(rs, x)
		}
		return rs
	}
	var seed []wire.Result
	for _, rw := range w.Truth[:40] {
		x := wire.ResultFromRow(rw, wire.PhaseSeed, time.Now().UTC(), "probe")
		x.Cycle = 1
		seed = append(seed, x)
	}
	seed = append(seed, pseudo("127.1.200.7", 31300, 1)...)
	other := pseudo("127.2.200.9", 31400, 0)
	if err := b.PutJSON(ctx, bus.KeyCycle, bus.Cycle{V: wire.Version, N: 1, Started: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	for i, x := range append(slices.Clone(seed), other...) {
		data, err := json.Marshal(&x)
		if err != nil {
			t.Fatal(err)
		}
		last = publishRaw(t, b, wire.ResultsSubject(wire.PhaseSeed), data, fmt.Sprint("cycle-seed:", i))
	}
	if err := b.PutJSON(ctx, bus.KeyCycle, bus.Cycle{V: wire.Version, N: 1, Started: time.Now().UTC(), SeedDone: true}); err != nil {
		t.Fatal(err)
	}
	seedDone(t, b, len(seed), last)
	servicetest.WaitFor(t, "cycle 1 planned", func() bool {
		var pc bus.PlanCycle
		ok, err := b.GetJSON(ctx, bus.KeyPlanCycle, &pc)
		return err == nil && ok && pc.N == 1
	})
	r.Stop(t)

	var sweeps []string
	skip := map[string]bool{}
	for _, m := range servicetest.Stored(t, b, bus.StreamTargets) {
		if !strings.HasPrefix(m.Header.Get(jetstream.MsgIDHeader), "plan@1:") {
			continue
		}
		x, err := wire.DecodeTargets(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range x.Targets {
			sweeps = append(sweeps, fmt.Sprintf("%s:%d", g.Prefix, g.Port))
		}
		for _, a := range x.Skip {
			skip[a] = true
		}
	}
	if len(sweeps) == 0 {
		t.Fatal("no plan of cycle 1 on TARGETS")
	}
	for port := 31300; port <= 31300+model.MaxPorts; port++ {
		if !slices.Contains(sweeps, fmt.Sprintf("127.1.0.0/16:%d", port)) {
			t.Errorf("cycle 1's plan does not sweep its seed's unexplained 127.1.200.7:%d (%d sweeps)", port, len(sweeps))
		}
	}
	if slices.ContainsFunc(sweeps, func(s string) bool { return strings.HasPrefix(s, "127.2.0.0/16:314") }) {
		t.Errorf("cycle 1's plan sweeps the ports of 127.2.200.9, found by another cycle's seed")
	}
	for _, x := range seed {
		a, err := row.ParseAddr(x.IP)
		if err != nil {
			t.Fatal(err)
		}
		if in := slices.ContainsFunc(sweeps, func(s string) bool {
			return strings.HasPrefix(s, fmt.Sprintf("127.%d.0.0/16:", a>>16&0xff))
		}); in && !skip[x.IP] {
			t.Errorf("cycle 1's seed host %s is not left out of the sweeps of its /16", x.IP)
		}
	}
}
