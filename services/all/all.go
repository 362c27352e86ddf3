// Package all runs the four services in one process, as `gps all`: the
// seeder, modeler, predictor and prober, on one bus. With a world it runs
// the pipeline to the end (the seed imported, the plan swept, every
// prediction probed) and sums up what it found.
package all

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/gpsscan/gps/pkg/batch"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/labserve"
	"github.com/gpsscan/gps/pkg/netprobe"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/pkg/wire"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/predictor"
	"github.com/gpsscan/gps/services/prober"
	"github.com/gpsscan/gps/services/seeder"
)

// Config configures the whole pipeline.
type Config struct {
	World   string        // a world directory: import its seed, answer probes from its truth
	Hitrate float64       // GPS hitrate threshold (rules, plan groups, predictions)
	Step    int           // plan prefix length
	Latency time.Duration // world responder: latency per probe
	Loss    float64       // world responder: probability a service does not answer
	Quiet   time.Duration // how long every queue must stay empty before the run counts as done
	Live    bool          // serve the world as real listeners on 127/8 and probe them for real
	Engine  string        // live: "connect" (default) or "syn"
}

// RegisterFlags registers the flags of Config.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.World, "world", "", "world directory: import DIR/seed.jsonl as the seed and answer probes from DIR/truth.jsonl; the run ends when the pipeline is idle")
	fs.Float64Var(&c.Hitrate, "hitrate", batch.DefaultHitrate, "minimum hitrate of a rule, a plan group and a prediction")
	fs.IntVar(&c.Step, "step", batch.DefaultStep, "prefix length of the priors plan groups")
	fs.DurationVar(&c.Latency, "latency", 0, "world responder: latency of each probe")
	fs.Float64Var(&c.Loss, "loss", 0, "world responder: probability that a service does not answer")
	fs.BoolVar(&c.Live, "live", false, "with --world: serve the world as real TCP listeners on its 127.0.0.0/8 addresses and probe them for real (zgrab2 grabs)")
	fs.StringVar(&c.Engine, "engine", netprobe.EngineConnect, "with --live: connect (TCP connect, no privileges) or syn (raw-socket SYN scan, needs CAP_NET_RAW)")
	fs.DurationVar(&c.Quiet, "quiet", time.Second, "how long the queues must stay empty before a world run is done")
}

// Deps are what Run needs.
type Deps struct {
	Config Config
	Bus    *bus.Bus
	Log    *zap.Logger
	// Metrics, optional, are shared by the four services (one registry for
	// the process). The modeler and the predictor both set the model gauges:
	// in one process they hold the same model, up to their lag.
	Metrics *telemetry.Metrics
	Ready   func() // optional: called once the modeler, predictor and prober consume
}

// Summary is the last line of a world run.
type Summary struct {
	ServicesFound int     `json:"services_found"`
	Probes        uint64  `json:"probes"`
	Coverage      float64 `json:"coverage"`
	Predictions   int     `json:"predictions"`
}

// Stats holds the services' counters.
type Stats struct {
	Seeder    seeder.Stats
	Modeler   modeler.Stats
	Predictor predictor.Stats
	Prober    prober.Stats
}

// Run runs every service until ctx ends or, with a world, until the pipeline
// is done; then it returns the summary (nil without a world).
func Run(ctx context.Context, d Deps) (*Summary, *Stats, error) {
	c := d.Config
	if err := d.Bus.Setup(ctx); err != nil {
		return nil, nil, err
	}
	st := &Stats{}
	svcCtx, stop := context.WithCancel(ctx)
	defer stop()
	g, gctx := errgroup.WithContext(svcCtx)
	mc := modeler.Config{Hitrate: c.Hitrate, Step: c.Step}.WithDefaults()
	pc := predictor.Config{Hitrate: c.Hitrate}.WithDefaults()
	rc := prober.Config{World: c.World, Latency: c.Latency, Loss: c.Loss, Hitrate: c.Hitrate, Step: c.Step}
	if c.Live {
		if c.World == "" {
			return nil, nil, errors.New("run all: --live needs --world (the lab to serve)")
		}
		lab, err := labserve.Serve(ctx, c.World, labserve.Options{}, d.Log.With(zap.String("service", "lab")))
		if err != nil {
			return nil, nil, fmt.Errorf("run all: serve the lab: %w", err)
		}
		defer lab.Close()
		rc.LiveConfig = LabLive
		if c.Engine != "" {
			rc.Engine = c.Engine
		}
		rc.Pfx2AS = filepath.Join(c.World, "pfx2as.tsv")
		rc.World = "" // the answers come from the network now
		rc.Allow = []string{prober.LabAllow}
	}
	rc = rc.WithDefaults()
	// Ready once the three long-running services consume.
	var waiting atomic.Int32
	waiting.Store(3)
	ready := func() {
		if waiting.Add(-1) == 0 && d.Ready != nil {
			d.Ready()
		}
	}
	g.Go(func() error {
		return modeler.Run(gctx, modeler.Deps{Config: mc, Bus: d.Bus, Log: d.Log.With(zap.String("service", "modeler")), Stats: &st.Modeler,
			Metrics: d.Metrics, Ready: ready})
	})
	g.Go(func() error {
		return predictor.Run(gctx, predictor.Deps{Config: pc, Bus: d.Bus, Log: d.Log.With(zap.String("service", "predictor")), Stats: &st.Predictor,
			Metrics: d.Metrics, Ready: ready})
	})
	g.Go(func() error {
		return prober.Run(gctx, prober.Deps{Config: rc, Bus: d.Bus, Log: d.Log.With(zap.String("service", "prober")), Stats: &st.Prober,
			Metrics: d.Metrics, Ready: ready})
	})
	if c.World != "" {
		sc := seeder.Config{Import: lab.WorldFile(c.World, lab.SeedFile)}.WithDefaults()
		g.Go(func() error {
			return seeder.Run(gctx, seeder.Deps{Config: sc, Bus: d.Bus, Log: d.Log.With(zap.String("service", "seeder")), Stats: &st.Seeder,
				Metrics: d.Metrics})
		})
	}
	if c.World == "" {
		return nil, st, ignoreCanceled(g.Wait())
	}
	// A world run: wait until the pipeline is idle, then stop the services.
	doneErr := make(chan error, 1)
	go func() { doneErr <- WaitIdle(gctx, d.Bus, c.Quiet, d.Log) }()
	var idleErr error
	select {
	case idleErr = <-doneErr:
	case <-gctx.Done():
	}
	stop()
	if err := ignoreCanceled(g.Wait()); err != nil {
		return nil, st, err
	}
	if idleErr != nil && !errors.Is(idleErr, context.Canceled) {
		return nil, st, idleErr
	}
	if ctx.Err() != nil {
		return nil, st, ctx.Err()
	}
	sum, err := Summarize(ctx, d.Bus, c.World, st.Prober.Probes.Load())
	return sum, st, err
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// requestTimeout bounds each look at the streams of WaitIdle.
const requestTimeout = 5 * time.Second

// LabLive is the live engine of a run on the served lab. Loopback has no
// round trip and no loss, so the waits are short and the rates high: a
// service that waits for the client (HTTP, TLS) costs BannerWait, a silent
// one BannerWait+Timeout. The world's truth counts services that send
// nothing, so they are kept (LZR-style filtering would drop them) to
// compare with truth.
var LabLive = prober.LiveConfig{Live: true, Engine: netprobe.EngineConnect, Rate: 50000, ProbeConcurrency: 1024,
	Timeout: time.Second, BannerWait: 250 * time.Millisecond, Retries: 1, KeepEmpty: true}

// WaitIdle returns once the seed is in, the plan is published, and every
// stream's consumers exist and have nothing pending or unacknowledged, with
// no stream growing, for the quiet period. A look that fails while the
// cluster is unavailable (bus.Transient) is tried again.
func WaitIdle(ctx context.Context, b *bus.Bus, quiet time.Duration, log *zap.Logger) error {
	kv, err := b.Control(ctx)
	if err != nil {
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	var since time.Time
	lastLog := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		// Each look bounded on its own: a request lost while a cluster
		// elects a leader must not wait for ctx's deadline.
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		_, err := kv.Get(rctx, bus.KeyPlan)
		var state string
		var idle bool
		if err == nil {
			state, idle, err = pipelineState(rctx, b)
		}
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, jetstream.ErrKeyNotFound):
			continue
		case ctx.Err() == nil && bus.Transient(err):
			last, since = "", time.Time{} // look again
			if time.Since(lastLog) > 5*time.Second {
				log.Warn("pipeline state unavailable", zap.Error(err))
				lastLog = time.Now()
			}
			continue
		default:
			return fmt.Errorf("wait for the pipeline: %w", err)
		}
		if time.Since(lastLog) > 5*time.Second {
			log.Info("pipeline progress", zap.String("state", state))
			lastLog = time.Now()
		}
		switch {
		case !idle || state != last:
			last, since = state, time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= quiet:
			log.Info("pipeline idle", zap.String("state", state))
			return nil
		}
	}
}

// consumersOf are the durable consumers each stream must have before its
// messages count as handled: a service still starting (loading a world or
// a snapshot) has not made its consumer yet, and its stream looks idle.
var consumersOf = map[string][]string{
	bus.StreamResults:     {modeler.Service, predictor.Service},
	bus.StreamTargets:     {prober.Durable},
	bus.StreamPredictions: {prober.Durable},
}

// pipelineState describes the streams and consumers; idle is true when every
// stream with messages has its consumers and none has anything pending or
// unacknowledged.
func pipelineState(ctx context.Context, b *bus.Bus) (string, bool, error) {
	idle := true
	state := ""
	for _, s := range []string{bus.StreamResults, bus.StreamTargets, bus.StreamPredictions} {
		str, err := b.JS.Stream(ctx, s)
		if err != nil {
			return "", false, fmt.Errorf("stream %s: %w", s, err)
		}
		info, err := str.Info(ctx)
		if err != nil {
			return "", false, fmt.Errorf("stream %s info: %w", s, err)
		}
		state += fmt.Sprintf("%s:%d ", s, info.State.LastSeq)
		lister := str.ListConsumers(ctx)
		missing := map[string]bool{}
		if info.State.LastSeq > 0 {
			for _, name := range consumersOf[s] {
				missing[name] = true
			}
		}
		for ci := range lister.Info() {
			delete(missing, ci.Name)
			if ci.NumPending > 0 || ci.NumAckPending > 0 || ci.NumRedelivered > 0 && ci.NumAckPending > 0 {
				idle = false
			}
			state += fmt.Sprintf("%s/%s:%d/%d ", s, ci.Name, ci.NumPending, ci.NumAckPending)
		}
		if err := lister.Err(); err != nil {
			return "", false, fmt.Errorf("list consumers of %s: %w", s, err)
		}
		for name := range missing {
			idle = false
			state += fmt.Sprintf("%s/%s:not-yet ", s, name)
		}
	}
	return state, idle, nil
}

// Summarize counts the distinct services in RESULTS and predictions in
// PREDICTIONS against the world's services; probes come from the prober.
func Summarize(ctx context.Context, b *bus.Bus, world string, probes uint64) (*Summary, error) {
	found := map[batch.Target]bool{}
	if err := EachMessage(ctx, b, bus.StreamResults, func(data []byte) {
		rs, _ := wire.DecodeResults(data) // a message of one result or a batch; a bad one counts nothing
		for _, r := range rs {
			if a, err := row.ParseAddr(r.IP); err == nil {
				found[batch.Target{Addr: a, Port: uint16(r.Port)}] = true
			}
		}
	}); err != nil {
		return nil, err
	}
	preds := map[batch.Target]bool{}
	if err := EachMessage(ctx, b, bus.StreamPredictions, func(data []byte) {
		if p, err := wire.DecodePrediction(data); err == nil {
			if a, err := row.ParseAddr(p.IP); err == nil {
				preds[batch.Target{Addr: a, Port: uint16(p.Port)}] = true
			}
		}
	}); err != nil {
		return nil, err
	}
	truth := map[batch.Target]bool{}
	if err := row.ReadFile(lab.WorldFile(world, lab.TruthFile), func(s row.Service) error {
		truth[batch.Target{Addr: s.Addr, Port: uint16(s.Port)}] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("count truth: %w", err)
	}
	s := &Summary{ServicesFound: len(found), Probes: probes, Predictions: len(preds)}
	if len(truth) > 0 {
		s.Coverage = float64(len(found)) / float64(len(truth))
	}
	return s, nil
}

// EachMessage reads a whole stream, as it is when the call starts, with an
// ordered consumer; fn sees each message once, in order. Requests that fail
// while the cluster is unavailable are retried (bus.Retry), and a consumer
// that stops delivering before the end (its server went away) is replaced
// by one that starts after the last message read. It never ends early
// without an error.
func EachMessage(ctx context.Context, b *bus.Bus, stream string, fn func([]byte)) error {
	info, err := streamInfo(ctx, b, stream)
	if err != nil {
		return err
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	var seen uint64 // the last sequence handed to fn
	deadline := time.Now().Add(bus.RetryFor)
	for {
		cfg := jetstream.OrderedConsumerConfig{}
		if seen > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seen+1
		}
		var cons jetstream.Consumer
		if err := b.Retry(ctx, "read "+stream, func(ctx context.Context) (err error) {
			rctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			cons, err = b.JS.OrderedConsumer(rctx, stream, cfg)
			return err
		}); err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		for empty := 0; empty < 2 && seen < last; {
			batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				if !bus.Transient(err) {
					return fmt.Errorf("read %s: %w", stream, err)
				}
				empty++
				continue
			}
			got := 0
			for msg := range batch.Messages() {
				md, err := msg.Metadata()
				if err != nil || md.Sequence.Stream <= seen {
					continue
				}
				got++
				seen = md.Sequence.Stream
				fn(msg.Data())
				if seen >= last {
					break // the end: do not wait for the rest of the batch
				}
			}
			if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) && !bus.Transient(err) {
				return fmt.Errorf("read %s: %w", stream, err)
			}
			if got == 0 {
				empty++
			} else {
				empty = 0
			}
		}
		if seen >= last {
			return nil
		}
		// No more deliveries before the end: are the rest gone?
		if info, err = streamInfo(ctx, b, stream); err != nil {
			return err
		}
		if info.State.Msgs == 0 || info.State.LastSeq <= seen {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("read %s: stuck after sequence %d of %d", stream, seen, last)
		}
	}
}

func streamInfo(ctx context.Context, b *bus.Bus, stream string) (*jetstream.StreamInfo, error) {
	var info *jetstream.StreamInfo
	if err := b.Retry(ctx, "read "+stream, func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		str, err := b.JS.Stream(rctx, stream)
		if err == nil {
			info, err = str.Info(rctx)
		}
		return err
	}); err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	return info, nil
}

// JSON renders the summary as one line.
func (s *Summary) JSON() string {
	b, _ := json.Marshal(s)
	return string(b)
}
