package gpsref

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/gpsscan/gps/pkg/row"
)

func i64(v int64) *int64   { return &v }
func str(s string) *string { return &s }
func intp(v int) *int      { return &v }

// svc builds a row; asn < 0 means null.
func svc(ip string, p int, asn int64, data, fp string) row.Row {
	r := row.Row{IP: ip, Port: p, Data: data, Fingerprint: fp}
	if asn >= 0 {
		r.ASN = i64(asn)
	}
	return r
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func TestFeatures(t *testing.T) {
	hex := "0a000000" // 10.0.0.x masked to /16 .. /22
	prefixes := func(h string) []string {
		var out []string
		for n := 16; n <= 22; n++ {
			out = append(out, fmt.Sprintf("s%d: %s", n, h))
		}
		return out
	}
	tests := []struct {
		name string
		r    row.Row
		want []string
	}{
		{
			name: "GPS.md 18-feature example",
			r:    svc("127.1.2.3", 22, 64500, "SSH-2.0-OpenSSH_8.9", "ssh"),
			want: []string{
				"http line: SSH-2.0-OpenSSH_8.9", "fingerprint: ssh", "ssh banner: SSH-2.0-OpenSSH_8.9",
				"s16: 7f010000", "s17: 7f010000", "s18: 7f010000", "s19: 7f010000",
				"s20: 7f010000", "s21: 7f010000", "s22: 7f010000",
				"L4", "asn: 64500",
				"16:http line: SSH-2.0-OpenSSH_8.9-7f010000", "16:fingerprint: ssh-7f010000",
				"16:ssh banner: SSH-2.0-OpenSSH_8.9-7f010000",
				"asn:http line: SSH-2.0-OpenSSH_8.9-asn: 64500", "asn:fingerprint: ssh-asn: 64500",
				"asn:ssh banner: SSH-2.0-OpenSSH_8.9-asn: 64500",
			},
		},
		{
			name: "null asn gives no asn features",
			r:    svc("127.1.2.3", 22, -1, "SSH-2.0-OpenSSH_8.9", "ssh"),
			want: append(prefixes("7f010000"),
				"http line: SSH-2.0-OpenSSH_8.9", "fingerprint: ssh", "ssh banner: SSH-2.0-OpenSSH_8.9", "L4",
				"16:http line: SSH-2.0-OpenSSH_8.9-7f010000", "16:fingerprint: ssh-7f010000",
				"16:ssh banner: SSH-2.0-OpenSSH_8.9-7f010000"),
		},
		{
			name: "prefix masking per length",
			r:    svc("192.168.255.255", 80, -1, "", ""),
			want: []string{
				"s16: c0a80000", "s17: c0a88000", "s18: c0a8c000", "s19: c0a8e000",
				"s20: c0a8f000", "s21: c0a8f800", "s22: c0a8fc00", "L4",
				"http line: ", "fingerprint: ",
				"16:http line: -c0a80000", "16:fingerprint: -c0a80000",
			},
		},
		{
			name: "window, multi-line data with duplicate line, asn 0",
			r: func() row.Row {
				r := svc("10.0.0.1", 80, 0, "HTTP/1.1 200 OK\r\nX: a\n\nX: a", "http")
				r.Window = i64(64240)
				return r
			}(),
			want: append(prefixes(hex), "L4", "asn: 0",
				"http line: HTTP/1.1 200 OK\r", "http line: X: a", "http line: ",
				"fingerprint: http", "window: 64240",
				"16:http line: HTTP/1.1 200 OK\r-"+hex, "16:http line: X: a-"+hex, "16:http line: -"+hex,
				"16:fingerprint: http-"+hex, "16:window: 64240-"+hex,
				"asn:http line: HTTP/1.1 200 OK\r-asn: 0", "asn:http line: X: a-asn: 0", "asn:http line: -asn: 0",
				"asn:fingerprint: http-asn: 0", "asn:window: 64240-asn: 0"),
		},
		{
			name: "tls cert and oids (7 chars excluded, 8 included)",
			r: func() row.Row {
				r := svc("10.0.0.1", 443, -1, "", "tls")
				r.TLSCert = str("CN=x")
				r.TLSOIDs = []string{"1.2.3.4", "1.2.3.45", "1.2.Ü.4", "1.2.3.45"}
				return r
			}(),
			want: append(prefixes(hex), "L4",
				"http line: ", "fingerprint: tls", "tls cert: CN=x", "tls oid: 1.2.3.45",
				"16:http line: -"+hex, "16:fingerprint: tls-"+hex, "16:tls cert: CN=x-"+hex,
				"16:tls oid: 1.2.3.45-"+hex),
		},
		{
			name: "tls with null cert has no cert feature",
			r: func() row.Row {
				r := svc("10.0.0.1", 443, 7, "", "tls")
				r.TLSOIDs = []string{"2.5.29.17"}
				return r
			}(),
			want: append(prefixes(hex), "L4", "asn: 7",
				"http line: ", "fingerprint: tls", "tls oid: 2.5.29.17",
				"16:http line: -"+hex, "16:fingerprint: tls-"+hex, "16:tls oid: 2.5.29.17-"+hex,
				"asn:http line: -asn: 7", "asn:fingerprint: tls-asn: 7", "asn:tls oid: 2.5.29.17-asn: 7"),
		},
		{
			name: "tls fields ignored unless fingerprint is tls; no ssh banner unless ssh",
			r: func() row.Row {
				r := svc("10.0.0.1", 443, -1, "SSH-2.0-x", "http")
				r.TLSCert = str("CN=x")
				r.TLSOIDs = []string{"2.5.29.17"}
				return r
			}(),
			want: append(prefixes(hex), "L4",
				"http line: SSH-2.0-x", "fingerprint: http",
				"16:http line: SSH-2.0-x-"+hex, "16:fingerprint: http-"+hex),
		},
		{
			name: "non-ASCII data",
			r:    svc("10.0.0.1", 22, 5, "Überwachung\n日本", "ssh"),
			want: append(prefixes(hex), "L4", "asn: 5",
				"http line: Überwachung", "http line: 日本", "fingerprint: ssh", "ssh banner: Überwachung\n日本",
				"16:http line: Überwachung-"+hex, "16:http line: 日本-"+hex, "16:fingerprint: ssh-"+hex,
				"16:ssh banner: Überwachung\n日本-"+hex,
				"asn:http line: Überwachung-asn: 5", "asn:http line: 日本-asn: 5", "asn:fingerprint: ssh-asn: 5",
				"asn:ssh banner: Überwachung\n日本-asn: 5"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := sorted(Features(tc.r))
			want := sorted(tc.want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Features mismatch\n got %q\nwant %q", got, want)
			}
		})
	}
	t.Run("example has exactly 18", func(t *testing.T) {
		if n := len(Features(tests[0].r)); n != 18 {
			t.Errorf("got %d features, want 18", n)
		}
	})
}

// fmtModel renders model rows one per line for comparison.
func fmtModel(m []ModelRow) []string {
	var out []string
	for _, r := range m {
		if r.P == nil {
			out = append(out, fmt.Sprintf("%s single p=%d c=%d s=%d h=%v f=%v", r.IP, r.NeededP, r.Count, r.Support, r.Hitrate, r.Feature))
			continue
		}
		out = append(out, fmt.Sprintf("%s pa=%d pb=%d c=%d s=%d h=%v f=%q", r.IP, *r.P, r.NeededP, r.Count, r.Support, r.Hitrate, *r.Feature))
	}
	sort.Strings(out)
	return out
}

func mrow(ip string, pa, pb, c, s int, f string) string {
	return fmt.Sprintf("%s pa=%d pb=%d c=%d s=%d h=%v f=%q", ip, pa, pb, c, s, float64(c)/float64(s), f)
}

func single(ip string, p int) string {
	return fmt.Sprintf("%s single p=%d c=0 s=0 h=0 f=<nil>", ip, p)
}

// pair is a host in 10.0.0.0/22 with http on 80 and tls on 443.
func pair(ip string) []row.Row {
	return []row.Row{svc(ip, 80, 64500, "x", "http"), svc(ip, 443, 64500, "", "tls")}
}

// many returns a host with rows on the given ports (same data everywhere).
func many(ip string, ports ...int) []row.Row {
	var out []row.Row
	for _, p := range ports {
		fp := "http"
		if p == 443 {
			fp = "tls"
		}
		data := "x"
		if p == 443 {
			data = ""
		}
		out = append(out, svc(ip, p, 64500, data, fp))
	}
	return out
}

func cat(parts ...[]row.Row) []row.Row {
	var out []row.Row
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestModel(t *testing.T) {
	fHTTP16 := "16:fingerprint: http-0a000000"
	fTLS16 := "16:fingerprint: tls-0a000000"
	pairRows := func(ips ...string) []string {
		var out []string
		for _, ip := range ips {
			out = append(out, mrow(ip, 80, 443, 3, 3, fTLS16), mrow(ip, 443, 80, 3, 3, fHTTP16))
		}
		return out
	}
	eleven := []int{80, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10} // no 443
	eleven443 := []int{80, 443, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	ten := []int{80, 443, 2, 3, 4, 5, 6, 7, 8, 9}

	// World E: hosts in distinct /16s and null asn, so only L4 and data
	// features reach count 3.
	worldE := func(asn int64) []row.Row {
		var out []row.Row
		for _, ip := range []string{"10.0.0.1", "11.0.0.1", "12.0.0.1"} {
			out = append(out, svc(ip, 80, asn, "Überwachung\n日本", "http"), svc(ip, 443, asn, "", "tls"))
		}
		for _, ip := range []string{"13.0.0.1", "14.0.0.1"} {
			out = append(out, svc(ip, 80, -1, "other", "http"), svc(ip, 22, -1, "SSH-2.0-x", "ssh"))
		}
		return out
	}

	tests := []struct {
		name    string
		seed    []row.Row
		hitrate float64
		want    []string
	}{
		{"count 2 is cut", cat(pair("10.0.0.1"), pair("10.0.0.2")), 1e-5, nil},
		{"count 3 is kept", cat(pair("10.0.0.1"), pair("10.0.0.2"), pair("10.0.0.3")), 1e-5,
			pairRows("10.0.0.1", "10.0.0.2", "10.0.0.3")},
		{"11-port host not counted in count",
			cat(pair("10.0.0.1"), pair("10.0.0.2"), many("10.0.0.9", eleven443...)), 1e-5, nil},
		{"11-port host not counted in support",
			cat(pair("10.0.0.1"), pair("10.0.0.2"), pair("10.0.0.3"), many("10.0.0.9", eleven...)), 1e-5,
			pairRows("10.0.0.1", "10.0.0.2", "10.0.0.3")},
		{"10-port host is kept",
			cat(pair("10.0.0.1"), pair("10.0.0.2"), many("10.0.0.9", ten...)), 1e-5,
			pairRows("10.0.0.1", "10.0.0.2", "10.0.0.9")},
		{"1-port host adds a single row",
			cat(pair("10.0.0.1"), pair("10.0.0.2"), pair("10.0.0.3"), many("10.0.1.1", 21), many("10.0.1.1", 21)), 1e-5,
			append(pairRows("10.0.0.1", "10.0.0.2", "10.0.0.3"), single("10.0.1.1", 21))},
		{"duplicate rows are not counted twice",
			cat(pair("10.0.0.1"), pair("10.0.0.1"), pair("10.0.0.2")), 1e-5, nil},
		{"duplicate rows are merged (extra features, same counts)",
			cat(pair("10.0.0.1"), []row.Row{svc("10.0.0.1", 80, 1, "y", "zzz")}, pair("10.0.0.2"), pair("10.0.0.3")), 1e-5,
			pairRows("10.0.0.1", "10.0.0.2", "10.0.0.3")},
		{"highest hitrate beats smaller feature",
			// 10.0.4.1 shares s16..s21 and all data features on port 80, not s22.
			cat(pair("10.0.0.1"), pair("10.0.0.2"), pair("10.0.0.3"), many("10.0.4.1", 80, 22)), 1e-5,
			[]string{
				mrow("10.0.0.1", 80, 443, 3, 3, fTLS16), mrow("10.0.0.1", 443, 80, 3, 3, "s22: 0a000000"),
				mrow("10.0.0.2", 80, 443, 3, 3, fTLS16), mrow("10.0.0.2", 443, 80, 3, 3, "s22: 0a000000"),
				mrow("10.0.0.3", 80, 443, 3, 3, fTLS16), mrow("10.0.0.3", 443, 80, 3, 3, "s22: 0a000000"),
			}},
		{"hitrate equal to threshold is dropped",
			cat(pair("10.0.0.1"), pair("10.0.0.2"), pair("10.0.0.3"), many("10.0.0.4", 80, 22)), 0.75,
			[]string{
				mrow("10.0.0.1", 80, 443, 3, 3, fTLS16),
				mrow("10.0.0.2", 80, 443, 3, 3, fTLS16),
				mrow("10.0.0.3", 80, 443, 3, 3, fTLS16),
			}},
		{"hitrate just above threshold is kept",
			cat(pair("10.0.0.1"), pair("10.0.0.2"), pair("10.0.0.3"), many("10.0.0.4", 80, 22)), 0.7499,
			[]string{
				mrow("10.0.0.1", 80, 443, 3, 3, fTLS16), mrow("10.0.0.1", 443, 80, 3, 4, fHTTP16),
				mrow("10.0.0.2", 80, 443, 3, 3, fTLS16), mrow("10.0.0.2", 443, 80, 3, 4, fHTTP16),
				mrow("10.0.0.3", 80, 443, 3, 3, fTLS16), mrow("10.0.0.3", 443, 80, 3, 4, fHTTP16),
			}},
		{"hitrate 1 with threshold 1 is dropped",
			cat(pair("10.0.0.1"), pair("10.0.0.2"), pair("10.0.0.3")), 1, nil},
		{"tie on hitrate: lower p_b wins over smaller f",
			func() []row.Row {
				var out []row.Row
				for _, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
					out = append(out, pair(ip)...)
					out = append(out, svc(ip, 8080, 64500, "x", "aaa"))
				}
				return out
			}(), 1e-5,
			func() []string {
				var out []string
				for _, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
					out = append(out,
						mrow(ip, 80, 443, 3, 3, fTLS16),
						mrow(ip, 443, 80, 3, 3, fHTTP16),
						mrow(ip, 8080, 80, 3, 3, fHTTP16))
				}
				return out
			}()},
		{"null asn, non-ASCII data, tie on f by byte order", worldE(-1), 1e-5,
			[]string{
				mrow("10.0.0.1", 80, 443, 3, 3, "L4"), mrow("10.0.0.1", 443, 80, 3, 3, "http line: Überwachung"),
				mrow("11.0.0.1", 80, 443, 3, 3, "L4"), mrow("11.0.0.1", 443, 80, 3, 3, "http line: Überwachung"),
				mrow("12.0.0.1", 80, 443, 3, 3, "L4"), mrow("12.0.0.1", 443, 80, 3, 3, "http line: Überwachung"),
			}},
		{"with asn the asn feature wins", worldE(7), 1e-5,
			[]string{
				mrow("10.0.0.1", 80, 443, 3, 3, "L4"), mrow("10.0.0.1", 443, 80, 3, 3, "asn: 7"),
				mrow("11.0.0.1", 80, 443, 3, 3, "L4"), mrow("11.0.0.1", 443, 80, 3, 3, "asn: 7"),
				mrow("12.0.0.1", 80, 443, 3, 3, "L4"), mrow("12.0.0.1", 443, 80, 3, 3, "asn: 7"),
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := fmtModel(Model(tc.seed, tc.hitrate))
			want := sorted(tc.want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Model mismatch\n got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

func TestPlan(t *testing.T) {
	mr := func(ip string, pb int, isSingle bool) ModelRow {
		m := ModelRow{IP: ip, NeededP: pb}
		if !isSingle {
			m.P, m.Feature = intp(1), str("L4")
		}
		return m
	}
	model := []ModelRow{
		mr("10.0.0.1", 80, false), mr("10.0.5.5", 80, false), mr("10.0.200.1", 80, false),
		mr("10.0.0.1", 443, false), mr("10.0.0.2", 443, false),
		mr("9.0.0.1", 80, true), mr("9.0.0.2", 80, true),
		mr("9.1.0.1", 22, false), mr("9.1.3.3", 22, false),
		mr("10.1.0.1", 80, false),
	}
	tests := []struct {
		name    string
		step    int
		hitrate float64
		want    []PlanRow
	}{
		{"step 16 just below 2/2^16", 16, 1.999 / 65536, []PlanRow{
			{80, "10.0.0.0/16", 3}, {22, "9.1.0.0/16", 2}, {80, "9.0.0.0/16", 2}, {443, "10.0.0.0/16", 2},
		}},
		{"step 16 equal to 2/2^16 is strict", 16, 2.0 / 65536, []PlanRow{{80, "10.0.0.0/16", 3}}},
		{"step 16 threshold 0 keeps all", 16, 0, []PlanRow{
			{80, "10.0.0.0/16", 3}, {22, "9.1.0.0/16", 2}, {80, "9.0.0.0/16", 2}, {443, "10.0.0.0/16", 2},
			{80, "10.1.0.0/16", 1},
		}},
		{"step 24 numeric prefix order", 24, 0, []PlanRow{
			{80, "9.0.0.0/24", 2}, {443, "10.0.0.0/24", 2},
			{22, "9.1.0.0/24", 1}, {22, "9.1.3.0/24", 1},
			{80, "10.0.0.0/24", 1}, {80, "10.0.5.0/24", 1}, {80, "10.0.200.0/24", 1}, {80, "10.1.0.0/24", 1},
		}},
		{"step 24 threshold 1/256", 24, 1.0 / 256, []PlanRow{{80, "9.0.0.0/24", 2}, {443, "10.0.0.0/24", 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Plan(model, tc.step, tc.hitrate)
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Plan mismatch\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestPredict(t *testing.T) {
	model := []ModelRow{
		{IP: "10.9.0.1", P: intp(443), NeededP: 80, Count: 3, Support: 3, Hitrate: 1, Feature: str("fingerprint: http")},
		{IP: "10.9.0.2", P: intp(443), NeededP: 80, Count: 3, Support: 3, Hitrate: 1, Feature: str("fingerprint: http")},
		{IP: "10.9.0.3", P: intp(8443), NeededP: 80, Count: 3, Support: 4, Hitrate: 0.75, Feature: str("http line: Überwachung")},
		{IP: "10.9.0.4", NeededP: 80},
		{IP: "10.9.0.5", P: intp(22), NeededP: 2222, Count: 3, Support: 3, Hitrate: 1, Feature: str("L4")},
	}
	seed := []row.Row{svc("10.2.0.1", 443, -1, "", "tls")}
	priors := []row.Row{
		svc("10.0.0.1", 80, 1, "a", "http"),             // -> 443 (plan covers port 80 only)
		svc("10.1.0.1", 80, 1, "", "http"),              // -> 443 covered by plan
		svc("10.1.0.1", 80, -1, "Überwachung", "ftp"),   // duplicate of the above: union -> 8443
		svc("10.1.1.1", 80, 1, "", "http"),              // -> 443 (covered only at step 16)
		svc("10.2.0.1", 80, 1, "", "http"),              // -> 443 is a seed service
		svc("10.3.0.1", 8080, 1, "Überwachung", "http"), // wrong port: nothing
		svc("10.4.0.1", 2222, -1, "", "ssh"),            // L4 -> 22
		svc("10.5.0.1", 80, 1, "Überwachung\nx", "ftp"), // -> 8443
		svc("10.6.0.1", 80, 1, "Überwachung!", "ftp"),   // no exact line match: nothing
	}
	tests := []struct {
		name string
		plan []PlanRow
		step int
		want []string
	}{
		{"step 16", []PlanRow{{443, "10.1.0.0/16", 5}, {80, "10.0.0.0/16", 9}}, 16,
			[]string{"10.0.0.1:443", "10.1.0.1:8443", "10.4.0.1:22", "10.5.0.1:8443"}},
		{"step 24", []PlanRow{{443, "10.1.0.0/24", 5}, {80, "10.0.0.0/24", 9}}, 24,
			[]string{"10.0.0.1:443", "10.1.0.1:8443", "10.1.1.1:443", "10.4.0.1:22", "10.5.0.1:8443"}},
		{"no plan", nil, 16,
			[]string{"10.0.0.1:443", "10.1.0.1:443", "10.1.0.1:8443", "10.1.1.1:443", "10.4.0.1:22", "10.5.0.1:8443"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Predict(model, tc.plan, priors, seed, tc.step)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Predict mismatch\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestEndToEnd chains Model, Plan and Predict on a tiny world.
func TestEndToEnd(t *testing.T) {
	seed := cat(pair("10.0.0.1"), pair("10.0.0.2"), pair("10.0.0.3"), many("10.0.1.1", 21))
	m := Model(seed, 1e-5)
	plan := Plan(m, 16, 3.5/65536) // only groups with >= 4 rows: none here
	if len(plan) != 0 {
		t.Fatalf("plan = %v, want empty", plan)
	}
	plan = Plan(m, 16, 0)
	wantPlan := []PlanRow{{80, "10.0.0.0/16", 3}, {443, "10.0.0.0/16", 3}, {21, "10.0.0.0/16", 1}}
	if !reflect.DeepEqual(plan, wantPlan) {
		t.Fatalf("plan = %v, want %v", plan, wantPlan)
	}
	priors := cat(
		[]row.Row{svc("10.0.0.1", 80, 64500, "x", "http")}, // seed service on 443: dropped
		[]row.Row{svc("10.0.7.7", 80, 64500, "x", "http")}, // covered by plan (443, 10.0.0.0/16)
	)
	if got := Predict(m, plan, priors, seed, 16); len(got) != 0 {
		t.Errorf("Predict = %q, want none", got)
	}
	if got, want := Predict(m, nil, priors, seed, 16), []string{"10.0.7.7:443"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Predict = %q, want %q", got, want)
	}
}
