package prober

import "github.com/gpsscan/gps/pkg/ipv4"

type sweepKey struct {
	prefix uint32
	bits   int
	port   uint16
}

// done reports whether (addr, port) was probed, or lies in a swept group.
func (p *prober) done(addr uint32, port uint16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.probed[svcKey(addr, port)]; ok {
		return true
	}
	for bits := range p.sweptBits {
		if p.sweptBits[bits] {
			if _, ok := p.swept[sweepKey{ipv4.Prefix{Addr: addr, Bits: bits}.First(), bits, port}]; ok {
				return true
			}
		}
	}
	return false
}

// beingSwept reports whether (addr, port) lies in a group being swept now:
// its sweep will probe it (or, failing, be handled again), so a live
// prediction of it need not be probed too. (A world's sweeps take no time:
// there the check would only move results between phases.)
func (p *prober) beingSwept(addr uint32, port uint16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for bits, n := range p.sweepingN {
		if n > 0 && p.sweeping[sweepKey{ipv4.Prefix{Addr: addr, Bits: bits}.First(), bits, port}] > 0 {
			return true
		}
	}
	return false
}

// startSweep marks a group as being swept until the returned func is called.
func (p *prober) startSweep(k sweepKey) (end func()) {
	p.mu.Lock()
	p.sweeping[k]++
	p.sweepingN[k.bits]++
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		if p.sweeping[k]--; p.sweeping[k] == 0 {
			delete(p.sweeping, k)
		}
		p.sweepingN[k.bits]--
		p.mu.Unlock()
	}
}

// sweptAlready reports whether a sweep of pr on port is covered by one done.
func (p *prober) sweptAlready(pr ipv4.Prefix, port uint16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for bits := 0; bits <= pr.Bits; bits++ {
		if p.sweptBits[bits] {
			if _, ok := p.swept[sweepKey{ipv4.Prefix{Addr: pr.Addr, Bits: bits}.First(), bits, port}]; ok {
				return true
			}
		}
	}
	return false
}

// work is what a message did, applied to the memory once its results are
// acknowledged (a failed publish must not mark its targets as done).
type work struct {
	probed []uint64
	swept  []sweepKey
}

func (p *prober) remember(w *work) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range w.probed {
		p.probed[k] = struct{}{}
	}
	for _, k := range w.swept {
		p.swept[k] = struct{}{}
		p.sweptBits[k.bits] = true
	}
}
