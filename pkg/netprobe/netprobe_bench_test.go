package netprobe

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

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
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "connects/s")
}

// BenchmarkLab: every service of a 300-host lab world (745 services: HTTP,
// TLS, SSH, banners, and silent ones that cost a timeout), probed and
// grabbed with the test timeouts (1 s, banner wait 0.5 s), no rate limit.
// Reports services per second.
func BenchmarkLab(b *testing.B) {
	w, err := lab.Generate(lab.Config{Seed: 1, Hosts: 300, Slash16s: 1, SeedFrac: 0.2}.WithDefaults())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	l, err := labserve.ServeRows(ctx, w.Truth, labserve.Options{}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ts := newWorld(l.Services()).order
	p, err := New(Options{Policy: policy(b, "127.1.0.0/16"), Rate: -1, Timeout: time.Second, BannerWait: 500 * time.Millisecond,
		KeepEmpty: true, PseudoPorts: -1})
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

// BenchmarkLabLarge: as BenchmarkLab on a world of about 21,000 services
// (served by this process and a helper), concurrency 1024.
func BenchmarkLabLarge(b *testing.B) {
	w, err := lab.Generate(lab.Config{Seed: 3, Hosts: 9000, Slash16s: 8, SeedFrac: 0.01}.WithDefaults())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	l, err := labserve.ServeRows(ctx, w.Truth, labserve.Options{}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ts := newWorld(l.Services()).order
	p, err := New(Options{Policy: policy(b, "127.0.0.0/8"), Rate: -1, Concurrency: 1024, Timeout: time.Second,
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

// BenchmarkSYNClosed: BenchmarkConnectClosed with the syn engine (skipped
// where raw sockets are denied). Reports SYNs per second.
func BenchmarkSYNClosed(b *testing.B) {
	p, err := New(Options{Policy: policy(b, "127.250.0.0/16"), Engine: EngineSYN, Rate: -1, Concurrency: 512, Timeout: time.Second})
	if err != nil {
		b.Skip(err)
	}
	defer p.Close()
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
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "syns/s")
	if to := p.Stats().Timeouts.Load(); to > 0 {
		b.Logf("%d probes got no reply", to)
	}
}
