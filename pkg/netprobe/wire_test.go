//go:build linux

package netprobe

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/row"
)

// wirePort is the destination port of the wire tests: no lab world or other
// test uses it, so the SYNs to it on the capture are this test's.
const wirePort = 7

// syn is a TCP SYN seen leaving this machine.
type syn struct {
	dst uint32
	at  time.Time
}

// capture reads every IPv4 packet this machine sends, on every interface,
// from a packet socket (cooked: no link-layer header), and keeps the TCP
// SYNs to wirePort. It needs CAP_NET_RAW.
type capture struct {
	fd   int
	quit chan struct{} // closed: stop reading
	done chan struct{} // closed: the reader has stopped
	mu   sync.Mutex
	syns []syn
}

func startCapture(t *testing.T) *capture {
	t.Helper()
	// ETH_P_ALL: only its taps see packets leaving (PACKET_OUTGOING).
	proto := int(htons(syscall.ETH_P_ALL))
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, proto)
	if err != nil {
		t.Skipf("packet capture denied here (needs CAP_NET_RAW): %v", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<20); err != nil {
		t.Logf("capture buffer: %v", err)
	}
	tv := syscall.NsecToTimeval(int64(50 * time.Millisecond))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	// Bound to no interface: all of them, loopback and any route out.
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: uint16(proto)}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	c := &capture{fd: fd, quit: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *capture) run() {
	defer close(c.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := syscall.Recvfrom(c.fd, buf, 0)
		now := time.Now()
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				select {
				case <-c.quit:
					return
				default:
					continue
				}
			}
			return // closed
		}
		// Loopback shows a packet twice, leaving and arriving: count it leaving.
		if ll, ok := from.(*syscall.SockaddrLinklayer); !ok || ll.Pkttype != syscall.PACKET_OUTGOING || ll.Protocol != htons(syscall.ETH_P_IP) {
			continue
		}
		if dst, ok := parseSYN(buf[:n], wirePort); ok {
			c.mu.Lock()
			c.syns = append(c.syns, syn{dst, now})
			c.mu.Unlock()
		}
	}
}

// stop waits for the packets in flight, ends the capture and returns the
// SYNs seen, in time order.
func (c *capture) stop() []syn {
	time.Sleep(200 * time.Millisecond)
	close(c.quit) // the reader sees it within one read timeout
	<-c.done
	syscall.Close(c.fd)
	c.mu.Lock()
	defer c.mu.Unlock()
	slices.SortFunc(c.syns, func(a, b syn) int { return a.at.Compare(b.at) })
	return c.syns
}

// parseSYN returns the destination of an IPv4 TCP SYN (not SYN-ACK) to port.
func parseSYN(b []byte, port uint16) (uint32, bool) {
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != syscall.IPPROTO_TCP {
		return 0, false
	}
	ihl := int(b[0]&0x0f) * 4
	if len(b) < ihl+14 {
		return 0, false
	}
	tcp := b[ihl:]
	const fSYN, fACK = 0x02, 0x10
	if binary.BigEndian.Uint16(tcp[2:4]) != port || tcp[13]&fSYN == 0 || tcp[13]&fACK != 0 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[16:20]), true
}

// TestWireSafety scans with each engine while capturing what leaves the
// machine: the allow list is 127.250.0.0/23 less a user block file's
// 127.250.0.128/25, and the scan asks for more (a /22 sweep, single probes
// outside the allow list, inside the block list, and in public space). On
// the wire, every allowed address gets a SYN and nothing else does, every
// SYN went to an address the one gate (gate.go) admitted, which counted
// every refusal; and the SYNs never outrun the rate limit.
func TestWireSafety(t *testing.T) {
	dir := t.TempDir()
	block := filepath.Join(dir, "block.conf")
	if err := os.WriteFile(block, []byte("# the operator's own exclusions\n127.250.0.128/25\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := ipv4.LoadPolicy([]string{"127.250.0.0/23"}, "", block)
	if err != nil {
		t.Fatal(err)
	}
	var allowed []uint32
	for a := uint32(127<<24 | 250<<16); a < 127<<24|250<<16|4<<8; a++ {
		if pol.Allowed(a) {
			allowed = append(allowed, a)
		}
	}
	if len(allowed) != 384 {
		t.Fatalf("%d allowed addresses, want 384 (a /23 less a /25)", len(allowed))
	}
	for _, engine := range []string{EngineConnect, EngineSYN} {
		t.Run(engine, func(t *testing.T) {
			const rate, batch = 500, 10
			p, err := New(Options{Policy: pol, Engine: engine, Rate: rate, Batch: batch, Concurrency: 64, Timeout: time.Second, Retries: -1})
			if errors.Is(err, ErrEngine) {
				t.Skipf("raw sockets denied here: %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			log := watchGate(p)
			c := startCapture(t)
			ctx := context.Background()
			start := time.Now()
			for _, s := range []string{"127.251.0.1", "127.250.0.200", "127.250.2.1", "192.0.2.1", "8.8.8.8", "10.0.0.1"} {
				a, _ := row.ParseAddr(s)
				if _, _, err := p.Probe(ctx, a, wirePort); !errors.Is(err, ErrRefused) {
					t.Errorf("Probe(%s) = %v, want ErrRefused", s, err)
				}
			}
			if _, _, err := p.Probe(ctx, allowed[0], wirePort); err != nil {
				t.Errorf("Probe(%s): %v", row.FormatAddr(allowed[0]), err)
			}
			n, err := p.Sweep(ctx, 127<<24|250<<16, 22, wirePort, func(r row.Row) { t.Errorf("found %s:%d on a closed port", r.IP, r.Port) })
			if err != nil || n != uint64(len(allowed)) {
				t.Fatalf("Sweep = %d, %v; want %d probes", n, err, len(allowed))
			}
			syns := c.stop()

			// What went out: each allowed address, nothing else.
			sent := map[uint32]int{}
			for _, s := range syns {
				if !pol.Allowed(s.dst) {
					t.Fatalf("a SYN to %s left the machine: outside the policy", row.FormatAddr(s.dst))
				}
				if !log.admitted[net.JoinHostPort(row.FormatAddr(s.dst), strconv.Itoa(wirePort))] {
					t.Fatalf("a SYN to %s left the machine without the gate admitting it", row.FormatAddr(s.dst))
				}
				sent[s.dst]++
			}
			if got := p.Stats().Refused.Load(); got != log.nRefused || got < 6 {
				t.Errorf("Stats.Refused = %d, the gate refused %d, want the 6 probes outside the policy at least", got, log.nRefused)
			}
			for _, a := range allowed {
				if sent[a] == 0 {
					t.Errorf("no SYN to %s seen: the capture missed it or it was never sent", row.FormatAddr(a))
				}
			}
			// The rate: the k-th SYN cannot leave before (k+1-batch)/rate
			// after the start (capture times are only ever later).
			const slack = 5 * time.Millisecond
			for k, s := range syns {
				earliest := start.Add(time.Duration(float64(k+1-batch) / rate * float64(time.Second)))
				if s.at.Before(earliest.Add(-slack)) {
					t.Fatalf("SYN %d at %v, before %v: the rate limit of %d/s was exceeded", k, s.at.Sub(start), earliest.Sub(start), rate)
				}
			}
			el := syns[len(syns)-1].at.Sub(syns[0].at)
			t.Logf("%d SYNs to %d addresses in %v (%.0f/s, limit %d/s)", len(syns), len(sent), el, float64(len(syns)-1)/el.Seconds(), rate)
		})
	}
}
