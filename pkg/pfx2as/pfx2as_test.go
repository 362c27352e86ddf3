package pfx2as

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gpsscan/gps/pkg/row"
)

func TestWriteRead(t *testing.T) {
	pfx := []Prefix{{"0.0.0.0", 0, 1}, {"127.1.0.0", 16, 64512}, {"127.1.2.0", 24, 4294967295}}
	var b bytes.Buffer
	if err := Write(&b, pfx); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "p.tsv")
	if err := os.WriteFile(path, []byte("# a comment\n\n"+b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, pfx) {
		t.Fatalf("read back %v, want %v", back, pfx)
	}
}

func TestLookup(t *testing.T) {
	tab, err := NewTable([]Prefix{{"127.1.0.0", 16, 1}, {"127.1.2.0", 24, 2}, {"127.1.2.0", 24, 3}, {"127.2.0.0", 15, 4}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip  string
		asn int64
		ok  bool
	}{
		{"127.1.9.9", 1, true},   // only the /16
		{"127.1.2.9", 3, true},   // the /24 wins, its last line
		{"127.3.255.1", 4, true}, // the /15
		{"127.4.0.1", 0, false},
	} {
		a, err := row.ParseAddr(tc.ip)
		if err != nil {
			t.Fatal(err)
		}
		if asn, ok := tab.Lookup(a); asn != tc.asn || ok != tc.ok {
			t.Errorf("Lookup(%s) = %d, %v; want %d, %v", tc.ip, asn, ok, tc.asn, tc.ok)
		}
	}
	if _, err := NewTable([]Prefix{{"127.1.0.0", 33, 1}}); err == nil {
		t.Error("no error for a /33")
	}
}

func TestReadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
		line             int
	}{
		{"fields", "127.1.0.0\t16\n127.2.0.0\t16\n", "3 tab-separated", 1},
		{"address", "127.1.0.0\t16\t1\n# comment\n\n127.1.0.x\t16\t2\n", "not an IPv4", 4},
		{"len", "127.1.0.0\t33\t1\n", "len", 1},
		{"host bits", "127.1.0.0\t16\t1\n127.1.2.0\t16\t1\n", "beyond /16", 2},
		{"asn", "127.1.0.0\t16\t-1\n", "asn", 1},
		{"asn set", "127.1.0.0\t16\t1_2\n", "asn", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.tsv")
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Read(path)
			var le *row.LineError
			if !errors.As(err, &le) || le.Line != tc.line || le.File != path || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %s:%d ... %s", err, path, tc.line, tc.want)
			}
		})
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("no error for a missing file")
	}
}
