package netprobe

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/labserve"
	"github.com/gpsscan/gps/pkg/row"
)

func TestMain(m *testing.M) {
	labserve.RunHelperIfRequested()
	os.Exit(m.Run())
}

func policy(t testing.TB, allow ...string) *ipv4.Policy {
	t.Helper()
	var ps []ipv4.Prefix
	for _, a := range allow {
		ps = append(ps, ipv4.MustParsePrefix(a))
	}
	p, err := ipv4.NewPolicy(ipv4.NewSet(ps...), ipv4.Set{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// serve starts a lab with start. Tests of other packages may be serving the
// same loopback addresses (go test runs packages in parallel): while some
// addresses are taken, it closes the lab and tries again, for up to a
// minute.
func serve(t *testing.T, ctx context.Context, start func() (*labserve.Lab, error)) *labserve.Lab {
	t.Helper()
	labtest.Lock(t) // no other package's lab on these addresses meanwhile
	deadline := time.Now().Add(time.Minute)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		l, err := start()
		if err != nil {
			t.Fatal(err)
		}
		n := len(l.Skipped())
		if n == 0 {
			return l
		}
		l.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%d lab addresses stay taken (by another process or test)", n)
		}
		t.Logf("%d lab addresses taken, retrying in %v", n, wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}

func key(addr uint32, port uint16) uint64 { return uint64(addr)<<16 | uint64(port) }

// world answers as services/prober.WorldResponder does with no loss: the
// first truth row of each (ip, port); a sweep yields the rows of the prefix
// on the port.
type world struct {
	rows   map[uint64]row.Row
	order  []row.Service // distinct services, truth order
	byPort map[uint16][]uint32
}

func newWorld(ts []row.Row) *world {
	w := &world{rows: map[uint64]row.Row{}, byPort: map[uint16][]uint32{}}
	for _, r := range ts {
		a, err := r.Validate()
		if err != nil {
			panic(err)
		}
		k := key(a, uint16(r.Port))
		if _, dup := w.rows[k]; dup {
			continue
		}
		w.rows[k] = r
		w.order = append(w.order, row.Service{Row: r, Addr: a})
		w.byPort[uint16(r.Port)] = append(w.byPort[uint16(r.Port)], a)
	}
	for _, as := range w.byPort {
		slices.Sort(as)
	}
	return w
}

func (w *world) sweep(prefix uint32, bits int, port uint16) []row.Row {
	p := ipv4.Prefix{Addr: prefix, Bits: bits}
	var out []row.Row
	for _, a := range w.byPort[port] {
		if p.Contains(a) {
			out = append(out, w.rows[key(a, port)])
		}
	}
	return out
}

type result struct {
	r   row.Row
	ok  bool
	err error
}

// probeAll probes targets concurrently; results are in target order.
func probeAll(ctx context.Context, p *Prober, targets []row.Service) []result {
	out := make([]result, len(targets))
	var wg sync.WaitGroup
	for i, s := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, ok, err := p.Probe(ctx, s.Addr, uint16(s.Port))
			out[i] = result{r, ok, err}
		}()
	}
	wg.Wait()
	return out
}

// TestLab serves a small lab world on loopback and probes it for real: the
// connect engine and the zgrab2 grab must find what the world's truth (the
// WorldResponder) answers for the same targets, with the same fields.
func TestLab(t *testing.T) {
	dir, w := labtest.WriteWorld(t, lab.Config{Seed: 1, Hosts: 300, Slash16s: 1, SeedFrac: 0.2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := zaptest.NewLogger(t)
	l := serve(t, ctx, func() (*labserve.Lab, error) { return labserve.Serve(ctx, dir, labserve.Options{}, log) })
	defer l.Close()
	truth := newWorld(w.Truth)
	skipped := map[string]bool{}
	for _, r := range l.Skipped() { // an ip:port this machine already uses
		skipped[r.IP+":"+strconv.Itoa(r.Port)] = true
	}
	var targets []row.Service
	for _, s := range truth.order {
		if !skipped[s.IP+":"+strconv.Itoa(s.Port)] {
			targets = append(targets, s)
		}
	}
	pol := policy(t, "127.1.0.0/16")
	opts := Options{Policy: pol, Timeout: time.Second, BannerWait: 500 * time.Millisecond, Log: log}

	t.Run("every service, unfiltered", func(t *testing.T) {
		o := opts
		o.KeepEmpty, o.PseudoPorts = true, -1
		p, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res := probeAll(ctx, p, targets)
		el := time.Since(start)
		match := 0
		for i, x := range res {
			switch {
			case x.err != nil:
				t.Errorf("%s:%d: %v", targets[i].IP, targets[i].Port, x.err)
			case !x.ok:
				t.Logf("%s:%d: not found", targets[i].IP, targets[i].Port)
			default:
				if err := labtest.SameFields(x.r, targets[i].Row); err != nil {
					t.Logf("%s:%d: %v", targets[i].IP, targets[i].Port, err)
				} else {
					match++
				}
			}
		}
		frac := float64(match) / float64(len(targets))
		st := p.Stats()
		t.Logf("found with identical fields %d of %d world services (%.2f %%) in %v; connects %d; http %d tls %d ssh %d banner %d silent %d closed-at-once %d",
			match, len(targets), 100*frac, el, st.Connects.Load(), st.HTTP.Load(), st.TLS.Load(), st.SSH.Load(), st.Banner.Load(), st.Silent.Load(), st.Shut.Load())
		if frac < 0.99 {
			t.Fatalf("found %.2f %% of the world's services with the same fields, want >= 99 %%", 100*frac)
		}
	})

	t.Run("LZR filter", func(t *testing.T) {
		p, err := New(opts) // defaults: data-less services and pseudo hosts dropped
		if err != nil {
			t.Fatal(err)
		}
		res := probeAll(ctx, p, targets)
		kept, match, extra := 0, 0, 0
		for i, x := range res {
			want := targets[i].Row
			keep := want.Data != "" || want.Fingerprint == "tls"
			if keep {
				kept++
			}
			switch {
			case x.err != nil:
				t.Errorf("%s:%d: %v", want.IP, want.Port, x.err)
			case x.ok && !keep:
				extra++
				t.Errorf("%s:%d: data-less %q service returned: %+v", want.IP, want.Port, want.Fingerprint, x.r)
			case x.ok && labtest.SameFields(x.r, want) == nil:
				match++
			}
		}
		st := p.Stats()
		t.Logf("kept %d of %d expected (%d services without data dropped: %d; pseudo: %d)", match, kept,
			len(targets)-kept, st.DropNoData.Load(), st.DropPseudo.Load())
		if float64(match) < 0.99*float64(kept) {
			t.Fatalf("found %d of %d services with data, want >= 99 %%", match, kept)
		}
		if got := st.DropNoData.Load(); got < uint64(float64(len(targets)-kept)*0.99) || got > uint64(len(targets)-kept) {
			t.Errorf("dropped %d for no data, want %d", got, len(targets)-kept)
		}
	})

	t.Run("non-services", func(t *testing.T) {
		p, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		ports := []uint16{21, 22, 23, 25, 80, 443, 3306, 8080, 8443}
		var ts []row.Service
		for len(ts) < 300 {
			var a uint32
			if len(ts)%2 == 0 { // a host of the world, a port it does not serve
				a = targets[rng.IntN(len(targets))].Addr
			} else {
				a = 127<<24 | 1<<16 | uint32(rng.IntN(65536))
			}
			port := ports[rng.IntN(len(ports))]
			if len(ts)%3 == 0 {
				port = uint16(1 + rng.IntN(65535))
			}
			if _, ok := truth.rows[key(a, port)]; ok || p.gate.hostPort(a, port) {
				continue
			}
			ts = append(ts, row.Service{Row: row.Row{IP: row.FormatAddr(a), Port: int(port)}, Addr: a})
		}
		for i, x := range probeAll(ctx, p, ts) {
			if x.err != nil || x.ok {
				t.Errorf("%s:%d (no service): found %v %+v, err %v", ts[i].IP, ts[i].Port, x.ok, x.r, x.err)
			}
		}
		if st := p.Stats(); st.Closed.Load() != uint64(len(ts)) {
			t.Errorf("closed = %d, want %d", st.Closed.Load(), len(ts))
		}
	})

	t.Run("sweeps", func(t *testing.T) {
		o := opts
		o.KeepEmpty, o.PseudoPorts = true, -1
		p, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		for _, port := range []uint16{80, 22, 443, 21, 25} {
			// the /24 with the most services on the port
			count := map[uint32]int{}
			for _, a := range truth.byPort[port] {
				count[a&^0xff]++
			}
			var best uint32
			for pfx, n := range count {
				if n > count[best] || (n == count[best] && pfx < best) {
					best = pfx
				}
			}
			want := truth.sweep(best, 24, port)
			var got []row.Row
			probes, err := p.Sweep(ctx, best, 24, port, func(r row.Row) { got = append(got, r) })
			if err != nil {
				t.Fatal(err)
			}
			if probes != 256 {
				t.Errorf("sweep %s/24:%d: %d probes, want 256", row.FormatAddr(best), port, probes)
			}
			byIP := map[string]row.Row{}
			for _, r := range got {
				byIP[r.IP] = r
			}
			match := 0
			for _, r := range want {
				if g, ok := byIP[r.IP]; !ok {
					t.Errorf("sweep %s/24:%d: missed %s", row.FormatAddr(best), port, r.IP)
				} else if err := labtest.SameFields(g, r); err != nil {
					t.Errorf("sweep %s/24:%d: %s: %v", row.FormatAddr(best), port, r.IP, err)
				} else {
					match++
				}
			}
			if len(got) != len(want) {
				t.Errorf("sweep %s/24:%d: %d services, want %d", row.FormatAddr(best), port, len(got), len(want))
			}
			t.Logf("sweep %s/24 port %d: %d of %d world services", row.FormatAddr(best), port, match, len(want))
		}
	})
}

// TestPseudoHost: a host answering identically on many ports is a
// pseudo-service host; its answers beyond the threshold are dropped.
func TestPseudoHost(t *testing.T) {
	var rows []row.Row
	for i := range 40 {
		rows = append(rows, row.Row{IP: "127.3.0.1", Port: 1000 + i, Fingerprint: "unknown", Data: "Connection refused by policy"})
	}
	for i := range 5 {
		rows = append(rows, row.Row{IP: "127.3.0.2", Port: 2000 + i, Fingerprint: "ssh", Data: "SSH-2.0-OpenSSH_9.6"})
	}
	rows = append(rows, row.Row{IP: "127.3.0.2", Port: 80, Fingerprint: "http", Data: "HTTP/1.1 200 OK\nServer: x\nContent-Length: 10"},
		row.Row{IP: "127.3.0.2", Port: 25, Fingerprint: "smtp", Data: "220 mail.example ESMTP"})
	ctx := context.Background()
	l := serve(t, ctx, func() (*labserve.Lab, error) {
		return labserve.ServeRows(ctx, rows, labserve.Options{}, zaptest.NewLogger(t))
	})
	defer l.Close()
	p, err := New(Options{Policy: policy(t, "127.3.0.0/24"), Timeout: time.Second, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	for _, r := range rows {
		a, _ := row.ParseAddr(r.IP)
		got, ok, err := p.Probe(ctx, a, uint16(r.Port))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			found[r.IP]++
			if err := labtest.SameFields(got, r); err != nil {
				t.Errorf("%s:%d: %v", r.IP, r.Port, err)
			}
		}
	}
	if found["127.3.0.1"] != DefaultPseudoPorts {
		t.Errorf("pseudo host: %d services returned, want the first %d", found["127.3.0.1"], DefaultPseudoPorts)
	}
	if found["127.3.0.2"] != 7 {
		t.Errorf("normal host: %d services returned, want 7", found["127.3.0.2"])
	}
	if got := p.Stats().DropPseudo.Load(); got != 40-DefaultPseudoPorts {
		t.Errorf("dropped as pseudo: %d, want %d", got, 40-DefaultPseudoPorts)
	}
}

// refusingDial never touches the network: every dial is a refused
// connection. It records who was dialled, and when.
type refusingDial struct {
	mu    sync.Mutex
	addrs []string
	times []time.Time
	n     atomic.Int64
}

func (d *refusingDial) dial(ctx context.Context, network, address string) (net.Conn, error) {
	now := time.Now()
	d.n.Add(1)
	d.mu.Lock()
	d.addrs = append(d.addrs, address)
	d.times = append(d.times, now)
	d.mu.Unlock()
	return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

// TestPolicy: targets outside the allow list are refused before anything is
// sent, by Probe, Sweep and the grab's own dials.
func TestPolicy(t *testing.T) {
	ctx := context.Background()
	d := &refusingDial{}
	pol := policy(t, "127.1.0.0/16")
	p, err := New(Options{Policy: pol, Rate: -1, Dial: d.dial})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		addr string
	}{
		{"other loopback /16", "127.2.0.1"},
		{"public (TEST-NET-1)", "192.0.2.1"},
		{"this host", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := row.ParseAddr(tc.addr)
			_, ok, err := p.Probe(ctx, a, 80)
			if !errors.Is(err, ErrRefused) || ok {
				t.Fatalf("Probe(%s) = %v, %v; want ErrRefused", tc.addr, ok, err)
			}
			n, err := p.Sweep(ctx, a&^0xff, 24, 80, func(row.Row) { t.Error("found something") })
			if !errors.Is(err, ErrRefused) || n != 0 {
				t.Fatalf("Sweep(%s/24) = %d, %v; want ErrRefused", tc.addr, n, err)
			}
			if _, err := p.dialString(ctx, tc.addr+":443"); !errors.Is(err, ErrRefused) {
				t.Fatalf("dial %s = %v; want ErrRefused", tc.addr, err)
			}
			if d.n.Load() != 0 {
				t.Fatalf("%d connects attempted for refused targets", d.n.Load())
			}
		})
	}
	t.Run("sweep partly outside", func(t *testing.T) {
		// 127.0.0.0/15: 127.0.0.0/16 is not allowed, 127.1.0.0/16 is.
		n, err := p.Sweep(ctx, 127<<24, 15, 80, func(row.Row) {})
		if err != nil || n != 65536 {
			t.Fatalf("Sweep = %d, %v; want 65536 probes", n, err)
		}
		if d.n.Load() != 65536 {
			t.Fatalf("%d connects, want 65536", d.n.Load())
		}
		for _, a := range d.addrs {
			host, _, _ := net.SplitHostPort(a)
			x, err := row.ParseAddr(host)
			if err != nil || !pol.Allowed(x) {
				t.Fatalf("dialled %s, outside the policy", a)
			}
		}
	})
	t.Run("host listener", func(t *testing.T) {
		q, err := New(Options{Policy: pol, Rate: -1, Dial: d.dial})
		if err != nil {
			t.Fatal(err)
		}
		q.gate.hostPorts = map[uint16]bool{9999: true} // as if this machine listened on 0.0.0.0:9999
		before := d.n.Load()
		a, _ := row.ParseAddr("127.1.0.1")
		if _, _, err := q.Probe(ctx, a, 9999); !errors.Is(err, ErrRefused) {
			t.Fatalf("Probe of a host listener port = %v, want ErrRefused", err)
		}
		if _, err := q.Sweep(ctx, a&^0xff, 24, 9999, func(row.Row) {}); !errors.Is(err, ErrRefused) {
			t.Fatalf("Sweep of a host listener port = %v, want ErrRefused", err)
		}
		if _, _, err := q.Probe(ctx, a, 9998); err != nil {
			t.Fatalf("Probe of another port: %v", err)
		}
		if n := d.n.Load() - before; n != 1 {
			t.Fatalf("%d connects, want 1 (port 9998 only)", n)
		}
	})
	t.Run("options", func(t *testing.T) {
		if _, err := New(Options{}); !errors.Is(err, ErrNoPolicy) {
			t.Errorf("New without a policy: %v, want ErrNoPolicy", err)
		}
		if _, err := New(Options{Policy: pol, Engine: "carrier-pigeon"}); !errors.Is(err, ErrEngine) {
			t.Errorf("New with a bad engine: %v, want ErrEngine", err)
		}
	})
}

// TestRate: connects never outrun the limiter. By the time the k-th connect
// (in time order) happens, k+1 tokens have been taken from a bucket of Batch
// that refills at Rate, so it cannot be earlier than (k+1-Batch)/Rate after
// the start. Checked on timestamps, with no upper bound on time (no flake).
func TestRate(t *testing.T) {
	const rate, batch, n = 200, 20, 400
	d := &refusingDial{}
	start := time.Now()
	p, err := New(Options{Policy: policy(t, "127.1.0.0/16"), Rate: rate, Batch: batch, Concurrency: 64, Dial: d.dial})
	if err != nil {
		t.Fatal(err)
	}
	var ts []row.Service
	for i := range n {
		a := uint32(127<<24 | 1<<16 | i)
		ts = append(ts, row.Service{Row: row.Row{IP: row.FormatAddr(a), Port: 80}, Addr: a})
	}
	for _, x := range probeAll(context.Background(), p, ts) {
		if x.err != nil || x.ok {
			t.Fatalf("probe: %v %v", x.ok, x.err)
		}
	}
	el := time.Since(start)
	times := slices.Clone(d.times)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	if len(times) != n {
		t.Fatalf("%d connects, want %d", len(times), n)
	}
	const slack = 5 * time.Millisecond
	for k, at := range times {
		earliest := start.Add(time.Duration(float64(k+1-batch) / rate * float64(time.Second)))
		if at.Before(earliest.Add(-slack)) {
			t.Fatalf("connect %d at %v, before %v: the rate limit was exceeded", k, at.Sub(start), earliest.Sub(start))
		}
	}
	if min := time.Duration(float64(n-batch) / rate * float64(time.Second)); el < min-slack {
		t.Fatalf("%d connects in %v, want at least %v", n, el, min)
	}
	t.Logf("%d connects in %v at %d/s (burst %d)", n, el, rate, batch)
}

// TestSYN: the raw-socket SYN engine finds the lab's services as the connect
// engine does, and reports the SYN-ACK window. Skipped where raw sockets are
// denied.
func TestSYN(t *testing.T) {
	w := labtest.World(t, lab.Config{Seed: 2, Hosts: 150, Slash16s: 1, SeedFrac: 0.2})
	ctx := context.Background()
	log := zaptest.NewLogger(t)
	l := serve(t, ctx, func() (*labserve.Lab, error) { return labserve.ServeRows(ctx, w.Truth, labserve.Options{}, log) })
	defer l.Close()
	truth := newWorld(l.Services())
	pol := policy(t, "127.1.0.0/16")
	p, err := New(Options{Policy: pol, Engine: EngineSYN, Timeout: time.Second, BannerWait: 500 * time.Millisecond,
		KeepEmpty: true, PseudoPorts: -1, Log: log})
	if errors.Is(err, ErrEngine) {
		t.Skipf("raw sockets denied here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	}()

	t.Run("refused before sending", func(t *testing.T) {
		for _, s := range []string{"127.2.0.1", "192.0.2.1"} {
			a, _ := row.ParseAddr(s)
			if _, _, err := p.Probe(ctx, a, 80); !errors.Is(err, ErrRefused) {
				t.Fatalf("Probe(%s) = %v, want ErrRefused", s, err)
			}
		}
		if n := p.Stats().Connects.Load(); n != 0 {
			t.Fatalf("%d packets sent for refused targets", n)
		}
	})

	t.Run("every service", func(t *testing.T) {
		res := probeAll(ctx, p, truth.order)
		match := 0
		for i, x := range res {
			want := truth.order[i].Row
			if x.err != nil || !x.ok {
				t.Logf("%s:%d: found %v, %v", want.IP, want.Port, x.ok, x.err)
				continue
			}
			if x.r.Window == nil || *x.r.Window <= 0 {
				t.Errorf("%s:%d: no SYN-ACK window", want.IP, want.Port)
			}
			g := x.r
			g.Window = nil
			if err := labtest.SameFields(g, want); err != nil {
				t.Logf("%s:%d: %v", want.IP, want.Port, err)
				continue
			}
			match++
		}
		st := p.Stats()
		t.Logf("syn engine: %d of %d services with identical fields; packets+connects %d, invalid replies %d", match, len(res),
			st.Connects.Load(), st.SYNInvalid.Load())
		if float64(match) < 0.99*float64(len(res)) {
			t.Fatalf("found %d of %d, want >= 99 %%", match, len(res))
		}
	})

	t.Run("sweeps at once", func(t *testing.T) {
		// Several (/24, port) groups swept concurrently: each finds exactly
		// its services, with the SYN-ACK's window.
		type group struct {
			a    uint32
			port uint16
		}
		var groups []group
		seen := map[group]bool{}
		for _, s := range truth.order {
			g := group{s.Addr &^ 0xff, uint16(s.Port)}
			if !seen[g] && len(truth.sweep(g.a, 24, g.port)) > 0 {
				seen[g] = true
				groups = append(groups, g)
			}
			if len(groups) == 6 {
				break
			}
		}
		var wg sync.WaitGroup
		for _, g := range groups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := map[string]row.Row{}
				for _, r := range truth.sweep(g.a, 24, g.port) {
					want[r.IP] = r
				}
				var got []row.Row
				n, err := p.Sweep(ctx, g.a, 24, g.port, func(r row.Row) { got = append(got, r) })
				if err != nil || n != 256 {
					t.Errorf("Sweep = %d, %v", n, err)
					return
				}
				if len(got) != len(want) {
					t.Errorf("sweep %s/24:%d found %d, want %d", row.FormatAddr(g.a), g.port, len(got), len(want))
				}
				for _, r := range got {
					if r.Window == nil {
						t.Errorf("%s:%d: no window from the SYN-ACK", r.IP, r.Port)
						continue
					}
					r.Window = nil
					if err := labtest.SameFields(r, want[r.IP]); err != nil {
						t.Errorf("%s:%d: %v", r.IP, r.Port, err)
					}
				}
			}()
		}
		wg.Wait()
	})
}

func TestWildcardListeners(t *testing.T) {
	const procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:98F7 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2114260 2 0 100 0 0 10 0
   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1472 1 0 100 0 0 10 0
   2: 00000000:0050 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0 100 0 0 10 0
   3: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1 0 100 0 0 10 0
`
	got := wildcardListeners(strings.NewReader(procNetTCP))
	if want := []uint16{2024, 8080}; !slices.Equal(got, want) {
		t.Fatalf("wildcardListeners = %v, want %v", got, want)
	}
}
