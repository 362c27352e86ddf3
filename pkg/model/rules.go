package model

import (
	"runtime"
	"slices"
	"sync"

	"github.com/gpsscan/gps/pkg/features"
)

// Evidence is a rule (p_b, f) -> p_a with its numbers.
type Evidence struct {
	Port    uint16 // p_b
	Feat    features.ID
	Count   uint32
	Support uint32
	Hitrate float64 // float64(Count) / float64(Support), as GPS computes it
}

// better reports whether e beats cur under GPS's choice: the higher hitrate,
// then the lower p_b, then the feature string first in byte order.
func (m *Model) better(e, cur Evidence) bool {
	if e.Hitrate != cur.Hitrate {
		return e.Hitrate > cur.Hitrate
	}
	if e.Port != cur.Port {
		return e.Port < cur.Port
	}
	return m.dict.Compare(e.Feat, cur.Feat) < 0
}

func evidence(ks *keyStat, n uint32) Evidence {
	return Evidence{Port: ks.port, Feat: ks.feat, Count: n, Support: ks.support, Hitrate: float64(n) / float64(ks.support)}
}

// ModelRow is one row of the GPS model table: the chosen antecedent of a seed
// service, or (Single) the one port of a single-port host.
type ModelRow struct {
	Addr    uint32
	Single  bool   // a single-port host: no P, no evidence
	P       uint16 // p_a, the seed service's port
	NeededP uint16 // p_b, the port to scan to find it (the single port when Single)
	Evidence
}

// Rows computes the GPS model table (Phase 1 steps 4 and 5): for every
// service of a counted host, the antecedent with the highest hitrate among
// the host's other services, kept when its hitrate exceeds minHitrate; and a
// row for every single-port host. Rows come sorted by address, then P.
func (m *Model) Rows(minHitrate float64) []ModelRow {
	m.sync()
	order := make([]uint32, 0, len(m.hosts))
	for i := range m.hosts {
		if st := m.hosts[i].state; st == stateCounted || (st == stateWaiting && m.hosts[i].n == 1) {
			order = append(order, uint32(i))
		}
	}
	slices.SortFunc(order, func(a, b uint32) int { return cmpU32(m.hosts[a].addr, m.hosts[b].addr) })

	// Choices are independent per host: split the hosts over the cores.
	workers := min(runtime.GOMAXPROCS(0), 8)
	chunk := (len(order) + workers - 1) / max(workers, 1)
	parts := make([][]ModelRow, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := min(w*chunk, len(order)), min((w+1)*chunk, len(order))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out []ModelRow
			for _, hid := range order[lo:hi] {
				out = m.hostRows(out, hid, minHitrate)
			}
			parts[w] = out
		}()
	}
	wg.Wait()
	return slices.Concat(parts...)
}

func (m *Model) hostRows(out []ModelRow, hid uint32, minHitrate float64) []ModelRow {
	h := &m.hosts[hid]
	if h.state == stateWaiting {
		return append(out, ModelRow{Addr: h.addr, Single: true, NeededP: m.svcs.at(h.svcs).port})
	}
	var local [MaxPorts]service
	svcs := local[:copy(local[:], m.svcs.block(h.svcs, int(h.n)))]
	slices.SortFunc(svcs, func(a, b service) int { return int(a.port) - int(b.port) })
	for i := range svcs {
		pa := svcs[i].port
		var best Evidence
		found := false
		for j := range svcs {
			if j == i {
				continue
			}
			for _, k := range m.ids.block(svcs[j].off, int(svcs[j].n)) {
				ks := m.keys.at(k)
				n := m.countOf(ks, pa)
				if n < MinCount {
					continue
				}
				e := evidence(ks, n)
				if !found || m.better(e, best) {
					best, found = e, true
				}
			}
		}
		if found && best.Hitrate > minHitrate {
			out = append(out, ModelRow{Addr: h.addr, P: pa, NeededP: best.Port, Evidence: best})
		}
	}
	return out
}

// Prediction is a port predicted for a host, with its best evidence.
type Prediction struct {
	Port uint16 // p_a
	Evidence
}

// Found is a service already found on a host, with its features (computed
// with this model's Dict).
type Found struct {
	Port  uint16
	Feats []features.ID
}

// Len is the number of distinct services (address, port) the model holds.
func (m *Model) Len() int { return m.services }

// Stale reports whether a host last predicted when the model held at
// services must be predicted again from a service found again (not new):
// once the model has grown by a tenth since. A rule of the host's services
// may clear the hitrate only as the model learns, but a model that has
// barely changed gives the same predictions, and predicting every service
// found again from all of its host's would double the work of a scan. The
// predictor and gps eval's replay both follow it, so that they predict
// alike.
func (m *Model) Stale(at int) bool { return m.services >= at+at/10+1 }

// AddFound adds a service found on port with feats to a host's found
// services: its features join those of the port when the port is there
// (another result of the same service), else it is a new Found (feats
// copied). The predictor and gps eval's replay keep hosts this way, so
// that both predict from the same services.
func AddFound(found []Found, port uint16, feats []features.ID) []Found {
	for i := range found {
		if found[i].Port == port {
			found[i].Feats = union(found[i].Feats, feats)
			return found
		}
	}
	return append(found, Found{Port: port, Feats: slices.Clone(feats)})
}

// RemoveFound takes port out of a host's found services (a service gone):
// the predictor keeps hosts with AddFound and RemoveFound as the model
// keeps them with Add and Remove.
func RemoveFound(found []Found, port uint16) []Found {
	return slices.DeleteFunc(found, func(f Found) bool { return f.Port == port })
}

// Predict answers "given this host's services so far, what else": every
// port p_a not among found that some rule (p_b, f) -> p_a with count >=
// MinCount and hitrate > minHitrate predicts from a found service, with the
// best evidence for it (GPS's choice order). Results are sorted by hitrate,
// highest first, then port.
func (m *Model) Predict(found []Found, minHitrate float64) []Prediction {
	m.sync()
	// The best evidence of each port sits in a dense index by port, not a
	// map: a query touches hundreds of ports, and a replay asks millions.
	sc := predictPool.Get().(*predictScratch)
	at, best := sc.at, sc.best[:0]
	for _, fs := range found {
		at[fs.Port] = foundPort
	}
	for _, fs := range found {
		for _, f := range fs.Feats {
			k, ok := m.lookup(fs.Port, f)
			if !ok {
				continue
			}
			ks := m.keys.at(k)
			s := ks.support
			for _, c := range m.coList(ks) {
				if c.N < MinCount {
					continue
				}
				i := at[c.Port]
				if i == foundPort {
					continue
				}
				e := Evidence{Port: fs.Port, Feat: f, Count: c.N, Support: s, Hitrate: float64(c.N) / float64(s)}
				if e.Hitrate <= minHitrate {
					continue
				}
				if i == 0 {
					best = append(best, Prediction{Port: c.Port, Evidence: e})
					at[c.Port] = int32(len(best))
				} else if m.better(e, best[i-1].Evidence) {
					best[i-1].Evidence = e
				}
			}
		}
	}
	for _, fs := range found {
		at[fs.Port] = 0
	}
	for _, b := range best {
		at[b.Port] = 0
	}
	out := make([]Prediction, len(best))
	copy(out, best)
	sc.best = best[:0]
	predictPool.Put(sc)
	slices.SortFunc(out, func(a, b Prediction) int {
		if a.Hitrate != b.Hitrate {
			if a.Hitrate > b.Hitrate {
				return -1
			}
			return 1
		}
		return int(a.Port) - int(b.Port)
	})
	return out
}

// predictScratch is one Predict's working space: at holds, by port, the
// index + 1 in best of the port's best evidence so far (0: none,
// foundPort: a found port, never predicted), and is all zeros between
// calls. Queries may run concurrently, hence a pool.
type predictScratch struct {
	at   []int32
	best []Prediction
}

const foundPort = -1

var predictPool = sync.Pool{New: func() any { return &predictScratch{at: make([]int32, 1<<16)} }}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
