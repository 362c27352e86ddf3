package prober

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/schedule"
)

// Responder answers probes. Probe sends one probe to (addr, port) and
// returns the service found there, if any. Sweep probes port on every
// address of prefix/bits, calls fn for each service found and returns the
// number of probes it sent. An error is transient (the triggering message is
// retried); "no service" is not an error.
type Responder interface {
	Probe(ctx context.Context, addr uint32, port uint16) (row.Row, bool, error)
	Sweep(ctx context.Context, prefix uint32, bits int, port uint16, fn func(row.Row)) (probes uint64, err error)
}

// WorldOptions shape a WorldResponder.
type WorldOptions struct {
	Latency  time.Duration // waited on each Probe, and once per Sweep (a sweep's probes are in flight together)
	Loss     float64       // probability that a service does not answer, 0..1
	LossSeed int64         // which services are lost: the same seed loses the same ones
}

// WorldResponder is a simulated Internet: it answers exactly the services of
// a lab world's ground truth (truth.jsonl), sending no packet anywhere. When
// the truth holds several rows of one (ip, port), the first one answers.
// Loss is deterministic per (addr, port) and LossSeed, so reruns agree. It is
// safe for concurrent use.
type WorldResponder struct {
	opts   WorldOptions
	rows   []row.Row
	byKey  map[uint64]int32       // (addr, port) -> index in rows of its first row
	byPort map[uint16][]portEntry // each sorted by address, for sweeps
}

type portEntry struct {
	addr uint32
	i    int32
}

func svcKey(addr uint32, port uint16) uint64 { return uint64(addr)<<16 | uint64(port) }

// NewWorldResponder loads the ground truth of the world directory dir.
func NewWorldResponder(dir string, o WorldOptions) (*WorldResponder, error) {
	if o.Loss < 0 || o.Loss > 1 || o.Latency < 0 {
		return nil, fmt.Errorf("load world responder: loss %v latency %v out of range", o.Loss, o.Latency)
	}
	ss, err := row.ReadAll(lab.WorldFile(dir, lab.TruthFile))
	if err != nil {
		return nil, fmt.Errorf("load world responder: %w", err)
	}
	return NewWorldResponderFromServices(ss, o), nil
}

// NewWorldResponderFromServices builds a responder answering the services.
func NewWorldResponderFromServices(ss []row.Service, o WorldOptions) *WorldResponder {
	w := &WorldResponder{opts: o, byKey: make(map[uint64]int32, len(ss)), byPort: make(map[uint16][]portEntry)}
	for _, s := range ss {
		k := svcKey(s.Addr, uint16(s.Port))
		if _, dup := w.byKey[k]; dup {
			continue
		}
		i := int32(len(w.rows))
		w.rows = append(w.rows, s.Row)
		w.byKey[k] = i
		w.byPort[uint16(s.Port)] = append(w.byPort[uint16(s.Port)], portEntry{s.Addr, i})
	}
	for _, es := range w.byPort {
		slices.SortFunc(es, func(a, b portEntry) int {
			switch {
			case a.addr < b.addr:
				return -1
			case a.addr > b.addr:
				return 1
			}
			return 0
		})
	}
	return w
}

// Services is the number of distinct (ip, port) services of the world.
func (w *WorldResponder) Services() int { return len(w.rows) }

// Lost reports whether the service at (addr, port), if any, does not answer.
func (w *WorldResponder) Lost(addr uint32, port uint16) bool {
	if w.opts.Loss <= 0 {
		return false
	}
	x := lab.Mix64(svcKey(addr, port) ^ lab.Mix64(uint64(w.opts.LossSeed)))
	return float64(x>>11)/(1<<53) < w.opts.Loss
}

// wait is the latency of one probe, in wall time (the world's simulated
// time is the scheduler's clock, not this).
func (w *WorldResponder) wait(ctx context.Context) error {
	return schedule.RealClock{}.Sleep(ctx, w.opts.Latency)
}

// Probe answers with the world's service at (addr, port), if it has one
// that is not lost.
func (w *WorldResponder) Probe(ctx context.Context, addr uint32, port uint16) (row.Row, bool, error) {
	if err := w.wait(ctx); err != nil {
		return row.Row{}, false, err
	}
	i, ok := w.byKey[svcKey(addr, port)]
	if !ok || w.Lost(addr, port) {
		return row.Row{}, false, nil
	}
	return w.rows[i], true, nil
}

// Sweep calls fn with every service of the world on port inside
// prefix/bits that is not lost, in address order, from an index (no loop
// over addresses); it counts 2^(32-bits) probes.
func (w *WorldResponder) Sweep(ctx context.Context, prefix uint32, bits int, port uint16, fn func(row.Row)) (uint64, error) {
	if bits < 0 || bits > 32 {
		return 0, fmt.Errorf("sweep: prefix length %d out of range", bits)
	}
	if err := w.wait(ctx); err != nil {
		return 0, err
	}
	var mask uint32
	if bits > 0 {
		mask = ^uint32(0) << (32 - bits)
	}
	lo, hi := prefix&mask, prefix|^mask
	es := w.byPort[port]
	i, _ := slices.BinarySearchFunc(es, lo, func(e portEntry, a uint32) int {
		switch {
		case e.addr < a:
			return -1
		case e.addr > a:
			return 1
		}
		return 0
	})
	for ; i < len(es) && es[i].addr <= hi; i++ {
		if !w.Lost(es[i].addr, port) {
			fn(w.rows[es[i].i])
		}
	}
	return uint64(1) << (32 - bits), nil
}
