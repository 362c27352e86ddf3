package explore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/schedule"
)

func newTestPolicy(t *testing.T, c Config, sp *Space) (*Policy, *schedule.Scheduler) {
	t.Helper()
	seeded := &Seeded{}
	sched, err := schedule.New(schedule.Config{Skip: seeded, Clock: schedule.NewSimClock(time.Unix(0, 0))})
	if err != nil {
		t.Fatal(err)
	}
	return New(c, sp, sched, seeded, Tokens{}), sched
}

func testConfig() Config {
	return Default(DefaultOwnSeed)
}

// TestLearnedPortIsSwept: a port found by the random seed is swept over
// every /16 of the space at once; one found on a found host waits for a
// second find (PortMin 2); a find the policy knew of teaches nothing.
func TestLearnedPortIsSwept(t *testing.T) {
	sp := LabSpace(nil, 3)
	p, sched := newTestPolicy(t, testConfig(), sp)
	n16 := len(sp.Slash16s())
	a, b := uint32(127<<24|1<<16|5), uint32(127<<24|2<<16|9)
	p.Learn(schedule.Work{Kind: schedule.Seed, First: a, Last: a, Port: 65535, Token: HostSeed},
		[]gps.Target{{Addr: a, Port: 4242}})
	if p.Swept(4242) || sched.Len() != 0 {
		t.Fatalf("one find on a host seed: swept %v, %d queued; want nothing yet", p.Swept(4242), sched.Len())
	}
	p.Learn(schedule.Work{Kind: schedule.Probe, First: a, Last: a, Port: 4242}, []gps.Target{{Addr: a, Port: 4242}})
	if p.Swept(4242) || len(p.HostPorts(a)) != 1 {
		t.Fatalf("the same find again: swept %v, host ports %v; want it ignored", p.Swept(4242), p.HostPorts(a))
	}
	p.Learn(schedule.Work{Kind: schedule.Probe, First: b, Last: b, Port: 4242}, []gps.Target{{Addr: b, Port: 4242}})
	if !p.Swept(4242) || sched.Len() < n16 {
		t.Fatalf("second find: swept %v, %d queued; want %d sweeps", p.Swept(4242), sched.Len(), n16)
	}
	n := sched.Len()
	p.Learn(schedule.Work{Kind: schedule.Seed, First: b + 1, Last: b + 1, Port: 65535, Token: RandomSeed},
		[]gps.Target{{Addr: b + 1, Port: 777}})
	if !p.Swept(777) || sched.Len() < n+n16 {
		t.Fatalf("random seed find: swept %v, %d queued; want %d more sweeps", p.Swept(777), sched.Len(), n16)
	}
	if st := p.Stats(); st.RandomSeeds != 1 || st.RandomHosts != 1 || st.HostSeeds != 1 || st.LearnedPorts != 2 {
		t.Fatalf("stats %+v, want 1 random seed that answered, 1 host seed, 2 learned ports", st)
	}
}

// TestPseudoHostTeachesNothing: past PseudoPorts found ports a host is a
// sink: no predictions, and its ports are not swept.
func TestPseudoHostTeachesNothing(t *testing.T) {
	p, _ := newTestPolicy(t, testConfig(), LabSpace(nil, 2))
	a := uint32(127<<24 | 1<<16 | 7)
	var hits []gps.Target
	for port := uint16(1); port <= PseudoPorts+1; port++ {
		hits = append(hits, gps.Target{Addr: a, Port: port})
	}
	p.Learn(schedule.Work{Kind: schedule.Chunk, First: a, Last: a, Port: 1}, hits)
	if !p.Pseudo(a) || p.Predictable(a) {
		t.Fatalf("host of %d ports: pseudo %v predictable %v", len(hits), p.Pseudo(a), p.Predictable(a))
	}
	p.Learn(schedule.Work{Kind: schedule.Probe, First: a + 1, Last: a + 1, Port: 1}, []gps.Target{{Addr: a + 1, Port: 1}})
	if p.Swept(1) {
		t.Fatal("a port whose first find was on a pseudo-host is swept after one more find")
	}
}

// TestRefillStopsAtSeedMax: Refill seeds host seeds first, then random
// addresses until SeedMax of the space, then nothing.
func TestRefillStopsAtSeedMax(t *testing.T) {
	c := testConfig()
	c.OwnSeed, c.SeedMax = 0, 3.0/65536
	p, sched := newTestPolicy(t, c, LabSpace(nil, 1))
	a := uint32(127<<24 | 1<<16 | 9)
	p.Learn(schedule.Work{Kind: schedule.Probe, First: a, Last: a, Port: 80}, []gps.Target{{Addr: a, Port: 80}})
	if !p.Refill() {
		t.Fatal("no host seed")
	}
	if x, ok, _ := sched.TryNext(t.Context()); !ok || x.Kind != schedule.Seed || x.First != a || x.Token != HostSeed {
		t.Fatalf("first refill released %+v, want a host seed of %d", x, a)
	}
	for i := range 3 {
		if !p.Refill() {
			t.Fatalf("refill %d: no random seed below SeedMax", i)
		}
	}
	if p.Refill() {
		t.Fatal("a random seed past SeedMax")
	}
	for range 3 {
		if x, ok, _ := sched.TryNext(t.Context()); !ok || x.Token != RandomSeed {
			t.Fatalf("released %+v, want a random seed", x)
		}
	}
}

// TestPortFoundOnceIsProbedOnLikeHosts: a port found on one host is
// probed on the ProbeFound found hosts sharing the most found ports with
// it (not on the host itself, nor on a pseudo-host), and its second find
// sweeps it; with ProbeFound 0 it waits for a second find elsewhere.
func TestPortFoundOnceIsProbedOnLikeHosts(t *testing.T) {
	base := uint32(127<<24 | 1<<16)
	origin, twin, half, other, pseudo := base+1, base+2, base+3, base+4, base+5
	finds := []gps.Target{{Addr: origin, Port: 80}, {Addr: origin, Port: 7547}, {Addr: twin, Port: 80}, {Addr: twin, Port: 7547},
		{Addr: half, Port: 80}, {Addr: other, Port: 22}}
	for port := range uint16(PseudoPorts + 1) {
		finds = append(finds, gps.Target{Addr: pseudo, Port: 1000 + port})
	}
	finds = append(finds, gps.Target{Addr: pseudo, Port: 80}, gps.Target{Addr: pseudo, Port: 7547})
	probed := func(probeFound int) (*Policy, []schedule.Target) {
		c := testConfig()
		c.ProbeFound = probeFound
		p, sched := newTestPolicy(t, c, LabSpace(nil, 2))
		p.Learn(schedule.Work{Kind: schedule.Probe}, slices.Clone(finds))
		p.Learn(schedule.Work{Kind: schedule.Seed, First: origin, Last: origin, Port: 65535, Token: HostSeed},
			[]gps.Target{{Addr: origin, Port: 4242}})
		var got []schedule.Target
		for {
			x, ok, err := sched.TryNext(context.Background())
			if err != nil || !ok {
				return p, got
			}
			if x.Kind == schedule.Probe && x.Port == 4242 {
				got = append(got, x.Target)
			}
		}
	}
	if _, got := probed(1); !slices.Equal(got, []schedule.Target{{Addr: twin, Port: 4242}}) {
		t.Fatalf("ProbeFound 1: probed %v, want the host sharing both ports", got)
	}
	p, got := probed(8)
	if !slices.Equal(got, []schedule.Target{{Addr: twin, Port: 4242}, {Addr: half, Port: 4242}}) {
		t.Fatalf("ProbeFound 8: probed %v, want the hosts sharing a port, most shared first (no pseudo-host)", got)
	}
	if p.Swept(4242) {
		t.Fatal("one find swept the port")
	}
	p.Learn(schedule.Work{Kind: schedule.Probe, First: twin, Last: twin, Port: 4242}, []gps.Target{{Addr: twin, Port: 4242}})
	if !p.Swept(4242) {
		t.Fatal("the second find, on a like host, did not sweep the port")
	}
	if _, got := probed(0); len(got) != 0 {
		t.Fatalf("ProbeFound 0: probed %v, want nothing", got)
	}
}

// TestRandomSeedOfSeededHost: the random seed's next address was
// host-seeded already, so the scheduler drops its seed; the policy counts
// it as a random seed that found nothing new and goes on to the next
// address, rather than waiting for the dropped seed forever.
func TestRandomSeedOfSeededHost(t *testing.T) {
	c := testConfig()
	c.OwnSeed, c.RandShare, c.SeedMax = 0, 1, 1
	sp := LabSpace(nil, 1)
	p, sched := newTestPolicy(t, c, sp)
	o := NewCyclic(sp.Size(), c.Key)
	a0, a1, a2 := sp.Addr(o.Next()), sp.Addr(o.Next()), sp.Addr(o.Next())
	p.Start()
	p.Learn(schedule.Work{Kind: schedule.Probe, First: a1, Last: a1, Port: 80}, []gps.Target{{Addr: a1, Port: 80}})
	if !p.Refill() {
		t.Fatal("no host seed of the found host")
	}
	for _, want := range []schedule.Work{{First: a0, Token: RandomSeed}, {First: a1, Token: HostSeed}} {
		x, ok, _ := sched.TryNext(t.Context())
		if !ok || x.Kind != schedule.Seed || x.First != want.First || x.Token != want.Token {
			t.Fatalf("released %+v, want a seed of %d, token %v", x, want.First, want.Token)
		}
		p.Released(x)
		p.Learn(x, nil)
	}
	p.MaybeSeed(1 << 40) // the next random address is a1, seeded: dropped
	x, ok, _ := sched.TryNext(t.Context())
	if !ok || x.Kind != schedule.Seed || x.First != a2 || x.Token != RandomSeed {
		t.Fatalf("after a dropped random seed released %+v (ok %v), want the random seed of %d", x, ok, a2)
	}
	p.Learn(x, nil)
	if st := p.Stats(); st.RandomSeeds != 3 {
		t.Fatalf("%d random seeds, want 3 (the dropped one counted, as its place in the order)", st.RandomSeeds)
	}
	p.MaybeSeed(1 << 40)
	if x, ok, _ := sched.TryNext(t.Context()); !ok || x.Token != RandomSeed {
		t.Fatalf("released %+v (ok %v), want the next random seed", x, ok)
	}
}

// TestHostSeedOfSeededHost: a found host that the random seed seeded
// before its host seed came up is passed over: the next one is seeded.
func TestHostSeedOfSeededHost(t *testing.T) {
	c := testConfig()
	c.OwnSeed, c.HostShare = 0, 1
	sp := LabSpace(nil, 1)
	p, sched := newTestPolicy(t, c, sp)
	a0 := sp.Addr(NewCyclic(sp.Size(), c.Key).Next())
	b := a0 ^ 1
	p.Learn(schedule.Work{Kind: schedule.Probe}, []gps.Target{{Addr: a0, Port: 80}, {Addr: b, Port: 80}})
	p.Start() // the random seed of a0, queued for its host seed
	if x, ok, _ := sched.TryNext(t.Context()); !ok || x.First != a0 || x.Token != RandomSeed {
		t.Fatalf("released %+v (ok %v), want the random seed of %d", x, ok, a0)
	}
	p.MaybeSeed(1 << 40)
	if x, ok, _ := sched.TryNext(t.Context()); !ok || x.First != b || x.Token != HostSeed {
		t.Fatalf("released %+v (ok %v), want the host seed of %d", x, ok, b)
	}
}

// TestRandomSeedStopsWhenNothingAnswers: the random seed goes on at
// RandShare only while one of its last HostWindow addresses answered.
func TestRandomSeedStopsWhenNothingAnswers(t *testing.T) {
	c := testConfig()
	c.OwnSeed, c.RandShare, c.SeedMax, c.HostWindow, c.HostShare = 0, 1, 1, 2, 0
	p, sched := newTestPolicy(t, c, LabSpace(nil, 1))
	p.Start()
	release := func(hit bool) bool {
		t.Helper()
		x, ok, _ := sched.TryNext(t.Context())
		if !ok {
			return false
		}
		if x.Token != RandomSeed {
			t.Fatalf("released %+v, want a random seed", x)
		}
		var hits []gps.Target
		if hit {
			hits = []gps.Target{{Addr: x.First, Port: 22}}
		}
		p.Learn(x, hits)
		p.MaybeSeed(1 << 40)
		return true
	}
	if !release(false) || !release(false) {
		t.Fatal("fewer than HostWindow random seeds")
	}
	if release(false) {
		t.Fatal("a random seed after HostWindow in a row found nothing")
	}
	if !p.Refill() || !release(true) || !release(false) {
		t.Fatal("no random seed after one answered")
	}
}
