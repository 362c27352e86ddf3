// Package netprobe is a network Responder: it probes (address, port)
// targets with real TCP connections, grabs what answers at L7 with zgrab2
// v1.0.0's modules, and returns services as GPS rows. It has the method set
// of services/prober.Responder (Probe, Sweep) without importing it.
//
// L4, the connect engine: a connect() with a timeout and retries on
// timeouts, at most Concurrency probes in flight and at most Rate connects
// per second (golang.org/x/time/rate, burst Batch). Every packet of every
// engine (a connect, the L7 grab's reconnections, a SYN) goes to an address
// one gate (gate.go) admitted against the ipv4.Policy: a target outside it
// is refused (ErrRefused) and nothing is sent. Sweep iterates a prefix's
// admitted addresses only. A refused connection (RST) is a closed port; a
// timeout after the retries is a filtered one; neither is an error. Local
// failures (no file descriptors or ports left) are errors, for the caller
// to retry.
//
// L7, on the connection that completed: zgrab2's banner module reads what
// the server says first (sending nothing). "SSH-..." is re-grabbed with the
// ssh module (hello only) for the server's identification string; other
// greetings are named by Fingerprint. A server that says nothing gets an
// HTTP GET (http module, raw headers kept as on the wire); a server that
// does not speak HTTP then gets a TLS handshake (banner module over TLS:
// leaf certificate and whatever the server says first inside), and, if
// silent inside, an HTTP GET over TLS. Rows carry:
//
//   - data: the banner (\r\n as \n, the final line ending dropped); for HTTP
//     the status line and headers exactly as sent, joined with \n, plus
//     "\n\n<title>...</title>" when the body has a title; for TLS the inner
//     banner or HTTP head, or "" after a handshake only;
//   - fingerprint: "http", "tls", or Fingerprint's name for the banner;
//   - tls_cert: the leaf's subject as "CN=..., O=..., ..." (SubjectString);
//   - tls_oids: CertOIDs of the leaf;
//   - w: null. A connect() engine cannot see the SYN-ACK's window (TCP_INFO
//     has our receive window, not the peer's), and the lab server could not
//     set it per service anyway;
//   - asn: null (look it up in the world's pfx2as).
//
// LZR-style filtering: a completed handshake is not a service. A row with
// no data is dropped (reason "no-data") unless a TLS handshake completed or
// Options.KeepEmpty is set; so is one whose SYN-ACK offered a zero window
// ("zero-window", syn engine only: LZR's sign of a middlebox); a host answering more than PseudoPorts distinct
// ports with identical (fingerprint, data, certificate) is a pseudo-service
// host, and its further answers of that kind are dropped (reason "pseudo").
// The memory of answers is in-process and bounded (MaxHosts hosts).
//
// Options.Engine "syn" replaces the connect() discovery with a raw-socket
// SYN scan (syn.go: gopacket-built SYNs, a keyed AES cookie in the sequence
// number and source port, replies validated against the cookie and the
// policy); an open port is then grabbed over a connect() as above, and the
// row's w is the SYN-ACK's window. It needs CAP_NET_RAW: New fails with
// ErrEngine where raw sockets are denied. It finds the source address with
// the kernel's route (a UDP connect), so it works on loopback and inside a
// network namespace. Probe sends a SYN per target from its goroutine, with
// retries; Sweep sends a prefix's SYNs as SYNScan does (batches from one
// sender, sendmmsg, one SYN per address as ZMap sends by default) and grabs
// each address that answered while the rest are still being sent.
package netprobe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/problems"
	"github.com/gpsscan/gps/pkg/row"
)

// Engines.
const (
	EngineConnect = "connect"
	EngineSYN     = "syn"
)

// Defaults of Options.
const (
	DefaultRate        = 10000
	DefaultBatch       = 64
	DefaultConcurrency = 512
	DefaultTimeout     = 2 * time.Second
	DefaultRetries     = 1
	DefaultPseudoPorts = 10
	DefaultMaxHosts    = 1 << 20
)

// Sentinels.
var (
	ErrRefused  = errors.New("target outside the scan policy")
	ErrNoPolicy = errors.New("a scan policy is required")
	ErrEngine   = errors.New("unknown or unavailable engine")
	ErrOptions  = errors.New("bad netprobe options")
)

// Responder is the method set of services/prober.Responder; *Prober has it.
type Responder interface {
	Probe(ctx context.Context, addr uint32, port uint16) (row.Row, bool, error)
	Sweep(ctx context.Context, prefix uint32, bits int, port uint16, fn func(row.Row)) (probes uint64, err error)
}

var _ Responder = (*Prober)(nil)

// DialFunc dials a TCP connection; Options.Dial replaces net.Dialer's.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Options shape a Prober. Policy is required; zero fields take defaults.
type Options struct {
	Policy      *ipv4.Policy  // what may be probed (required)
	Engine      string        // "connect" (default) or "syn" (raw sockets, CAP_NET_RAW)
	Rate        float64       // connects per second, all of them; 0: 10000; negative: unlimited
	Batch       int           // burst of the rate limiter; 0: 64 (at most Rate)
	Concurrency int           // probes in flight; 0: 512
	Timeout     time.Duration // connect timeout, and the wait for each L7 answer; 0: 2s
	BannerWait  time.Duration // wait for a server to speak first; 0: Timeout
	Retries     int           // connect attempts after a timeout; 0: 1; negative: none
	KeepEmpty   bool          // keep services that sent no data (LZR filtering off for them)
	PseudoPorts int           // identical answers on more ports than this make a pseudo host; 0: 10; negative: off
	MaxHosts    int           // hosts remembered for pseudo detection; 0: 1<<20
	Dial        DialFunc      // dial hook (tests count connects here); nil: net.Dialer
	Log         *zap.Logger   // nil: none
}

func (o Options) withDefaults() Options {
	o.Engine = cmp.Or(o.Engine, EngineConnect)
	o.Rate = cmp.Or(o.Rate, DefaultRate)
	if o.Batch == 0 {
		o.Batch = DefaultBatch
		if o.Rate > 0 && float64(o.Batch) > o.Rate {
			o.Batch = max(1, int(o.Rate))
		}
	}
	o.Concurrency = cmp.Or(o.Concurrency, DefaultConcurrency)
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	o.BannerWait = cmp.Or(o.BannerWait, o.Timeout)
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	o.PseudoPorts = cmp.Or(o.PseudoPorts, DefaultPseudoPorts)
	o.MaxHosts = cmp.Or(o.MaxHosts, DefaultMaxHosts)
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	return o
}

// Validate checks o after defaults; the error lists every problem.
func (o Options) Validate() error {
	o = o.withDefaults()
	p := problems.New(ErrOptions)
	if o.Policy == nil {
		p.Addf("%w", ErrNoPolicy)
	}
	switch o.Engine {
	case EngineConnect, EngineSYN:
	default:
		p.Addf("%w: %q (want %q or %q)", ErrEngine, o.Engine, EngineConnect, EngineSYN)
	}
	if o.Batch < 1 {
		p.Addf("batch %d must be at least 1", o.Batch)
	}
	if o.Concurrency < 1 {
		p.Addf("concurrency %d must be at least 1", o.Concurrency)
	}
	if o.Timeout < 0 || o.BannerWait < 0 {
		p.Addf("timeout %v and banner wait %v must not be negative", o.Timeout, o.BannerWait)
	}
	return p.Err()
}

// Stats count what a Prober did; safe for concurrent reads.
type Stats struct {
	Probes         atomic.Uint64 // targets probed (allowed ones)
	Connects       atomic.Uint64 // connect() calls, retries and L7 reconnections included
	Retries        atomic.Uint64 // connect attempts repeated after a timeout
	Open           atomic.Uint64 // targets whose connect completed
	Closed         atomic.Uint64 // targets that refused the connection
	Timeouts       atomic.Uint64 // targets that never answered (after the retries)
	Refused        atomic.Uint64 // targets outside the policy (never dialled)
	Found          atomic.Uint64 // services returned
	DropNoData     atomic.Uint64 // dropped: connection completed but no data
	DropPseudo     atomic.Uint64 // dropped: pseudo-service host
	DropZeroWindow atomic.Uint64 // dropped: the SYN-ACK's window was 0 (syn engine)
	GrabErrors     atomic.Uint64 // L7 grabs that failed after the connect
	LocalErrors    atomic.Uint64 // local failures returned as errors (fds, ports)
	HTTP, TLS      atomic.Uint64 // services found by kind
	SSH, Banner    atomic.Uint64
	Silent, Shut   atomic.Uint64 // silent services, and ones that closed at once
	SYNInvalid     atomic.Uint64 // syn engine: replies to our ports that failed validation
}

// Prober is the network Responder. It is safe for concurrent use.
type Prober struct {
	o     Options
	gate  *gate // the policy, checked before every send (gate.go)
	lim   *rate.Limiter
	sem   chan struct{}
	dial  DialFunc
	log   *zap.Logger
	st    Stats
	g     *grabber
	hosts *hostMemory
	syn   *synEngine // nil for the connect engine
}

// New builds a Prober; Options.Policy is required.
func New(o Options) (*Prober, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("new netprobe: %w", err)
	}
	o = o.withDefaults()
	p := &Prober{o: o, sem: make(chan struct{}, o.Concurrency), log: o.Log, hosts: newHostMemory(o.MaxHosts)}
	p.gate = newGate(o.Policy, &p.st.Refused)
	if o.Rate > 0 {
		p.lim = rate.NewLimiter(rate.Limit(o.Rate), o.Batch)
	} else {
		p.lim = rate.NewLimiter(rate.Inf, o.Batch)
	}
	p.dial = o.Dial
	if p.dial == nil {
		d := &net.Dialer{}
		p.dial = d.DialContext
	}
	g, err := newGrabber(p)
	if err != nil {
		return nil, fmt.Errorf("new netprobe: %w", err)
	}
	p.g = g
	if o.Engine == EngineSYN {
		if p.syn, err = newSYNEngine(p); err != nil {
			return nil, fmt.Errorf("new netprobe: %w", err)
		}
	}
	p.log.Info("netprobe ready", zap.String("engine", o.Engine), zap.Float64("rate", o.Rate), zap.Int("batch", o.Batch),
		zap.Int("concurrency", o.Concurrency), zap.Duration("timeout", o.Timeout), zap.Int("retries", o.Retries),
		zap.Bool("keep_empty", o.KeepEmpty), zap.Int("pseudo_ports", o.PseudoPorts),
		zap.Uint64("allowed_addresses", o.Policy.Count()), zap.Int("host_listener_ports", len(p.gate.hostPorts)))
	return p, nil
}

// Stats are the Prober's counters.
func (p *Prober) Stats() *Stats { return &p.st }

// Limiter is the connect rate limiter (tests inspect its reservations).
func (p *Prober) Limiter() *rate.Limiter { return p.lim }

// Probe probes (addr, port) and returns the service there, if any. A target
// outside the policy is ErrRefused, with nothing sent; so is a loopback
// target on a port where this machine has a wildcard listener (hostports.go).
func (p *Prober) Probe(ctx context.Context, addr uint32, port uint16) (row.Row, bool, error) {
	if !p.gate.admit(addr, port) {
		return row.Row{}, false, fmt.Errorf("probe %s:%d: %w", row.FormatAddr(addr), port, ErrRefused)
	}
	if err := p.acquire(ctx); err != nil {
		return row.Row{}, false, err
	}
	defer p.release()
	return p.probe(ctx, addr, port)
}

func (p *Prober) acquire(ctx context.Context) error {
	select {
	case p.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Prober) release() { <-p.sem }

// Sweep probes port on every allowed address of prefix/bits, calling fn
// (never concurrently, in no particular order) for each service found, and
// returns the number of addresses probed. Addresses outside the policy are
// skipped, never dialled; a prefix wholly outside it is ErrRefused.
func (p *Prober) Sweep(ctx context.Context, prefix uint32, bits int, port uint16, fn func(row.Row)) (uint64, error) {
	pr, parts, err := p.gate.clip(prefix, bits, port)
	if err != nil {
		return 0, fmt.Errorf("sweep: %w", err)
	}
	if p.syn != nil {
		return p.synSweep(ctx, pr, port, fn)
	}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		probes  uint64
		errOnce sync.Once
		first   error
	)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		errOnce.Do(func() {
			first = err
			cancel()
		})
	}
	for addr := range p.gate.addrs(parts, port) {
		if err := p.acquire(sctx); err != nil {
			break
		}
		probes++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.release()
			r, ok, err := p.probe(sctx, addr, port)
			switch {
			case err != nil:
				fail(err)
			case ok:
				mu.Lock()
				fn(r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	if first != nil {
		return probes, fmt.Errorf("sweep %s port %d: %w", pr, port, first)
	}
	p.log.Debug("swept", zap.Stringer("prefix", pr), zap.Uint16("port", port), zap.Uint64("probes", probes))
	return probes, nil
}

// probe runs one target: connect, grab, filter.
func (p *Prober) probe(ctx context.Context, addr uint32, port uint16) (row.Row, bool, error) {
	p.st.Probes.Add(1)
	var window *int64
	if p.syn != nil {
		rep, answered, err := p.syn.probe(ctx, addr, port)
		switch {
		case err != nil:
			if ctx.Err() == nil && !errors.Is(err, ErrRefused) {
				p.st.LocalErrors.Add(1)
			}
			return row.Row{}, false, err
		case !answered:
			p.st.Timeouts.Add(1)
			return row.Row{}, false, nil
		case !rep.open:
			p.st.Closed.Add(1)
			return row.Row{}, false, nil
		}
		w := int64(rep.window)
		window = &w
	}
	return p.grabOpen(ctx, addr, port, window)
}

// grabOpen connects to a port found open (or to probe, for the connect
// engine), grabs what answers and filters it; window is the SYN-ACK's.
func (p *Prober) grabOpen(ctx context.Context, addr uint32, port uint16, window *int64) (row.Row, bool, error) {
	c, err := p.connect(ctx, addr, port)
	if err != nil {
		return row.Row{}, false, err
	}
	if c == nil {
		return row.Row{}, false, nil // closed or filtered
	}
	p.st.Open.Add(1)
	r, ok := p.g.grab(ctx, c, addr, port)
	r.Window = window
	if ctx.Err() != nil {
		return row.Row{}, false, ctx.Err()
	}
	if !ok {
		return row.Row{}, false, nil
	}
	if reason := p.filter(addr, &r); reason != "" {
		p.log.Debug("dropped", zap.String("ip", r.IP), zap.Int("p", r.Port), zap.String("reason", reason))
		return row.Row{}, false, nil
	}
	p.st.Found.Add(1)
	return r, true, nil
}

// connect dials (addr, port) through the policy and rate gate, retrying
// timeouts. nil, nil is a closed or filtered port.
func (p *Prober) connect(ctx context.Context, addr uint32, port uint16) (net.Conn, error) {
	for attempt := 0; ; attempt++ {
		c, err := p.dialAddr(ctx, addr, port)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		switch {
		case errors.Is(err, ErrRefused):
			return nil, err
		case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
			errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
			p.st.Closed.Add(1)
			return nil, nil
		case isTimeout(err):
			if attempt < p.o.Retries {
				p.st.Retries.Add(1)
				continue
			}
			p.st.Timeouts.Add(1)
			return nil, nil
		}
		// Local trouble: no descriptors, no ephemeral ports. The caller retries.
		p.st.LocalErrors.Add(1)
		return nil, fmt.Errorf("connect %s:%d: %w", row.FormatAddr(addr), port, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// dialAddr is the way of every connect: the gate, the rate, the dial.
func (p *Prober) dialAddr(ctx context.Context, addr uint32, port uint16) (net.Conn, error) {
	if !p.gate.admit(addr, port) {
		return nil, fmt.Errorf("dial %s:%d: %w", row.FormatAddr(addr), port, ErrRefused)
	}
	if err := p.lim.Wait(ctx); err != nil {
		return nil, err
	}
	p.st.Connects.Add(1)
	dctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	defer cancel()
	return p.dial(dctx, "tcp4", net.JoinHostPort(row.FormatAddr(addr), strconv.Itoa(int(port))))
}

// dialString is dialAddr for a "host:port" a grab module asks for; only
// IPv4 literals are dialled (never a name: no DNS lookups).
func (p *Prober) dialString(ctx context.Context, address string) (net.Conn, error) {
	host, ps, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	addr, err := row.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w: not an IPv4 literal", address, ErrRefused)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("dial %s: bad port", address)
	}
	return p.dialAddr(ctx, addr, uint16(port))
}

// Close releases the syn engine's sockets (the connect engine holds nothing
// between probes). Probes must have returned.
func (p *Prober) Close() error {
	if p.syn == nil {
		return nil
	}
	if err := p.syn.close(); err != nil {
		return fmt.Errorf("close netprobe: %w", err)
	}
	return nil
}
