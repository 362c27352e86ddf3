package model

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gpsscan/gps/pkg/features"
	"github.com/gpsscan/gps/pkg/row"
)

// randomRows makes a small messy seed: hosts of 1..14 ports over a few ports,
// a handful of banners, null and present asns and windows, duplicate rows.
func randomRows(r *rand.Rand, hosts int) []row.Service {
	ports := []int{21, 22, 23, 80, 443, 8080, 8443, 3389, 7547, 5060, 25, 110}
	banners := []string{"HTTP/1.1 200 OK\nServer: nginx", "HTTP/1.1 200 OK\nServer: Apache", "SSH-2.0-OpenSSH_8.9", "220 ftp ready", ""}
	fps := []string{"http", "ssh", "tls", "ftp", ""}
	var out []row.Service
	for h := 0; h < hosts; h++ {
		addr := uint32(127)<<24 | uint32(1+r.IntN(3))<<16 | uint32(r.IntN(4))<<8 | uint32(r.IntN(256))
		n := 1 + r.IntN(5)
		if r.IntN(20) == 0 {
			n = 9 + r.IntN(6) // around the 10-port cut
		}
		var asn *int64
		if r.IntN(4) > 0 {
			a := int64(64500 + r.IntN(3))
			asn = &a
		}
		for _, pi := range r.Perm(len(ports))[:min(n, len(ports))] {
			s := row.Service{Addr: addr}
			s.IP, s.Port, s.ASN = row.FormatAddr(addr), ports[pi], asn
			s.Data = banners[r.IntN(len(banners))]
			s.Fingerprint = fps[r.IntN(len(fps))]
			if r.IntN(3) > 0 {
				w := int64([]int{64240, 29200, 0}[r.IntN(3)])
				s.Window = &w
			}
			if s.Fingerprint == "tls" {
				c := fmt.Sprintf("cert-%d", r.IntN(3))
				s.TLSCert = &c
				s.TLSOIDs = []string{"2.5.29.17", "2.5.4.3"}
			}
			out = append(out, s)
			if r.IntN(10) == 0 { // a duplicate row with other data
				d := s
				d.Data = banners[r.IntN(len(banners))]
				out = append(out, d)
			}
		}
	}
	return out
}

type countKey struct {
	port uint16
	feat string
}

type counts struct {
	support map[countKey]uint32
	co      map[countKey]map[uint16]uint32
}

// snapshot renders a model's counts with feature strings, for comparison.
func snapshot(m *Model) counts {
	c := counts{map[countKey]uint32{}, map[countKey]map[uint16]uint32{}}
	m.Each(func(k Key, support uint32, co []PortCount) {
		ck := countKey{k.Port, m.Dict().String(k.Feat)}
		c.support[ck] = support
		if len(co) > 0 {
			c.co[ck] = map[uint16]uint32{}
			for _, x := range co {
				c.co[ck][x.Port] = x.N
			}
		}
	})
	return c
}

// batchCounts is GPS Phase 1 steps 1-3 with plain maps: the batch truth.
func batchCounts(rows []row.Service) counts {
	d := features.NewDict()
	type svc = map[string]bool
	hosts := map[uint32]map[uint16]svc{}
	for i := range rows {
		s := &rows[i]
		if hosts[s.Addr] == nil {
			hosts[s.Addr] = map[uint16]svc{}
		}
		p := uint16(s.Port)
		if hosts[s.Addr][p] == nil {
			hosts[s.Addr][p] = svc{}
		}
		for _, f := range d.Of(nil, s, true) {
			hosts[s.Addr][p][d.String(f)] = true
		}
	}
	c := counts{map[countKey]uint32{}, map[countKey]map[uint16]uint32{}}
	for _, h := range hosts {
		if len(h) < MinPorts || len(h) > MaxPorts {
			continue
		}
		for pb, fs := range h {
			for f := range fs {
				k := countKey{pb, f}
				c.support[k]++
				for pa := range h {
					if pa == pb {
						continue
					}
					if c.co[k] == nil {
						c.co[k] = map[uint16]uint32{}
					}
					c.co[k][pa]++
				}
			}
		}
	}
	return c
}

func equalCounts(t *testing.T, got, want counts) {
	t.Helper()
	if len(got.support) != len(want.support) {
		t.Fatalf("supports: %d keys, want %d", len(got.support), len(want.support))
	}
	for k, v := range want.support {
		if got.support[k] != v {
			t.Fatalf("support %v = %d, want %d", k, got.support[k], v)
		}
	}
	if len(got.co) != len(want.co) {
		t.Fatalf("co-occurrence: %d keys, want %d", len(got.co), len(want.co))
	}
	for k, v := range want.co {
		if len(got.co[k]) != len(v) {
			t.Fatalf("co %v = %v, want %v", k, got.co[k], v)
		}
		for p, n := range v {
			if got.co[k][p] != n {
				t.Fatalf("count %v -> %d = %d, want %d", k, p, got.co[k][p], n)
			}
		}
	}
}

func build(rows []row.Service) *Model {
	m := New()
	addAll(m, rows)
	return m
}

func addAll(m *Model, rows []row.Service) {
	for i := range rows {
		m.Add(&rows[i])
	}
}

// TestIncrementalEqualsBatch: any order of arrival, host by host or
// interleaved, gives the counts of one batch build.
func TestIncrementalEqualsBatch(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		r := rand.New(rand.NewPCG(seed, 99))
		rows := randomRows(r, 300)
		want := batchCounts(rows)
		orders := map[string][]row.Service{
			"as read": rows,
			"interleaved": func() []row.Service {
				x := slices.Clone(rows)
				r.Shuffle(len(x), func(i, j int) { x[i], x[j] = x[j], x[i] })
				return x
			}(),
			"host by host": func() []row.Service {
				x := slices.Clone(rows)
				slices.SortStableFunc(x, func(a, b row.Service) int {
					return cmpU32(a.Addr^uint32(seed*2654435761), b.Addr^uint32(seed*2654435761))
				})
				return x
			}(),
		}
		for name, order := range orders {
			t.Run(fmt.Sprintf("seed%d/%s", seed, name), func(t *testing.T) {
				m := build(order)
				if err := m.Verify(); err != nil {
					t.Fatal(err)
				}
				equalCounts(t, snapshot(m), want)
			})
		}
	}
}

func svc(addr string, port int, data, fp string) row.Service {
	s, err := row.Parse(fmt.Appendf(nil, `{"ip":%q,"p":%d,"asn":null,"data":%q,"fingerprint":%q,"w":null}`, addr, port, data, fp))
	if err != nil {
		panic(err)
	}
	return s
}

// TestRetraction: a host that grows past MaxPorts leaves no trace in counts.
func TestRetraction(t *testing.T) {
	m := New()
	var rows []row.Service
	for p := 1; p <= MaxPorts; p++ {
		rows = append(rows, svc("127.1.0.1", p, "x", "http"))
	}
	for i := range rows {
		m.Add(&rows[i])
	}
	if s := m.Stats(); s.CountedHosts != 1 {
		t.Fatalf("counted hosts = %d, want 1", s.CountedHosts)
	}
	eleventh := svc("127.1.0.1", 99, "x", "http")
	m.Add(&eleventh)
	n := 0
	m.Each(func(Key, uint32, []PortCount) { n++ })
	if n != 0 {
		t.Fatalf("%d keys still counted after retraction", n)
	}
	if s := m.Stats(); s.PseudoHosts != 1 || s.Services != 11 {
		t.Fatalf("stats %+v", s)
	}
	// More ports and duplicates keep it out.
	m.Add(&eleventh)
	more := svc("127.1.0.1", 100, "y", "ssh")
	m.Add(&more)
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestPredict(t *testing.T) {
	m := New()
	// Three hosts with 22+80 and the same ssh banner; one with 22+443.
	for i, second := range []int{80, 80, 80, 443} {
		a := fmt.Sprintf("127.1.0.%d", i+1)
		s1, s2 := svc(a, 22, "SSH-2.0-X", "ssh"), svc(a, second, "HTTP/1.1 200 OK", "http")
		m.Add(&s1)
		m.Add(&s2)
	}
	q := svc("127.9.0.1", 22, "SSH-2.0-X", "ssh")
	feats := m.Dict().Of(nil, &q, false)
	got := m.Predict([]Found{{Port: 22, Feats: feats}}, 1e-5)
	if len(got) != 1 || got[0].Port != 80 || got[0].Count != 3 || got[0].Support != 4 || got[0].Hitrate != 0.75 {
		t.Fatalf("Predict = %+v, want port 80 with 3/4", got)
	}
	// Ties on hitrate 0.75 go to the smallest feature string.
	if f := m.Dict().String(got[0].Feat); f != "L4" {
		t.Fatalf("evidence feature %q, want L4 (first in byte order among ties)", f)
	}
	// A port already found is not predicted again.
	s80 := svc("127.9.0.1", 80, "HTTP/1.1 200 OK", "http")
	got = m.Predict([]Found{{Port: 22, Feats: feats}, {Port: 80, Feats: m.Dict().Of(nil, &s80, false)}}, 1e-5)
	for _, p := range got {
		if p.Port == 80 || p.Port == 22 {
			t.Fatalf("predicted a found port: %+v", got)
		}
	}
}

func TestServices(t *testing.T) {
	rows := randomRows(rand.New(rand.NewPCG(3, 3)), 200)
	m := build(rows)
	want := map[[2]uint32]bool{}
	for _, s := range rows {
		want[[2]uint32{s.Addr, uint32(s.Port)}] = true
	}
	got := map[[2]uint32]bool{}
	m.Services(func(a uint32, p uint16) { got[[2]uint32{a, uint32(p)}] = true })
	if len(got) != len(want) || m.Stats().Services != len(want) {
		t.Fatalf("Services gave %d, want %d distinct", len(got), len(want))
	}
	for k := range want {
		if !got[k] {
			t.Fatalf("missing %v", k)
		}
	}
}
