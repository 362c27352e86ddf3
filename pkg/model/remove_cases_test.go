package model

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gpsscan/gps/pkg/features"
	"github.com/gpsscan/gps/pkg/row"
)

// step is an Add (rm false) or a Remove of a service of host 127.1.0.<host>.
type step struct {
	rm   bool
	host int
	port int
}

// runSteps applies steps to a model with no read between them, and checks
// it against a batch build of what is left.
func runSteps(t *testing.T, steps []step) {
	t.Helper()
	m := New()
	live := newLiveSet()
	for _, s := range steps {
		a := fmt.Sprintf("127.1.0.%d", s.host)
		r := svc(a, s.port, fmt.Sprintf("banner %d", s.port%3), "http")
		if s.rm {
			if m.Remove(r.Addr, uint16(s.port)) != (live.remove(svcKey{r.Addr, uint16(s.port)}) != nil) {
				t.Fatalf("Remove(%s:%d) wrong", a, s.port)
			}
			continue
		}
		live.add(r)
		m.Add(&r)
	}
	sameAsBatch(t, rand.New(rand.NewPCG(1, 1)), m, live.all())
}

// TestRemoveCases: the transitions of a host's state, each with no read
// (so no flush) between the steps, other hosts making its keys count.
func TestRemoveCases(t *testing.T) {
	// Hosts 1..3 share ports 1..3 and banners: their keys keep counts.
	var base []step
	for h := 1; h <= 3; h++ {
		for p := 1; p <= 3; p++ {
			base = append(base, step{false, h, p})
		}
	}
	host9 := func(ports ...int) []step {
		var out []step
		for _, p := range ports {
			out = append(out, step{false, 9, p})
		}
		return out
	}
	rm := func(host int, ports ...int) []step {
		var out []step
		for _, p := range ports {
			out = append(out, step{true, host, p})
		}
		return out
	}
	var past []int // 1..MaxPorts+2
	for p := 1; p <= MaxPorts+2; p++ {
		past = append(past, p)
	}
	for name, steps := range map[string][][]step{
		// A counted host, a service pending, a counted one removed, then
		// the pending one: one left, waiting; a new one counts both.
		"pending then waiting": {base, host9(1, 2, 3), rm(9, 1, 3), host9(4)},
		"counted removed":      {base, rm(1, 2)},
		"under MinPorts":       {base, rm(1, 2, 3)},
		"to no service":        {base, rm(1, 1, 2, 3), rm(1, 1)},
		"back after gone":      {base, rm(1, 1, 2, 3), {{false, 1, 3}, {false, 1, 1}}},
		"waiting removed":      {base, host9(5), rm(9, 5), host9(6, 7)},
		"pseudo and back":      {base, host9(past...), rm(9, 1, 2)},
		"pseudo to the limit":  {base, host9(past...), rm(9, 1)},
		"pseudo, back, past":   {base, host9(past...), rm(9, 1, 2), host9(1, 2)},
		"pseudo back, removed": {base, host9(past...), rm(9, 1, 2, 3, 4)},
		"a key under MinCount": {base, rm(2, 1), rm(3, 1)},
		"key to no host":       {base, rm(1, 1), rm(2, 1), rm(3, 1)},
	} {
		t.Run(name, func(t *testing.T) {
			var all []step
			for _, s := range steps {
				all = append(all, s...)
			}
			runSteps(t, all)
			// And with every host's services counted before each step.
			runStepsSynced(t, all)
		})
	}
}

// runStepsSynced is runSteps with a read after every step.
func runStepsSynced(t *testing.T, steps []step) {
	t.Helper()
	for i := range steps {
		runSteps(t, steps[:i+1])
	}
}

// TestRemovePendingThenWaiting: a counted host with a service pending
// loses a counted one and the pending one with no read between, falls to
// one service, and is counted whole when a second comes.
func TestRemovePendingThenWaiting(t *testing.T) {
	m := New()
	live := newLiveSet()
	add := func(a string, p int) {
		s := svc(a, p, "banner", "http")
		live.add(s)
		m.Add(&s)
	}
	for h := 1; h <= 3; h++ {
		add(fmt.Sprintf("127.1.0.%d", h), 1)
		add(fmt.Sprintf("127.1.0.%d", h), 2)
	}
	add("127.1.0.9", 1)
	add("127.1.0.9", 2)
	m.Sync()
	add("127.1.0.9", 3) // pending
	for _, p := range []uint16{1, 3} {
		a := svc("127.1.0.9", int(p), "", "").Addr
		live.remove(svcKey{a, p})
		if !m.Remove(a, p) {
			t.Fatal("not removed")
		}
	}
	add("127.1.0.9", 4)
	sameAsBatch(t, rand.New(rand.NewPCG(2, 2)), m, live.all())
}

// TestRemoveSnapshot: a model after removals (free host ids, pseudo hosts
// with their features, keys of no host) writes and reads back as itself,
// and the two stay equal under the same further Adds and Removes.
func TestRemoveSnapshot(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		r := rand.New(rand.NewPCG(seed, 23))
		rows := randomRows(r, 300)
		a := build(rows)
		for i := range rows {
			if r.IntN(3) == 0 {
				a.Remove(rows[i].Addr, uint16(rows[i].Port))
			}
		}
		b := restore(t, snapshotBytes(t, a))
		sameModels(t, a, b, rows)
		more := randomRows(r, 100)
		for i := range more {
			if na, nb := a.Add(&more[i]), b.Add(&more[i]); na != nb {
				t.Fatalf("Add = %v, want %v", nb, na)
			}
			if i%3 == 0 {
				x := rows[r.IntN(len(rows))]
				if ra, rb := a.Remove(x.Addr, uint16(x.Port)), b.Remove(x.Addr, uint16(x.Port)); ra != rb {
					t.Fatalf("Remove = %v, want %v", rb, ra)
				}
			}
		}
		sameModels(t, a, b, append(rows, more...))
		if a.free.IsEmpty() && seed == 1 {
			t.Fatal("no free host id in the snapshot")
		}
	}
}

// TestRemoveHostsReused: hosts that keep moving (DHCP) leave no host
// behind: the model holds as many host ids as it ever had live hosts.
func TestRemoveHostsReused(t *testing.T) {
	m := New()
	r := rand.New(rand.NewPCG(4, 4))
	addrs := map[int]uint32{}
	peak := 0
	inUse := map[uint32]bool{}
	for range 2000 {
		h := r.IntN(50)
		a := 0x7f000000 | r.Uint32N(1<<20)
		if inUse[a] {
			continue
		}
		if old, ok := addrs[h]; ok {
			if n := m.RemoveHost(old); n != 1+h%4 {
				t.Fatalf("RemoveHost = %d, want %d", n, 1+h%4)
			}
			delete(inUse, old)
		}
		addrs[h], inUse[a] = a, true
		for p := range 1 + h%4 {
			s := svc(row.FormatAddr(a), 80+p, "x", "http")
			m.Add(&s)
		}
		peak = max(peak, m.Stats().Hosts)
	}
	if len(m.hosts) > peak+1 {
		t.Fatalf("%d host ids for at most %d live hosts", len(m.hosts), peak)
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
}

// TestRemoveFound: a host's found services lose a port as the model loses
// the service, and predict as those of a host that never had it.
func TestRemoveFound(t *testing.T) {
	var found []Found
	found = AddFound(found, 22, []features.ID{1, 2})
	found = AddFound(found, 80, []features.ID{3})
	found = AddFound(found, 443, []features.ID{4})
	found = RemoveFound(found, 80)
	found = RemoveFound(found, 8080) // not there
	if len(found) != 2 || found[0].Port != 22 || found[1].Port != 443 {
		t.Fatalf("found %+v, want 22 and 443", found)
	}
	if found = RemoveFound(RemoveFound(found, 22), 443); len(found) != 0 {
		t.Fatalf("found %+v, want none", found)
	}
}
