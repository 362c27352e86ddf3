package prober

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/netprobe"
	"github.com/gpsscan/gps/pkg/pfx2as"
	"github.com/gpsscan/gps/pkg/row"
)

// LiveConfig configures the network engine (--live).
type LiveConfig struct {
	Live             bool          // probe for real with pkg/netprobe instead of answering from a world
	Engine           string        // "connect" (default) or "syn"
	Rate             float64       // probes per second
	ProbeConcurrency int           // probes in flight
	Timeout          time.Duration // connect and handshake timeout
	BannerWait       time.Duration // wait for a server to speak first; 0: Timeout
	Retries          int           // retries of a probe that got no answer
	KeepEmpty        bool          // keep services that sent no data or a zero window (LZR would drop them)
	Pfx2AS           string        // prefix-to-AS table that fills each service's asn (empty: asn null)
}

// RegisterFlags registers the live engine's flags.
func (c *LiveConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Live, "live", false, "probe for real (TCP handshakes and zgrab2 grabs) instead of answering from --world; the allow list still applies")
	fs.StringVar(&c.Engine, "engine", "connect", "live: connect (TCP connect, no privileges) or syn (raw-socket SYN scan, needs CAP_NET_RAW)")
	fs.Float64Var(&c.Rate, "rate", netprobe.DefaultRate, "probes (packets) per second: live, the engine's send rate; on a world, the rate of its simulated clock (time = probes / rate), which stamps the results")
	fs.IntVar(&c.ProbeConcurrency, "probe-concurrency", 512, "live: probes and handshakes in flight")
	fs.DurationVar(&c.Timeout, "timeout", 2*time.Second, "live: connect and handshake timeout")
	fs.DurationVar(&c.BannerWait, "banner-wait", 0, "live: how long to wait for a server to speak first before sending an HTTP request (0: --timeout); every service that waits for the client (HTTP, TLS) costs this much")
	fs.IntVar(&c.Retries, "retries", 1, "live: retries of a probe that got no answer")
	fs.StringVar(&c.Pfx2AS, "pfx2as", "", "live: prefix-to-AS table (prefix<TAB>len<TAB>asn a line, as CAIDA's pfx2as and a lab world's pfx2as.tsv) that fills the asn of each service found; without it asn is null and the model has no network features")
	fs.BoolVar(&c.KeepEmpty, "keep-empty", false, "live: keep services that completed the handshake but sent no data, or whose SYN-ACK had a zero window (LZR-style filtering drops them; the drops are counted in the log at stop)")
}

// newLive builds the network responder; a target the engine refuses (the
// host's own listeners on loopback) counts as refused and answers nothing,
// so it is never retried.
func newLive(c LiveConfig, pol *ipv4.Policy, st *Stats, log *zap.Logger) (Responder, func(), error) {
	if c.Engine != "connect" && c.Engine != "syn" {
		return nil, nil, fmt.Errorf("%w: --engine %q: want connect or syn", ErrConfig, c.Engine)
	}
	var asns *pfx2as.Table
	if c.Pfx2AS != "" {
		pfx, err := pfx2as.Read(c.Pfx2AS)
		if err != nil {
			return nil, nil, err
		}
		if asns, err = pfx2as.NewTable(pfx); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", c.Pfx2AS, err)
		}
		log.Info("prefix-to-AS table loaded", zap.String("file", c.Pfx2AS), zap.Int("prefixes", len(pfx)))
	} else {
		log.Warn("no --pfx2as: live results carry no asn, so the model learns no AS features from them")
	}
	np, err := netprobe.New(netprobe.Options{Policy: pol, Engine: c.Engine, Rate: c.Rate, Concurrency: c.ProbeConcurrency,
		Timeout: c.Timeout, BannerWait: c.BannerWait, Retries: c.Retries, KeepEmpty: c.KeepEmpty, Log: log.With(zap.String("engine", c.Engine))})
	if err != nil {
		return nil, nil, err
	}
	log.Info("live engine", zap.String("engine", c.Engine), zap.Float64("rate", c.Rate),
		zap.Int("probe_concurrency", c.ProbeConcurrency), zap.Duration("timeout", c.Timeout), zap.Duration("banner_wait", c.BannerWait))
	done := func() {
		// What the engine did, and why what answered was not a service.
		ns := np.Stats()
		log.Info("live engine stopped", zap.Uint64("probes", ns.Probes.Load()), zap.Uint64("open", ns.Open.Load()),
			zap.Uint64("closed", ns.Closed.Load()), zap.Uint64("timeouts", ns.Timeouts.Load()),
			zap.Uint64("found", ns.Found.Load()), zap.Uint64("dropped_no_data", ns.DropNoData.Load()),
			zap.Uint64("dropped_zero_window", ns.DropZeroWindow.Load()), zap.Uint64("dropped_pseudo", ns.DropPseudo.Load()),
			zap.Uint64("grab_errors", ns.GrabErrors.Load()), zap.Uint64("refused", ns.Refused.Load()))
		if err := np.Close(); err != nil {
			log.Warn("close live engine", zap.Error(err))
		}
	}
	return liveResponder{np: np, st: st, asns: asns}, done, nil
}

type liveResponder struct {
	np   *netprobe.Prober
	st   *Stats
	asns *pfx2as.Table // nil: asn stays null
}

// withASN fills r's asn from the prefix-to-AS table.
func (l liveResponder) withASN(r row.Row, addr uint32) row.Row {
	if l.asns != nil {
		if asn, ok := l.asns.Lookup(addr); ok {
			r.ASN = &asn
		}
	}
	return r
}

func (l liveResponder) Probe(ctx context.Context, addr uint32, port uint16) (row.Row, bool, error) {
	r, ok, err := l.np.Probe(ctx, addr, port)
	if errors.Is(err, netprobe.ErrRefused) {
		l.st.Refused.Add(1)
		return row.Row{}, false, nil
	}
	return l.withASN(r, addr), ok, err
}

func (l liveResponder) Sweep(ctx context.Context, prefix uint32, bits int, port uint16, fn func(row.Row)) (uint64, error) {
	return l.np.Sweep(ctx, prefix, bits, port, func(r row.Row) {
		if a, err := row.ParseAddr(r.IP); err == nil {
			r = l.withASN(r, a)
		}
		fn(r)
	})
}
