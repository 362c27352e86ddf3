// Package bustest starts an embedded JetStream server for tests, listening
// on a random port of 127.0.0.1 so separate processes can join.
package bustest

import (
	"context"
	"testing"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
)

// New returns a bus on a fresh embedded server with the streams set up; it is
// closed when the test ends.
func New(t testing.TB) *bus.Bus {
	t.Helper()
	b, err := bus.Connect(context.Background(), bus.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Name: t.Name()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b
}

// Connect returns a second client of the same server (as a separate service would be).
func Connect(t testing.TB, url string) *bus.Bus {
	t.Helper()
	b, err := bus.Connect(context.Background(), bus.Config{URL: url, Name: t.Name()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
