package prober

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/pkg/wire"
)

// Timing of message handling.
const (
	retryDelay   = time.Second      // NakWithDelay after a transient error
	pullWait     = 2 * time.Second  // expiry of a pull request (and the longest wait for one on stop)
	ackWait      = 10 * time.Second // of the prober's consumers: a delivery lost in flight, or a crashed prober's messages, come back after this
	keepAlive    = 3 * time.Second  // InProgress on a message being handled, so it is never redelivered meanwhile
	asyncWindow  = 256              // result messages in flight before waiting for acks
	maxAcks      = 256              // acks waiting for their confirmation
	pendingEvery = 5 * time.Second  // consumer lag gauge refresh
)

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
	maxAck := max(64, 4*c.Concurrency)
	tc, err := d.Bus.Consumer(ctx, bus.StreamTargets, Durable, []string{wire.TargetsPrefix + ">"}, 0, maxAck, bus.WithAckWait(ackWait))
	if err != nil {
		return fmt.Errorf("run prober: %w", err)
	}
	pc, err := d.Bus.Consumer(ctx, bus.StreamPredictions, Durable, []string{wire.PredictionsPrefix + ">"}, 0, maxAck, bus.WithAckWait(ackWait))
	if err != nil {
		return fmt.Errorf("run prober: %w", err)
	}
	p := &prober{c: c, bus: d.Bus, log: log, st: d.Stats, resp: resp, pol: pol, now: d.Now, m: d.Metrics, ackSem: make(chan struct{}, maxAcks),
		probed: make(map[uint64]struct{}), swept: make(map[sweepKey]struct{}), sweeping: make(map[sweepKey]int)}
	if p.m != nil {
		p.m.Init(Durable)
		p.handleTime = p.m.MessageHandle.WithLabelValues(Durable)
		p.deadLettered = p.m.DeadLettered.WithLabelValues(Durable)
	}
	// The messages being handled outlive ctx by the drain timeout at most.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	stopDrain := context.AfterFunc(ctx, func() {
		p.stopping.Store(true)
		log.Info("stopping: finishing the messages being handled", zap.Duration("drain_timeout", c.DrainTimeout))
		time.AfterFunc(c.DrainTimeout, hcancel)
	})
	defer stopDrain()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.consume(gctx, hctx, tc, "targets", p.handleTargets) })
	g.Go(func() error { return p.consume(gctx, hctx, pc, "predictions", p.handlePrediction) })
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
	stopping     atomic.Bool // ctx ended: unfinished messages are nak'ed without delay
	ackSem       chan struct{}
	ackWG        sync.WaitGroup

	mu        sync.Mutex
	probed    map[uint64]struct{}   // (addr, port) probed by this prober
	swept     map[sweepKey]struct{} // (prefix, port) groups swept
	sweptBits [33]bool              // prefix lengths present in swept
	sweeping  map[sweepKey]int      // groups being swept now (by how many workers)
	sweepingN [33]int               // groups being swept now, by prefix length
}

// consume runs Concurrency workers on c until ctx ends; each message is
// handled with hctx, which outlives ctx by the drain timeout. Each worker
// pulls its next message itself (a pull request of one, expiring after
// pullWait), so the workers share no iterator and a lost pull costs at most
// pullWait. A pull is never abandoned while the server may still answer it:
// on stop, a worker waits for its pull to end and naks what it brings, so
// nothing is left buffered in the client or delivered to no one.
func (p *prober) consume(ctx, hctx context.Context, c jetstream.Consumer, what string, handle func(context.Context, jetstream.Msg)) error {
	var wg sync.WaitGroup
	for range p.c.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				msg, err := c.Next(jetstream.FetchMaxWait(pullWait))
				switch {
				case err == nil && ctx.Err() != nil:
					p.release(msg)
					return
				case err == nil:
					start := time.Now()
					stop := keepAliveWhile(msg)
					handle(hctx, msg)
					stop()
					if p.handleTime != nil {
						p.handleTime.Observe(time.Since(start).Seconds())
					}
				case ctx.Err() != nil:
					return
				case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
				default:
					p.log.Warn("pull message", zap.String("stream", what), zap.Error(err))
					select { // do not spin on a persistent error
					case <-ctx.Done():
					case <-time.After(retryDelay):
					}
				}
			}
		}()
	}
	wg.Wait()
	return nil
}
