// Package bus connects the services to NATS JetStream: to a server or
// cluster by URL, or to an embedded nats-server with JetStream in a data
// directory. It sets up the streams, the snapshot store and the consumers
// idempotently, and holds the conventions every service follows: a
// Nats-Msg-Id on every publish, explicit acks after the effect, and a
// dead-letter subject for messages that can never be used.
package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/wire"
)

// Stream and bucket names.
const (
	StreamTargets     = "TARGETS"
	StreamResults     = "RESULTS"
	StreamPredictions = "PREDICTIONS"
	StreamDeadLetter  = "DEADLETTER"
	StreamInventory   = "INVENTORY"
	SnapshotBucket    = "gps-snapshots"
	ControlBucket     = "gps-control"
	InventoryBucket   = "gps-inventory"
)

// Keys of the control bucket.
const (
	KeySeed = "seed" // wire.SeedDone: the seeder finished
	KeyPlan = "plan" // wire.PlanDone: the modeler published the priors plan
	// KeyInventory: the RESULTS sequence up to which the inventory's
	// bucket and events are complete (where it resumes).
	KeyInventory = "inventory"
)

// Header names.
const (
	HeaderReason  = "Gps-Reason"
	HeaderSubject = "Gps-Subject"
	HeaderService = "Gps-Service"
)

// Config says where the bus is.
type Config struct {
	URL      string        // nats:// URL, or several comma-separated (a cluster); empty: an embedded server
	DataDir  string        // embedded: JetStream storage directory
	Listen   string        // embedded: host:port to also serve clients on ("" = in-process only)
	Replicas int           // stream replicas (1 for one server; 3 on a cluster)
	Dedup    time.Duration // de-duplication window of Nats-Msg-Id
	Name     string        // client connection name
	Options  []nats.Option // credentials, TLS, ... for a remote server
	// Limits bounds the streams, by stream name (StreamTargets, ...); the
	// key AllStreams applies to every stream not named (its age limit
	// except to TARGETS). A zero limit is unlimited. Every service applies them at start (Setup), so every
	// service of a deployment must be given the same limits.
	Limits map[string]Limits
}

// AllStreams is the key of Config.Limits that applies to every stream.
const AllStreams = "*"

// Limits bounds one stream; zero fields are unlimited. When a limit is
// reached, the oldest messages are deleted, except on TARGETS (a work queue
// of what is still to probe), which refuses new messages instead: publishers
// wait and retry (back-pressure on the seeder and the modeler).
type Limits struct {
	MaxAge   time.Duration // messages older than this are deleted
	MaxBytes int64         // the stream's size on disk, per copy
}

// StreamNames are the streams Setup creates, in order.
func StreamNames() []string {
	return []string{StreamTargets, StreamResults, StreamPredictions, StreamDeadLetter, StreamInventory}
}

// limits returns the limits of a stream. The age limit for all streams does
// not apply to TARGETS: work not yet done must not expire unseen (name
// TARGETS to give it one).
func (c Config) limits(stream string) Limits {
	if l, ok := c.Limits[stream]; ok {
		return l
	}
	l := c.Limits[AllStreams]
	if stream == StreamTargets {
		l.MaxAge = 0
	}
	return l
}

// Bus is a connection to JetStream.
type Bus struct {
	NC     *nats.Conn
	JS     jetstream.JetStream
	cfg    Config
	server *server.Server
	log    *zap.Logger
}

// Connect connects to cfg.URL, or starts an embedded server when it is empty.
func Connect(ctx context.Context, cfg Config, log *zap.Logger) (*Bus, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Dedup == 0 {
		cfg.Dedup = 10 * time.Minute
	}
	b := &Bus{cfg: cfg, log: log}
	opts := append([]nats.Option{nats.Name(cfg.Name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}, cfg.Options...)
	if cfg.URL == "" {
		if cfg.DataDir == "" {
			return nil, errors.New("connect bus: an embedded server needs a data directory")
		}
		so := &server.Options{JetStream: true, StoreDir: cfg.DataDir, NoSigs: true, ServerName: "gps-embedded"}
		if cfg.Listen == "" {
			so.DontListen = true
		} else {
			host, port, err := net.SplitHostPort(cfg.Listen)
			if err != nil {
				return nil, fmt.Errorf("connect bus: listen address %q: %w", cfg.Listen, err)
			}
			so.Host = host
			if so.Port, err = strconv.Atoi(port); err != nil {
				return nil, fmt.Errorf("connect bus: listen port %q: %w", port, err)
			}
		}
		s, err := server.NewServer(so)
		if err != nil {
			return nil, fmt.Errorf("start embedded nats: %w", err)
		}
		go s.Start()
		if !s.ReadyForConnections(30 * time.Second) {
			s.Shutdown()
			return nil, errors.New("start embedded nats: not ready after 30s")
		}
		b.server = s
		opts = append(opts, nats.InProcessServer(s))
		log.Info("embedded nats started", zap.String("data", cfg.DataDir), zap.String("listen", b.ClientURL()))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("connect nats %q: %w", RedactURL(cfg.URL), redactErr(err, cfg.URL))
	}
	b.NC = nc
	if b.JS, err = jetstream.New(nc, jetstream.WithPublishAsyncTimeout(asyncAckTimeout)); err != nil {
		b.Close()
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	return b, nil
}

// ClientURL is the embedded server's client URL ("" when not listening or remote).
func (b *Bus) ClientURL() string {
	if b.server == nil || b.cfg.Listen == "" {
		return ""
	}
	return b.server.ClientURL()
}

func (b *Bus) shutdownServer() {
	if b.server != nil {
		b.server.Shutdown()
		b.server.WaitForShutdown()
		b.server = nil
	}
}

// Close drains the connection and stops an embedded server.
func (b *Bus) Close() error {
	var err error
	if b.NC != nil {
		if e := b.NC.Drain(); e != nil && !errors.Is(e, nats.ErrConnectionClosed) {
			err = fmt.Errorf("drain nats: %w", e)
		}
		for i := 0; i < 100 && !b.NC.IsClosed(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		b.NC.Close()
	}
	b.shutdownServer()
	return err
}

// Setup creates or updates the streams, the snapshot store and the control
// bucket. Each request is retried while the cluster is unavailable (Retry).
func (b *Bus) Setup(ctx context.Context) error {
	streams := []jetstream.StreamConfig{
		{Name: StreamTargets, Subjects: []string{wire.TargetsPrefix + ">"}, Retention: jetstream.WorkQueuePolicy,
			Description: "probes to send, by phase; a work queue shared by the probers"},
		{Name: StreamResults, Subjects: []string{wire.ResultsPrefix + ">"}, Retention: jetstream.LimitsPolicy,
			Description: "services found or imported, by phase"},
		{Name: StreamPredictions, Subjects: []string{wire.PredictionsPrefix + ">"}, Retention: jetstream.LimitsPolicy,
			Description: "predicted services with probability and evidence"},
		{Name: StreamDeadLetter, Subjects: []string{wire.DeadLetterPrefix + ">"}, Retention: jetstream.LimitsPolicy,
			Description: "messages that could not be used, with the reason in Gps-Reason"},
		{Name: StreamInventory, Subjects: []string{wire.InventoryPrefix + ">"}, Retention: jetstream.LimitsPolicy,
			Description: "service events of the inventory: new, changed, gone"},
	}
	for _, sc := range streams {
		sc.Storage = jetstream.FileStorage
		sc.Replicas = b.cfg.Replicas
		sc.Duplicates = b.cfg.Dedup
		l := b.cfg.limits(sc.Name)
		sc.MaxAge, sc.MaxBytes = l.MaxAge, l.MaxBytes
		if sc.MaxBytes == 0 {
			sc.MaxBytes = -1 // the server's "unlimited"
		}
		if sc.MaxAge > 0 && sc.MaxAge < sc.Duplicates {
			sc.Duplicates = sc.MaxAge // the server refuses a window longer than the age limit
		}
		if sc.Name == StreamTargets {
			sc.Discard = jetstream.DiscardNew // back-pressure, never drop work
		}
		if err := b.Retry(ctx, "set up stream "+sc.Name, func(ctx context.Context) error {
			_, err := b.JS.CreateOrUpdateStream(ctx, sc)
			return err
		}); err != nil {
			return fmt.Errorf("set up stream %s: %w", sc.Name, err)
		}
	}
	if err := b.Retry(ctx, "set up snapshot store", func(ctx context.Context) error {
		_, err := b.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: SnapshotBucket,
			Description: "model snapshots of the modeler and predictor", Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas})
		return err
	}); err != nil {
		return fmt.Errorf("set up snapshot store: %w", err)
	}
	if err := b.Retry(ctx, "set up control bucket", func(ctx context.Context) error {
		_, err := b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: ControlBucket,
			Description: "pipeline milestones: seed done, plan published", Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas})
		return err
	}); err != nil {
		return fmt.Errorf("set up control bucket: %w", err)
	}
	if err := b.Retry(ctx, "set up inventory bucket", func(ctx context.Context) error {
		_, err := b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: InventoryBucket,
			Description: "the latest state of every service (wire.ServiceState), key ip.port", Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas})
		return err
	}); err != nil {
		return fmt.Errorf("set up inventory bucket: %w", err)
	}
	return nil
}

// Inventory opens the inventory key-value bucket.
func (b *Bus) Inventory(ctx context.Context) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	if err := b.Retry(ctx, "open inventory bucket", func(ctx context.Context) (err error) {
		kv, err = b.JS.KeyValue(ctx, InventoryBucket)
		return err
	}); err != nil {
		return nil, fmt.Errorf("open inventory bucket: %w", err)
	}
	return kv, nil
}

// Control opens the control key-value bucket.
func (b *Bus) Control(ctx context.Context) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	if err := b.Retry(ctx, "open control bucket", func(ctx context.Context) (err error) {
		kv, err = b.JS.KeyValue(ctx, ControlBucket)
		return err
	}); err != nil {
		return nil, fmt.Errorf("open control bucket: %w", err)
	}
	return kv, nil
}

// Snapshots opens the snapshot object store.
func (b *Bus) Snapshots(ctx context.Context) (jetstream.ObjectStore, error) {
	var s jetstream.ObjectStore
	if err := b.Retry(ctx, "open snapshot store", func(ctx context.Context) (err error) {
		s, err = b.JS.ObjectStore(ctx, SnapshotBucket)
		return err
	}); err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	return s, nil
}

// Publish publishes data with a Nats-Msg-Id, so a retried publish is stored
// once; it retries while the cluster is unavailable (Retry).
func (b *Bus) Publish(ctx context.Context, subject, msgID string, data []byte) error {
	_, err := b.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data}, msgID)
	return err
}

// PublishMsg publishes msg with the Nats-Msg-Id msgID, retrying while the
// cluster is unavailable (Retry), and returns the server's ack.
func (b *Bus) PublishMsg(ctx context.Context, msg *nats.Msg, msgID string) (*jetstream.PubAck, error) {
	var ack *jetstream.PubAck
	if err := b.Retry(ctx, "publish "+msg.Subject, func(ctx context.Context) (err error) {
		ack, err = b.JS.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID))
		return err
	}); err != nil {
		return nil, fmt.Errorf("publish %s: %w", msg.Subject, err)
	}
	return ack, nil
}

// PublishAsync publishes msg with the Nats-Msg-Id msgID without waiting for
// the server's ack (wait on the future); the client refuses while it is
// between servers, so that is retried (Retry).
func (b *Bus) PublishAsync(ctx context.Context, msg *nats.Msg, msgID string) (jetstream.PubAckFuture, error) {
	var f jetstream.PubAckFuture
	if err := b.Retry(ctx, "publish "+msg.Subject, func(context.Context) (err error) {
		f, err = b.JS.PublishMsgAsync(msg, jetstream.WithMsgID(msgID))
		return err
	}); err != nil {
		return nil, fmt.Errorf("publish %s: %w", msg.Subject, err)
	}
	return f, nil
}

// Async publishes many messages without waiting for each ack; Flush waits
// for them all and reports the first failure.
type Async struct {
	b       *Bus
	max     int
	futures []jetstream.PubAckFuture
	lastSeq uint64
}

// Async starts a batch of asynchronous publishes, flushed every max messages.
func (b *Bus) Async(max int) *Async { return &Async{b: b, max: max} }

// Publish queues one message.
func (a *Async) Publish(ctx context.Context, subject, msgID string, data []byte) error {
	f, err := a.b.PublishAsync(ctx, &nats.Msg{Subject: subject, Data: data}, msgID)
	if err != nil {
		return err
	}
	a.futures = append(a.futures, f)
	if len(a.futures) >= a.max {
		return a.Flush(ctx)
	}
	return nil
}

// Flush waits until every queued message is acknowledged by the server and
// returns the first publish error, if any.
func (a *Async) Flush(ctx context.Context) error {
	fs := a.futures
	a.futures = a.futures[:0]
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	var first error
	for _, f := range fs {
		select {
		case ack := <-f.Ok():
			if ack != nil && ack.Sequence > a.lastSeq && !ack.Duplicate {
				a.lastSeq = ack.Sequence
			}
		case err := <-f.Err():
			// A lost or refused ack: publish again, synchronously and with
			// retries. The Nats-Msg-Id makes this safe if the first one was
			// stored.
			m := f.Msg()
			ack, err2 := a.b.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Data: m.Data}, m.Header.Get(jetstream.MsgIDHeader))
			if err2 != nil {
				if first == nil {
					first = fmt.Errorf("publish %s: %w", m.Subject, errors.Join(err, err2))
				}
				continue
			}
			if ack.Sequence > a.lastSeq && !ack.Duplicate {
				a.lastSeq = ack.Sequence
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return errors.New("publish: no acks from the server for a minute")
		}
	}
	return first
}

// LastSeq is the highest stream sequence of the messages acknowledged so far
// (duplicates excluded).
func (a *Async) LastSeq() uint64 { return a.lastSeq }

// Bounds of a dead letter. A dead letter repeats its message and adds
// headers, so a message near the server's max payload cannot be stored
// whole: its body is cut to what fits, and Gps-Body-Size and
// Gps-Body-Sha256 say what it was. The reason is cut to MaxReason bytes (it
// may quote the bad value, and it goes to logs and to the term too).
const (
	MaxReason        = 512
	HeaderBodySize   = "Gps-Body-Size"   // bytes of the original body, on every dead letter
	HeaderBodySHA256 = "Gps-Body-Sha256" // hex SHA-256 of the original body, when the body stored is cut
	// DeadLetterTries bounds the deliveries of a message whose dead letter
	// fails for a transient reason: at the last, it is terminated anyway.
	DeadLetterTries = 5
	// headerSlack is room for the headers the client adds (Nats-Msg-Id).
	headerSlack = 1024
)

// ErrDeadLetterLost is returned by DeadLetter when the dead letter could
// not be stored and the message was terminated anyway (never redelivered).
var ErrDeadLetterLost = errors.New("dead letter lost, message terminated")

// CutReason is reason on one line, cut to MaxReason bytes.
func CutReason(reason string) string {
	reason = strings.NewReplacer("\r", " ", "\n", " ").Replace(reason)
	if len(reason) <= MaxReason {
		return reason
	}
	const more = "... (cut)"
	return strings.ToValidUTF8(reason[:MaxReason-len(more)], "") + more
}

// DeadLetter moves an unusable message to gps.dlq.<service> with its reason,
// and terminates it so it is never redelivered. A body that would take the
// dead letter past the server's max payload is stored cut (see
// HeaderBodySHA256); one the server still refuses is stored empty. When
// even that fails for good, or for a transient reason on the message's
// DeadLetterTries-th delivery, the message is terminated without a dead
// letter and the error wraps ErrDeadLetterLost: a caller never retries a
// message forever. Other errors (the bus unavailable, ctx ended) leave the
// message to be handled again.
func (b *Bus) DeadLetter(ctx context.Context, service string, msg jetstream.Msg, reason error) error {
	why := CutReason(reason.Error())
	data := msg.Data()
	out := nats.NewMsg(wire.DeadLetterPrefix + service)
	out.Header.Set(HeaderReason, why)
	out.Header.Set(HeaderSubject, msg.Subject())
	out.Header.Set(HeaderService, service)
	out.Header.Set(HeaderBodySize, strconv.Itoa(len(data)))
	out.Data = data
	id := service
	delivered := uint64(1)
	if md, err := msg.Metadata(); err == nil {
		id = fmt.Sprintf("%s:%s:%d", service, md.Stream, md.Sequence.Stream)
		delivered = md.NumDelivered
	}
	cut := func(n int) {
		if out.Header.Get(HeaderBodySHA256) == "" {
			sum := sha256.Sum256(data)
			out.Header.Set(HeaderBodySHA256, hex.EncodeToString(sum[:]))
		}
		out.Data = data[:max(0, min(n, len(data)))]
	}
	if room := int(b.NC.MaxPayload()) - headerBytes(out.Header) - headerSlack; len(data) > room {
		cut(room)
	}
	_, err := b.PublishMsg(ctx, out, id)
	if err != nil && !Transient(err) && ctx.Err() == nil && len(out.Data) > 0 {
		// The server refuses it for good: perhaps the body still (a
		// stream's or account's smaller limit). Once more without it.
		cut(0)
		_, err = b.PublishMsg(ctx, out, id)
	}
	if err != nil {
		if ctx.Err() == nil && (!Transient(err) || delivered >= DeadLetterTries) {
			return fmt.Errorf("dead-letter: %w: %w", ErrDeadLetterLost, errors.Join(err, msg.TermWithReason(why)))
		}
		return fmt.Errorf("dead-letter: %w", err)
	}
	if err := msg.TermWithReason(why); err != nil {
		return fmt.Errorf("dead-letter: term: %w", err)
	}
	return nil
}

// headerBytes is the size of h as the client encodes it.
func headerBytes(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + len(": \r\n")
		}
	}
	return n
}

// AckWait is how long a delivered message may stay unacknowledged before
// the server delivers it again. A service that stops acks or naks what it
// holds (never leaving it to this timeout); long work reports InProgress.
const AckWait = 30 * time.Second

// Consumer creates or updates a durable pull consumer with explicit acks.
// With startSeq > 0 the consumer is recreated to deliver from that stream
// sequence: a service resuming from a snapshot reads exactly what follows it.
// The requests are retried while the cluster is unavailable (Retry).
func (b *Bus) Consumer(ctx context.Context, stream, durable string, filters []string, startSeq uint64, maxAckPending int, opts ...ConsumerOpt) (jetstream.Consumer, error) {
	return b.consumer(ctx, stream, durable, filters, startSeq, maxAckPending, jetstream.AckExplicitPolicy, opts)
}

// ConsumerOpt changes a consumer's configuration.
type ConsumerOpt func(*jetstream.ConsumerConfig)

// WithAckWait sets how long a delivered message may stay unacknowledged
// before it is delivered again (AckWait by default). A short one recovers
// a delivery lost in flight, or the messages of a consumer that crashed,
// sooner; the consumer must then report InProgress on long work.
func WithAckWait(d time.Duration) ConsumerOpt {
	return func(c *jetstream.ConsumerConfig) { c.AckWait = d }
}

// InOrderConsumer is Consumer for a service that applies the stream in
// order and alone (the modeler, the predictor): its acks are cumulative
// (AckAllPolicy), so an ack acknowledges every message before it too. An ack
// lost with a server that goes away is then made good by the next one, and
// one confirmed ack (ConfirmAck) of the last message applied confirms them
// all.
func (b *Bus) InOrderConsumer(ctx context.Context, stream, durable string, filters []string, startSeq uint64, maxAckPending int) (jetstream.Consumer, error) {
	return b.consumer(ctx, stream, durable, filters, startSeq, maxAckPending, jetstream.AckAllPolicy, nil)
}

func (b *Bus) consumer(ctx context.Context, stream, durable string, filters []string, startSeq uint64, maxAckPending int, ack jetstream.AckPolicy, opts []ConsumerOpt) (jetstream.Consumer, error) {
	cc := jetstream.ConsumerConfig{Durable: durable, AckPolicy: ack, FilterSubjects: filters,
		MaxAckPending: maxAckPending, AckWait: AckWait, MaxDeliver: -1, Replicas: b.cfg.Replicas}
	for _, o := range opts {
		o(&cc)
	}
	if startSeq > 0 {
		if err := b.Retry(ctx, "reset consumer "+durable, func(ctx context.Context) error {
			err := b.JS.DeleteConsumer(ctx, stream, durable)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				return nil
			}
			return err
		}); err != nil {
			return nil, fmt.Errorf("reset consumer %s: %w", durable, err)
		}
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = startSeq
	}
	var c jetstream.Consumer
	if err := b.Retry(ctx, "create consumer "+durable, func(ctx context.Context) (err error) {
		c, err = b.JS.CreateOrUpdateConsumer(ctx, stream, cc)
		return err
	}); err != nil {
		return nil, fmt.Errorf("create consumer %s on %s: %w", durable, stream, err)
	}
	return c, nil
}
