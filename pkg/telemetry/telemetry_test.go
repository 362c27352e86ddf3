package telemetry_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/pkg/telemetry"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := telemetry.NewMetrics(reg)
	m.Init("predictor")
	m.PredictionsOut.WithLabelValues("seed").Add(3)
	srv := telemetry.New(":0", reg, zaptest.NewLogger(t))
	h := srv.Handler()

	tests := []struct {
		name     string
		ready    *bool
		path     string
		wantCode int
		wantBody string
	}{
		{name: "healthz", path: "/healthz", wantCode: http.StatusOK, wantBody: "ok"},
		{name: "readyz before SetReady", path: "/readyz", wantCode: http.StatusServiceUnavailable, wantBody: "not ready"},
		{name: "readyz after SetReady(true)", ready: ptr(true), path: "/readyz", wantCode: http.StatusOK, wantBody: "ready"},
		{name: "healthz while ready", path: "/healthz", wantCode: http.StatusOK, wantBody: "ok"},
		{name: "readyz after SetReady(false)", ready: ptr(false), path: "/readyz", wantCode: http.StatusServiceUnavailable, wantBody: "not ready"},
		{name: "healthz while not ready", path: "/healthz", wantCode: http.StatusOK, wantBody: "ok"},
		{name: "metrics", path: "/metrics", wantCode: http.StatusOK, wantBody: `gps_predictions_out_total{phase="seed"} 3`},
		{name: "unknown path", path: "/nope", wantCode: http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ready != nil {
				srv.SetReady(*tc.ready)
				if srv.Ready() != *tc.ready {
					t.Fatalf("Ready() = %v after SetReady(%v)", srv.Ready(), *tc.ready)
				}
			}
			code, body := get(t, h, tc.path)
			if code != tc.wantCode {
				t.Fatalf("GET %s: status %d, want %d (body %q)", tc.path, code, tc.wantCode, body)
			}
			if !strings.Contains(body, tc.wantBody) {
				t.Fatalf("GET %s: body %q does not contain %q", tc.path, body, tc.wantBody)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := telemetry.NewMetrics(reg)
	m.Init("modeler")
	m.ResultsIn.WithLabelValues("modeler", "seed").Inc()
	m.DeadLettered.WithLabelValues("modeler").Inc()
	m.ModelKeys.Set(10)
	m.ModelHosts.Set(5)
	m.ModelBytes.Set(1 << 20)
	m.ConsumerPending.WithLabelValues("modeler", "RESULTS").Set(42)
	m.PredictionLatency.Observe(0.25)
	m.MessageHandle.WithLabelValues("modeler").Observe(0.001)

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatalf("GatherAndLint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range telemetry.MetricNames() {
		if !got[name] {
			t.Errorf("metric %s in MetricNames is not registered", name)
		}
		if !strings.HasPrefix(name, "gps_") {
			t.Errorf("metric %s: want the gps_ prefix", name)
		}
	}
	if len(got) != len(telemetry.MetricNames()) {
		t.Errorf("registered %d metrics, MetricNames lists %d", len(got), len(telemetry.MetricNames()))
	}
	if v := testutil.ToFloat64(m.ResultsIn.WithLabelValues("modeler", "seed")); v != 1 {
		t.Errorf("results in = %v, want 1", v)
	}
	// Init made the zero series of every phase.
	if n := testutil.CollectAndCount(m.ResultsIn); n != len(telemetry.Phases()) {
		t.Errorf("results in series = %d, want %d", n, len(telemetry.Phases()))
	}
}

func TestNewMetricsNilRegisterer(t *testing.T) {
	m := telemetry.NewMetrics(nil)
	m.ProbesSent.WithLabelValues("seed").Inc()
	if v := testutil.ToFloat64(m.ProbesSent.WithLabelValues("seed")); v != 1 {
		t.Fatalf("probes sent = %v, want 1", v)
	}
}

func TestNewRegistry(t *testing.T) {
	reg := telemetry.NewRegistry()
	telemetry.NewMetrics(reg)
	if n, err := testutil.GatherAndCount(reg, "go_goroutines"); err != nil || n != 1 {
		t.Fatalf("go_goroutines: %d series, err %v", n, err)
	}
}

// TestServe runs the real HTTP server on 127.0.0.1 and checks it stops when
// its context ends.
func TestServe(t *testing.T) {
	reg := prometheus.NewRegistry()
	telemetry.NewMetrics(reg).Init("prober")
	srv := telemetry.New("127.0.0.1:0", reg, zap.NewNop())
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	client := &http.Client{Timeout: 5 * time.Second}
	fetch := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		return resp.StatusCode, string(b)
	}
	if code, _ := fetch("/healthz"); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}
	if code, _ := fetch("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz before ready: %d", code)
	}
	srv.SetReady(true)
	if code, _ := fetch("/readyz"); code != http.StatusOK {
		t.Fatalf("readyz when ready: %d", code)
	}
	code, body := fetch("/metrics")
	if code != http.StatusOK || !strings.Contains(body, `gps_probes_sent_total{phase="predicted"} 0`) {
		t.Fatalf("metrics: %d %q", code, body)
	}
	if !strings.Contains(body, "promhttp_metric_handler_requests_total") {
		t.Errorf("metrics: the handler's own metrics are missing")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(telemetry.ShutdownTimeout + 5*time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if srv.Ready() {
		t.Error("still ready after shutdown")
	}
	if _, err := client.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestRunListenError(t *testing.T) {
	srv := telemetry.New("127.0.0.1:-1", prometheus.NewRegistry(), nil)
	err := srv.Run(t.Context())
	if err == nil {
		t.Fatal("Run on a bad address: no error")
	}
	var ne *net.OpError
	if !errors.As(err, &ne) && !strings.Contains(err.Error(), "listen on telemetry address") {
		t.Fatalf("Run: %v", err)
	}
}
