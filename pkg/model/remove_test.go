package model

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
)

// labRows makes the rows of a small lab seed: real-looking banners, ASes,
// /16s, and pseudo hosts of 100-400 ports.
func labRows(t testing.TB, seed int64, hosts int, pseudo float64) []row.Service {
	t.Helper()
	var out []row.Service
	err := lab.GenerateSeed(lab.Config{Seed: seed, Hosts: hosts, PseudoFrac: pseudo}, func(r row.Row) {
		a, err := r.Validate()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, row.Service{Row: r, Addr: a})
	})
	if err != nil {
		t.Fatalf("lab seed: %v", err)
	}
	return out
}

// svcKey is a service: (address, port).
type svcKey struct {
	addr uint32
	port uint16
}

// liveSet is the truth a property test keeps: the rows of every live
// service (a service's rows are all its duplicates), by address and port.
type liveSet struct {
	rows  map[svcKey][]row.Service
	hosts map[uint32]map[uint16]bool
}

func newLiveSet() *liveSet {
	return &liveSet{map[svcKey][]row.Service{}, map[uint32]map[uint16]bool{}}
}

func (l *liveSet) add(s row.Service) bool {
	k := svcKey{s.Addr, uint16(s.Port)}
	_, had := l.rows[k]
	l.rows[k] = append(l.rows[k], s)
	if l.hosts[s.Addr] == nil {
		l.hosts[s.Addr] = map[uint16]bool{}
	}
	l.hosts[s.Addr][k.port] = true
	return !had
}

func (l *liveSet) remove(k svcKey) []row.Service {
	rs, ok := l.rows[k]
	if !ok {
		return nil
	}
	delete(l.rows, k)
	delete(l.hosts[k.addr], k.port)
	if len(l.hosts[k.addr]) == 0 {
		delete(l.hosts, k.addr)
	}
	return rs
}

// all is every live row, in a fixed order.
func (l *liveSet) all() []row.Service {
	keys := slices.SortedFunc(maps.Keys(l.rows), func(a, b svcKey) int {
		if a.addr != b.addr {
			return cmpU32(a.addr, b.addr)
		}
		return int(a.port) - int(b.port)
	})
	var out []row.Service
	for _, k := range keys {
		out = append(out, l.rows[k]...)
	}
	return out
}

func (l *liveSet) addrs() []uint32 { return slices.Sorted(maps.Keys(l.hosts)) }

// ports is the live ports of a host, sorted.
func (l *liveSet) ports(a uint32) []uint16 { return slices.Sorted(maps.Keys(l.hosts[a])) }

// evidenceRow is a model row with its feature as a string: two models of
// the same services number their features in different orders.
type evidenceRow struct {
	ModelRow
	feat string
}

func rowsByString(m *Model) []evidenceRow {
	var out []evidenceRow
	for _, r := range m.Rows(1e-5) {
		f := ""
		if !r.Single {
			f = m.Dict().String(r.Feat)
		}
		r.Feat = 0
		out = append(out, evidenceRow{r, f})
	}
	return out
}

type predictionS struct {
	Prediction
	feat string
}

func predictByString(m *Model, q []Found) []predictionS {
	var out []predictionS
	for _, p := range m.Predict(q, 1e-5) {
		f := m.Dict().String(p.Feat)
		p.Feat = 0
		out = append(out, predictionS{p, f})
	}
	return out
}

// liveStats is Stats but for what depends on the history: Version, and the
// dictionary's strings (those of removed services stay).
func liveStats(m *Model) Stats {
	s := m.Stats()
	s.Version, s.Features = 0, 0
	return s
}

// sameAsBatch fails unless m equals a model built from the live rows
// alone, added in a random order, and the plain batch counts of them: its
// counts, supports and co-occurrence lists, Stats, Rows, the predictions
// from every live service (alone and with another of its host), and its
// services. It returns how many keys have MinCount hosts or more.
func sameAsBatch(t *testing.T, r *rand.Rand, m *Model, live []row.Service) int {
	t.Helper()
	order := slices.Clone(live)
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	fresh := build(order)
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	counts := snapshot(m)
	equalCounts(t, counts, batchCounts(live))
	equalCounts(t, counts, snapshot(fresh))
	if got, want := liveStats(m), liveStats(fresh); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
	if got, want := rowsByString(m), rowsByString(fresh); !slices.Equal(got, want) {
		t.Fatalf("Rows differ: %d rows, want %d", len(got), len(want))
	}
	sample := live
	if len(sample) > 100 {
		sample = slices.Clone(live)
		r.Shuffle(len(sample), func(i, j int) { sample[i], sample[j] = sample[j], sample[i] })
		sample = sample[:100]
		slices.SortStableFunc(sample, func(a, b row.Service) int { return cmpU32(a.Addr, b.Addr) }) // pairs of a host
	}
	qm, qf := queries(m, sample), queries(fresh, sample)
	for i := range qm {
		if got, want := predictByString(m, qm[i]), predictByString(fresh, qf[i]); !slices.Equal(got, want) {
			t.Fatalf("query %d (port %d): Predict = %+v, want %+v", i, qm[i][0].Port, got, want)
		}
	}
	got := map[svcKey]bool{}
	m.Services(func(a uint32, p uint16) { got[svcKey{a, p}] = true })
	want := map[svcKey]bool{}
	fresh.Services(func(a uint32, p uint16) { want[svcKey{a, p}] = true })
	if !maps.Equal(got, want) {
		t.Fatalf("Services: %d, want %d", len(got), len(want))
	}
	if got, want := portSizes(m), portSizes(fresh); !maps.Equal(got, want) {
		t.Fatalf("port bitmaps of %d ports, want %d (an empty one left?)", len(got), len(want))
	}
	rules := 0
	for _, n := range counts.support {
		if n >= MinCount {
			rules++
		}
	}
	return rules
}

// moved is row s of a host moved to addr (and, maybe, to another AS).
func moved(s row.Service, addr uint32, asn *int64) row.Service {
	s.Addr, s.IP = addr, row.FormatAddr(addr)
	if asn != nil {
		s.ASN = asn
	}
	return s
}

// TestRemoveEqualsBatch drives random sequences of adds, removals, re-adds
// of removed services, duplicate rows, host moves and hosts crossing
// MaxPorts both ways, on lab worlds and messy random rows, and after every
// few steps compares the model with a batch build of the live services.
// Some runs count in small windows or on several goroutines, and some go
// on from a snapshot of the model read back.
func TestRemoveEqualsBatch(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			removeSequence(t, seed, 400)
		})
	}
}

func removeSequence(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 17))
	pool := labRows(t, int64(seed), 120, 0.02)
	pool = append(pool, randomRows(r, 150)...)
	r.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	byKey := map[svcKey][]row.Service{}
	for _, s := range pool {
		k := svcKey{s.Addr, uint16(s.Port)}
		byKey[k] = append(byKey[k], s)
	}
	keys := slices.Collect(maps.Keys(byKey))
	slices.SortFunc(keys, func(a, b svcKey) int {
		if a.addr != b.addr {
			return cmpU32(a.addr, b.addr)
		}
		return int(a.port) - int(b.port)
	})

	m := New()
	switch seed % 3 {
	case 1:
		m.window = 3 // hosts counted a few at a time: removals meet pending hosts
	case 2:
		m.workers, m.parMin = 3, 1 // every flush on several goroutines
	}
	live := newLiveSet()
	var removed []svcKey
	version := m.Version()
	add := func(s row.Service) {
		t.Helper()
		isNew := live.add(s)
		if got := m.Add(&s); got != isNew {
			t.Fatalf("Add(%s:%d) = %v, want %v", s.IP, s.Port, got, isNew)
		}
		version++
	}
	remove := func(k svcKey) {
		t.Helper()
		was := live.remove(k) != nil
		if got := m.Remove(k.addr, k.port); got != was {
			t.Fatalf("Remove(%s:%d) = %v, want %v", row.FormatAddr(k.addr), k.port, got, was)
		}
		if was {
			version++
			removed = append(removed, k)
		}
	}
	randomLive := func() (svcKey, bool) {
		addrs := live.addrs()
		if len(addrs) == 0 {
			return svcKey{}, false
		}
		a := addrs[r.IntN(len(addrs))]
		ps := live.ports(a)
		return svcKey{a, ps[r.IntN(len(ps))]}, true
	}
	var ops [9]int
	crossed := [2]int{} // hosts taken past MaxPorts, and back under it
	nextCheck := 1
	peak := 0 // most keys with counts at a check
	for step := 0; step < steps; step++ {
		op := r.IntN(20)
		switch {
		case op < 6: // a service of the pool
			k := keys[r.IntN(len(keys))]
			for _, s := range byKey[k] {
				add(s)
			}
			ops[0]++
		case op < 9: // a host of the pool, whole
			a := keys[r.IntN(len(keys))].addr
			for _, k := range keys {
				if k.addr == a {
					for _, s := range byKey[k] {
						add(s)
					}
				}
			}
			ops[0]++
		case op < 10: // a duplicate row with other data
			if k, ok := randomLive(); ok {
				d := live.rows[k][0]
				d.Data = fmt.Sprintf("%s\nX-Dup: %d", d.Data, r.IntN(3))
				add(d)
				ops[1]++
			}
		case op < 13: // a live service gone
			if k, ok := randomLive(); ok {
				remove(k)
				ops[2]++
			}
		case op < 14: // one never there, or gone already
			remove(svcKey{0x7f000000 | r.Uint32N(1<<24), uint16(1 + r.IntN(65535))})
			if len(removed) > 0 {
				remove(removed[r.IntN(len(removed))])
			}
			ops[3]++
		case op < 15: // a removed service back, with its pool rows
			if len(removed) > 0 {
				k := removed[r.IntN(len(removed))]
				if _, ok := live.rows[k]; !ok {
					for _, s := range byKey[k] {
						add(s)
					}
					ops[4]++
				}
			}
		case op < 16: // a host moves (DHCP), maybe to another AS
			if k, ok := randomLive(); ok {
				to := 0x7f000000 | uint32(1+r.IntN(3))<<16 | r.Uint32N(1<<16)
				if _, taken := live.hosts[to]; taken {
					break
				}
				var asn *int64
				if r.IntN(2) == 0 {
					asn = new(int64(64600 + r.IntN(3)))
				}
				var rows []row.Service
				for _, p := range live.ports(k.addr) {
					rows = append(rows, live.remove(svcKey{k.addr, p})...)
				}
				n := countPorts(rows)
				if got := m.RemoveHost(k.addr); got != n {
					t.Fatalf("RemoveHost = %d, want %d", got, n)
				}
				version += uint64(n)
				for _, s := range rows {
					add(moved(s, to, asn))
				}
				ops[5]++
			}
		case op < 17: // a host grows past MaxPorts
			if k, ok := randomLive(); ok {
				n := len(live.hosts[k.addr])
				if n > MaxPorts {
					break
				}
				proto := live.rows[k][0]
				for p := 0; len(live.hosts[k.addr]) <= MaxPorts+r.IntN(3); p++ {
					s := proto
					s.Port = 40000 + r.IntN(20)
					if r.IntN(2) == 0 {
						s.Data = fmt.Sprintf("grown %d", s.Port)
					}
					add(s)
				}
				crossed[0]++
				ops[6]++
			}
		case op < 19: // a pseudo host falls back under MaxPorts (or just to it)
			for _, a := range live.addrs() {
				if len(live.hosts[a]) <= MaxPorts {
					continue
				}
				floor := MaxPorts - r.IntN(2)
				for len(live.hosts[a]) > floor {
					ps := live.ports(a)
					remove(svcKey{a, ps[r.IntN(len(ps))]})
				}
				crossed[1]++
				ops[7]++
				break
			}
		default: // a whole host gone
			if k, ok := randomLive(); ok {
				n := len(live.hosts[k.addr])
				for _, p := range live.ports(k.addr) {
					removed = append(removed, svcKey{k.addr, p})
					live.remove(svcKey{k.addr, p})
				}
				if got := m.RemoveHost(k.addr); got != n {
					t.Fatalf("RemoveHost = %d, want %d", got, n)
				}
				version += uint64(n)
				ops[8]++
			}
		}
		if m.Version() != version {
			t.Fatalf("step %d: version %d, want %d", step, m.Version(), version)
		}
		if step+1 < nextCheck && step < steps-1 {
			continue
		}
		nextCheck = step + 1 + 1 + r.IntN(10)
		peak = max(peak, sameAsBatch(t, r, m, live.all()))
		if r.IntN(6) == 0 {
			// A snapshot reads back as the model; go on with either.
			b := restore(t, snapshotBytes(t, m))
			sameModels(t, m, b, live.all())
			b.window, b.workers, b.parMin = m.window, m.workers, m.parMin
			if r.IntN(2) == 0 {
				m = b
			}
		}
	}
	if crossed[0] == 0 || crossed[1] == 0 || slices.Contains(ops[:], 0) {
		t.Fatalf("a sequence that misses a case: ops %v, crossed %v", ops, crossed)
	}
	if peak < 50 {
		t.Fatalf("at most %d keys of MinCount hosts or more: the sequence counts too little", peak)
	}
	t.Logf("ops %v, hosts past MaxPorts %d, back %d; %d live services at the end, at most %d keys with counts", ops, crossed[0], crossed[1], len(live.rows), peak)
}

// countPorts is how many distinct services rows hold.
func countPorts(rows []row.Service) int {
	seen := map[svcKey]bool{}
	for _, s := range rows {
		seen[svcKey{s.Addr, uint16(s.Port)}] = true
	}
	return len(seen)
}

// portSizes is the size of every port's bitmap of hosts the model keeps.
func portSizes(m *Model) map[uint16]uint64 {
	out := map[uint16]uint64{}
	for p, b := range m.portHosts {
		if b != nil {
			out[uint16(p)] = b.GetCardinality()
		}
	}
	return out
}
