package prober

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/explore"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
	"go.uber.org/zap/zaptest"
)

// services answers from a set of services, one probe at a time (it is no
// HostScanner: a seed goes port by port, as live); it counts the probes
// of each address.
type services struct {
	mu     sync.Mutex
	svc    map[uint64]bool
	probes map[uint32]int
}

func (s *services) Probe(_ context.Context, addr uint32, port uint16) (row.Row, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.probes[addr]++
	if !s.svc[uint64(addr)<<16|uint64(port)] {
		return row.Row{}, false, nil
	}
	return row.Row{IP: row.FormatAddr(addr), Port: int(port), Fingerprint: "fake"}, true, nil
}

func (s *services) Sweep(ctx context.Context, prefix uint32, bits int, port uint16, fn func(row.Row)) (uint64, error) {
	for a := uint64(prefix); a < uint64(prefix)+1<<(32-bits); a++ {
		if r, ok, _ := s.Probe(ctx, uint32(a), port); ok {
			fn(r)
		}
	}
	return 1 << (32 - bits), nil
}

// TestOwnSeed: with --own-seed the prober seeds the first address of the
// cyclic order on every port (one probe a port), sweeps the ports that
// random seed found over the space, seeds the host the sweep found, and
// publishes each find with its phase: seed for seeds, priors for sweeps.
// It then seeds random addresses up to --seed-max and says it is idle.
// ownWorld is one /16 with two hosts: a, the first address of the own
// seed's cyclic order, on ports 4242 and 80, and b on 4242 and 22.
func ownWorld(t *testing.T) (o explore.Config, a, b uint32, resp *services) {
	t.Helper()
	sp, err := explore.ParseSpace([]string{"127.1.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	o = explore.Default(1.0 / 65536) // one address at the start
	o.SeedMax = 3.0 / 65536
	order := explore.NewCyclic(sp.Size(), o.Key)
	a = sp.Addr(order.Next())
	b = a ^ 0x0100 // another host of the /16
	resp = &services{probes: map[uint32]int{}, svc: map[uint64]bool{}}
	for _, s := range []struct {
		addr uint32
		port uint16
	}{{a, 4242}, {a, 80}, {b, 4242}, {b, 22}} {
		resp.svc[uint64(s.addr)<<16|uint64(s.port)] = true
	}
	return o, a, b, resp
}

// runOwn runs a prober with the own seed o on the bus until its policy has
// nothing left, then stops it.
func runOwn(t *testing.T, bb *bus.Bus, o explore.Config, resp Responder) *Stats {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st := new(Stats)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Deps{Config: Config{Allow: []string{"127.1.0.0/16"}, Concurrency: 1, Own: o, OwnSpace: []string{"127.1.0.0/16"}},
			Bus: bb, Log: zaptest.NewLogger(t), Stats: st, Responder: resp})
	}()
	servicetest.WaitFor(t, "the own seed done", st.OwnIdle.Load)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return st
}

func TestOwnSeed(t *testing.T) {
	o, a, b, resp := ownWorld(t)
	bb := bustest.New(t)
	runOwn(t, bb, o, resp)
	phases := map[string]string{}
	if err := bb.EachMessage(context.Background(), bus.StreamResults, func(data []byte) {
		rs, err := wire.DecodeResults(data)
		if err != nil {
			t.Errorf("bad result: %v", err)
		}
		for _, r := range rs {
			if k := r.IP + ":" + strconv.Itoa(r.Port); phases[k] == "" {
				phases[k] = r.Phase // the first find (a host seed publishes its host's services again)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	ia, ib := row.FormatAddr(a), row.FormatAddr(b)
	want := map[string]string{ia + ":4242": wire.PhaseSeed, ia + ":80": wire.PhaseSeed, ib + ":4242": wire.PhasePriors, ib + ":22": wire.PhaseSeed}
	for k, v := range want {
		if phases[k] != v {
			t.Errorf("%s: phase %q, want %q (results %v)", k, phases[k], v, phases)
		}
	}
	resp.mu.Lock()
	defer resp.mu.Unlock()
	if n := resp.probes[a]; n != 65535 {
		t.Errorf("the random seed probed %s %d times, want every port once (65535)", ia, n)
	}
	if n := resp.probes[b]; n != 65535+2 {
		t.Errorf("%s probed %d times, want once by each sweep (4242, 80) and every port by its host seed, which waits for them", ib, n)
	}
	var seeds []uint32
	for addr, n := range resp.probes {
		if n >= 65535 {
			seeds = append(seeds, addr)
		}
	}
	if len(seeds) != 4 || !slices.Contains(seeds, a) || !slices.Contains(seeds, b) {
		t.Errorf("seeded %d addresses, want the 3 random seeds of --seed-max and the found host", len(seeds))
	}
}

// TestOwnSeedRestart: a prober restarted on the same bus rebuilds its own
// seed from RESULTS: the seeds that found services are not seeded again,
// the ports it learned are known, and its probe count goes on from the
// earlier run's. What RESULTS cannot say is done again: the sweeps start
// over, and the random seeds after the last that found something.
func TestOwnSeedRestart(t *testing.T) {
	o, a, b, resp := ownWorld(t)
	bb := bustest.New(t)
	first := runOwn(t, bb, o, resp)
	resp.mu.Lock()
	before := maps.Clone(resp.probes)
	resp.mu.Unlock()
	second := runOwn(t, bb, o, resp)
	resp.mu.Lock()
	defer resp.mu.Unlock()
	for _, x := range []uint32{a, b} {
		if d := resp.probes[x] - before[x]; d != 0 {
			t.Errorf("%s probed %d more times after the restart, want none (seeded: left out of the sweeps)", row.FormatAddr(x), d)
		}
	}
	again := 0
	for addr, n := range resp.probes {
		if n-before[addr] >= 65535 {
			again++
		}
	}
	if again != 2 {
		t.Errorf("%d addresses seeded again, want the 2 random seeds after a, which found nothing", again)
	}
	if p1, p2 := first.Probes.Load(), second.Probes.Load(); p2 != 2*65535+2*(65536-2) {
		t.Errorf("the restart sent %d probes (the first run %d), want the 2 empty random seeds and the 2 sweeps (less the 2 seeded hosts) again", p2, p1)
	}
}

// TestOwnSeedConfigErrors: a bad own seed is refused with the flag named,
// and a space outside the allow list when the prober starts.
func TestOwnSeedConfigErrors(t *testing.T) {
	for _, c := range []struct {
		own   explore.Config
		space []string
		want  string
	}{
		{explore.Default(2), []string{"127.1.0.0/16"}, "--own-seed 2"},
		{explore.Default(0.001), []string{"127.1.0.0/24"}, "--own-space"},
		{explore.Config{OwnSeed: 0.001, HostWindow: -1}, []string{"127.1.0.0/16"}, "--host-window -1"},
	} {
		err := Config{World: "w", Own: c.own, OwnSpace: c.space}.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("own %+v space %v: %v, want an error naming %s", c.own, c.space, err, c.want)
		}
	}
	err := Run(t.Context(), Deps{Config: Config{Allow: []string{"127.1.0.0/16"}, Own: explore.Default(0.001), OwnSpace: []string{"127.2.0.0/16"}},
		Bus: bustest.New(t), Log: zaptest.NewLogger(t), Responder: &services{}})
	if err == nil || !strings.Contains(err.Error(), "127.2.0.0/16 is not inside the allow policy") {
		t.Errorf("a space outside the allow list: %v", err)
	}
}
