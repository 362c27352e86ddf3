package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
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
}

func (f *busFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "nats", os.Getenv("GPS_NATS_URL"), "NATS server URL (env GPS_NATS_URL); empty: start an embedded server")
	fs.StringVar(&f.data, "data", "", "embedded server: JetStream data directory (default: a new temporary directory)")
	fs.StringVar(&f.listen, "listen", "", "embedded server: also serve NATS clients on this host:port (e.g. 127.0.0.1:4222)")
	fs.IntVar(&f.replicas, "replicas", 1, "stream replicas (3 on a 3-node cluster)")
	fs.StringVar(&f.creds, "creds", os.Getenv("GPS_NATS_CREDS"), "NATS credentials file (JWT + nkey seed; env GPS_NATS_CREDS)")
	fs.StringVar(&f.nkey, "nkey", os.Getenv("GPS_NATS_NKEY"), "NATS nkey seed file (env GPS_NATS_NKEY)")
	fs.StringVar(&f.tlsCA, "tls-ca", os.Getenv("GPS_NATS_TLS_CA"), "CA certificate file to verify the NATS server (env GPS_NATS_TLS_CA)")
	fs.StringVar(&f.tlsCert, "tls-cert", os.Getenv("GPS_NATS_TLS_CERT"), "client certificate file for NATS mutual TLS (env GPS_NATS_TLS_CERT)")
	fs.StringVar(&f.tlsKey, "tls-key", os.Getenv("GPS_NATS_TLS_KEY"), "client key file for NATS mutual TLS (env GPS_NATS_TLS_KEY)")
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

func (f *busFlags) connect(ctx context.Context, name string, log *zap.Logger) (*bus.Bus, error) {
	opts, err := f.options()
	if err != nil {
		return nil, err
	}
	cfg := bus.Config{URL: f.url, DataDir: f.data, Listen: f.listen, Replicas: f.replicas, Name: "gps-" + name, Options: opts}
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

// serviceCmd makes the command of one service.
func serviceCmd(name, usage string, register func(fs *flag.FlagSet) func(ctx context.Context, b *bus.Bus, log *zap.Logger) error) command {
	return command{
		name:  name,
		usage: usage,
		flags: func(fs *flag.FlagSet) func(context.Context, *zap.Logger) error {
			var bf busFlags
			bf.register(fs)
			run := register(fs)
			return func(ctx context.Context, log *zap.Logger) error {
				if name != "all" {
					log = log.With(zap.String("service", name))
				}
				b, err := bf.connect(ctx, name, log)
				if err != nil {
					return err
				}
				defer b.Close()
				return run(ctx, b, log)
			}
		},
	}
}

func seederCmd() command {
	return serviceCmd("seeder", "import a seed scan as results, or publish seed targets", func(fs *flag.FlagSet) func(context.Context, *bus.Bus, *zap.Logger) error {
		var c seeder.Config
		c.RegisterFlags(fs)
		return func(ctx context.Context, b *bus.Bus, log *zap.Logger) error {
			if err := c.Validate(); err != nil {
				return usageErr("%v", err)
			}
			return seeder.Run(ctx, seeder.Deps{Config: c, Bus: b, Log: log, Stats: &seeder.Stats{}})
		}
	})
}

func modelerCmd() command {
	return serviceCmd("modeler", "keep the model from every result; publish the priors plan; snapshot", func(fs *flag.FlagSet) func(context.Context, *bus.Bus, *zap.Logger) error {
		var c modeler.Config
		c.RegisterFlags(fs)
		return func(ctx context.Context, b *bus.Bus, log *zap.Logger) error {
			if err := c.Validate(); err != nil {
				return usageErr("%v", err)
			}
			return modeler.Run(ctx, modeler.Deps{Config: c, Bus: b, Log: log, Stats: &modeler.Stats{}})
		}
	})
}

func predictorCmd() command {
	return serviceCmd("predictor", "predict each host's remaining services from every result found", func(fs *flag.FlagSet) func(context.Context, *bus.Bus, *zap.Logger) error {
		var c predictor.Config
		c.RegisterFlags(fs)
		return func(ctx context.Context, b *bus.Bus, log *zap.Logger) error {
			if err := c.Validate(); err != nil {
				return usageErr("%v", err)
			}
			return predictor.Run(ctx, predictor.Deps{Config: c, Bus: b, Log: log, Stats: &predictor.Stats{}})
		}
	})
}

func proberCmd() command {
	return serviceCmd("prober", "probe targets and predictions; publish results", func(fs *flag.FlagSet) func(context.Context, *bus.Bus, *zap.Logger) error {
		var c prober.Config
		c.RegisterFlags(fs)
		return func(ctx context.Context, b *bus.Bus, log *zap.Logger) error {
			if err := c.Validate(); err != nil {
				return usageErr("%v", err)
			}
			return prober.Run(ctx, prober.Deps{Config: c, Bus: b, Log: log, Stats: &prober.Stats{}})
		}
	})
}

func watchCmd(what string) command {
	return serviceCmd("watch "+what, "print gps."+what+".> as JSON lines (a downstream consumer)", func(fs *flag.FlagSet) func(context.Context, *bus.Bus, *zap.Logger) error {
		c := watch.Config{What: what}
		c.RegisterFlags(fs)
		return func(ctx context.Context, b *bus.Bus, log *zap.Logger) error {
			if err := c.Validate(); err != nil {
				return usageErr("%v", err)
			}
			return watch.Run(ctx, watch.Deps{Config: c, Bus: b, Log: log, Out: os.Stdout})
		}
	})
}

func allCmd() command {
	return serviceCmd("all", "run seeder, modeler, predictor and prober in one process", func(fs *flag.FlagSet) func(context.Context, *bus.Bus, *zap.Logger) error {
		var c all.Config
		c.RegisterFlags(fs)
		return func(ctx context.Context, b *bus.Bus, log *zap.Logger) error {
			sum, _, err := all.Run(ctx, all.Deps{Config: c, Bus: b, Log: log})
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
