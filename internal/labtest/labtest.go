// Package labtest serialises the tests that serve a lab world on loopback.
// Every lab world lives in 127.1.0.0/16 and up, and go test runs packages
// in parallel processes: a test that sweeps its own lab would find the
// listeners of another package's lab on the same addresses. Lock makes such
// tests take turns, across processes.
package labtest

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
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
