package features

import (
	"slices"
	"testing"

	"github.com/gpsscan/gps/pkg/row"
)

func svc(t *testing.T, line string) row.Service {
	t.Helper()
	s, err := row.Parse([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func strs(d *Dict, ids []ID) []string {
	var out []string
	for _, f := range ids {
		out = append(out, d.String(f))
	}
	slices.Sort(out)
	return out
}

func TestFeatures(t *testing.T) {
	tests := []struct {
		name string
		line string
		want []string
	}{
		{
			name: "GPS.md ssh example",
			line: `{"ip":"127.1.2.3","p":22,"asn":64500,"data":"SSH-2.0-OpenSSH_8.9","fingerprint":"ssh","w":null}`,
			want: []string{
				"http line: SSH-2.0-OpenSSH_8.9", "fingerprint: ssh", "ssh banner: SSH-2.0-OpenSSH_8.9",
				"s16: 7f010000", "s17: 7f010000", "s18: 7f010000", "s19: 7f010000", "s20: 7f010000", "s21: 7f010000", "s22: 7f010000",
				"L4", "asn: 64500",
				"16:http line: SSH-2.0-OpenSSH_8.9-7f010000", "16:fingerprint: ssh-7f010000", "16:ssh banner: SSH-2.0-OpenSSH_8.9-7f010000",
				"asn:http line: SSH-2.0-OpenSSH_8.9-asn: 64500", "asn:fingerprint: ssh-asn: 64500", "asn:ssh banner: SSH-2.0-OpenSSH_8.9-asn: 64500",
			},
		},
		{
			name: "tls with window, oids, null asn, repeated and empty lines",
			line: `{"ip":"127.200.255.9","p":443,"asn":null,"data":"a\n\na","fingerprint":"tls","w":64240,"tls_cert":"CN=x","tls_oids":["2.5.4.3","2.5.29.17"]}`,
			want: []string{
				"http line: a", "http line: ", "fingerprint: tls", "window: 64240", "tls cert: CN=x", "tls oid: 2.5.29.17",
				"16:http line: a-7fc80000", "16:http line: -7fc80000", "16:fingerprint: tls-7fc80000", "16:window: 64240-7fc80000",
				"16:tls cert: CN=x-7fc80000", "16:tls oid: 2.5.29.17-7fc80000",
				"s16: 7fc80000", "s17: 7fc88000", "s18: 7fc8c000", "s19: 7fc8e000", "s20: 7fc8f000", "s21: 7fc8f800", "s22: 7fc8fc00",
				"L4",
			},
		},
		{
			name: "non-ASCII data, empty fingerprint, tls fields ignored on http",
			line: `{"ip":"127.1.0.1","p":80,"asn":7,"data":"Überwachung 日本","fingerprint":"","w":0,"tls_cert":"c"}`,
			want: []string{
				"http line: Überwachung 日本", "fingerprint: ", "window: 0",
				"16:http line: Überwachung 日本-7f010000", "16:fingerprint: -7f010000", "16:window: 0-7f010000",
				"asn:http line: Überwachung 日本-asn: 7", "asn:fingerprint: -asn: 7", "asn:window: 0-asn: 7",
				"s16: 7f010000", "s17: 7f010000", "s18: 7f010000", "s19: 7f010000", "s20: 7f010000", "s21: 7f010000", "s22: 7f010000",
				"L4", "asn: 7",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDict()
			s := svc(t, tt.line)
			ids := d.Of(nil, &s, true)
			got := strs(d, ids)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("features\n got %q\nwant %q", got, want)
			}
			// Every ID parses back from its string, and lookups without
			// interning find the same IDs.
			for _, f := range ids {
				p, err := d.Parse(d.String(f), false)
				if err != nil || p != f {
					t.Errorf("Parse(%q) = %v, %v; want %v", d.String(f), p, err, f)
				}
			}
			if again := d.Of(nil, &s, false); !slices.Equal(again, ids) {
				t.Errorf("Of without interning differs")
			}
		})
	}
}

func TestOfWithoutInterningSkipsUnknown(t *testing.T) {
	d := NewDict()
	s := svc(t, `{"ip":"127.1.0.1","p":80,"asn":null,"data":"x","fingerprint":"http","w":null}`)
	ids := d.Of(nil, &s, false)
	if d.Len() != 0 {
		t.Fatalf("dictionary grew to %d", d.Len())
	}
	if got := len(ids); got != 8 { // s16..s22 and L4
		t.Fatalf("got %d features (%q), want the 8 network ones", got, strs(d, ids))
	}
}

func TestCompareIsByteOrder(t *testing.T) {
	d := NewDict()
	s := svc(t, `{"ip":"127.1.0.1","p":80,"asn":3,"data":"B\nA\nb","fingerprint":"http","w":5}`)
	ids := d.Of(nil, &s, true)
	byCompare := slices.Clone(ids)
	slices.SortFunc(byCompare, d.Compare)
	var got []string
	for _, f := range byCompare {
		got = append(got, d.String(f))
	}
	if !slices.IsSorted(got) {
		t.Fatalf("Compare order is not byte order: %q", got)
	}
}

func TestParseRejects(t *testing.T) {
	d := NewDict()
	for _, s := range []string{"", "L5", "s23: 7f010000", "s16: 7f010001", "16:x", "asn: x", "hello", "asn:fingerprint: x-asn: q"} {
		if _, err := d.Parse(s, true); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}
