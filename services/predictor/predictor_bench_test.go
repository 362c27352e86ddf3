package predictor

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/wire"
)

// BenchmarkPredictionLatency measures, with the seed of a lab world in the
// model, the time from publishing a host's first service (a priors result)
// to receiving its first prediction; it reports the median and the 99th
// percentile. "single": one host at a time, one result a message;
// "batched": the first services of wire.BatchResults hosts in one message,
// as the prober sends a sweep's finds, each host timed from the publish to
// its own first prediction; "burst": the same hosts at once, one message
// each, as before batches. A burst's last host waits for the predictions
// of all the others (about 50 each) however they are packed. (In the
// pipeline a result may also wait up to wire.BatchDelay in the prober for
// its batch to fill.)
func BenchmarkPredictionLatency(b *testing.B) {
	b.Run("single", func(b *testing.B) { benchLatency(b, 1, true) })
	b.Run("batched", func(b *testing.B) { benchLatency(b, wire.BatchResults, true) })
	b.Run("burst", func(b *testing.B) { benchLatency(b, wire.BatchResults, false) })
}

// benchLatency publishes the hosts per at a time, in one message (batch)
// or one message each.
func benchLatency(b *testing.B, per int, batch bool) {
	rs := scenario(b, 1000, false)
	nSeed := slices.IndexFunc(rs, func(x result) bool { return x.phase != wire.PhaseSeed })
	want := expected(b, rs, DefaultHitrate)
	predicted := make(map[string]bool)
	for k := range want {
		predicted[k.ip] = true
	}
	var probes []result
	for _, x := range rs[nSeed:] {
		if predicted[x.r.IP] {
			probes = append(probes, x)
		}
	}
	bs := bustest.New(b)
	last := publish(b, bs, rs[:nSeed])
	ctx, cancel := context.WithCancel(context.Background())
	st := &Stats{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Deps{Config: Config{}, Bus: bs, Log: zap.NewNop(), Stats: st}) }()
	defer func() {
		cancel()
		<-done
	}()
	for st.Seq.Load() != last {
		time.Sleep(time.Millisecond)
	}
	got := make(chan string, 1<<16)
	sub, err := bs.NC.Subscribe(wire.PredictionsPrefix+">", func(m *nats.Msg) {
		var p wire.Prediction
		if json.Unmarshal(m.Data, &p) == nil {
			got <- p.IP
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	var lat []time.Duration
	b.ResetTimer()
	// Every host is predicted once; more would only be deduplicated.
	for i := 0; i < min(b.N, len(probes)); i += per {
		group := probes[i:min(i+per, b.N, len(probes))]
		var msgs []wire.ResultBatch
		waiting := make(map[string]bool)
		for j, x := range group {
			if j == 0 || !batch {
				msgs = append(msgs, wire.ResultBatch{})
			}
			r := wire.ResultFromRow(x.r, x.phase, time.Now().UTC(), "bench")
			if ok, err := msgs[len(msgs)-1].Add(&r); !ok || err != nil {
				b.Fatal(ok, err)
			}
			waiting[x.r.IP] = true
		}
		began := time.Now()
		var futs []jetstream.PubAckFuture
		for j := range msgs {
			id := "bench:" + msgs[j].ID("")
			f, err := bs.JS.PublishAsync(wire.ResultsSubject(group[0].phase), msgs[j].Take(), jetstream.WithMsgID(id))
			if err != nil {
				b.Fatal(err)
			}
			futs = append(futs, f)
		}
		for len(waiting) > 0 {
			if ip := <-got; waiting[ip] {
				delete(waiting, ip)
				lat = append(lat, time.Since(began))
			}
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
