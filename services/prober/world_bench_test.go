package prober

import (
	"context"
	"testing"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
)

// benchWorld is a world of 20,000 hosts for the responder's benchmarks.
func benchWorld(b *testing.B) (*WorldResponder, []row.Service) {
	b.Helper()
	dir, _ := labtest.WriteWorld(b, lab.Config{Seed: 1, Hosts: 20000, Slash16s: 16})
	resp, err := NewWorldResponder(dir, WorldOptions{Loss: 0.01})
	if err != nil {
		b.Fatal(err)
	}
	ss, err := row.ReadAll(lab.WorldFile(dir, lab.TruthFile))
	if err != nil {
		b.Fatal(err)
	}
	return resp, ss
}

// BenchmarkWorldProbe probes every service of the world once per op, and
// as many closed ports.
func BenchmarkWorldProbe(b *testing.B) {
	resp, ss := benchWorld(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range ss {
			resp.Probe(ctx, s.Addr, uint16(s.Port))
			resp.Probe(ctx, s.Addr, uint16(s.Port)+1)
		}
	}
	b.ReportMetric(float64(2*len(ss)), "probes/op")
}

// BenchmarkWorldSweep sweeps each /24 of 127.1.0.0/16 on the ports 80 and
// 443, as the prober's sweeps of a predicted prefix do.
func BenchmarkWorldSweep(b *testing.B) {
	resp, _ := benchWorld(b)
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for i := range uint32(256) {
			for _, p := range []uint16{80, 443} {
				resp.Sweep(ctx, 127<<24|1<<16|i<<8, 24, p, func(row.Row) { n++ })
			}
		}
	}
}
