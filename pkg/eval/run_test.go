package eval_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// TestSummarizeRunCountsOnlyTheWorld: results the world does not have (a
// public address injected on the bus, a port the host does not answer on)
// are counted apart, never as services found, and coverage is of the
// world's services.
func TestSummarizeRunCountsOnlyTheWorld(t *testing.T) {
	dir, _ := labtest.WriteWorld(t, lab.Config{Seed: 3, Hosts: 200, Slash16s: 1, SeedFrac: 0.1})
	var truth []row.Service
	if err := row.ReadFile(filepath.Join(dir, lab.TruthFile), func(s row.Service) error {
		truth = append(truth, s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b := bustest.New(t)
	ctx := context.Background()
	publish := func(i int, ip string, port int) {
		r := wire.ResultFromRow(row.Row{IP: ip, Port: port}, wire.PhasePriors, time.Unix(0, 0), "test")
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, wire.ResultsSubject(wire.PhasePriors), fmt.Sprint("r", i), data); err != nil {
			t.Fatal(err)
		}
	}
	half := len(truth) / 2
	for i, s := range truth[:half] {
		publish(i, s.IP, s.Port)
	}
	publish(-1, "8.8.8.8", 53)              // outside the world and the allow list
	publish(-2, truth[0].IP, 1)             // a port the world's host does not answer on
	publish(-3, truth[1].IP, truth[1].Port) // a repeat: counted once
	sum, err := eval.SummarizeRun(ctx, b, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, s := range truth[:half] {
		want[fmt.Sprint(s.IP, ":", s.Port)] = true
	}
	all := map[string]bool{}
	for _, s := range truth {
		all[fmt.Sprint(s.IP, ":", s.Port)] = true
	}
	if sum.ServicesFound != len(want) || sum.Outside != 2 {
		t.Fatalf("found %d, outside %d; want %d and 2", sum.ServicesFound, sum.Outside, len(want))
	}
	if c := float64(len(want)) / float64(len(all)); sum.Coverage != c {
		t.Fatalf("coverage %v, want %v", sum.Coverage, c)
	}
}
