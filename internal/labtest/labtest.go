// Package labtest serialises the tests that serve a lab world on loopback.
// Every lab world lives in 127.1.0.0/16 and up, and go test runs packages
// in parallel processes: a test that sweeps its own lab would find the
// listeners of another package's lab on the same addresses. Lock makes such
// tests take turns, across processes.
package labtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/gpsscan/gps/pkg/row"
)

// Lock waits for the machine-wide lab lock (an flock on a file in the
// temporary directory) and holds it until t ends.
func Lock(t testing.TB) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "gps-lab-tests.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("lab lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("lab lock %s: %v", path, err)
	}
	t.Cleanup(func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}

// SameFields compares the fields a probed result must share with the lab
// world's truth (w excepted: the connect engine cannot see the SYN-ACK
// window; asn is not on the wire).
func SameFields(got, want row.Row) error {
	d := func(s *string) string {
		if s == nil {
			return "<nil>"
		}
		return strconv.Quote(*s)
	}
	switch {
	case got.IP != want.IP || got.Port != want.Port:
		return fmt.Errorf("address %s:%d, want %s:%d", got.IP, got.Port, want.IP, want.Port)
	case got.Fingerprint != want.Fingerprint:
		return fmt.Errorf("fingerprint %q, want %q (data %q)", got.Fingerprint, want.Fingerprint, want.Data)
	case got.Data != want.Data:
		return fmt.Errorf("data %q, want %q", got.Data, want.Data)
	case d(got.TLSCert) != d(want.TLSCert):
		return fmt.Errorf("tls_cert %s, want %s", d(got.TLSCert), d(want.TLSCert))
	case !slices.Equal(got.TLSOIDs, want.TLSOIDs):
		return fmt.Errorf("tls_oids %v, want %v", got.TLSOIDs, want.TLSOIDs)
	case got.Window != nil:
		return fmt.Errorf("w %d, want null from the connect engine", *got.Window)
	}
	return nil
}
