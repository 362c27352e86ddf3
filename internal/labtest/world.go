package labtest

import (
	"testing"

	"github.com/gpsscan/gps/pkg/lab"
)

// World generates the lab world of c (zero fields taking their defaults),
// failing the test if it cannot.
func World(t testing.TB, c lab.Config) *lab.World {
	t.Helper()
	w, err := lab.Generate(c.WithDefaults())
	if err != nil {
		t.Fatalf("generate lab world: %v", err)
	}
	return w
}

// WriteWorld generates the lab world of c and writes it to a new temporary
// directory of the test, which it returns with the world.
func WriteWorld(t testing.TB, c lab.Config) (string, *lab.World) {
	t.Helper()
	w := World(t, c)
	dir := t.TempDir()
	if err := w.Write(dir); err != nil {
		t.Fatalf("write lab world: %v", err)
	}
	return dir, w
}
