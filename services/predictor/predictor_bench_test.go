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
// to receiving its first prediction, one host at a time; it reports the
// median and the 99th percentile.
func BenchmarkPredictionLatency(b *testing.B) {
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
	got := make(chan string, 1024)
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
	for i := 0; i < b.N; i++ {
		x := probes[i%len(probes)]
		if i >= len(probes) {
			b.StopTimer()
			break // every host predicted once; more would only be deduplicated
		}
		data, _ := json.Marshal(wire.ResultFromRow(x.r, x.phase, time.Now().UTC(), "bench"))
		began := time.Now()
		if _, err := bs.JS.Publish(ctx, wire.ResultsSubject(x.phase), data, jetstream.WithMsgID("bench:"+x.r.IP)); err != nil {
			b.Fatal(err)
		}
		for ip := range got {
			if ip == x.r.IP {
				break
			}
		}
		lat = append(lat, time.Since(began))
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
