package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/pkg/wire"
	"github.com/gpsscan/gps/services/all"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/pipetest"
	"github.com/gpsscan/gps/services/predictor"
)

// crashCycles is the last cycle of TestCyclesKill9's world (cycles 0..2).
const crashCycles = 2

// TestCyclesKill9 is issue #17's crash test: a world that changes over
// three cycles, run by the five services as separate processes, the
// seeder in cycles (--cycle 1h; SIGHUP begins the next one once the
// pipeline is idle and the cycle's refreshes are probed, as `gps all
// --cycles` moves on). Every service is killed -9 in the middle of a cycle
// and restarted: the seeder as cycle 1 begins, the prober and the
// inventory in the middle of cycle 1, the modeler and the predictor in the
// middle of cycle 2. Then the run must hold what any run holds, exactly
// (pipetest.CheckExact: the model is the stream's, the predictions a
// crash-free replay's; pipetest.CheckInventory: the inventory is the
// stream's, each event once), and must end as the run without a crash
// (`gps all --cycles 2` on one embedded server): at the end of every cycle
// the same live services, and the same services found, within
// pipetest.CheckClose's tolerance.
func TestCyclesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes over three cycles")
	}
	started := time.Now()
	bin := pipetest.Binary(t)
	world := t.TempDir()
	w, err := lab.Generate(lab.Config{Seed: 7, Hosts: 2000, Slash16s: 2, SeedFrac: 0.05, Cycles: crashCycles}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(world); err != nil {
		t.Fatal(err)
	}
	ref := referenceCycles(t, world)
	t.Logf("reference (gps all --cycles %d) done, %v in", crashCycles, time.Since(started).Round(time.Millisecond))

	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	base, err := eval.LoadWorld(world)
	if err != nil {
		t.Fatal(err)
	}
	common := []string{"--nats", b.ClientURL(), "--log-format", "json", "--metrics-addr", "127.0.0.1:0"}
	seederArgs := []string{"seeder", "--import", filepath.Join(world, lab.SeedFile), "--cycle", "1h", "--world", world,
		"--rand-seed", strconv.FormatInt(eval.ContinuousRandSeed(base), 10),
		"--cycle-seed-frac", strconv.FormatFloat(eval.ContinuousSeedFrac(base, eval.CycleParams{}), 'g', -1, 64)}
	for i := 1; i <= base.NSlash16; i++ {
		seederArgs = append(seederArgs, "--allow", fmt.Sprintf("127.%d.0.0/16", i))
	}
	args := map[string][]string{
		// The predictions a killed prober held come back after 10s, not 2m.
		"prober":    append([]string{"prober", "--world", world, "--predictions-ack-wait", "10s"}, common...),
		"modeler":   append(append([]string{"modeler", "--snapshot-every", "500"}, pipetest.ModelerWorldFlags(t, world)...), common...),
		"predictor": append([]string{"predictor", "--snapshot-every", "500"}, common...),
		"inventory": append([]string{"inventory", "serve"}, common...),
		"seeder":    append(seederArgs, common...),
	}
	services := []string{"prober", "modeler", "predictor", "inventory", "seeder"}
	procs := map[string]*pipetest.Proc{}
	for _, n := range services {
		procs[n] = pipetest.Start(t, bin, n, args[n]...)
	}
	restart := func(names ...string) {
		for _, n := range names {
			procs[n].Kill9()
		}
		time.Sleep(200 * time.Millisecond)
		for _, n := range names {
			procs[n] = pipetest.Start(t, bin, n+"-restarted", args[n]...)
		}
	}
	counter := pipetest.NewResultCounter(b)
	// midCycle waits until cycle k is half as far as the cycle before it
	// went, counted in results from the cycle's start (at n0 of them).
	midCycle := func(k int, n0, last int64) {
		servicetest.WaitWithin(t, 2*time.Minute, fmt.Sprintf("the middle of cycle %d", k), func() bool {
			return counter.Count(ctx) >= n0+last/2
		})
	}
	var last int64 // results of the cycle before
	for k := 0; k <= crashCycles; k++ {
		servicetest.WaitWithin(t, time.Minute, fmt.Sprintf("cycle %d begun", k), func() bool {
			var c bus.Cycle
			ok, err := b.GetJSON(ctx, bus.KeyCycle, &c)
			return err == nil && ok && c.N == k
		})
		n0 := counter.Count(ctx)
		switch k {
		case 1:
			restart("seeder")
			t.Logf("cycle 1: killed the seeder with SIGKILL as the cycle began (%d results), %v in", n0, time.Since(started).Round(time.Millisecond))
			midCycle(k, n0, last)
			restart("prober", "inventory")
			t.Logf("cycle 1: killed the prober and the inventory with SIGKILL at %d results, %v in", counter.Count(ctx), time.Since(started).Round(time.Millisecond))
		case 2:
			midCycle(k, n0, last)
			restart("modeler", "predictor")
			t.Logf("cycle 2: killed the modeler and the predictor with SIGKILL at %d results, %v in", counter.Count(ctx), time.Since(started).Round(time.Millisecond))
		}
		waitCycleDone(ctx, t, b, procs["prober"], k)
		last = counter.Count(ctx) - n0
		t.Logf("cycle %d done: %d results, %v in", k, last, time.Since(started).Round(time.Millisecond))
		if k < crashCycles {
			if err := procs["seeder"].Signal(syscall.SIGHUP); err != nil {
				t.Fatalf("SIGHUP the seeder: %v", err)
			}
		}
	}
	for _, n := range services {
		procs[n].Stop(t)
	}
	o := pipetest.Collect(t, b)
	pipetest.CheckExact(t, b, o)
	pipetest.CheckInventory(t, b, o)
	pipetest.CheckClose(t, o, ref)
	for k := 0; k <= crashCycles; k++ {
		got, want := liveAt(o.Results, k), liveAt(ref.Results, k)
		d := pipetest.SymDiff(got, want)
		t.Logf("cycle %d: %d live services at its end (without the crash %d, %d differ)", k, len(got), len(want), d)
		if float64(d) > 0.005*float64(len(want)) {
			t.Errorf("cycle %d: the live services differ from those of the run without a crash by %d of %d (more than 0.5%%)", k, d, len(want))
		}
	}
	t.Logf("done in %v", time.Since(started).Round(time.Millisecond))
}

// cycleQuiet is how long the streams must stand still before a cycle
// counts as done, in both runs. Under the whole suite's load the
// reference once ended cycle 1 with 62 live services fewer than every
// other run of either (4754 against 4816; alone and under CPU load it
// never did): a second without a change is not enough there to tell a
// cycle done from a pipeline starved of CPU.
const cycleQuiet = 3 * time.Second

// referenceCycles runs `gps all --world W --cycles 2` in-process, as the
// processes of TestCyclesKill9 are configured, and returns what it left in
// the streams.
func referenceCycles(t *testing.T, world string) pipetest.Outcome {
	t.Helper()
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, _, err := all.Run(ctx, all.Deps{Config: all.Config{World: world, Cycles: crashCycles, Quiet: cycleQuiet,
		Modeler: modeler.Config{Hitrate: pipetest.Hitrate, Step: 16}, Predictor: predictor.Config{Hitrate: pipetest.Hitrate}},
		Bus: b, Log: zap.NewNop()})
	if err != nil {
		t.Fatalf("gps all --cycles: %v", err)
	}
	return pipetest.Collect(t, b)
}

// waitCycleDone waits until cycle k is planned, the prober has probed its
// refreshes, and the pipeline is idle.
func waitCycleDone(ctx context.Context, t *testing.T, b *bus.Bus, prober *pipetest.Proc, k int) {
	t.Helper()
	servicetest.WaitWithin(t, 2*time.Minute, fmt.Sprintf("cycle %d planned and refreshed", k), func() bool {
		var pc bus.PlanCycle
		ok, err := b.GetJSON(ctx, bus.KeyPlanCycle, &pc)
		return err == nil && ok && pc.N >= k && (k == 0 || refreshDone(t, prober) >= k)
	})
	if err := b.WaitIdle(ctx, cycleQuiet, all.Consumers(), zap.NewNop()); err != nil {
		t.Fatalf("wait for cycle %d: %v", k, err)
	}
}

// refreshDone is the prober's gps_refresh_done_cycle (-1 if not exported).
func refreshDone(t *testing.T, p *pipetest.Proc) int {
	_, body := pipetest.Get(t, p.TelemetryAddr(t), "/metrics")
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, telemetry.NameRefreshDone+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return int(f)
			}
		}
	}
	return -1
}

// liveAt is the set of services live at the end of cycle k (results of
// cycles up to k, in stream order).
func liveAt(rs []wire.Result, k int) map[gps.Target]bool {
	live := map[gps.Target]bool{}
	for i := range rs {
		r := &rs[i]
		a, err := row.ParseAddr(r.IP)
		if err != nil || r.Cycle > k {
			continue
		}
		key := gps.Target{Addr: a, Port: uint16(r.Port)}
		if r.Gone {
			delete(live, key)
		} else {
			live[key] = true
		}
	}
	return live
}
