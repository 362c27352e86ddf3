package all_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/wire"
	"github.com/gpsscan/gps/services/all"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/predictor"
)

// hostileID prefixes the Nats-Msg-Id of every message the test injects.
const hostileID = "hostile:"

// TestHostileMessages runs the pipeline on a small world twice: clean, then
// with random and oversized messages sent to every consumer's subjects
// while it runs (random bytes, truncated JSON, messages near the max
// payload, sweeps of 0.0.0.0/0 and 8.8.8.0/24, results and predictions for
// 8.8.8.8). The hostile run must end with the services of the clean run,
// every bad message in gps.dlq.<service> (the prober's for targets and
// predictions, the modeler's and the predictor's for results), nothing
// modeled or predicted outside the allow list, and no log entry repeating
// a long value.
func TestHostileMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("two pipeline runs with a burst of hostile messages (about 15 s)")
	}
	dir := world(t, lab.Config{Seed: 11, Hosts: 1000, Slash16s: 1, SeedFrac: 0.1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := all.Config{World: dir, Quiet: time.Second, Modeler: modeler.Config{Hitrate: 1e-5, Step: 24}, Predictor: predictor.Config{Hitrate: 1e-5}}

	clean := bustest.New(t)
	if _, _, err := all.Run(ctx, all.Deps{Config: cfg, Bus: clean, Log: servicetest.ShortLogs(t)}); err != nil {
		t.Fatalf("clean run: %v", err)
	}
	want := found(t, clean)

	b := bustest.New(t)
	msgs := hostile(rand.New(rand.NewPCG(15, 1)))
	injected := make(chan map[string]int, 1)
	go func() {
		// Spread over the first seconds of the run: while the seed, the
		// plan and the predictions are in flight.
		n := map[string]int{}
		for i, m := range msgs {
			if err := b.Publish(ctx, m.subject, fmt.Sprint(hostileID, i), m.data); err != nil {
				t.Errorf("inject %d on %s: %v", i, m.subject, err)
				continue
			}
			for _, s := range consumersOf(m.subject) {
				n[s]++
			}
			time.Sleep(20 * time.Millisecond)
		}
		injected <- n
	}()
	if _, _, err := all.Run(ctx, all.Deps{Config: cfg, Bus: b, Log: servicetest.ShortLogs(t)}); err != nil {
		t.Fatalf("hostile run: %v", err)
	}
	n := <-injected
	got := found(t, b)
	if len(got) != len(want) {
		t.Errorf("hostile run found %d services, the clean run %d", len(got), len(want))
	}
	for k := range want {
		if !got[k] {
			t.Errorf("%s found by the clean run only", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("%s found by the hostile run only", k)
		}
	}
	// Every dead letter is stored once its service handled it; the run may
	// end first (an idle pipeline is one whose queues are empty).
	servicetest.WaitFor(t, "the dead letters", func() bool {
		d := deadLetters(t, b)
		for s, k := range n {
			if d[s] < k {
				return false
			}
		}
		return true
	})
	if d := deadLetters(t, b); fmt.Sprint(d) != fmt.Sprint(n) {
		t.Errorf("dead letters by service %v, want %v", d, n)
	}
	for _, m := range servicetest.Stored(t, b, bus.StreamPredictions) {
		if strings.HasPrefix(m.Header.Get(jetstream.MsgIDHeader), hostileID) {
			continue
		}
		if p, err := wire.DecodePrediction(m.Data); err != nil || !strings.HasPrefix(p.IP, "127.") {
			t.Errorf("prediction %.100q outside the allow list (%v)", m.Data, err)
		}
	}
}

// found is the services the pipeline published on RESULTS (the injected
// messages left out).
func found(t *testing.T, b *bus.Bus) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, m := range servicetest.Stored(t, b, bus.StreamResults) {
		if strings.HasPrefix(m.Header.Get(jetstream.MsgIDHeader), hostileID) {
			continue
		}
		rs, err := wire.DecodeResults(m.Data)
		if err != nil {
			t.Fatalf("the pipeline published a bad result: %v", err)
		}
		for _, r := range rs {
			out[fmt.Sprintf("%s:%d", r.IP, r.Port)] = true
		}
	}
	if len(out) == 0 {
		t.Fatal("no services found")
	}
	return out
}

// deadLetters counts the dead letters by service.
func deadLetters(t *testing.T, b *bus.Bus) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range servicetest.Stored(t, b, bus.StreamDeadLetter) {
		out[strings.TrimPrefix(m.Subject, wire.DeadLetterPrefix)]++
	}
	return out
}

// consumersOf is the services that dead-letter a bad message on subject.
func consumersOf(subject string) []string {
	if strings.HasPrefix(subject, wire.ResultsPrefix) {
		return []string{"modeler", "predictor", "inventory"}
	}
	return []string{"prober"}
}

type injection struct {
	subject string
	data    []byte
}

// hostile makes the messages to inject: for each phase and stream, random
// bytes, a valid message cut short, an oversized one, and the messages
// outside the policy.
func hostile(r *rand.Rand) []injection {
	now := time.Now().UTC()
	enc := func(v any) []byte {
		data, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		return data
	}
	random := func() []byte {
		b := make([]byte, 1+r.IntN(4096))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	}
	cut := func(b []byte) []byte { return b[:1+r.IntN(len(b)-1)] }
	var out []injection
	for _, phase := range []string{wire.PhaseSeed, wire.PhasePriors, wire.PhasePredicted} {
		sweeps := enc(wire.Targets{V: wire.Version, Phase: phase, Time: now, Targets: []wire.Target{{Prefix: "0.0.0.0/0", Port: 80}, {Prefix: "8.8.8.0/24", Port: 53}}})
		pred := enc(wire.Prediction{V: wire.Version, IP: "8.8.8.8", Port: 53, Probability: 0.9, Evidence: wire.Evidence{Port: 80, Feature: "f"}, Time: now})
		res := enc(wire.Result{V: wire.Version, IP: "8.8.8.8", Port: 53, Phase: phase, Protocol: "dns", Time: now, Source: "probe"})
		for _, m := range []injection{
			{wire.TargetsSubject(phase), random()},
			{wire.TargetsSubject(phase), cut(sweeps)},
			{wire.TargetsSubject(phase), sweeps},
			{wire.TargetsSubject(phase), servicetest.Oversized(servicetest.OversizedBytes, `{"v":1,"phase":"`+phase+`","targets":[{"prefix":"`, `","port":80}]}`)},
			{wire.PredictionsSubject(phase), random()},
			{wire.PredictionsSubject(phase), cut(pred)},
			{wire.PredictionsSubject(phase), pred},
			{wire.PredictionsSubject(phase), servicetest.Oversized(servicetest.OversizedBytes, `{"v":1,"ip":"`, `","port":80,"probability":0.9}`)},
			{wire.ResultsSubject(phase), random()},
			{wire.ResultsSubject(phase), cut(res)},
			{wire.ResultsSubject(phase), res},
			{wire.ResultsSubject(phase), servicetest.Oversized(servicetest.OversizedBytes, `{"v":1,"ip":"`, `","port":80,"phase":"`+phase+`"}`)},
		} {
			out = append(out, m)
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
