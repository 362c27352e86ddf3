package prober

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// start runs the prober until the test ends, and checks it stops cleanly.
func start(t *testing.T, b *bus.Bus, d Deps) *Stats {
	t.Helper()
	if d.Stats == nil {
		d.Stats = new(Stats)
	}
	d.Bus = b
	if d.Log == nil {
		d.Log = zaptest.NewLogger(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, d) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run returned %v after cancel", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not stop")
		}
	})
	return d.Stats
}

func publish(t *testing.T, b *bus.Bus, subject, id string, v any) {
	t.Helper()
	data, ok := v.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(context.Background(), subject, id, data); err != nil {
		t.Fatal(err)
	}
}

func targetsMsg(phase string, ts ...wire.Target) wire.Targets {
	return wire.Targets{V: wire.Version, Phase: phase, Targets: ts, Time: time.Now()}
}

func predictionMsg(ip string, port int, p float64) wire.Prediction {
	return wire.Prediction{V: wire.Version, IP: ip, Port: port, Probability: p, Evidence: wire.Evidence{Port: 80, Feature: "f"}, Time: time.Now()}
}

func decodeResults(t *testing.T, msgs []*jetstream.RawStreamMsg) []wire.Result {
	t.Helper()
	var out []wire.Result
	for _, m := range msgs {
		rs, err := wire.DecodeResults(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		var batch wire.ResultBatch
		for i := range rs {
			if rs[i].Source != "probe" || len(rs) > wire.BatchResults {
				t.Fatalf("result %s:%d source %q in a batch of %d", rs[i].IP, rs[i].Port, rs[i].Source, len(rs))
			}
			batch.Add(&rs[i])
		}
		// The id of a batch is its first result's, with its length and hash.
		if id, want := m.Header.Get(jetstream.MsgIDHeader), batch.ID("res"); id != want {
			t.Fatalf("%d results with Nats-Msg-Id %q, want %q", len(rs), id, want)
		}
		if len(rs) == 1 && m.Header.Get(jetstream.MsgIDHeader) != fmt.Sprintf("res:%s:%d", rs[0].IP, rs[0].Port) {
			t.Fatalf("a single result's Nats-Msg-Id %q", m.Header.Get(jetstream.MsgIDHeader))
		}
		out = append(out, rs...)
	}
	return out
}

func TestSweepAndPredictionsOnAWorld(t *testing.T) {
	dir, w := world(t)
	b := bustest.New(t)
	// One worker, so the predictions are handled in order.
	st := start(t, b, Deps{Config: Config{World: dir, Concurrency: 1, Hitrate: DefaultHitrate}})
	port := busiestPort(w)

	// A priors sweep of 127.1.0.0/16 on the busiest port finds exactly the
	// truth services there.
	var want []string
	seen := make(map[string]bool)
	for _, r := range w.Truth {
		k := fmt.Sprintf("%s:%d", r.IP, r.Port)
		if r.Port == port && strings.HasPrefix(r.IP, "127.1.") && !seen[k] {
			seen[k] = true
			want = append(want, k)
		}
	}
	if len(want) < 5 {
		t.Fatalf("world too small: %d services on port %d", len(want), port)
	}
	publish(t, b, wire.TargetsSubject(wire.PhasePriors), "t1", targetsMsg(wire.PhasePriors, wire.Target{Prefix: "127.1.0.0/16", Port: port}))
	servicetest.WaitFor(t, "the sweep", func() bool { return st.Targets.Load() == 1 })
	var got []string
	for _, r := range decodeResults(t, servicetest.Stored(t, b, bus.StreamResults)) {
		if r.Phase != wire.PhasePriors {
			t.Fatalf("result phase %q", r.Phase)
		}
		got = append(got, fmt.Sprintf("%s:%d", r.IP, r.Port))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("sweep found %d services, want the %d of the truth", len(got), len(want))
	}
	if st.Probes.Load() != 1<<16 || st.Found.Load() != uint64(len(want)) {
		t.Fatalf("probes %d found %d", st.Probes.Load(), st.Found.Load())
	}

	// A service on another port, and an address with no service.
	var other row.Row
	for _, r := range w.Truth {
		if r.Port != port {
			other = r
			break
		}
	}
	for i, p := range []wire.Prediction{
		predictionMsg(other.IP, other.Port, 0.5),               // found
		predictionMsg("127.2.255.254", 4, 0.5),                 // no service
		predictionMsg(other.IP, other.Port+1, 1e-6),            // below --min-probability
		predictionMsg(strings.Split(want[0], ":")[0], port, 1), // inside the swept group
		predictionMsg(other.IP, other.Port, 0.9),               // already probed
	} {
		publish(t, b, wire.PredictionsSubject(wire.PhaseSeed), fmt.Sprintf("p%d", i), p)
	}
	servicetest.WaitFor(t, "the predictions", func() bool { return st.Predictions.Load() == 5 })
	rs := decodeResults(t, servicetest.Stored(t, b, bus.StreamResults))
	if len(rs) != len(want)+1 {
		t.Fatalf("%d results after the predictions, want %d", len(rs), len(want)+1)
	}
	last := rs[len(rs)-1]
	if last.IP != other.IP || last.Port != other.Port || last.Phase != wire.PhasePredicted || last.Data != other.Data {
		t.Fatalf("predicted result %+v, want %s:%d", last, other.IP, other.Port)
	}
	if st.BelowMin.Load() != 1 || st.Skipped.Load() != 2 || st.Probes.Load() != 1<<16+2 {
		t.Fatalf("below-min %d skipped %d probes %d", st.BelowMin.Load(), st.Skipped.Load(), st.Probes.Load())
	}

	// The same sweep again is not swept twice.
	publish(t, b, wire.TargetsSubject(wire.PhasePriors), "t2", targetsMsg(wire.PhasePriors, wire.Target{Prefix: "127.1.0.0/16", Port: port}))
	servicetest.WaitFor(t, "the second sweep", func() bool { return st.Targets.Load() == 2 })
	if st.Probes.Load() != 1<<16+2 {
		t.Fatalf("second sweep: skipped %d probes %d", st.Skipped.Load(), st.Probes.Load())
	}
}

// counting answers nothing and counts its calls.
type counting struct {
	mu     sync.Mutex
	probes []string
	sweeps []string
}

func (c *counting) Probe(_ context.Context, addr uint32, port uint16) (row.Row, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.probes = append(c.probes, fmt.Sprintf("%s:%d", row.FormatAddr(addr), port))
	return row.Row{IP: row.FormatAddr(addr), Port: int(port), Fingerprint: "fake"}, true, nil
}

func (c *counting) Sweep(_ context.Context, prefix uint32, bits int, port uint16, fn func(row.Row)) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweeps = append(c.sweeps, fmt.Sprintf("%s/%d:%d", row.FormatAddr(prefix), bits, port))
	return 1 << (32 - bits), nil
}

// covers reports whether sweeps (the chunks a sweep was cut into, each
// "prefix:port") cover want ("prefix:port") exactly once and nothing else.
func covers(sweeps []string, want string) bool {
	wp, wport, _ := strings.Cut(want, ":")
	pr, err := ipv4.ParsePrefix(wp)
	if err != nil {
		return false
	}
	seen := map[string]bool{}
	var n uint64
	for _, s := range sweeps {
		sp, port, _ := strings.Cut(s, ":")
		c, err := ipv4.ParsePrefix(sp)
		if err != nil || port != wport || seen[s] || c.Bits < pr.Bits || !pr.Contains(c.Addr) {
			return false
		}
		seen[s] = true
		n += 1 << (32 - c.Bits)
	}
	return n == 1<<(32-pr.Bits)
}

func (c *counting) calls() ([]string, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.probes), slices.Clone(c.sweeps)
}

func TestRefusedOutsideTheAllowList(t *testing.T) {
	b := bustest.New(t)
	fake := new(counting)
	// Plan groups of /8: the /8 sweeps below are not too large.
	st := start(t, b, Deps{Config: Config{Allow: []string{"127.1.0.0/16"}, Step: 8}, Responder: fake})

	for _, tc := range []struct {
		name, subject string
		msg           any
		refused       uint64
		probes        []string
		sweep         string // covered by the chunks swept, if any
	}{
		{"public address", wire.TargetsSubject(wire.PhaseSeed), targetsMsg(wire.PhaseSeed, wire.Target{IP: "8.8.8.8", Port: 53}), 1, nil, ""},
		{"private prefix", wire.TargetsSubject(wire.PhasePriors), targetsMsg(wire.PhasePriors, wire.Target{Prefix: "10.0.0.0/8", Port: 22}), 1, nil, ""},
		{"loopback outside the allow list", wire.TargetsSubject(wire.PhaseSeed), targetsMsg(wire.PhaseSeed, wire.Target{IP: "127.0.0.1", Port: 22}), 1, nil, ""},
		{"prediction", wire.PredictionsSubject(wire.PhaseSeed), predictionMsg("1.1.1.1", 443, 0.9), 1, nil, ""},
		{"mixed message probes the allowed part", wire.TargetsSubject(wire.PhaseSeed),
			targetsMsg(wire.PhaseSeed, wire.Target{IP: "127.1.0.1", Port: 80}, wire.Target{IP: "203.0.113.5", Port: 80}), 1, []string{"127.1.0.1:80"}, ""},
		{"sweep clipped to the allow list", wire.TargetsSubject(wire.PhasePriors),
			targetsMsg(wire.PhasePriors, wire.Target{Prefix: "127.0.0.0/8", Port: 8080}), 0, nil, "127.1.0.0/16:8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := st.Refused.Load()
			handled := st.Targets.Load() + st.Predictions.Load()
			dlq := len(servicetest.Stored(t, b, bus.StreamDeadLetter))
			p0, s0 := fake.calls()
			publish(t, b, tc.subject, tc.name, tc.msg)
			servicetest.WaitFor(t, "the message", func() bool { return st.Targets.Load()+st.Predictions.Load() == handled+1 })
			if got := st.Refused.Load() - before; got != tc.refused {
				t.Fatalf("refused %d, want %d", got, tc.refused)
			}
			p1, s1 := fake.calls()
			swept := s1[len(s0):]
			if !slices.Equal(p1[len(p0):], tc.probes) || tc.sweep == "" && len(swept) > 0 || tc.sweep != "" && !covers(swept, tc.sweep) {
				t.Fatalf("responder called with probes %v sweeps %v, want %v and sweeps of %q", p1[len(p0):], swept, tc.probes, tc.sweep)
			}
			dl := servicetest.Stored(t, b, bus.StreamDeadLetter)
			if tc.refused == 0 {
				if len(dl) != dlq {
					t.Fatal("an allowed message was dead-lettered")
				}
				return
			}
			if len(dl) != dlq+1 {
				t.Fatalf("%d dead letters, want %d", len(dl), dlq+1)
			}
			m := dl[len(dl)-1]
			if m.Subject != wire.DeadLetterPrefix+Durable || !strings.Contains(m.Header.Get(bus.HeaderReason), "outside the allow policy") ||
				m.Header.Get(bus.HeaderSubject) != tc.subject {
				t.Fatalf("dead letter %s %v", m.Subject, m.Header)
			}
		})
	}
}

func TestBadMessagesAreDeadLettered(t *testing.T) {
	b := bustest.New(t)
	fake := new(counting)
	st := start(t, b, Deps{Config: Config{Allow: []string{"127.0.0.0/8"}}, Responder: fake})
	publish(t, b, wire.TargetsSubject(wire.PhaseSeed), "bad1", []byte("not json"))
	publish(t, b, wire.PredictionsSubject(wire.PhaseSeed), "bad2", []byte(`{"v":1,"ip":"nope","port":80}`))
	publish(t, b, wire.TargetsSubject(wire.PhaseSeed), "bad3", []byte(`{"v":1,"phase":"seed","targets":[{"ip":"127.0.0.1","port":0}]}`))
	servicetest.WaitFor(t, "the bad messages", func() bool { return st.Bad.Load() == 3 })
	if n := len(servicetest.Stored(t, b, bus.StreamDeadLetter)); n != 3 {
		t.Fatalf("%d dead letters, want 3", n)
	}
	if p, s := fake.calls(); len(p)+len(s) != 0 {
		t.Fatal("responder called for bad messages")
	}
}

// TestSweepLargerThanAPlanGroup checks that a sweep of a prefix shorter
// than the plan's step is refused and dead-lettered, the rest of its
// message done.
func TestSweepLargerThanAPlanGroup(t *testing.T) {
	b := bustest.New(t)
	fake := new(counting)
	st := start(t, b, Deps{Config: Config{Allow: []string{"127.0.0.0/8"}}, Responder: fake})
	publish(t, b, wire.TargetsSubject(wire.PhasePriors), "big", targetsMsg(wire.PhasePriors,
		wire.Target{Prefix: "0.0.0.0/0", Port: 80}, wire.Target{Prefix: "127.0.0.0/15", Port: 80},
		wire.Target{Prefix: "127.1.0.0/16", Port: 22}, wire.Target{Prefix: "8.8.8.0/24", Port: 53}))
	servicetest.WaitFor(t, "the message", func() bool { return st.Targets.Load() == 1 })
	if _, sweeps := fake.calls(); !covers(sweeps, "127.1.0.0/16:22") {
		t.Fatalf("swept %v, want only the /16", sweeps)
	}
	if st.TooLarge.Load() != 2 || st.Refused.Load() != 1 {
		t.Fatalf("too large %d refused %d, want 2 and 1", st.TooLarge.Load(), st.Refused.Load())
	}
	m := servicetest.DeadLetter(t, b, Durable)
	if r := m.Header.Get(bus.HeaderReason); !strings.Contains(r, "larger than a plan group (/16") || !strings.Contains(r, "0.0.0.0/0:80") ||
		!strings.Contains(r, "outside the allow policy") {
		t.Fatalf("reason %q", r)
	}
}

// TestOversizedDeadLetter checks that a message too big to be copied whole
// into a dead letter is dead-lettered once (cut, with its size), never
// retried, and that no log repeats its bad value.
func TestOversizedDeadLetter(t *testing.T) {
	b := bustest.New(t)
	fake := new(counting)
	st := start(t, b, Deps{Config: Config{Allow: []string{"127.0.0.0/8"}}, Responder: fake, Log: servicetest.ShortLogs(t)})
	for i, tc := range []struct{ subject, head, tail string }{
		{wire.TargetsSubject(wire.PhasePriors), `{"v":1,"phase":"priors","targets":[{"prefix":"`, `","port":80}]}`},
		{wire.PredictionsSubject(wire.PhaseSeed), `{"v":1,"ip":"`, `","port":80,"probability":0.5}`},
	} {
		data := servicetest.Oversized(servicetest.OversizedBytes, tc.head, tc.tail)
		publish(t, b, tc.subject, fmt.Sprint("huge", i), data)
		servicetest.WaitFor(t, "the dead letter", func() bool { return st.Bad.Load() == uint64(i+1) })
		m := servicetest.DeadLetter(t, b, Durable)
		if m.Header.Get(bus.HeaderSubject) != tc.subject || m.Header.Get(bus.HeaderBodySize) != fmt.Sprint(len(data)) ||
			m.Header.Get(bus.HeaderBodySHA256) == "" || len(m.Header.Get(bus.HeaderReason)) > bus.MaxReason {
			t.Fatalf("dead letter %v", m.Header)
		}
	}
	if n := st.Retried.Load(); n != 0 {
		t.Fatalf("%d retries", n)
	}
	if n := len(servicetest.Stored(t, b, bus.StreamDeadLetter)); n != 2 {
		t.Fatalf("%d dead letters, want 2", n)
	}
}

func TestSharedWorkQueue(t *testing.T) {
	dir, w := world(t)
	b := bustest.New(t)
	st1 := start(t, b, Deps{Config: Config{World: dir, Concurrency: 2}})
	st2 := start(t, b, Deps{Config: Config{World: dir, Concurrency: 2}})
	const n = 40
	for i := range n {
		r := w.Truth[i*7]
		publish(t, b, wire.TargetsSubject(wire.PhaseSeed), fmt.Sprint("q", i), targetsMsg(wire.PhaseSeed, wire.Target{IP: r.IP, Port: r.Port}))
	}
	servicetest.WaitFor(t, "the targets", func() bool { return st1.Targets.Load()+st2.Targets.Load() == n })
	if got := len(decodeResults(t, servicetest.Stored(t, b, bus.StreamResults))); got != n {
		t.Fatalf("%d results, want %d", got, n)
	}
	if p := st1.Probes.Load() + st2.Probes.Load(); p != n {
		t.Fatalf("%d probes for %d targets shared by two probers", p, n)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"allow required", nil, false},
		{"world defaults the allow list", []string{"--world", "w"}, true},
		{"allow", []string{"--allow", "127.0.0.0/8"}, true},
		{"allow file", []string{"--allow-file", "a.txt"}, true},
		{"bad loss", []string{"--world", "w", "--loss", "2"}, false},
		{"bad concurrency", []string{"--world", "w", "--concurrency", "-1"}, false},
		{"bad min probability", []string{"--world", "w", "--min-probability", "-1"}, false},
		{"negative latency", []string{"--world", "w", "--latency", "-1s"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			fs := flag.NewFlagSet("prober", flag.ContinueOnError)
			c.RegisterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	var c Config
	c.RegisterFlags(flag.NewFlagSet("prober", flag.ContinueOnError))
	if c.WithDefaults().Concurrency != DefaultConcurrency || c.Hitrate != 1e-5 {
		t.Fatalf("defaults %+v", c)
	}
	c.Live = true
	if got := c.WithDefaults().Concurrency; got != DefaultLiveConcurrency {
		t.Fatalf("live concurrency %d, want %d", got, DefaultLiveConcurrency)
	}
	if got := (Config{World: "w"}).WithDefaults().Allow; !slices.Equal(got, []string{"127.0.0.0/8"}) {
		t.Fatalf("world allow %v", got)
	}
	// No responder and no world, or an allow list the policy refuses.
	b := bustest.New(t)
	for _, c := range []Config{{Allow: []string{"127.0.0.0/8"}}, {Allow: []string{"10.0.0.0/8"}, World: "w"}} {
		if err := Run(context.Background(), Deps{Config: c, Bus: b}); err == nil {
			t.Fatalf("Run(%+v) started", c)
		}
	}
}

// slow answers every probe after a delay (honouring ctx) and counts them.
type slow struct {
	delay   time.Duration
	mu      sync.Mutex
	n       map[string]int
	aborted atomic.Int64 // probes cut short by their context
	hold    atomic.Bool  // probes started while set wait for their context only
	held    atomic.Int64 // probes waiting so
}

func (s *slow) Probe(ctx context.Context, addr uint32, port uint16) (row.Row, bool, error) {
	if s.hold.Load() {
		s.held.Add(1)
		<-ctx.Done()
		s.aborted.Add(1)
		return row.Row{}, false, ctx.Err()
	}
	select {
	case <-ctx.Done():
		s.aborted.Add(1)
		return row.Row{}, false, ctx.Err()
	case <-time.After(s.delay):
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n[fmt.Sprintf("%s:%d", row.FormatAddr(addr), port)]++
	return row.Row{IP: row.FormatAddr(addr), Port: int(port), Fingerprint: "fake"}, true, nil
}

func (s *slow) Sweep(ctx context.Context, prefix uint32, bits int, port uint16, fn func(row.Row)) (uint64, error) {
	return 0, errors.New("no sweeps here")
}

func (s *slow) probed() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.n)
}

// TestStopMidStream: a prober stopped while it handles messages finishes
// them or naks them (never leaving them to the consumer's AckWait); a
// prober started after it probes every target that is left, at once, and
// no target is lost.
func TestStopMidStream(t *testing.T) {
	for _, tc := range []struct {
		name     string
		drain    time.Duration
		released bool // messages being handled are cut short and nak'ed
	}{
		{"in-flight messages finish", 10 * time.Second, false},
		{"drain timeout naks them", time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bustest.New(t)
			const msgs, per = 40, 3
			want := map[string]bool{}
			for i := range msgs {
				var ts []wire.Target
				for j := range per {
					ts = append(ts, wire.Target{IP: fmt.Sprintf("127.1.%d.%d", i, j+1), Port: 80})
					want[fmt.Sprintf("127.1.%d.%d:80", i, j+1)] = true
				}
				publish(t, b, wire.TargetsSubject(wire.PhaseSeed), fmt.Sprint("m", i), targetsMsg(wire.PhaseSeed, ts...))
			}
			resp := &slow{delay: 30 * time.Millisecond, n: map[string]int{}}
			cfg := Config{Allow: []string{"127.1.0.0/16"}, Concurrency: 4, DrainTimeout: tc.drain}
			st := new(Stats)
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				errc <- Run(ctx, Deps{Config: cfg, Bus: b, Log: zaptest.NewLogger(t), Stats: st, Responder: resp})
			}()
			servicetest.WaitFor(t, "a few messages handled", func() bool { return st.Targets.Load() >= 5 })
			if tc.released {
				// Stop while a probe is surely in flight: one that waits
				// for its context, so the drain timeout must cut it short.
				resp.hold.Store(true)
				servicetest.WaitFor(t, "a probe in flight", func() bool { return resp.held.Load() > 0 })
			}
			stopped := time.Now()
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(pullWait + tc.drain + 5*time.Second):
				t.Fatal("Run did not stop in time")
			}
			t.Logf("stopped in %v: %d messages handled, %d released", time.Since(stopped).Round(time.Millisecond), st.Targets.Load(), st.Released.Load())
			// Released also counts messages that arrived from a pull in
			// flight after the stop (nak'ed unhandled); aborted probes are
			// those of messages cut short by the drain timeout.
			if aborted := resp.aborted.Load(); (aborted > 0) != tc.released || tc.released && st.Released.Load() == 0 {
				t.Errorf("%d probes aborted, %d messages released on stop; want messages cut short: %v", aborted, st.Released.Load(), tc.released)
			}
			c, err := b.JS.Consumer(context.Background(), bus.StreamTargets, Durable)
			if err != nil {
				t.Fatal(err)
			}
			info, err := c.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if left := int(info.NumPending) + int(info.NumAckPending); left != msgs-int(st.Targets.Load()) {
				t.Errorf("after the stop the consumer has %d pending + %d unacknowledged, want %d in all", info.NumPending, info.NumAckPending, msgs-int(st.Targets.Load()))
			}

			// A new prober takes what is left, well before the consumer's
			// AckWait would have handed on anything left unacknowledged.
			resp.hold.Store(false)
			restarted := time.Now()
			st2 := start(t, b, Deps{Config: cfg, Responder: resp})
			servicetest.WaitFor(t, "the rest", func() bool { return st.Targets.Load()+st2.Targets.Load() == msgs })
			if d := time.Since(restarted); d >= ackWait {
				t.Errorf("the rest took %v: something waited for AckWait (%v)", d, ackWait)
			}
			got := resp.probed()
			for k := range want {
				if got[k] == 0 {
					t.Errorf("target %s never probed", k)
				}
			}
			if len(got) != len(want) {
				t.Errorf("%d targets probed, want %d", len(got), len(want))
			}
			if n := len(decodeResults(t, servicetest.Stored(t, b, bus.StreamResults))); n != len(want) {
				t.Errorf("%d results, want %d", n, len(want))
			}
			if p := st.Probes.Load() + st2.Probes.Load(); !tc.released && p != uint64(len(want)) {
				t.Errorf("%d probes for %d targets: a finished message probed again", p, len(want))
			}
		})
	}
}

// heldSweep sweeps only once release is closed, and counts its calls.
type heldSweep struct {
	counting
	started chan struct{} // closed when a sweep has begun
	release chan struct{}
	once    sync.Once
}

func (g *heldSweep) Sweep(ctx context.Context, prefix uint32, bits int, port uint16, fn func(row.Row)) (uint64, error) {
	g.once.Do(func() { close(g.started) })
	select {
	case <-g.release:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return g.counting.Sweep(ctx, prefix, bits, port, fn)
}

// TestPredictionInASweepInProgress: live, a prediction of an address in a
// group being swept is not probed (the sweep covers it); one outside it is.
func TestPredictionInASweepInProgress(t *testing.T) {
	b := bustest.New(t)
	g := &heldSweep{started: make(chan struct{}), release: make(chan struct{})}
	live := Config{Allow: []string{"127.1.0.0/16"}, LiveConfig: LiveConfig{Live: true}} // the responder stands in for the network
	st := start(t, b, Deps{Config: live, Responder: g})
	publish(t, b, wire.TargetsSubject(wire.PhasePriors), "plan:1", targetsMsg(wire.PhasePriors, wire.Target{Prefix: "127.1.0.0/24", Port: 80}))
	<-g.started
	publish(t, b, wire.PredictionsSubject(wire.PhasePriors), "pred:1", predictionMsg("127.1.0.9", 80, 0.5))
	publish(t, b, wire.PredictionsSubject(wire.PhasePriors), "pred:2", predictionMsg("127.1.1.9", 80, 0.5))
	servicetest.WaitFor(t, "both predictions handled", func() bool { return st.Predictions.Load() == 2 })
	close(g.release)
	servicetest.WaitFor(t, "the sweep done", func() bool { return st.Targets.Load() == 1 })
	probes, sweeps := g.calls()
	if !slices.Equal(probes, []string{"127.1.1.9:80"}) || !slices.Equal(sweeps, []string{"127.1.0.0/24:80"}) {
		t.Fatalf("probes %v, sweeps %v; want the prediction outside the sweep probed, the one inside skipped", probes, sweeps)
	}
	if st.Skipped.Load() != 1 {
		t.Fatalf("skipped %d, want 1", st.Skipped.Load())
	}
}
