package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/pkg/wire"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func live(ip string, port int, data string, phase string, min int) wire.Result {
	return wire.Result{V: wire.Version, IP: ip, Port: port, Phase: phase, Protocol: "http", Data: data,
		Time: t0.Add(time.Duration(min) * time.Minute), Source: "probe"}
}

func gone(ip string, port int, min int) wire.Result {
	return wire.Result{V: wire.Version, IP: ip, Port: port, Phase: wire.PhaseRefresh,
		Time: t0.Add(time.Duration(min) * time.Minute), Source: "probe", Gone: true}
}

// publish publishes results one a message (the i-th with id test:<from+i>),
// returning the sequence of the last.
func publish(t testing.TB, b *bus.Bus, rs []wire.Result, from int) uint64 {
	t.Helper()
	var last uint64
	for i := range rs {
		data, err := json.Marshal(&rs[i])
		if err != nil {
			t.Fatal(err)
		}
		a, err := b.JS.Publish(context.Background(), wire.ResultsSubject(rs[i].Phase), data, jetstream.WithMsgID(fmt.Sprint("test:", from+i)))
		if err != nil {
			t.Fatal(err)
		}
		last = a.Sequence
	}
	return last
}

type running = servicetest.Running[Stats]

func start(t testing.TB, b *bus.Bus) *running {
	t.Helper()
	return servicetest.Start(t, func(ctx context.Context, st *Stats) error {
		return Run(ctx, Deps{Bus: b, Log: zaptest.NewLogger(t), Stats: st})
	})
}

// runAll runs the inventory until it has applied RESULTS up to last.
func runAll(t testing.TB, b *bus.Bus, last uint64) {
	t.Helper()
	r := start(t, b)
	servicetest.WaitFor(t, "the results", func() bool { return r.Stats.Seq.Load() == last })
	r.Stop(t)
}

// events is the INVENTORY stream, as "subject body" lines.
func events(t testing.TB, b *bus.Bus) []string {
	t.Helper()
	var out []string
	for _, m := range servicetest.Stored(t, b, bus.StreamInventory) {
		out = append(out, m.Subject+" "+string(m.Data))
	}
	return out
}

// bucket is the inventory bucket, by key.
func bucket(t testing.TB, b *bus.Bus) map[string]wire.ServiceState {
	t.Helper()
	kv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	states, err := Load(context.Background(), kv)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]wire.ServiceState{}
	for k, st := range states {
		out[k] = *st
	}
	return out
}

// A scripted life of services: events and the bucket after it. A service
// back after it was gone is new again (a new life: first_seen is its
// return); a refresh that answers the same is no event, but last_seen
// moves.
func TestEvents(t *testing.T) {
	const a, c = "127.1.0.1", "127.1.0.3"
	rs := []wire.Result{
		live(a, 80, "v1", wire.PhaseSeed, 0),       // 1 new
		live(a, 22, "ssh", wire.PhaseSeed, 0),      // 2 new
		live(a, 80, "v1", wire.PhaseRefresh, 10),   // 3 same: no event
		live(a, 80, "v2", wire.PhaseRefresh, 20),   // 4 changed
		gone(a, 22, 20),                            // 5 gone
		gone(a, 22, 30),                            // 6 gone already: nothing
		gone(c, 80, 30),                            // 7 never seen: nothing
		live(a, 22, "ssh2", wire.PhaseRefresh, 40), // 8 back: new
		gone(a, 80, 40),                            // 9 gone
	}
	b := bustest.New(t)
	runAll(t, b, publish(t, b, rs, 0))
	var got []string
	for _, e := range events(t, b) {
		var ev wire.ServiceEvent
		sub, body, _ := cut(e)
		if err := json.Unmarshal([]byte(body), &ev); err != nil {
			t.Fatal(err)
		}
		if sub != wire.InventorySubject(ev.Event) {
			t.Errorf("event %s on %s", ev.Event, sub)
		}
		got = append(got, fmt.Sprintf("%s %s:%d %s seq %d", ev.Event, ev.IP, ev.Port, ev.State, ev.Seq))
	}
	want := []string{
		"new 127.1.0.1:80 live seq 1", "new 127.1.0.1:22 live seq 2", "changed 127.1.0.1:80 live seq 4",
		"gone 127.1.0.1:22 gone seq 5", "new 127.1.0.1:22 live seq 8", "gone 127.1.0.1:80 gone seq 9",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	inv := bucket(t, b)
	if len(inv) != 2 {
		t.Fatalf("bucket has %d services, want 2: %v", len(inv), inv)
	}
	s80, s22 := inv[wire.InventoryKey(a, 80)], inv[wire.InventoryKey(a, 22)]
	if s80.State != wire.StateGone || s80.GoneAt == nil || !s80.GoneAt.Equal(t0.Add(40*time.Minute)) ||
		!s80.FirstSeen.Equal(t0) || !s80.LastSeen.Equal(t0.Add(20*time.Minute)) || s80.Data != "v2" || s80.Seq != 9 {
		t.Errorf("127.1.0.1:80 = %+v", s80)
	}
	if s22.State != wire.StateLive || s22.GoneAt != nil || !s22.FirstSeen.Equal(t0.Add(40*time.Minute)) || s22.Data != "ssh2" {
		t.Errorf("127.1.0.1:22 = %+v", s22)
	}
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// churn is a lab world's seed and later services, then cycles of refresh:
// some gone, some back, some changed.
func churn(t testing.TB) []wire.Result {
	t.Helper()
	w := labtest.World(t, lab.Config{Seed: 2, Hosts: 600, Slash16s: 2, SeedFrac: 0.3})
	var rs []wire.Result
	for _, r := range w.Seed {
		rs = append(rs, wire.ResultFromRow(r, wire.PhaseSeed, t0, "import"))
	}
	for i, r := range w.Truth {
		rs = append(rs, wire.ResultFromRow(r, wire.PhasePriors, t0.Add(time.Duration(i)*time.Second), "probe"))
	}
	for cycle := 1; cycle <= 3; cycle++ {
		at := t0.Add(time.Duration(cycle) * time.Hour)
		for i, r := range w.Truth {
			switch (i + cycle) % 4 {
			case 0:
				rs = append(rs, wire.Result{V: wire.Version, IP: r.IP, Port: r.Port, Phase: wire.PhaseRefresh, Time: at, Source: "probe", Gone: true})
			case 1:
				r.Data += fmt.Sprint(" cycle ", cycle)
				fallthrough
			default:
				rs = append(rs, wire.ResultFromRow(r, wire.PhaseRefresh, at, "probe"))
			}
		}
	}
	return rs
}

// After a crash (the bucket and the events ahead of the recorded
// position) and a restart, the bucket and the events equal those of a run
// without one; no event is stored twice.
func TestCrashExact(t *testing.T) {
	rs := churn(t)
	ref := bustest.New(t)
	runAll(t, ref, publish(t, ref, rs, 0))
	wantEvents, wantBucket := events(t, ref), bucket(t, ref)
	if len(wantEvents) < len(rs)/3 {
		t.Fatalf("only %d events of %d results", len(wantEvents), len(rs))
	}

	b := bustest.New(t)
	third := len(rs) / 3
	early := publish(t, b, rs[:third], 0)
	mid := publish(t, b, rs[third:2*third], third)
	runAll(t, b, mid)
	// A crash: the position recorded is older than what is stored.
	control, err := b.Control(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(position{V: wire.Version, Seq: early})
	if _, err := control.Put(context.Background(), bus.KeyInventory, data); err != nil {
		t.Fatal(err)
	}
	last := publish(t, b, rs[2*third:], 2*third)
	// Stopped mid-stream once more, then to the end.
	r := start(t, b)
	servicetest.WaitFor(t, "some results", func() bool { return r.Stats.Seq.Load() > mid })
	r.Stop(t)
	runAll(t, b, last)

	gotEvents, gotBucket := events(t, b), bucket(t, b)
	if !slices.Equal(gotEvents, wantEvents) {
		t.Errorf("%d events, a run without a crash has %d", len(gotEvents), len(wantEvents))
		for i := range min(len(gotEvents), len(wantEvents)) {
			if gotEvents[i] != wantEvents[i] {
				t.Fatalf("event %d:\n got %s\nwant %s", i, gotEvents[i], wantEvents[i])
			}
		}
	}
	if len(gotBucket) != len(wantBucket) {
		t.Fatalf("bucket: %d services, want %d", len(gotBucket), len(wantBucket))
	}
	for k, w := range wantBucket {
		g, _ := json.Marshal(gotBucket[k])
		wj, _ := json.Marshal(w)
		if string(g) != string(wj) {
			t.Fatalf("%s:\n got %s\nwant %s", k, g, wj)
		}
	}
}

// The metrics: events counted by kind as they are published, the size by
// state and the live services' mean last answer as the bucket holds them,
// and, after a restart, the size and age loaded from the bucket (no event
// counted again).
func TestMetrics(t *testing.T) {
	rs := churn(t)
	b := bustest.New(t)
	last := publish(t, b, rs, 0)
	run := func(m *telemetry.Metrics) {
		t.Helper()
		r := servicetest.Start(t, func(ctx context.Context, st *Stats) error {
			return Run(ctx, Deps{Bus: b, Log: zaptest.NewLogger(t), Stats: st, Metrics: m})
		})
		servicetest.WaitFor(t, "the results", func() bool { return r.Stats.Seq.Load() == last })
		r.Stop(t)
	}
	m := telemetry.NewMetrics(prometheus.NewRegistry())
	run(m)

	byEvent := map[string]int{}
	for _, e := range events(t, b) {
		var ev wire.ServiceEvent
		_, body, _ := cut(e)
		if err := json.Unmarshal([]byte(body), &ev); err != nil {
			t.Fatal(err)
		}
		byEvent[ev.Event]++
	}
	for _, ev := range []string{wire.EventNew, wire.EventChanged, wire.EventGone} {
		if byEvent[ev] == 0 {
			t.Fatalf("no %s event in the churn: %v", ev, byEvent)
		}
		if got := testutil.ToFloat64(m.Inventory.Events.WithLabelValues(ev)); got != float64(byEvent[ev]) {
			t.Errorf("events{event=%q} = %v, the stream holds %d", ev, got, byEvent[ev])
		}
	}

	byState := map[string]int{}
	var sum int64
	for _, st := range bucket(t, b) {
		byState[st.State]++
		if st.State == wire.StateLive {
			sum += st.LastSeen.Unix()
		}
	}
	check := func(when string, m *telemetry.Metrics) {
		t.Helper()
		for _, s := range []string{wire.StateLive, wire.StateGone} {
			if byState[s] == 0 {
				t.Fatalf("no %s service in the bucket: %v", s, byState)
			}
			if got := testutil.ToFloat64(m.Inventory.Services.WithLabelValues(s)); got != float64(byState[s]) {
				t.Errorf("%s: services{state=%q} = %v, the bucket holds %d", when, s, got, byState[s])
			}
		}
		want := float64(sum) / float64(byState[wire.StateLive])
		if got := testutil.ToFloat64(m.Inventory.LastSeen); math.Abs(got-want) > 1e-6*want {
			t.Errorf("%s: mean last seen %v, the bucket's %v", when, got, want)
		}
	}
	check("after the run", m)

	m2 := telemetry.NewMetrics(prometheus.NewRegistry())
	run(m2)
	check("after a restart", m2)
	for _, ev := range []string{wire.EventNew, wire.EventChanged, wire.EventGone} {
		if got := testutil.ToFloat64(m2.Inventory.Events.WithLabelValues(ev)); got != 0 {
			t.Errorf("after a restart with nothing new: events{event=%q} = %v, want 0", ev, got)
		}
	}
}
