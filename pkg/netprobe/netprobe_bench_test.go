package netprobe

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/labserve"
	"github.com/gpsscan/gps/pkg/row"
)

// BenchmarkConnectClosed: the connect engine against closed loopback ports
// (127.250.0.0/16 serves nothing; each connect is answered by a RST), no
// rate limit. Reports connects per second.
func BenchmarkConnectClosed(b *testing.B) {
	p, err := New(Options{Policy: policy(b, "127.250.0.0/16"), Rate: -1, Concurrency: 512, Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	sweepClosed(b, p, "connects/s")
}

// BenchmarkLab: every service of a 300-host lab world (745 services: HTTP,
// TLS, SSH, banners, and silent ones that cost a timeout), probed and
// grabbed with the test timeouts (1 s, banner wait 0.5 s), no rate limit.
// Reports services per second.
func BenchmarkLab(b *testing.B) {
	probeLab(b, lab.Config{Seed: 1, Hosts: 300, Slash16s: 1, SeedFrac: 0.2}, "127.1.0.0/16", 0)
}

// BenchmarkLabLarge: as BenchmarkLab on a world of about 21,000 services
// (served by this process and a helper), concurrency 1024.
func BenchmarkLabLarge(b *testing.B) {
	probeLab(b, lab.Config{Seed: 3, Hosts: 9000, Slash16s: 8, SeedFrac: 0.01}, "127.0.0.0/8", 1024)
}

// BenchmarkSYNClosed: BenchmarkConnectClosed with the syn engine (skipped
// where raw sockets are denied). Reports SYNs per second.
func BenchmarkSYNClosed(b *testing.B) {
	p, err := New(Options{Policy: policy(b, "127.250.0.0/16"), Engine: EngineSYN, Rate: -1, Concurrency: 512, Timeout: time.Second})
	if err != nil {
		b.Skip(err)
	}
	defer p.Close()
	sweepClosed(b, p, "syns/s")
	if to := p.Stats().Timeouts.Load(); to > 0 {
		b.Logf("%d probes got no reply", to)
	}
}

// sweepClosed sweeps b.N addresses of 127.250.0.0/16 (nothing served) on
// port 9 with p, and reports the probes per second as unit.
func sweepClosed(b *testing.B, p *Prober, unit string) {
	b.Helper()
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	left := b.N
	for left > 0 {
		bits := 16
		for 1<<(32-bits) > left {
			bits++
		}
		n, err := p.Sweep(ctx, 127<<24|250<<16, bits, 9, func(row.Row) { b.Fatal("found a service") })
		if err != nil {
			b.Fatal(err)
		}
		left -= int(n)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), unit)
}

// probeLab serves the lab world of c and probes and grabs every service in
// it b.N times over: the policy allowing allow, concurrency probes in flight
// (0: the default), the test timeouts, no rate limit. Reports services per
// second and the fraction found.
func probeLab(b *testing.B, c lab.Config, allow string, concurrency int) {
	b.Helper()
	w := labtest.World(b, c)
	ctx := context.Background()
	l, err := labserve.ServeRows(ctx, w.Truth, labserve.Options{}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ts := newWorld(l.Services()).order
	p, err := New(Options{Policy: policy(b, allow), Rate: -1, Concurrency: concurrency, Timeout: time.Second,
		BannerWait: 500 * time.Millisecond, KeepEmpty: true, PseudoPorts: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	found := 0
	for range b.N {
		for _, x := range probeAll(ctx, p, ts) {
			if x.ok {
				found++
			}
		}
	}
	el := time.Since(start)
	b.ReportMetric(float64(b.N*len(ts))/el.Seconds(), "services/s")
	b.ReportMetric(float64(found)/float64(b.N*len(ts)), "found-frac")
}
