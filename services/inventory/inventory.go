// Package inventory is the inventory service: it follows RESULTS in
// order and keeps the latest state of every service in the key-value
// bucket gps-inventory, and publishes what happens to each (new, changed,
// gone) on the INVENTORY stream, for downstream tools.
//
// It is crash-exact. Its state is the bucket; after every chunk of
// messages it publishes their events, then writes the states they changed,
// then records the RESULTS sequence they reach (key inventory of
// gps-control), then acks. A restart loads the bucket and resumes after the
// recorded sequence: a message whose service's state already holds it
// (its seq) is passed over for that service, and an event published again
// carries the same Nats-Msg-Id (inv:<results sequence>:<index in the
// message>), so the server stores it once.
package inventory

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/resultpipe"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/pkg/wire"
)

// Service is the name of the service: its durable consumer on RESULTS and
// its dead-letter subject (gps.dlq.inventory).
const Service = "inventory"

// maxAsync bounds the publishes in flight before waiting for their acks.
const maxAsync = 1000

// Deps are what Run needs.
type Deps struct {
	Config  Config
	Bus     *bus.Bus
	Log     *zap.Logger
	Stats   *Stats             // optional: counters to read while it runs
	Metrics *telemetry.Metrics // optional: results in, dead letters, consumer lag, handle time
	Ready   func()             // optional: called once the consumer is set up
}

// Stats are the inventory's counters; safe to read while Run runs. Its Seq
// is of the last message whose effects are stored.
type Stats struct {
	resultpipe.Stats
	Events   atomic.Int64 // events published (a republish after a restart counts again)
	Services atomic.Int64 // services in the bucket, live or gone
	Live     atomic.Int64 // of which live
	// LastSeen is the sum of the live services' last answers, Unix
	// seconds (divided by Live: their mean).
	LastSeen atomic.Int64
}

type inventory struct {
	*resultpipe.Core
	cfg     Config
	st      *Stats
	ready   func()
	kv      jetstream.KeyValue // the inventory
	control jetstream.KeyValue

	states    map[string]*wire.ServiceState // by key (wire.InventoryKey)
	dirty     []string                      // keys changed since the last commit, in order
	isDirty   map[string]bool
	events    *bus.Async
	puts      *bus.Async
	newest    jetstream.Msg // the last message applied, acked at commit
	committed uint64        // the sequence recorded in the control bucket
}

// position is the value of key inventory in gps-control.
type position struct {
	V    int       `json:"v"`
	Seq  uint64    `json:"seq"` // RESULTS sequence up to which the bucket and the events are complete
	Time time.Time `json:"time"`
}

// Run keeps the inventory until ctx ends; it returns nil on a clean stop,
// with everything applied stored.
func Run(ctx context.Context, d Deps) error {
	st := cmp.Or(d.Stats, new(Stats))
	cfg, core, err := resultpipe.Start(Service, d.Config, d.Bus, d.Log, &st.Stats, d.Metrics)
	if err != nil {
		return err
	}
	s := &inventory{Core: core, cfg: cfg, st: st, ready: d.Ready, isDirty: map[string]bool{},
		events: d.Bus.Async(maxAsync), puts: d.Bus.Async(maxAsync)}
	if err := s.open(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	err = resultpipe.RunLoop(ctx, s.Bus, Service, s.Lag(), s.Progress(func() []zap.Field {
		return []zap.Field{zap.Int64("services", s.st.Services.Load()), zap.Int64("live", s.st.Live.Load()), zap.Int64("events", s.st.Events.Load())}
	}), func(ctx context.Context) error {
		return s.Loop(ctx, resultpipe.LoopConfig{Fetch: s.cfg.Fetch, Ready: s.ready}, s)
	})
	// Store what was applied, so the next run resumes after it.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if e := s.commit(sctx); e != nil {
		return errors.Join(err, e)
	}
	s.ConfirmAcks(sctx)
	if err == nil {
		s.Log.Info("inventory stopped", zap.Uint64("seq", s.Seq), zap.Int64("services", s.st.Services.Load()))
	}
	return err
}

// open loads the bucket and the recorded position.
func (s *inventory) open(ctx context.Context) error {
	var err error
	if s.kv, err = s.Bus.Inventory(ctx); err != nil {
		return err
	}
	if s.control, err = s.Bus.Control(ctx); err != nil {
		return err
	}
	var pos position
	if err := s.Bus.Retry(ctx, "get inventory position", func(ctx context.Context) error {
		e, err := s.control.Get(ctx, bus.KeyInventory)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return json.Unmarshal(e.Value(), &pos)
	}); err != nil {
		return fmt.Errorf("get inventory position: %w", err)
	}
	if err := s.Bus.Retry(ctx, "load inventory", func(ctx context.Context) (err error) {
		s.states, err = Load(ctx, s.kv)
		return err
	}); err != nil {
		return err
	}
	for _, st := range s.states {
		s.count(nil, st)
	}
	s.gauges()
	s.committed = pos.Seq
	s.SetSeq(pos.Seq)
	s.Log.Info("inventory loaded", zap.Uint64("seq", pos.Seq), zap.Int("services", len(s.states)))
	return nil
}

// Load reads every service of the bucket, by key.
func Load(ctx context.Context, kv jetstream.KeyValue) (map[string]*wire.ServiceState, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("load inventory: %w", err)
	}
	defer w.Stop() //nolint:errcheck // a watcher that will not stop is gone with the connection
	out := map[string]*wire.ServiceState{}
	for {
		select {
		case e := <-w.Updates():
			if e == nil { // the initial values are all in
				return out, nil
			}
			var st wire.ServiceState
			if err := json.Unmarshal(e.Value(), &st); err != nil {
				return nil, fmt.Errorf("load inventory: key %s: %w", e.Key(), err)
			}
			out[e.Key()] = &st
		case <-ctx.Done():
			return nil, fmt.Errorf("load inventory: %w", ctx.Err())
		}
	}
}

// Apply applies one message: each result's new state, and its event
// published (not waited for).
func (s *inventory) Apply(ctx context.Context, it *resultpipe.Item) error {
	if s.Skip(it) {
		return nil
	}
	if it.Err != nil {
		if err := s.DeadLetter(ctx, it); err != nil {
			return err
		}
		s.SetSeq(it.Seq)
		return nil
	}
	// A service whose state holds this message already (applied before a
	// crash, stored, not yet recorded) is passed over for the whole
	// message: its state is the one after the message.
	var done map[string]bool
	for i := range it.Results {
		k := key(&it.Results[i])
		if cur := s.states[k]; cur != nil && cur.Seq >= it.Seq && !s.isDirty[k] {
			if done == nil {
				done = map[string]bool{}
			}
			done[k] = true
		}
	}
	for i := range it.Results {
		r := &it.Results[i]
		k := key(r)
		if done[k] {
			continue
		}
		cur := s.states[k]
		st, ev := next(cur, r, it.Seq)
		if st == nil {
			continue
		}
		s.count(cur, st)
		s.states[k] = st
		if !s.isDirty[k] {
			s.isDirty[k] = true
			s.dirty = append(s.dirty, k)
		}
		if ev == "" {
			continue
		}
		data, err := json.Marshal(wire.ServiceEvent{Event: ev, ServiceState: *st})
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		if err := s.events.Publish(ctx, wire.InventorySubject(ev), "inv:"+strconv.FormatUint(it.Seq, 10)+":"+strconv.Itoa(i), data); err != nil {
			return err
		}
		s.st.Events.Add(1)
		if m := s.Metrics(); m != nil {
			m.Inventory.Events.WithLabelValues(ev).Inc()
		}
	}
	s.CountResults(it.Results)
	s.newest = it.Msg
	s.SetSeq(it.Seq)
	return nil
}

// key is the bucket key of a result's service.
func key(r *resultpipe.Result) string { return wire.InventoryKey(r.Svc.IP, r.Svc.Port) }

// count keeps the counts of services and live ones and the sum of their
// last answers, from a state cur (nil: none) to st.
func (s *inventory) count(cur, st *wire.ServiceState) {
	if cur == nil {
		s.st.Services.Add(1)
	} else if cur.State == wire.StateLive {
		s.st.Live.Add(-1)
		s.st.LastSeen.Add(-cur.LastSeen.Unix())
	}
	if st.State == wire.StateLive {
		s.st.Live.Add(1)
		s.st.LastSeen.Add(st.LastSeen.Unix())
	}
}

// gauges sets the size and age metrics from the counts.
func (s *inventory) gauges() {
	m := s.Metrics()
	if m == nil {
		return
	}
	n, live := s.st.Services.Load(), s.st.Live.Load()
	m.Inventory.Services.WithLabelValues(wire.StateLive).Set(float64(live))
	m.Inventory.Services.WithLabelValues(wire.StateGone).Set(float64(n - live))
	mean := 0.0
	if live > 0 {
		mean = float64(s.st.LastSeen.Load()) / float64(live)
	}
	m.Inventory.LastSeen.Set(mean)
}

// Applied commits the chunk.
func (s *inventory) Applied(ctx context.Context, items []resultpipe.Item) error {
	for i := range items {
		s.Observe(items[i].Recv)
	}
	return s.commit(ctx)
}

// Idle commits (nothing, usually) and confirms the acks.
func (s *inventory) Idle(ctx context.Context) error {
	if err := s.commit(ctx); err != nil {
		return err
	}
	s.ConfirmAcks(ctx)
	return nil
}

// Resync commits before the consumer is recreated.
func (s *inventory) Resync(ctx context.Context) error { return s.commit(ctx) }

// commit stores what was applied, in the order a restart relies on: the
// events, then the states, then the position; then it acks.
func (s *inventory) commit(ctx context.Context) error {
	if s.Seq == s.committed {
		return nil
	}
	if err := s.events.Flush(ctx); err != nil {
		return fmt.Errorf("publish events: %w", err)
	}
	for _, k := range s.dirty {
		data, err := json.Marshal(s.states[k])
		if err != nil {
			return fmt.Errorf("encode state: %w", err)
		}
		subject := "$KV." + bus.InventoryBucket + "." + k
		if err := s.puts.Publish(ctx, subject, k+"@"+strconv.FormatUint(s.states[k].Seq, 10), data); err != nil {
			return fmt.Errorf("put %s: %w", k, err)
		}
	}
	if err := s.puts.Flush(ctx); err != nil {
		return fmt.Errorf("put states: %w", err)
	}
	clear(s.isDirty)
	s.dirty = s.dirty[:0]
	data, err := json.Marshal(position{V: wire.Version, Seq: s.Seq, Time: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("encode position: %w", err)
	}
	if err := s.Bus.Retry(ctx, "put inventory position", func(ctx context.Context) error {
		_, err := s.control.Put(ctx, bus.KeyInventory, data)
		return err
	}); err != nil {
		return fmt.Errorf("put inventory position: %w", err)
	}
	s.committed = s.Seq
	s.gauges()
	s.Hold(s.newest)
	return nil
}
