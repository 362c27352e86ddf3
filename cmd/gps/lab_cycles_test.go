package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/gpsscan/gps/pkg/lab"
)

func TestLabGenCyclesFlags(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cycles negative", []string{"lab", "gen", "--out", out, "--cycles", "-1"}, "--cycles -1"},
		{"cycles not a number", []string{"lab", "gen", "--out", out, "--cycles", "two"}, "--cycles"},
		{"cycles too many", []string{"lab", "gen", "--out", out, "--cycles", "10000"}, "cycles 10000 out of range"},
		{"churn negative", []string{"lab", "gen", "--out", out, "--churn", "-0.5"}, "--churn -0.5"},
		{"churn nan", []string{"lab", "gen", "--out", out, "--churn", "NaN"}, "--churn NaN"},
		{"serve cycle negative", []string{"lab", "serve", "--world", dir, "--cycle", "-1"}, "--cycle -1"},
		{"serve cycle-every negative", []string{"lab", "serve", "--world", dir, "--cycle-every", "-1s"}, "--cycle-every -1s"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantUsageError(t, tc.args, tc.want) })
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a rejected command wrote %s", out)
	}
}

func TestLabGenCycles(t *testing.T) {
	world := filepath.Join(t.TempDir(), "w")
	var stderr bytes.Buffer
	if code := run([]string{"lab", "gen", "--out", world, "--hosts", "2000", "--slash16s", "2", "--cycles", "3", "--churn", "2"}, &stderr); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	for k := 1; k <= 3; k++ {
		if _, err := os.Stat(lab.ChangesFile(world, k)); err != nil {
			t.Fatal(err)
		}
	}
	m, err := lab.ReadMeta(world)
	if err != nil || m.Cycles() != 3 || m.Params["churn"] != 2.0 || len(m.Changes) != 3 || m.Changes[0].Moved == 0 {
		t.Fatalf("meta: %v cycles, churn %v, %d counts, %v", m.Cycles(), m.Params["churn"], len(m.Changes), err)
	}
	// A cycle past the last is a usage error that says how many there are.
	wantUsageError(t, []string{"lab", "serve", "--world", world, "--cycle", "4"}, "cycles 0..3")

	// --churn 0: cycles without change.
	still := filepath.Join(t.TempDir(), "still")
	if code := run([]string{"lab", "gen", "--out", still, "--hosts", "500", "--slash16s", "1", "--cycles", "2", "--churn", "0"}, &stderr); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	for k := 1; k <= 2; k++ {
		if b, err := os.ReadFile(lab.ChangesFile(still, k)); err != nil || len(b) != 0 {
			t.Fatalf("churn 0, cycle %d: %d bytes of changes, %v", k, len(b), err)
		}
	}
}
