package prober

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
)

// retry naks msg after a transient error (nothing is remembered as done),
// for a retry after retryDelay; when the prober is stopping, at once, for
// another prober.
func (p *prober) retry(msg jetstream.Msg, what string, err error) {
	if p.stopping.Load() {
		p.release(msg)
		return
	}
	p.st.Retried.Add(1)
	p.log.Warn("message retried", zap.String("what", what), zap.String("subject", msg.Subject()), zap.Error(err))
	if nerr := msg.NakWithDelay(retryDelay); nerr != nil {
		p.log.Warn("nak", zap.Error(nerr))
	}
}

// keepAliveWhile tells the server msg is still being handled every
// keepAlive (InProgress), so it is not redelivered after ackWait, until stop
// is called.
func keepAliveWhile(msg jetstream.Msg) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock() // t is set before the first tick reads it
	t = time.AfterFunc(keepAlive, func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			_ = msg.InProgress()
			t.Reset(keepAlive)
		}
	})
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// release naks a message the prober will not finish because it stops.
func (p *prober) release(msg jetstream.Msg) {
	p.st.Released.Add(1)
	p.log.Debug("message released on stop", zap.String("subject", msg.Subject()))
	if err := msg.Nak(); err != nil {
		p.log.Warn("nak", zap.String("subject", msg.Subject()), zap.Error(err))
	}
}

// deadLetter moves a message that must not be used to the dead letters.
// If that fails while the bus is unavailable, the message is nak'ed to be
// tried again; the bus gives up after a few deliveries, or at once when the
// dead letter is refused for good, and terminates it (logged once here).
func (p *prober) deadLetter(ctx context.Context, msg jetstream.Msg, reason error) {
	if err := p.bus.DeadLetter(ctx, Durable, msg, reason); err != nil {
		if errors.Is(err, bus.ErrDeadLetterLost) {
			p.log.Error("dead letter lost: message terminated", zap.String("subject", msg.Subject()), zap.Error(err))
			return
		}
		p.retry(msg, "dead-letter", err)
		return
	}
	if p.deadLettered != nil {
		p.deadLettered.Inc()
	}
}

// ack acknowledges msg and has the server confirm it, retrying while the
// cluster is unavailable: an ack lost with a server that goes away would
// leave the message to AckWait and a second probe. The confirmation is
// waited for in the background (at most maxAcks at once), off the worker's
// path; Run waits for them all before it returns. The effect is done: the
// ack is not cancelled by a stop; if the server never confirms it, a plain
// ack goes out with the connection's last flush.
func (p *prober) ack(ctx context.Context, msg jetstream.Msg) {
	p.ackSem <- struct{}{}
	p.ackWG.Add(1)
	go func() {
		defer func() {
			<-p.ackSem
			p.ackWG.Done()
		}()
		if err := bus.ConfirmAck(ctx, p.log, msg); err != nil {
			p.log.Warn("ack not confirmed", zap.String("subject", msg.Subject()), zap.Error(err))
		}
	}()
}
