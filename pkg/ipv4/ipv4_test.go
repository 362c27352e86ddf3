package ipv4

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gpsscan/gps/pkg/row"
)

func addr(t testing.TB, s string) uint32 {
	t.Helper()
	p, err := ParsePrefix(s)
	if err != nil || p.Bits != 32 {
		t.Fatalf("address %q: %v", s, err)
	}
	return p.Addr
}

func set(t testing.TB, ss ...string) Set {
	t.Helper()
	s, err := ParseStrings("test", ss)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParsePrefix(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"10.0.0.0/8", "10.0.0.0/8", false},
		{"1.2.3.4", "1.2.3.4/32", false},
		{"0.0.0.0/0", "0.0.0.0/0", false},
		{"10.0.0.1/8", "", true},
		{"10.0.0.0/33", "", true},
		{"::1", "", true},
		{"2001:db8::/32", "", true},
		{"example.com", "", true},
		{"", "", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePrefix(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrBadPrefix) {
					t.Fatalf("ParsePrefix(%q) = %v, %v; want ErrBadPrefix", tc.in, p, err)
				}
				return
			}
			if err != nil || p.String() != tc.want {
				t.Fatalf("ParsePrefix(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
			}
		})
	}
}

func TestSetOps(t *testing.T) {
	a := set(t, "10.0.0.0/24", "10.0.1.0/24", "10.0.3.0/24", "1.1.1.1")
	if got := a.String(); got != "1.1.1.1/32,10.0.0.0/23,10.0.3.0/24" {
		t.Fatalf("merged set %s", got)
	}
	if a.Count() != 1+512+256 {
		t.Fatalf("count %d", a.Count())
	}
	for _, tc := range []struct {
		name string
		got  Set
		want string
	}{
		{"minus middle", a.Minus(set(t, "10.0.0.128/25")), "1.1.1.1/32,10.0.0.0/25,10.0.1.0/24,10.0.3.0/24"},
		{"minus all", a.Minus(set(t, "0.0.0.0/0")), ""},
		{"minus nothing", a.Minus(Set{}), a.String()},
		{"minus spanning", a.Minus(set(t, "10.0.0.255", "10.0.1.0/25")), "1.1.1.1/32,10.0.0.0/25,10.0.0.128/26,10.0.0.192/27,10.0.0.224/28,10.0.0.240/29,10.0.0.248/30,10.0.0.252/31,10.0.0.254/32,10.0.1.128/25,10.0.3.0/24"},
		{"intersect", a.Intersect(set(t, "10.0.0.0/16")), "10.0.0.0/23,10.0.3.0/24"},
		{"union", a.Union(set(t, "10.0.2.0/24")), "1.1.1.1/32,10.0.0.0/22"},
		{"top of space", set(t, "255.255.255.255", "255.255.255.254").Minus(set(t, "255.255.255.254")), "255.255.255.255/32"},
		{"everything", set(t, "0.0.0.0/1", "128.0.0.0/1"), "0.0.0.0/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s := tc.got.String(); s != tc.want {
				t.Fatalf("got %s, want %s", s, tc.want)
			}
		})
	}
	if !set(t, "0.0.0.0/0").ContainsPrefix(MustParsePrefix("0.0.0.0/0")) || set(t, "0.0.0.0/0").Count() != 1<<32 {
		t.Fatal("the whole space")
	}
}

func TestParseList(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "allow.txt")
	os.WriteFile(good, []byte("# lab\n127.0.0.0/8   # loopback\n\n  198.18.0.1\n"), 0o644)
	s, err := ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if s.String() != "127.0.0.0/8,198.18.0.1/32" {
		t.Fatalf("got %s", s)
	}
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("127.0.0.0/8\n# fine\n10.0.0.1/8\n"), 0o644)
	_, err = ReadFile(bad)
	var le *row.LineError
	if !errors.As(err, &le) || le.Line != 3 || !strings.HasPrefix(err.Error(), bad+":3: ") || !errors.Is(err, ErrBadPrefix) {
		t.Fatalf("error %v, want %s:3", err, bad)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file read")
	}
}

func TestIANABlocklist(t *testing.T) {
	b := IANABlocklist()
	for _, a := range []string{"0.0.0.0", "10.1.2.3", "127.0.0.1", "169.254.1.1", "172.31.255.255", "192.168.1.1",
		"198.18.0.1", "198.19.255.255", "224.0.0.1", "239.255.255.255", "240.0.0.1", "255.255.255.255", "100.64.0.1",
		"192.0.2.1", "198.51.100.7", "203.0.113.9"} {
		if !b.Contains(addr(t, a)) {
			t.Errorf("%s not in the IANA blocklist", a)
		}
	}
	for _, a := range []string{"8.8.8.8", "1.1.1.1", "172.32.0.1", "198.20.0.1", "11.0.0.1", "223.255.255.255"} {
		if b.Contains(addr(t, a)) {
			t.Errorf("%s in the IANA blocklist", a)
		}
	}
	if !strings.Contains(IANABlocklistConf(), "RFC1918") {
		t.Error("blocklist.conf lacks its RFC comments")
	}
}

func TestPolicy(t *testing.T) {
	for _, tc := range []struct {
		name         string
		allow, block []string
		yes, no      []string
		count        uint64
		err          error
	}{
		{name: "empty allow", err: ErrNoAllowList},
		{name: "lab", allow: []string{"127.0.0.0/8"}, yes: []string{"127.1.2.3", "127.255.255.255", "127.0.0.0"},
			no: []string{"8.8.8.8", "10.0.0.1", "128.0.0.0"}, count: 1 << 24},
		{name: "public only what is allowed", allow: []string{"8.8.8.0/24"}, yes: []string{"8.8.8.8"}, no: []string{"8.8.4.4", "127.0.0.1"}, count: 256},
		{name: "private stays blocked", allow: []string{"10.0.0.0/8"}, err: ErrNothingAllowed},
		{name: "private stays blocked beside public", allow: []string{"10.0.0.0/8", "8.8.8.8"}, yes: []string{"8.8.8.8"}, no: []string{"10.0.0.1"}, count: 1},
		{name: "whole space keeps IANA blocked", allow: []string{"0.0.0.0/0"}, yes: []string{"8.8.8.8", "1.1.1.1"},
			no: []string{"127.0.0.1", "198.18.0.1", "10.0.0.1", "224.0.0.1", "0.0.0.0", "255.255.255.255"}},
		{name: "benchmarking when allowed", allow: []string{"198.18.0.0/16"}, yes: []string{"198.18.3.4"}, no: []string{"198.19.0.1"}, count: 1 << 16},
		{name: "user block wins over the lab", allow: []string{"127.0.0.0/8"}, block: []string{"127.0.0.0/16"},
			yes: []string{"127.1.0.1"}, no: []string{"127.0.0.1"}, count: 1<<24 - 1<<16},
		{name: "lab beside the whole space", allow: []string{"0.0.0.0/0", "127.0.0.0/8"}, yes: []string{"127.0.0.1", "8.8.8.8"}, no: []string{"10.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPolicy(set(t, tc.allow...), set(t, tc.block...))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("NewPolicy error %v, want %v", err, tc.err)
				}
				if errors.Is(err, ErrNoAllowList) && !strings.Contains(err.Error(), "an allow list is required") {
					t.Fatalf("error text %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range tc.yes {
				if !p.Allowed(addr(t, a)) {
					t.Errorf("%s not allowed", a)
				}
			}
			for _, a := range tc.no {
				if p.Allowed(addr(t, a)) {
					t.Errorf("%s allowed", a)
				}
			}
			if tc.count != 0 && p.Count() != tc.count {
				t.Errorf("count %d, want %d", p.Count(), tc.count)
			}
		})
	}
}

func TestPolicyAddrAndClip(t *testing.T) {
	p, err := NewPolicy(set(t, "127.0.0.0/30", "127.0.1.0/31", "8.8.8.8"), set(t, "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range p.Count() {
		got = append(got, FormatAddr(p.Addr(i)))
	}
	want := []string{"8.8.8.8", "127.0.0.0", "127.0.0.2", "127.0.0.3", "127.0.1.0", "127.0.1.1"}
	if !slices.Equal(got, want) {
		t.Fatalf("addresses %v, want %v", got, want)
	}
	for _, a := range got {
		if !p.Allowed(addr(t, a)) {
			t.Fatalf("Addr gave %s, not allowed", a)
		}
	}
	clip := NewSet(p.Clip(MustParsePrefix("127.0.0.0/24"))...).String()
	if clip != "127.0.0.0/32,127.0.0.2/31" {
		t.Fatalf("clip %s", clip)
	}
	if p.AllowedPrefix(MustParsePrefix("127.0.0.0/30")) || !p.AllowedPrefix(MustParsePrefix("127.0.0.2/31")) {
		t.Fatal("AllowedPrefix")
	}
	lp, err := LoadPolicy([]string{"127.0.0.0/8,8.8.8.8"}, "", "")
	if err != nil || lp.Count() != 1<<24+1 {
		t.Fatalf("LoadPolicy: %v %v", lp, err)
	}
}

func TestCycleVisitsEveryElementOnce(t *testing.T) {
	for _, n := range []uint64{0, 1, 2, 3, 4, 7, 10, 100, 1000, 65535, 100003, 1 << 20} {
		for _, shards := range []int{1, 3} {
			for _, seed := range []int64{1, 42} {
				c, err := NewCycle(n, seed)
				if err != nil {
					t.Fatal(err)
				}
				seen := make([]bool, n)
				var count uint64
				for s := range shards {
					for x := range c.Shard(s, shards).All() {
						if x >= n {
							t.Fatalf("n=%d: element %d out of range", n, x)
						}
						if seen[x] {
							t.Fatalf("n=%d shards=%d seed=%d: %d visited twice", n, shards, seed, x)
						}
						seen[x] = true
						count++
					}
				}
				if count != n {
					t.Fatalf("n=%d shards=%d seed=%d: visited %d", n, shards, seed, count)
				}
			}
		}
	}
}

func TestCycleDeterministicAndRandom(t *testing.T) {
	first := func(seed int64) []uint64 {
		c, err := NewCycle(1000, seed)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		it := c.Shard(0, 1)
		for range 20 {
			x, _ := it.Next()
			out = append(out, x)
		}
		return out
	}
	if !slices.Equal(first(7), first(7)) {
		t.Fatal("same seed, different permutation")
	}
	if slices.Equal(first(7), first(8)) {
		t.Fatal("different seeds, same permutation")
	}
	c, _ := NewCycle(1000, 7)
	if c.Prime() != 1009 || c.N() != 1000 {
		t.Fatalf("prime %d", c.Prime())
	}
	big, err := NewCycle(uint64(1)<<32*65535, 3) // every (address, port) of IPv4
	if err != nil {
		t.Fatal(err)
	}
	if x, ok := big.Shard(0, 1).Next(); !ok || x >= big.N() {
		t.Fatalf("big cycle first element %d %v", x, ok)
	}
	if _, err := NewCycle(MaxCycle+1, 1); !errors.Is(err, ErrCycleSize) {
		t.Fatalf("oversized cycle: %v", err)
	}
}
