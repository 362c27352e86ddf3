// Package pipetest holds what the separate-process pipeline tests share: the
// gps binary built once per test process, service processes with their logs,
// a lab world, reading the streams, and the exact invariants every run must
// end with, crash or not (CheckExact).
package pipetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gpsscan/gps/pkg/batch"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
	"github.com/gpsscan/gps/services/all"
	"github.com/gpsscan/gps/services/modeler"
)

// Hitrate is the GPS hitrate of every run here.
const Hitrate = 1e-5

var build struct {
	once sync.Once
	dir  string // removed by Main
	bin  string
	err  error
	out  []byte
}

// shared is what the tests of one process share: the world and the
// reference run on it.
var shared struct {
	mu    sync.Mutex
	world string
	ref   *Outcome
}

// Main runs the tests of a package that uses Binary and removes the binary
// afterwards: call it from TestMain.
func Main(m *testing.M) {
	// Child processes inherit the environment; make sure none picks up a
	// NATS URL or stream limits from the developer's shell.
	for _, v := range []string{"GPS_NATS_URL", "GPS_STREAM_MAX_AGE", "GPS_STREAM_MAX_BYTES"} {
		os.Unsetenv(v)
	}
	code := m.Run()
	for _, d := range []string{build.dir, shared.world} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

// Binary builds the gps binary once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		if build.dir, build.err = os.MkdirTemp("", "gps-bin-"); build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "gps")
		build.out, build.err = exec.Command("go", "build", "-o", build.bin, "github.com/gpsscan/gps/cmd/gps").CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("build gps: %v\n%s", build.err, build.out)
	}
	return build.bin
}

// syncBuffer is a bytes.Buffer safe for a process writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Proc is a gps process.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
	err  error // of Wait, once done is closed
}

// Start starts `bin args...`; the process is killed when the test ends, and
// the end of its log is printed if the test failed.
func Start(t testing.TB, bin, name string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s log (last 3000 bytes):\n%s", name, tail(p.log.String(), 3000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Log is what the process wrote so far.
func (p *Proc) Log() string { return p.log.String() }

// Wait waits for the process to exit and returns its error.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM (a clean stop: drain, last snapshot), waits, and fails
// the test unless the process exits with status 0 within 30 s.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("%s exited with %v after SIGTERM", p.Name, p.err)
		}
	case <-time.After(30 * time.Second):
		// Where is it stuck? SIGQUIT makes a Go program print every
		// goroutine's stack and exit.
		p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		log := p.log.String()
		if i := strings.Index(log, "SIGQUIT"); i >= 0 {
			log = log[i:]
		}
		t.Fatalf("%s did not stop on SIGTERM within 30s; its goroutines:\n%s", p.Name, tail(log, 60000))
	}
}

// Kill9 kills the process without warning.
func (p *Proc) Kill9() {
	p.cmd.Process.Kill()
	<-p.done
}

// TelemetryAddr waits for the process to log where it serves telemetry
// (started with --metrics-addr 127.0.0.1:0 and --log-format json).
func (p *Proc) TelemetryAddr(t testing.TB) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(p.log.String()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "serving telemetry" && l.Addr != "" {
				return l.Addr
			}
		}
		if p.Exited() {
			t.Fatalf("%s exited before serving telemetry: %v", p.Name, p.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s serves no telemetry after 30s", p.Name)
	return ""
}

// Get fetches http://addr/path and returns the status and body.
func Get(t testing.TB, addr, path string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	return resp.StatusCode, string(b)
}

// MakeWorld writes the lab world of these tests (seed 7, 3000 hosts, 4 /16s,
// seed fraction 0.2) once per test process and returns its directory; the
// tests only read it. Main removes it.
func MakeWorld(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.world != "" {
		return filepath.Join(shared.world, "world")
	}
	dir, err := os.MkdirTemp("", "gps-world-")
	if err != nil {
		t.Fatal(err)
	}
	w, err := lab.Generate(lab.Config{Seed: 7, Hosts: 3000, Slash16s: 4, SeedFrac: 0.2}.WithDefaults())
	if err == nil {
		err = w.Write(filepath.Join(dir, "world"))
	}
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	shared.world = dir
	return filepath.Join(dir, "world")
}

// Outcome is what a run left in the streams.
type Outcome struct {
	Found, Preds map[batch.Target]bool
	PredMsgs     int
	Results      []wire.Result // every result in RESULTS, batches unpacked, in order
	ResultMsgs   int           // RESULTS messages
}

// Collect reads RESULTS and PREDICTIONS.
func Collect(t testing.TB, b *bus.Bus) Outcome {
	t.Helper()
	ctx := context.Background()
	o := Outcome{Found: map[batch.Target]bool{}, Preds: map[batch.Target]bool{}}
	if err := all.EachMessage(ctx, b, bus.StreamResults, func(d []byte) {
		rs, err := wire.DecodeResults(d)
		if err != nil {
			t.Fatalf("a bad result in RESULTS: %v", err)
		}
		for _, r := range rs {
			a, _ := row.ParseAddr(r.IP)
			o.Found[batch.Target{Addr: a, Port: uint16(r.Port)}] = true
		}
		o.Results = append(o.Results, rs...)
		o.ResultMsgs++
	}); err != nil {
		t.Fatal(err)
	}
	if err := all.EachMessage(ctx, b, bus.StreamPredictions, func(d []byte) {
		p, err := wire.DecodePrediction(d)
		if err != nil {
			t.Fatalf("a bad prediction: %v", err)
		}
		a, _ := row.ParseAddr(p.IP)
		o.Preds[batch.Target{Addr: a, Port: uint16(p.Port)}] = true
		o.PredMsgs++
	}); err != nil {
		t.Fatal(err)
	}
	return o
}

// ReplayPredictions is the oracle of the predictor: the predictions a
// predictor makes reading these results in this order, without any crash.
func ReplayPredictions(results []wire.Result, hitrate float64) map[batch.Target]bool {
	m := model.New()
	found := map[uint32][]model.Found{}
	predicted := map[batch.Target]bool{}
	for i := range results {
		r := &results[i]
		s, err := r.Service()
		if err != nil {
			continue
		}
		m.Add(&s)
		feats := m.Dict().Of(nil, &s, false)
		fs := found[s.Addr]
		if j := slices.IndexFunc(fs, func(f model.Found) bool { return f.Port == uint16(s.Port) }); j >= 0 {
			merged := append(slices.Clone(fs[j].Feats), feats...)
			slices.Sort(merged)
			fs[j].Feats = slices.Compact(merged)
		} else {
			fs = append(fs, model.Found{Port: uint16(s.Port), Feats: feats})
		}
		found[s.Addr] = fs
		if r.Phase == wire.PhaseSeed {
			continue // seed hosts were scanned on every port
		}
		for _, p := range m.Predict(fs, hitrate) {
			predicted[batch.Target{Addr: s.Addr, Port: p.Port}] = true
		}
	}
	return predicted
}

// CheckExact checks what must hold in any run, crash or not: the modeler's
// final model is exactly the model of the RESULTS stream, each result
// applied once, and the predictions are exactly those of the stream replayed
// through a predictor that never crashed, each published once.
func CheckExact(t testing.TB, b *bus.Bus, o Outcome) {
	t.Helper()
	ctx := context.Background()
	store, err := b.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, err := store.GetBytes(ctx, modeler.SnapshotObject)
	if err != nil {
		t.Fatalf("modeler snapshot: %v", err)
	}
	got, seq, err := modeler.DecodeSnapshot(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if seq != uint64(o.ResultMsgs) {
		t.Fatalf("modeler snapshot covers RESULTS up to %d of %d", seq, o.ResultMsgs)
	}
	want := model.New()
	for i := range o.Results {
		s, _ := o.Results[i].Service()
		want.Add(&s)
	}
	if got.Version() != want.Version() {
		t.Fatalf("modeler applied %d results, the stream has %d: a result counted twice or lost", got.Version(), want.Version())
	}
	if err := got.Verify(); err != nil {
		t.Fatal(err)
	}
	if a, w := Counts(got), Counts(want); a != w {
		t.Fatalf("modeler counts differ from the stream's:\n got %s\nwant %s", a, w)
	}
	if o.PredMsgs != len(o.Preds) {
		t.Fatalf("%d prediction messages for %d distinct predictions: some published twice", o.PredMsgs, len(o.Preds))
	}
	replay := ReplayPredictions(o.Results, Hitrate)
	if len(replay) != len(o.Preds) {
		t.Fatalf("%d predictions published, a crash-free replay makes %d", len(o.Preds), len(replay))
	}
	for p := range replay {
		if !o.Preds[p] {
			t.Fatalf("prediction %v lost", p)
		}
	}
}

// Counts digests a model's counts: rows and the total of every count.
func Counts(m *model.Model) string {
	var keys, support, co uint64
	m.Each(func(k model.Key, s uint32, c []model.PortCount) {
		keys++
		support += uint64(s)
		for _, x := range c {
			co += uint64(x.N) * uint64(x.Port)
		}
	})
	rows := m.Rows(Hitrate)
	var h uint64
	for _, r := range rows {
		h = h*31 + uint64(r.Addr) + uint64(r.P)<<32 + uint64(r.NeededP)<<48 + uint64(r.Count)
	}
	return fmt.Sprintf("keys %d support %d co %d rows %d hash %x", keys, support, co, len(rows), h)
}

// SymDiff is the size of the symmetric difference of a and b.
func SymDiff(a, b map[batch.Target]bool) int {
	n := 0
	for k := range a {
		if !b[k] {
			n++
		}
	}
	for k := range b {
		if !a[k] {
			n++
		}
	}
	return n
}

// CheckClose checks a run against a reference one (`gps all`): the same
// services found, within half a percent, and the same predictions within
// two. Predictions depend on the order in which results reach the
// predictor (a rule crosses its count or hitrate threshold earlier or later
// for a host), and that order moves from run to run with the batches the
// prober cuts by time: two fault-free runs of one world differ by up to
// about 0.6 % in their predictions, while the services they lead to agree.
func CheckClose(t testing.TB, o, ref Outcome) {
	t.Helper()
	df := SymDiff(o.Found, ref.Found)
	dp := SymDiff(o.Preds, ref.Preds)
	t.Logf("found %d (reference %d, %d differ); predictions %d (reference %d, %d differ)", len(o.Found), len(ref.Found), df, len(o.Preds), len(ref.Preds), dp)
	if float64(df) > 0.005*float64(len(ref.Found)) {
		t.Fatalf("the services found differ from the reference's by more than 0.5%%")
	}
	if float64(dp) > 0.02*float64(len(ref.Preds)) {
		t.Fatalf("the predictions differ from the reference's by more than 2%%")
	}
}

// StreamMsgs is the number of messages in a stream (-1 while the request
// fails, e.g. during a leader election).
func StreamMsgs(ctx context.Context, b *bus.Bus, stream string) int64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := b.JS.Stream(ctx, stream)
	if err != nil {
		return -1
	}
	info, err := s.Info(ctx)
	if err != nil {
		return -1
	}
	return int64(info.State.Msgs)
}

// ResultCounter counts the results in RESULTS, batches unpacked, reading
// at each call only the messages stored since the last; not for concurrent
// use.
type ResultCounter struct {
	b    *bus.Bus
	next uint64 // sequence of the next message to read
	n    int64
}

// NewResultCounter counts the results of b's RESULTS stream.
func NewResultCounter(b *bus.Bus) *ResultCounter { return &ResultCounter{b: b, next: 1} }

// Count is the number of results stored so far (-1 while the stream cannot
// be read, e.g. during a leader election; the next call goes on from there).
func (c *ResultCounter) Count(ctx context.Context) int64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := c.b.JS.Stream(ctx, bus.StreamResults)
	if err != nil {
		return -1
	}
	info, err := s.Info(ctx)
	if err != nil {
		return -1
	}
	for ; c.next <= info.State.LastSeq; c.next++ {
		m, err := s.GetMsg(ctx, c.next)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return -1
		}
		rs, _ := wire.DecodeResults(m.Data)
		c.n += int64(len(rs))
	}
	return c.n
}

// Reference runs `gps all` in-process on the world of MakeWorld (an
// embedded server) once per test process and returns what it left in the
// streams: the run without faults to compare a separate-process run with.
func Reference(t testing.TB, world string) Outcome {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.ref != nil {
		return *shared.ref
	}
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	core, logs := observer.New(zapcore.InfoLevel)
	sum, _, err := all.Run(ctx, all.Deps{Config: all.Config{World: world, Hitrate: Hitrate, Step: 16, Quiet: time.Second}, Bus: b, Log: zap.New(core)})
	// The plan and the end of the run say why a reference may differ.
	for _, e := range logs.FilterMessage("priors plan published").All() {
		t.Logf("gps all: plan: %v", e.ContextMap())
	}
	for _, e := range logs.FilterMessage("pipeline idle").All() {
		t.Logf("gps all: idle: %v", e.ContextMap())
	}
	for _, e := range logs.FilterLevelExact(zapcore.WarnLevel).All() {
		t.Logf("gps all: warning: %s %v", e.Message, e.ContextMap())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gps all: %s", sum.JSON())
	o := Collect(t, b)
	shared.ref = &o
	return o
}

// Warnings counts the process's log lines at warn level and above by
// message (JSON logs).
func (p *Proc) Warnings() map[string]int {
	out := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(p.log.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Level != "" && l.Level != "info" && l.Level != "debug" {
			out[l.Msg]++
		}
	}
	return out
}
