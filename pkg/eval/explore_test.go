package eval

import (
	"testing"

	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/schedule"
)

func ownParams() Params {
	return Params{Hitrate: gps.DefaultHitrate, Step: 16, OwnSeed: 0.001, OwnSeedKey: 1, HostShare: 0.1, HostWindow: 200,
		PortMin: 2, MultiPredict: true, RandShare: 0.1, SeedMax: 0.003}
}

// TestExploreChargesItsSeed: gps-stream-own's curve starts from nothing
// (not the world's seed), its probes count 65,535 for every address it
// seeded, and probes_total adds no fixed seed to them.
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
	seeds := uint64(st.RandomSeeds + st.HostSeeds)
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

// TestLearnedPortIsSwept: a port found by the random seed is swept over
// every /16 of the space at once; one found on a found host waits for a
// second find (PortMin 2).
func TestLearnedPortIsSwept(t *testing.T) {
	w, err := LoadWorld(makeWorld(t, lab.Config{Seed: 5, Hosts: 2000, Slash16s: 3, SeedFrac: 0.02}))
	if err != nil {
		t.Fatal(err)
	}
	e := newExplorer(w, ownParams())
	a, b := uint32(127<<24|1<<16|5), uint32(127<<24|2<<16|9)
	e.learn(schedule.Work{Kind: schedule.Seed, First: a, Last: a, Port: 65535, Token: hostSeed},
		[]gps.Target{{Addr: a, Port: 4242}})
	if e.swept[4242] || e.sched.Len() != 0 {
		t.Fatalf("one find on a host seed: swept %v, %d queued; want nothing yet", e.swept[4242], e.sched.Len())
	}
	e.learn(schedule.Work{Kind: schedule.Probe, First: b, Last: b, Port: 4242}, []gps.Target{{Addr: b, Port: 4242}})
	if !e.swept[4242] || e.sched.Len() < w.NSlash16 {
		t.Fatalf("second find: swept %v, %d queued; want %d sweeps", e.swept[4242], e.sched.Len(), w.NSlash16)
	}
	n := e.sched.Len()
	e.learn(schedule.Work{Kind: schedule.Seed, First: b + 1, Last: b + 1, Port: 65535, Token: randomSeed},
		[]gps.Target{{Addr: b + 1, Port: 777}})
	if !e.swept[777] || e.sched.Len() < n+w.NSlash16 {
		t.Fatalf("random seed find: swept %v, %d queued; want %d more sweeps", e.swept[777], e.sched.Len(), w.NSlash16)
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
	if len(sp.slash16s) != w.NSlash16 || sp.size() != w.Addresses() {
		t.Fatalf("space of %d /16s (%d addresses), want %d", len(sp.slash16s), sp.size(), w.NSlash16)
	}
	for tg := range w.byTarget {
		i := 0
		for i < len(sp.slash16s) && sp.slash16s[i] != tg.Addr&^0xffff {
			i++
		}
		if i == len(sp.slash16s) || sp.addr(uint64(i)<<16|uint64(tg.Addr&0xffff)) != tg.Addr {
			t.Fatalf("%v is not in the space", tg)
		}
	}
}
