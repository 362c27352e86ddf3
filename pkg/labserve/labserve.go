// Package labserve brings a lab world up as real TCP services on its
// 127.x.y.z addresses, so that a network prober (pkg/netprobe) can scan it
// with real connections. Linux routes all of 127.0.0.0/8 to lo, so binding
// 127.1.2.3:80 needs no configuration; a world never uses 127.0.0.0/16.
//
// Every service of the world's truth.jsonl (the first row of an (ip, port)
// that has several) gets a listener on ip:port that speaks according to the
// row:
//
//   - fingerprint "tls": a TLS handshake with a certificate minted on the fly
//     for the row's tls_cert subject (one per distinct subject and OID list),
//     signed by a lab CA (ECDSA P-256) generated at start, carrying the row's
//     tls_oids in row.OIDListExtension. Then the inner data: an HTTP head is
//     served as HTTP over TLS, other data is sent as a banner on connect,
//     empty data is a silent service.
//   - fingerprint "http": any request is answered with the row's data as the
//     response head (lines joined with \r\n, then \r\n\r\n, then a body of
//     the head's Content-Length; a "\n\n<title>...</title>" tail of the data
//     opens the body). Data not starting with "HTTP/" becomes a 200 response
//     with the data's "Name: value" lines as headers and the rest as body.
//   - every other row with data (ssh banners included): the data is sent on
//     connect with \r\n line endings and a final \r\n; the connection is then
//     held open until the peer closes it or IdleTimeout passes.
//   - empty data: fingerprint "" accepts and closes at once (a port that
//     completes the handshake and nothing more); any other fingerprint is a
//     silent service that holds the connection and never writes. A prober
//     tells the two apart by EOF versus timeout.
//
// Pseudo-service hosts (a world's middleboxes answering on hundreds of
// ports) are served like any other host.
//
// What the lab does not reproduce: the TCP window of the SYN-ACK (the row's
// "w") is the kernel's, the same for every service; and a row's "asn" is not
// observable on the wire (look it up in pfx2as.tsv).
//
// A listener needs a file descriptor. Serve raises RLIMIT_NOFILE to the hard
// limit; when a world has more services than one process may hold open,
// Serve spreads the listeners over helper processes (re-executions of the
// running binary, which must call RunHelperIfRequested first thing in main
// and in TestMain), each serving a shard with the same CA.
package labserve

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
)

// Defaults of Options.
const (
	DefaultIdleTimeout = 10 * time.Second
	DefaultReadTimeout = 5 * time.Second
	// DefaultReserve is how many file descriptors a process keeps free for
	// everything but listeners: the connections being served (and, when a
	// prober runs in the same process, its own), the runtime, logs.
	DefaultReserve = 4096
)

// Sentinels.
var (
	ErrNotLoopback = errors.New("address outside 127.0.0.0/8")
	ErrNoFiles     = errors.New("not enough file descriptors")
	ErrClosed      = errors.New("lab closed")
)

// Options shape a Lab; zero fields take their defaults.
type Options struct {
	IdleTimeout time.Duration      // a connection still open this long after accept is closed; 0: 10s
	ReadTimeout time.Duration      // how long an HTTP or TLS service waits for the client; 0: 5s
	Include     func(row.Row) bool // serve only the rows it accepts; nil: all
	// MaxPerProcess caps the listeners of one process; beyond it Serve starts
	// helper processes. 0: what RLIMIT_NOFILE allows (after raising the soft
	// limit to the hard one) less Reserve.
	MaxPerProcess int
	Reserve       int // file descriptors kept for connections; 0: 4096
}

func (o Options) withDefaults() Options {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.Reserve <= 0 {
		o.Reserve = DefaultReserve
	}
	return o
}

// Stats count what a Lab served; safe for concurrent reads.
type Stats struct {
	Accepted  atomic.Uint64 // connections accepted
	Handshake atomic.Uint64 // TLS handshakes completed
	Requests  atomic.Uint64 // HTTP requests answered
	Errors    atomic.Uint64 // connections that ended in an error (resets, failed handshakes)
}

// Lab is a world served on loopback. Close it.
type Lab struct {
	log   *zap.Logger
	opts  Options
	auth  *authority
	stats Stats

	served  []row.Row // the rows with a listener, in truth order; under mu once ready
	skipped []row.Row // rows whose address was taken (EADDRINUSE); under mu once ready
	addrs   int       // under mu once ready

	umu     sync.Mutex           // serialises Update and Close over lns
	lns     map[uint64]*listener // by (addr, port)
	helpers []*helper
	ready   chan struct{}

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool

	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	stop      chan struct{}
}

// Serve loads dir/truth.jsonl and serves it (see ServeRows).
func Serve(ctx context.Context, worldDir string, opts Options, log *zap.Logger) (*Lab, error) {
	ss, err := row.ReadAll(lab.WorldFile(worldDir, lab.TruthFile))
	if err != nil {
		return nil, fmt.Errorf("serve lab: %w", err)
	}
	rows := make([]row.Row, len(ss))
	for i := range ss {
		rows[i] = ss[i].Row
	}
	return ServeRows(ctx, rows, opts, log)
}

// ServeRows serves rows: one listener per distinct (ip, port), the first
// row of each answering. Every address must be in 127.0.0.0/8. It returns
// once every listener is bound (Ready is then closed) and logs "lab ready";
// the lab stops when ctx ends or Close is called. A row whose ip:port is
// already taken on the machine is skipped with a warning (Skipped).
func ServeRows(ctx context.Context, rows []row.Row, opts Options, log *zap.Logger) (*Lab, error) {
	if log == nil {
		log = zap.NewNop()
	}
	opts = opts.withDefaults()
	svcs, err := services(rows, opts.Include)
	if err != nil {
		return nil, fmt.Errorf("serve lab: %w", err)
	}
	auth, err := newAuthority()
	if err != nil {
		return nil, fmt.Errorf("serve lab: %w", err)
	}
	l := newLab(log, opts, auth)
	limit, err := raiseNoFile()
	if err != nil {
		return nil, fmt.Errorf("serve lab: %w", err)
	}
	per := opts.MaxPerProcess
	if per <= 0 {
		per = int(limit) - opts.Reserve
	}
	if per < 1 {
		return nil, fmt.Errorf("serve lab: %w: RLIMIT_NOFILE is %d, at least %d (a reserve of %d for connections, and listeners) are needed; raise ulimit -n",
			ErrNoFiles, limit, opts.Reserve+1, opts.Reserve)
	}
	start := time.Now()
	own := svcs
	if len(svcs) > per {
		// The first shard is ours, the rest go to helper processes.
		own = svcs[:per]
		if err := l.startHelpers(ctx, svcs[per:], per); err != nil {
			l.Close()
			return nil, fmt.Errorf("serve lab: %w", err)
		}
	}
	if err := l.listen(own); err != nil {
		l.Close()
		return nil, fmt.Errorf("serve lab: %w", err)
	}
	l.finish(svcs)
	go func() {
		select {
		case <-ctx.Done():
			l.Close()
		case <-l.stop:
		}
	}()
	close(l.ready)
	log.Info(fmt.Sprintf("lab ready: %d services on %d addresses", len(l.served), l.addrs),
		zap.Int("services", len(l.served)), zap.Int("addresses", l.addrs), zap.Int("skipped", len(l.skipped)),
		zap.Int("processes", 1+len(l.helpers)), zap.Duration("elapsed", time.Since(start)))
	return l, nil
}

func newLab(log *zap.Logger, opts Options, auth *authority) *Lab {
	return &Lab{log: log, opts: opts, auth: auth, ready: make(chan struct{}), conns: map[net.Conn]struct{}{},
		lns: map[uint64]*listener{}, stop: make(chan struct{})}
}

// services validates rows and keeps the first of each (ip, port).
func services(rows []row.Row, include func(row.Row) bool) ([]service, error) {
	seen := make(map[uint64]struct{}, len(rows))
	out := make([]service, 0, len(rows))
	for _, r := range rows {
		if include != nil && !include(r) {
			continue
		}
		a, err := r.Validate()
		if err != nil {
			return nil, err
		}
		if a>>24 != 127 {
			return nil, fmt.Errorf("%w: %s", ErrNotLoopback, r.IP)
		}
		k := uint64(a)<<16 | uint64(r.Port)
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, service{r: r, kind: kindOf(r)})
	}
	return out, nil
}

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and returns it.
func raiseNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return rl.Cur, nil // keep what we have
		}
		rl = want
	}
	return rl.Cur, nil
}

// listener is one service's listener; the service it answers can be
// swapped while it runs (Update), each connection taking the one of its
// accept.
type listener struct {
	ln  net.Listener
	svc atomic.Pointer[service]
}

// listen binds one listener per service and starts its accept loop.
func (l *Lab) listen(svcs []service) error {
	for i := range svcs {
		if _, err := l.listenOne(svcs[i]); err != nil {
			return err
		}
	}
	return nil
}

// listenOne binds the listener of s and starts its accept loop; a taken
// address skips s (false, nil).
func (l *Lab) listenOne(s service) (bool, error) {
	addr := net.JoinHostPort(s.r.IP, strconv.Itoa(s.r.Port))
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp4", addr)
	if err != nil {
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			l.skipped = append(l.skipped, s.r)
			l.log.Warn("lab address taken, service skipped", zap.String("addr", addr), zap.Error(err))
			return false, nil
		case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
			return false, fmt.Errorf("listen %s: %w: %w (raise ulimit -n or serve a smaller world)", addr, ErrNoFiles, err)
		}
		return false, fmt.Errorf("listen %s: %w", addr, err)
	}
	x := &listener{ln: ln}
	x.svc.Store(&s)
	a, _ := row.ParseAddr(s.r.IP)
	l.lns[svcKey(a, s.r.Port)] = x
	l.wg.Add(1)
	go l.accept(x)
	return true, nil
}

func svcKey(addr uint32, port int) uint64 { return uint64(addr)<<16 | uint64(port) }

// finish records which services are served, here or by helpers.
func (l *Lab) finish(svcs []service) {
	skipped := make(map[string]struct{}, len(l.skipped))
	for _, h := range l.helpers {
		l.skipped = append(l.skipped, h.skipped...)
	}
	for _, r := range l.skipped {
		skipped[r.IP+":"+strconv.Itoa(r.Port)] = struct{}{}
	}
	ips := map[string]struct{}{}
	for _, s := range svcs {
		if _, ok := skipped[s.r.IP+":"+strconv.Itoa(s.r.Port)]; ok {
			continue
		}
		l.served = append(l.served, s.r)
		ips[s.r.IP] = struct{}{}
	}
	l.addrs = len(ips)
}

func (l *Lab) accept(x *listener) {
	defer l.wg.Done()
	for {
		c, err := x.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				time.Sleep(10 * time.Millisecond) // wait for connections to end
				continue
			}
			return // closed
		}
		l.stats.Accepted.Add(1)
		if !l.track(c) {
			c.Close()
			return
		}
		s := x.svc.Load()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer l.untrack(c)
			l.handle(c, s)
		}()
	}
}

func (l *Lab) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *Lab) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	c.Close()
}

// Ready is closed when every listener accepts connections (ServeRows
// returns only then; it is there for callers that start the lab elsewhere).
func (l *Lab) Ready() <-chan struct{} { return l.ready }

// Services returns the rows served, one per (ip, port), in truth order.
func (l *Lab) Services() []row.Row {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.served)
}

// Skipped returns the rows not served because their ip:port was taken.
func (l *Lab) Skipped() []row.Row {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.skipped)
}

// Addresses is the number of distinct addresses served.
func (l *Lab) Addresses() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addrs
}

// Processes is the number of processes serving (1 plus the helpers).
func (l *Lab) Processes() int { return 1 + len(l.helpers) }

// Stats are the counters of this process's listeners (not the helpers').
func (l *Lab) Stats() *Stats { return &l.stats }

// CA is the lab's certificate authority: every TLS service's certificate
// chains to it.
func (l *Lab) CA() *x509.Certificate { return l.auth.ca }

// CAPEM is the CA certificate in PEM, e.g. for a client's root pool.
func (l *Lab) CAPEM() []byte { return l.auth.caPEM() }

// Close stops every listener and connection, and the helper processes, and
// waits for the lab's goroutines. It is safe to call more than once.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		close(l.stop)
		var errs []error
		l.umu.Lock()
		for _, x := range l.lns {
			if err := x.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		l.umu.Unlock()
		l.mu.Lock()
		l.closed = true
		for c := range l.conns {
			c.Close()
		}
		l.mu.Unlock()
		for _, h := range l.helpers {
			errs = append(errs, h.stop())
		}
		l.wg.Wait()
		l.closeErr = errors.Join(errs...)
		if l.closeErr != nil {
			l.closeErr = fmt.Errorf("close lab: %w", l.closeErr)
		}
		l.log.Info("lab closed", zap.Uint64("accepted", l.stats.Accepted.Load()), zap.Uint64("requests", l.stats.Requests.Load()),
			zap.Uint64("handshakes", l.stats.Handshake.Load()), zap.Int("certificates", l.auth.minted()))
	})
	return l.closeErr
}
