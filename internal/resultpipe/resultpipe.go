// Package resultpipe is the consuming pipeline of the modeler and the
// predictor: RESULTS read with pull requests in flight, decoded in parallel,
// handed on in stream order.
//
// A message carries one result or a batch of them (wire.DecodeResults); it
// stays the unit of everything that involves the stream: its sequence is
// what a snapshot covers and where a consumer resumes, it is acked, nak'ed
// or dead-lettered whole, and its results are applied together, in order,
// so a model never holds part of a message.
package resultpipe

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// Most handed on at once between the stages: ChunkSize messages, or as
// many as reach ChunkBytes of data. The byte bound keeps batches of results
// spread over the decoders (128 one-result messages are about 40 KB, one
// batch of 128 as much).
const (
	ChunkSize  = 128
	ChunkBytes = 64 << 10
)

// bufferBytes bounds what the client buffers: twice fetch results of about
// resultBytes each (a result is 300 bytes or so, a message of one result
// about 500 with its headers), and at least two of the largest messages the
// server takes (a batch may pass wire.BatchBytes by its last result, and a
// single result may be as big as the server allows; a message bigger than
// the buffer would stall the consumer). The bound is in bytes, not
// messages: a message may carry one result or wire.BatchResults of them,
// and the consumer's MaxAckPending already bounds the messages.
func bufferBytes(fetch int, maxPayload int64) int {
	const resultBytes = 512
	return max(2*fetch*resultBytes, 2*int(maxPayload))
}

// Timing of the Reader.
const (
	stopWait = 2 * time.Second // bounds the wait for the consumer's callback to finish on stop
	// A pull request lives pullExpiry and the server sends a heartbeat on it
	// every pullHeartbeat: when a cluster moves the consumer's leader to
	// another server, the pulls waiting at the old one are gone, and the
	// client notices after two missed heartbeats and pulls again.
	pullExpiry    = 6 * time.Second
	pullHeartbeat = 2 * time.Second
)

// Item is one message and what it decodes to.
type Item struct {
	Msg     jetstream.Msg
	Recv    time.Time // when the Reader got it
	Seq     uint64    // RESULTS stream sequence
	NoMeta  bool      // not a JetStream message
	Results []Result  // the message's results, in order (none when Err is set)
	Err     error     // not usable: dead-letter the whole message
}

// Result is one result of a message, decoded and validated.
type Result struct {
	Svc   row.Service
	Phase string
	Time  time.Time // the result's time (its first publication)
	Gone  bool      // the service is gone: retract it (wire.Result.Gone)
	Cycle int       // the cycle it was found in (wire.Result.Cycle)
}

// ApplyTo applies the result to m: a live service is added (merged if
// known), a gone one removed, so m counts the live services only. It
// reports whether a gone service was there to remove.
func (r *Result) ApplyTo(m *model.Model) bool {
	if r.Gone {
		return m.Remove(r.Svc.Addr, uint16(r.Svc.Port))
	}
	m.Add(&r.Svc)
	return false
}

// Chunk is messages in stream order; done closes once they are decoded.
type Chunk struct {
	Items []Item
	Done  chan struct{}
}

// Reader consumes results (pull requests kept in flight by the client) and
// hands them on in chunks: to the decoders, which run in parallel, and in
// stream order to the one goroutine that owns the model. It never waits for
// a full Chunk: whatever has arrived when nothing more is waiting goes on at
// once.
//
// On stop nothing it holds is left to the consumer's AckWait: what arrives
// after ctx ends is nak'ed, and release naks what was handed on but not
// applied.
type Reader struct {
	cons    jetstream.Consumer
	policy  *ipv4.Policy // nil: every address is taken
	fetch   int
	buffer  int // bytes the client may buffer
	log     *zap.Logger
	ordered chan *Chunk // to the applier, in stream order; closed when reading stops
	work    chan *Chunk // to the decoders
	free    chan *Chunk // chunks to reuse
	Err     error       // why reading stopped early (set before ordered is closed)
}

// NewReader reads cons, fetch results at a time; maxPayload is the largest
// message the server takes (nats.Conn.MaxPayload). A message with a result
// outside policy (nil: none is) is not usable (ErrRefused).
func NewReader(cons jetstream.Consumer, fetch int, maxPayload int64, policy *ipv4.Policy, log *zap.Logger) *Reader {
	return &Reader{cons: cons, fetch: fetch, policy: policy, buffer: bufferBytes(fetch, maxPayload), log: log, ordered: make(chan *Chunk, 16), work: make(chan *Chunk, 16), free: make(chan *Chunk, 40)}
}

// start runs the Reader and the decoders until ctx ends; wait returns when
// they are all gone.
func (r *Reader) Start(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.run(ctx)
	}()
	for range max(1, min(4, runtime.GOMAXPROCS(0))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range r.work {
				for i := range c.Items {
					decode(&c.Items[i], r.policy)
				}
				close(c.Done)
			}
		}()
	}
	return wg.Wait
}

func decode(it *Item, policy *ipv4.Policy) {
	md, err := it.Msg.Metadata()
	if err != nil {
		it.NoMeta, it.Err = true, err
		return
	}
	it.Seq = md.Sequence.Stream
	it.Results, it.Err = DecodeMessage(it.Msg.Data(), policy)
}

// ErrRefused is the reason of a results message dead-lettered because a
// result lies outside the allow policy.
var ErrRefused = errors.New("outside the allow policy")

// DecodeMessage decodes and checks a RESULTS message, whole: a bad result,
// or one whose address policy (nil: any) refuses, makes the message
// unusable.
func DecodeMessage(data []byte, policy *ipv4.Policy) ([]Result, error) {
	rs, err := wire.DecodeResults(data)
	if err != nil {
		return nil, err
	}
	out := make([]Result, len(rs))
	for i := range rs {
		svc, err := rs[i].Service()
		if err != nil { // DecodeResults checked every one
			return nil, err
		}
		if policy != nil && !policy.Allowed(svc.Addr) {
			return nil, fmt.Errorf("%w: result %d of %d: %s:%d %w", wire.ErrBad, i+1, len(rs), svc.IP, svc.Port, ErrRefused)
		}
		out[i] = Result{Svc: svc, Phase: rs[i].Phase, Time: rs[i].Time, Gone: rs[i].Gone, Cycle: rs[i].Cycle}
	}
	return out, nil
}

func (r *Reader) Get() *Chunk {
	select {
	case c := <-r.free:
		return c
	default:
		return &Chunk{Items: make([]Item, 0, ChunkSize)}
	}
}

// put returns a Chunk that was applied.
func (r *Reader) Put(c *Chunk) {
	clear(c.Items)
	c.Items = c.Items[:0]
	select {
	case r.free <- c:
	default:
	}
}

// emit hands a Chunk to the decoders, then to the applier: a Chunk the
// applier gets is always decoded in the end. A Chunk that goes nowhere
// because ctx ended is nak'ed.
func (r *Reader) emit(ctx context.Context, c *Chunk) bool {
	c.Done = make(chan struct{})
	select {
	case r.work <- c:
	case <-ctx.Done():
		close(c.Done)
		nakFrom(c, 0)
		return false
	}
	select {
	case r.ordered <- c:
		return true
	case <-ctx.Done():
		<-c.Done // the decoders finish every Chunk they got
		nakFrom(c, 0)
		return false
	}
}

// nakFrom naks the messages of c from index i on; it returns how many.
func nakFrom(c *Chunk, i int) int {
	for j := i; j < len(c.Items); j++ {
		_ = c.Items[j].Msg.Nak() // the consumer may be gone: nothing to do
	}
	return max(0, len(c.Items)-i)
}

// release naks what the Reader handed on that the applier did not apply:
// the items of cur from index next on (cur may be nil), and every Chunk
// still waiting. Call it after the Reader stopped (start's wait returned).
func (r *Reader) Release(cur *Chunk, next int) int {
	n := 0
	if cur != nil {
		<-cur.Done
		n += nakFrom(cur, next)
	}
	for c := range r.ordered {
		<-c.Done
		n += nakFrom(c, 0)
	}
	return n
}

func (r *Reader) run(ctx context.Context) {
	defer close(r.ordered)
	defer close(r.work)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The consumer's own goroutine delivers in stream order and keeps pull
	// requests in flight; it hands every message to this goroutine.
	in := make(chan jetstream.Msg, 2*r.fetch)
	var errOnce sync.Once
	cc, err := r.cons.Consume(func(m jetstream.Msg) {
		if ctx.Err() != nil {
			_ = m.Nak() // stopping: not ours to apply any more
			return
		}
		select {
		case in <- m:
		case <-ctx.Done():
			_ = m.Nak()
		}
	}, jetstream.PullMaxBytes(r.buffer), jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !ConsumerGone(err) && (errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoHeartbeat)) {
			// The pull requests go nowhere: is the consumer still there?
			if _, ierr := r.cons.Info(ctx); ConsumerGone(ierr) {
				err = ierr
			}
		}
		if ConsumerGone(err) {
			errOnce.Do(func() { r.Err = err })
			cancel()
			return
		}
		r.log.Warn("consume", zap.Error(err))
	}))
	if err != nil {
		r.Err = err
		return
	}
	c := r.Get()
	size := 0 // bytes of data in c
	defer func() {
		// Stop pulling, let the callback finish, then nak what is held.
		cc.Stop()
		select {
		case <-cc.Closed():
		case <-time.After(stopWait):
		}
		nakFrom(c, 0)
		for {
			select {
			case m := <-in:
				_ = m.Nak()
			default:
				return
			}
		}
	}()
	for {
		var msg jetstream.Msg
		select {
		case msg = <-in:
		default:
			if len(c.Items) > 0 {
				if !r.emit(ctx, c) {
					c = r.Get()
					return
				}
				c, size = r.Get(), 0
			}
			select {
			case msg = <-in:
			case <-ctx.Done():
				return
			}
		}
		c.Items = append(c.Items, Item{Msg: msg, Recv: time.Now()})
		size += len(msg.Data())
		if len(c.Items) == ChunkSize || size >= ChunkBytes {
			if !r.emit(ctx, c) {
				c = r.Get()
				return
			}
			c, size = r.Get(), 0
		}
	}
}

func ConsumerGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound)
}

// Ordered delivers the chunks in stream order; it is closed when reading
// stops (Err says why, if early).
func (r *Reader) Ordered() <-chan *Chunk { return r.ordered }

// LagEvery is how often RunLoop refreshes the consumer lag gauge.
const LagEvery = 5 * time.Second

// RunLoop runs a consuming service's loop until it returns, with its
// progress reporter (which must return once stop is closed) and, with a
// gauge, the durable consumer's lag on RESULTS polled every LagEvery. A
// loop ended by ctx's cancellation is a clean stop (nil). The background
// work is gone when it returns.
func RunLoop(ctx context.Context, b *bus.Bus, durable string, lag prometheus.Gauge,
	progress func(stop <-chan struct{}), loop func(context.Context) error) error {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { progress(stop) })
	if lag != nil {
		pctx, stopPending := context.WithCancel(ctx)
		defer stopPending()
		wg.Go(func() {
			b.PollPending(pctx, bus.StreamResults, durable, LagEvery, func(n uint64) { lag.Set(float64(n)) })
		})
		go func() { // PollPending returns when pctx ends: end it with the loop
			<-stop
			stopPending()
		}()
	}
	err := loop(ctx)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil // stopped while starting or waiting
	}
	close(stop)
	wg.Wait()
	return err
}

// Subscription is a durable in-order consumer on RESULTS and the Reader on
// it.
type Subscription struct {
	*Reader
	cancel context.CancelFunc
	wait   func()
	resync bool // the next message delivered is taken whatever its sequence
}

// Subscribe (re)creates the durable consumer to deliver from stream
// sequence from and starts reading it. The first message it delivers is
// taken whatever its sequence (the ones before it may have been deleted by
// the stream's limits); after that a gap means deliveries were lost.
func Subscribe(ctx context.Context, b *bus.Bus, durable string, from uint64, fetch int, policy *ipv4.Policy, log *zap.Logger) (*Subscription, error) {
	cons, err := b.InOrderConsumer(ctx, bus.StreamResults, durable, nil, from, 4*fetch)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	rd := NewReader(cons, fetch, b.NC.MaxPayload(), policy, log)
	return &Subscription{Reader: rd, cancel: cancel, wait: rd.Start(rctx), resync: true}, nil
}

// Stop stops reading and waits until the reader and the decoders are gone.
func (s *Subscription) Stop() {
	s.cancel()
	s.wait()
}

// Apply calls apply on c's items in order from index from, and returns the
// index of the first item not applied. It stops with gap true before an
// item whose stream sequence is past *seq+1 (deliveries were lost in
// flight: read again from the first one missing); apply advances *seq.
func (s *Subscription) Apply(c *Chunk, from int, seq *uint64, apply func(*Item) error) (next int, gap bool, err error) {
	for next = from; next < len(c.Items); next++ {
		it := &c.Items[next]
		if !it.NoMeta {
			if !s.resync && it.Seq > *seq+1 {
				return next, true, nil
			}
			s.resync = false
		}
		if err := apply(it); err != nil {
			return next, false, err
		}
	}
	return next, false, nil
}
