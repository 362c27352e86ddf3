package prober

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/explore"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/schedule"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/pkg/wire"
)

// Timing of message handling.
const (
	retryDelay   = time.Second      // NakWithDelay after a transient error
	pullWait     = 2 * time.Second  // expiry of a pull request (and the longest wait for one on stop)
	ackWait      = 10 * time.Second // of the targets consumer: a delivery lost in flight, or a crashed prober's messages, come back after this
	keepAlive    = 3 * time.Second  // InProgress on every targets message held, so it is never redelivered meanwhile
	asyncWindow  = 256              // result messages in flight before waiting for acks
	maxAcks      = 256              // acks waiting for their confirmation
	pendingEvery = 5 * time.Second  // consumer lag gauge refresh
	// The messages a prober holds (their work in its scheduler, ordered
	// by yield across all of them): a plan message is up to 256 sweeps of
	// about 200 bytes each in the scheduler and its message about 10 KB; a
	// prediction about 450 bytes with its bare message (bus.Bare). The
	// replay holds every prediction; a prober that holds too few probes
	// what it holds while better ones wait on the server (on ipscan-norway
	// 16K held left the curve 7 points behind the replay's).
	maxHeldTargets     = 1024
	maxHeldPredictions = 1 << 18
	pullBatch          = 256                    // messages a pull request asks for
	maxPending         = 1 << 20                // scheduler items above which nothing more is pulled
	pendingPause       = 100 * time.Millisecond // between looks while the scheduler is that full
)

// PredictorDurable is the predictor's consumer on RESULTS, whose ack floor
// says which results its predictions are published for (see
// Config.AwaitPredictions).
const PredictorDurable = "predictor"

// ErrRefused is the reason of a dead-lettered target outside the policy.
var ErrRefused = errors.New("outside the allow policy")

// ErrTooLarge is the reason of a dead-lettered sweep of a prefix shorter
// than Config.Step: no plan group is that large (a 0.0.0.0/0 would be
// millions of probes).
var ErrTooLarge = errors.New("larger than a plan group")

// Run consumes targets and predictions until ctx ends, then returns nil
// (also when ctx ends while it is still starting).
func Run(ctx context.Context, d Deps) error {
	err := run(ctx, d)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

func run(ctx context.Context, d Deps) error {
	c, err := bus.CheckService(Durable, d.Config, d.Bus)
	if err != nil {
		return err
	}
	log := d.Log
	if log == nil {
		log = zap.NewNop()
	}
	if d.Stats == nil {
		d.Stats = new(Stats)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	pol, err := ipv4.LoadPolicy(c.Allow, c.AllowFile, c.BlockFile)
	if err != nil {
		return fmt.Errorf("run prober: %w", err)
	}
	log.Info("scan policy", zap.Stringer("allow", pol.Allow), zap.Uint64("allowed_addresses", pol.Count()))
	resp := d.Responder
	if resp == nil && c.Live {
		live, closeLive, err := newLive(c.LiveConfig, pol, d.Stats, log)
		if err != nil {
			return fmt.Errorf("run prober: %w", err)
		}
		defer closeLive()
		resp = live
	}
	if resp == nil {
		if c.World == "" {
			return fmt.Errorf("run prober: %w: no responder: give --live (probe the network) or --world (simulate one)", ErrConfig)
		}
		w, err := NewWorldResponder(c.World, WorldOptions{Latency: c.Latency, Loss: c.Loss, LossSeed: c.LossSeed})
		if err != nil {
			return fmt.Errorf("run prober: %w", err)
		}
		log.Info("world responder loaded", zap.String("world", c.World), zap.Int("services", w.Services()),
			zap.Duration("latency", c.Latency), zap.Float64("loss", c.Loss))
		resp = w
	}
	if err := d.Bus.Setup(ctx); err != nil {
		return fmt.Errorf("run prober: %w", err)
	}
	tc, err := d.Bus.Consumer(ctx, bus.StreamTargets, Durable, []string{wire.TargetsPrefix + ">"}, 0, maxHeldTargets, bus.WithAckWait(ackWait))
	if err != nil {
		return fmt.Errorf("run prober: %w", err)
	}
	pc, err := d.Bus.Consumer(ctx, bus.StreamPredictions, Durable, []string{wire.PredictionsPrefix + ">"}, 0, maxHeldPredictions, bus.WithAckWait(c.PredAckWait))
	if err != nil {
		return fmt.Errorf("run prober: %w", err)
	}
	p := &prober{c: c, bus: d.Bus, log: log, st: d.Stats, resp: resp, pol: pol, now: d.Now, m: d.Metrics, ackSem: make(chan struct{}, maxAcks),
		held: map[*held]struct{}{}, maxPreds: maxHeldPredictions, onSpent: d.OnBudget}
	// A world answers at memory speed: its clock is simulated, time =
	// probes sent / rate, so that a curve over time means what it would
	// on the Internet (and the results carry that time). Live, the engine
	// paces the packets by the wall clock.
	sc := schedule.Config{Budget: c.Budget, Done: p.done}
	if !c.Live && c.Rate > 0 {
		clock := schedule.NewSimClock(p.now())
		sc.Clock, sc.Rate = clock, c.Rate
		p.now = clock.Now
	}
	var seeded *explore.Seeded
	if c.Own.OwnSeed > 0 {
		seeded = &explore.Seeded{} // the own seed's addresses, left out of every chunk
		sc.Skip = seeded
	}
	if p.sched, err = schedule.New(sc); err != nil {
		return fmt.Errorf("run prober: %w", err)
	}
	if c.Own.OwnSeed > 0 {
		if p.own, err = newOwn(c, pol, p.sched, seeded, p.st); err != nil {
			return fmt.Errorf("run prober: %w", err)
		}
		defer p.own.log(log)
	}
	if p.m != nil {
		p.m.Init(Durable)
		p.handleTime = p.m.MessageHandle.WithLabelValues(Durable)
		p.deadLettered = p.m.DeadLettered.WithLabelValues(Durable)
	}
	// The work taken outlives ctx by the drain timeout at most.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	p.hctx = hctx
	stopDrain := context.AfterFunc(ctx, func() {
		p.stopping.Store(true)
		log.Info("stopping: finishing the messages begun", zap.Duration("drain_timeout", c.DrainTimeout))
		time.AfterFunc(c.DrainTimeout, hcancel)
	})
	defer stopDrain()
	if p.own != nil {
		// A restart takes up the earlier run's policy from RESULTS, before
		// any prediction is pulled (the seeded hosts and pseudo-hosts drop
		// theirs).
		restored, err := p.own.restore(ctx, d.Bus, &p.sent, log)
		if err != nil {
			return fmt.Errorf("run prober: %w", err)
		}
		if !restored {
			p.own.pol.Start()
		}
	}
	p.ref = newRefresher(p)
	if err := p.ref.takeUp(ctx); err != nil {
		return fmt.Errorf("run prober: %w", err)
	}
	p.predCons = pc
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		p.pull(gctx, tc, "targets", func(m jetstream.Msg) { p.pushTargets(hctx, m) }, nil)
		return nil
	})
	g.Go(func() error {
		p.pull(gctx, pc, "predictions", func(m jetstream.Msg) { p.pushPrediction(hctx, m) }, &p.predsIdle)
		return nil
	})
	g.Go(func() error { p.keepHeldAlive(hctx); return nil })
	p.st.RefreshCycle.Store(-1)
	p.refreshDone(-1)
	g.Go(func() error { p.retrying(gctx, "read known services", p.ref.read); return nil })
	g.Go(func() error { p.retrying(gctx, "watch the cycle", p.ref.watch); return nil })
	p.win = newWindow(0, 0)
	if c.AwaitPredictions > 0 && c.Concurrency > 1 {
		p.win = newWindow(1, uint64(max(c.ProbeConcurrency, 1)))
	}
	senders := sync.WaitGroup{}
	for range c.Concurrency {
		senders.Add(1)
		go func() {
			defer senders.Done()
			p.send(gctx, hctx)
		}()
	}
	if p.m != nil {
		for _, s := range []string{bus.StreamTargets, bus.StreamPredictions} {
			gauge := p.m.ConsumerPending.WithLabelValues(Durable, s)
			g.Go(func() error {
				d.Bus.PollPending(gctx, s, Durable, pendingEvery, func(n uint64) { gauge.Set(float64(n)) })
				return nil
			})
		}
	}
	if d.Ready != nil {
		d.Ready()
	}
	<-gctx.Done()
	senders.Wait()
	p.drain(hctx)
	hcancel() // the keep-alive ends: nothing is held any more
	err = g.Wait()
	p.ackWG.Wait()
	log.Info("prober stopped", zap.Uint64("probes", p.st.Probes.Load()), zap.Uint64("found", p.st.Found.Load()),
		zap.Uint64("refused", p.st.Refused.Load()), zap.Uint64("skipped", p.st.Skipped.Load()),
		zap.Uint64("released", p.st.Released.Load()))
	return err
}

type prober struct {
	c    Config
	bus  *bus.Bus
	log  *zap.Logger
	st   *Stats
	resp Responder
	pol  *ipv4.Policy
	now  func() time.Time

	m            *telemetry.Metrics // nil: no metrics
	handleTime   prometheus.Observer
	deadLettered prometheus.Counter
	stopping     atomic.Bool // ctx ended: no more lockstep waits
	ackSem       chan struct{}
	ackWG        sync.WaitGroup
	hctx         context.Context // the messages' context: outlives ctx by the drain timeout

	sched   *schedule.Scheduler
	sent    atomic.Uint64 // probes released to the senders: each result's Probes
	spent   sync.Once
	onSpent func()

	heldMu    sync.Mutex
	held      map[*held]struct{} // messages whose work is in the scheduler
	heldPreds int                // of which predictions
	maxPreds  int
	win       *window // the probes in flight, in lockstep

	// lockstep (await)
	predSeen atomic.Uint64 // highest PREDICTIONS stream sequence taken in

	own        *own         // the own seed's policy; nil: off
	ref        *refresher   // the known services of a continuous run
	cycleN     atomic.Int64 // the cycle the prober is in
	predictor  jetstream.Consumer
	predStream jetstream.Stream
	predCons   jetstream.Consumer // the shared predictions consumer
	predsIdle  atomic.Bool        // the predictions pull has taken in all it was given and waits for more
}

// ignoreCtx is err, or nil once ctx ended.
// retrying runs fn until ctx ends, again after retryDelay whenever it fails
// (a server of the cluster went away under its consumer or watcher): the
// refresh of a continuous run must not stop the prober, nor stop for good.
func (p *prober) retrying(ctx context.Context, what string, fn func(context.Context) error) {
	for ctx.Err() == nil {
		err := fn(ctx)
		if ctx.Err() != nil {
			return
		}
		p.log.Warn(what+": retrying", zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(retryDelay):
		}
	}
}
