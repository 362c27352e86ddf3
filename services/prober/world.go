package prober

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
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
	Cycle    int           // the cycle of the world answered (lab.ReadCycle); 0: truth.jsonl
}

// WorldResponder is a simulated Internet: it answers exactly the services of
// a lab world's ground truth (truth.jsonl, or the truth of a later cycle),
// sending no packet anywhere. When the truth holds several rows of one (ip,
// port), the first one answers. Loss is deterministic per (addr, port) and
// LossSeed, so reruns agree. It is safe for concurrent use, SetCycle
// included: a probe answers from the cycle before or the one after, never
// from a mix.
type WorldResponder struct {
	opts WorldOptions
	idx  atomic.Pointer[worldIndex]

	mu  sync.Mutex    // serialises SetCycle
	dir string        // the world directory; "" when built from services
	tl  *lab.Timeline // opened on the first SetCycle
}

// worldIndex is the truth of one cycle, indexed; never changed once built,
// so probes read it without locks.
type worldIndex struct {
	cycle  int
	rows   []row.Row
	byKey  map[uint64]int32       // (addr, port) -> index in rows of its first row
	byPort map[uint16][]portEntry // each sorted by address, for sweeps
	byAddr map[uint32][]int32     // indices in rows of an address's services, by port, for seeds
}

type portEntry struct {
	addr uint32
	i    int32
}

func svcKey(addr uint32, port uint16) uint64 { return uint64(addr)<<16 | uint64(port) }

// ErrNoWorldDir is returned by SetCycle of a responder built from services.
var ErrNoWorldDir = errors.New("world responder has no world directory")

// NewWorldResponder loads the ground truth of the world directory dir at
// o.Cycle.
func NewWorldResponder(dir string, o WorldOptions) (*WorldResponder, error) {
	if o.Loss < 0 || o.Loss > 1 || o.Latency < 0 {
		return nil, fmt.Errorf("load world responder: loss %v latency %v out of range", o.Loss, o.Latency)
	}
	var ss []row.Service
	var tl *lab.Timeline
	var err error
	if o.Cycle == 0 {
		ss, err = row.ReadAll(lab.WorldFile(dir, lab.TruthFile))
	} else {
		if tl, err = lab.OpenTimeline(dir); err == nil {
			if err = tl.Seek(o.Cycle); err == nil {
				ss = tl.Services()
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load world responder: %w", err)
	}
	w := NewWorldResponderFromServices(ss, o)
	w.dir, w.tl = dir, tl
	return w, nil
}

// NewWorldResponderFromServices builds a responder answering the services
// (as cycle o.Cycle; it cannot change cycles).
func NewWorldResponderFromServices(ss []row.Service, o WorldOptions) *WorldResponder {
	w := &WorldResponder{opts: o}
	w.idx.Store(newWorldIndex(o.Cycle, ss))
	return w
}

func newWorldIndex(cycle int, ss []row.Service) *worldIndex {
	w := &worldIndex{cycle: cycle, byKey: make(map[uint64]int32, len(ss)), byPort: make(map[uint16][]portEntry),
		byAddr: make(map[uint32][]int32)}
	for _, s := range ss {
		k := svcKey(s.Addr, uint16(s.Port))
		if _, dup := w.byKey[k]; dup {
			continue
		}
		i := int32(len(w.rows))
		w.rows = append(w.rows, s.Row)
		w.byKey[k] = i
		w.byPort[uint16(s.Port)] = append(w.byPort[uint16(s.Port)], portEntry{s.Addr, i})
		w.byAddr[s.Addr] = append(w.byAddr[s.Addr], i)
	}
	for _, is := range w.byAddr {
		slices.SortFunc(is, func(a, b int32) int { return w.rows[a].Port - w.rows[b].Port })
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

// SetCycle moves the responder to cycle k of its world: forwards by
// applying the changes of the cycles in between, backwards by starting
// again from truth.jsonl. Probes and sweeps running meanwhile answer from
// the cycle before; those after it returns, from k. A cycle the world does
// not have is an error wrapping lab.ErrCycle, and the responder stays
// where it was.
func (w *WorldResponder) SetCycle(k int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dir == "" {
		return fmt.Errorf("set cycle %d: %w", k, ErrNoWorldDir)
	}
	if w.tl == nil {
		tl, err := lab.OpenTimeline(w.dir)
		if err != nil {
			return fmt.Errorf("set cycle %d: %w", k, err)
		}
		w.tl = tl
	}
	if err := w.tl.Seek(k); err != nil {
		w.tl = nil // half-way or unknown: start again next time
		return fmt.Errorf("set cycle %d: %w", k, err)
	}
	w.idx.Store(newWorldIndex(k, w.tl.Services()))
	return nil
}

// Cycle is the cycle of the world the responder answers from.
func (w *WorldResponder) Cycle() int { return w.idx.Load().cycle }

// Services is the number of distinct (ip, port) services of the world.
func (w *WorldResponder) Services() int { return len(w.idx.Load().rows) }

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
	x := w.idx.Load()
	i, ok := x.byKey[svcKey(addr, port)]
	if !ok || w.Lost(addr, port) {
		return row.Row{}, false, nil
	}
	return x.rows[i], true, nil
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
	x := w.idx.Load()
	es := x.byPort[port]
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
			fn(x.rows[es[i].i])
		}
	}
	return uint64(1) << (32 - bits), nil
}

// Host calls fn with every service of the world on addr at ports 1..last
// that is not lost, in port order, from an index: a seed of one address
// (HostScanner), waiting the latency once.
func (w *WorldResponder) Host(ctx context.Context, addr uint32, last uint16, fn func(row.Row)) error {
	if err := w.wait(ctx); err != nil {
		return err
	}
	x := w.idx.Load()
	for _, i := range x.byAddr[addr] {
		r := x.rows[i]
		if r.Port <= int(last) && !w.Lost(addr, uint16(r.Port)) {
			fn(r)
		}
	}
	return nil
}
