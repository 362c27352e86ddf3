package eval

import (
	"testing"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/pkg/explore"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/schedule"
)

// evalBenchWorld is the world of issue #16's speed bound (docs/performance.md,
// "gps eval of a 64-/16 world"): `gps lab gen --seed 3 --hosts 130000
// --slash16s 64 --seed-frac 0.01`.
var evalBenchWorld = lab.Config{Seed: 3, Hosts: 130_000, Slash16s: 64, SeedFrac: 0.01}

// evalBenchParams are `gps eval`'s flag defaults (cmd/gps/eval.go).
func evalBenchParams() Params {
	return Params{Hitrate: gps.DefaultHitrate, Step: gps.DefaultStep, Chunk: schedule.DefaultChunk, PriorWeight: 1,
		OwnSeed: 0.0002, OwnSeedKey: 1, RandShare: 0.1, SeedMax: 0.003, HostShare: 0.1, HostWindow: 200,
		PortMin: 2, ProbeFound: explore.DefaultProbeFound, MultiPredict: true}
}

// BenchmarkReplay64 replays the 64-/16 world under every policy, as `gps
// eval` does after loading it; the bound is under a minute for the whole
// eval on a 2-core machine. -bench 'Replay64/gps-stream$' and the like run
// one policy.
func BenchmarkReplay64(b *testing.B) {
	dir := makeBenchWorld(b)
	w, err := LoadWorld(dir)
	if err != nil {
		b.Fatal(err)
	}
	p := evalBenchParams()
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			Replay(w, p, zap.NewNop())
		}
	})
	b.Run("gps-stream", func(b *testing.B) {
		for b.Loop() {
			Stream(w, p, nil)
		}
	})
	b.Run("gps-stream-own", func(b *testing.B) {
		for b.Loop() {
			Explore(w, p)
		}
	})
}

func makeBenchWorld(b *testing.B) string {
	b.Helper()
	dir, _ := labtest.WriteWorld(b, evalBenchWorld)
	return dir
}
