package lab

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/gpsscan/gps/pkg/row"
)

// streamChurn is the random stream of the changes after cycle 0: its own,
// so a world with cycles has the very cycle 0 of the same world without.
const streamChurn uint64 = 0x63687572 // "chur"

// churnRate is what happens to the hosts of one kind of AS in one cycle,
// at Config.Churn 1. Every number is a probability per cycle.
type churnRate struct {
	hostGone float64 // a host goes away with all its services
	hostNew  float64 // per host: a new host appears in its /24
	move     float64 // a host moves to another free address of its prefix (DHCP)
	svcGone  float64 // per service: it goes away (its host stays)
	svcNew   float64 // per host: a new service of its device type appears (hosts have 2-3 services: about svcGone's number)
	change   float64 // per service whose banner names a version: the version is bumped
	dark     float64 // per /24 with hosts: it goes dark for 1..4 cycles, then comes back as it was
	up       float64 // per empty /24: it comes up with 1..4 new hosts
}

// churnRates are the rates per kind of AS. A cycle stands for about a day
// of a real Internet, where longitudinal scans see a few percent of
// services change:
//
//   - residential ISPs hand out addresses by DHCP or PPPoE and renumber
//     customers every few days to weeks, so moves dominate (6 % of hosts a
//     cycle); devices there seldom change their software;
//   - hosting providers spin virtual machines up and down and open and close
//     ports, so services come and go most there (1.5 % of services go a
//     cycle, and 3 % of hosts gain one, about as many), and software is
//     updated most (2 % of versions);
//   - enterprises and universities run stable, statically addressed
//     servers: a few tenths of a percent of anything;
//   - unannounced space is the least stable: whatever lives there comes and
//     goes (2 % of hosts each way).
//
// In a default world about 4 % of the services appear, go or change in a
// cycle, about as many appear as go, and about 2 % of the hosts move
// (docs/worlds.md). Read-only.
var churnRates = [numKinds]churnRate{
	kindHosting:     {hostGone: 0.010, hostNew: 0.012, move: 0.002, svcGone: 0.015, svcNew: 0.030, change: 0.020, dark: 0.002, up: 0.004},
	kindResidential: {hostGone: 0.010, hostNew: 0.010, move: 0.060, svcGone: 0.010, svcNew: 0.020, change: 0.005, dark: 0.003, up: 0.002},
	kindEnterprise:  {hostGone: 0.002, hostNew: 0.002, move: 0.001, svcGone: 0.003, svcNew: 0.008, change: 0.005, dark: 0.001, up: 0.0005},
	kindUniversity:  {hostGone: 0.004, hostNew: 0.004, move: 0.004, svcGone: 0.005, svcNew: 0.012, change: 0.007, dark: 0.001, up: 0.0005},
	kindNone:        {hostGone: 0.020, hostNew: 0.020, move: 0.010, svcGone: 0.010, svcNew: 0.025, change: 0.005, dark: 0.005, up: 0.001},
}

// Causes of changes: why a service was added or deleted, a host moved or a
// banner changed. They are written with each change, for readers and
// evaluations that tell kinds of churn apart.
const (
	CauseNewService  = "new-service"  // add: a new service on a host
	CauseNewHost     = "new-host"     // add: a host appeared
	CauseUp          = "up"           // add: a /24 came up with new hosts
	CauseBack        = "back"         // add: a dark /24 came back as it was
	CauseGoneService = "gone-service" // del: a service went away
	CauseGoneHost    = "gone-host"    // del: a host went away
	CauseDark        = "dark"         // del: a /24 went dark
	CauseDHCP        = "dhcp"         // move: a new lease in the same prefix
	CauseVersion     = "version"      // change: a software version in the banner moved on
)

// chost is a host while the churn of its world is made.
type chost struct {
	addr uint32
	as   *asys
	k    kind
	dev  int       // device type, -1 for a pseudo-service host
	rows []row.Row // by port
	gone bool
}

// churner makes the changes of every cycle of a world.
type churner struct {
	g     gen // the world's generator on the churn stream
	scale float64
	at    map[uint32]*chost // every present host, dark ones included
	n24   []int16           // present hosts per /24, dark ones included
	pfxOf []int32           // per /24: index of its longest announced prefix, -1 none
	pfx   []uint32          // per prefix: its first /24 index and, above 16 bits, its length
	dark  map[int]int       // dark /24 -> the cycle it comes back in
	stash map[int][]*chost  // the hosts of a dark /24
	lo    int               // lowest last octet of a host
	span  int               // how many last octets a host may have
	stats *churnStats       // tallies for tests; nil: none
	out   []Change          // the current cycle's changes
}

// churnStats tallies, per kind, the chances each rate had and how often it
// happened, so tests can hold the realised rates to the configured ones.
type churnStats struct {
	tries, hits [numKinds]churnRate
}

// newChurner starts from the hosts of w (devs: the device type of each, in
// address order).
func newChurner(g *gen, w *World, devs []int) *churner {
	cg := *g
	cg.r = rand.New(rand.NewPCG(uint64(g.c.Seed), streamChurn))
	cg.h = host{}
	scale := max(g.c.Churn, 0)
	ch := &churner{g: cg, scale: scale, at: make(map[uint32]*chost, len(devs)), n24: make([]int16, len(g.t.owner)),
		dark: map[int]int{}, stash: map[int][]*chost{}, lo: 1, span: 254}
	if g.full {
		ch.lo, ch.span = 0, 256
	}
	var cur *chost
	for _, r := range w.Truth {
		a, _ := row.ParseAddr(r.IP)
		if cur == nil || cur.addr != a {
			i24 := int((a - spaceStart) >> 8)
			as, k := g.t.kindOf(i24)
			cur = &chost{addr: a, as: as, k: k, dev: devs[len(ch.at)]}
			ch.at[a] = cur
			ch.n24[i24]++
		}
		cur.rows = append(cur.rows, r)
	}
	ch.paintPrefixes(w)
	return ch
}

// paintPrefixes finds the longest announced prefix of every /24, where a
// host may move to.
func (ch *churner) paintPrefixes(w *World) {
	ch.pfxOf = make([]int32, len(ch.n24))
	for i := range ch.pfxOf {
		ch.pfxOf[i] = -1
	}
	order := make([]int, len(w.Pfx2AS))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return w.Pfx2AS[a].Len - w.Pfx2AS[b].Len })
	ch.pfx = make([]uint32, len(w.Pfx2AS))
	for _, i := range order {
		p := w.Pfx2AS[i]
		base, err := row.ParseAddr(p.Prefix)
		if err != nil || base < spaceStart || p.Len > 24 {
			continue
		}
		first := int((base - spaceStart) >> 8)
		ch.pfx[i] = uint32(first) | uint32(p.Len)<<24
		for j := first; j < first+1<<(24-p.Len) && j < len(ch.pfxOf); j++ {
			ch.pfxOf[j] = int32(i)
		}
	}
}

// p is a rate scaled by Config.Churn, at most 1.
func (ch *churner) p(rate float64) float64 { return min(rate*ch.scale, 1) }

// try draws one chance of the rate picked by field for a host of kind k.
func (ch *churner) try(k kind, field func(*churnRate) *float64) bool {
	hit := ch.g.r.Float64() < ch.p(*field(&churnRates[k]))
	if ch.stats != nil {
		*field(&ch.stats.tries[k])++
		if hit {
			*field(&ch.stats.hits[k])++
		}
	}
	return hit
}

func fHostGone(r *churnRate) *float64 { return &r.hostGone }
func fHostNew(r *churnRate) *float64  { return &r.hostNew }
func fMove(r *churnRate) *float64     { return &r.move }
func fSvcGone(r *churnRate) *float64  { return &r.svcGone }
func fSvcNew(r *churnRate) *float64   { return &r.svcNew }
func fChange(r *churnRate) *float64   { return &r.change }
func fDark(r *churnRate) *float64     { return &r.dark }
func fUp(r *churnRate) *float64       { return &r.up }

// cycles makes the changes of cycles 1..n, and their counts.
func (ch *churner) cycles(n int) ([][]Change, []CycleCounts) {
	changes := make([][]Change, 0, n)
	counts := make([]CycleCounts, 0, n)
	services := 0
	for _, h := range ch.at {
		services += len(h.rows)
	}
	for k := 1; k <= n; k++ {
		ch.out = nil
		ch.cycle(k)
		c := CountChanges(ch.out)
		services += c.Added - c.Gone
		c.Cycle, c.Services = k, services
		changes = append(changes, ch.out)
		counts = append(counts, c)
	}
	return changes, counts
}

// cycle makes the changes of cycle k, in the order they apply: dark /24s
// coming back, each host's changes in address order, /24s going dark, /24s
// coming up.
func (ch *churner) cycle(k int) {
	for _, i24 := range sortedKeys(ch.dark) {
		if ch.dark[i24] == k {
			ch.back(i24)
		}
	}
	hosts := make([]*chost, 0, len(ch.at))
	for _, h := range ch.at {
		if _, dark := ch.dark[ch.i24(h.addr)]; !dark {
			hosts = append(hosts, h)
		}
	}
	slices.SortFunc(hosts, func(a, b *chost) int { return cmpAddr(a.addr, b.addr) })
	for _, h := range hosts {
		ch.host(h)
	}
	var lit []int
	for i24, n := range ch.n24 {
		if _, dark := ch.dark[i24]; dark {
			continue
		}
		_, kd := ch.g.t.kindOf(i24)
		switch {
		case n > 0 && ch.try(kd, fDark):
			ch.goDark(i24, k+1+ch.g.r.IntN(4))
		case n == 0 && ch.try(kd, fUp):
			lit = append(lit, i24)
		}
	}
	for _, i24 := range lit {
		for range 1 + ch.g.r.IntN(4) {
			if a, ok := ch.freeIn(i24); ok {
				ch.newHost(a, CauseUp)
			}
		}
	}
}

// host makes one host's changes: it goes, or it may move, lose services,
// have versions bumped, gain a service, and a new neighbour.
func (ch *churner) host(h *chost) {
	k := h.k
	if ch.try(k, fHostGone) {
		ch.remove(h, CauseGoneHost)
		return
	}
	if ch.try(k, fMove) {
		if to, ok := ch.moveTarget(h.addr); ok {
			ch.move(h, to)
		}
	}
	if h.dev >= 0 { // a pseudo-service host answers alike on every port: it changes only whole
		for i := 0; i < len(h.rows); i++ {
			if len(h.rows) > 1 && ch.try(k, fSvcGone) {
				ch.out = append(ch.out, Change{Op: OpDel, Cause: CauseGoneService, IP: h.rows[i].IP, Port: h.rows[i].Port})
				h.rows = slices.Delete(h.rows, i, i+1)
				i--
			}
		}
		for i := range h.rows {
			if data, ok := bumpVersion(h.rows[i].Data); ok && ch.try(k, fChange) {
				h.rows[i].Data = data
				r := h.rows[i]
				ch.out = append(ch.out, Change{Op: OpChange, Cause: CauseVersion, Row: &r})
			}
		}
		if ch.try(k, fSvcNew) {
			ch.newService(h)
		}
	}
	if ch.try(k, fHostNew) {
		if a, ok := ch.freeIn(ch.i24(h.addr)); ok {
			ch.newHost(a, CauseNewHost)
		}
	}
}

func (ch *churner) i24(a uint32) int { return int((a - spaceStart) >> 8) }

// remove deletes every service of h.
func (ch *churner) remove(h *chost, cause string) {
	for _, r := range h.rows {
		ch.out = append(ch.out, Change{Op: OpDel, Cause: cause, IP: r.IP, Port: r.Port})
	}
	delete(ch.at, h.addr)
	ch.n24[ch.i24(h.addr)]--
	h.gone = true
}

// move moves h, services and all, to the free address to.
func (ch *churner) move(h *chost, to uint32) {
	ip := row.FormatAddr(to)
	ch.out = append(ch.out, Change{Op: OpMove, Cause: CauseDHCP, IP: h.rows[0].IP, To: ip})
	delete(ch.at, h.addr)
	ch.n24[ch.i24(h.addr)]--
	h.addr = to
	ch.at[to] = h
	ch.n24[ch.i24(to)]++
	for i := range h.rows {
		h.rows[i].IP = ip
	}
}

// moveTarget picks a free address in the longest announced prefix of a
// (the same origin AS, so the rows' asn holds), or in its /24 when it is
// unannounced.
func (ch *churner) moveTarget(a uint32) (uint32, bool) {
	i24 := ch.i24(a)
	pi := ch.pfxOf[i24]
	first, n := i24, 1
	if pi >= 0 {
		first, n = int(ch.pfx[pi]&0xffffff), 1<<(24-ch.pfx[pi]>>24)
	}
	for range 8 {
		j := first + ch.g.r.IntN(n)
		if j >= len(ch.pfxOf) || ch.pfxOf[j] != pi {
			continue // a more-specific of another origin
		}
		if to, ok := ch.freeIn(j); ok && to != a {
			return to, true
		}
	}
	return 0, false
}

// freeIn picks a free host address of a /24 that is not dark.
func (ch *churner) freeIn(i24 int) (uint32, bool) {
	if _, dark := ch.dark[i24]; dark || int(ch.n24[i24]) >= ch.span {
		return 0, false
	}
	base := spaceStart + uint32(i24)<<8
	for range 16 {
		a := base | uint32(ch.lo+ch.g.r.IntN(ch.span))
		if _, taken := ch.at[a]; !taken {
			return a, true
		}
	}
	return 0, false
}

// newHost makes a host of the world's kind at a, as the generator would.
func (ch *churner) newHost(a uint32, cause string) {
	i24 := ch.i24(a)
	as, k := ch.g.t.kindOf(i24)
	ch.g.makeHost(a, as, k)
	h := &chost{addr: a, as: as, k: k, dev: ch.g.h.dev, rows: ch.g.h.rows(nil)}
	ch.at[a] = h
	ch.n24[i24]++
	for i := range h.rows {
		r := h.rows[i]
		ch.out = append(ch.out, Change{Op: OpAdd, Cause: cause, Row: &r})
	}
}

// newService adds to h a service its device type runs (a port it does not
// answer on yet), or, when the type has none left, a random one as noise
// hosts have.
func (ch *churner) newService(h *chost) {
	g := &ch.g
	s := &g.h
	*s = host{addr: h.addr, ip: h.rows[0].IP, as: h.as, k: h.k, kp: &kinds[h.k], dev: h.dev, svcs: s.svcs[:0]}
	g.devs[h.dev].gen(g, s)
	fresh := func() []svc {
		var out []svc
		for _, v := range s.svcs {
			if !slices.ContainsFunc(h.rows, func(r row.Row) bool { return r.Port == v.port }) {
				out = append(out, v)
			}
		}
		return out
	}
	cand := fresh()
	if len(cand) == 0 {
		s.svcs = s.svcs[:0]
		g.noise(s)
		cand = fresh()
	}
	if len(cand) == 0 {
		return
	}
	// The new service shares its host's TCP window.
	s.svcs = append(s.svcs[:0], cand[g.r.IntN(len(cand))])
	s.winNull = true
	for _, r := range h.rows {
		if r.Window != nil {
			s.win, s.winNull = *r.Window, false
			break
		}
	}
	r := s.rows(nil)[0]
	i, _ := slices.BinarySearchFunc(h.rows, r.Port, func(x row.Row, p int) int { return x.Port - p })
	h.rows = slices.Insert(h.rows, i, r)
	ch.out = append(ch.out, Change{Op: OpAdd, Cause: CauseNewService, Row: &r})
}

// goDark takes the hosts of a /24 off until cycle back.
func (ch *churner) goDark(i24, back int) {
	base := spaceStart + uint32(i24)<<8
	var hs []*chost
	for o := range 256 {
		if h := ch.at[base|uint32(o)]; h != nil {
			hs = append(hs, h)
			for _, r := range h.rows {
				ch.out = append(ch.out, Change{Op: OpDel, Cause: CauseDark, IP: r.IP, Port: r.Port})
			}
		}
	}
	ch.dark[i24] = back
	ch.stash[i24] = hs
}

// back brings a dark /24 back with the hosts it had.
func (ch *churner) back(i24 int) {
	for _, h := range ch.stash[i24] {
		for i := range h.rows {
			r := h.rows[i]
			ch.out = append(ch.out, Change{Op: OpAdd, Cause: CauseBack, Row: &r})
		}
	}
	delete(ch.dark, i24)
	delete(ch.stash, i24)
}

// bumpVersion moves on the first software version of a banner: the last
// number of the first "1.2" or "1.2.3" that follows a '/', '_', '-', 'v'
// or a space ("nginx/1.18.0" -> "nginx/1.18.1", "OpenSSH_8.9p1" ->
// "OpenSSH_8.10p1"). Protocol versions ("HTTP/1.1", "SSH-2.0") are not
// software, and addresses and dates are never taken for versions: they
// have four numbers or other separators.
func bumpVersion(data string) (string, bool) {
	for i := 1; i < len(data); i++ {
		if !isDigit(data[i]) || isDigit(data[i-1]) || !strings.ContainsRune("/_-v ", rune(data[i-1])) {
			continue
		}
		// j ends the dotted run of numbers starting at i; last starts its last number.
		j, parts, last := i, 0, i
		for {
			s := j
			for j < len(data) && isDigit(data[j]) {
				j++
			}
			if j == s || j-s > 6 {
				break
			}
			parts, last = parts+1, s
			if j+1 < len(data) && data[j] == '.' && isDigit(data[j+1]) {
				j++
				continue
			}
			break
		}
		if parts < 2 || parts > 3 || protocolBefore(data, i-1) {
			i = j
			continue
		}
		n, _ := strconv.Atoi(data[last:j])
		num := strconv.Itoa(n + 1)
		for len(num) < j-last { // keeps "003" three digits wide
			num = "0" + num
		}
		return data[:last] + num + data[j:], true
	}
	return data, false
}

// protocolBefore reports whether the word ending at data[sep] (exclusive)
// names a protocol, whose version is not a piece of software's.
func protocolBefore(data string, sep int) bool {
	w := sep
	for w > 0 && data[w-1] >= 'A' && data[w-1] <= 'Z' {
		w--
	}
	if w > 0 && (data[w-1] >= 'a' && data[w-1] <= 'z' || isDigit(data[w-1])) {
		return false // the end of a longer name, as in "OpenSSH_"
	}
	switch data[w:sep] {
	case "HTTP", "SSH", "RTSP", "SIP", "RFB", "ICAP", "AMQP":
		return true
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func cmpAddr(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sortedKeys(m map[int]int) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
