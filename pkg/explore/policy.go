// Package explore is gps-stream-own's policy (issue #16): gps-stream that
// takes its own seed and keeps learning ports. It decides what to seed and
// what to sweep and pushes it to a schedule.Scheduler; its caller probes
// what the scheduler releases and tells it what was found. The replay
// (pkg/eval, answering from truth) and the prober (answering from a world
// or the network) run the same Policy, so their curves agree.
//
// It seeds addresses of the space in a fixed cyclic order (every port,
// schedule.SeedPorts probes each), sweeps every port it learns of over
// every /16 of the space at a yield learned as the chunks report, and
// seeds some of the hosts it finds (a found host is a far richer sample
// than a random address). Predictions are the caller's (a model of every
// find); Predictable says which hosts get them.
package explore

import (
	"fmt"
	"slices"
	"sync"

	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/schedule"
)

// PseudoPorts is the most ports a real host answers on: a host found on
// more is a sink (a pseudo-host), whose ports teach nothing and which gets
// no more predictions.
const PseudoPorts = 10

// SeedYield is the yield seeds are pushed at when the policy has decided
// to seed now: above any prediction (at most 1) and any sweep, so the seed
// goes next. Whether to seed is the policy's choice, since a seed's worth
// is what it teaches, not what it finds.
const SeedYield = 2

// Defaults of Config (gps eval's and the prober's flags).
const (
	DefaultOwnSeed    = 0.0002
	DefaultKey        = 1
	DefaultRandShare  = 0.1
	DefaultSeedMax    = 0.003
	DefaultHostShare  = 0.1
	DefaultHostWindow = 200
	DefaultPortMin    = 2
	// DefaultProbeFound: host seeds teach ports of few hosts, which
	// found-host probes confirm before they are swept over the space
	// (docs/small-seed.md, levers).
	DefaultProbeFound = 512
	DefaultHostOrder  = HostMixed
)

// The orders found hosts are seeded in (Config.HostOrder).
const (
	// HostRandom seeds the real-looking found hosts in a fixed
	// pseudo-random order (hosts.go): each seed a uniform sample of them.
	HostRandom = "random"
	// HostKinds seeds them by kind (kinds.go).
	HostKinds = "kinds"
	// HostFound seeds every found host, pseudo-hosts too, in the order
	// found (also the zero Config's "").
	HostFound = "found"
	// HostMixed takes host seeds from HostRandom's order and HostKinds' in
	// turn, pseudo-hosts left out: half of them teach the ports of many
	// hosts, half those of rare port sets (docs/small-seed.md, third round).
	HostMixed = "mixed"
)

// Config are the policy's knobs.
type Config struct {
	// OwnSeed is the share of the space seeded at the start, in the cyclic
	// order keyed by Key.
	OwnSeed float64
	Key     uint64
	// RandShare is the most of the probes the random seed may take after
	// the start, while it goes on sampling and one of its last HostWindow
	// addresses answered; SeedMax caps the random seed's share of the
	// space (it also seeds, up to that, whenever nothing else is pending:
	// Refill).
	RandShare float64
	SeedMax   float64
	// HostShare is the most of the probes spent seeding hosts found (0:
	// none); host seeds stop once HostWindow of them in a row taught no
	// new port.
	HostShare  float64
	HostWindow int
	// PortMin is the found services (on real-looking hosts) a port needs
	// before it is swept over the space; 0: 1.
	PortMin int
	// ProbeFound is the found hosts a port is probed on when one service
	// of it is found, on a host and not by the random seed: the hosts that
	// share the most found ports with that host; 0: none.
	ProbeFound int
	// HostOrder is the order found hosts are seeded in: HostMixed,
	// HostRandom, HostKinds or HostFound ("": HostFound). Pseudo-hosts are
	// seeded only with HostFound.
	HostOrder string
}

// Default is the policy with the default knobs, seeding ownSeed of the
// space at the start.
func Default(ownSeed float64) Config {
	return Config{OwnSeed: ownSeed, Key: DefaultKey, RandShare: DefaultRandShare, SeedMax: DefaultSeedMax,
		HostShare: DefaultHostShare, HostWindow: DefaultHostWindow, PortMin: DefaultPortMin, ProbeFound: DefaultProbeFound,
		HostOrder: DefaultHostOrder}
}

// Validate checks c; the error names the flag.
func (c Config) Validate() error {
	switch {
	case !(c.OwnSeed >= 0 && c.OwnSeed <= 1):
		return fmt.Errorf("--own-seed %g: want 0..1", c.OwnSeed)
	case !(c.HostShare >= 0 && c.HostShare <= 1):
		return fmt.Errorf("--host-share %g: want 0..1", c.HostShare)
	case !(c.RandShare >= 0 && c.RandShare <= 1):
		return fmt.Errorf("--rand-share %g: want 0..1", c.RandShare)
	case !(c.SeedMax >= 0 && c.SeedMax <= 1):
		return fmt.Errorf("--seed-max %g: want 0..1", c.SeedMax)
	case c.HostWindow < 0 || c.PortMin < 0 || c.ProbeFound < 0:
		return fmt.Errorf("--host-window %d, --port-min %d and --probe-found %d: want >= 0", c.HostWindow, c.PortMin, c.ProbeFound)
	case c.HostOrder != "" && c.HostOrder != HostRandom && c.HostOrder != HostKinds && c.HostOrder != HostFound && c.HostOrder != HostMixed:
		return fmt.Errorf("--host-order %q: want %s, %s, %s or %s", c.HostOrder, HostMixed, HostRandom, HostKinds, HostFound)
	}
	return nil
}

// Kind tells the seeds apart when the caller gives no tokens (Tokens).
type Kind int

// The default tokens of random and host seeds.
const (
	RandomSeed Kind = iota + 1
	HostSeed
)

// Tokens are the scheduler tokens the policy pushes its work with, so that
// a released seed says where it came from: Random and Host must differ.
// The zero Tokens are RandomSeed, HostSeed and nil.
type Tokens struct{ Random, Host, Sweep any }

// Policy is gps-stream-own's state: what it seeded and found. Its methods
// are safe for concurrent use.
type Policy struct {
	mu     sync.Mutex
	c      Config
	sp     *Space
	sched  *schedule.Scheduler
	seeded *Seeded
	tok    Tokens
	order  *Cyclic

	hostPorts map[uint32][]uint16 // found ports of a host
	portHits  map[uint16]int      // found services of a port on real-looking hosts
	port16    map[gps.Target]int  // the same per (/16, port)
	swept     map[uint16]bool     // ports whose sweeps are queued
	portHosts map[uint16][]int32  // real-looking hosts found on a port (index in found), in the order found (kept for ProbeFound)
	foundIdx  map[uint32]int32    // with ProbeFound: a found host's index in found
	found     []foundHost         // with ProbeFound: the found hosts, in the order found
	near      nearScratch         // probeFound's reused counts

	randSeeds, randHosts int          // random seed addresses, and how many answered
	randDups             int          // random seed addresses seeded already (not probed again)
	randLastHost         int          // randSeeds when a random seed last answered
	randPending          int          // random seeds pushed and not released
	hostQueue            []uint32     // found hosts not seeded yet
	kinds                *kinds       // with HostKinds, instead of hostQueue
	random               *randomHosts // with HostRandom, instead of hostQueue
	hostPushed           int          // host seeds pushed (HostMixed's turns; restored ones too)
	hostSeeds            int
	hostSeedProbes       uint64
	newPortSeeds         []bool // per host seed: did it teach a port not known before

	randIndexOf map[uint32]int // while restoring: the random seed's addresses, by place in the order
}

// Stats say what the policy did. RandomDups of the RandomSeeds were
// addresses a host seed had probed already, so the scheduler ran
// RandomSeeds-RandomDups+HostSeeds seeds.
type Stats struct {
	RandomSeeds, RandomHosts, RandomDups, HostSeeds, LearnedPorts int
}

// New is a policy over sp pushing to sched, whose Config.Skip must be
// seeded (the addresses the policy seeds, which later chunks leave out).
func New(c Config, sp *Space, sched *schedule.Scheduler, seeded *Seeded, tok Tokens) *Policy {
	if tok.Random == nil && tok.Host == nil {
		tok.Random, tok.Host = RandomSeed, HostSeed
	}
	return &Policy{c: c, sp: sp, sched: sched, seeded: seeded, tok: tok, order: NewCyclic(sp.Size(), c.Key),
		hostPorts: map[uint32][]uint16{}, portHits: map[uint16]int{}, port16: map[gps.Target]int{}, swept: map[uint16]bool{},
		portHosts: map[uint16][]int32{}, foundIdx: map[uint32]int32{}, kinds: newKinds(), random: newRandomHosts(c.Key)}
}

// Start pushes the first seeds: OwnSeed of the space, at least one.
func (p *Policy) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	boot := uint64(p.c.OwnSeed * float64(p.sp.Size()))
	for range max(boot, 1) {
		p.pushRandom()
	}
}

// Released records that x is being probed: a seed's address is left out
// of the chunks released from now on.
func (p *Policy) Released(x schedule.Work) {
	if x.Kind == schedule.Seed {
		p.seeded.Add(x.First)
	}
}

// Learn takes in what x found: hits are the services it found (those the
// policy knew of already are left out; hits is filtered in place). It
// counts the seeds, the ports of hosts and ports, queues found hosts for
// host seeds and sweeps the ports that earned it.
func (p *Policy) Learn(x schedule.Work, hits []gps.Target) {
	p.mu.Lock()
	defer p.mu.Unlock()
	hits = slices.DeleteFunc(hits, func(t gps.Target) bool { return slices.Contains(p.hostPorts[t.Addr], t.Port) })
	random := x.Kind == schedule.Seed && x.Token == p.tok.Random
	host := x.Kind == schedule.Seed && !random && x.Token == p.tok.Host
	switch {
	case random:
		p.randSeeds++
		p.randPending--
		if len(hits) > 0 {
			p.randHosts++
			p.randLastHost = p.randSeeds
		}
	case host:
		p.hostSeeds++
		p.hostSeedProbes += x.Probes
	}
	newPort := false
	for _, t := range hits {
		first := len(p.hostPorts[t.Addr]) == 0
		p.hostPorts[t.Addr] = append(p.hostPorts[t.Addr], t.Port)
		if p.c.ProbeFound > 0 {
			p.countFound(t.Addr)
		}
		if first && p.c.HostShare > 0 && !p.sched.Seeded(t.Addr) && p.hostFound() {
			p.hostQueue = append(p.hostQueue, t.Addr)
		}
	}
	if !p.hostFound() && p.c.HostShare > 0 {
		for _, t := range hits {
			pseudo := len(p.hostPorts[t.Addr]) > PseudoPorts
			rnd, knd := p.c.HostOrder != HostKinds, p.c.HostOrder != HostRandom
			switch {
			case pseudo:
				p.random.drop(t.Addr)
				p.kinds.drop(t.Addr)
			case !p.sched.Seeded(t.Addr):
				if rnd {
					p.random.queue(t.Addr)
				}
				if knd {
					p.kinds.queue(t.Addr, p.hostPorts[t.Addr])
				}
			}
		}
	}
	// A host answering on more than PseudoPorts ports is a sink: its ports
	// teach nothing about real hosts.
	for _, t := range hits {
		if len(p.hostPorts[t.Addr]) > PseudoPorts {
			continue
		}
		if !p.swept[t.Port] {
			newPort = true
		}
		p.portHits[t.Port]++
		p.port16[gps.Target{Addr: t.Addr &^ 0xffff, Port: t.Port}]++
		if p.c.ProbeFound > 0 {
			p.portHosts[t.Port] = append(p.portHosts[t.Port], p.foundIdx[t.Addr])
		}
	}
	// A port is swept once PortMin services of it are found, or at once
	// when the random seed found it: one find in a uniform sample of a
	// small share of the space stands for many, while one find on a host
	// that was itself found through a known port is often noise.
	for _, t := range hits {
		enough := random || p.portHits[t.Port] >= max(p.c.PortMin, 1)
		if len(p.hostPorts[t.Addr]) <= PseudoPorts && !p.swept[t.Port] && enough {
			p.sweepPort(t.Port)
		}
	}
	// A port found once waits for a second find before it is swept; the
	// found hosts most like the first one are where that find is likeliest,
	// so they are probed on the port now.
	for _, t := range hits {
		if len(p.hostPorts[t.Addr]) <= PseudoPorts && !p.swept[t.Port] && p.portHits[t.Port] == 1 {
			p.probeFound(t.Port, t.Addr)
		}
	}
	if host {
		p.newPortSeeds = append(p.newPortSeeds, newPort)
		if len(p.hostPorts[x.First]) > PseudoPorts {
			p.kinds.learned(x.First, 0)
		} else {
			p.kinds.learned(x.First, len(hits))
		}
	}
}

// sweepPort queues port over every /16 of the space. The prior yield of a
// /16 is the mean of what was found there on the port and what was found
// per /16 anywhere, over the share of the space's hosts found so far (the
// finds are that share's sample), worth that share of a /16's probes: a
// handful of empty chunks outweighs it.
func (p *Policy) sweepPort(port uint16) {
	p.swept[port] = true
	share := p.foundShare()
	all := float64(p.portHits[port]) / float64(len(p.sp.slash16s))
	for _, p16 := range p.sp.slash16s {
		local := float64(p.port16[gps.Target{Addr: p16, Port: port}])
		err := p.sched.PushSweep(schedule.Sweep{Prefix: p16, Bits: 16, Port: port,
			PriorHits: local + all, PriorProbes: 2 * share * 65536}, p.tok.Sweep)
		if err != nil {
			panic(fmt.Sprintf("gps-stream-own: %v", err)) // a /16 with a positive prior is a valid sweep
		}
	}
}

// probeFound queues port as single probes on the ProbeFound found hosts
// that share the most found ports with origin (ties in a fixed
// pseudo-random order), at a yield of one find among them; pseudo-hosts,
// seeded hosts and hosts found on port are left out. A port found on one
// host is as often noise as a port of a kind of device; the devices of a
// kind answer on the same ports, so the hosts like origin tell the two
// apart for a few hundred probes, where a sweep of the space takes a /16's
// worth per /16. A second find sweeps the port (PortMin 2).
func (p *Policy) probeFound(port uint16, origin uint32) {
	if p.c.ProbeFound <= 0 {
		return
	}
	// Count, for every real-looking found host, the ports it shares with
	// origin, in arrays indexed by found host (the lists of a popular port
	// hold most of the found hosts, and a map per call cost minutes on a
	// 130,000-host world).
	nr := &p.near
	nr.next(len(p.found))
	oi := p.foundIdx[origin]
	top := 0
	for _, q := range p.hostPorts[origin] {
		if q == port {
			continue
		}
		for _, i := range p.portHosts[q] {
			if i != oi && p.found[i].ports <= PseudoPorts {
				top = max(top, nr.add(i))
			}
		}
	}
	// Most shared ports first, ties in a fixed pseudo-random order: each
	// count's hosts in a min-heap by that order, popped until ProbeFound
	// are queued (only the popped ones are looked up).
	yield := 1 / float64(p.c.ProbeFound)
	n := 0
	for k := top; k > 0 && n < p.c.ProbeFound; k-- {
		h := nr.bucket(k, func(i int32) uint64 { return mix64(uint64(p.found[i].addr)<<16 | uint64(port)) })
		for n < p.c.ProbeFound && len(h) > 0 {
			var c ordered
			c, h = popOrdered(h)
			a := p.found[c.key].addr
			if p.sched.Seeded(a) || slices.Contains(p.hostPorts[a], port) {
				continue
			}
			p.sched.Push(schedule.Target{Addr: a, Port: port}, yield, p.tok.Sweep)
			n++
		}
	}
}

// countFound keeps addr's found port count by index (probeFound's).
func (p *Policy) countFound(addr uint32) {
	i, ok := p.foundIdx[addr]
	if !ok {
		i = int32(len(p.found))
		p.foundIdx[addr] = i
		p.found = append(p.found, foundHost{addr: addr})
	}
	p.found[i].ports = len(p.hostPorts[addr])
}

// foundShare estimates the share of the space's hosts found so far: hosts
// found over the hosts the random seed's answer rate says there are.
func (p *Policy) foundShare() float64 {
	rate := (float64(p.randHosts) + 1) / (float64(p.randSeeds) + 1)
	hosts := rate * float64(p.sp.Size())
	return min(max(float64(len(p.hostPorts))/hosts, 1e-3), 1)
}

// Predictable reports whether addr gets predictions: it is not a
// pseudo-host and was not seeded (a seed probes every port).
func (p *Policy) Predictable(addr uint32) bool {
	return !p.Pseudo(addr) && !p.sched.Seeded(addr)
}

// Pseudo reports whether addr was found on more than PseudoPorts ports.
func (p *Policy) Pseudo(addr uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.hostPorts[addr]) > PseudoPorts
}

// HostPorts are the ports found on addr, in the order found. The slice is
// the policy's: read it, do not keep it past the next Learn.
func (p *Policy) HostPorts(addr uint32) []uint16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hostPorts[addr]
}

// Refill seeds more when nothing worth a probe is left: a found host if
// any is waiting, else the next random address, while the random seed is
// within SeedMax of the space. It reports whether it pushed a seed.
func (p *Policy) Refill() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c.HostShare > 0 && p.pushHost() {
		return true
	}
	if float64(p.randSeeds+p.randPending) >= p.c.SeedMax*float64(p.sp.Size()) {
		return false
	}
	p.pushRandom()
	return true
}

// pushRandom queues the next address of the cyclic order as a seed; p.mu
// is held. An address seeded already (a found host's seed) is a random
// seed that finds nothing new, as if probed: it counts as one at once and
// the next address is taken, so that randPending counts only seeds the
// scheduler holds and a random seed's count stays its place in the order
// (RestoreSeed relies on it).
func (p *Policy) pushRandom() {
	for uint64(p.randSeeds+p.randPending) < p.sp.Size() {
		if p.sched.PushSeed(p.sp.Addr(p.order.Next()), SeedYield, p.tok.Random) {
			p.randPending++
			return
		}
		p.randSeeds++
		p.randDups++
	}
}

// MaybeSeed, after spent probes, pushes the next random seed while the
// random seed stays within RandShare of them and SeedMax of the space and
// one of its last HostWindow addresses answered (where one in hundreds
// answers, a found host's seed teaches far more), and the next host seed while host seeds stay within HostShare of them
// and still teach ports.
func (p *Policy) MaybeSeed(spent uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.randPending == 0 && float64(uint64(p.randSeeds+1)*schedule.SeedPorts) <= p.c.RandShare*float64(spent) &&
		float64(p.randSeeds) < p.c.SeedMax*float64(p.sp.Size()) && p.randSeeds-p.randLastHost < max(p.c.HostWindow, 1) {
		p.pushRandom()
	}
	if p.c.HostShare <= 0 || len(p.hostQueue) == 0 && !p.kinds.waiting() && !p.random.waiting() {
		return
	}
	if float64(p.hostSeedProbes+schedule.SeedPorts) > p.c.HostShare*float64(spent) || !p.hostSeedsPay() {
		return
	}
	p.pushHost()
}

// pushHost queues the next found host waiting as a seed, leaving out those
// seeded since they were found (by the random seed); p.mu is held. It
// reports whether it queued one.
func (p *Policy) pushHost() bool {
	push := func(a uint32) bool { return p.sched.PushSeed(a, SeedYield, p.tok.Host) }
	switch p.c.HostOrder {
	case HostMixed:
		// Even turns are the random order's, odd ones the kinds'; a host
		// the random order takes does not count for its kind (RestoreSeed
		// tells the two apart by the turn).
		random := func(a uint32) bool { p.kinds.drop(a); return push(a) }
		kind := func(a uint32) bool { p.random.drop(a); return push(a) }
		var ok bool
		if p.hostPushed%2 == 0 {
			ok = p.random.pop(random) || p.kinds.pop(kind)
		} else {
			ok = p.kinds.pop(kind) || p.random.pop(random)
		}
		if ok {
			p.hostPushed++
		}
		return ok
	case HostRandom:
		return p.random.pop(push)
	case HostKinds:
		return p.kinds.pop(push)
	}
	for len(p.hostQueue) > 0 {
		a := p.hostQueue[0]
		p.hostQueue = p.hostQueue[1:]
		if p.sched.PushSeed(a, SeedYield, p.tok.Host) {
			return true
		}
	}
	return false
}

// hostFound reports whether found hosts are seeded in the order found.
func (p *Policy) hostFound() bool {
	return p.c.HostOrder == "" || p.c.HostOrder == HostFound
}

// hostSeedsPay reports whether the last HostWindow host seeds taught at
// least one port not known before.
func (p *Policy) hostSeedsPay() bool {
	n := len(p.newPortSeeds)
	if n < p.c.HostWindow {
		return true
	}
	return slices.Contains(p.newPortSeeds[n-p.c.HostWindow:], true)
}

// Swept reports whether port's sweeps are queued.
func (p *Policy) Swept(port uint16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.swept[port]
}

// Stats is what the policy did so far.
func (p *Policy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{RandomSeeds: p.randSeeds, RandomHosts: p.randHosts, RandomDups: p.randDups, HostSeeds: p.hostSeeds, LearnedPorts: len(p.swept)}
}
