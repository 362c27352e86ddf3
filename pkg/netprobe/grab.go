package netprobe

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/zmap/zgrab2"
	"github.com/zmap/zgrab2/lib/ssh"
	"github.com/zmap/zgrab2/modules"
	"github.com/zmap/zgrab2/modules/banner"
	zhttp "github.com/zmap/zgrab2/modules/http"

	"github.com/gpsscan/gps/pkg/row"
)

// Limits of a grab.
const (
	bannerTail   = 50   // ms to wait for more of a banner once it started
	bannerBuffer = 8209 // read buffer of the banner module
	maxBannerKiB = 64   // what is read of a banner at most
	maxBodyKiB   = 16   // what is read of an HTTP body at most (for the title)
	readLimit    = 1 << 20
	userAgent    = "Mozilla/5.0 (compatible; gps-netprobe)"
)

// grabber holds zgrab2 v1.0.0 scanners, each set up once with every flag
// that has a default in its struct tags (a bare Flags{} would mean no
// timeouts and zero-sized buffers), validated before Init (banner's can
// log.Fatal), and called through Scan with our own DialerGroup, so that
// every connection goes through the Prober's policy and rate gate (never
// zgrab2's dialer, its per-IP rate limit or its DNS).
type grabber struct {
	p         *Prober
	banner    *banner.Scanner
	bannerTLS *banner.Scanner
	tlsFlags  *zgrab2.TLSFlags
	ssh       *modules.SSHScanner
	http      *zhttp.Scanner
	https     *zhttp.Scanner
	budget    time.Duration // of one grab, all its connections
}

func newGrabber(p *Prober) (*grabber, error) {
	o := p.o
	budget := 2*o.BannerWait + 5*o.Timeout
	base := func(name string) zgrab2.BaseFlags {
		return zgrab2.BaseFlags{Name: name, ConnectTimeout: o.Timeout, TargetTimeout: budget}
	}
	g := &grabber{p: p, budget: budget}

	bannerFlags := func(useTLS bool) *banner.Flags {
		return &banner.Flags{
			BaseFlags:   base("banner"),
			ReadTimeout: bannerTail,
			BufferSize:  bannerBuffer,
			MaxReadSize: maxBannerKiB,
			Probe:       "", // send nothing: we want what the server says first
			MaxTries:    1,
			UseTLS:      useTLS,
		}
	}
	var err error
	if g.banner, err = initBanner(bannerFlags(false)); err != nil {
		return nil, err
	}
	tf := bannerFlags(true)
	if g.bannerTLS, err = initBanner(tf); err != nil {
		return nil, err
	}
	g.tlsFlags = &tf.TLSFlags

	sf := &modules.SSHFlags{
		BaseFlags:        base("ssh"),
		ClientID:         "SSH-2.0-Go",
		GexMinBits:       1024,
		GexMaxBits:       8192,
		GexPreferredBits: 2048,
		HelloOnly:        true, // the identification string is all we keep
	}
	if err := sf.Validate(nil); err != nil {
		return nil, fmt.Errorf("init ssh grabber: %w", err)
	}
	g.ssh = new(modules.SSHScanner)
	if err := g.ssh.Init(sf); err != nil {
		return nil, fmt.Errorf("init ssh grabber: %w", err)
	}

	httpFlags := func(https bool) *zhttp.Flags {
		return &zhttp.Flags{
			BaseFlags:    base("http"),
			TLSFlags:     zgrab2.TLSFlags{NextProtos: "http/1.1"}, // set, or each scan writes the shared flags
			Method:       "GET",
			Endpoint:     "/",
			UserAgent:    userAgent,
			MaxSize:      maxBodyKiB,
			MaxRedirects: 0,
			RawHeaders:   true, // the head as sent: header order and case are features
			NoHTTP2:      true,
			UseHTTPS:     https,
		}
	}
	if g.http, err = initHTTP(httpFlags(false)); err != nil {
		return nil, err
	}
	if g.https, err = initHTTP(httpFlags(true)); err != nil {
		return nil, err
	}
	return g, nil
}

func initBanner(f *banner.Flags) (*banner.Scanner, error) {
	if err := f.Validate(nil); err != nil {
		return nil, fmt.Errorf("init banner grabber: %w", err)
	}
	s := new(banner.Scanner)
	if err := s.Init(f); err != nil {
		return nil, fmt.Errorf("init banner grabber: %w", err)
	}
	return s, nil
}

func initHTTP(f *zhttp.Flags) (*zhttp.Scanner, error) {
	if err := f.Validate(nil); err != nil {
		return nil, fmt.Errorf("init http grabber: %w", err)
	}
	s := new(zhttp.Scanner)
	if err := s.Init(f); err != nil {
		return nil, fmt.Errorf("init http grabber: %w", err)
	}
	return s, nil
}

// session is one grab: the target, its connections, what was learnt.
type session struct {
	g      *grabber
	ctx    context.Context
	addr   uint32
	port   uint16
	target *zgrab2.ScanTarget

	mu    sync.Mutex
	first net.Conn                // the connect engine's connection, for the first dial
	tls   []*zgrab2.TLSConnection // TLS connections made, for their logs
}

// wrap gives a connection zgrab2's per-read timeouts, bounded by the grab.
func (s *session) wrap(c net.Conn, readTimeout time.Duration) *zgrab2.TimeoutConnection {
	return zgrab2.NewTimeoutConnection(s.ctx, c, s.g.budget, readTimeout, s.g.p.o.Timeout, readLimit)
}

// l4 returns the connect engine's connection the first time, then dials
// new ones through the policy and rate gate. Only the target is dialled.
// With bare, the connection is returned as it is, with a deadline of
// readTimeout from now, instead of in a zgrab2.TimeoutConnection, whose
// fields every Read and Write update: the ssh and http libraries read and
// write from two goroutines, which would race on them.
func (s *session) l4(ctx context.Context, address string, readTimeout time.Duration, bare bool) (net.Conn, error) {
	s.mu.Lock()
	c := s.first
	s.first = nil
	s.mu.Unlock()
	wrap := func(c net.Conn) net.Conn {
		if bare {
			d := time.Now().Add(readTimeout)
			if cd, ok := s.ctx.Deadline(); ok && cd.Before(d) {
				d = cd
			}
			c.SetDeadline(d)
			return c
		}
		return s.wrap(c, readTimeout)
	}
	if c != nil {
		return wrap(c), nil
	}
	want := net.JoinHostPort(row.FormatAddr(s.addr), fmt.Sprint(s.port))
	if address != want {
		return nil, fmt.Errorf("dial %s: %w: only the target %s may be dialled", address, ErrRefused, want)
	}
	nc, err := s.g.p.dialString(ctx, address)
	if err != nil {
		return nil, err
	}
	return wrap(nc), nil
}

func (s *session) address() string {
	return net.JoinHostPort(row.FormatAddr(s.addr), fmt.Sprint(s.port))
}

// group is a DialerGroup whose every dial is ours. withTLS makes the
// transport-agnostic dialer a TLS one; readTimeout and bare are l4's.
func (s *session) group(withTLS bool, readTimeout time.Duration, bare bool) *zgrab2.DialerGroup {
	wrapper := zgrab2.GetDefaultTLSWrapper(s.g.tlsFlags)
	tlsWrap := func(ctx context.Context, t *zgrab2.ScanTarget, c net.Conn) (*zgrab2.TLSConnection, error) {
		tc, err := wrapper(ctx, t, c)
		if tc != nil {
			s.mu.Lock()
			s.tls = append(s.tls, tc)
			s.mu.Unlock()
		}
		return tc, err
	}
	g := &zgrab2.DialerGroup{
		L4Dialer: func(*zgrab2.ScanTarget) func(ctx context.Context, network, addr string) (net.Conn, error) {
			return func(ctx context.Context, network, addr string) (net.Conn, error) {
				return s.l4(ctx, addr, readTimeout, bare)
			}
		},
		TLSWrapper: tlsWrap,
	}
	g.TransportAgnosticDialer = func(ctx context.Context, t *zgrab2.ScanTarget) (net.Conn, error) {
		c, err := s.l4(ctx, s.address(), readTimeout, bare)
		if err != nil || !withTLS {
			return c, err
		}
		tc, err := tlsWrap(ctx, t, c)
		if err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}
	return g
}

// grab runs the L7 steps on the open connection c (which it closes) and
// returns the service's row. false: nothing worth a row (the context ended).
func (g *grabber) grab(ctx context.Context, c net.Conn, addr uint32, port uint16) (row.Row, bool) {
	ctx, cancel := context.WithTimeout(ctx, g.budget)
	defer cancel()
	ip := net.IPv4(byte(addr>>24), byte(addr>>16), byte(addr>>8), byte(addr)).To4()
	s := &session{g: g, ctx: ctx, addr: addr, port: port, target: &zgrab2.ScanTarget{IP: ip, Port: uint(port)}, first: c}
	defer func() {
		s.mu.Lock()
		if s.first != nil {
			s.first.Close()
		}
		s.mu.Unlock()
	}()
	r := row.Row{IP: row.FormatAddr(addr), Port: int(port)}
	st := &g.p.st

	// 1. What does the server say first?
	_, res, err := g.banner.Scan(ctx, s.group(false, g.p.o.BannerWait, false), s.target)
	if ctx.Err() != nil {
		return r, false
	}
	var text []byte
	if b, ok := res.(*banner.Results); ok && b != nil {
		text = []byte(b.Banner)
	}
	switch {
	case len(text) > 0:
		r.Data = bannerData(text)
		if strings.HasPrefix(r.Data, "SSH-") {
			r.Fingerprint = "ssh"
			if id := g.sshID(ctx, s); id != "" {
				r.Data = id
			}
			st.SSH.Add(1)
			return r, true
		}
		if strings.HasPrefix(r.Data, "HTTP/") {
			// A server-first HTTP head: keep the head (and title), like a GET's.
			head, body, _ := strings.Cut(string(text), "\r\n\r\n")
			r.Data = headData([]byte(head), body)
		}
		r.Fingerprint = Fingerprint(port, ObsBanner, r.Data)
		st.Banner.Add(1)
		return r, true
	case err == nil || !isTimeout(err):
		// Accepted and closed (EOF or reset) without a byte.
		r.Fingerprint = Fingerprint(port, ObsClosed, "")
		st.Shut.Add(1)
		return r, true
	}

	// 2. Silent: does it speak HTTP?
	head, body, herr := g.httpHead(ctx, s, g.http)
	if ctx.Err() != nil {
		return r, false
	}
	if head != nil {
		r.Fingerprint, r.Data = "http", headData(head, body)
		st.HTTP.Add(1)
		return r, true
	}
	if isTimeout(herr) {
		// Silent to a request too: a service that waits for its own protocol.
		r.Fingerprint = Fingerprint(port, ObsSilent, "")
		st.Silent.Add(1)
		return r, true
	}

	// 3. It hung up on HTTP: TLS?
	if ok := g.tlsGrab(ctx, s, &r); ok {
		st.TLS.Add(1)
		return r, true
	}
	if ctx.Err() != nil {
		return r, false
	}
	st.GrabErrors.Add(1)
	g.p.log.Debug("grab failed", zap.String("ip", r.IP), zap.Uint16("p", port), zap.NamedError("http", herr))
	r.Fingerprint = Fingerprint(port, ObsSilent, "")
	return r, true
}

// sshID re-grabs with the ssh module for the server's identification line.
func (g *grabber) sshID(ctx context.Context, s *session) string {
	_, res, err := g.ssh.Scan(ctx, s.group(false, g.p.o.Timeout, true), s.target)
	if hl, ok := res.(*ssh.HandshakeLog); ok && hl != nil && hl.ServerID != nil {
		return hl.ServerID.Raw
	}
	if err != nil {
		g.p.log.Debug("ssh grab failed", zap.Uint32("addr", s.addr), zap.Uint16("p", s.port), zap.Error(err))
	}
	return ""
}

// httpHead sends a GET with the http module and returns the raw head and
// the start of the body; nil head: no HTTP answer (err says why).
func (g *grabber) httpHead(ctx context.Context, s *session, sc *zhttp.Scanner) ([]byte, string, error) {
	_, res, err := sc.Scan(ctx, s.group(false, g.p.o.Timeout, true), s.target)
	hr, ok := res.(*zhttp.Results)
	if !ok || hr == nil || hr.Response == nil || len(hr.Response.HeadersRaw) == 0 {
		if err == nil {
			err = errors.New("no http response")
		}
		return nil, "", err
	}
	return hr.Response.HeadersRaw, hr.Response.BodyText, nil
}

// tlsGrab does a TLS handshake (banner module over TLS), reads the leaf
// certificate and what the server says first inside, and if it says
// nothing, sends a GET over TLS.
func (g *grabber) tlsGrab(ctx context.Context, s *session, r *row.Row) bool {
	_, res, err := g.bannerTLS.Scan(ctx, s.group(true, g.p.o.BannerWait, false), s.target)
	s.mu.Lock()
	var leaf []byte
	for _, tc := range s.tls {
		if lg := tc.GetLog(); lg != nil && lg.HandshakeLog != nil && lg.HandshakeLog.ServerCertificates != nil {
			leaf = lg.HandshakeLog.ServerCertificates.Certificate.Raw
		}
	}
	s.tls = nil
	s.mu.Unlock()
	if len(leaf) == 0 {
		return false
	}
	r.Fingerprint = "tls"
	subject, oids := "", []string(nil)
	if c, perr := x509.ParseCertificate(leaf); perr == nil {
		subject, oids = SubjectString(c.Subject), CertOIDs(c)
	}
	r.TLSCert, r.TLSOIDs = &subject, oids
	if b, ok := res.(*banner.Results); ok && b != nil && b.Banner != "" {
		r.Data = bannerData([]byte(b.Banner))
		return true
	}
	if err != nil && !isTimeout(err) {
		return true // the server closed after the handshake
	}
	if head, body, _ := g.httpHead(ctx, s, g.https); head != nil {
		r.Data = headData(head, body)
	}
	return true
}
