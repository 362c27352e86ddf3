package lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gpsscan/gps/pkg/pfx2as"
	"github.com/gpsscan/gps/pkg/row"
)

// small is a world quick enough for every test.
var small = Config{Seed: 7, Hosts: 6000, Slash16s: 8, SeedFrac: 0.2}

func generate(t *testing.T, c Config) *World {
	t.Helper()
	w, err := Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func addr(t *testing.T, ip string) uint32 {
	t.Helper()
	a, err := row.ParseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// ports counts the services of each host.
func ports(t *testing.T, rows []row.Row) map[uint32]int {
	t.Helper()
	n := map[uint32]int{}
	for _, r := range rows {
		n[addr(t, r.IP)]++
	}
	return n
}

func TestDeterminism(t *testing.T) {
	files := []string{TruthFile, SeedFile, Pfx2ASFile, MetaFile}
	read := func(t *testing.T, c Config) map[string][]byte {
		dir := t.TempDir()
		if err := generate(t, c).Write(dir); err != nil {
			t.Fatal(err)
		}
		out := map[string][]byte{}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			out[f] = b
		}
		return out
	}
	for _, tc := range []struct {
		name string
		c    Config
	}{
		{"small", small},
		{"defaults", Config{Seed: 1}},
		{"one /16 full of ASes", Config{Seed: 3, Hosts: 2000, Slash16s: 1, ASes: 200, SeedFrac: 0.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := read(t, tc.c), read(t, tc.c)
			for _, f := range files {
				if !bytes.Equal(a[f], b[f]) {
					t.Errorf("%s differs between two runs of the same config", f)
				}
				if len(a[f]) == 0 {
					t.Errorf("%s is empty", f)
				}
			}
			other := tc.c
			other.Seed++
			c := read(t, other)
			for _, f := range []string{TruthFile, SeedFile, Pfx2ASFile} {
				if bytes.Equal(a[f], c[f]) {
					t.Errorf("%s is the same for seeds %d and %d", f, tc.c.Seed, other.Seed)
				}
			}
		})
	}
}

func TestAddressesAndOrder(t *testing.T) {
	for _, c := range []Config{small, {Seed: 2, Hosts: 3000, Slash16s: 254}, {Seed: 4, Hosts: 65536, Slash16s: 1, SeedFrac: 1}} {
		t.Run("", func(t *testing.T) {
			w := generate(t, c)
			lo, hi := addr(t, "127.1.0.0"), addr(t, "127.1.0.0")+uint32(c.Slash16s)<<16-1
			var prev uint64
			for i, r := range w.Truth {
				a := addr(t, r.IP)
				if a < lo || a > hi {
					t.Fatalf("%s outside 127.1.0.0 .. %s", r.IP, row.FormatAddr(hi))
				}
				if _, err := r.Validate(); err != nil {
					t.Fatalf("row %d: %v", i, err)
				}
				key := uint64(a)<<16 | uint64(r.Port)
				if i > 0 && key <= prev {
					t.Fatalf("row %d (%s:%d) is not after the one before it", i, r.IP, r.Port)
				}
				prev = key
			}
			if n := len(ports(t, w.Truth)); n != c.Hosts || w.Meta.Hosts != c.Hosts {
				t.Fatalf("%d distinct hosts, meta says %d, want %d", n, w.Meta.Hosts, c.Hosts)
			}
		})
	}
}

func TestSeedIsTruthOfSampledAddresses(t *testing.T) {
	for _, c := range []Config{small, {Seed: 9, Hosts: 20000, Slash16s: 16, SeedFrac: 0.7}, {Seed: 5, Hosts: 500, Slash16s: 2, SeedFrac: 1}} {
		t.Run("", func(t *testing.T) {
			w := generate(t, c)
			n := c.Slash16s << 16
			k := int(math.Round(float64(n) * c.SeedFrac))
			sample := sampleAddrs(c.Seed, n, k)
			got := 0
			for i := range n {
				if sample.has(uint32(i)) {
					got++
				}
			}
			if got != k || w.Meta.Params["seed_addresses"] != k {
				t.Fatalf("sampled %d addresses, meta %v, want %d", got, w.Meta.Params["seed_addresses"], k)
			}
			var want []row.Row
			for _, r := range w.Truth {
				if sample.has(addr(t, r.IP) - addr(t, "127.1.0.0")) {
					want = append(want, r)
				}
			}
			if !reflect.DeepEqual(w.Seed, want) {
				t.Fatalf("seed has %d rows, the truth of the sampled addresses %d", len(w.Seed), len(want))
			}
			if len(w.Seed) == 0 {
				t.Fatal("empty seed")
			}
			if c.SeedFrac == 1 && len(w.Seed) != len(w.Truth) {
				t.Fatalf("seed_frac 1: seed %d rows, truth %d", len(w.Seed), len(w.Truth))
			}
		})
	}
}

func TestMetaMatchesFiles(t *testing.T) {
	w := generate(t, small)
	dir := t.TempDir()
	if err := w.Write(dir); err != nil {
		t.Fatal(err)
	}
	m, err := ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, w.Meta) {
		t.Fatalf("meta.json reads back as %+v, want %+v", m, w.Meta)
	}
	for _, k := range []string{"slash16s", "hosts", "ases"} {
		if _, ok := m.Params[k].(int); !ok {
			t.Errorf("param %s is %T, want int", k, m.Params[k])
		}
	}
	for _, k := range []string{"seed_frac", "pseudo_frac", "noise_frac"} {
		if _, ok := m.Params[k].(float64); !ok {
			t.Errorf("param %s is %T, want float64", k, m.Params[k])
		}
	}
	if m.Params["seed"] != small.Seed {
		t.Errorf("param seed = %v (%T)", m.Params["seed"], m.Params["seed"])
	}
	for _, f := range []struct {
		name            string
		hosts, services int
	}{{TruthFile, m.Hosts, m.Services}, {SeedFile, m.SeedHosts, m.SeedServices}} {
		rows, err := row.ReadAll(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		hosts := map[uint32]bool{}
		for _, r := range rows {
			hosts[r.Addr] = true
		}
		if len(rows) != f.services || len(hosts) != f.hosts {
			t.Errorf("%s: %d services on %d hosts, meta says %d on %d", f.name, len(rows), len(hosts), f.services, f.hosts)
		}
	}
	// No temporary file is left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 {
		t.Errorf("dir holds %d entries, want the 4 files", len(ents))
	}
}

func TestASNFromLongestPrefix(t *testing.T) {
	for _, c := range []Config{small, {Seed: 1}, {Seed: 8, Hosts: 3000, Slash16s: 2, ASes: 300}} {
		t.Run("", func(t *testing.T) {
			w := generate(t, c)
			dir := t.TempDir()
			if err := w.Write(dir); err != nil {
				t.Fatal(err)
			}
			pfx, err := pfx2as.Read(filepath.Join(dir, Pfx2ASFile))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pfx, w.Pfx2AS) {
				t.Fatal("pfx2as.tsv does not read back as World.Pfx2AS")
			}
			if p, _ := Prefixes(c); !reflect.DeepEqual(p, w.Pfx2AS) {
				t.Fatal("Prefixes differs from World.Pfx2AS")
			}
			// A plain scan of the table, independent of pfx2as.Table.
			type net struct {
				a   uint32
				l   int
				asn int64
			}
			var nets []net
			asns := map[int64]bool{}
			for _, p := range pfx {
				if p.Len < 16 || p.Len > 24 {
					t.Fatalf("prefix %s/%d: want /16 to /24", p.Prefix, p.Len)
				}
				nets = append(nets, net{addr(t, p.Prefix), p.Len, p.ASN})
				asns[p.ASN] = true
			}
			if len(asns) != w.Meta.Params["ases"] {
				t.Errorf("%d ASes announce prefixes, want %v", len(asns), w.Meta.Params["ases"])
			}
			lookup, err := pfx2as.NewTable(pfx)
			if err != nil {
				t.Fatal(err)
			}
			nulls := 0
			for _, r := range w.Truth {
				a := addr(t, r.IP)
				best, want := -1, int64(0)
				for _, n := range nets {
					if n.l > best && a&^(1<<(32-n.l)-1) == n.a { // n.l is 16..24
						best, want = n.l, n.asn
					}
				}
				got, ok := lookup.Lookup(a)
				switch {
				case best < 0 && r.ASN != nil:
					t.Fatalf("%s is in no prefix but has asn %d", r.IP, *r.ASN)
				case best < 0:
					nulls++
				case r.ASN == nil || *r.ASN != want:
					t.Fatalf("%s: asn %v, longest prefix says %d", r.IP, r.ASN, want)
				}
				if ok != (best >= 0) || got != want {
					t.Fatalf("Lookup(%s) = %d, %v; want %d", r.IP, got, ok, want)
				}
			}
			if c == (Config{Seed: 1}) && (nulls == 0 || nulls > len(w.Truth)/10) {
				t.Errorf("%d of %d services without asn, want a few percent", nulls, len(w.Truth))
			}
		})
	}
}

func TestPortCounts(t *testing.T) {
	w := generate(t, Config{Seed: 11})
	var one, mid, big int
	for _, n := range ports(t, w.Truth) {
		switch {
		case n == 1:
			one++
		case n <= 10:
			mid++
		default:
			big++
		}
	}
	hosts := float64(one + mid + big)
	if f := float64(one) / hosts; f < 0.35 || f > 0.55 {
		t.Errorf("%.2f of hosts have 1 port, want 0.35 .. 0.55", f)
	}
	if mid == 0 || big == 0 {
		t.Errorf("hosts with 2..10 ports: %d, with more: %d; want both", mid, big)
	}
	if f := float64(big) / hosts; f > 0.05 {
		t.Errorf("%.3f of hosts have more than 10 ports, want few", f)
	}
}

func TestServices(t *testing.T) {
	w := generate(t, Config{Seed: 12})
	certHosts := map[string]map[string]bool{}
	fps := map[string]int{}
	distinct := map[int]bool{}
	nonASCII, high, nullW := 0, 0, 0
	for _, r := range w.Truth {
		fps[r.Fingerprint]++
		distinct[r.Port] = true
		if r.Port > 49151 {
			high++
		}
		if r.Window == nil {
			nullW++
		} else if *r.Window <= 0 {
			t.Fatalf("%s:%d: window %d", r.IP, r.Port, *r.Window)
		}
		if !utf8.ValidString(r.Data) || strings.Contains(r.Data, "\r") {
			t.Fatalf("%s:%d: data %q is not UTF-8 without \\r", r.IP, r.Port, r.Data)
		}
		for _, c := range r.Data {
			if c > 127 {
				nonASCII++
				break
			}
		}
		switch r.Fingerprint {
		case "tls":
			if r.TLSCert == nil || *r.TLSCert == "" || len(r.TLSOIDs) == 0 {
				t.Fatalf("%s:%d: tls without certificate: %+v", r.IP, r.Port, r)
			}
			if certHosts[*r.TLSCert] == nil {
				certHosts[*r.TLSCert] = map[string]bool{}
			}
			certHosts[*r.TLSCert][r.IP] = true
		case "http":
			if !strings.HasPrefix(r.Data, "HTTP/1.") {
				t.Fatalf("%s:%d: http data %q", r.IP, r.Port, r.Data)
			}
		case "ssh":
			if !strings.HasPrefix(r.Data, "SSH-2.0-") {
				t.Fatalf("%s:%d: ssh data %q", r.IP, r.Port, r.Data)
			}
		}
		if r.Fingerprint != "tls" && (r.TLSCert != nil || r.TLSOIDs != nil) {
			t.Fatalf("%s:%d: %s with a certificate", r.IP, r.Port, r.Fingerprint)
		}
	}
	for _, fp := range []string{"http", "tls", "ssh", "ftp", "smtp", "telnet", "pop3", "imap", "mysql", "rdp", "smb", "rtsp", "sip", "unknown", ""} {
		if fps[fp] == 0 {
			t.Errorf("no service with fingerprint %q", fp)
		}
	}
	shared, unique := 0, 0
	for _, hosts := range certHosts {
		if len(hosts) > 1 {
			shared++
		} else {
			unique++
		}
	}
	if shared == 0 || unique == 0 {
		t.Errorf("certificates: %d shared, %d unique; want both", shared, unique)
	}
	n := len(w.Truth)
	if nonASCII == 0 || nonASCII > n/20 {
		t.Errorf("%d of %d services with non-ASCII data, want a few", nonASCII, n)
	}
	if nullW == 0 || nullW > n/20 {
		t.Errorf("%d of %d services without window, want a few", nullW, n)
	}
	if high == 0 || len(distinct) < 1000 {
		t.Errorf("%d distinct ports, %d services above 49151: want a long tail", len(distinct), high)
	}
}

func TestPseudoAndNoiseKnobs(t *testing.T) {
	for _, tc := range []struct {
		name          string
		pseudo, noise float64
		wantBig       bool
	}{
		{"none", -1, -1, false},
		{"many", 0.05, 0.5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Seed: 3, Hosts: 4000, Slash16s: 4, PseudoFrac: tc.pseudo, NoiseFrac: tc.noise}
			w := generate(t, c)
			big := 0
			for _, n := range ports(t, w.Truth) {
				if n >= 100 {
					big++
				}
			}
			if (big > 0) != tc.wantBig {
				t.Fatalf("%d hosts with 100+ ports", big)
			}
			if w.Meta.Params["pseudo_frac"] != tc.pseudo || w.Meta.Params["noise_frac"] != tc.noise {
				t.Fatalf("params %v, want the config's fractions", w.Meta.Params)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		want string // "" means valid
	}{
		{"zero is defaults", Config{}, ""},
		{"full space", Config{Hosts: 65536, Slash16s: 1}, ""},
		{"slash16s max", Config{Slash16s: 254}, ""},
		{"seed_frac 1", Config{SeedFrac: 1}, ""},
		{"no pseudo", Config{PseudoFrac: -1, NoiseFrac: -1}, ""},
		{"hosts over addresses", Config{Hosts: 65537, Slash16s: 1}, "exceed the 65536 addresses"},
		{"hosts negative", Config{Hosts: -1}, "hosts -1"},
		{"slash16s 255", Config{Slash16s: 255}, "slash16s 255"},
		{"slash16s negative", Config{Slash16s: -3}, "slash16s -3"},
		{"seed_frac negative", Config{SeedFrac: -0.1}, "seed_frac"},
		{"seed_frac above 1", Config{SeedFrac: 1.5}, "seed_frac"},
		{"seed_frac NaN", Config{SeedFrac: math.NaN()}, "seed_frac"},
		{"ases negative", Config{ASes: -1}, "ases"},
		{"ases over /24s", Config{ASes: 257, Slash16s: 1}, "ases 257"},
		{"pseudo above 1", Config{PseudoFrac: 2}, "pseudo_frac"},
		{"noise NaN", Config{NoiseFrac: math.NaN()}, "noise_frac"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrConfig)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if tc.want == "" {
				return
			}
			if _, gerr := Generate(tc.c); !errors.Is(gerr, ErrConfig) {
				t.Fatalf("Generate of a bad config: error %v", gerr)
			}
		})
	}
}

func TestGenerateSeed(t *testing.T) {
	t.Run("average", func(t *testing.T) {
		hosts, services := 0, 0
		last := ""
		err := GenerateSeed(Config{Seed: 1, Hosts: 10000, PseudoFrac: PaperPseudoFrac}, func(r row.Row) {
			services++
			if r.IP != last {
				hosts++
				last = r.IP
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if hosts != 10000 {
			t.Fatalf("%d hosts, want 10000", hosts)
		}
		if avg := float64(services) / float64(hosts); avg < 2.5 || avg > 3.5 {
			t.Fatalf("%.2f services per host, want 2.5 .. 3.5", avg)
		}
	})
	t.Run("equals truth of the whole space", func(t *testing.T) {
		c := Config{Seed: 6, Hosts: 3000, Slash16s: 3}
		var got []row.Row
		if err := GenerateSeed(c, func(r row.Row) { got = append(got, r) }); err != nil {
			t.Fatal(err)
		}
		c.Slash16s = MaxSlash16s
		if w := generate(t, c); !reflect.DeepEqual(got, w.Truth) {
			t.Fatalf("GenerateSeed gave %d rows, the truth has %d", len(got), len(w.Truth))
		}
	})
	t.Run("bad config", func(t *testing.T) {
		if err := GenerateSeed(Config{Hosts: -5}, func(row.Row) {}); !errors.Is(err, ErrConfig) {
			t.Fatalf("error %v", err)
		}
	})
}

func TestWriteFailsWhole(t *testing.T) {
	dir := t.TempDir()
	w := generate(t, Config{Seed: 1, Hosts: 300, Slash16s: 1})
	if err := w.Write(dir); err != nil {
		t.Fatal(err)
	}
	// A directory where a file should go makes Write fail.
	bad := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(bad, MetaFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(bad); err == nil {
		t.Fatal("Write into a directory blocked by a directory named meta.json succeeded")
	}
	ents, _ := os.ReadDir(bad)
	names := []string{}
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{MetaFile}) {
		t.Fatalf("after a failed write the directory holds %v", names)
	}
}

// TestReadMetaStrict: meta.json is one JSON value and nothing after it; a
// fault, a file cut short too, is a *json.SyntaxError, which says where.
func TestReadMetaStrict(t *testing.T) {
	for _, data := range []string{"", "  \n", `{"hosts":1}}`, "{\"hosts\":1}\nxyz\n", `{"hosts":1}{}`, "{\n  \"hosts\": 1,\n  \"ser"} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, MetaFile), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadMeta(dir)
		var se *json.SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("meta %q: error %v, want a syntax error", data, err)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, MetaFile), []byte("{\"hosts\":1}\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMeta(dir); err != nil {
		t.Errorf("meta with trailing blank lines: %v", err)
	}
}
