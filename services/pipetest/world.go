package pipetest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/services/all"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/predictor"
)

// MakeWorld writes the lab world of these tests (seed 7, 3000 hosts, 4 /16s,
// seed fraction 0.2) once per test process and returns its directory; the
// tests only read it. Main removes it.
func MakeWorld(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.world != "" {
		return filepath.Join(shared.world, "world")
	}
	w := labtest.World(t, lab.Config{Seed: 7, Hosts: 3000, Slash16s: 4, SeedFrac: 0.2})
	dir, err := os.MkdirTemp("", "gps-world-")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(filepath.Join(dir, "world")); err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	shared.world = dir
	return filepath.Join(dir, "world")
}

// Reference runs `gps all` in-process on the world of MakeWorld (an
// embedded server) once per test process and returns what it left in the
// streams: the run without faults to compare a separate-process run with.
func Reference(t testing.TB, world string) Outcome {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.ref != nil {
		return *shared.ref
	}
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	core, logs := observer.New(zapcore.InfoLevel)
	sum, _, err := all.Run(ctx, all.Deps{Config: all.Config{World: world, Quiet: time.Second, Modeler: modeler.Config{Hitrate: Hitrate, Step: 16}, Predictor: predictor.Config{Hitrate: Hitrate}}, Bus: b, Log: zap.New(core)})
	// The plan and the end of the run say why a reference may differ.
	for _, e := range logs.FilterMessage("priors plan published").All() {
		t.Logf("gps all: plan: %v", e.ContextMap())
	}
	for _, e := range logs.FilterMessage("pipeline idle").All() {
		t.Logf("gps all: idle: %v", e.ContextMap())
	}
	for _, e := range logs.FilterLevelExact(zapcore.WarnLevel).All() {
		t.Logf("gps all: warning: %s %v", e.Message, e.ContextMap())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gps all: %s", sum.JSON())
	o := Collect(t, b)
	shared.ref = &o
	return o
}

// ModelerWorldFlags are the flags a separate modeler needs to plan as
// `gps all --world` does: the world's seed fraction, which sets the sweeps'
// prior yields and so the prober's order.
func ModelerWorldFlags(t testing.TB, world string) []string {
	t.Helper()
	m, err := lab.ReadMeta(world)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := m.Params["seed_frac"].(float64)
	if !ok {
		t.Fatalf("%s: no seed_frac in the world's meta", world)
	}
	return []string{"--sweep-prior-frac", strconv.FormatFloat(f, 'g', -1, 64)}
}
