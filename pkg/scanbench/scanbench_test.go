package scanbench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/pkg/ipv4"
)

func TestConfig(t *testing.T) {
	self := []string{"gps", "bench", "scanners"}
	tests := []struct {
		name string
		c    Config
		want string // in the error; "" for none
	}{
		{"defaults", Config{Self: self}, ""},
		{"small", Config{Targets: 256, Open: 10, Self: self}, ""},
		{"not a power of two", Config{Targets: 1000, Self: self}, "targets 1000"},
		{"too many targets", Config{Targets: 1 << 17, Self: self}, "targets 131072"},
		{"too few", Config{Targets: 128, Self: self}, "targets 128"},
		{"open above targets", Config{Targets: 256, Open: 300, Self: self}, "open 300"},
		{"negative rate", Config{Rates: []float64{-1}, Self: self}, "rate -1"},
		{"unknown scanner", Config{Scanners: []string{"nmap"}, Self: self}, `"nmap"`},
		{"gps without a helper", Config{Scanners: []string{ScannerGPS}}, "Self"},
		{"zmap alone needs no helper", Config{Scanners: []string{ScannerZMap}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrConfig)):
				t.Fatalf("Validate() = %v, want an ErrConfig with %q", err, tt.want)
			}
		})
	}
}

// TestTargets: every address scanned or listened on is inside 198.19.0.0/16
// (the benchmarking range), and the open set is exact and reproducible.
func TestTargets(t *testing.T) {
	for _, n := range []int{256, 4096, 65536} {
		c := Config{Targets: n, Open: min(2048, n/2)}.WithDefaults()
		pr := c.Prefix()
		if pr.Size() != uint64(n) || pr.First() != TargetSpace.First() {
			t.Fatalf("targets %d: prefix %s", n, pr)
		}
		if !TargetSpace.Contains(pr.First()) || !TargetSpace.Contains(pr.Last()) || !benchRange.Contains(pr.Last()) {
			t.Fatalf("targets %d: prefix %s outside %s", n, pr, TargetSpace)
		}
		open := c.OpenAddrs()
		if len(open) != c.Open || !slices.IsSorted(open) || len(slices.Compact(slices.Clone(open))) != c.Open {
			t.Fatalf("targets %d: %d open addresses, want %d distinct", n, len(open), c.Open)
		}
		for _, a := range open {
			if !pr.Contains(a) {
				t.Fatalf("open address %s outside %s", ipv4.FormatAddr(a), pr)
			}
		}
		if !slices.Equal(open, c.OpenAddrs()) {
			t.Fatalf("open addresses differ between calls")
		}
	}
}

// TestScannerArgs: the external scanners get only the target prefix, in the
// scanner namespace's interface, at the asked rate.
func TestScannerArgs(t *testing.T) {
	c := Config{Targets: 4096, Self: []string{"x"}}.WithDefaults()
	l := labInfo{ScanNS: "ns", ScanIf: "gbs1", TargetMAC: "02:00:c6:12:00:02"}
	z := strings.Join(zmapArgs(c, l, 0, "/o", "/e"), " ")
	for _, want := range []string{"-r 0", "-p 80", "-i gbs1", "-G 02:00:c6:12:00:02", "-b /e", "-C /e", "-P 1", "-c 2", " 198.19.0.0/20"} {
		if !strings.Contains(z, want) {
			t.Errorf("zmap %q lacks %q", z, want)
		}
	}
	m := strings.Join(masscanArgs(c, l, 0), " ")
	for _, want := range []string{"masscan 198.19.0.0/20 ", "-p80", "--rate 100000000", "-e gbs1", "--router-mac 02:00:c6:12:00:02", "--wait 2"} {
		if !strings.Contains(m, want) {
			t.Errorf("masscan %q lacks %q", m, want)
		}
	}
	if m := strings.Join(masscanArgs(c, l, 5000), " "); !strings.Contains(m, "--rate 5000") {
		t.Errorf("masscan %q lacks the rate", m)
	}
}

func TestParseZMap(t *testing.T) {
	out := []byte(" 0:00 0%; send: 0 0 p/s (0 p/s avg); recv: 0 0 p/s (0 p/s avg)\n" +
		" 0:01 59%; send: 65536 done (91.1 Kp/s avg); recv: 200 199 p/s (197 p/s avg); hitrate: 0.31%\n")
	sent, pps, err := parseZMapStatus(out)
	if err != nil || sent != 65536 || pps != 91100 {
		t.Fatalf("parseZMapStatus = %d, %g, %v", sent, pps, err)
	}
	if _, _, err := parseZMapStatus([]byte("FATAL: no")); err == nil {
		t.Fatal("no error without a done line")
	}
	if _, pps, _ := parseZMapStatus([]byte("send: 10 done (1.2 Mp/s avg)")); pps != 1.2e6 {
		t.Fatalf("Mp/s: %g", pps)
	}
}

func TestParseMasscan(t *testing.T) {
	out := []byte("Starting masscan 1.3.2\nInitiating SYN Stealth Scan\n" +
		"rate: 61.32-kpps,  0.56% done,4627:21:45 remaining, found=1       \r" +
		"rate: 99.93-kpps, 71.50% done,   0:00:02 remaining, found=69       \r" +
		"rate:  0.00-kpps, 100.00% done, waiting 0-secs, found=101       \r" +
		"rate:  0.00-kpps, 100.00% done, waiting -1-secs, found=101       \r")
	pps, found, err := parseMasscanStatus(out)
	if err != nil || pps != 99930 || found != 101 {
		t.Fatalf("parseMasscanStatus = %g, %d, %v", pps, found, err)
	}
	if _, _, err := parseMasscanStatus([]byte("FAIL: no interface")); err == nil {
		t.Fatal("no error without a status line")
	}
}

func TestReadAddrs(t *testing.T) {
	in := "198.19.0.7\n#masscan\nopen tcp 80 198.19.0.9 1700000000\n# end\nnot-an-address\n"
	got, err := readAddrs(strings.NewReader(in))
	want := []uint32{0xc6130007, 0xc6130009}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("readAddrs = %v, %v; want %v", got, err, want)
	}
	ok, bad := hits([]uint32{1, 2, 2, 3}, map[uint32]bool{1: true, 2: true, 5: true})
	if ok != 2 || bad != 1 {
		t.Fatalf("hits = %d, %d", ok, bad)
	}
}

func TestReport(t *testing.T) {
	rep := &Report{Results: []Result{
		{Scanner: ScannerGPS, Rate: 100000, Samples: []Sample{{PPS: 90, HitRate: 1}, {PPS: 100, HitRate: 0.5}, {PPS: 95, HitRate: 1}}},
		{Scanner: ScannerZMap, Rate: 100000, Samples: []Sample{{PPS: 200, HitRate: 1}}},
		{Scanner: ScannerMasscan, Rate: 100000, Skipped: "masscan not installed"},
		{Scanner: ScannerGPS, Rate: 0, Samples: []Sample{{PPS: 10, HitRate: 1}, {PPS: 30, HitRate: 1}}},
	}}
	rep.summarise()
	if g := rep.Results[0]; g.PPS != 95 || g.HitRate != 1 {
		t.Fatalf("medians %g, %g", g.PPS, g.HitRate)
	}
	if g := rep.Results[3]; g.PPS != 20 {
		t.Fatalf("even median %g", g.PPS)
	}
	if len(rep.Ratios) != 1 || rep.Ratios[0].PPS != 95.0/200 {
		t.Fatalf("ratios %+v", rep.Ratios)
	}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"skipped: masscan not installed", "gps/zmap packets per second at rate cap 100000: 0.47", "max"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestRun: the whole benchmark, tiny. It needs root, the ip command and
// free namespaces; zmap and masscan are used when installed.
func TestRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and raw sockets")
	}
	if testing.Short() {
		t.Skip("builds network namespaces; not in -short")
	}
	if _, err := Run(context.Background(), Config{Scanners: []string{ScannerZMap, ScannerMasscan}, Targets: 256, Open: 16,
		Runs: 1, Rates: []float64{10000}, Cooldown: time.Second}, zaptest.NewLogger(t)); errors.Is(err, ErrNoIP) {
		t.Skipf("%v", err)
	} else if err != nil {
		t.Fatal(err)
	}
}
