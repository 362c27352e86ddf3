// Package prober sends the probes: it consumes the targets (a work queue,
// shared by every prober) and the predictions, probes what the scan policy
// allows, and publishes each service found as a result.
//
// The Responder answers the probes: with --live, pkg/netprobe sends real
// packets (TCP connect or a raw SYN scan, then zgrab2 grabs) to what the
// policy allows; with --world, a simulated world (a lab world's ground
// truth, WorldResponder) answers and no packet is sent; a caller may inject
// its own.
//
// Every message pulled waits in one schedule.Scheduler (send.go), which
// releases its work by expected services per probe: predictions at their
// probability, sweeps in chunks at a yield learned from their hits, under
// --rate and --budget. For each target or prediction the prober
//   - refuses what lies outside the allow policy (allow list required, the
//     IANA special-purpose ranges and the block file always blocked): nothing
//     is probed for it, it is counted (Stats.Refused), logged at Warn, and its
//     message is dead-lettered with the reason once the allowed targets of
//     the message are done. A sweep partly outside the policy sweeps only the
//     allowed parts. A sweep of a prefix larger than a plan group (shorter
//     than --step) is refused the same way (Stats.TooLarge).
//   - sends no probe twice: the scheduler drops a target already sent and a
//     prediction inside a chunk already released, and sweeps leave out the
//     seed's hosts (the message's skip list);
//   - drops predictions with probability <= --min-probability;
//   - probes via the Responder and publishes each service found as a
//     wire.Result (the target's phase; "predicted" for predictions; source
//     "probe"; its probe count) with the Nats-Msg-Id "res:<ip>:<port>", and
//     acks a message only once all of its work is probed and every result
//     is acknowledged by the server.
//
// Results are checked against the policy again on receipt (as ZMap drops
// replies from disallowed sources). Undecodable messages are dead-lettered
// (Stats.Bad). A responder or bus error naks the message for a retry.
//
// Stopping (ctx ends): the prober pulls nothing more; a message that arrives
// from a pull still in flight is nak'ed at once, for another prober. The
// messages being handled finish (their probes are sent, their results
// acknowledged by the server, then they are acked) for up to
// Config.DrainTimeout; what is still unfinished then is nak'ed without
// delay. Nothing is left to the consumer's AckWait: a rolling update loses
// no target and delays none by more than the drain.
package prober

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/explore"
	"github.com/gpsscan/gps/pkg/problems"
	"github.com/gpsscan/gps/pkg/telemetry"
)

// Defaults of Config.
const (
	// DefaultConcurrency is the senders of a prober on a world: one, which
	// answers at memory speed and keeps the scheduler's order exactly.
	DefaultConcurrency = 1
	// DefaultLiveConcurrency is the senders of a live prober: a sender
	// probes one work (a probe, a chunk) at a time, and a live probe of a
	// service waits for the network (a banner, a handshake, a timeout).
	DefaultLiveConcurrency = 256
	// DefaultAwaitPredictions bounds the lockstep wait of a prober on a
	// world (Config.AwaitPredictions).
	DefaultAwaitPredictions = 5 * time.Second
	DefaultDrainTimeout     = 10 * time.Second
	DefaultPredAckWait      = 2 * time.Minute
	DefaultHitrate          = 1e-5 // as gps.DefaultHitrate, GPS's default
	// LabAllow is the allow list of a world run without one.
	LabAllow = "127.0.0.0/8"
	// DefaultStep is the modeler's default --step: its plan groups, the
	// largest sweeps, are /16s.
	DefaultStep = 16
	// Durable is the consumer name of the probers on TARGETS and PREDICTIONS.
	Durable = bus.ProberConsumer
)

// ErrConfig is wrapped by every error of Config.Validate.
var ErrConfig = errors.New("bad prober config")

// Config configures the prober.
type Config struct {
	World       string        // lab world directory whose truth.jsonl answers the probes
	Allow       []string      // allowed prefixes (each may be comma-separated); required unless World is set (then 127.0.0.0/8)
	AllowFile   string        // file of allowed prefixes
	BlockFile   string        // file of blocked prefixes (the IANA ranges are always blocked)
	Concurrency int           // senders, each probing one work at a time; 0: 1, live 256
	Latency     time.Duration // world: wait per probe (once per sweep)
	Loss        float64       // world: probability a service does not answer
	LossSeed    int64         // world: which services are lost
	Hitrate     float64       // drop predictions with probability <= this
	Step        int           // the plan's prefix length: a sweep of a shorter prefix is refused; 0: 16
	// DrainTimeout bounds how long the messages begun may take to finish
	// once ctx ends; then they are nak'ed. 0: 10s.
	DrainTimeout time.Duration
	// PredAckWait is the AckWait of the shared predictions consumer: how
	// long a crashed prober's predictions wait before the server hands
	// them to a prober again. Held ones are kept alive at a third of it.
	// 0: 2m.
	PredAckWait time.Duration
	Budget      uint64 // probes; the prober stops sending after this many (0: no limit)
	// AwaitPredictions bounds how long a sender waits, after a work that
	// found services, for the predictions of those results to reach the
	// scheduler (the lockstep of a simulated run: see await). 0: no wait;
	// on a world the flag's default is DefaultAwaitPredictions.
	AwaitPredictions time.Duration
	// GoneAfter is the refresh probes in a row a known service may miss
	// before it is published gone (refresh.go); 0: DefaultGoneAfter.
	GoneAfter int
	// RefreshYield is the scheduler's yield of refresh probes; 0: the share
	// of the cycle before's refreshes that answered.
	RefreshYield float64
	// Own, with OwnSeed > 0, runs gps-stream-own's policy (pkg/explore,
	// own.go): the prober takes its own seed of OwnSpace and sweeps the
	// ports it learns, beside what it pulls. 0: off.
	Own      explore.Config
	OwnSpace []string // prefixes of /16 or shorter: the space it seeds and sweeps
	LiveConfig
}

// Defaults of the refresh of known services.
const (
	DefaultGoneAfter = 1 // as gps eval's continuous policy
	// initialSurvival is the refresh yield before any refresh answered
	// (gps eval's continuous policy's).
	initialSurvival = 0.95
)

// RegisterFlags registers the prober's flags on fs with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.World, "world", "", "simulate the Internet with this lab world's truth.jsonl (no packets are sent)")
	fs.Var((*listFlag)(&c.Allow), "allow", "allowed prefix or address (repeatable, comma-separated); required unless --world, which defaults it to "+LabAllow)
	fs.StringVar(&c.AllowFile, "allow-file", "", "file of allowed prefixes, one a line, # comments")
	fs.StringVar(&c.BlockFile, "block-file", "", "file of blocked prefixes (the IANA special-purpose ranges are always blocked)")
	fs.IntVar(&c.Concurrency, "concurrency", 0, fmt.Sprintf("senders, each probing one work (a probe or a sweep chunk) at a time in the scheduler's order (0: %d, with --live %d)", DefaultConcurrency, DefaultLiveConcurrency))
	fs.Uint64Var(&c.Budget, "budget", 0, "probes: stop sending after this many, the work of highest expected yield first (0: no limit)")
	fs.IntVar(&c.GoneAfter, "gone-after", DefaultGoneAfter, "in cycles: refresh probes in a row a known service may miss before it is published gone")
	fs.Float64Var(&c.RefreshYield, "refresh-yield", 0, "in cycles: the scheduler's yield of refresh probes (0: the share of the cycle before's refreshes that answered)")
	fs.DurationVar(&c.AwaitPredictions, "await-predictions", -1, fmt.Sprintf("after a probe or chunk that found services, wait up to this long for their predictions to reach the prober before sending more (lockstep with the predictor; -1: %v with --world, 0 live)", DefaultAwaitPredictions))
	fs.DurationVar(&c.Latency, "latency", 0, "world: simulated round trip of a probe")
	fs.Float64Var(&c.Loss, "loss", 0, "world: probability that a service does not answer (0..1)")
	fs.Int64Var(&c.LossSeed, "loss-seed", 0, "world: seed of which services are lost")
	fs.Float64Var(&c.Hitrate, "min-probability", DefaultHitrate, "drop predictions with probability at or below this")
	fs.IntVar(&c.Step, "step", DefaultStep, "the modeler's --step: a sweep of a prefix shorter than /step (larger than a plan group) is refused")
	c.registerOwnFlags(fs)
	c.LiveConfig.RegisterFlags(fs)
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", DefaultDrainTimeout, "on stop: how long the messages being handled may take to finish before they are nak'ed for another prober")
	fs.DurationVar(&c.PredAckWait, "predictions-ack-wait", DefaultPredAckWait, "how long the predictions a crashed prober held wait before they are delivered again (the shared consumer's AckWait: give every prober the same); held ones are kept alive at a third of it")
}

// WithDefaults returns c with zero fields set to their defaults: Concurrency
// 4 (256 when Live), and with a World but no allow list, the allow list 127.0.0.0/8. A zero
// Hitrate stays zero (every prediction with probability > 0 is probed).
func (c Config) WithDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
		if c.Live {
			c.Concurrency = DefaultLiveConcurrency
		}
	}
	c.DrainTimeout = cmp.Or(c.DrainTimeout, DefaultDrainTimeout)
	c.PredAckWait = cmp.Or(c.PredAckWait, DefaultPredAckWait)
	c.Step = cmp.Or(c.Step, DefaultStep)
	if c.AwaitPredictions < 0 {
		c.AwaitPredictions = 0
		if c.World != "" && !c.Live {
			c.AwaitPredictions = DefaultAwaitPredictions
		}
	}
	if len(c.Allow) == 0 && c.AllowFile == "" && c.World != "" {
		c.Allow = []string{LabAllow}
	}
	return c
}

// Validate checks c (zero fields taking their defaults); the error lists
// every problem. A zero Hitrate keeps every prediction with probability > 0.
func (c Config) Validate() error {
	c = c.WithDefaults()
	probs := problems.New(ErrConfig)
	bad := probs.Addf
	if len(c.Allow) == 0 && c.AllowFile == "" {
		bad("an allow list is required (--allow or --allow-file; --world defaults it to %s)", LabAllow)
	}
	if c.Concurrency < 1 {
		bad("--concurrency %d: want at least 1", c.Concurrency)
	}
	if c.Latency < 0 {
		bad("--latency %v: want 0 or more", c.Latency)
	}
	if c.PredAckWait != 0 && c.PredAckWait < ackWait {
		bad("--predictions-ack-wait %v: want %v or more", c.PredAckWait, ackWait)
	}
	if c.DrainTimeout < 0 {
		bad("--drain-timeout %v: want 0 or more", c.DrainTimeout)
	}
	if !(c.Loss >= 0 && c.Loss <= 1) {
		bad("--loss %v: want 0 <= loss <= 1", c.Loss)
	}
	if !(c.Hitrate >= 0 && c.Hitrate <= 1) {
		bad("--min-probability %v: want 0 <= p <= 1", c.Hitrate)
	}
	if c.Live && c.Engine != "" && c.Engine != "connect" && c.Engine != "syn" {
		bad("--engine %q: want connect or syn", c.Engine)
	}
	if c.Step < 1 || c.Step > 32 {
		bad("--step %d: want 1..32", c.Step)
	}
	c.validateOwn(bad)
	return probs.Err()
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// Stats counts what the prober did; safe for concurrent reads.
type Stats struct {
	Probes      atomic.Uint64 // probes sent: 1 per single probe, the addresses of each sweep chunk
	Found       atomic.Uint64 // results published
	Refused     atomic.Uint64 // targets and predictions outside the allow policy (not probed)
	TooLarge    atomic.Uint64 // sweeps of a prefix shorter than Config.Step (not swept)
	Bad         atomic.Uint64 // undecodable messages (dead-lettered)
	Skipped     atomic.Uint64 // probes the scheduler dropped: already sent, or inside a chunk released
	BelowMin    atomic.Uint64 // predictions dropped at or below --min-probability
	Retried     atomic.Uint64 // messages nak'ed after a responder or bus error
	Released    atomic.Uint64 // messages nak'ed unfinished or unhandled because the prober stopped
	Targets     atomic.Uint64 // target messages handled (acked or dead-lettered)
	BudgetSpent atomic.Bool   // the probe budget is spent: nothing more is sent
	Predictions atomic.Uint64 // prediction messages handled (acked or dead-lettered)
	// LockstepGivenUp counts the lockstep waits given up (see await).
	LockstepGivenUp atomic.Uint64
	// Cycles (refresh.go).
	Known        atomic.Int64  // known services it refreshes
	Refreshed    atomic.Uint64 // refresh probes answered
	Missed       atomic.Uint64 // refresh probes not answered
	Gone         atomic.Uint64 // gone results published
	RefreshCycle atomic.Int64  // the cycle whose refreshes were pushed; -1: none
	RefreshDone  atomic.Int64  // the cycle whose refreshes are all probed; -1: none
	CycleProbes  atomic.Uint64 // Probes when the refreshes of RefreshCycle were pushed
	// Own seed (own.go).
	OwnIdle atomic.Bool   // every sender waits and the policy has nothing left to seed
	Pseudo  atomic.Uint64 // predictions dropped: their host is a pseudo-host (more than explore.PseudoPorts found)
}

// Deps are what Run needs.
type Deps struct {
	Config    Config
	Bus       *bus.Bus
	Log       *zap.Logger        // the caller names the service (With "service")
	Stats     *Stats             // optional
	Responder Responder          // nil: a WorldResponder of Config.World
	Now       func() time.Time   // optional clock; time.Now
	Metrics   *telemetry.Metrics // optional: probes sent, dead letters, handle time, consumer lag
	Ready     func()             // optional: called once the consumers are set up
	OnBudget  func()             // optional: called once when the probe budget is spent
}
