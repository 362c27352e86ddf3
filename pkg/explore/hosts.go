package explore

// Host seeds in a random order (HostOrder "random", and half of the
// default "mixed"): found hosts wait in a fixed pseudo-random order (a
// keyed hash of the address), pseudo-hosts left out. The next host seed is then a uniform sample of
// the real-looking hosts found so far, so a port that m of N found hosts
// answer on is taught with a chance of m/N a seed: the ports of many hosts
// (the ones worth a sweep) are taught first, where seeding every kind of
// found ports once first spends the seeds on the rarest port sets (a
// host's noise port makes a kind of its own) and takes one seed from a
// kind of thousands of hosts (docs/small-seed.md, third round).
type randomHosts struct {
	key  uint64
	h    []ordered
	wait map[uint32]bool // queued and not seeded, not a pseudo-host
}

func newRandomHosts(key uint64) *randomHosts {
	return &randomHosts{key: mix64(key), wait: map[uint32]bool{}}
}

// queue puts a found host in the order, once.
func (r *randomHosts) queue(addr uint32) {
	if r.wait[addr] {
		return
	}
	r.wait[addr] = true
	r.h = pushOrdered(r.h, ordered{mix64(uint64(addr) ^ r.key), addr})
}

// drop takes a host out of the queue (it became a pseudo-host, or was
// seeded before a restart).
func (r *randomHosts) drop(addr uint32) { delete(r.wait, addr) }

// waiting reports whether a host waits for its seed.
func (r *randomHosts) waiting() bool { return len(r.wait) > 0 }

// pop takes the next waiting host for which push reports true (false: it
// was seeded since it was queued).
func (r *randomHosts) pop(push func(uint32) bool) bool {
	for len(r.h) > 0 {
		var o ordered
		o, r.h = popOrdered(r.h)
		a := o.key
		if !r.wait[a] {
			continue
		}
		delete(r.wait, a)
		if push(a) {
			return true
		}
	}
	return false
}
