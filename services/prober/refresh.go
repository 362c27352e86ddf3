package prober

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/schedule"
	"github.com/gpsscan/gps/pkg/wire"
)

// refresher keeps the known services of a continuous run and, at each new
// cycle (the seeder's bus.Cycle record), pushes a refresh probe of each into
// the scheduler, where they are ordered with the rest of the work. Known is
// what RESULTS says: answered and not gone, read from the stream's start,
// so a restarted prober rebuilds it; only the misses in a row are in
// memory (a restart forgets them; with --gone-after 1 there are none).
type refresher struct {
	p *prober

	mu       sync.Mutex
	known    map[uint64]uint8 // svcKey -> refresh probes missed in a row
	applied  uint64           // RESULTS sequence read up to
	cycle    int              // the cycle refreshed last; -1: none
	answered int              // this cycle's refreshes that answered
	missed   int              // and did not
	survival float64          // share of the cycle before's refreshes that answered
}

func newRefresher(p *prober) *refresher {
	return &refresher{p: p, known: map[uint64]uint8{}, cycle: -1, survival: initialSurvival}
}

// read follows RESULTS from its start (or, run again after an error, from
// where it stopped) until ctx ends (bus.Follow, which a server going away
// cannot hold past that).
func (r *refresher) read(ctx context.Context) error {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	r.mu.Lock()
	if r.applied > 0 {
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: r.applied + 1}
	}
	r.mu.Unlock()
	err := r.p.bus.Follow(ctx, bus.StreamResults, cfg, func(msg jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		rs, err := wire.DecodeResults(msg.Data())
		r.mu.Lock()
		defer r.mu.Unlock()
		if err == nil { // a bad message was dead-lettered whole: skipped whole
			for i := range rs {
				a, err := row.ParseAddr(rs[i].IP)
				if err != nil {
					continue
				}
				k := svcKey(a, uint16(rs[i].Port))
				if rs[i].Gone {
					delete(r.known, k)
				} else if _, ok := r.known[k]; !ok || rs[i].Phase != wire.PhaseRefresh {
					r.known[k] = 0
				}
			}
		}
		r.applied = md.Sequence.Stream
		r.p.st.Known.Store(int64(len(r.known)))
		return true, nil
	}, jetstream.PullMaxMessages(256))
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("read known services: %w", err)
	}
	return nil
}

// caughtUp waits until read has reached the stream's last message now.
func (r *refresher) caughtUp(ctx context.Context) error {
	s, err := r.p.bus.JS.Stream(ctx, bus.StreamResults)
	if err != nil {
		return fmt.Errorf("read known services: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("read known services: %w", err)
	}
	for {
		r.mu.Lock()
		done := r.applied >= info.State.LastSeq
		r.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// takeUp moves the prober into the cycle under way, if any, before it
// pulls work: a prober restarted mid-cycle answers a world from that cycle
// and stamps that cycle on its results, as the one it replaces did. The
// cycle's refreshes come from watch, as at any start.
func (r *refresher) takeUp(ctx context.Context) error {
	var c bus.Cycle
	ok, err := r.p.bus.GetJSON(ctx, bus.KeyCycle, &c)
	if err != nil || !ok {
		return err
	}
	if err := r.p.worldToCycle(c.N); err != nil {
		return fmt.Errorf("take up cycle %d: %w", c.N, err)
	}
	r.p.cycleN.Store(int64(c.N))
	r.p.log.Info("cycle under way", zap.Int("cycle", c.N))
	return nil
}

// worldToCycle moves a world responder to cycle n (nothing for a live
// prober, or a world there already).
func (p *prober) worldToCycle(n int) error {
	if w, ok := p.resp.(*WorldResponder); ok && w.Cycle() != n {
		return w.SetCycle(n)
	}
	return nil
}

// refreshDone records that cycle n's refreshes are all probed.
func (p *prober) refreshDone(n int) {
	p.st.RefreshDone.Store(int64(n))
	if p.m != nil {
		p.m.Cycles.RefreshDone.Set(float64(n))
	}
}

// watch refreshes the known services at each new cycle until ctx ends.
func (r *refresher) watch(ctx context.Context) error {
	return r.p.bus.WatchCycle(ctx, func(c bus.Cycle) error {
		if err := r.startCycle(ctx, c.N); err != nil && ctx.Err() == nil {
			r.p.log.Warn("refresh not started", zap.Int("cycle", c.N), zap.Error(err))
		}
		return nil
	})
}

// startCycle moves a world responder to cycle n, starts the scheduler's
// new cycle and pushes a refresh of every known service.
func (r *refresher) startCycle(ctx context.Context, n int) error {
	r.mu.Lock()
	started := n <= r.cycle
	r.mu.Unlock()
	if started {
		return nil
	}
	if err := r.p.worldToCycle(n); err != nil {
		return fmt.Errorf("refresh cycle %d: %w", n, err)
	}
	if err := r.caughtUp(ctx); err != nil {
		return fmt.Errorf("refresh cycle %d: %w", n, err)
	}
	r.p.cycleN.Store(int64(n))
	r.p.sched.Forget()
	r.mu.Lock()
	if n := r.answered + r.missed; n > 0 {
		r.survival = float64(r.answered) / float64(n)
	}
	r.answered, r.missed, r.cycle = 0, 0, n
	yield := cmp.Or(r.p.c.RefreshYield, r.survival)
	keys := make([]uint64, 0, len(r.known))
	for k := range r.known {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	r.p.st.CycleProbes.Store(r.p.st.Probes.Load())
	r.p.st.RefreshCycle.Store(int64(n))
	h := &held{refresh: true, phase: wire.PhaseRefresh, n: len(keys), cycle: n}
	if len(keys) == 0 {
		r.p.refreshDone(n)
		return nil
	}
	r.p.sched.Open(h)
	for _, k := range keys {
		r.p.sched.Push(schedule.Target{Addr: uint32(k >> 16), Port: uint16(k)}, yield, h)
	}
	r.p.sched.Close(h)
	r.p.log.Info("cycle: refreshing the known services", zap.Int("cycle", n), zap.Int("known", len(keys)), zap.Float64("yield", yield))
	return nil
}

// outcome records a refresh probe of t: answered, or missed, in which case
// t is published gone after Config.GoneAfter misses in a row.
func (r *refresher) outcome(ctx context.Context, t schedule.Target, answered bool, stamp uint64) error {
	k := svcKey(t.Addr, t.Port)
	m := r.p.m
	r.mu.Lock()
	if answered {
		r.answered++
		r.known[k] = 0
		r.mu.Unlock()
		r.p.st.Refreshed.Add(1)
		if m != nil {
			m.Cycles.RefreshAnswered.Inc()
		}
		return nil
	}
	r.missed++
	misses := r.known[k] + 1
	gone := int(misses) >= cmp.Or(r.p.c.GoneAfter, DefaultGoneAfter)
	if gone {
		delete(r.known, k)
	} else {
		r.known[k] = misses
	}
	cycle := r.cycle
	r.mu.Unlock()
	r.p.st.Missed.Add(1)
	if m != nil {
		m.Cycles.RefreshMissed.Inc()
	}
	if !gone {
		return nil
	}
	ip := row.FormatAddr(t.Addr)
	res := wire.Result{V: wire.Version, IP: ip, Port: int(t.Port), Phase: wire.PhaseRefresh, Time: r.p.now(), Source: "probe",
		Probes: stamp, Gone: true, Cycle: cycle}
	data, err := json.Marshal(&res)
	if err != nil {
		return fmt.Errorf("encode gone %s:%d: %w", ip, t.Port, err)
	}
	id := fmt.Sprintf("gone@%d:%s:%d", cycle, ip, t.Port)
	if _, err := r.p.bus.PublishMsg(ctx, &nats.Msg{Subject: wire.ResultsSubject(wire.PhaseRefresh), Data: data}, id); err != nil {
		return fmt.Errorf("publish gone %s:%d: %w", ip, t.Port, err)
	}
	r.p.st.Gone.Add(1)
	if m != nil {
		m.Cycles.Gone.Inc()
	}
	return nil
}

// counts is how many of this cycle's refreshes answered and how many did not.
func (r *refresher) counts() (answered, missed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.answered, r.missed
}
