// Package pipetest holds what the separate-process pipeline tests share: the
// gps binary built once per test process, service processes with their logs,
// a lab world, reading the streams, and the exact invariants every run must
// end with, crash or not (CheckExact).
package pipetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Hitrate is the GPS hitrate of every run here.
const Hitrate = 1e-5

var build struct {
	once sync.Once
	dir  string // removed by Main
	bin  string
	err  error
	out  []byte
}

// shared is what the tests of one process share: the world and the
// reference run on it.
var shared struct {
	mu    sync.Mutex
	world string
	ref   *Outcome
}

// Main runs the tests of a package that uses Binary and removes the binary
// afterwards: call it from TestMain.
func Main(m *testing.M) {
	// Child processes inherit the environment; make sure none picks up a
	// NATS URL or stream limits from the developer's shell.
	for _, v := range []string{"GPS_NATS_URL", "GPS_STREAM_MAX_AGE", "GPS_STREAM_MAX_BYTES"} {
		os.Unsetenv(v)
	}
	code := m.Run()
	for _, d := range []string{build.dir, shared.world} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

// Binary builds the gps binary once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		if build.dir, build.err = os.MkdirTemp("", "gps-bin-"); build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "gps")
		build.out, build.err = exec.Command("go", "build", "-o", build.bin, "github.com/gpsscan/gps/cmd/gps").CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("build gps: %v\n%s", build.err, build.out)
	}
	return build.bin
}
