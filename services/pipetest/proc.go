package pipetest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

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

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

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
