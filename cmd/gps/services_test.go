package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
)

// get fetches http://addr/path.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// telemetryAddr waits for runService to log where it serves telemetry.
func telemetryAddr(t *testing.T, logs *observer.ObservedLogs) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range logs.FilterMessage("serving telemetry").All() {
			if a, ok := e.ContextMap()["addr"].(string); ok {
				return a
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no telemetry served")
	return ""
}

// TestRunService: the process around a service. Telemetry answers from the
// start; /readyz turns 200 when the service says it consumes; on stop,
// /readyz turns 503 before the service is told to drain, /healthz and
// /metrics keep answering while it drains, and a drain longer than
// --shutdown-timeout ends the process with an error. With --shutdown-delay
// the service works on, not ready, for the delay before it is told to drain.
func TestRunService(t *testing.T) {
	b := bustest.New(t)
	connect := func(context.Context) (*bus.Bus, error) {
		return bus.Connect(context.Background(), bus.Config{URL: b.ClientURL(), Name: "test"}, zap.NewNop())
	}
	for _, tc := range []struct {
		name    string
		drain   time.Duration // the service's drain after its ctx ends
		timeout time.Duration // --shutdown-timeout
		delay   time.Duration // --shutdown-delay
		wantErr error
	}{
		{"clean drain", 300 * time.Millisecond, 5 * time.Second, 0, nil},
		{"drain too long", 3 * time.Second, 300 * time.Millisecond, 0, errShutdown},
		// The timeout counts from the end of the delay.
		{"delay", 300 * time.Millisecond, 500 * time.Millisecond, time.Second, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type probe struct{ ready, health int }
			during := make(chan probe, 1)
			draining := make(chan time.Time, 1)
			run := func(sctx context.Context, s svc) error {
				if s.Metrics == nil {
					return errors.New("no metrics")
				}
				s.Metrics.Init("prober")
				s.Metrics.ProbesSent.WithLabelValues("seed").Add(7)
				s.Ready()
				<-sctx.Done()
				draining <- time.Now()
				// Draining: what does the pod answer now?
				addr := telemetryAddr(t, logs)
				r, _ := get(t, addr, "/readyz")
				h, _ := get(t, addr, "/healthz")
				during <- probe{r, h}
				time.Sleep(tc.drain)
				return nil
			}
			errc := make(chan error, 1)
			go func() {
				errc <- runService(ctx, serviceFlags{metricsAddr: "127.0.0.1:0", shutdown: tc.timeout, delay: tc.delay}, zap.New(core), connect, run)
			}()
			addr := telemetryAddr(t, logs)
			servicetest.WaitFor(t, "/readyz 200", func() bool { c, _ := get(t, addr, "/readyz"); return c == 200 })
			if c, body := get(t, addr, "/metrics"); c != 200 || !strings.Contains(body, `gps_probes_sent_total{phase="seed"} 7`) {
				t.Fatalf("/metrics: %d\n%s", c, body)
			}
			stopped := time.Now()
			cancel() // SIGTERM
			if tc.delay > 0 {
				servicetest.WaitFor(t, "/readyz 503 while the service works on", func() bool { c, _ := get(t, addr, "/readyz"); return c == 503 })
			}
			if d := (<-draining).Sub(stopped); d < tc.delay {
				t.Errorf("told to drain %v after SIGTERM, want at least the %v delay", d, tc.delay)
			}
			p := <-during
			if p.ready != http.StatusServiceUnavailable || p.health != http.StatusOK {
				t.Errorf("while draining: /readyz %d, /healthz %d; want 503, 200", p.ready, p.health)
			}
			select {
			case err := <-errc:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("runService = %v, want %v", err, tc.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("runService did not return")
			}
			if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
				t.Error("telemetry still served after the process ended")
			}
		})
	}
}

// TestServiceFlags: every service command takes the telemetry, shutdown and
// stream limit flags; bad limits are usage errors.
func TestServiceFlags(t *testing.T) {
	for _, c := range commands() {
		switch c.name {
		case "seeder", "modeler", "predictor", "prober", "all", "watch predictions", "watch results",
			"inventory", "inventory serve", "watch services":
		default:
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			var stderr strings.Builder
			args := append(strings.Fields(c.name), "-h")
			if code := run(args, &stderr); code != 0 {
				t.Fatalf("-h: exit %d", code)
			}
			for _, f := range []string{"-metrics-addr", "-shutdown-timeout", "-stream-max-age", "-stream-max-bytes", "-nats", "-replicas"} {
				if !strings.Contains(stderr.String(), f) {
					t.Errorf("no %s flag", f)
				}
			}
		})
	}
	var stderr strings.Builder
	if code := run([]string{"modeler", "--nats", "nats://127.0.0.1:1", "--stream-max-age", "BOGUS=1h", "--metrics-addr", ""}, &stderr); code != 2 {
		t.Fatalf("bad --stream-max-age: exit %d, want 2; %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "unknown stream") {
		t.Fatalf("bad --stream-max-age: %s", stderr.String())
	}
}
