package lab

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gpsscan/gps/pkg/pfx2as"
	"github.com/gpsscan/gps/pkg/row"
)

func genWrite(t *testing.T, c Config) (string, *World) {
	t.Helper()
	w, err := Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := w.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir, w
}

// readDir returns every file under dir by its relative path.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCyclesDeterministic(t *testing.T) {
	c := Config{Seed: 5, Hosts: 3000, Slash16s: 4, Cycles: 4}
	d1, _ := genWrite(t, c)
	d2, _ := genWrite(t, c)
	a, b := readDir(t, d1), readDir(t, d2)
	if len(a) != 4+4 {
		t.Fatalf("%d files, want truth, seed, pfx2as, meta and 4 change files", len(a))
	}
	for name, x := range a {
		if !bytes.Equal(x, b[name]) {
			t.Fatalf("%s differs between two runs of one config", name)
		}
	}
	c.Seed = 6
	d3, _ := genWrite(t, c)
	if bytes.Equal(a["changes/cycle-0001.jsonl"], readDir(t, d3)["changes/cycle-0001.jsonl"]) {
		t.Fatal("another seed, the same changes")
	}
}

// TestCycleZeroUnchanged holds cycle 0 to the worlds of the code before
// cycles existed (the hashes are of `gps lab gen` at a8a18f6): with or
// without cycles, truth, seed and pfx2as are those bytes, and without
// cycles meta.json is too.
func TestCycleZeroUnchanged(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		want map[string]string
	}{
		{"w1", Config{Seed: 7, Hosts: 3000, Slash16s: 4}, map[string]string{
			MetaFile:   "3f7b9abca5afada54e414df2502ab902050158cc85ac802e720d39d3f00c9595",
			Pfx2ASFile: "bb9150a2ad8a1768d2bfe031ef995210335a6727dcc5197b81f4a31de6b7e7a4",
			SeedFile:   "fa6db255ae4680e7570e2f7c78f1cddf82ce9892a128ee97d6a846e4f334b767",
			TruthFile:  "6df30d47d2d4f6ecf3cdc4eb9f6596736e9de7a27233603b4faf6816b3dfcb0b",
		}},
		{"w2-pseudo", Config{Seed: 3, Hosts: 2000, Slash16s: 2, PseudoFrac: 0.01}, map[string]string{
			MetaFile:   "1dfe7f7116b95c8bca39ebf2572cc617d24e39c1827b1b3bbeab094d7d053945",
			Pfx2ASFile: "89ccb7017ce44443c4e6290e98510bb0a1b7354b78c43aee8e7c37142f094f8d",
			SeedFile:   "7510331f40ca9743c2550bd166a146c14cdb5e5b7de372edf7054e38be8388c0",
			TruthFile:  "57f9db3c54ea77414210dd46cbcdfc93915196f79038180a58d195642cf7ea7d",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, cycles := range []int{0, 3} {
				c := tc.c
				c.Cycles, c.Churn = cycles, 2
				dir, _ := genWrite(t, c)
				files := readDir(t, dir)
				for name, want := range tc.want {
					if name == MetaFile && cycles > 0 {
						continue
					}
					sum := sha256.Sum256(files[name])
					if got := hex.EncodeToString(sum[:]); got != want {
						t.Errorf("cycles %d: %s has sha256 %s, want %s", cycles, name, got, want)
					}
				}
			}
		})
	}
}

// churnWorld generates a world and makes its churn with tallies.
func churnWorld(t *testing.T, c Config) (*churner, [][]Change, []CycleCounts) {
	t.Helper()
	c = c.WithDefaults()
	g := newGen(c)
	w := &World{Pfx2AS: g.t.pfx}
	var devs []int
	var buf []row.Row
	g.run(func(h *host) {
		devs = append(devs, h.dev)
		buf = h.rows(buf[:0])
		w.Truth = append(w.Truth, buf...)
	})
	ch := newChurner(g, w, devs)
	ch.stats = &churnStats{}
	cs, counts := ch.cycles(c.Cycles)
	return ch, cs, counts
}

func TestChurnRates(t *testing.T) {
	for _, scale := range []float64{1, 3} {
		ch, _, counts := churnWorld(t, Config{Seed: 11, Hosts: 20000, Slash16s: 16, Cycles: 6, Churn: scale})
		fields := map[string]func(*churnRate) *float64{"hostGone": fHostGone, "hostNew": fHostNew, "move": fMove,
			"svcGone": fSvcGone, "svcNew": fSvcNew, "change": fChange, "dark": fDark, "up": fUp}
		checked := 0
		for k := range numKinds {
			for name, f := range fields {
				n := *f(&ch.stats.tries[k])
				if n < 500 {
					continue // too few chances to measure
				}
				p := min(*f(&churnRates[k])*scale, 1)
				got := *f(&ch.stats.hits[k]) / n
				if tol := 5*math.Sqrt(p*(1-p)/n) + 1e-3; math.Abs(got-p) > tol {
					t.Errorf("churn %v, kind %d, %s: %.4f of %.0f chances, want %.4f ± %.4f", scale, k, name, got, n, p, tol)
				}
				checked++
			}
		}
		if checked < 20 {
			t.Fatalf("only %d rates had enough chances to check", checked)
		}
		if scale != 1 {
			continue
		}
		// The documented claim: a few percent of services change a cycle.
		for i, c := range counts {
			before := c.Services - c.Added + c.Gone
			frac := float64(c.Added+c.Gone+c.Changed) / float64(before)
			t.Logf("cycle %d: %+v, %.3f of the services changed", i+1, c, frac)
			if frac < 0.01 || frac > 0.08 {
				t.Errorf("cycle %d: %.3f of the services changed, want a few percent (%+v)", i+1, frac, c)
			}
			if c.Moved == 0 {
				t.Errorf("cycle %d: no host moved", i+1)
			}
		}
	}
}

func TestNoChurn(t *testing.T) {
	_, cs, _ := churnWorld(t, Config{Seed: 1, Hosts: 3000, Slash16s: 4, Cycles: 3, Churn: -1})
	for k, c := range cs {
		if len(c) != 0 {
			t.Fatalf("churn off, cycle %d has %d changes", k+1, len(c))
		}
	}
}

// applyNaive is the truth after changes, computed the plain way.
func applyNaive(t *testing.T, truth []row.Row, changes [][]Change) []row.Row {
	t.Helper()
	type key struct {
		ip string
		p  int
	}
	m := map[key]row.Row{}
	for _, r := range truth {
		m[key{r.IP, r.Port}] = r
	}
	for _, cs := range changes {
		for _, c := range cs {
			switch c.Op {
			case OpAdd, OpChange:
				m[key{c.Row.IP, c.Row.Port}] = *c.Row
			case OpDel:
				delete(m, key{c.IP, c.Port})
			case OpMove:
				for k, r := range m {
					if k.ip == c.IP {
						delete(m, k)
						r.IP = c.To
						m[key{c.To, k.p}] = r
					}
				}
			}
		}
	}
	out := make([]row.Row, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b row.Row) int {
		x, _ := row.ParseAddr(a.IP)
		y, _ := row.ParseAddr(b.IP)
		return cmpOr(cmpAddr(x, y), a.Port-b.Port)
	})
	return out
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func TestReadCycleAppliesChanges(t *testing.T) {
	const n = 5
	dir, w := genWrite(t, Config{Seed: 9, Hosts: 4000, Slash16s: 4, Cycles: n, Churn: 2, PseudoFrac: 0.005})
	tl, err := OpenTimeline(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tl.Cycles() != n {
		t.Fatalf("timeline has %d cycles, want %d", tl.Cycles(), n)
	}
	for k := 0; k <= n; k++ {
		want := applyNaive(t, w.Truth, w.Changes[:k])
		ss, err := ReadCycle(dir, k)
		if err != nil {
			t.Fatal(err)
		}
		if k > 0 {
			if _, err := tl.Next(); err != nil {
				t.Fatal(err)
			}
		}
		fromTL := tl.Services()
		if len(ss) != len(want) || len(fromTL) != len(want) {
			t.Fatalf("cycle %d: ReadCycle %d services, timeline %d, want %d", k, len(ss), len(fromTL), len(want))
		}
		for i := range want {
			if !sameRow(ss[i].Row, want[i]) || !sameRow(fromTL[i].Row, want[i]) {
				t.Fatalf("cycle %d, service %d: %+v / %+v, want %+v", k, i, ss[i].Row, fromTL[i].Row, want[i])
			}
		}
		if k > 0 && w.Meta.Changes[k-1].Services != len(want) {
			t.Fatalf("meta says cycle %d has %d services, it has %d", k, w.Meta.Changes[k-1].Services, len(want))
		}
	}
	m, err := ReadMeta(dir)
	if err != nil || m.Cycles() != n {
		t.Fatalf("meta cycles %d, %v", m.Cycles(), err)
	}
	for _, k := range []int{n + 1, -1} {
		_, err := ReadCycle(dir, k)
		if !errors.Is(err, ErrCycle) || !strings.Contains(err.Error(), "cycles 0..5") {
			t.Fatalf("ReadCycle(%d): %v, want ErrCycle naming cycles 0..5", k, err)
		}
	}
	if _, err := tl.Next(); !errors.Is(err, ErrCycle) {
		t.Fatalf("Next past the last cycle: %v", err)
	}
	if err := tl.Seek(2); err != nil || tl.Cycle() != 2 || tl.Len() != len(applyNaive(t, w.Truth, w.Changes[:2])) {
		t.Fatalf("seek back to 2: %v, at %d with %d services", err, tl.Cycle(), tl.Len())
	}
}

func sameRow(a, b row.Row) bool {
	ptr := func(x *int64) int64 {
		if x == nil {
			return -1
		}
		return *x
	}
	str := func(x *string) string {
		if x == nil {
			return "<nil>"
		}
		return *x
	}
	return a.IP == b.IP && a.Port == b.Port && a.Data == b.Data && a.Fingerprint == b.Fingerprint &&
		ptr(a.ASN) == ptr(b.ASN) && ptr(a.Window) == ptr(b.Window) && str(a.TLSCert) == str(b.TLSCert) &&
		slices.Equal(a.TLSOIDs, b.TLSOIDs)
}

func TestMovesStayInPrefix(t *testing.T) {
	c := Config{Seed: 4, Hosts: 8000, Slash16s: 8, Cycles: 4, Churn: 3}
	dir, w := genWrite(t, c)
	longest := func(a uint32) (pfx2as.Prefix, bool) {
		var best pfx2as.Prefix
		ok := false
		for _, p := range w.Pfx2AS {
			base, _ := row.ParseAddr(p.Prefix)
			if a>>(32-p.Len) == base>>(32-p.Len) && (!ok || p.Len > best.Len) {
				best, ok = p, true
			}
		}
		return best, ok
	}
	tl, err := OpenTimeline(dir)
	if err != nil {
		t.Fatal(err)
	}
	moves := 0
	for k := 1; k <= c.Cycles; k++ {
		// Applying checks each move lands on a free address; here, the prefix.
		cs, err := tl.Next()
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range cs {
			if ch.Op != OpMove {
				continue
			}
			moves++
			from, _ := row.ParseAddr(ch.IP)
			to, _ := row.ParseAddr(ch.To)
			pf, okf := longest(from)
			pt, okt := longest(to)
			switch {
			case okf != okt || pf != pt:
				t.Fatalf("cycle %d: %s (%v) moved to %s (%v), another prefix", k, ch.IP, pf, ch.To, pt)
			case !okf && from>>8 != to>>8:
				t.Fatalf("cycle %d: unannounced %s moved out of its /24 to %s", k, ch.IP, ch.To)
			case to&0xff == 0 || to&0xff == 255:
				t.Fatalf("cycle %d: %s moved to a network or broadcast address %s", k, ch.IP, ch.To)
			}
		}
		for _, s := range tl.Services() {
			p, ok := longest(s.Addr)
			if ok != (s.ASN != nil) || ok && *s.ASN != p.ASN {
				t.Fatalf("cycle %d: %s:%d has asn %v, its prefix %v", k, s.IP, s.Port, s.ASN, p)
			}
		}
	}
	if moves < 50 {
		t.Fatalf("only %d moves", moves)
	}
}

func TestMalformedChangeNamesLine(t *testing.T) {
	dir, w := genWrite(t, Config{Seed: 2, Hosts: 3000, Slash16s: 4, Cycles: 2, Churn: 2})
	path := ChangesFile(dir, 2)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(orig), "\n")
	if len(lines) < 4 {
		t.Fatalf("cycle 2 has only %d changes", len(lines))
	}
	gone := w.Truth[0]
	for _, tc := range []struct{ name, line string }{
		{"not json", "{\"op\":\"add\",\n"},
		{"unknown op", `{"op":"teleport","ip":"127.1.0.1"}` + "\n"},
		{"add without row", `{"op":"add"}` + "\n"},
		{"bad port", `{"op":"del","ip":"127.1.0.1","p":70000}` + "\n"},
		{"del of nothing", `{"op":"del","ip":"127.0.0.1","p":1}` + "\n"},
		{"change of nothing", `{"op":"change","row":{"ip":"127.0.0.1","p":1,"data":""}}` + "\n"},
		{"move of nothing", `{"op":"move","ip":"127.0.0.1","to":"127.0.0.2"}` + "\n"},
		{"add of a service there", `{"op":"add","row":{"ip":"` + gone.IP + `","p":` + strconv.Itoa(gone.Port) + `}}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := slices.Clone(lines)
			// Line 3 of cycle 2; the add of an existing service needs it not
			// gone in cycles 1 and 2 before, which line 3 cannot know: put
			// that one first, where truth still has it unless cycle 1 took it.
			at := 2
			if tc.name == "add of a service there" {
				at = 0
				bad = append([]string{tc.line}, bad...)
				if ss, _ := ReadCycle(dir, 1); !slices.ContainsFunc(ss, func(s row.Service) bool { return s.IP == gone.IP && s.Port == gone.Port }) {
					t.Skip("cycle 1 took the service away")
				}
			} else {
				bad[at] = tc.line
			}
			if err := os.WriteFile(path, []byte(strings.Join(bad, "")), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.WriteFile(path, orig, 0o644) })
			_, err := ReadCycle(dir, 2)
			var le *row.LineError
			if !errors.As(err, &le) || le.File != path || le.Line != at+1 {
				t.Fatalf("ReadCycle: %v, want a line error at %s:%d", err, path, at+1)
			}
			if !strings.Contains(err.Error(), path+":"+strconv.Itoa(at+1)) {
				t.Fatalf("error %q does not name %s:%d", err, path, at+1)
			}
			if _, err := ReadCycle(dir, 1); err != nil {
				t.Fatalf("cycle 1 is fine, got %v", err)
			}
		})
	}
}

func TestBumpVersion(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"HTTP/1.1 200 OK\nServer: nginx/1.18.0 (Ubuntu)", "HTTP/1.1 200 OK\nServer: nginx/1.18.1 (Ubuntu)", true},
		{"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6", "SSH-2.0-OpenSSH_8.10p1 Ubuntu-3ubuntu0.6", true},
		{"RFB 003.008", "RFB 003.008", false},
		{"X-Powered-By: PHP/7.4.33", "X-Powered-By: PHP/7.4.34", true},
		{"fw v1.09", "fw v1.10", true},
		{"220 mail ESMTP Postfix", "220 mail ESMTP Postfix", false},
		{"Server: Apache/2.4.41", "Server: Apache/2.4.42", true},
		{"host 127.1.2.3 ready v10.2", "host 127.1.2.3 ready v10.3", true},
		{"", "", false},
	} {
		got, ok := bumpVersion(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("bumpVersion(%q) = %q %v, want %q %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestValidateCycles(t *testing.T) {
	for _, c := range []Config{{Cycles: -1}, {Cycles: MaxCycles + 1}, {Churn: math.NaN()}, {Churn: MaxChurn + 1}} {
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", c, err)
		}
	}
}
