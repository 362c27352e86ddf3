package row

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gzRows writes n rows gzipped and returns the compressed bytes.
func gzRows(t *testing.T, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for i := range n {
		fmt.Fprintf(zw, `{"ip":"127.1.%d.%d","p":80,"data":"HTTP/1.1 200 OK %d"}`+"\n", i/256, i%256, i)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBadGzip: a corrupt or truncated .gz is reported as the compression's
// fault (ErrGzip), naming the file and the line it was reached at, not as a
// bad row where the data stopped.
func TestBadGzip(t *testing.T) {
	good := gzRows(t, 20000)
	corrupt := bytes.Clone(good)
	for i := len(corrupt) / 2; i < len(corrupt)/2+64; i++ {
		corrupt[i] ^= 0x55
	}
	badSum := bytes.Clone(good)
	badSum[len(badSum)-8] ^= 0xff // the CRC-32 of the trailer
	for name, data := range map[string][]byte{
		"truncated":         good[:len(good)/2],
		"truncated trailer": good[:len(good)-4],
		"corrupt":           corrupt,
		"bad checksum":      badSum,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seed.jsonl.gz")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			n := 0
			err := ReadFile(path, func(Service) error { n++; return nil })
			var le *LineError
			if !errors.As(err, &le) || le.File != path || !errors.Is(err, ErrGzip) || errors.Is(err, ErrBadRow) {
				t.Fatalf("error %v, want a *LineError of %s wrapping ErrGzip", err, path)
			}
			if le.Line < n+1 || !strings.HasPrefix(err.Error(), fmt.Sprintf("%s:%d: gzip:", path, le.Line)) {
				t.Fatalf("error %q after %d rows, want %s:LINE: gzip: ... at the line reached", err, n, path)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "seed.jsonl.gz")
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if rs, err := ReadAll(path); err != nil || len(rs) != 20000 {
		t.Fatalf("good file: %d rows, %v", len(rs), err)
	}
}

// TestLongLine: a line over MaxLine bytes is an error at its line, however
// long it is; a row of MaxLine bytes reads.
func TestLongLine(t *testing.T) {
	row := func(size int) string {
		head := `{"ip":"127.1.0.1","p":80,"data":"`
		return head + strings.Repeat("x", size-len(head)-2) + `"}`
	}
	for _, tc := range []struct {
		name string
		size int
		ok   bool
	}{
		{"at the limit", MaxLine, true},
		{"one over", MaxLine + 1, false},
		{"ten MB", 10 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := `{"ip":"127.1.0.2","p":22}` + "\n" + row(tc.size) + "\r\n" + `{"ip":"127.1.0.3","p":22}` + "\n"
			n := 0
			err := Scan(strings.NewReader(in), "f.jsonl", func(Service) error { n++; return nil })
			if tc.ok {
				if err != nil || n != 3 {
					t.Fatalf("%d rows, %v", n, err)
				}
				return
			}
			var le *LineError
			if !errors.Is(err, ErrLongLine) || !errors.As(err, &le) || le.Line != 2 || n != 1 {
				t.Fatalf("error %v after %d rows, want f.jsonl:2: %v", err, n, ErrLongLine)
			}
		})
	}
}
