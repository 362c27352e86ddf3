package explore

import (
	"testing"

	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/schedule"
)

// TestHostSeedsByKind: found hosts are seeded by kind (their found
// ports): every kind once in the order the kinds appeared, then the kind
// whose seeds found the most per seed; pseudo-hosts are not seeded.
func TestHostSeedsByKind(t *testing.T) {
	c := testConfig()
	c.OwnSeed, c.HostShare, c.SeedMax, c.HostOrder = 0, 1, 0, HostKinds
	p, sched := newTestPolicy(t, c, LabSpace(nil, 1))
	base := uint32(127<<24 | 1<<16)
	a, b, cc, d, e, pseudo := base+1, base+2, base+3, base+4, base+5, base+6
	finds := []gps.Target{{Addr: a, Port: 80}, {Addr: cc, Port: 7547}, {Addr: cc, Port: 8080}, {Addr: b, Port: 80},
		{Addr: d, Port: 8080}, {Addr: d, Port: 7547}, {Addr: e, Port: 80}}
	for port := range uint16(PseudoPorts + 1) {
		finds = append(finds, gps.Target{Addr: pseudo, Port: 1000 + port})
	}
	p.Learn(schedule.Work{Kind: schedule.Probe}, finds)
	seed := func(want uint32, found int) {
		t.Helper()
		if !p.Refill() {
			t.Fatalf("no host seed, want %d", want)
		}
		for {
			x, ok, _ := sched.TryNext(t.Context())
			if !ok {
				t.Fatalf("no seed released, want %d", want)
			}
			if x.Kind != schedule.Seed {
				continue // a sweep or a found-host probe
			}
			if x.First != want || x.Token != HostSeed {
				t.Fatalf("host seed of %d (token %v), want %d", x.First, x.Token, want)
			}
			var hits []gps.Target
			for i := range found {
				hits = append(hits, gps.Target{Addr: want, Port: uint16(20000 + i)})
			}
			p.Learn(x, hits)
			return
		}
	}
	seed(a, 3)  // kind {80}, the first to appear
	seed(cc, 0) // kind {7547, 8080}, not tried yet
	seed(b, 1)  // {80}: (3+1)/(1+1) per seed against (0+1)/(1+1)
	seed(e, 0)  // {80} again, (4+1)/(2+1), before d found earlier
	seed(d, 0)
	if p.Refill() {
		x, _, _ := sched.TryNext(t.Context())
		t.Fatalf("seeded %+v; want nothing: the pseudo-host waits for no seed and SeedMax is 0", x)
	}
}
