package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/batch"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
	"github.com/gpsscan/gps/services/all"
	"github.com/gpsscan/gps/services/modeler"
)

// gpsBinary builds the gps binary once per test run.
func gpsBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gps")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build gps: %v\n%s", err, out)
	}
	return bin
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

func start(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: &bytes.Buffer{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("--- %s log (last 3000 bytes):\n%s", name, tail(p.log.String(), 3000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// stop sends SIGTERM (a clean stop: snapshot, drain) and waits.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("%s did not stop on SIGTERM within 30s", p.name)
	}
}

// kill9 kills the process without warning.
func (p *proc) kill9() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

type outcome struct {
	found, preds map[batch.Target]bool
	predMsgs     int
	results      []wire.Result
}

func collect(t *testing.T, b *bus.Bus) outcome {
	t.Helper()
	ctx := context.Background()
	o := outcome{found: map[batch.Target]bool{}, preds: map[batch.Target]bool{}}
	if err := all.EachMessage(ctx, b, bus.StreamResults, func(d []byte) {
		r, err := wire.DecodeResult(d)
		if err != nil {
			t.Fatalf("a bad result in RESULTS: %v", err)
		}
		a, _ := row.ParseAddr(r.IP)
		o.found[batch.Target{Addr: a, Port: uint16(r.Port)}] = true
		o.results = append(o.results, r)
	}); err != nil {
		t.Fatal(err)
	}
	if err := all.EachMessage(ctx, b, bus.StreamPredictions, func(d []byte) {
		p, err := wire.DecodePrediction(d)
		if err != nil {
			t.Fatalf("a bad prediction: %v", err)
		}
		a, _ := row.ParseAddr(p.IP)
		o.preds[batch.Target{Addr: a, Port: uint16(p.Port)}] = true
		o.predMsgs++
	}); err != nil {
		t.Fatal(err)
	}
	return o
}

// replayPredictions is the oracle of the predictor: the predictions a
// predictor makes reading these results in this order, without any crash.
func replayPredictions(results []wire.Result, hitrate float64) map[batch.Target]bool {
	m := model.New()
	found := map[uint32][]model.Found{}
	predicted := map[batch.Target]bool{}
	for i := range results {
		r := &results[i]
		s, err := r.Service()
		if err != nil {
			continue
		}
		m.Add(&s)
		feats := m.Dict().Of(nil, &s, false)
		fs := found[s.Addr]
		if j := slices.IndexFunc(fs, func(f model.Found) bool { return f.Port == uint16(s.Port) }); j >= 0 {
			merged := append(slices.Clone(fs[j].Feats), feats...)
			slices.Sort(merged)
			fs[j].Feats = slices.Compact(merged)
		} else {
			fs = append(fs, model.Found{Port: uint16(s.Port), Feats: feats})
		}
		found[s.Addr] = fs
		if r.Phase == wire.PhaseSeed {
			continue // seed hosts were scanned on every port
		}
		for _, p := range m.Predict(fs, hitrate) {
			predicted[batch.Target{Addr: s.Addr, Port: p.Port}] = true
		}
	}
	return predicted
}

func makeWorld(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "world")
	w, err := lab.Generate(lab.Config{Seed: 7, Hosts: 3000, Slash16s: 4, SeedFrac: 0.2}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runSeparate runs the four services as separate processes against one
// nats-server on 127.0.0.1; crash names a service to kill -9 mid-run and
// restart ("" for none).
func runSeparate(t *testing.T, bin, world, crash string) (*bus.Bus, outcome) {
	t.Helper()
	b := bustest.New(t)
	url := b.ClientURL()
	common := []string{"--nats", url, "--log-format", "json"}
	args := map[string][]string{
		"prober":    append([]string{"prober", "--world", world}, common...),
		"modeler":   append([]string{"modeler", "--snapshot-every", "500"}, common...),
		"predictor": append([]string{"predictor", "--snapshot-every", "500"}, common...),
	}
	procs := map[string]*proc{}
	for _, n := range []string{"prober", "modeler", "predictor"} {
		procs[n] = start(t, bin, n, args[n]...)
	}
	seeder := start(t, bin, "seeder", append([]string{"seeder", "--import", filepath.Join(world, "seed.jsonl")}, common...)...)
	if err := seeder.cmd.Wait(); err != nil {
		t.Fatalf("seeder: %v\n%s", err, seeder.log.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if crash != "" {
		// Kill it once the run is well under way: the plan is out and
		// results of the later phases are flowing.
		str, _ := b.JS.Stream(ctx, bus.StreamResults)
		for {
			info, err := str.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs > 3000 {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("the run never got under way")
			}
			time.Sleep(20 * time.Millisecond)
		}
		procs[crash].kill9()
		t.Logf("killed %s with SIGKILL", crash)
		time.Sleep(300 * time.Millisecond)
		procs[crash] = start(t, bin, crash+"-restarted", args[crash]...)
	}
	if err := all.WaitIdle(ctx, b, time.Second, zap.NewNop()); err != nil {
		t.Fatalf("wait for the pipeline: %v", err)
	}
	for _, n := range []string{"prober", "modeler", "predictor"} {
		procs[n].stop(t)
	}
	return b, collect(t, b)
}

// checkExact checks what must hold in any run, crash or not: the modeler's
// final model is exactly the model of the RESULTS stream, each result
// applied once, and the predictions are exactly those of the stream replayed
// through a predictor that never crashed, each published once.
func checkExact(t *testing.T, b *bus.Bus, o outcome) {
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
	if seq != uint64(len(o.results)) {
		t.Fatalf("modeler snapshot covers RESULTS up to %d of %d", seq, len(o.results))
	}
	want := model.New()
	for i := range o.results {
		s, _ := o.results[i].Service()
		want.Add(&s)
	}
	if got.Version() != want.Version() {
		t.Fatalf("modeler applied %d results, the stream has %d: a result counted twice or lost", got.Version(), want.Version())
	}
	if err := got.Verify(); err != nil {
		t.Fatal(err)
	}
	if a, w := counts(got), counts(want); a != w {
		t.Fatalf("modeler counts differ from the stream's:\n got %s\nwant %s", a, w)
	}
	if o.predMsgs != len(o.preds) {
		t.Fatalf("%d prediction messages for %d distinct predictions: some published twice", o.predMsgs, len(o.preds))
	}
	replay := replayPredictions(o.results, 1e-5)
	if len(replay) != len(o.preds) {
		t.Fatalf("%d predictions published, a crash-free replay makes %d", len(o.preds), len(replay))
	}
	for p := range replay {
		if !o.preds[p] {
			t.Fatalf("prediction %v lost", p)
		}
	}
}

// counts digests a model's counts: rows and the total of every count.
func counts(m *model.Model) string {
	var keys, support, co uint64
	m.Each(func(k model.Key, s uint32, c []model.PortCount) {
		keys++
		support += uint64(s)
		for _, x := range c {
			co += uint64(x.N) * uint64(x.Port)
		}
	})
	rows := m.Rows(1e-5)
	var h uint64
	for _, r := range rows {
		h = h*31 + uint64(r.Addr) + uint64(r.P)<<32 + uint64(r.NeededP)<<48 + uint64(r.Count)
	}
	return fmt.Sprintf("keys %d support %d co %d rows %d hash %x", keys, support, co, len(rows), h)
}

// TestSeparateProcesses: the services as separate processes find what
// `gps all` finds, and the exact invariants hold; then the same with the
// modeler, and with the predictor, killed -9 mid-run and restarted.
func TestSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	bin := gpsBinary(t)
	world := makeWorld(t)

	// The reference: gps all in one process.
	ab := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, _, err := all.Run(ctx, all.Deps{Config: all.Config{World: world, Hitrate: 1e-5, Step: 16, Quiet: time.Second}, Bus: ab, Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ref := collect(t, ab)
	t.Logf("gps all: %s", sum.JSON())

	for _, crash := range []string{"", "modeler", "predictor"} {
		name := "no crash"
		if crash != "" {
			name = "kill -9 " + crash
		}
		t.Run(name, func(t *testing.T) {
			b, o := runSeparate(t, bin, world, crash)
			checkExact(t, b, o)
			// Against gps all: the same services found and the same
			// predictions, up to the order in which results reach the
			// predictor (which can move a rule over its count threshold
			// earlier or later for a host): within half a percent.
			df := symDiff(o.found, ref.found)
			dp := symDiff(o.preds, ref.preds)
			t.Logf("found %d (gps all %d, %d differ); predictions %d (gps all %d, %d differ)", len(o.found), len(ref.found), df, len(o.preds), len(ref.preds), dp)
			if float64(df) > 0.005*float64(len(ref.found)) || float64(dp) > 0.005*float64(len(ref.preds)) {
				t.Fatalf("separate processes differ from gps all by more than 0.5%%")
			}
		})
	}
}

func symDiff(a, b map[batch.Target]bool) int {
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

func init() {
	// Child processes inherit the environment; make sure none picks up a
	// NATS URL from the developer's shell.
	os.Unsetenv("GPS_NATS_URL")
}
