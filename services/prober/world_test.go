package prober

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
)

// world writes a small lab world into a temporary directory.
func world(t *testing.T) (string, *lab.World) {
	t.Helper()
	return labtest.WriteWorld(t, lab.Config{Seed: 1, Hosts: 2000, Slash16s: 2, SeedFrac: 0.2})
}

func addrOf(t testing.TB, ip string) uint32 {
	t.Helper()
	a, err := row.ParseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// busiestPort is the port with the most truth services in 127.1.0.0/16.
func busiestPort(w *lab.World) int {
	counts := make(map[int]int)
	best := 0
	for _, r := range w.Truth {
		if a, _ := row.ParseAddr(r.IP); a>>16 == 127<<8|1 {
			counts[r.Port]++
			if counts[r.Port] > counts[best] {
				best = r.Port
			}
		}
	}
	return best
}

func TestWorldResponder(t *testing.T) {
	dir, w := world(t)
	resp, err := NewWorldResponder(dir, WorldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, r := range w.Truth {
		got, ok, err := resp.Probe(ctx, addrOf(t, r.IP), uint16(r.Port))
		if err != nil || !ok || got.IP != r.IP || got.Port != r.Port || got.Data != r.Data {
			t.Fatalf("probe %s:%d = %v %v %v", r.IP, r.Port, got, ok, err)
		}
	}
	if _, ok, _ := resp.Probe(ctx, addrOf(t, "127.0.0.1"), 22); ok {
		t.Fatal("a service outside the world answered")
	}
	if _, ok, _ := resp.Probe(ctx, addrOf(t, w.Truth[0].IP), 1); ok && !slices.ContainsFunc(w.Truth, func(r row.Row) bool { return r.IP == w.Truth[0].IP && r.Port == 1 }) {
		t.Fatal("a closed port answered")
	}

	port := busiestPort(w)
	for _, tc := range []struct {
		prefix string
		bits   int
	}{{"127.1.0.0", 16}, {"127.1.0.0", 17}, {"127.2.0.0", 24}, {"127.0.0.0", 8}, {"127.1.2.3", 32}} {
		t.Run(tc.prefix, func(t *testing.T) {
			base := addrOf(t, tc.prefix)
			var want []string
			for _, r := range w.Truth {
				if a := addrOf(t, r.IP); r.Port == port && a>>(32-tc.bits) == base>>(32-tc.bits) {
					want = append(want, r.IP)
				}
			}
			var got []string
			probes, err := resp.Sweep(ctx, base, tc.bits, uint16(port), func(r row.Row) { got = append(got, r.IP) })
			if err != nil || probes != 1<<(32-tc.bits) {
				t.Fatalf("sweep: %d probes, %v", probes, err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("sweep found %d services, want %d", len(got), len(want))
			}
		})
	}
	if _, err := resp.Sweep(ctx, 0, 33, 80, func(row.Row) {}); err == nil {
		t.Fatal("sweep of a /33")
	}
}

func TestWorldDuplicateRowsFirstWins(t *testing.T) {
	ss := []row.Service{
		{Row: row.Row{IP: "127.1.0.1", Port: 80, Data: "first"}, Addr: addrOf(t, "127.1.0.1")},
		{Row: row.Row{IP: "127.1.0.1", Port: 80, Data: "second"}, Addr: addrOf(t, "127.1.0.1")},
	}
	resp := NewWorldResponderFromServices(ss, WorldOptions{})
	r, ok, _ := resp.Probe(context.Background(), addrOf(t, "127.1.0.1"), 80)
	n := 0
	resp.Sweep(context.Background(), addrOf(t, "127.1.0.0"), 24, 80, func(row.Row) { n++ })
	if !ok || r.Data != "first" || n != 1 || resp.Services() != 1 {
		t.Fatalf("probe %v %v, sweep %d", r, ok, n)
	}
}

func TestLossIsDeterministic(t *testing.T) {
	dir, w := world(t)
	lost := func(loss float64, seed int64) []bool {
		resp, err := NewWorldResponder(dir, WorldOptions{Loss: loss, LossSeed: seed})
		if err != nil {
			t.Fatal(err)
		}
		out := make([]bool, len(w.Truth))
		for i, r := range w.Truth {
			_, ok, _ := resp.Probe(context.Background(), addrOf(t, r.IP), uint16(r.Port))
			out[i] = !ok
		}
		return out
	}
	a, b, c := lost(0.3, 5), lost(0.3, 5), lost(0.3, 6)
	if !slices.Equal(a, b) {
		t.Fatal("same loss seed, different services lost")
	}
	if slices.Equal(a, c) {
		t.Fatal("different loss seeds, same services lost")
	}
	n := 0
	for _, x := range a {
		if x {
			n++
		}
	}
	if frac := float64(n) / float64(len(a)); frac < 0.25 || frac > 0.35 {
		t.Fatalf("lost %.3f of the services, want about 0.3", frac)
	}
	if slices.Contains(lost(0, 5), true) || slices.Contains(lost(1, 5), false) {
		t.Fatal("loss 0 lost a service, or loss 1 kept one")
	}
	if _, err := NewWorldResponder(dir, WorldOptions{Loss: 1.5}); err == nil {
		t.Fatal("loss 1.5 accepted")
	}
}

func TestLatencyHonoursContext(t *testing.T) {
	resp := NewWorldResponderFromServices(nil, WorldOptions{Latency: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := resp.Probe(ctx, 1, 1); err == nil {
		t.Fatal("probe ignored a cancelled context")
	}
}

// checkCycle probes every service of the world at cycle k, and every one
// of the other cycle's, and wants exactly cycle k's to answer.
func checkCycle(t *testing.T, resp *WorldResponder, dir string, k, other int) {
	t.Helper()
	ctx := context.Background()
	want, err := lab.ReadCycle(dir, k)
	if err != nil {
		t.Fatal(err)
	}
	in := map[uint64]row.Row{}
	for _, s := range want {
		in[svcKey(s.Addr, uint16(s.Port))] = s.Row
		got, ok, err := resp.Probe(ctx, s.Addr, uint16(s.Port))
		if err != nil || !ok || got.Data != s.Data || got.IP != s.IP {
			t.Fatalf("cycle %d: probe %s:%d = %v %v %v, want %q", k, s.IP, s.Port, got.Data, ok, err, s.Data)
		}
	}
	others, err := lab.ReadCycle(dir, other)
	if err != nil {
		t.Fatal(err)
	}
	differ := 0
	for _, s := range others {
		r, there := in[svcKey(s.Addr, uint16(s.Port))]
		if there && r.Data == s.Data {
			continue
		}
		differ++
		if got, ok, _ := resp.Probe(ctx, s.Addr, uint16(s.Port)); ok && got.Data == s.Data {
			t.Fatalf("cycle %d: %s:%d answered as in cycle %d", k, s.IP, s.Port, other)
		}
	}
	if differ == 0 {
		t.Fatalf("cycles %d and %d do not differ", k, other)
	}
	if resp.Cycle() != k || resp.Services() != len(want) {
		t.Fatalf("responder at cycle %d with %d services, want %d and %d", resp.Cycle(), resp.Services(), k, len(want))
	}
}

func TestWorldResponderCycles(t *testing.T) {
	dir, _ := labtest.WriteWorld(t, lab.Config{Seed: 1, Hosts: 2000, Slash16s: 2, SeedFrac: 0.2, Cycles: 3, Churn: 3})
	resp, err := NewWorldResponder(dir, WorldOptions{Cycle: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkCycle(t, resp, dir, 2, 0)
	for _, step := range []struct{ to, other int }{{3, 2}, {0, 3}, {1, 0}} {
		if err := resp.SetCycle(step.to); err != nil {
			t.Fatal(err)
		}
		checkCycle(t, resp, dir, step.to, step.other)
	}
	if err := resp.SetCycle(4); !errors.Is(err, lab.ErrCycle) || resp.Cycle() != 1 {
		t.Fatalf("SetCycle(4) of a 3-cycle world: %v, now at %d", err, resp.Cycle())
	}
	if _, err := NewWorldResponder(dir, WorldOptions{Cycle: 4}); !errors.Is(err, lab.ErrCycle) {
		t.Fatalf("cycle 4 of a 3-cycle world: %v", err)
	}
	if err := NewWorldResponderFromServices(nil, WorldOptions{}).SetCycle(1); !errors.Is(err, ErrNoWorldDir) {
		t.Fatalf("SetCycle without a world directory: %v", err)
	}
}

// TestWorldResponderSetCycleConcurrent moves cycles while probes and
// sweeps run (go test -race finds what is unsafe).
func TestWorldResponderSetCycleConcurrent(t *testing.T) {
	dir, w := labtest.WriteWorld(t, lab.Config{Seed: 2, Hosts: 1000, Slash16s: 1, Cycles: 2, Churn: 3})
	resp, err := NewWorldResponder(dir, WorldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	for range 2 {
		g.Go(func() error {
			for ctx.Err() == nil {
				for _, r := range w.Truth[:200] {
					resp.Probe(ctx, addrOf(t, r.IP), uint16(r.Port))
				}
				if _, err := resp.Sweep(ctx, addrOf(t, "127.1.0.0"), 16, 80, func(row.Row) {}); err != nil && ctx.Err() == nil {
					return err
				}
			}
			return nil
		})
	}
	for i := range 6 {
		if err := resp.SetCycle(i % 3); err != nil {
			t.Error(err)
		}
	}
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}
