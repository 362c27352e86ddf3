package bus

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// errNoPeers is JetStream's "no suitable peers for placement": a replicated
// asset cannot be placed while a server is offline (restarting, or not yet
// known to a new meta leader).
const errNoPeers jetstream.ErrorCode = 10005

// errDupInProcess is "duplicate message id is in process": a publish retried
// (after a lost ack) while the cluster is still committing the first copy.
// Retrying later gets the duplicate's ack.
const errDupInProcess jetstream.ErrorCode = 10158

// Retry timing. A JetStream cluster that loses a server elects new stream,
// consumer and meta leaders within seconds; the client reconnects to another
// server in a fraction of one. RetryFor is far beyond both, so only a cluster
// that stays down makes a service give up (and Kubernetes restart it).
const (
	RetryFor        = 2 * time.Minute
	retryFirst      = 100 * time.Millisecond
	retryMax        = 2 * time.Second
	asyncAckTimeout = 5 * time.Second  // an async publish whose ack never comes fails after this (and is published again)
	ackTimeout      = 5 * time.Second  // one confirmed ack
	confirmFor      = 15 * time.Second // all tries of ConfirmAck
)

// Transient reports whether err is one a JetStream request fails with while
// the cluster is not available: a timeout, no responders (no leader yet, or
// the client is between servers), a 5xx API error ("JetStream system
// temporarily unavailable", a stream full under DiscardNew), no peers for
// a replica (a server restarting), a message id still being committed, a connection
// reconnecting or broken. Such a request is worth trying again; a 4xx (not
// found, exists, bad config) or a connection closed for good is not.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code >= 500 || apiErr.ErrorCode == errNoPeers || apiErr.ErrorCode == errDupInProcess
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true // the connection broke: the client reconnects
	}
	for _, t := range []error{nats.ErrTimeout, context.DeadlineExceeded, nats.ErrNoResponders, nats.ErrConnectionReconnecting,
		nats.ErrDisconnected, nats.ErrStaleConnection, nats.ErrNoServers, jetstream.ErrNoStreamResponse, jetstream.ErrNoHeartbeat,
		jetstream.ErrAsyncPublishTimeout, jetstream.ErrTooManyStalledMsgs, jetstream.ErrServerShutdown, jetstream.ErrJetStreamNotEnabled} {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// Retry calls fn until it succeeds, fails with an error that is not
// Transient, ctx ends, or RetryFor has passed, waiting 100 ms, then twice as
// long each time up to 2 s, between calls; it returns fn's last error. The
// failures are logged at Warn (the first and every tenth).
//
// Everything fn does must be safe to repeat: a publish with a Nats-Msg-Id, a
// create-or-update, a get.
func (b *Bus) Retry(ctx context.Context, what string, fn func(context.Context) error) error {
	return Retry(ctx, b.log, what, fn)
}

// Retry is Bus.Retry for callers without a bus (log may be nil).
func Retry(ctx context.Context, log *zap.Logger, what string, fn func(context.Context) error) error {
	wait := retryFirst
	var deadline time.Time
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || !Transient(err) || ctx.Err() != nil {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(RetryFor)
		} else if time.Now().After(deadline) {
			return err
		}
		if log != nil && (attempt == 1 || attempt%10 == 0) {
			log.Warn("bus request failed, retrying", zap.String("what", what), zap.Int("attempt", attempt), zap.Error(err))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, retryMax)
	}
}

// PollPending reports the number of messages of stream not yet delivered to
// the durable consumer (ConsumerInfo.NumPending) to set, at once and then
// every interval, until ctx ends. A failed request is skipped (the cluster
// may be electing a leader); the consumer may be recreated meanwhile.
func (b *Bus) PollPending(ctx context.Context, stream, durable string, every time.Duration, set func(pending uint64)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, every)
		c, err := b.JS.Consumer(rctx, stream, durable)
		if err == nil {
			var info *jetstream.ConsumerInfo
			if info, err = c.Info(rctx); err == nil {
				set(info.NumPending)
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ConfirmAck acknowledges msg and waits until the server confirms it
// (DoubleAck), retrying while the cluster is unavailable, for at most
// confirmFor; it is not cancelled by ctx (the message's effect is done). If
// the server never confirms it, a plain ack is sent (it goes out with the
// connection's last flush) and the error is returned.
func ConfirmAck(ctx context.Context, log *zap.Logger, msg jetstream.Msg) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), confirmFor)
	defer cancel()
	err := Retry(ctx, log, "ack", func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, ackTimeout)
		defer cancel()
		err := msg.DoubleAck(ctx)
		if errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			return nil
		}
		return err
	})
	if err != nil {
		_ = msg.Ack()
	}
	return err
}
