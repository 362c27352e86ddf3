// Package resultpipe is the consuming pipeline of the modeler and the
// predictor: RESULTS read with pull requests in flight, decoded in parallel,
// handed on in stream order.
package resultpipe

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// ChunkSize is the most messages handed on at once between the stages.
const ChunkSize = 128

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
	Msg    jetstream.Msg
	Recv   time.Time // when the Reader got it
	Seq    uint64    // RESULTS stream sequence
	NoMeta bool      // not a JetStream message
	Svc    row.Service
	Phase  string
	Time   time.Time // the result's time (its first publication)
	Err    error     // not a usable result: dead-letter it
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
	fetch   int
	log     *zap.Logger
	ordered chan *Chunk // to the applier, in stream order; closed when reading stops
	work    chan *Chunk // to the decoders
	free    chan *Chunk // chunks to reuse
	Err     error       // why reading stopped early (set before ordered is closed)
}

func NewReader(cons jetstream.Consumer, fetch int, log *zap.Logger) *Reader {
	return &Reader{cons: cons, fetch: fetch, log: log, ordered: make(chan *Chunk, 16), work: make(chan *Chunk, 16), free: make(chan *Chunk, 40)}
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
					decode(&c.Items[i])
				}
				close(c.Done)
			}
		}()
	}
	return wg.Wait
}

func decode(it *Item) {
	md, err := it.Msg.Metadata()
	if err != nil {
		it.NoMeta, it.Err = true, err
		return
	}
	it.Seq = md.Sequence.Stream
	r, err := wire.DecodeResult(it.Msg.Data())
	if err == nil {
		it.Svc, err = r.Service()
	}
	it.Phase, it.Time, it.Err = r.Phase, r.Time, err
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
	}, jetstream.PullMaxMessages(2*r.fetch), jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
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
				c = r.Get()
			}
			select {
			case msg = <-in:
			case <-ctx.Done():
				return
			}
		}
		c.Items = append(c.Items, Item{Msg: msg, Recv: time.Now()})
		if len(c.Items) == ChunkSize {
			if !r.emit(ctx, c) {
				c = r.Get()
				return
			}
			c = r.Get()
		}
	}
}

func ConsumerGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound)
}

// Ordered delivers the chunks in stream order; it is closed when reading
// stops (Err says why, if early).
func (r *Reader) Ordered() <-chan *Chunk { return r.ordered }
