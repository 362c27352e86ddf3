package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/services/all"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/pipetest"
	"github.com/gpsscan/gps/services/predictor"
	"github.com/gpsscan/gps/services/prober"
)

func TestMain(m *testing.M) { pipetest.Main(m) }

// runSeparate runs the four services as separate processes against one
// nats-server on 127.0.0.1; crash names a service to kill -9 mid-run and
// restart ("" for none).
func runSeparate(t *testing.T, bin, world, crash string) (*bus.Bus, pipetest.Outcome) {
	t.Helper()
	b := bustest.New(t)
	common := []string{"--nats", b.ClientURL(), "--log-format", "json", "--metrics-addr", "127.0.0.1:0"}
	args := map[string][]string{
		"prober":    append([]string{"prober", "--world", world}, common...),
		"modeler":   append(append([]string{"modeler", "--snapshot-every", "500"}, pipetest.ModelerWorldFlags(t, world)...), common...),
		"predictor": append([]string{"predictor", "--snapshot-every", "500"}, common...),
		"inventory": append([]string{"inventory", "serve"}, common...),
	}
	services := []string{"prober", "modeler", "predictor", "inventory"}
	procs := map[string]*pipetest.Proc{}
	for _, n := range services {
		procs[n] = pipetest.Start(t, bin, n, args[n]...)
	}
	seeder := pipetest.Start(t, bin, "seeder", append([]string{"seeder", "--import", filepath.Join(world, "seed.jsonl")}, common...)...)
	if err := seeder.Wait(); err != nil {
		t.Fatalf("seeder: %v\n%s", err, seeder.Log())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if crash != "" {
		// Kill it once the run is well under way: the plan is out and
		// results of the later phases are flowing.
		results := pipetest.NewResultCounter(b)
		servicetest.WaitWithin(t, time.Minute, "the run to get under way", func() bool {
			return results.Count(ctx) > 3000
		})
		procs[crash].Kill9()
		t.Logf("killed %s with SIGKILL", crash)
		time.Sleep(300 * time.Millisecond)
		procs[crash] = pipetest.Start(t, bin, crash+"-restarted", args[crash]...)
	}
	if err := b.WaitIdle(ctx, time.Second, all.Consumers(), zap.NewNop()); err != nil {
		t.Fatalf("wait for the pipeline: %v", err)
	}
	checkTelemetry(t, procs["modeler"], "modeler")
	for _, n := range services {
		procs[n].Stop(t)
	}
	return b, pipetest.Collect(t, b)
}

// checkTelemetry checks a running service's endpoints: live, ready, and
// counting the results it consumed.
func checkTelemetry(t *testing.T, p *pipetest.Proc, service string) {
	t.Helper()
	addr := p.TelemetryAddr(t)
	if code, _ := pipetest.Get(t, addr, "/healthz"); code != 200 {
		t.Errorf("%s /healthz: %d", service, code)
	}
	if code, _ := pipetest.Get(t, addr, "/readyz"); code != 200 {
		t.Errorf("%s /readyz: %d while it consumes", service, code)
	}
	_, body := pipetest.Get(t, addr, "/metrics")
	prefix := `gps_results_in_total{phase="`
	total, series := 0.0, 0
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, prefix) && strings.Contains(line, `service="`+service+`"}`) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
				t.Fatalf("%s /metrics: %q: %v", service, line, err)
			}
			total += v
			series++
		}
	}
	if series != len(telemetry.Phases()) || total == 0 {
		t.Errorf("%s /metrics: %d series of gps_results_in_total, %v results in all; want %d phases, more than 0", service, series, total, len(telemetry.Phases()))
	}
}

// TestSeparateProcesses: the services as separate processes find what
// `gps all` finds, and the exact invariants hold; then the same with the
// modeler, and with the predictor, killed -9 mid-run and restarted.
func TestSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	bin := pipetest.Binary(t)
	world := pipetest.MakeWorld(t)
	ref := pipetest.Reference(t, world)

	for _, crash := range []string{"", "modeler", "predictor"} {
		name := "no crash"
		if crash != "" {
			name = "kill -9 " + crash
		}
		t.Run(name, func(t *testing.T) {
			b, o := runSeparate(t, bin, world, crash)
			pipetest.CheckExact(t, b, o)
			pipetest.CheckClose(t, o, ref)
		})
	}
}

// TestSeparateProcessesLive: `gps lab serve` in a process of its own, and
// the four services in theirs, the prober probing for real over loopback
// (as an operator runs them side by side on one machine): the run ends
// with the exact invariants, every result has the fields of the world's
// service, and the coverage is within 2 points of a simulated run of the
// same world.
func TestSeparateProcessesLive(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary, serves a lab world and probes it for real (about 15 s)")
	}
	bin := pipetest.Binary(t)
	world, w := labtest.WriteWorld(t, lab.Config{Seed: 7, Hosts: 2000, Slash16s: 1, SeedFrac: 0.05})
	const step = 24 // a plan group is 256 probes: the run takes seconds
	labtest.Lock(t) // its sweeps must not find another package's lab

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sim, _, err := all.Run(ctx, all.Deps{Config: all.Config{World: world, Quiet: time.Second, Modeler: modeler.Config{Hitrate: pipetest.Hitrate, Step: step}, Predictor: predictor.Config{Hitrate: pipetest.Hitrate}},
		Bus: bustest.New(t), Log: zap.NewNop()})
	if err != nil {
		t.Fatalf("simulated run: %v", err)
	}

	labProc := pipetest.Start(t, bin, "lab", "lab", "serve", "--world", world)
	servicetest.WaitWithin(t, time.Minute, "the lab to serve", func() bool {
		if labProc.Exited() {
			t.Fatalf("lab serve exited: %v", labProc.Wait())
		}
		return strings.Contains(labProc.Log(), "lab ready:")
	})
	b := bustest.New(t)
	common := []string{"--nats", b.ClientURL(), "--log-format", "json", "--metrics-addr", "127.0.0.1:0"}
	procs := []*pipetest.Proc{
		pipetest.Start(t, bin, "prober", append([]string{"prober", "--live", "--allow", prober.LabAllow,
			"--pfx2as", filepath.Join(world, "pfx2as.tsv"), "--rate", "50000", "--probe-concurrency", "1024",
			"--timeout", "1s", "--banner-wait", "250ms", "--keep-empty"}, common...)...),
		pipetest.Start(t, bin, "modeler", append([]string{"modeler", "--step", strconv.Itoa(step)}, common...)...),
		pipetest.Start(t, bin, "predictor", append([]string{"predictor"}, common...)...),
		pipetest.Start(t, bin, "inventory", append([]string{"inventory", "serve"}, common...)...),
	}
	seeder := pipetest.Start(t, bin, "seeder", append([]string{"seeder", "--import", filepath.Join(world, "seed.jsonl")}, common...)...)
	if err := seeder.Wait(); err != nil {
		t.Fatalf("seeder: %v\n%s", err, seeder.Log())
	}
	if err := b.WaitIdle(ctx, time.Second, all.Consumers(), zap.NewNop()); err != nil {
		t.Fatalf("wait for the pipeline: %v", err)
	}
	for _, p := range procs {
		p.Stop(t)
	}
	labProc.Stop(t)

	o := pipetest.Collect(t, b)
	pipetest.CheckExact(t, b, o)
	truth := map[gps.Target]row.Row{}
	for _, s := range w.Truth {
		a, err := row.ParseAddr(s.IP)
		if err != nil {
			t.Fatal(err)
		}
		truth[gps.Target{Addr: a, Port: uint16(s.Port)}] = s
	}
	probed, same := 0, 0
	for _, r := range o.Results {
		if r.Source != "probe" {
			continue
		}
		probed++
		a, _ := row.ParseAddr(r.IP)
		want, ok := truth[gps.Target{Addr: a, Port: uint16(r.Port)}]
		if !ok {
			t.Errorf("%s:%d found, but the world has no such service", r.IP, r.Port)
			continue
		}
		got := r.Row()
		err := labtest.SameFields(got, want)
		// The asn is not on the wire: the prober fills it from --pfx2as.
		if a, b := asnText(got.ASN), asnText(want.ASN); err == nil && a != b {
			err = fmt.Errorf("asn %s, want %s", a, b)
		}
		if err != nil {
			if probed-same <= 3 { // the first few, to say why
				t.Logf("%s:%d: %v", r.IP, r.Port, err)
			}
			continue
		}
		same++
	}
	sum, err := eval.SummarizeRun(ctx, b, world, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("simulated: coverage %.4f; separate processes, live: coverage %.4f, %d probed results, %d with the world's fields",
		sim.Coverage, sum.Coverage, probed, same)
	if probed == 0 || float64(same) < 0.99*float64(probed) {
		t.Errorf("%d of %d probed results have the fields of the world's service, want at least 99 %%", same, probed)
	}
	if d := math.Abs(sum.Coverage - sim.Coverage); d > 0.02 {
		t.Errorf("live coverage %.4f, simulated %.4f: %.1f points apart, want at most 2", sum.Coverage, sim.Coverage, 100*d)
	}
}

func asnText(a *int64) string {
	if a == nil {
		return "null"
	}
	return strconv.FormatInt(*a, 10)
}
