package model

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gpsscan/gps/pkg/row"
)

// TestReadsBetweenAdds: reads between any two Adds see the counts of every
// row so far (counting is write-behind for the last host).
func TestReadsBetweenAdds(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		rows := randomRows(r, 60)
		if seed%2 == 0 {
			r.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		}
		m := New()
		for i := range rows {
			m.Add(&rows[i])
			if i%5 != 0 && i != len(rows)-1 {
				continue
			}
			if err := m.Verify(); err != nil {
				t.Fatalf("seed %d row %d: %v", seed, i, err)
			}
			equalCounts(t, snapshot(m), batchCounts(rows[:i+1]))
			if got, want := m.Rows(1e-5), build(rows[:i+1]).Rows(1e-5); !slices.Equal(got, want) {
				t.Fatalf("seed %d row %d: rows differ", seed, i)
			}
		}
	}
}

// TestHostSetForms: a key's host set moves from inline to list to bitmap
// and back as hosts come and are retracted.
func TestHostSetForms(t *testing.T) {
	m := New()
	var rows []row.Service
	add := func(s row.Service) {
		rows = append(rows, s)
		m.Add(&rows[len(rows)-1])
	}
	check := func(what string) {
		t.Helper()
		if err := m.Verify(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		equalCounts(t, snapshot(m), batchCounts(rows))
	}
	const n = listHosts + 10
	for h := 0; h < n; h++ {
		a := fmt.Sprintf("127.1.%d.%d", h/200, h%200)
		add(svc(a, 80, "HTTP/1.1 200 OK", "http"))
		add(svc(a, 22, "SSH-2.0-X", "ssh"))
		if h == inlineHosts || h == listHosts || h == n-1 {
			check(fmt.Sprintf("%d hosts", h+1))
		}
	}
	// Interleaved: every host grows past MaxPorts, one port at a time.
	for p := 1; p <= MaxPorts; p++ {
		for h := 0; h < n; h++ {
			add(svc(fmt.Sprintf("127.1.%d.%d", h/200, h%200), 1000+p, "x", "http"))
			if h%7 == 0 {
				check(fmt.Sprintf("port %d host %d", p, h))
			}
		}
	}
	check("all pseudo")
	if s := m.Stats(); s.PseudoHosts != n || s.CountedHosts != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestHugeService: a banner of many lines makes a key list longer than an
// arena block; it works as any other, through merge and snapshot.
func TestHugeService(t *testing.T) {
	var b strings.Builder
	for i := range 25_000 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	rows := []row.Service{
		svc("127.1.0.1", 80, b.String(), "http"),
		svc("127.1.0.1", 22, "SSH-2.0-X", "ssh"),
		svc("127.1.0.1", 80, b.String()+"more", "http"), // a duplicate: merge
		svc("127.1.0.2", 80, b.String(), "http"),        // waiting, huge
	}
	m := build(rows)
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	equalCounts(t, snapshot(m), batchCounts(rows))
	r := restore(t, snapshotBytes(t, m))
	more := svc("127.1.0.2", 443, "x", "tls")
	m.Add(&more)
	r.Add(&more)
	rows = append(rows, more)
	equalCounts(t, snapshot(r), batchCounts(rows))
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentReads: reads racing each other right after Adds (the last
// host's counting still pending) are safe and agree (run with -race).
func TestConcurrentReads(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	rows := randomRows(r, 200)
	want := build(rows)
	wantRows := want.Rows(1e-5)
	m := build(rows) // the last host pending
	q := []Found{{Port: uint16(rows[0].Port), Feats: m.Dict().Of(nil, &rows[0], false)}}
	wantPred := want.Predict(q, 1e-5)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			switch i % 2 {
			case 0:
				if !slices.Equal(m.Rows(1e-5), wantRows) {
					t.Error("Rows differ")
				}
			default:
				if !slices.Equal(m.Predict(q, 1e-5), wantPred) {
					t.Error("Predict differs")
				}
			}
		})
	}
	wg.Wait()
}

// TestPseudoHostFeaturesKept: once a host is past MaxPorts, its further
// services change no count, yet they are services of the model (and a
// duplicate of one is still not new), and their features are kept (their
// strings interned), for a Remove that takes the host back under MaxPorts.
func TestPseudoHostFeaturesKept(t *testing.T) {
	m := New()
	for p := 1; p <= MaxPorts+1; p++ {
		m.Add(new(svc("127.0.0.9", p, "same banner", "http")))
	}
	before, dict := snapshot(m), m.Dict().Len()
	late := svc("127.0.0.9", 9999, "a banner nobody else has", "rare-proto")
	if !m.Add(&late) {
		t.Fatal("a new port of a pseudo host was not new")
	}
	if m.Add(&late) {
		t.Fatal("a repeated port of a pseudo host was new")
	}
	if got := m.Dict().Len(); got <= dict {
		t.Fatalf("dictionary of %d strings did not grow on a pseudo host's new banner", got)
	}
	equalCounts(t, snapshot(m), before)
	if s := m.Stats(); s.Services != MaxPorts+2 || s.PseudoHosts != 1 {
		t.Fatalf("stats %+v, want %d services on 1 pseudo host", s, MaxPorts+2)
	}
	h := &m.hosts[m.hostIdx[late.Addr]]
	if sv := m.svcs.at(h.svcs + h.n - 1); sv.n == 0 {
		t.Fatal("a pseudo host's service holds no features")
	}
}

// TestPendingWindow: with few hosts allowed to wait, counting catches up
// whenever one more would pass the bound, and reads at any point still see
// the counts of every row before them.
//
// The big window makes batches of thousands of hosts, whose occurrences
// are sorted, with keys that reach MinCount in a batch already holding a
// bitmap of hosts.
func TestPendingWindow(t *testing.T) {
	later := 0 // keys found alone after a parallel batch's parts
	for _, tc := range []struct{ window, hosts, readEvery, batchOccs, workers int }{
		{1, 80, 10, maxBatchOccs, 1}, {2, 80, 10, maxBatchOccs, 1}, {5, 80, 10, maxBatchOccs, 1},
		{maxPending, 3000, 2000, maxBatchOccs, 1},
		{maxPending, 3000, 2000, 5000, 1}, // in batches of a few hundred hosts
		// Every batch counted by several goroutines, each with its keys.
		{5, 80, 10, maxBatchOccs, 2},
		{maxPending, 3000, 2000, maxBatchOccs, 3},
		{maxPending, 3000, 2000, 5000, 4},
	} {
		window := tc.window
		for seed := uint64(1); seed <= 3; seed++ {
			r := rand.New(rand.NewPCG(seed, 11))
			rows := randomRows(r, tc.hosts)
			r.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
			m := New()
			m.window, m.batchOccs, m.workers = window, tc.batchOccs, tc.workers
			if tc.workers > 1 {
				m.parMin = 1
			}
			split := false
			for i := range rows {
				m.Add(&rows[i])
				if len(m.pending) > window {
					t.Fatalf("window %d: %d hosts pending", window, len(m.pending))
				}
				if tc.hosts > 1000 && i == 4000 {
					// One batch of 4,000 services: sorted, and crossing
					// keys count bitmaps of hosts.
					var occs int
					m.applyStage()
					for _, hid := range m.pending {
						h := &m.hosts[hid]
						for _, sv := range m.svcs.block(h.svcs, int(h.n))[h.pendFrom:] {
							occs += int(sv.n)
						}
					}
					if occs < 1<<12 {
						t.Fatalf("a batch of %d occurrences is not sorted", occs)
					}
					if tc.batchOccs < occs/2 {
						split = true
					}
					m.Sync()
					big := false
					m.Each(func(_ Key, support uint32, _ []PortCount) { big = big || support > listHosts })
					if !big {
						t.Fatal("no key crossed MinCount with a bitmap of hosts")
					}
				}
				if r.IntN(tc.readEvery) == 0 || i == len(rows)-1 {
					if err := m.Verify(); err != nil {
						t.Fatalf("window %d seed %d row %d: %v", window, seed, i, err)
					}
					equalCounts(t, snapshot(m), batchCounts(rows[:i+1]))
				}
			}
			if tc.batchOccs < maxBatchOccs && !split {
				t.Fatalf("batches of %d occurrences: the pending hosts were never split", tc.batchOccs)
			}
			if tc.workers > 1 && m.parParts < 2*m.parRuns || tc.workers == 1 && m.parRuns > 0 {
				t.Fatalf("%d workers: %d batches counted in parallel, in %d parts", tc.workers, m.parRuns, m.parParts)
			}
			later += m.parLater
		}
	}
	if later == 0 {
		t.Fatal("no key's probe left its part's slots in a parallel batch")
	}
}

// TestAddCopiesTheRow: a row's features are computed after Add returns
// (stage.go), so Add keeps its own copy: a caller that decodes every row
// into one variable, reusing what its pointers point to (as encoding/json
// does), gets the model of the rows themselves.
func TestAddCopiesTheRow(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 9))
	rows := randomRows(r, 400)
	for i := range rows {
		if rows[i].Fingerprint == "tls" {
			o := fmt.Sprint("1.3.6.1.4.1.", i%7)
			rows[i].TLSOIDs = []string{"2.5.29.17", o}
		}
	}
	m := New()
	var s row.Service
	var asn, w int64
	var cert string
	oids := make([]string, 0, 4)
	for i := range rows {
		x := &rows[i]
		s.Row.IP, s.Row.Port, s.Addr, s.Data, s.Fingerprint = x.IP, x.Port, x.Addr, x.Data, x.Fingerprint
		s.ASN, s.Window, s.TLSCert = nil, nil, nil
		if x.ASN != nil {
			asn, s.ASN = *x.ASN, &asn
		}
		if x.Window != nil {
			w, s.Window = *x.Window, &w
		}
		if x.TLSCert != nil {
			cert, s.TLSCert = *x.TLSCert, &cert
		}
		s.TLSOIDs = append(oids[:0], x.TLSOIDs...)
		m.Add(&s)
		if i%97 == 0 {
			m.Sync()
		}
	}
	if len(m.stage.rows) == 0 {
		t.Fatal("no row waited in the stage")
	}
	want := build(rows)
	equalCounts(t, snapshot(m), snapshot(want))
	if got, want := m.Rows(1e-5), want.Rows(1e-5); !slices.Equal(got, want) {
		t.Fatal("rows differ from the model of the rows themselves")
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
}
