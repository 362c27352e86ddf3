package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/wire"
	"github.com/gpsscan/gps/services/inventory"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/predictor"
	"github.com/gpsscan/gps/services/prober"
	"github.com/gpsscan/gps/services/seeder"
)

func listCmd() command {
	return command{
		name:  "list",
		usage: "list the streaming services: what each reads and writes on the bus",
		flags: func(fs *flag.FlagSet) func(context.Context, *zap.Logger) error {
			return func(context.Context, *zap.Logger) error { return writeServices(os.Stdout) }
		},
	}
}

// writeServices writes the table of the services, from the names the code
// uses, so it cannot drift from what runs.
func writeServices(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	dlq := func(s string) string { return wire.DeadLetterPrefix + s }
	rows := [][3]string{
		{"service", "reads", "writes"},
		{seeder.Service, "a seed scan file (--import) or the allow list (sampled seed targets)",
			fmt.Sprintf("%s %s (an import) or %s %s (sampled), key %s/%s", bus.StreamResults, wire.ResultsSubject(wire.PhaseSeed),
				bus.StreamTargets, wire.TargetsSubject(wire.PhaseSeed), bus.ControlBucket, bus.KeySeed)},
		{modeler.Service, fmt.Sprintf("%s (durable %q), key %s/%s", bus.StreamResults, modeler.Service, bus.ControlBucket, bus.KeySeed),
			fmt.Sprintf("%s %s, key %s/%s, object %s/%s, %s", bus.StreamTargets, wire.TargetsSubject(wire.PhasePriors), bus.ControlBucket, bus.KeyPlan,
				bus.SnapshotBucket, modeler.SnapshotObject, dlq(modeler.Service))},
		{predictor.Service, fmt.Sprintf("%s (durable %q)", bus.StreamResults, predictor.Service),
			fmt.Sprintf("%s %s*, object %s/%s, %s", bus.StreamPredictions, wire.PredictionsPrefix, bus.SnapshotBucket, predictor.SnapshotObject, dlq(predictor.Service))},
		{prober.Durable, fmt.Sprintf("%s and %s (durable %q, shared by every prober)", bus.StreamTargets, bus.StreamPredictions, prober.Durable),
			fmt.Sprintf("%s %s*, %s", bus.StreamResults, wire.ResultsPrefix, dlq(prober.Durable))},
		{inventory.Service + " serve", fmt.Sprintf("%s (durable %q), key %s/%s", bus.StreamResults, inventory.Service, bus.ControlBucket, bus.KeyInventory),
			fmt.Sprintf("%s %s*, bucket %s, key %s/%s, %s", bus.StreamInventory, wire.InventoryPrefix, bus.InventoryBucket, bus.ControlBucket, bus.KeyInventory, dlq(inventory.Service))},
		{"all", "the five above in one process (an embedded NATS server unless --nats)", ""},
	}
	for _, r := range rows {
		if _, err := fmt.Fprintf(tw, "%s\t%s\t%s\n", r[0], r[1], r[2]); err != nil {
			return fmt.Errorf("write services: %w", err)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write services: %w", err)
	}
	return nil
}
