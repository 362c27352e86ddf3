package prober

import (
	"context"
	"sync"
)

// window keeps the order of the scheduler across concurrent senders when
// the prober runs in lockstep with the predictor (Config.AwaitPredictions),
// as a served lab world does: while a sender awaits the predictions of a
// hit, no sender takes new work, and at most cur probes are in flight, so a
// prediction made from a hit waits behind at most one window of work taken
// before the hit. The window opens like TCP's slow start: one probe at
// first (one work: before the first results nothing is known that would
// reorder the work, and the replay takes one work at a time), doubled
// after each wait for predictions, up to max, the engine's probe
// concurrency (which it cannot exceed anyway). Without lockstep (an
// Internet scan: its rate binds, not the order of a few hundred probes) the
// window is open: max 0.
type window struct {
	max uint64

	take sync.Mutex // one sender takes at a time: what it takes is the top
	mu   sync.Mutex
	cond *sync.Cond
	cur  uint64 // the window now
	n    uint64 // probes in flight
	held int    // senders awaiting predictions: no new work meanwhile
}

func newWindow(first, max uint64) *window {
	w := &window{max: max, cur: min(first, max)}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// enter waits until new work may be taken, and then holds the right to
// take it until taken; it fails when ctx ends.
func (w *window) enter(ctx context.Context) error {
	if w.max == 0 {
		return ctx.Err()
	}
	w.take.Lock()
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.mu.Lock()
	for (w.n >= w.cur || w.held > 0) && ctx.Err() == nil {
		w.cond.Wait()
	}
	w.mu.Unlock()
	if err := ctx.Err(); err != nil {
		w.take.Unlock()
		return err
	}
	return nil
}

// taken ends what enter began: n probes were taken (0 when none).
func (w *window) taken(n uint64) {
	if w.max == 0 {
		return
	}
	w.mu.Lock()
	w.n += n
	w.mu.Unlock()
	w.take.Unlock()
}

// done says n probes taken are probed and their results published.
func (w *window) done(n uint64) {
	if w.max == 0 {
		return
	}
	w.mu.Lock()
	w.n -= n
	w.cond.Broadcast()
	w.mu.Unlock()
}

// hold stops new work while a sender awaits the predictions of a hit, so
// that they are taken before anything else; the func it returns lets the
// senders go on and doubles the window, up to max.
func (w *window) hold() (release func()) {
	if w.max == 0 {
		return func() {}
	}
	w.mu.Lock()
	w.held++
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		w.held--
		w.cur = min(2*w.cur, w.max)
		w.cond.Broadcast()
		w.mu.Unlock()
	}
}
