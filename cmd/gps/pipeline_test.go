package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/pipetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/services/all"
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
		"modeler":   append([]string{"modeler", "--snapshot-every", "500"}, common...),
		"predictor": append([]string{"predictor", "--snapshot-every", "500"}, common...),
	}
	procs := map[string]*pipetest.Proc{}
	for _, n := range []string{"prober", "modeler", "predictor"} {
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
		pipetest.WaitFor(t, time.Minute, "the run to get under way", func() bool {
			return results.Count(ctx) > 3000
		})
		procs[crash].Kill9()
		t.Logf("killed %s with SIGKILL", crash)
		time.Sleep(300 * time.Millisecond)
		procs[crash] = pipetest.Start(t, bin, crash+"-restarted", args[crash]...)
	}
	if err := all.WaitIdle(ctx, b, time.Second, zap.NewNop()); err != nil {
		t.Fatalf("wait for the pipeline: %v", err)
	}
	checkTelemetry(t, procs["modeler"], "modeler")
	for _, n := range []string{"prober", "modeler", "predictor"} {
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
	if series != 3 || total == 0 {
		t.Errorf("%s /metrics: %d series of gps_results_in_total, %v results in all; want 3 phases, more than 0", service, series, total)
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
