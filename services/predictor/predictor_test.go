package predictor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

var testWorld = lab.Config{Seed: 1, Hosts: 3000, Slash16s: 4, SeedFrac: 0.2}

// result is one result to publish.
type result struct {
	r     row.Row
	phase string
}

// scenario is the seed of a lab world, then for hosts outside it their
// first service as a priors result and (with more) the rest as predicted
// results, as the pipeline would find them.
func scenario(t testing.TB, hosts int, more bool) []result {
	t.Helper()
	w := labtest.World(t, testWorld)
	var out []result
	seed := make(map[string]bool)
	for _, r := range w.Seed {
		seed[r.IP] = true
		out = append(out, result{r, wire.PhaseSeed})
	}
	byHost := make(map[string][]row.Row)
	var order []string
	for _, r := range w.Truth {
		if seed[r.IP] {
			continue
		}
		if byHost[r.IP] == nil {
			order = append(order, r.IP)
		}
		byHost[r.IP] = append(byHost[r.IP], r)
	}
	var rest []result
	for _, ip := range order[:min(hosts, len(order))] {
		rows := byHost[ip]
		out = append(out, result{rows[0], wire.PhasePriors})
		if more {
			for _, r := range rows[1:] {
				rest = append(rest, result{r, wire.PhasePredicted})
			}
		}
	}
	return append(out, rest...)
}

// publish publishes results, one a message, returning the stream sequence
// of the last.
func publish(t testing.TB, b *bus.Bus, rs []result) uint64 {
	t.Helper()
	seqs := publishBatches(t, b, rs, 1)
	return seqs[len(seqs)-1]
}

// publishBatches publishes results in batches of up to per consecutive
// results of one phase (one a message with per 1), as the prober and the
// seeder do; it returns the stream sequence of each result's message.
func publishBatches(t testing.TB, b *bus.Bus, rs []result, per int) []uint64 {
	t.Helper()
	var futs []jetstream.PubAckFuture
	var sizes []int // results of each message in futs
	var seqs []uint64
	wait := func() {
		for i, seq := range servicetest.Acks(t, futs) {
			for range sizes[i] {
				seqs = append(seqs, seq)
			}
		}
		futs, sizes = futs[:0], sizes[:0]
	}
	var batch wire.ResultBatch
	phase := ""
	send := func() {
		n := batch.Len()
		id := fmt.Sprintf("test:%d:%s", time.Now().UnixNano(), batch.ID(""))
		f, err := b.JS.PublishAsync(wire.ResultsSubject(phase), batch.Take(), jetstream.WithMsgID(id))
		if err != nil {
			t.Fatal(err)
		}
		futs, sizes = append(futs, f), append(sizes, n)
		if len(futs) == 1000 {
			wait()
		}
	}
	now := time.Now().UTC()
	for _, x := range rs {
		if batch.Len() > 0 && (x.phase != phase || batch.Len() == per) {
			send()
		}
		phase = x.phase
		res := wire.ResultFromRow(x.r, x.phase, now, "test")
		if ok, err := batch.Add(&res); !ok || err != nil {
			t.Fatalf("add to a batch: %v %v", ok, err)
		}
	}
	if batch.Len() > 0 {
		send()
	}
	wait()
	return seqs
}

// running is a predictor started in the background.
type running = servicetest.Running[Stats]

func start(t testing.TB, b *bus.Bus, cfg Config) *running {
	t.Helper()
	return servicetest.Start(t, func(ctx context.Context, st *Stats) error {
		return Run(ctx, Deps{Config: cfg, Bus: b, Log: zaptest.NewLogger(t), Stats: st})
	})
}

type target struct {
	ip   string
	port int
}

// pred is what the last prediction of a target says, without its time,
// and how many were published (one more each time its probability rose).
type pred struct {
	subject string
	prob    float64
	ev      wire.Evidence
	version uint64
	sends   int
}

// sends is the number of prediction messages of ps.
func sends(ps map[target]pred) int {
	n := 0
	for _, p := range ps {
		n += p.sends
	}
	return n
}

// predictions reads the PREDICTIONS stream: the predictions by target, and
// the number of messages.
func predictions(t testing.TB, b *bus.Bus) (map[target]pred, int) {
	t.Helper()
	msgs := servicetest.Stored(t, b, bus.StreamPredictions)
	out := make(map[target]pred)
	for _, m := range msgs {
		p, err := wire.DecodePrediction(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		k := target{p.IP, p.Port}
		before, dup := out[k]
		if dup && p.Probability <= before.prob {
			t.Errorf("prediction %v published again at %g, not above %g", k, p.Probability, before.prob)
		}
		out[k] = pred{m.Subject, p.Probability, p.Evidence, p.ModelVersion, before.sends + 1}
	}
	return out, len(msgs)
}

// expected runs the predictor's semantics directly on a model: results in
// order, stream sequences from 1, one result a message.
func expected(t testing.TB, rs []result, hitrate float64) map[target]pred {
	t.Helper()
	seqs := make([]uint64, len(rs))
	for i := range seqs {
		seqs[i] = uint64(i + 1)
	}
	return expectedAt(t, rs, hitrate, seqs)
}

// expectedAt is expected with the stream sequence of each result's message.
func expectedAt(t testing.TB, rs []result, hitrate float64, seqs []uint64) map[target]pred {
	t.Helper()
	m := model.New()
	found := make(map[uint32][]model.Found)
	at := make(map[uint32]int) // the model's size when each host was last predicted
	out := make(map[target]pred)
	for i, x := range rs {
		a, err := x.r.Validate()
		if err != nil {
			t.Fatal(err)
		}
		svc := row.Service{Row: x.r, Addr: a}
		isNew := m.Add(&svc)
		feats := m.Dict().Of(nil, &svc, false)
		fs := model.AddFound(found[a], uint16(x.r.Port), feats)
		found[a] = fs
		if x.phase == wire.PhaseSeed {
			continue
		}
		if at[a] > 0 && !isNew && !m.Stale(at[a]) {
			continue
		}
		at[a] = m.Len()
		for _, p := range m.Predict(fs, hitrate) {
			k := target{x.r.IP, int(p.Port)}
			before, done := out[k]
			if done && p.Hitrate <= before.prob {
				continue
			}
			out[k] = pred{wire.PredictionsSubject(x.phase), p.Hitrate,
				wire.Evidence{Port: int(p.Evidence.Port), Feature: m.Dict().String(p.Feat), Count: p.Count, Support: p.Support}, seqs[i], before.sends + 1}
		}
	}
	return out
}

func diff(t *testing.T, got, want map[target]pred) {
	t.Helper()
	if maps.Equal(got, want) {
		return
	}
	n := 0
	for k, w := range want {
		if g, ok := got[k]; (!ok || g != w) && n < 5 {
			t.Errorf("%v: got %+v (%v), want %+v", k, g, ok, w)
			n++
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok && n < 10 {
			t.Errorf("%v: unexpected %+v", k, g)
			n++
		}
	}
	t.Errorf("%d predictions, want %d", len(got), len(want))
}

func TestPredict(t *testing.T) {
	dup := scenario(t, 50, false)
	dup = append(dup, dup[len(dup)-10:]...) // the same priors results again
	cases := []struct {
		name string
		rs   []result
		per  int // results a message
	}{
		{"priors first services", scenario(t, 100, false), 1},
		{"priors then predicted services", scenario(t, 100, true), 1},
		{"duplicate results", dup, 1},
		// Every result of a batch is applied and predicted from, in order.
		{"batches", scenario(t, 100, true), 37},
		{"duplicate results in batches", dup, 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := bustest.New(t)
			seqs := publishBatches(t, b, tc.rs, tc.per)
			last := seqs[len(seqs)-1]
			if tc.per == 1 && last != uint64(len(tc.rs)) {
				t.Fatalf("last seq %d, want %d", last, len(tc.rs))
			}
			want := expectedAt(t, tc.rs, DefaultHitrate, seqs)
			if len(want) < 20 {
				t.Fatalf("only %d predictions expected: a poor test world", len(want))
			}
			r := start(t, b, Config{})
			servicetest.WaitFor(t, "every result", func() bool { return r.Stats.Seq.Load() == last })
			if got := r.Stats.Results.Load(); got != int64(len(tc.rs)) {
				t.Errorf("%d results applied, want %d", got, len(tc.rs))
			}
			got, n := predictions(t, b)
			if n != sends(got) {
				t.Errorf("%d prediction messages, %d counted", n, sends(got))
			}
			diff(t, got, want)
			if r.Stats.Predictions.Load() != int64(sends(want)) {
				t.Errorf("stats: %d predictions, want %d", r.Stats.Predictions.Load(), sends(want))
			}
			if sends(want) == len(want) && tc.name == "priors then predicted services" {
				t.Errorf("no prediction's probability rose in %q: a poor test of republishing", tc.name)
			}
		})
	}
}

// TestRestart: a predictor restarted from its snapshot, or from an older
// one as a crash leaves (it then reads again, and predicts again from,
// results it had processed: whole batches), publishes every prediction
// once.
func TestRestart(t *testing.T) {
	rs := scenario(t, 300, true)
	first := len(rs) * 2 / 3
	cases := []struct {
		name  string
		crash bool // restart from a snapshot older than the last processed result
		per   int  // results a message
	}{
		{"clean stop", false, 1},
		{"crash", true, 1},
		{"clean stop, batches", false, 50},
		{"crash, batches", true, 50},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var seqs []uint64
			publish := func(t testing.TB, b *bus.Bus, rs []result) uint64 {
				seqs = append(seqs, publishBatches(t, b, rs, tc.per)...)
				return seqs[len(seqs)-1]
			}
			b := bustest.New(t)
			cfg := Config{}
			cfg.SnapshotEvery = 200
			store, err := b.Snapshots(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var old []byte
			var from int
			var resume uint64 // the sequence the last run resumes after
			if tc.crash {
				// The last snapshot a crashed predictor left: an older one.
				from = first / 3
				a := publish(t, b, rs[:from])
				r := start(t, b, cfg)
				servicetest.WaitFor(t, "the first third", func() bool { return r.Stats.Seq.Load() == a })
				r.Stop(t)
				if old, err = store.GetBytes(context.Background(), SnapshotObject); err != nil {
					t.Fatal(err)
				}
				if _, seq, err := decodeSnapshot(bytes.NewReader(old)); err != nil || seq != a {
					t.Fatalf("snapshot: seq %d, want %d, %v", seq, a, err)
				}
				resume = a
			}
			mid := publish(t, b, rs[from:first])
			r := start(t, b, cfg)
			servicetest.WaitFor(t, "the first part", func() bool { return r.Stats.Seq.Load() == mid })
			r.Stop(t)
			if tc.crash {
				if _, err := store.PutBytes(context.Background(), SnapshotObject, old); err != nil {
					t.Fatal(err)
				}
			} else {
				resume = mid
			}
			last := publish(t, b, rs[first:])
			r = start(t, b, cfg)
			servicetest.WaitFor(t, "the rest", func() bool { return r.Stats.Seq.Load() == last })
			r.Stop(t)
			after := len(seqs) - slices.IndexFunc(seqs, func(q uint64) bool { return q > resume })
			if got := r.Stats.Results.Load(); got != int64(after) {
				t.Errorf("the restarted predictor applied %d results, want %d (from its snapshot on)", got, after)
			}
			want := expectedAt(t, rs, DefaultHitrate, seqs)
			got, n := predictions(t, b)
			if n != sends(got) {
				t.Errorf("%d prediction messages, %d counted", n, sends(got))
			}
			diff(t, got, want)
		})
	}
}

// TestDeadLetter: a bad message, a single result or a batch with one bad
// result, is dead-lettered whole with its reason; nothing of it is applied.
func TestDeadLetter(t *testing.T) {
	rs := scenario(t, 20, false)
	good, _ := json.Marshal(wire.ResultFromRow(rs[len(rs)-1].r, wire.PhasePriors, time.Now().UTC(), "test"))
	for _, tc := range []struct {
		name, data, reason string
	}{
		{"single", `{"v":1,"ip":"1.2.3.4","port":0}`, "result phase"},
		{"batch", string(good) + "\n" + `{"v":1,"ip":"1.2.3.4","port":0,"phase":"priors"}`, "result 2 of 2"},
		{"outside the allow list", string(good) + "\n" + strings.Replace(string(good), `"ip":"`+rs[len(rs)-1].r.IP, `"ip":"8.8.8.8`, 1),
			"result 2 of 2: 8.8.8.8"},
		{"oversized", string(servicetest.Oversized(servicetest.OversizedBytes, `{"v":1,"ip":"`, `","port":80,"phase":"priors"}`)), "result: bad row"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bustest.New(t)
			publish(t, b, rs[:10])
			if _, err := b.JS.Publish(context.Background(), wire.ResultsSubject(wire.PhasePriors), []byte(tc.data)); err != nil {
				t.Fatal(err)
			}
			last := publish(t, b, rs[10:])
			r := servicetest.Start(t, func(ctx context.Context, st *Stats) error {
				return Run(ctx, Deps{Config: Config{}, Bus: b, Log: servicetest.ShortLogs(t), Stats: st})
			})
			servicetest.WaitFor(t, "every result", func() bool { return r.Stats.Seq.Load() == last })
			if r.Stats.Bad.Load() != 1 || r.Stats.Results.Load() != int64(len(rs)) {
				t.Errorf("bad %d results %d, want 1 and %d", r.Stats.Bad.Load(), r.Stats.Results.Load(), len(rs))
			}
			m := servicetest.DeadLetter(t, b, Service)
			whole := len(tc.data) < wire.BatchBytes
			if !strings.HasPrefix(tc.data, string(m.Data)) || whole != (len(m.Data) == len(tc.data)) || !strings.Contains(m.Header.Get(bus.HeaderReason), tc.reason) {
				t.Errorf("dead letter %.100q, reason %q; want the message (cut if too big), and a reason saying %q", m.Data, m.Header.Get(bus.HeaderReason), tc.reason)
			}
			got, _ := predictions(t, b)
			for k := range got {
				if !strings.HasPrefix(k.ip, "127.") {
					t.Errorf("prediction for %v, outside the allow list", k)
				}
			}
		})
	}
}

func TestConfig(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"negative hitrate", func(c *Config) { c.Hitrate = -1 }, false},
		{"snapshot every -1", func(c *Config) { c.SnapshotEvery = -1 }, false},
		{"fetch too big", func(c *Config) { c.Fetch = 1 << 20 }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{}.WithDefaults()
			tc.mod(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestStopMidStream: a predictor stopped while results keep arriving
// publishes the predictions of what it applied, acks it and naks the rest;
// the one started after it reads exactly what follows its snapshot: every
// prediction is published, once.
func TestStopMidStream(t *testing.T) {
	rs := scenario(t, 300, true)
	want := expected(t, rs, DefaultHitrate)
	b := bustest.New(t)
	cfg := Config{}
	cfg.SnapshotEvery = 200
	cfg.Fetch = 100
	r := start(t, b, cfg)
	var last, stoppedAt uint64
	for i := 0; i < len(rs); i += 50 {
		last = publish(t, b, rs[i:min(i+50, len(rs))])
		if i >= len(rs)/2 && stoppedAt == 0 {
			r.Stop(t) // while results keep arriving
			stoppedAt = last
		}
	}
	t.Logf("stopped with RESULTS at %d, after %d results applied, of %d", stoppedAt, r.Stats.Seq.Load(), last)
	r = start(t, b, cfg)
	servicetest.WaitFor(t, "the rest", func() bool { return r.Stats.Seq.Load() == last })
	r.Stop(t)
	got, n := predictions(t, b)
	if n != sends(got) {
		t.Errorf("%d prediction messages, %d counted", n, sends(got))
	}
	diff(t, got, want)
}
