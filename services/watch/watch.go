// Package watch prints a stream as JSON lines: the example of a downstream
// consumer of gps.predictions.>, gps.results.> or gps.inventory.> (the
// service events).
package watch

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/wire"
)

// Config says what to print.
type Config struct {
	What   string // "predictions", "results" or "services"
	Phase  string // only this phase, or for services this event ("" = all)
	New    bool   // only messages published from now on
	Follow bool   // keep waiting for more at the end of the stream
	Limit  int    // stop after this many (0 = no limit)
}

// RegisterFlags registers the flags of Config.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	if c.What == "services" {
		fs.StringVar(&c.Phase, "event", "", "only this event: new, changed or gone (default all)")
	} else {
		fs.StringVar(&c.Phase, "phase", "", "only this phase: seed, priors, predicted or refresh (default all)")
	}
	fs.BoolVar(&c.New, "new", false, "only messages published from now on (default: from the start of the stream)")
	fs.BoolVar(&c.Follow, "follow", true, "keep waiting for new messages at the end of the stream")
	fs.IntVar(&c.Limit, "limit", 0, "stop after this many messages (0: no limit)")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.What == "services" {
		if e := c.Phase; e != "" && e != wire.EventNew && e != wire.EventChanged && e != wire.EventGone {
			return fmt.Errorf("--event %q: want new, changed or gone", e)
		}
		return nil
	}
	if c.What != "predictions" && c.What != "results" {
		return fmt.Errorf("watch %q: want predictions, results or services", c.What)
	}
	if c.Phase != "" && !wire.ValidPhase(c.Phase) {
		return fmt.Errorf("--phase %q: want seed, priors, predicted or refresh", c.Phase)
	}
	return nil
}

// Deps are what Run needs.
type Deps struct {
	Config Config
	Bus    *bus.Bus
	Log    *zap.Logger
	Out    io.Writer
}

// Run prints messages until ctx ends, the limit is reached, or (without
// Follow) the stream's end.
func Run(ctx context.Context, d Deps) error {
	c := d.Config
	if err := c.Validate(); err != nil {
		return err
	}
	stream, prefix := bus.StreamPredictions, wire.PredictionsPrefix
	switch c.What {
	case "results":
		stream, prefix = bus.StreamResults, wire.ResultsPrefix
	case "services":
		stream, prefix = bus.StreamInventory, wire.InventoryPrefix
	}
	filter := prefix + ">"
	if c.Phase != "" {
		filter = prefix + c.Phase
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}}
	if c.New {
		occ.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	read := d.Bus.CatchUp
	if c.Follow {
		read = d.Bus.Follow
	}
	out := bufio.NewWriter(d.Out)
	n := 0
	err := read(ctx, stream, occ, func(msg jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		out.Write(msg.Data())
		out.WriteByte('\n')
		n++
		if c.Limit > 0 && n >= c.Limit {
			return false, nil
		}
		if md.NumPending == 0 { // the end for now: shown before the wait for more
			return true, out.Flush()
		}
		return true, nil
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("watch %s: %w", stream, err)
	}
	return out.Flush()
}
