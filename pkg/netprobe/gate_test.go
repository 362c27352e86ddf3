package netprobe

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/gpsscan/gps/pkg/row"
)

// gateLog records every decision of a Prober's gate.
type gateLog struct {
	mu       sync.Mutex
	admitted map[string]bool // "ip:port"
	refused  map[string]int  // "ip:port", how many times
	nRefused uint64
}

func watchGate(p *Prober) *gateLog {
	l := &gateLog{admitted: map[string]bool{}, refused: map[string]int{}}
	p.gate.watch = func(addr uint32, port uint16, ok bool) {
		k := net.JoinHostPort(row.FormatAddr(addr), strconv.Itoa(int(port)))
		l.mu.Lock()
		defer l.mu.Unlock()
		if ok {
			l.admitted[k] = true
			return
		}
		l.refused[k]++
		l.nRefused++
	}
	return l
}

// TestGate drives the connect engine's ways of sending (Probe, Sweep, and
// the dial a grab makes) with targets inside and outside the policy: every
// dial goes to an address the gate admitted, the refused targets are never
// dialled, and the gate counted each refusal in Stats.Refused. (The SYN
// engine's packets are checked on the wire by TestWireSafety, with the same
// gateLog.)
func TestGate(t *testing.T) {
	ctx := context.Background()
	d := &refusingDial{}
	p, err := New(Options{Policy: policy(t, "127.1.0.0/24"), Rate: -1, Dial: d.dial})
	if err != nil {
		t.Fatal(err)
	}
	p.gate.hostPorts = map[uint16]bool{9999: true} // as if this machine listened on 0.0.0.0:9999
	log := watchGate(p)
	addr := func(s string) uint32 {
		a, err := row.ParseAddr(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	for _, s := range []string{"127.1.0.5", "127.2.0.1", "192.0.2.1"} {
		if _, _, err := p.Probe(ctx, addr(s), 80); err != nil && !errors.Is(err, ErrRefused) {
			t.Fatalf("Probe(%s): %v", s, err)
		}
	}
	if _, _, err := p.Probe(ctx, addr("127.1.0.7"), 9999); !errors.Is(err, ErrRefused) {
		t.Fatalf("Probe of a host listener port = %v, want ErrRefused", err)
	}
	// 127.1.0.0/23: its first /24 is allowed, the second is not.
	if n, err := p.Sweep(ctx, addr("127.1.0.0"), 23, 80, func(row.Row) {}); err != nil || n != 256 {
		t.Fatalf("Sweep = %d, %v; want 256 probes", n, err)
	}
	for _, a := range []string{"127.1.0.9:443", "192.0.2.1:443", "127.1.0.7:9999"} {
		if _, err := p.dialString(ctx, a); err == nil {
			t.Fatalf("dial %s: no error from a refusing dialer", a)
		}
	}

	if got := len(d.addrs); got != 1+256+1 {
		t.Errorf("%d dials, want %d (a probe, a /24 sweep, a grab's dial)", got, 1+256+1)
	}
	for _, a := range d.addrs {
		if !log.admitted[a] {
			t.Errorf("%s dialled without the gate admitting it", a)
		}
	}
	for _, a := range []string{"127.2.0.1:80", "192.0.2.1:80", "127.1.0.7:9999", "192.0.2.1:443"} {
		if log.refused[a] == 0 {
			t.Errorf("%s: no refusal by the gate", a)
		}
		for _, x := range d.addrs {
			if x == a {
				t.Errorf("%s dialled, refused by the gate", a)
			}
		}
	}
	if got := p.Stats().Refused.Load(); got != log.nRefused {
		t.Errorf("Stats.Refused = %d, the gate refused %d", got, log.nRefused)
	}
}
