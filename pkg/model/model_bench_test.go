package model

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
)

// labSeed makes a lab seed of the given number of hosts (every host sampled).
func labSeed(b testing.TB, hosts int) []row.Service {
	b.Helper()
	var out []row.Service
	err := lab.GenerateSeed(lab.Config{Seed: 1, Hosts: hosts, PseudoFrac: lab.PaperPseudoFrac}.WithDefaults(), func(r row.Row) {
		a, err := r.Validate()
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, row.Service{Row: r, Addr: a})
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkAdd measures incremental updates: services/s of a model built
// one Add at a time from empty, from a lab seed in its order (host by host:
// each host's services arrive together), up to the counts a read sees.
func BenchmarkAdd(b *testing.B) {
	for _, hosts := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			if testing.Short() && hosts > 100_000 {
				b.Skip("paper scale skipped in -short")
			}
			benchBuild(b, labSeed(b, hosts))
		})
	}
}

// benchBuild reports the services/s of models of rows built one Add at a
// time from empty, up to the counts a read sees.
func benchBuild(b *testing.B, rows []row.Service) {
	b.ReportAllocs()
	b.ResetTimer()
	var n int
	for b.Loop() {
		build(rows).sync() // the counting still behind, as a read would
		n += len(rows)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "services/s")
}

// BenchmarkPredict measures one host query: the predictions from a host's
// first found service, against a model of a 100K-host seed.
func BenchmarkPredict(b *testing.B) {
	seed := labSeed(b, 100_000)
	m := New()
	for i := range seed {
		m.Add(&seed[i])
	}
	queries := make([][]Found, 0, 1000)
	for i := 0; i < len(seed) && len(queries) < cap(queries); i += len(seed) / cap(queries) {
		s := &seed[i]
		queries = append(queries, []Found{{Port: uint16(s.Port), Feats: m.Dict().Of(nil, s, false)}})
	}
	b.ReportAllocs()
	b.ResetTimer()
	i, preds := 0, 0
	for b.Loop() {
		preds += len(m.Predict(queries[i%len(queries)], 1e-5))
		i++
	}
	b.ReportMetric(float64(preds)/float64(i), "predictions/query")
}

// BenchmarkAddShuffled is BenchmarkAdd with the rows in random order, as a
// stream of scan responses interleaves hosts (no host arrives whole).
func BenchmarkAddShuffled(b *testing.B) {
	seed := labSeed(b, 100_000)
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(seed), func(i, j int) { seed[i], seed[j] = seed[j], seed[i] })
	benchBuild(b, seed)
}

// BenchmarkAddCeiling measures what bounds BenchmarkAdd on this machine, on
// the same 100K-host seed:
//
//   - shards=N: the hosts split into N models that share nothing (each its
//     own dictionary, its features and counting on its one goroutine), run
//     at once. Nothing is merged, so N cores can do no better with today's
//     work per service.
//   - no-counting: one model, the Adds and their features only (the window
//     holds every host, so nothing is counted): what is left for counting
//     is the difference.
func BenchmarkAddCeiling(b *testing.B) {
	seed := labSeed(b, 100_000)
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("shards=%d", n), func(b *testing.B) {
			// Split by host, keeping each host's rows together and in order.
			parts := make([][]row.Service, n)
			for i := range seed {
				p := &parts[seed[i].Addr%uint32(n)]
				*p = append(*p, seed[i])
			}
			b.ResetTimer()
			var total int
			for b.Loop() {
				var wg sync.WaitGroup
				for _, p := range parts {
					wg.Add(1)
					go func() {
						defer wg.Done()
						m := New()
						m.workers = 1
						addAll(m, p)
						m.sync()
					}()
				}
				wg.Wait()
				total += len(seed)
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "services/s")
		})
	}
	b.Run("no-counting", func(b *testing.B) {
		var total int
		for b.Loop() {
			m := New()
			m.window = len(seed) + 1
			addAll(m, seed)
			m.applyStage()
			total += len(seed)
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "services/s")
	})
}

// BenchmarkAddReal is BenchmarkAdd on the real worlds beside the checkout
// (../shared/real/*/world/truth.jsonl, converted public scans), if there:
// real banners, but few ports scanned and few hosts with two or more.
func BenchmarkAddReal(b *testing.B) {
	worlds, _ := filepath.Glob("../../../shared/real/*/world/truth.jsonl")
	if len(worlds) == 0 {
		b.Skip("no real worlds in ../shared/real")
	}
	for _, path := range worlds {
		b.Run(filepath.Base(filepath.Dir(filepath.Dir(path))), func(b *testing.B) {
			seed, err := row.ReadAll(path)
			if err != nil {
				b.Fatal(err)
			}
			benchBuild(b, seed)
		})
	}
}

// BenchmarkRemove measures retraction: services/s of Removes from a model
// of a 100K-host lab seed (its counts all made), a tenth of its services
// at random (services), or of its hosts whole with RemoveHost (hosts), as a
// cycle's gone services and moved hosts, up to the counts a read sees.
func BenchmarkRemove(b *testing.B) {
	seed := labSeed(b, 100_000)
	var snap bytes.Buffer
	if _, err := build(seed).WriteTo(&snap); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	var svcs []svcKey
	hostSet := map[uint32]bool{}
	for _, s := range seed {
		if r.IntN(10) == 0 {
			svcs = append(svcs, svcKey{s.Addr, uint16(s.Port)})
		}
		hostSet[s.Addr] = true
	}
	var hosts []uint32
	for a := range hostSet {
		if r.IntN(10) == 0 {
			hosts = append(hosts, a)
		}
	}
	run := func(b *testing.B, remove func(m *Model) int) {
		b.ReportAllocs()
		var n int
		var took time.Duration
		for b.Loop() {
			b.StopTimer()
			m, err := ReadFrom(bytes.NewReader(snap.Bytes()))
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			t0 := time.Now()
			n += remove(m)
			m.sync()
			took += time.Since(t0)
		}
		b.ReportMetric(float64(n)/took.Seconds(), "services/s")
	}
	b.Run("services", func(b *testing.B) {
		run(b, func(m *Model) int {
			n := 0
			for _, k := range svcs {
				if m.Remove(k.addr, k.port) {
					n++
				}
			}
			return n
		})
	})
	b.Run("hosts", func(b *testing.B) {
		run(b, func(m *Model) int {
			n := 0
			for _, a := range hosts {
				n += m.RemoveHost(a)
			}
			return n
		})
	})
}
