package netprobe

import (
	"fmt"
	"iter"
	"sync/atomic"

	"github.com/gpsscan/gps/pkg/ipv4"
)

// gate is the one place where a destination meets the scan policy. Every
// packet the Prober sends goes to an address the gate admitted right
// before: a connect() (Probe, the connect Sweep, and each dial of a grab,
// through dialAddr), a SYN of Probe (syn.go), and the SYNs of a SYN sweep
// or SYNScan (synscan.go, through addrs). Refusals are counted here, in
// Stats.Refused. No other code of the package reads the policy.
type gate struct {
	pol       *ipv4.Policy
	hostPorts map[uint16]bool // wildcard listeners of this machine (hostports.go)
	refused   *atomic.Uint64  // the Prober's Stats.Refused

	// watch, when set (by tests), sees every decision of admit.
	watch func(addr uint32, port uint16, admitted bool)
}

func newGate(pol *ipv4.Policy, refused *atomic.Uint64) *gate {
	return &gate{pol: pol, hostPorts: hostListenPorts(), refused: refused}
}

// admit reports whether a packet may go to (addr, port): the address is in
// the policy, and it is not a loopback address on a port where a wildcard
// listener of this machine would answer. A refusal is counted.
func (g *gate) admit(addr uint32, port uint16) bool {
	ok := g.pol.Allowed(addr) && !g.hostPort(addr, port)
	if g.watch != nil {
		g.watch(addr, port, ok)
	}
	if !ok {
		g.refused.Add(1)
	}
	return ok
}

// addrs yields the addresses of parts that admit lets through, in order:
// the sweeps send to these and to no other.
func (g *gate) addrs(parts []ipv4.Prefix, port uint16) iter.Seq[uint32] {
	return func(yield func(uint32) bool) {
		for _, part := range parts {
			for a, last := uint64(part.First()), uint64(part.Last()); a <= last; a++ {
				if g.admit(uint32(a), port) && !yield(uint32(a)) {
					return
				}
			}
		}
	}
}

// clip returns prefix/bits (its first address) and the parts of it the
// policy allows, the plan of a sweep (addrs still admits each address before
// its send). None is ErrRefused, and so is a port where a wildcard listener
// of this machine would answer on every address; the whole prefix is then
// counted as refused.
func (g *gate) clip(prefix uint32, bits int, port uint16) (ipv4.Prefix, []ipv4.Prefix, error) {
	if bits < 0 || bits > 32 {
		return ipv4.Prefix{}, nil, fmt.Errorf("prefix length %d out of range", bits)
	}
	pr := ipv4.Prefix{Addr: prefix, Bits: bits}
	pr.Addr = pr.First()
	parts := g.pol.Clip(pr)
	if len(parts) > 0 && g.hostPort(pr.First(), port) && g.hostPort(pr.Last(), port) {
		parts = nil
	}
	if len(parts) == 0 {
		g.refused.Add(pr.Size())
		return pr, nil, fmt.Errorf("%s port %d: %w", pr, port, ErrRefused)
	}
	return pr, parts, nil
}

// replyFrom reports whether a reply from addr may be taken: replies are
// checked against the policy on receipt too, as ZMap drops those from
// disallowed sources.
func (g *gate) replyFrom(addr uint32) bool { return g.pol.Allowed(addr) }
