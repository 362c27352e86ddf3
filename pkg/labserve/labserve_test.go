package labserve

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
)

func TestMain(m *testing.M) {
	RunHelperIfRequested()
	os.Exit(m.Run())
}

func TestParseSubject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Attr
	}{
		{"", nil},
		{"CN=example.org", []Attr{{"CN", "example.org"}}},
		{"CN=FortiGate, O=Fortinet Ltd., OU=FortiGate", []Attr{{"CN", "FortiGate"}, {"O", "Fortinet Ltd."}, {"OU", "FortiGate"}}},
		{"CN=localhost.localdomain, O=SomeOrganization, OU=SomeOrganizationalUnit, L=SomeCity, ST=SomeState, C=--",
			[]Attr{{"CN", "localhost.localdomain"}, {"O", "SomeOrganization"}, {"OU", "SomeOrganizationalUnit"}, {"L", "SomeCity"}, {"ST", "SomeState"}, {"C", "--"}}},
		{"CN=a, b, O=c", []Attr{{"CN", "a, b"}, {"O", "c"}}},
		{"just a name", []Attr{{"CN", "just a name"}}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got := ParseSubject(tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("ParseSubject(%q) = %v, want %v", tc.in, got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("ParseSubject(%q) = %v, want %v", tc.in, got, tc.want)
				}
			}
		})
	}
}

func TestResponse(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		head       string // want, up to the empty line
		bodyLen    int
		bodyStart  string
	}{
		{"content-length", "HTTP/1.1 200 OK\nServer: nginx\nContent-Length: 1500", "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 1500", 1500, "\n<!--"},
		{"title", "HTTP/1.1 200 OK\nContent-Length: 300\n\n<title>Zürich</title>", "HTTP/1.1 200 OK\r\nContent-Length: 300", 300, "<title>Zürich</title>"},
		{"no length", "HTTP/1.1 403 Forbidden\nServer: x", "HTTP/1.1 403 Forbidden\r\nServer: x", -1, "<html>"},
		{"no body", "HTTP/1.1 304 Not Modified\nETag: \"x\"", "HTTP/1.1 304 Not Modified\r\nETag: \"x\"", 0, ""},
		{"chunked", "HTTP/1.1 200 OK\nTransfer-Encoding: chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", 5, "0\r\n\r\n"},
		{"not a head", "Server: thing\nhello", "HTTP/1.1 200 OK\r\nServer: thing\r\nContent-Length: 5", 5, "hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := string(Response(tc.data))
			head, body, ok := strings.Cut(b, "\r\n\r\n")
			if !ok || head != tc.head {
				t.Fatalf("head = %q, want %q", head, tc.head)
			}
			if tc.bodyLen >= 0 && len(body) != tc.bodyLen {
				t.Errorf("body is %d bytes, want %d", len(body), tc.bodyLen)
			}
			if !strings.HasPrefix(body, tc.bodyStart) {
				t.Errorf("body starts %q, want %q", body[:min(len(body), 20)], tc.bodyStart)
			}
			if strings.Count(body, "<title>") > strings.Count(tc.data, "<title>") {
				t.Errorf("body has a <title> the data has not")
			}
		})
	}
}

// testBase is the first /16 of this package's test worlds: they are moved
// from 127.1.0.0/16 up to 127.101.0.0/16 and beyond, so that they do not
// take the addresses of other packages' tests (netprobe serves 127.1.0.0/16)
// when go test runs packages in parallel.
const testBase = 100

// writeWorld generates a world, moves it testBase /16s up, and writes it
// into a temporary directory.
func writeWorld(t testing.TB, c lab.Config) (string, *lab.World) {
	t.Helper()
	w := labtest.World(t, c)
	for _, rs := range [][]row.Row{w.Truth, w.Seed} {
		for i := range rs {
			a, err := row.ParseAddr(rs[i].IP)
			if err != nil {
				t.Fatal(err)
			}
			rs[i].IP = row.FormatAddr(a + testBase<<16)
		}
	}
	dir := t.TempDir()
	if err := w.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir, w
}

// firstRows keeps the first row of each (ip, port), as the lab serves.
func firstRows(rows []row.Row) []row.Row {
	seen := map[string]bool{}
	var out []row.Row
	for _, r := range rows {
		k := r.IP + ":" + strconv.Itoa(r.Port)
		if !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out
}

func addrOf(r row.Row) string { return net.JoinHostPort(r.IP, strconv.Itoa(r.Port)) }

// check talks to one served row as a client would and compares the answer
// with the row.
func check(r row.Row, roots *x509.CertPool) error {
	c, err := net.DialTimeout("tcp4", addrOf(r), 2*time.Second)
	if err != nil {
		return fmt.Errorf("%s: %v", addrOf(r), err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	switch kindOf(r) {
	case kindClosed:
		if n, err := c.Read(make([]byte, 16)); n != 0 || !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s (closed): read %d, %v; want EOF", addrOf(r), n, err)
		}
	case kindSilent:
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var ne net.Error
		if n, err := c.Read(make([]byte, 16)); n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
			return fmt.Errorf("%s (silent): read %d, %v; want a timeout", addrOf(r), n, err)
		}
	case kindBanner:
		want := strings.ReplaceAll(r.Data, "\n", "\r\n") + "\r\n"
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
			return fmt.Errorf("%s (banner): got %q, %v; want %q", addrOf(r), got, err, want)
		}
	case kindHTTP:
		return checkHTTP(c, r, r.Data)
	case kindTLS:
		tc := tls.Client(c, &tls.Config{RootCAs: roots, ServerName: "ignored", InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("%s (tls): %v", addrOf(r), err)
		}
		leaf := tc.ConnectionState().PeerCertificates[0]
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots}); err != nil {
			return fmt.Errorf("%s (tls): leaf does not chain to the lab CA: %v", addrOf(r), err)
		}
		if got := subjectString(leaf); got != *r.TLSCert {
			return fmt.Errorf("%s (tls): subject %q, want %q", addrOf(r), got, *r.TLSCert)
		}
		if got := oidsOf(leaf); strings.Join(got, ",") != strings.Join(r.TLSOIDs, ",") {
			return fmt.Errorf("%s (tls): oids %v, want %v", addrOf(r), got, r.TLSOIDs)
		}
		switch {
		case strings.HasPrefix(r.Data, "HTTP/"):
			return checkHTTP(tc, r, r.Data)
		case r.Data != "":
			want := strings.ReplaceAll(r.Data, "\n", "\r\n") + "\r\n"
			got := make([]byte, len(want))
			if _, err := io.ReadFull(tc, got); err != nil || string(got) != want {
				return fmt.Errorf("%s (tls banner): got %q, %v; want %q", addrOf(r), got, err, want)
			}
		}
	}
	return nil
}

func checkHTTP(c net.Conn, r row.Row, data string) error {
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	var lines []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("%s (http): %v after %q", addrOf(r), err, lines)
		}
		l = strings.TrimSuffix(l, "\r\n")
		if l == "" {
			break
		}
		lines = append(lines, l)
	}
	head, _, _ := strings.Cut(data, "\n\n")
	if got := strings.Join(lines, "\n"); got != head {
		return fmt.Errorf("%s (http): head %q, want %q", addrOf(r), got, head)
	}
	return nil
}

func subjectString(c *x509.Certificate) string {
	keys := map[string]string{"2.5.4.3": "CN", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.6": "C"}
	var parts []string
	for _, at := range c.Subject.Names {
		parts = append(parts, keys[at.Type.String()]+"="+at.Value.(string))
	}
	return strings.Join(parts, ", ")
}

func oidsOf(c *x509.Certificate) []string {
	for _, e := range c.Extensions {
		if e.Id.Equal(row.OIDListExtension) {
			var list []asn1.ObjectIdentifier
			if _, err := asn1.Unmarshal(e.Value, &list); err != nil {
				return []string{"bad: " + err.Error()}
			}
			var out []string
			for _, o := range list {
				out = append(out, o.String())
			}
			return out
		}
	}
	return nil
}

// TestServe serves a small world in one process and in several, talks to
// every service as a client and checks the answers against the rows.
func TestServe(t *testing.T) {
	labtest.Lock(t) // the lab addresses are shared with other packages' tests
	dir, w := writeWorld(t, lab.Config{Seed: 1, Hosts: 300, Slash16s: 1, SeedFrac: 0.2})
	want := firstRows(w.Truth)
	for _, tc := range []struct {
		name      string
		per       int
		processes int
	}{
		{"one process", 0, 1},
		{"helpers", 300, 3}, // 745 services: this process and two helpers
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			l, err := Serve(ctx, dir, Options{MaxPerProcess: tc.per, IdleTimeout: 5 * time.Second}, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-l.Ready():
			default:
				t.Fatal("Ready not closed after Serve returned")
			}
			if l.Processes() != tc.processes {
				t.Errorf("processes = %d, want %d", l.Processes(), tc.processes)
			}
			if got := len(l.Services()) + len(l.Skipped()); got != len(want) {
				t.Fatalf("served %d + skipped %d, want %d services", len(l.Services()), len(l.Skipped()), len(want))
			}
			if l.Addresses() != w.Meta.Hosts {
				t.Errorf("addresses = %d, want %d", l.Addresses(), w.Meta.Hosts)
			}
			roots := x509.NewCertPool()
			roots.AddCert(l.CA())
			skipped := map[string]bool{}
			for _, r := range l.Skipped() {
				skipped[addrOf(r)] = true
			}
			var todo []row.Row
			for _, r := range want {
				if !skipped[addrOf(r)] {
					todo = append(todo, r)
				}
			}
			checkAll(t, todo, roots)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// Every listener is gone: the ports refuse.
			for _, r := range want[:20] {
				c, err := net.DialTimeout("tcp4", addrOf(r), time.Second)
				if err == nil {
					c.Close()
					t.Fatalf("%s still accepts after Close", addrOf(r))
				}
				if !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("%s after Close: %v, want connection refused", addrOf(r), err)
				}
			}
		})
	}
}

func TestServeRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		rows []row.Row
		want error
	}{
		{"public address", []row.Row{{IP: "192.0.2.1", Port: 80, Data: "x", Fingerprint: "unknown"}}, ErrNotLoopback},
		{"bad port", []row.Row{{IP: "127.1.0.1", Port: 0}}, row.ErrBadRow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ServeRows(context.Background(), tc.rows, Options{}, zap.NewNop())
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestServeLarge brings up a world of at least 20,000 services (more than
// this machine's file descriptors may allow one process: then helper
// processes serve the rest), checks a sample, and closes it.
func TestServeLarge(t *testing.T) {
	labtest.Lock(t) // the lab addresses are shared with other packages' tests
	if testing.Short() {
		t.Skip("a 20,000-service world takes a few seconds")
	}
	dir, w := writeWorld(t, lab.Config{Seed: 3, Hosts: 9000, Slash16s: 8, SeedFrac: 0.01})
	want := firstRows(w.Truth)
	if len(want) < 20000 {
		t.Fatalf("world has %d services, want at least 20000", len(want))
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	l, err := Serve(context.Background(), dir, Options{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	up := time.Since(start)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("%d services on %d addresses up in %v, %d process(es), %d skipped; this process: +%d MiB in use, %d goroutines",
		len(l.Services()), l.Addresses(), up, l.Processes(), len(l.Skipped()),
		(after.HeapInuse+after.StackInuse-before.HeapInuse-before.StackInuse)>>20, runtime.NumGoroutine())
	if got := len(l.Services()) + len(l.Skipped()); got != len(want) {
		t.Fatalf("served %d + skipped %d, want %d", len(l.Services()), len(l.Skipped()), len(want))
	}
	if len(l.Skipped()) > len(want)/1000 {
		t.Errorf("%d services skipped (address taken)", len(l.Skipped()))
	}
	roots := x509.NewCertPool()
	roots.AddCert(l.CA())
	served := l.Services()
	var sample []row.Row
	for i := 0; i < len(served); i += len(served) / 300 {
		sample = append(sample, served[i])
	}
	checkAll(t, append(sample, served[len(served)-1]), roots) // the last is a helper's
	start = time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("closed in %v", time.Since(start))
	for _, r := range []row.Row{served[0], served[len(served)/2], served[len(served)-1]} {
		if c, err := net.DialTimeout("tcp4", addrOf(r), time.Second); err == nil {
			c.Close()
			t.Fatalf("%s still accepts after Close", addrOf(r))
		}
	}
}

// checkAll checks rows, 64 at a time.
func checkAll(t *testing.T, rows []row.Row, roots *x509.CertPool) {
	t.Helper()
	sem := make(chan struct{}, 64)
	errs := make(chan error, len(rows))
	for _, r := range rows {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- check(r, roots)
		}()
	}
	bad := 0
	for range rows {
		if err := <-errs; err != nil {
			bad++
			if bad <= 10 {
				t.Error(err)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d services answered wrong", bad, len(rows))
	}
}
