package modeler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/internal/resultpipe"
	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

var testWorld = lab.Config{Seed: 1, Hosts: 3000, Slash16s: 4, SeedFrac: 0.2}

func world(t testing.TB) *lab.World {
	t.Helper()
	return labtest.World(t, testWorld)
}

// later returns rows of the truth whose hosts are not in the seed.
func later(w *lab.World, n int) []row.Row {
	seed := make(map[string]bool)
	for _, r := range w.Seed {
		seed[r.IP] = true
	}
	var out []row.Row
	for _, r := range w.Truth {
		if !seed[r.IP] && len(out) < n {
			out = append(out, r)
		}
	}
	return out
}

// publish publishes rows as results of a phase, returning the stream
// sequence of the last one.
func publish(t testing.TB, b *bus.Bus, rows []row.Row, phase string) uint64 {
	t.Helper()
	var futs []jetstream.PubAckFuture
	now := time.Now().UTC()
	var last uint64
	wait := func() {
		last = max(last, lastAck(t, futs))
		futs = futs[:0]
	}
	for i, r := range rows {
		data, err := json.Marshal(wire.ResultFromRow(r, phase, now, "test"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := b.JS.PublishAsync(wire.ResultsSubject(phase), data, jetstream.WithMsgID(fmt.Sprintf("test:%s:%s:%d:%d", phase, r.IP, r.Port, i)))
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
		if len(futs) == 1000 {
			wait()
		}
	}
	wait()
	return last
}

// publishBatches publishes rows as results of a phase in batches, as the
// seeder and the prober do, returning the stream sequence of the last.
func publishBatches(t testing.TB, b *bus.Bus, rows []row.Row, phase string) uint64 {
	t.Helper()
	var futs []jetstream.PubAckFuture
	var last uint64
	wait := func() {
		last = max(last, lastAck(t, futs))
		futs = futs[:0]
	}
	var batch wire.ResultBatch
	send := func() {
		id := batch.ID("test:" + phase)
		f, err := b.JS.PublishAsync(wire.ResultsSubject(phase), batch.Take(), jetstream.WithMsgID(id))
		if err != nil {
			t.Fatal(err)
		}
		if futs = append(futs, f); len(futs) == 100 {
			wait()
		}
	}
	now := time.Now().UTC()
	for _, r := range rows {
		res := wire.ResultFromRow(r, phase, now, "test")
		ok, err := batch.Add(&res)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			send()
			if _, err := batch.Add(&res); err != nil {
				t.Fatal(err)
			}
		}
		if batch.Full() {
			send()
		}
	}
	if batch.Len() > 0 {
		send()
	}
	wait()
	return last
}

// lastAck waits for the acks of futs and returns the highest stream
// sequence, 0 with none.
func lastAck(t testing.TB, futs []jetstream.PubAckFuture) uint64 {
	t.Helper()
	var last uint64
	for _, seq := range servicetest.Acks(t, futs) {
		last = max(last, seq)
	}
	return last
}

func publishRaw(t testing.TB, b *bus.Bus, subject string, data []byte, id string) uint64 {
	t.Helper()
	a, err := b.JS.Publish(context.Background(), subject, data, jetstream.WithMsgID(id))
	if err != nil {
		t.Fatal(err)
	}
	return a.Sequence
}

func seedDone(t testing.TB, b *bus.Bus, results int, last uint64) {
	t.Helper()
	kv, err := b.Control(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(wire.SeedDone{V: wire.Version, Results: results, LastSeq: last, Time: time.Now().UTC()})
	if _, err := kv.Put(context.Background(), bus.KeySeed, data); err != nil {
		t.Fatal(err)
	}
}

// running is a modeler started in the background.
type running = servicetest.Running[Stats]

func start(t testing.TB, b *bus.Bus, cfg Config) *running {
	t.Helper()
	return servicetest.Start(t, func(ctx context.Context, st *Stats) error {
		return Run(ctx, Deps{Config: cfg, Bus: b, Log: zaptest.NewLogger(t), Stats: st})
	})
}

// direct builds a model from rows, as a batch run would.
func direct(t testing.TB, rows []row.Row) *model.Model {
	t.Helper()
	m := model.New()
	for _, r := range rows {
		a, err := r.Validate()
		if err != nil {
			t.Fatal(err)
		}
		m.Add(&row.Service{Row: r, Addr: a})
	}
	return m
}

type planKey struct {
	prefix string
	port   int
}

func planSet(plan []gps.PlanRow) map[planKey]bool {
	out := make(map[planKey]bool)
	for _, g := range plan {
		out[planKey{PlanPrefix(g), int(g.Port)}] = true
	}
	return out
}

// targets reads every priors targets message of the TARGETS stream.
func targets(t testing.TB, b *bus.Bus) (map[planKey]bool, int) {
	t.Helper()
	out := make(map[planKey]bool)
	n := 0
	for _, m := range servicetest.Stored(t, b, bus.StreamTargets) {
		if m.Subject != wire.TargetsSubject(wire.PhasePriors) {
			continue
		}
		n++
		ts, err := wire.DecodeTargets(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ts.Targets {
			k := planKey{x.Prefix, x.Port}
			if out[k] {
				t.Errorf("plan group %v published twice", k)
			}
			out[k] = true
		}
	}
	return out, n
}

func planHistory(t testing.TB, b *bus.Bus) []wire.PlanDone {
	t.Helper()
	kv, err := b.Control(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h, err := kv.History(context.Background(), bus.KeyPlan)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.PlanDone
	for _, e := range h {
		var p wire.PlanDone
		if err := json.Unmarshal(e.Value(), &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func TestPlan(t *testing.T) {
	w := world(t)
	extra := later(w, 400)
	cases := []struct {
		name string
		run  func(t *testing.T, b *bus.Bus, cfg Config) (last uint64, r *running)
	}{
		{"seed done before start", func(t *testing.T, b *bus.Bus, cfg Config) (uint64, *running) {
			last := publish(t, b, w.Seed, wire.PhaseSeed)
			seedDone(t, b, len(w.Seed), last)
			return last, start(t, b, cfg)
		}},
		{"seed done while running", func(t *testing.T, b *bus.Bus, cfg Config) (uint64, *running) {
			r := start(t, b, cfg)
			last := publish(t, b, w.Seed, wire.PhaseSeed)
			seedDone(t, b, len(w.Seed), last)
			return last, r
		}},
		{"later results already in the stream", func(t *testing.T, b *bus.Bus, cfg Config) (uint64, *running) {
			last := publish(t, b, w.Seed, wire.PhaseSeed)
			seedDone(t, b, len(w.Seed), last)
			publish(t, b, extra, wire.PhasePriors)
			return last, start(t, b, cfg)
		}},
		{"the seed's last results deleted", func(t *testing.T, b *bus.Bus, cfg Config) (uint64, *running) {
			// The seed record counts two more messages than the stream
			// keeps: the model plans from what there is, and only then.
			last := publish(t, b, w.Seed, wire.PhaseSeed)
			gone := publish(t, b, extra[:2], wire.PhaseSeed)
			str, err := b.JS.Stream(context.Background(), bus.StreamResults)
			if err != nil {
				t.Fatal(err)
			}
			for seq := last + 1; seq <= gone; seq++ {
				if err := str.DeleteMsg(context.Background(), seq); err != nil {
					t.Fatal(err)
				}
			}
			seedDone(t, b, len(w.Seed)+2, gone)
			return last, start(t, b, cfg)
		}},
		{"seed record after the model passed the seed", func(t *testing.T, b *bus.Bus, cfg Config) (uint64, *running) {
			last := publish(t, b, w.Seed, wire.PhaseSeed)
			end := publish(t, b, extra, wire.PhasePriors)
			r := start(t, b, cfg)
			servicetest.WaitFor(t, "the model to pass the seed", func() bool { return r.Stats.Seq.Load() == end })
			seedDone(t, b, len(w.Seed), last)
			return last, r
		}},
	}
	// The plan of the seed: GPS's groups, then the extra sweeps for the seed
	// services no model row explains.
	rows := direct(t, w.Seed).Rows(DefaultHitrate)
	gpsPlan := gps.Plan(rows, DefaultStep, DefaultHitrate)
	var seed []gps.Target
	for _, r := range w.Seed {
		a, _ := r.Validate()
		seed = append(seed, gps.Target{Addr: a, Port: uint16(r.Port)})
	}
	sweeps := gps.Unexplained(rows, gpsPlan, seed, DefaultStep, DefaultHitrate)
	if len(gpsPlan) < 10 || len(sweeps) < 10 {
		t.Fatalf("test world's plan has %d groups and %d extra sweeps, want a real plan", len(gpsPlan), len(sweeps))
	}
	cases = append(cases, struct {
		name string
		run  func(t *testing.T, b *bus.Bus, cfg Config) (last uint64, r *running)
	}{"gps plan only", cases[0].run})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{PlanBatch: 7}
			want := append(slices.Clone(gpsPlan), sweeps...)
			if tc.name == "gps plan only" {
				cfg.NoExtraSweeps = true
				want = gpsPlan
			}
			b := bustest.New(t)
			last, r := tc.run(t, b, cfg)
			servicetest.WaitFor(t, "the plan", func() bool { return r.Stats.Planned.Load() })
			got, msgs := targets(t, b)
			if !maps.Equal(got, planSet(want)) {
				t.Errorf("plan: %d groups, want %d (gps.Plan of the seed)", len(got), len(want))
			}
			if wantMsgs := (len(want) + cfg.PlanBatch - 1) / cfg.PlanBatch; msgs != wantMsgs {
				t.Errorf("plan messages = %d, want %d", msgs, wantMsgs)
			}
			h := planHistory(t, b)
			if len(h) != 1 || h[0].Groups != len(want) || h[0].ModelSeq != last {
				t.Errorf("plan records = %+v, want one with %d groups at seq %d", h, len(want), last)
			}
			// A restart does not publish the plan again.
			r.Stop(t)
			r = start(t, b, cfg)
			servicetest.WaitFor(t, "the restart", func() bool { return r.Stats.Planned.Load() && r.Stats.Seq.Load() > 0 })
			r.Stop(t)
			if _, n := targets(t, b); n != msgs {
				t.Errorf("after a restart: %d plan messages, want %d", n, msgs)
			}
			if h := planHistory(t, b); len(h) != 1 {
				t.Errorf("after a restart: %d plan records, want 1", len(h))
			}
		})
	}
}

func TestDeadLetter(t *testing.T) {
	w := world(t)
	good := w.Seed[:50]
	okResult := func(mod func(*wire.Result)) []byte {
		r := wire.ResultFromRow(good[0], wire.PhaseSeed, time.Now().UTC(), "test")
		mod(&r)
		data, _ := json.Marshal(r)
		return data
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"bad json", []byte(`{"v":1,"ip":`)},
		{"wrong version", okResult(func(r *wire.Result) { r.V = 99 })},
		{"bad ip", okResult(func(r *wire.Result) { r.IP = "300.1.2.3" })},
		{"ipv6", okResult(func(r *wire.Result) { r.IP = "::1" })},
		{"bad port", okResult(func(r *wire.Result) { r.Port = 70000 })},
		{"bad phase", okResult(func(r *wire.Result) { r.Phase = "later" })},
		{"outside the allow list", okResult(func(r *wire.Result) { r.IP = "8.8.8.8" })},
		{"oversized", servicetest.Oversized(servicetest.OversizedBytes, `{"v":1,"ip":"`, `","port":80,"phase":"seed"}`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := bustest.New(t)
			publish(t, b, good[:25], wire.PhaseSeed)
			badSeq := publishRaw(t, b, wire.ResultsSubject(wire.PhaseSeed), tc.data, "bad")
			last := publish(t, b, good[25:], wire.PhaseSeed)
			r := servicetest.Start(t, func(ctx context.Context, st *Stats) error {
				return Run(ctx, Deps{Config: Config{}, Bus: b, Log: servicetest.ShortLogs(t), Stats: st})
			})
			servicetest.WaitFor(t, "every result", func() bool { return r.Stats.Seq.Load() == last })
			if got := r.Stats.Bad.Load(); got != 1 {
				t.Errorf("bad = %d, want 1", got)
			}
			if got := r.Stats.Results.Load(); got != int64(len(good)) {
				t.Errorf("results = %d, want %d", got, len(good))
			}
			m := servicetest.DeadLetter(t, b, Service)
			if cut := m.Header.Get(bus.HeaderBodySHA256) != ""; cut != (len(tc.data) > len(m.Data)) || !bytes.HasPrefix(tc.data, m.Data) ||
				!cut && len(m.Data) != len(tc.data) || m.Header.Get(bus.HeaderBodySize) != strconv.Itoa(len(tc.data)) {
				t.Errorf("dead letter data = %.100q (%v), want %.100q", m.Data, m.Header, tc.data)
			}
			if m.Header.Get(bus.HeaderReason) == "" {
				t.Errorf("dead letter has no %s header", bus.HeaderReason)
			}
			if got, want := m.Header.Get(jetstream.MsgIDHeader), "modeler:RESULTS:"+strconv.FormatUint(badSeq, 10); got != want {
				t.Errorf("dead letter id = %q, want %q", got, want)
			}
		})
	}
}

// modelCounts renders what a model counts, for comparing models whose
// dictionaries may number features differently.
func modelCounts(m *model.Model) map[string]string {
	out := make(map[string]string)
	m.Each(func(k model.Key, support uint32, co []model.PortCount) {
		out[strconv.Itoa(int(k.Port))+" "+m.Dict().String(k.Feat)] = fmt.Sprint(support, co)
	})
	for _, r := range m.Rows(DefaultHitrate) {
		feat := ""
		if !r.Single {
			feat = m.Dict().String(r.Feat)
		}
		out[fmt.Sprintf("row %d %d", r.Addr, r.P)] = fmt.Sprint(r.Single, r.NeededP, feat, r.Count, r.Support)
	}
	return out
}

func storedModel(t testing.TB, b *bus.Bus) (*model.Model, uint64) {
	t.Helper()
	store, err := b.Snapshots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, seq, found, err := loadSnapshot(context.Background(), store, SnapshotObject)
	if err != nil || !found {
		t.Fatalf("snapshot: found %v, %v", found, err)
	}
	return m, seq
}

func TestRestart(t *testing.T) {
	w := world(t)
	rows := append(slices.Clone(w.Seed), later(w, 1000)...)
	half := len(rows) / 2
	cases := []struct {
		name  string
		crash bool // replace the last snapshot by an older one, as a crash would leave
	}{
		{"clean stop", false},
		{"crash after an older snapshot", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := bustest.New(t)
			cfg := Config{}
			cfg.SnapshotEvery = 300
			mid := publish(t, b, rows[:half], wire.PhaseSeed)
			r := start(t, b, cfg)
			servicetest.WaitFor(t, "the first half", func() bool { return r.Stats.Seq.Load() == mid })
			r.Stop(t)
			if m, seq := storedModel(t, b); seq != mid || !maps.Equal(modelCounts(m), modelCounts(direct(t, rows[:half]))) {
				t.Fatalf("snapshot at stop: seq %d, want %d, or counts differ", seq, mid)
			}
			if tc.crash {
				// The last snapshot the crashed modeler stored covered only the first 100.
				store, _ := b.Snapshots(context.Background())
				var buf bytes.Buffer
				if err := EncodeSnapshot(&buf, 100, direct(t, rows[:100])); err != nil {
					t.Fatal(err)
				}
				if err := putSnapshot(context.Background(), store, SnapshotObject, buf.Bytes()); err != nil {
					t.Fatal(err)
				}
			}
			last := publish(t, b, rows[half:], wire.PhasePriors)
			r = start(t, b, cfg)
			servicetest.WaitFor(t, "the rest", func() bool { return r.Stats.Seq.Load() == last })
			r.Stop(t)
			m, seq := storedModel(t, b)
			if seq != last {
				t.Errorf("snapshot seq = %d, want %d", seq, last)
			}
			if err := m.Verify(); err != nil {
				t.Error(err)
			}
			got, want := modelCounts(m), modelCounts(direct(t, rows))
			if !maps.Equal(got, want) {
				n := 0
				for k, v := range want {
					if got[k] != v && n < 5 {
						t.Errorf("%s: got %q, want %q", k, got[k], v)
						n++
					}
				}
				t.Errorf("counts differ: %d entries, want %d", len(got), len(want))
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
		{"hitrate 1", func(c *Config) { c.Hitrate = 1 }, false},
		{"step 33", func(c *Config) { c.Step = 33 }, false},
		{"snapshot every -1", func(c *Config) { c.SnapshotEvery = -1 }, false},
		{"negative interval", func(c *Config) { c.SnapshotInterval = -time.Second }, false},
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

func TestConsumerDeleted(t *testing.T) {
	b := bustest.New(t)
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), Deps{Bus: b, Log: zaptest.NewLogger(t)}) }()
	servicetest.WaitFor(t, "the consumer's pull requests", func() bool {
		c, err := b.JS.Consumer(context.Background(), bus.StreamResults, Service)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumWaiting > 0
	})
	if err := b.JS.DeleteConsumer(context.Background(), bus.StreamResults, Service); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !resultpipe.ConsumerGone(err) {
			t.Errorf("Run = %v, want %v", err, jetstream.ErrConsumerDeleted)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its consumer was deleted")
	}
}

// TestStopMidStream: a modeler stopped while results keep arriving acks or
// naks what it holds and snapshots what it applied; the one started after
// it reads exactly the rest: the model counts every result once.
func TestStopMidStream(t *testing.T) {
	w := world(t)
	rows := append(slices.Clone(w.Seed), later(w, 1500)...)
	b := bustest.New(t)
	cfg := Config{}
	cfg.SnapshotEvery = 300
	cfg.Fetch = 100
	r := start(t, b, cfg)
	var last, stoppedAt uint64
	for i := 0; i < len(rows); i += 50 {
		last = publish(t, b, rows[i:min(i+50, len(rows))], wire.PhasePriors)
		if i >= len(rows)/3 && stoppedAt == 0 {
			r.Stop(t) // while results keep arriving
			stoppedAt = last
		}
	}
	_, seq := storedModel(t, b)
	t.Logf("stopped with RESULTS at %d: the snapshot covers %d of %d", stoppedAt, seq, last)
	if seq == 0 || seq > stoppedAt {
		t.Fatalf("snapshot at stop covers %d, want 1..%d", seq, stoppedAt)
	}
	r = start(t, b, cfg)
	servicetest.WaitFor(t, "the rest", func() bool { return r.Stats.Seq.Load() == last })
	r.Stop(t)
	m, seq := storedModel(t, b)
	if seq != last {
		t.Fatalf("snapshot seq = %d, want %d", seq, last)
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	if got, want := modelCounts(m), modelCounts(direct(t, rows)); !maps.Equal(got, want) {
		t.Fatalf("counts differ from the results': %d entries, want %d", len(got), len(want))
	}
	if m.Version() != uint64(len(rows)) {
		t.Fatalf("model applied %d results, want %d", m.Version(), len(rows))
	}
}

// TestBatches: every result of a batch is applied, batches and single
// results mixed; a batch with one bad result is dead-lettered whole, with
// the reason naming the result, and nothing of it is applied; a snapshot
// covers whole messages, so a restart applies each result once.
func TestBatches(t *testing.T) {
	w := world(t)
	rows := slices.Clone(w.Seed)
	third := len(rows) / 3
	extra := later(w, 3) // the bad batch's results: in no model
	var lines []string
	for i, r := range extra {
		res := wire.ResultFromRow(r, wire.PhaseSeed, time.Now().UTC(), "test")
		if i == 1 {
			res.IP = "300.1.2.3"
		}
		data, _ := json.Marshal(res)
		lines = append(lines, string(data))
	}
	bad := []byte(strings.Join(lines, "\n"))

	b := bustest.New(t)
	cfg := Config{}
	cfg.SnapshotEvery = 100
	publishBatches(t, b, rows[:third], wire.PhaseSeed)
	publish(t, b, rows[third:third+10], wire.PhaseSeed)
	badSeq := publishRaw(t, b, wire.ResultsSubject(wire.PhaseSeed), bad, "bad-batch")
	mid := publishBatches(t, b, rows[third+10:2*third], wire.PhaseSeed)
	r := start(t, b, cfg)
	servicetest.WaitFor(t, "two thirds", func() bool { return r.Stats.Seq.Load() == mid })
	r.Stop(t)
	if r.Stats.Results.Load() != int64(2*third) || r.Stats.Bad.Load() != 1 {
		t.Fatalf("results %d bad %d, want %d and 1", r.Stats.Results.Load(), r.Stats.Bad.Load(), 2*third)
	}
	if m, seq := storedModel(t, b); seq != mid || !maps.Equal(modelCounts(m), modelCounts(direct(t, rows[:2*third]))) {
		t.Fatalf("snapshot at stop: seq %d, want %d, or counts differ", seq, mid)
	}
	m := servicetest.DeadLetter(t, b, Service)
	if reason := m.Header.Get(bus.HeaderReason); !bytes.Equal(m.Data, bad) || !strings.Contains(reason, "result 2 of 3") {
		t.Fatalf("dead letter %q, reason %q: want the whole batch, and its bad result named", m.Data, reason)
	}
	if got, want := m.Header.Get(jetstream.MsgIDHeader), "modeler:RESULTS:"+strconv.FormatUint(badSeq, 10); got != want {
		t.Errorf("dead letter id = %q, want %q", got, want)
	}

	last := publishBatches(t, b, rows[2*third:], wire.PhaseSeed)
	r = start(t, b, cfg)
	servicetest.WaitFor(t, "the rest", func() bool { return r.Stats.Seq.Load() == last })
	r.Stop(t)
	if got, want := r.Stats.Results.Load(), int64(len(rows)-2*third); got != want {
		t.Errorf("the restarted modeler applied %d results, want %d", got, want)
	}
	got, seq := storedModel(t, b)
	if err := got.Verify(); err != nil {
		t.Fatal(err)
	}
	if seq != last || got.Version() != direct(t, rows).Version() || !maps.Equal(modelCounts(got), modelCounts(direct(t, rows))) {
		t.Fatalf("final model: seq %d (want %d), version %d (want %d), or counts differ", seq, last, got.Version(), direct(t, rows).Version())
	}
}
