package prober

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// results publishes the results of one work (a probe or a chunk), in batches
// (wire.ResultBatch): a batch goes when it is full, when its first result
// has waited wire.BatchDelay (a timer: a probe may take seconds, and the
// services found before it must not wait for it), and at the end of the
// work (flush). Its Nats-Msg-Id is "res:<ip>:<port>" of its first
// result, and for more than one ":<results>:<hash>" (wire.ResultBatch.ID):
// a message handled again after a failed publish makes the same batches
// when they filled up the same way, and the server drops them; when a
// batch was cut by time instead, its results are stored twice, which the
// consumers take as they take a service found twice (the model merges an
// (ip, port) it has, the predictor predicts a port of a host once).
type results struct {
	p *prober

	mu    sync.Mutex // the worker adds, the timer may send
	async *bus.Async
	batch wire.ResultBatch
	timer *time.Timer
	err   error // of a send by the timer: the next add or flush returns it
	n     uint64
	phase string // of the batch: a batch holds results of one phase
}

func (p *prober) newResults() *results {
	return &results{p: p, async: p.bus.Async(asyncWindow)}
}

// add publishes a found service, unless the policy refuses its address
// (checked again on receipt) or it is not what was probed.
// stamp is the prober's probe count with the probes of the work that found
// it (the result's Probes).
func (r *results) add(ctx context.Context, rw row.Row, wantPort uint16, in ipv4.Prefix, phase string, stamp uint64) error {
	a, err := rw.Validate()
	if err != nil || rw.Port != int(wantPort) || !in.Contains(a) || !r.p.pol.Allowed(a) {
		r.p.log.Warn("responder answer dropped", zap.String("ip", rw.IP), zap.Int("port", rw.Port),
			zap.Stringer("probed", in), zap.Error(err))
		return nil
	}
	res := wire.ResultFromRow(rw, phase, r.p.now(), "probe")
	res.Probes = stamp
	res.Cycle = int(r.p.cycleN.Load())
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if r.batch.Len() > 0 && phase != r.phase { // the subject is the phase's
		if err := r.send(ctx); err != nil {
			return err
		}
	}
	r.phase = phase
	ok, err := r.batch.Add(&res)
	if err != nil {
		return err
	}
	if !ok { // past the batch's bytes: send it, and start the next with res
		if err := r.send(ctx); err != nil {
			return err
		}
		if _, err := r.batch.Add(&res); err != nil {
			return err
		}
	}
	r.n++
	r.p.log.Debug("service found", zap.String("ip", rw.IP), zap.Int("port", rw.Port), zap.String("phase", phase))
	if r.batch.Full() {
		return r.send(ctx)
	}
	if r.batch.Len() == 1 {
		r.arm(ctx)
	}
	return nil
}

// arm starts the wait of a new batch's first result.
func (r *results) arm(ctx context.Context) {
	if r.timer == nil {
		r.timer = time.AfterFunc(wire.BatchDelay, func() { r.sendDue(ctx) })
		return
	}
	r.timer.Reset(wire.BatchDelay)
}

// sendDue sends the batch if it has waited long enough (it may have been
// sent full meanwhile, and a new one started).
func (r *results) sendDue(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil && r.batch.Due(time.Now()) {
		r.err = r.send(ctx)
	}
}

// send publishes the batch; r.mu is held.
func (r *results) send(ctx context.Context) error {
	// Later cycles find services again (refreshes, sweeps): their ids name
	// the cycle, so the server does not take them for a retried publish.
	prefix := "res"
	if n := r.p.cycleN.Load(); n > 0 || r.phase == wire.PhaseRefresh {
		prefix = fmt.Sprintf("res@%d", n)
	}
	id := r.batch.ID(prefix)
	return r.async.Publish(ctx, wire.ResultsSubject(r.phase), id, r.batch.Take())
}

// flush sends what is batched and waits until every result is stored.
func (r *results) flush(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopTimer()
	if r.err != nil {
		return r.err
	}
	if r.batch.Len() > 0 {
		if err := r.send(ctx); err != nil {
			return err
		}
	}
	if err := r.async.Flush(ctx); err != nil {
		return err
	}
	r.p.st.Found.Add(r.n)
	return nil
}

// close stops the timer, and drops what a message given up had batched
// (it is retried: that is found again).
func (r *results) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopTimer()
	r.batch = wire.ResultBatch{}
}

func (r *results) stopTimer() {
	if r.timer != nil {
		r.timer.Stop()
	}
}
