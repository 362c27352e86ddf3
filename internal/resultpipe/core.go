package resultpipe

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/telemetry"
)

// Stats are the counters every results consumer keeps; safe to read while
// it runs.
type Stats struct {
	Results     atomic.Int64  // results applied to the model (a message may carry many)
	Bad         atomic.Int64  // messages dead-lettered, whole
	Redelivered atomic.Int64  // deliveries of messages already applied (acked and skipped)
	Snapshots   atomic.Int64  // snapshots stored
	Seq         atomic.Uint64 // RESULTS stream sequence of the last message processed (the predictor: and acknowledged)
	Resyncs     atomic.Int64  // consumer restarts after a gap in the deliveries
}

// Core is what the modeler and the predictor share around their own state:
// the durable consumer's position, the screening of messages before they
// are applied, the held cumulative ack, the metrics, and the snapshots.
// It is owned by the service's one applying goroutine.
type Core struct {
	Bus     *bus.Bus
	Service string // durable consumer, snapshot object, dead-letter subject
	Log     *zap.Logger
	Stats   *Stats
	Seq     uint64 // RESULTS sequence of the last message processed
	Snap    Snapshotter
	Policy  *ipv4.Policy // results outside are dead-lettered (nil: none are)

	metrics      *telemetry.Metrics // nil: no metrics
	resultsIn    map[string]prometheus.Counter
	deadLettered prometheus.Counter
	handleTime   prometheus.Observer
	lastGauges   time.Time
	held         jetstream.Msg // processed, not yet acked (see Hold)
}

// Config is the Config of a results consumer: a service's config
// (bus.ServiceConfig) with a ConsumerConfig in it.
type Config[C any] interface {
	bus.ServiceConfig[C]
	Consumer() ConsumerConfig
}

// Start is the start the results consumers' Run share: it returns c with
// its defaults and checked (bus.CheckService; a config error as it is, for
// the caller's errors.Is) and a Core on the scan policy of c's lists.
func Start[C Config[C]](service string, c C, b *bus.Bus, log *zap.Logger, st *Stats, metrics *telemetry.Metrics) (C, *Core, error) {
	c, err := bus.CheckService(service, c, b)
	if err != nil {
		return c, nil, err
	}
	policy, err := c.Consumer().Policy()
	if err != nil {
		return c, nil, fmt.Errorf("run %s: %w", service, err)
	}
	core := NewCore(b, service, log, st, metrics)
	core.Policy = policy
	return c, core, nil
}

// NewCore returns a Core for service; metrics may be nil.
func NewCore(b *bus.Bus, service string, log *zap.Logger, st *Stats, metrics *telemetry.Metrics) *Core {
	if log == nil {
		log = zap.NewNop()
	}
	c := &Core{Bus: b, Service: service, Log: log, Stats: st, metrics: metrics}
	c.Snap.log, c.Snap.stored = log, &st.Snapshots
	if metrics != nil {
		metrics.Init(service)
		c.resultsIn = make(map[string]prometheus.Counter)
		for _, p := range telemetry.Phases() {
			c.resultsIn[p] = metrics.ResultsIn.WithLabelValues(service, p)
		}
		c.deadLettered = metrics.DeadLettered.WithLabelValues(service)
		c.handleTime = metrics.MessageHandle.WithLabelValues(service)
	}
	return c
}

// Metrics are the service's metrics, nil without.
func (c *Core) Metrics() *telemetry.Metrics { return c.metrics }

// Lag is the gauge of the consumer's lag on RESULTS, nil without metrics.
func (c *Core) Lag() prometheus.Gauge {
	if c.metrics == nil {
		return nil
	}
	return c.metrics.ConsumerPending.WithLabelValues(c.Service, bus.StreamResults)
}

// SetSeq sets the sequence of the last message processed.
func (c *Core) SetSeq(seq uint64) {
	c.Seq = seq
	c.Stats.Seq.Store(seq)
}

// Skip reports whether a message is not to be applied: one without
// JetStream metadata (logged and ignored), or a redelivery of one already
// processed (acked again).
func (c *Core) Skip(it *Item) bool {
	if it.NoMeta {
		c.Log.Warn("message without jetstream metadata: ignored", zap.String("subject", it.Msg.Subject()), zap.Error(it.Err))
		return true
	}
	if it.Seq <= c.Seq {
		c.Stats.Redelivered.Add(1)
		_ = it.Msg.Ack()
		return true
	}
	return false
}

// DeadLetter sends a message that cannot be applied (it.Err) to the
// service's dead-letter subject and counts it; the caller then treats it as
// processed. A dead letter that cannot be sent is logged and skipped, but
// not while stopping: then ctx's error comes back and the message is left
// to the next run.
func (c *Core) DeadLetter(ctx context.Context, it *Item) error {
	if err := c.Bus.DeadLetter(ctx, c.Service, it.Msg, it.Err); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.Log.Error("dead-letter failed: bad results message skipped", zap.Uint64("seq", it.Seq), zap.String("subject", it.Msg.Subject()),
			zap.NamedError("reason", it.Err), zap.Error(err))
	} else {
		c.Log.Warn("bad results message dead-lettered", zap.Uint64("seq", it.Seq), zap.String("subject", it.Msg.Subject()), zap.Error(it.Err))
		if c.deadLettered != nil {
			c.deadLettered.Inc()
		}
	}
	c.Stats.Bad.Add(1)
	return nil
}

// CountResults counts the results of a message applied.
func (c *Core) CountResults(rs []Result) {
	for i := range rs {
		if m := c.resultsIn[rs[i].Phase]; m != nil {
			m.Inc()
		}
	}
	c.Stats.Results.Add(int64(len(rs)))
	c.Snap.Since += len(rs)
}

// progressInterval is how often Progress logs.
const progressInterval = 5 * time.Second

// Progress returns the progress logger of RunLoop: every few seconds while
// results come, their count, the fields of extra, the bad messages, the
// sequence and the rate.
func (c *Core) Progress(extra func() []zap.Field) func(stop <-chan struct{}) {
	return func(stop <-chan struct{}) {
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		last, lastT := c.Stats.Results.Load(), time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				n := c.Stats.Results.Load()
				if n == last {
					continue
				}
				fields := []zap.Field{zap.Int64("results", n)}
				if extra != nil {
					fields = append(fields, extra()...)
				}
				fields = append(fields, zap.Int64("bad", c.Stats.Bad.Load()), zap.Uint64("seq", c.Stats.Seq.Load()),
					zap.Float64("results_per_second", float64(n-last)/now.Sub(lastT).Seconds()))
				c.Log.Info("progress", fields...)
				last, lastT = n, now
			}
		}
	}
}

// Observe records how long messages took from the reader to done.
func (c *Core) Observe(recv ...time.Time) {
	if c.handleTime == nil {
		return
	}
	now := time.Now()
	for _, t := range recv {
		c.handleTime.Observe(now.Sub(t).Seconds())
	}
}

// Hold acknowledges what is processed up to msg. The consumer's acks are
// cumulative: acking the message held so far acknowledges everything before
// it; msg is held unacked until the next Hold, or until ConfirmAcks has the
// server confirm its ack (and so all of them). A plain ack lost with a
// server that goes away is made good by the next one.
func (c *Core) Hold(msg jetstream.Msg) {
	if msg == nil || msg == c.held {
		return
	}
	if c.held != nil {
		if err := c.held.Ack(); err != nil {
			c.Log.Debug("ack failed", zap.Error(err))
		}
	}
	c.held = msg
}

// ConfirmAcks acks the held message and waits for the server to confirm it.
func (c *Core) ConfirmAcks(ctx context.Context) {
	if c.held == nil {
		return
	}
	if err := bus.ConfirmAck(ctx, c.Log, c.held); err != nil {
		c.Log.Warn("ack not confirmed", zap.Error(err))
	}
	c.held = nil
}

// DropHeld forgets the held message: its consumer is being recreated, and
// there is nothing to ack on the old one.
func (c *Core) DropHeld() { c.held = nil }

// gaugeInterval is how often the model gauges are refreshed.
const gaugeInterval = 5 * time.Second

// UpdateGauges sets the model gauges, every gaugeInterval (or now, with
// force).
func (c *Core) UpdateGauges(m *model.Model, force bool) {
	if c.metrics == nil || m == nil || !force && time.Since(c.lastGauges) < gaugeInterval {
		return
	}
	c.lastGauges = time.Now()
	ms := m.Stats()
	c.metrics.ModelKeys.Set(float64(ms.Keys))
	c.metrics.ModelHosts.Set(float64(ms.Hosts))
	c.metrics.ModelBytes.Set(float64(m.SizeInBytes()))
}

// Snapshotter stores snapshots of a service's state in the background, one
// upload at a time, and the last one on stop.
type Snapshotter struct {
	// Encode writes the state, which covers RESULTS up to seq.
	Encode func(w io.Writer, seq uint64) error
	// Put stores an encoded snapshot, replacing the last one.
	Put func(ctx context.Context, data []byte) error
	// Stored, when set, runs after a snapshot is encoded (the gauges).
	Stored func()

	SnapSeq  uint64    // the sequence the last stored (or storing) snapshot covers
	Since    int       // results since that snapshot
	LastSnap time.Time // when it was taken

	log    *zap.Logger
	stored *atomic.Int64
	upload chan error // the upload in flight, if any
	buf    bytes.Buffer
}

// Reset says the state at seq is stored (just loaded, or new).
func (s *Snapshotter) Reset(seq uint64) {
	s.SnapSeq, s.Since, s.LastSnap = seq, 0, time.Now()
}

// Due reports whether a snapshot of the state at seq is due: it changed, and
// every results or interval have passed since the last one.
func (s *Snapshotter) Due(seq uint64, every int, interval time.Duration) bool {
	return seq != s.SnapSeq && (s.Since >= every || time.Since(s.LastSnap) >= interval)
}

// Take encodes the state at seq and stores it in the background; an upload
// still in flight defers it. uploadTimeout bounds the upload, which is not
// cancelled with ctx: the last snapshot waits for it.
func (s *Snapshotter) Take(ctx context.Context, seq uint64, uploadTimeout time.Duration) {
	if s.upload != nil {
		select {
		case err := <-s.upload:
			s.uploadDone(err)
		default:
			return
		}
	}
	s.buf.Reset()
	if err := s.Encode(&s.buf, seq); err != nil {
		s.log.Error("snapshot failed", zap.Error(err))
		return
	}
	s.Reset(seq)
	if s.Stored != nil {
		s.Stored()
	}
	data, started := s.buf.Bytes(), time.Now()
	ch := make(chan error, 1)
	s.upload = ch
	go func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), uploadTimeout)
		defer cancel()
		err := s.Put(uctx, data)
		if err == nil {
			s.log.Debug("snapshot stored", zap.Uint64("seq", seq), zap.Int("bytes", len(data)), zap.Duration("took", time.Since(started)))
		}
		ch <- err
	}()
}

// Wait waits for the upload in flight, if any.
func (s *Snapshotter) Wait() {
	if s.upload != nil {
		s.uploadDone(<-s.upload)
	}
}

func (s *Snapshotter) uploadDone(err error) {
	s.upload = nil
	if err != nil {
		s.log.Warn("snapshot upload failed", zap.Error(err))
		s.SnapSeq = 0 // store the next one even if nothing changed
		return
	}
	s.stored.Add(1)
}

// Final waits for the upload in flight and stores the state at seq, if it
// is not stored yet, retrying while the cluster is unavailable.
func (s *Snapshotter) Final(ctx context.Context, b *bus.Bus, seq uint64) error {
	s.Wait()
	if seq == s.SnapSeq {
		return nil
	}
	s.buf.Reset()
	if err := s.Encode(&s.buf, seq); err != nil {
		return fmt.Errorf("final snapshot: %w", err)
	}
	if err := b.Retry(ctx, "final snapshot", func(ctx context.Context) error {
		return s.Put(ctx, s.buf.Bytes())
	}); err != nil {
		return fmt.Errorf("final snapshot: %w", err)
	}
	if s.Stored != nil {
		s.Stored()
	}
	s.SnapSeq = seq
	s.stored.Add(1)
	s.log.Info("snapshot stored", zap.Uint64("seq", seq), zap.Int("bytes", s.buf.Len()))
	return nil
}

// tickInterval is how often an idle Loop runs Handler.Idle.
const tickInterval = time.Second

// Handler is what a results consumer does in Core.Loop.
type Handler interface {
	// Apply processes one message, in stream order; it advances Core.Seq
	// (SetSeq) past what it processed.
	Apply(ctx context.Context, it *Item) error
	// Applied runs after the messages of a chunk, with those processed.
	Applied(ctx context.Context, items []Item) error
	// Idle runs when no message is waiting, and every second after that
	// while none comes.
	Idle(ctx context.Context) error
	// Resync runs before the consumer is recreated after a gap in the
	// deliveries: what is processed and not acked is to be settled now.
	Resync(ctx context.Context) error
}

// LoopConfig is what Core.Loop needs besides the Handler.
type LoopConfig struct {
	Fetch int    // results per pull request
	Ready func() // optional: called once the consumer is set up
	// Watch, when set, delivers updates that OnWatch takes between chunks
	// (the modeler's seed record).
	Watch   <-chan jetstream.KeyValueEntry
	OnWatch func(context.Context, jetstream.KeyValueEntry) error
	// Stopping, when set, runs as the loop ends, after the reader stopped
	// and before what it handed on unapplied is released.
	Stopping func(context.Context)
}

// Loop consumes RESULTS from the message after Seq, in stream order, until
// ctx ends (nil) or the Handler fails. A gap in the deliveries (a server
// went away with some in flight: they would come back only after AckWait,
// and out of order) recreates the consumer from the first message not
// processed. On return, what the reader handed on and was not processed is
// nak'ed at once.
func (c *Core) Loop(ctx context.Context, cfg LoopConfig, h Handler) error {
	sub, err := Subscribe(ctx, c.Bus, c.Service, c.Seq+1, cfg.Fetch, c.Policy, c.Log)
	if err != nil {
		return err
	}
	if cfg.Ready != nil {
		cfg.Ready()
	}
	var cur *Chunk // handed on, being processed from index next on
	next := 0
	defer func() {
		if sub == nil {
			return // a resubscription failed: the old reader is stopped
		}
		sub.Stop()
		if cfg.Stopping != nil {
			cfg.Stopping(ctx)
		}
		if n := sub.Release(cur, next); n > 0 {
			c.Log.Info("released unapplied results", zap.Int("messages", n))
		}
	}()
	watch := cfg.Watch
	onWatch := func(e jetstream.KeyValueEntry, open bool) error {
		if !open {
			watch = nil
			return nil
		}
		return cfg.OnWatch(ctx, e)
	}

	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		var ch *Chunk
		ok := true
		select {
		case ch, ok = <-sub.Ordered():
		default:
			// Nothing waiting: do the periodic work, then wait.
			if err := h.Idle(ctx); err != nil {
				return err
			}
			select {
			case ch, ok = <-sub.Ordered():
			case e, open := <-watch:
				if err := onWatch(e, open); err != nil {
					return err
				}
				continue
			case <-tick.C:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fetch results: %w", sub.Err)
		}
		cur, next = ch, 0
		select {
		case <-ch.Done:
		case <-ctx.Done():
			return nil
		}
		select {
		case e, open := <-watch:
			if err := onWatch(e, open); err != nil {
				return err
			}
		default:
		}
		var gap bool
		if next, gap, err = sub.Apply(ch, 0, &c.Seq, func(it *Item) error { return h.Apply(ctx, it) }); err != nil {
			return err
		}
		if err := h.Applied(ctx, ch.Items[:next]); err != nil {
			return err
		}
		if !gap {
			cur = nil
			sub.Put(ch)
			continue
		}
		c.Log.Warn("gap in the results delivered: reading again from the first missing one",
			zap.Uint64("seq", c.Seq), zap.Uint64("delivered", ch.Items[next].Seq))
		c.Stats.Resyncs.Add(1)
		if err := h.Resync(ctx); err != nil {
			return err
		}
		sub.Stop()
		sub, cur = nil, nil
		c.DropHeld() // the consumer is recreated: nothing to ack on the old one
		if sub, err = Subscribe(ctx, c.Bus, c.Service, c.Seq+1, cfg.Fetch, c.Policy, c.Log); err != nil {
			return err // sub is nil: the deferred stop passes it over
		}
	}
}
