package explore

import (
	"testing"

	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/schedule"
)

// TestHostSeedsMixed: with the default HostOrder (mixed), host seeds come
// from the random order and the kinds' in turn: a kind of many hosts gets
// about its share of the random turns, where seeding by kind alone takes
// one of its hosts and then every rare kind once, and seeding in the order
// found takes its hosts alone. Pseudo-hosts are not seeded.
func TestHostSeedsMixed(t *testing.T) {
	c := testConfig()
	c.OwnSeed, c.HostShare, c.SeedMax = 0, 1, 0
	if c.HostOrder != HostMixed {
		t.Fatalf("default HostOrder %q, want %q", c.HostOrder, HostMixed)
	}
	p, sched := newTestPolicy(t, c, LabSpace(nil, 1))
	base := uint32(127<<24 | 1<<16)
	var finds []gps.Target
	common := map[uint32]bool{}
	for i := range uint32(30) { // kind {80}, found first
		finds = append(finds, gps.Target{Addr: base + 1 + i, Port: 80})
		common[base+1+i] = true
	}
	for i := range uint32(10) { // kinds of their own: {80, 1000+i}
		a := base + 100 + i
		finds = append(finds, gps.Target{Addr: a, Port: 80}, gps.Target{Addr: a, Port: uint16(1000 + i)})
	}
	pseudo := base + 200
	for port := range uint16(PseudoPorts + 1) {
		finds = append(finds, gps.Target{Addr: pseudo, Port: 2000 + port})
	}
	p.Learn(schedule.Work{Kind: schedule.Probe}, finds)
	nCommon, nRare := 0, 0
	for range 10 {
		if !p.Refill() {
			t.Fatal("no host seed")
		}
		for {
			x, ok, _ := sched.TryNext(t.Context())
			if !ok {
				t.Fatal("no seed released")
			}
			if x.Kind != schedule.Seed {
				continue // a found-host probe
			}
			switch {
			case x.Token != HostSeed:
				t.Fatalf("seed %+v, want a host seed", x)
			case x.First == pseudo:
				t.Fatal("the pseudo-host was seeded")
			case common[x.First]:
				nCommon++
			default:
				nRare++
			}
			p.Learn(x, nil)
			break
		}
	}
	// By kind alone: 1 of {80}, 9 rare; in the order found: 10 of {80}.
	if nCommon < 3 || nRare < 4 {
		t.Fatalf("first 10 host seeds: %d of the kind of 30 hosts, %d of the 10 rare kinds; want at least 3 and 4", nCommon, nRare)
	}
}
