package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/services/all"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/predictor"
	"github.com/gpsscan/gps/services/prober"
	"github.com/gpsscan/gps/services/seeder"
	"github.com/gpsscan/gps/services/watch"
)

// busFlags are the flags every service has to reach the bus.
type busFlags struct {
	url, data, listen string
	replicas          int
	creds, nkey       string
	tlsCA, tlsCert    string
	tlsKey            string
	maxAge, maxBytes  string
}

func (f *busFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "nats", os.Getenv("GPS_NATS_URL"), "NATS server URL, or a cluster's URLs comma-separated (env GPS_NATS_URL); empty: start an embedded server")
	fs.StringVar(&f.data, "data", "", "embedded server: JetStream data directory (default: a new temporary directory)")
	fs.StringVar(&f.listen, "listen", "", "embedded server: also serve NATS clients on this host:port (e.g. 127.0.0.1:4222)")
	fs.IntVar(&f.replicas, "replicas", 1, "stream replicas (3 on a 3-node cluster)")
	fs.StringVar(&f.creds, "creds", os.Getenv("GPS_NATS_CREDS"), "NATS credentials file (JWT + nkey seed; env GPS_NATS_CREDS)")
	fs.StringVar(&f.nkey, "nkey", os.Getenv("GPS_NATS_NKEY"), "NATS nkey seed file (env GPS_NATS_NKEY)")
	fs.StringVar(&f.tlsCA, "tls-ca", os.Getenv("GPS_NATS_TLS_CA"), "CA certificate file to verify the NATS server (env GPS_NATS_TLS_CA)")
	fs.StringVar(&f.tlsCert, "tls-cert", os.Getenv("GPS_NATS_TLS_CERT"), "client certificate file for NATS mutual TLS (env GPS_NATS_TLS_CERT)")
	fs.StringVar(&f.tlsKey, "tls-key", os.Getenv("GPS_NATS_TLS_KEY"), "client key file for NATS mutual TLS (env GPS_NATS_TLS_KEY)")
	fs.StringVar(&f.maxAge, "stream-max-age", os.Getenv("GPS_STREAM_MAX_AGE"),
		"delete stream messages older than this: one age for every stream but TARGETS (72h, 7d) and/or STREAM=age,... (RESULTS=7d,PREDICTIONS=48h); empty or 0: unlimited (env GPS_STREAM_MAX_AGE). Give every service the same limits")
	fs.StringVar(&f.maxBytes, "stream-max-bytes", os.Getenv("GPS_STREAM_MAX_BYTES"),
		"bound each stream's size per copy: one size for every stream (50GiB) or STREAM=size,... (TARGETS=50GiB,RESULTS=200GiB); TARGETS then refuses new targets (publishers wait), the others drop their oldest; empty or 0: unlimited (env GPS_STREAM_MAX_BYTES)")
}

// options turns the auth and TLS flags into connection options.
func (f *busFlags) options() ([]nats.Option, error) {
	var opts []nats.Option
	if f.creds != "" {
		opts = append(opts, nats.UserCredentials(f.creds))
	}
	if f.nkey != "" {
		o, err := nats.NkeyOptionFromSeed(f.nkey)
		if err != nil {
			return nil, usageErr("--nkey %s: %v", f.nkey, err)
		}
		opts = append(opts, o)
	}
	if f.tlsCA != "" {
		opts = append(opts, nats.RootCAs(f.tlsCA))
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, usageErr("--tls-cert and --tls-key go together")
	}
	if f.tlsCert != "" {
		opts = append(opts, nats.ClientCert(f.tlsCert, f.tlsKey))
	}
	if len(opts) > 0 && f.url == "" {
		return nil, usageErr("--creds, --nkey and --tls-* need --nats URL (the embedded server has no auth)")
	}
	return opts, nil
}

// validate checks the bus flags without connecting.
func (f *busFlags) validate() error {
	if _, err := f.options(); err != nil {
		return err
	}
	if _, err := bus.ParseLimits(f.maxAge, f.maxBytes); err != nil {
		return usageErr("%v", err)
	}
	return nil
}

func (f *busFlags) connect(ctx context.Context, name string, log *zap.Logger) (*bus.Bus, error) {
	opts, err := f.options()
	if err != nil {
		return nil, err
	}
	limits, err := bus.ParseLimits(f.maxAge, f.maxBytes)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	cfg := bus.Config{URL: f.url, DataDir: f.data, Listen: f.listen, Replicas: f.replicas, Name: "gps-" + name, Options: opts, Limits: limits}
	if limits != nil {
		log.Info("stream limits", zap.String("limits", bus.FormatLimits(limits)))
	}
	if cfg.URL == "" && cfg.DataDir == "" {
		d, err := os.MkdirTemp("", "gps-nats-")
		if err != nil {
			return nil, fmt.Errorf("make data dir: %w", err)
		}
		cfg.DataDir = filepath.Join(d, "jetstream")
	}
	b, err := bus.Connect(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if err := b.Setup(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// svc is what a service command's run gets: the bus, the logger, and, when
// --metrics-addr serves them, the process's metrics and the readiness
// switch (Ready is never nil).
type svc struct {
	Bus     *bus.Bus
	Log     *zap.Logger
	Metrics *telemetry.Metrics // nil: metrics disabled
	Ready   func()             // the service consumes: /readyz answers 200
}

// serviceOpts are the defaults of the flags every service command has
// besides the bus's.
type serviceOpts struct {
	metricsAddr string        // default of --metrics-addr ("" = disabled)
	shutdown    time.Duration // default of --shutdown-timeout
}

// maxShutdownDelay bounds --shutdown-delay: a pod that lingers longer is
// more likely a typo (2m for 2s) than a wish.
const maxShutdownDelay = 5 * time.Minute

// Defaults of serviceOpts.
var (
	daemonOpts = serviceOpts{metricsAddr: telemetry.DefaultAddr, shutdown: 20 * time.Second}
	modelOpts  = serviceOpts{metricsAddr: telemetry.DefaultAddr, shutdown: time.Minute} // a last snapshot of a big model
	// gps all runs on a workstation, often beside `gps lab serve`, whose
	// worlds listen on 127.1.0.0/16 and up, port 9090 included: a wildcard
	// :9090 would take that port from them.
	allOpts     = serviceOpts{metricsAddr: "127.0.0.1" + telemetry.DefaultAddr, shutdown: time.Minute}
	toolOpts    = serviceOpts{shutdown: 20 * time.Second}
	errShutdown = errors.New("shutdown timed out")
)

// serviceCmd makes the command of one service: its flags, then the process
// around it (runService). register returns the check of the service's flags,
// which runs before anything connects (a bad flag is a usage error even with
// no server), and the service's run.
func serviceCmd(name, usage string, opts serviceOpts, register func(fs *flag.FlagSet) (validate func() error, run func(ctx context.Context, s svc) error)) command {
	return command{
		name:  name,
		usage: usage,
		flags: func(fs *flag.FlagSet) func(context.Context, *zap.Logger) error {
			var bf busFlags
			bf.register(fs)
			sf := serviceFlags{metricsAddr: opts.metricsAddr, shutdown: opts.shutdown}
			fs.StringVar(&sf.metricsAddr, "metrics-addr", opts.metricsAddr, "serve /metrics, /healthz and /readyz on this host:port (empty: no telemetry server)")
			fs.DurationVar(&sf.shutdown, "shutdown-timeout", opts.shutdown, "on SIGTERM: how long the service may take to drain (ack or nak what it holds, last snapshot) before the process exits anyway with status 1")
			fs.DurationVar(&sf.delay, "shutdown-delay", 0, "on SIGTERM: /readyz answers 503 at once, and the service goes on working this long before it drains, so that whatever watches readiness (endpoints, a rollout, a load balancer) sees the pod leave first")
			validate, run := register(fs)
			return func(ctx context.Context, log *zap.Logger) error {
				if err := validate(); err != nil {
					return usageErr("%v", err)
				}
				if err := bf.validate(); err != nil {
					return err
				}
				if name != "all" {
					log = log.With(zap.String("service", name))
				}
				return runService(ctx, sf, log, func(ctx context.Context) (*bus.Bus, error) { return bf.connect(ctx, name, log) }, run)
			}
		},
	}
}

// serviceFlags are the process flags of a service command.
type serviceFlags struct {
	metricsAddr string
	shutdown    time.Duration
	delay       time.Duration // --shutdown-delay
}

// runService runs one service process:
//   - the telemetry server (/metrics, /healthz, /readyz) starts first, on a
//     context of its own, so it answers while the bus connects and while the
//     service drains; one registry and one Metrics for the process;
//   - the service runs on a context that ends when ctx does (SIGTERM); the
//     service calls Ready once it consumes (/readyz 200);
//   - when ctx ends, /readyz turns 503 first (Kubernetes stops routing to the
//     pod); the service goes on for sf.delay, then its context is cancelled:
//     it acks or naks what it holds, takes its last snapshot and returns,
//     within sf.shutdown, or runService gives up with errShutdown;
//   - then the bus is drained and closed, and the telemetry server stops.
func runService(ctx context.Context, sf serviceFlags, log *zap.Logger, connect func(context.Context) (*bus.Bus, error), run func(context.Context, svc) error) (err error) {
	if sf.shutdown <= 0 {
		return usageErr("--shutdown-timeout %v: want more than 0", sf.shutdown)
	}
	if sf.delay < 0 || sf.delay > maxShutdownDelay {
		return usageErr("--shutdown-delay %v: want 0 to %v", sf.delay, maxShutdownDelay)
	}
	var srv *telemetry.Server
	var metrics *telemetry.Metrics
	telCtx, telStop := context.WithCancel(context.WithoutCancel(ctx))
	telDone := make(chan error, 1)
	if sf.metricsAddr == "" {
		telDone <- nil
	} else {
		reg := telemetry.NewRegistry()
		metrics = telemetry.NewMetrics(reg)
		srv = telemetry.New(sf.metricsAddr, reg, log)
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", sf.metricsAddr)
		if err != nil {
			telStop()
			return fmt.Errorf("listen on --metrics-addr: %w", err)
		}
		go func() { telDone <- srv.Serve(telCtx, ln) }()
	}
	defer func() {
		telStop()
		if e := <-telDone; e != nil {
			err = errors.Join(err, e)
		}
	}()

	b, err := connect(ctx)
	if err != nil {
		return err
	}
	defer b.Close()

	svcCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan error, 1)
	stopWatch := context.AfterFunc(ctx, func() {
		if srv != nil {
			srv.SetReady(false) // before the drain: no new work is routed here
		}
		if sf.delay > 0 {
			log.Info("stop requested: not ready; draining after the delay", zap.Duration("shutdown_delay", sf.delay), zap.Duration("shutdown_timeout", sf.shutdown))
			t := time.NewTimer(sf.delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-svcCtx.Done(): // the service returned on its own
				return
			}
		}
		log.Info("stop requested: draining", zap.Duration("shutdown_timeout", sf.shutdown))
		cancel()
	})
	defer stopWatch()
	ready := func() {
		if srv != nil && ctx.Err() == nil {
			srv.SetReady(true)
		}
	}
	go func() { done <- run(svcCtx, svc{Bus: b, Log: log, Metrics: metrics, Ready: ready}) }()
	select {
	case err := <-done:
		return err
	case <-svcCtx.Done():
	}
	timer := time.NewTimer(sf.shutdown)
	defer timer.Stop()
	select {
	case err := <-done:
		if err == nil {
			log.Info("stopped")
		}
		return err
	case <-timer.C:
		return fmt.Errorf("stop: %w after %v (messages not yet acked are redelivered after the consumer's ack wait)", errShutdown, sf.shutdown)
	}
}

func seederCmd() command {
	return serviceCmd("seeder", "import a seed scan as results, or publish seed targets", daemonOpts, func(fs *flag.FlagSet) (func() error, func(context.Context, svc) error) {
		var c seeder.Config
		c.RegisterFlags(fs)
		return func() error { return c.Validate() }, func(ctx context.Context, s svc) error {
			var advance <-chan struct{}
			if c.Cycle > 0 {
				advance = onSIGHUP(ctx)
			}
			return seeder.Run(ctx, seeder.Deps{Config: c, Bus: s.Bus, Log: s.Log, Stats: &seeder.Stats{}, Metrics: s.Metrics, Ready: s.Ready, Advance: advance})
		}
	})
}

func modelerCmd() command {
	return serviceCmd("modeler", "keep the model from every result; publish the priors plan; snapshot", modelOpts, func(fs *flag.FlagSet) (func() error, func(context.Context, svc) error) {
		var c modeler.Config
		c.RegisterFlags(fs)
		return func() error { return c.Validate() }, func(ctx context.Context, s svc) error {
			return modeler.Run(ctx, modeler.Deps{Config: c, Bus: s.Bus, Log: s.Log, Stats: &modeler.Stats{}, Metrics: s.Metrics, Ready: s.Ready})
		}
	})
}

func predictorCmd() command {
	return serviceCmd("predictor", "predict each host's remaining services from every result found", modelOpts, func(fs *flag.FlagSet) (func() error, func(context.Context, svc) error) {
		var c predictor.Config
		c.RegisterFlags(fs)
		return func() error { return c.Validate() }, func(ctx context.Context, s svc) error {
			return predictor.Run(ctx, predictor.Deps{Config: c, Bus: s.Bus, Log: s.Log, Stats: &predictor.Stats{}, Metrics: s.Metrics, Ready: s.Ready})
		}
	})
}

func proberCmd() command {
	return serviceCmd("prober", "probe targets and predictions; publish results", daemonOpts, func(fs *flag.FlagSet) (func() error, func(context.Context, svc) error) {
		var c prober.Config
		c.RegisterFlags(fs)
		return func() error { return c.Validate() }, func(ctx context.Context, s svc) error {
			return prober.Run(ctx, prober.Deps{Config: c, Bus: s.Bus, Log: s.Log, Stats: &prober.Stats{}, Metrics: s.Metrics, Ready: s.Ready})
		}
	})
}

func watchCmd(what string) command {
	return serviceCmd("watch "+what, "print gps."+what+".> as JSON lines (a downstream consumer)", toolOpts, func(fs *flag.FlagSet) (func() error, func(context.Context, svc) error) {
		c := watch.Config{What: what}
		c.RegisterFlags(fs)
		return func() error { return c.Validate() }, func(ctx context.Context, s svc) error {
			s.Ready()
			return watch.Run(ctx, watch.Deps{Config: c, Bus: s.Bus, Log: s.Log, Out: os.Stdout})
		}
	})
}

func allCmd() command {
	return serviceCmd("all", "run seeder, modeler, predictor and prober in one process", allOpts, func(fs *flag.FlagSet) (func() error, func(context.Context, svc) error) {
		var c all.Config
		c.RegisterFlags(fs)
		return func() error { return c.Validate() }, func(ctx context.Context, s svc) error {
			sum, _, err := all.Run(ctx, all.Deps{Config: c, Bus: s.Bus, Log: s.Log, Metrics: s.Metrics, Ready: s.Ready, Stdout: os.Stdout})
			if err != nil {
				return err
			}
			if sum != nil {
				fmt.Println(sum.JSON())
			}
			return nil
		}
	})
}
