// Package telemetry is the HTTP side of every service: /metrics for
// Prometheus, /healthz for the liveness probe and /readyz for the readiness
// probe, plus the gps_* metrics the services share (see Metrics).
//
// A service process builds one registry (NewRegistry), one Metrics on it
// and one Server on it, runs the Server beside the service, flips readiness
// on once the service consumes, and flips it off when SIGTERM arrives,
// before it drains:
//
//	reg := telemetry.NewRegistry()
//	m := telemetry.NewMetrics(reg)
//	srv := telemetry.New(":9090", reg, log)
//	g.Go(func() error { return srv.Run(telemetryCtx) })
//	... consumer set up ...
//	srv.SetReady(true)
//	<-ctx.Done()
//	srv.SetReady(false) // Kubernetes stops routing; then drain
//
// Nothing here is global: the registry is injected, the default Prometheus
// registry is never touched.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// DefaultAddr is where the services serve telemetry unless told otherwise;
// the Kubernetes manifests name this port "metrics".
const DefaultAddr = ":9090"

// ShutdownTimeout bounds the graceful shutdown of the HTTP server once the
// context of Run ends; connections still open after it are closed.
const ShutdownTimeout = 5 * time.Second

const (
	readHeaderTimeout = 5 * time.Second
	scrapeTimeout     = 10 * time.Second
	maxScrapes        = 4 // concurrent /metrics requests
)

// Server serves /metrics, /healthz and /readyz. Its zero value is not
// usable; build it with New. SetReady and Ready are safe for concurrent use.
type Server struct {
	addr    string
	log     *zap.Logger
	handler http.Handler
	ready   atomic.Bool
}

// NewRegistry returns a new registry (never the default one) holding the Go
// runtime and process collectors, as a service process wants it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// New returns a server that will listen on addr (host:port, e.g. ":9090")
// and expose what reg gathers on /metrics. reg must not be nil; log may be
// nil (no logs). The server starts not ready: /readyz answers 503 until
// SetReady(true).
func New(addr string, reg *prometheus.Registry, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{addr: addr, log: log}
	metrics := promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            zap.NewStdLog(log),
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            reg, // counts promhttp_metric_handler_errors_total
		MaxRequestsInFlight: maxScrapes,
		Timeout:             scrapeTimeout,
		EnableOpenMetrics:   true,
	}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.ready.Load() {
			writeStatus(w, http.StatusOK, "ready")
			return
		}
		writeStatus(w, http.StatusServiceUnavailable, "not ready")
	})
	s.handler = mux
	return s
}

func writeStatus(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, body) // the client went away: nothing to do
}

// Handler returns the server's routes, for tests and for mounting them in
// another server.
func (s *Server) Handler() http.Handler { return s.handler }

// SetReady sets what /readyz answers: 200 when ready, 503 when not. A
// service sets it true once it consumes, and false on SIGTERM before it
// drains, so that Kubernetes stops sending it work first.
func (s *Server) SetReady(ready bool) {
	if s.ready.Swap(ready) != ready {
		s.log.Info("readiness changed", zap.Bool("ready", ready))
	}
}

// Ready reports what /readyz answers.
func (s *Server) Ready() bool { return s.ready.Load() }

// Run listens on the server's address and serves until ctx ends, then shuts
// down gracefully within ShutdownTimeout. It returns nil on a clean stop.
//
// Run it with a context that outlives the service's drain (cancel it after
// the service's Run returns), so that /metrics and /healthz keep answering
// while the service finishes its work.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen on telemetry address %s: %w", s.addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller made (e.g. on 127.0.0.1:0 in a
// test); it closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          zap.NewStdLog(s.log),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	s.log.Info("serving telemetry", zap.String("addr", ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve telemetry: %w", err)
	case <-ctx.Done():
	}
	s.SetReady(false)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("shut down telemetry server: %w", err), srv.Close())
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("serve telemetry: %w", serr))
	}
	return err
}
