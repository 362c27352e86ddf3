package labserve

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gpsscan/gps/pkg/row"
)

// helperEnv marks a process started by Serve to serve a shard of a world.
const helperEnv = "GPS_LABSERVE_HELPER"

// ErrHelper is wrapped by the errors of helper processes.
var ErrHelper = errors.New("lab helper process")

// helperConfig is what a helper reads on stdin.
type helperConfig struct {
	CA          []byte    `json:"ca"`       // CA certificate, DER
	CAKey       []byte    `json:"ca_key"`   // SEC 1 DER
	LeafKey     []byte    `json:"leaf_key"` // SEC 1 DER
	IdleTimeout int64     `json:"idle_timeout_ns"`
	ReadTimeout int64     `json:"read_timeout_ns"`
	Rows        []row.Row `json:"rows"`
}

// helperReady is the line a helper writes on stdout once it listens.
type helperReady struct {
	Skipped []row.Row `json:"skipped"`
	Error   string    `json:"error,omitempty"`
}

// helper is a running helper process.
type helper struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	done    chan error
	skipped []row.Row
}

// RunHelperIfRequested turns this process into a lab helper when Serve
// started it (the environment says so), and then never returns; otherwise it
// returns at once. Call it first thing in main, and in TestMain of packages
// whose tests serve worlds larger than one process's file descriptors.
func RunHelperIfRequested() {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	os.Exit(runHelper(os.Stdin, os.Stdout))
}

func runHelper(in io.Reader, out io.Writer) int {
	enc := json.NewEncoder(out)
	fail := func(err error) int {
		enc.Encode(helperReady{Error: err.Error()})
		return 1
	}
	br := bufio.NewReaderSize(in, 1<<20)
	var hc helperConfig
	if err := json.NewDecoder(br).Decode(&hc); err != nil {
		return fail(fmt.Errorf("read helper config: %w", err))
	}
	auth, err := authorityFrom(hc)
	if err != nil {
		return fail(err)
	}
	if _, err := raiseNoFile(); err != nil {
		return fail(err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(zapcore.WarnLevel)
	zc.Encoding = "console"
	log, err := zc.Build()
	if err != nil {
		log = zap.NewNop()
	}
	log = log.With(zap.Int("pid", os.Getpid()), zap.String("role", "lab helper"))
	opts := Options{IdleTimeout: time.Duration(hc.IdleTimeout), ReadTimeout: time.Duration(hc.ReadTimeout)}.withDefaults()
	svcs, err := services(hc.Rows, nil)
	if err != nil {
		return fail(err)
	}
	l := newLab(log, opts, auth)
	if err := l.listen(svcs); err != nil {
		l.Close()
		return fail(err)
	}
	close(l.ready)
	if err := enc.Encode(helperReady{Skipped: l.skipped}); err != nil {
		l.Close()
		return 1
	}
	// Serve until the parent closes stdin (or dies) or signals.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, br)
		close(eof)
	}()
	select {
	case <-eof:
	case <-sig:
	}
	l.log = zap.NewNop()
	if err := l.Close(); err != nil {
		log.Warn("close lab helper", zap.Error(err))
		return 1
	}
	return 0
}

func authorityFrom(hc helperConfig) (*authority, error) {
	ca, err := x509.ParseCertificate(hc.CA)
	if err != nil {
		return nil, fmt.Errorf("read helper CA: %w", err)
	}
	caKey, err := x509.ParseECPrivateKey(hc.CAKey)
	if err != nil {
		return nil, fmt.Errorf("read helper CA key: %w", err)
	}
	leafKey, err := x509.ParseECPrivateKey(hc.LeafKey)
	if err != nil {
		return nil, fmt.Errorf("read helper leaf key: %w", err)
	}
	return &authority{ca: ca, caKey: caKey, leafKey: leafKey, certs: map[string]*certEntry{}}, nil
}

// startHelpers starts one helper process per per services and waits until
// each listens.
func (l *Lab) startHelpers(ctx context.Context, svcs []service, per int) error {
	if os.Getenv(helperEnv) != "" {
		return fmt.Errorf("%w: a helper may not start helpers", ErrHelper)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start lab helpers: %w", err)
	}
	caKey, err := x509.MarshalECPrivateKey(l.auth.caKey)
	if err != nil {
		return fmt.Errorf("start lab helpers: %w", err)
	}
	leafKey, err := x509.MarshalECPrivateKey(l.auth.leafKey)
	if err != nil {
		return fmt.Errorf("start lab helpers: %w", err)
	}
	for lo := 0; lo < len(svcs); lo += per {
		shard := svcs[lo:min(lo+per, len(svcs))]
		hc := helperConfig{CA: l.auth.ca.Raw, CAKey: caKey, LeafKey: leafKey,
			IdleTimeout: int64(l.opts.IdleTimeout), ReadTimeout: int64(l.opts.ReadTimeout)}
		for _, s := range shard {
			hc.Rows = append(hc.Rows, s.r)
		}
		h, err := startHelper(ctx, exe, hc)
		if err != nil {
			return err
		}
		l.helpers = append(l.helpers, h)
		l.log.Info("lab helper started", zap.Int("pid", h.cmd.Process.Pid), zap.Int("services", len(shard)))
	}
	return nil
}

func startHelper(ctx context.Context, exe string, hc helperConfig) (*helper, error) {
	// "-test.run=^$" makes a test binary whose TestMain does not call
	// RunHelperIfRequested run no test instead of all of them.
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start lab helper: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start lab helper: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start lab helper: %w", err)
	}
	h := &helper{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	go func() {
		if err := json.NewEncoder(stdin).Encode(hc); err != nil {
			cmd.Process.Kill()
		}
	}()
	ready := make(chan helperReady, 1)
	go func() {
		var r helperReady
		if err := json.NewDecoder(stdout).Decode(&r); err != nil {
			r.Error = fmt.Sprintf("no ready line (does the binary call labserve.RunHelperIfRequested first?): %v", err)
		}
		ready <- r
		io.Copy(io.Discard, stdout)
		h.done <- cmd.Wait()
	}()
	select {
	case r := <-ready:
		if r.Error != "" {
			h.stop()
			return nil, fmt.Errorf("%w %d: %s", ErrHelper, cmd.Process.Pid, r.Error)
		}
		h.skipped = r.Skipped
		return h, nil
	case <-ctx.Done():
		h.stop()
		return nil, fmt.Errorf("start lab helper: %w", ctx.Err())
	case <-time.After(2 * time.Minute):
		h.stop()
		return nil, fmt.Errorf("%w %d: not ready after 2m", ErrHelper, cmd.Process.Pid)
	}
}

// stop closes the helper's stdin and waits for it to exit (killing it after
// 10 s).
func (h *helper) stop() error {
	h.stdin.Close()
	select {
	case err := <-h.done:
		if err != nil {
			return fmt.Errorf("%w %d: %w", ErrHelper, h.cmd.Process.Pid, err)
		}
		return nil
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		<-h.done
		return fmt.Errorf("%w %d: killed after 10s", ErrHelper, h.cmd.Process.Pid)
	}
}
