// Package bus connects the services to NATS JetStream: to a server or
// cluster by URL, or to an embedded nats-server with JetStream in a data
// directory. It sets up the streams, the snapshot store and the consumers
// idempotently, and holds the conventions every service follows: a
// Nats-Msg-Id on every publish, explicit acks after the effect, and a
// dead-letter subject for messages that can never be used.
package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
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
	SnapshotBucket    = "gps-snapshots"
	ControlBucket     = "gps-control"
)

// Keys of the control bucket.
const (
	KeySeed = "seed" // wire.SeedDone: the seeder finished
	KeyPlan = "plan" // wire.PlanDone: the modeler published the priors plan
)

// Header names.
const (
	HeaderReason  = "Gps-Reason"
	HeaderSubject = "Gps-Subject"
	HeaderService = "Gps-Service"
)

// Config says where the bus is.
type Config struct {
	URL      string        // nats:// URL; empty: an embedded server
	DataDir  string        // embedded: JetStream storage directory
	Listen   string        // embedded: host:port to also serve clients on ("" = in-process only)
	Replicas int           // stream replicas (1 for one server; 3 on a cluster)
	Dedup    time.Duration // de-duplication window of Nats-Msg-Id
	Name     string        // client connection name
	Options  []nats.Option // credentials, TLS, ... for a remote server
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
		return nil, fmt.Errorf("connect nats %q: %w", cfg.URL, err)
	}
	b.NC = nc
	if b.JS, err = jetstream.New(nc); err != nil {
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

// Setup creates or updates the streams and the snapshot store.
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
	}
	for _, sc := range streams {
		sc.Storage = jetstream.FileStorage
		sc.Replicas = b.cfg.Replicas
		sc.Duplicates = b.cfg.Dedup
		if _, err := b.JS.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("set up stream %s: %w", sc.Name, err)
		}
	}
	if _, err := b.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: SnapshotBucket,
		Description: "model snapshots of the modeler and predictor", Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas}); err != nil {
		return fmt.Errorf("set up snapshot store: %w", err)
	}
	if _, err := b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: ControlBucket,
		Description: "pipeline milestones: seed done, plan published", Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas}); err != nil {
		return fmt.Errorf("set up control bucket: %w", err)
	}
	return nil
}

// Control opens the control key-value bucket.
func (b *Bus) Control(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := b.JS.KeyValue(ctx, ControlBucket)
	if err != nil {
		return nil, fmt.Errorf("open control bucket: %w", err)
	}
	return kv, nil
}

// Snapshots opens the snapshot object store.
func (b *Bus) Snapshots(ctx context.Context) (jetstream.ObjectStore, error) {
	s, err := b.JS.ObjectStore(ctx, SnapshotBucket)
	if err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	return s, nil
}

// Publish publishes data with a Nats-Msg-Id, so a retried publish is stored once.
func (b *Bus) Publish(ctx context.Context, subject, msgID string, data []byte) error {
	if _, err := b.JS.Publish(ctx, subject, data, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
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
	f, err := a.b.JS.PublishAsync(subject, data, jetstream.WithMsgID(msgID))
	if err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
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
			if first == nil {
				first = fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
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

// DeadLetter moves an unusable message to gps.dlq.<service> with its reason,
// and terminates it so it is never redelivered.
func (b *Bus) DeadLetter(ctx context.Context, service string, msg jetstream.Msg, reason error) error {
	out := nats.NewMsg(wire.DeadLetterPrefix + service)
	out.Data = msg.Data()
	out.Header.Set(HeaderReason, reason.Error())
	out.Header.Set(HeaderSubject, msg.Subject())
	out.Header.Set(HeaderService, service)
	id := service
	if md, err := msg.Metadata(); err == nil {
		id = fmt.Sprintf("%s:%s:%d", service, md.Stream, md.Sequence.Stream)
	}
	out.Header.Set(jetstream.MsgIDHeader, id)
	if _, err := b.JS.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	if err := msg.TermWithReason(reason.Error()); err != nil {
		return fmt.Errorf("dead-letter: term: %w", err)
	}
	return nil
}

// Consumer creates or updates a durable pull consumer with explicit acks.
// With startSeq > 0 the consumer is recreated to deliver from that stream
// sequence: a service resuming from a snapshot reads exactly what follows it.
func (b *Bus) Consumer(ctx context.Context, stream, durable string, filters []string, startSeq uint64, maxAckPending int) (jetstream.Consumer, error) {
	cc := jetstream.ConsumerConfig{Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: filters,
		MaxAckPending: maxAckPending, AckWait: 30 * time.Second, MaxDeliver: -1, Replicas: b.cfg.Replicas}
	if startSeq > 0 {
		if err := b.JS.DeleteConsumer(ctx, stream, durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("reset consumer %s: %w", durable, err)
		}
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = startSeq
	}
	c, err := b.JS.CreateOrUpdateConsumer(ctx, stream, cc)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on %s: %w", durable, stream, err)
	}
	return c, nil
}
