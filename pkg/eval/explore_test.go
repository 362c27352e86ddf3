package eval

import (
	"testing"

	"github.com/gpsscan/gps/pkg/explore"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/schedule"
)

func ownParams() Params {
	return Params{Hitrate: gps.DefaultHitrate, Step: 16, OwnSeed: 0.001, OwnSeedKey: 1, HostShare: 0.1, HostWindow: 200,
		PortMin: 2, ProbeFound: explore.DefaultProbeFound, MultiPredict: true, RandShare: 0.1, SeedMax: 0.003}
}

// TestExploreChargesItsSeed: gps-stream-own's curve starts from nothing
// (not the world's seed), its probes count 65,535 for every address it
// seeded (a random seed of an address a host seed probed is not probed
// again), and probes_total adds no fixed seed to them.
func TestExploreChargesItsSeed(t *testing.T) {
	w, err := LoadWorld(makeWorld(t, lab.Config{Seed: 4, Hosts: 3000, Slash16s: 2, SeedFrac: 0.02}))
	if err != nil {
		t.Fatal(err)
	}
	p := ownParams()
	c, st := Explore(w, p)
	if c.Points[0].Found != 0 || c.Points[0].Probes != 0 {
		t.Fatalf("own curve starts at %+v, want nothing found", c.Points[0])
	}
	seeds := uint64(st.RandomSeeds - st.RandomDups + st.HostSeeds)
	if st.RandomSeeds < int(p.OwnSeed*float64(w.Addresses())) || st.Seeds != int(seeds) {
		t.Fatalf("stats %+v: want at least the start's %v random seeds", st, p.OwnSeed*float64(w.Addresses()))
	}
	if e := c.End(); e.Probes < seeds*schedule.SeedPorts || st.Probes != e.Probes {
		t.Fatalf("curve ends at %d probes, scheduler %d, want at least %d for %d seeds", e.Probes, st.Probes, seeds*schedule.SeedPorts, seeds)
	}
	s := summarize(w, Config{World: "w", Params: p}, []*Curve{Batch(w, p).Curve, c}, Batch(w, p).Curve.End().Probes)
	if r := s.Policies["gps-stream-own"]; r.ProbesTotal != c.End().Probes {
		t.Fatalf("own probes_total %d, want its curve's %d (no fixed seed added)", r.ProbesTotal, c.End().Probes)
	}
	if r := s.Policies["gps-batch"]; r.ProbesTotal != s.BatchTotal || s.BatchTotal != Batch(w, p).Curve.End().Probes+w.SeedCost() {
		t.Fatalf("batch probes_total %d, summary's %d: want its probes plus the fixed seed", r.ProbesTotal, s.BatchTotal)
	}
	if c2, _ := Explore(w, p); len(c2.Points) != len(c.Points) || c2.End() != c.End() {
		t.Fatalf("two runs differ: %+v vs %+v", c.End(), c2.End())
	}
}

// TestSpaceIsTheWorlds: the space has the world's NSlash16 /16s, those of
// its truth among them.
func TestSpaceIsTheWorlds(t *testing.T) {
	w, err := LoadWorld(makeWorld(t, lab.Config{Seed: 6, Hosts: 50, Slash16s: 5, SeedFrac: 0.02}))
	if err != nil {
		t.Fatal(err)
	}
	sp := newSpace(w)
	if len(sp.Slash16s()) != w.NSlash16 || sp.Size() != w.Addresses() {
		t.Fatalf("space of %d /16s (%d addresses), want %d", len(sp.Slash16s()), sp.Size(), w.NSlash16)
	}
	for tg := range w.byTarget {
		i := 0
		for i < len(sp.Slash16s()) && sp.Slash16s()[i] != tg.Addr&^0xffff {
			i++
		}
		if i == len(sp.Slash16s()) || sp.Addr(uint64(i)<<16|uint64(tg.Addr&0xffff)) != tg.Addr {
			t.Fatalf("%v is not in the space", tg)
		}
	}
}
