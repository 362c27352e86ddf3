package model

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gpsscan/gps/pkg/row"
)

func snapshotBytes(t testing.TB, m *Model) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := m.WriteTo(&b)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(b.Len()) {
		t.Fatalf("WriteTo says %d bytes, wrote %d", n, b.Len())
	}
	return b.Bytes()
}

func restore(t testing.TB, b []byte) *Model {
	t.Helper()
	m, err := ReadFrom(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// queries makes Predict queries from rows: each row alone, and pairs of
// rows of a host.
func queries(m *Model, rows []row.Service) [][]Found {
	var out [][]Found
	for i := range rows {
		s := &rows[i]
		q := []Found{{Port: uint16(s.Port), Feats: m.Dict().Of(nil, s, false)}}
		out = append(out, q)
		if i > 0 && rows[i-1].Addr == s.Addr && rows[i-1].Port != s.Port {
			p := &rows[i-1]
			out = append(out, append(q, Found{Port: uint16(p.Port), Feats: m.Dict().Of(nil, p, false)}))
		}
	}
	return out
}

func sameModels(t *testing.T, a, b *Model, rows []row.Service) {
	t.Helper()
	if err := b.Verify(); err != nil {
		t.Fatal(err)
	}
	equalCounts(t, snapshot(b), snapshot(a))
	if sa, sb := a.Stats(), b.Stats(); sa != sb {
		t.Fatalf("stats %+v, want %+v", sb, sa)
	}
	if !slices.Equal(b.Rows(1e-5), a.Rows(1e-5)) {
		t.Fatal("Rows differ")
	}
	qa, qb := queries(a, rows), queries(b, rows)
	for i := range qa {
		pa, pb := a.Predict(qa[i], 1e-5), b.Predict(qb[i], 1e-5)
		if !slices.Equal(pa, pb) {
			t.Fatalf("query %d: Predict = %+v, want %+v", i, pb, pa)
		}
	}
	if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, b)) {
		t.Fatal("snapshots of the two models differ")
	}
}

// TestSnapshotRoundTrip: a restored model behaves as the original, now and
// after the same further rows.
func TestSnapshotRoundTrip(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		r := rand.New(rand.NewPCG(seed, 5))
		rows := randomRows(r, 400)
		if seed%2 == 0 {
			r.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		}
		cut := r.IntN(len(rows))
		a := build(rows[:cut])
		b := restore(t, snapshotBytes(t, a))
		sameModels(t, a, b, rows)
		for i := cut; i < len(rows); i++ {
			if na, nb := a.Add(&rows[i]), b.Add(&rows[i]); na != nb {
				t.Fatalf("seed %d row %d: Add = %v, want %v", seed, i, nb, na)
			}
		}
		sameModels(t, a, b, rows)
		equalCounts(t, snapshot(b), batchCounts(rows))
	}
	// Empty model.
	sameModels(t, New(), restore(t, snapshotBytes(t, New())), nil)
}

// TestSnapshotCorrupt: truncated or altered snapshots are errors.
func TestSnapshotCorrupt(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	good := snapshotBytes(t, build(randomRows(r, 150)))
	check := func(what string, b []byte) {
		t.Helper()
		m, err := ReadFrom(bytes.NewReader(b))
		if err == nil || m != nil {
			t.Fatalf("%s: no error", what)
		}
		if !errors.Is(err, ErrSnapshot) {
			t.Fatalf("%s: error %v does not wrap ErrSnapshot", what, err)
		}
	}
	step := max(1, len(good)/600)
	for n := 0; n < len(good); n += step {
		check("truncated", good[:n])
	}
	check("truncated by 1", good[:len(good)-1])
	for i := 0; i < len(good); i += step {
		b := slices.Clone(good)
		b[i] ^= byte(1 + r.IntN(255))
		check("altered", b)
	}
	check("empty", nil)
	check("other magic", append([]byte("GPSMODEX"), good[8:]...))
	check("trailing junk ignored? no: trailer moved", append(slices.Clone(good[:len(good)-8]), 0, 0, 0, 0, 0, 0, 0, 0))
}

// FuzzReadFrom: any input is an error or a model that verifies and keeps
// working; never a panic.
func FuzzReadFrom(f *testing.F) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, hosts := range []int{0, 1, 5, 30} {
		b := snapshotBytes(f, build(randomRows(r, hosts)))
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	more := randomRows(r, 5)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ReadFrom(bytes.NewReader(b))
		if err != nil {
			return
		}
		if err := m.Verify(); err != nil {
			t.Fatal(err)
		}
		for i := range more {
			m.Add(&more[i])
		}
		if err := m.Verify(); err != nil {
			t.Fatal(err)
		}
	})
}

// BenchmarkSnapshot writes and reads the snapshot of a 100K-host model.
func BenchmarkSnapshot(b *testing.B) {
	seed := labSeed(b, 100_000)
	m := New()
	for i := range seed {
		m.Add(&seed[i])
	}
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	b.Run("write", func(b *testing.B) {
		for b.Loop() {
			buf.Reset()
			if _, err := m.WriteTo(&buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(buf.Len())/(1<<20), "MiB")
	})
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			if _, err := ReadFrom(bytes.NewReader(buf.Bytes())); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(buf.Len())/(1<<20), "MiB")
	})
}

// TestSnapshotInconsistent: a well-formed snapshot whose counts disagree
// with its hosts is refused (such a model would go wrong on a later Add).
func TestSnapshotInconsistent(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	rows := randomRows(r, 200)
	for name, spoil := range map[string]func(m *Model){
		"count": func(m *Model) {
			for k := range m.nkeys {
				if ks := m.keys.at(k); ks.coLen > 0 {
					m.coList(ks)[0].N++
					return
				}
			}
		},
		"missing count": func(m *Model) {
			for k := range m.nkeys {
				if ks := m.keys.at(k); ks.coLen > 1 {
					ks.coLen--
					return
				}
			}
		},
		"host of a key": func(m *Model) {
			for k := range m.nkeys {
				if ks := m.keys.at(k); ks.support >= 2 && ks.support <= inlineHosts && ks.hosts[0] > 0 {
					ks.hosts[0]--
					return
				}
			}
		},
		"port bitmap": func(m *Model) {
			for p, b := range m.portHosts {
				if b != nil && !b.IsEmpty() {
					b.Remove(b.Minimum())
					m.portHosts[(p+1)%len(m.portHosts)] = b.Clone()
					return
				}
			}
		},
		"services": func(m *Model) { m.services++ },
	} {
		m := build(rows)
		m.sync()
		spoil(m)
		_, err := ReadFrom(bytes.NewReader(snapshotBytes(t, m)))
		if !errors.Is(err, ErrSnapshot) {
			t.Errorf("%s: error %v, want one wrapping ErrSnapshot", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// withSmallCounts gives every key of fewer than MinCount hosts the counts
// its hosts make, as a model of a build that kept them had.
func withSmallCounts(m *Model) {
	m.sync()
	for k := range m.nkeys {
		ks := m.keys.at(k)
		if ks.support == 0 || ks.support >= MinCount {
			continue
		}
		for _, c := range m.smallCounts(ks, nil) {
			m.w.bumpPorts(ks, []uint16{c.Port}, int32(c.N))
		}
	}
}

// TestSnapshotOfOlderBuild: a snapshot that keeps counts for keys of fewer
// than MinCount hosts (written by an older build) reads into the model of
// this build, which keeps none; wrong ones are still an error.
func TestSnapshotOfOlderBuild(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	rows := randomRows(r, 300)
	a := build(rows)
	old := build(rows)
	withSmallCounts(old)
	if old.Verify() == nil {
		t.Fatal("the older model passes Verify: the test makes no older model")
	}
	b := restore(t, snapshotBytes(t, old))
	sameModels(t, a, b, rows)

	for k := range old.nkeys {
		if ks := old.keys.at(k); ks.support < MinCount && ks.coLen > 0 {
			old.coList(ks)[0].N++
			break
		}
	}
	if _, err := ReadFrom(bytes.NewReader(snapshotBytes(t, old))); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("a wrong count of a small key: error %v, want one wrapping ErrSnapshot", err)
	}
}
