package lab

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/gpsscan/gps/pkg/pfx2as"
	"github.com/gpsscan/gps/pkg/row"
)

// Independent random streams: the prefixes depend only on (Seed, Slash16s,
// ASes), the seed sample only on (Seed, Slash16s, SeedFrac), so changing the
// number of hosts or the seed fraction does not reshuffle everything else.
const (
	streamTopo uint64 = iota + 1
	streamHosts
	streamSeed
)

// spaceStart is 127.1.0.0, the first address of the first used /16.
const spaceStart uint32 = 127<<24 | 1<<16

// kind is the business of an AS; it sets which devices live there and how
// densely, and how uniform its hosts are.
type kind int

const (
	kindHosting kind = iota
	kindResidential
	kindEnterprise
	kindUniversity
	kindNone // address space announced by nobody
	numKinds
)

// kindParams describe the ASes of one kind. Read-only.
type kindParams struct {
	share    float64    // share of ASes of this kind
	size     float64    // relative amount of address space of one AS
	lenPref  [9]float64 // relative preference for leaf prefixes /16 .. /24
	density  float64    // mean relative number of hosts of a /24
	sigma    float64    // log-normal spread of hosts per /24
	empty    float64    // P(a /24 has no host at all)
	typeBias float64    // P(a host takes the dominant device type of its /24)
	bias24   float64    // P(a variant choice follows the host's /24)
	biasAS   float64    // P(a variant choice follows the host's AS)
}

var kinds = [numKinds]kindParams{
	kindHosting: {share: 0.3, size: 1,
		lenPref: [9]float64{0.3, 0.3, 1, 1, 2, 2, 2, 1, 1},
		density: 8, sigma: 1.1, empty: 0.3, typeBias: 0.35, bias24: 0.3, biasAS: 0.25},
	kindResidential: {share: 0.25, size: 2,
		lenPref: [9]float64{4, 4, 3, 3, 1, 1, 0.2, 0.2, 0.2},
		density: 1.1, sigma: 0.5, empty: 0.05, typeBias: 0.05, bias24: 0.05, biasAS: 0.75},
	kindEnterprise: {share: 0.35, size: 0.4,
		lenPref: [9]float64{0.05, 0.05, 0.2, 0.2, 0.8, 0.8, 3, 3, 3},
		density: 8, sigma: 1.2, empty: 0.5, typeBias: 0.25, bias24: 0.15, biasAS: 0.55},
	kindUniversity: {share: 0.1, size: 0.6,
		lenPref: [9]float64{3, 3, 1, 1, 0.5, 0.5, 0.3, 0.3, 0.3},
		density: 3, sigma: 1, empty: 0.3, typeBias: 0.2, bias24: 0.15, biasAS: 0.4},
	kindNone: {density: 2, sigma: 1, empty: 0.4, typeBias: 0, bias24: 0.1, biasAS: 0.2},
}

// asys is one autonomous system.
type asys struct {
	asn     int64
	kind    kind
	name    string    // e.g. "Nimbus Hosting"
	domain  string    // e.g. "nimbushosting.net"
	size    float64   // relative address space
	mix     []float64 // cumulative weights of the device types living here
	sshPort int       // when set, this AS's server images move ssh here
	cpePort int       // port of this ISP's CPE management (TR-069) service
}

// topo is the routing layout of the used space.
type topo struct {
	n16   int
	ases  []asys
	pfx   []pfx2as.Prefix
	owner []int32 // per /24 of the used space: index in ases, -1 unannounced
}

// kindOf returns the AS (nil if unannounced) and the kind of a /24.
func (t *topo) kindOf(i24 int) (*asys, kind) {
	if o := t.owner[i24]; o >= 0 {
		return &t.ases[o], t.ases[o].kind
	}
	return nil, kindNone
}

// Prefix layout: a /16 is split in halves with probability pSplit[len-16],
// recursively down to /24; each leaf goes to one AS, or to nobody.
var pSplit = [8]float64{0.75, 0.65, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35}

const (
	pUnannounced  = 0.035 // P(a leaf prefix is announced by nobody)
	pMoreSpecific = 0.08  // P(a leaf of /22 or shorter has customer more-specifics)
)

func buildTopo(c Config, devs []device) *topo {
	r := rand.New(rand.NewPCG(uint64(c.Seed), streamTopo))
	t := &topo{n16: c.Slash16s}
	t.ases = makeASes(r, c.ASes, devs)

	type leaf struct {
		base uint32
		l    int
	}
	var leaves []leaf
	var split func(base uint32, l int)
	split = func(base uint32, l int) {
		if l < 24 && r.Float64() < pSplit[l-16] {
			split(base, l+1)
			split(base+1<<(31-l), l+1)
			return
		}
		leaves = append(leaves, leaf{base, l})
	}
	for i := range c.Slash16s {
		split(spaceStart+uint32(i)<<16, 16)
	}
	// Every AS needs a leaf of its own: with many ASes in little space,
	// split the biggest leaves further (halves stay in address order).
	for l := 16; len(leaves) < len(t.ases) && l < 24; l++ {
		more := make([]leaf, 0, len(t.ases))
		for i, lf := range leaves {
			if lf.l == l && len(more)+len(leaves)-i < len(t.ases) {
				more = append(more, leaf{lf.base, l + 1}, leaf{lf.base + 1<<(31-l), l + 1})
			} else {
				more = append(more, lf)
			}
		}
		leaves = more
	}

	// Each AS first gets one leaf of a size its kind likes (each kind walks
	// its own cursor over the leaves in random order), so none is left
	// without space; the other leaves go to ASes by size and preference.
	const free = -2
	leafAS := make([]int32, len(leaves))
	for i := range leafAS {
		leafAS[i] = free
	}
	order := r.Perm(len(leaves))
	var cursor [numKinds]int
	anyFree := 0 // leaves before it are all taken
	for i := range t.ases {
		k := t.ases[i].kind
		j := cursor[k]
		for j < len(order) && (leafAS[order[j]] != free || kinds[k].lenPref[leaves[order[j]].l-16] < 1) {
			j++
		}
		cursor[k] = j
		if j == len(order) {
			// No free leaf of a size this kind likes: take any free one.
			for leafAS[anyFree] != free {
				anyFree++
			}
			leafAS[anyFree] = int32(i)
			continue
		}
		leafAS[order[j]] = int32(i)
	}
	// cum[l-16] chooses an AS for a leaf of length l: big ASes get more,
	// and each kind prefers its own prefix sizes.
	var cum [9][]float64
	for l := range cum {
		cum[l] = make([]float64, len(t.ases))
		s := 0.0
		for i, a := range t.ases {
			s += a.size * kinds[a.kind].lenPref[l]
			cum[l][i] = s
		}
	}
	type ann struct {
		base uint32
		l    int
		as   int32
	}
	anns := make([]ann, 0, len(leaves)+len(leaves)/8)
	for i, lf := range leaves {
		if leafAS[i] == free {
			leafAS[i] = -1
			if r.Float64() >= pUnannounced {
				leafAS[i] = int32(pickCum(cum[lf.l-16], r.Float64()))
			}
		}
		anns = append(anns, ann{lf.base, lf.l, leafAS[i]})
	}
	// Customer more-specifics (/23, /24) inside bigger leaves: longest prefix
	// match then gives them a different origin. taken holds base|len so a
	// prefix is never announced twice.
	taken := map[uint32]bool{}
	for _, lf := range leaves {
		if lf.l > 22 || r.Float64() >= pMoreSpecific {
			continue
		}
		for range 1 + r.IntN(2) {
			l := 23 + r.IntN(2)
			base := lf.base + uint32(r.IntN(1<<(l-lf.l)))<<(32-l)
			if taken[base|uint32(l)] {
				continue
			}
			taken[base|uint32(l)] = true
			anns = append(anns, ann{base, l, int32(pickCum(cum[l-16], r.Float64()))})
		}
	}

	// Paint owners from short to long prefixes: the longest match wins.
	slices.SortStableFunc(anns, func(a, b ann) int { return a.l - b.l })
	t.owner = make([]int32, c.Slash16s<<8)
	for _, a := range anns {
		first := int((a.base - spaceStart) >> 8)
		for i := range 1 << (24 - a.l) {
			t.owner[first+i] = a.as
		}
	}
	slices.SortFunc(anns, func(a, b ann) int { return cmp.Or(cmp.Compare(a.base, b.base), a.l-b.l) })
	for _, a := range anns {
		if a.as >= 0 {
			t.pfx = append(t.pfx, pfx2as.Prefix{Prefix: row.FormatAddr(a.base), Len: a.l, ASN: t.ases[a.as].asn})
		}
	}
	return t
}

// Name parts of ASes. Read-only.
var (
	asWords = []string{"Nimbus", "Vertex", "Orbit", "Blue", "Zenith", "Pixel", "Nova", "Terra", "Swift",
		"Iron", "Cobalt", "Aurora", "Polar", "Summit", "Harbor", "Falcon", "Cedar", "Quantum", "Atlas", "Lumen"}
	asHosting = []string{"Hosting", "Cloud", "Data", "Servers", "Networks", "Host"}
	asResid   = []string{"Telecom", "Fiber", "Cable", "Broadband", "Communications", "Net"}
	asCorp    = []string{"Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Soylent", "Tyrell",
		"Cyberdyne", "Wonka", "Stark", "Wayne", "Oscorp", "Monarch", "Gringotts", "Massive Dynamic"}
	asCorpSuffix = []string{"Corp", "GmbH", "Ltd", "Inc", "S.A.", "AG"}
	asCities     = []string{"Northfield", "Eastbrook", "Lakeside", "Westmoor", "Riverton", "Greendale",
		"Springfield", "Hillcrest", "Fairview", "Oakridge", "São Carlos", "Zürich", "Kraków", "Malmö"}
)

func makeASes(r *rand.Rand, n int, devs []device) []asys {
	var shareCum []float64
	s := 0.0
	for k := range kindNone {
		s += kinds[k].share
		shareCum = append(shareCum, s)
	}
	usedASN := map[int64]bool{}
	usedDomain := map[string]bool{}
	out := make([]asys, n)
	for i := range out {
		a := &out[i]
		// The first ASes cover every kind, so even a small world has them all.
		if i < int(kindNone) {
			a.kind = kind(i)
		} else {
			a.kind = kind(pickCum(shareCum, r.Float64()))
		}
		for a.asn == 0 || usedASN[a.asn] {
			if r.Float64() < 0.6 {
				a.asn = 1000 + r.Int64N(63000) // 16-bit
			} else {
				a.asn = 131072 + r.Int64N(270000) // 32-bit
			}
		}
		usedASN[a.asn] = true
		a.size = kinds[a.kind].size * math.Exp(r.NormFloat64())
		a.name, a.domain = asName(r, a.kind)
		for usedDomain[a.domain] {
			a.domain = fmt.Sprintf("as%d-%s", a.asn, a.domain)
		}
		usedDomain[a.domain] = true
		// Each AS has its own device mix around its kind's.
		a.mix = make([]float64, len(devs))
		s := 0.0
		for j, d := range devs {
			s += d.mix[a.kind] * math.Exp(0.6*r.NormFloat64())
			a.mix[j] = s
		}
		switch a.kind {
		case kindHosting, kindUniversity:
			if r.Float64() < 0.15 {
				a.sshPort = []int{2222, 22222, 2200, 10022, 1024 + r.IntN(64000)}[r.IntN(5)]
			}
		case kindResidential:
			switch x := r.Float64(); {
			case x < 0.7:
				a.cpePort = 7547
			case x < 0.78:
				a.cpePort = 30005
			case x < 0.85:
				a.cpePort = 4567
			case x < 0.9:
				a.cpePort = 8089
			default:
				a.cpePort = 10000 + r.IntN(55000)
			}
		}
	}
	return out
}

func asName(r *rand.Rand, k kind) (name, domain string) {
	w := asWords[r.IntN(len(asWords))]
	switch k {
	case kindHosting:
		s := asHosting[r.IntN(len(asHosting))]
		return w + " " + s, lower(w+s) + []string{".net", ".com", ".io", ".de"}[r.IntN(4)]
	case kindResidential:
		s := asResid[r.IntN(len(asResid))]
		return w + " " + s, lower(w+s) + []string{".net", ".com", ".fr", ".pl", ".br"}[r.IntN(5)]
	case kindEnterprise:
		c := asCorp[r.IntN(len(asCorp))]
		return c + " " + asCorpSuffix[r.IntN(len(asCorpSuffix))], lower(c) + "-corp.com"
	default:
		c := asCities[r.IntN(len(asCities))]
		return "University of " + c, "uni-" + lower(c) + ".edu"
	}
}

// lower maps a name to a DNS label: ASCII lowercase letters and digits only.
func lower(s string) string {
	b := make([]byte, 0, len(s))
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, byte(c))
		case c >= 'A' && c <= 'Z':
			b = append(b, byte(c-'A'+'a'))
		case c == 'ã':
			b = append(b, 'a')
		case c == 'ü':
			b = append(b, 'u')
		case c == 'ó', c == 'ö':
			b = append(b, 'o')
		}
	}
	return string(b)
}

// pickCum returns the index whose cumulative weight first exceeds u*total.
func pickCum(cum []float64, u float64) int {
	x := u * cum[len(cum)-1]
	i, _ := slices.BinarySearch(cum, x)
	// BinarySearch finds the first cum >= x; a zero-width slot at x is skipped.
	for i < len(cum)-1 && cum[i] <= x {
		i++
	}
	return i
}

// allocHosts decides how many hosts each /24 holds: log-normal weights by AS
// kind, one factor per /16 (hosts per /16 vary) and some empty /24s, then
// water-filling so no /24 exceeds its capacity, then systematic rounding so
// the counts add up to exactly hosts.
func allocHosts(r *rand.Rand, t *topo, hosts int) (counts []int16, full bool) {
	n := len(t.owner)
	capacity := 254.0 // .1 .. .254
	if hosts > n*254 {
		capacity, full = 256, true
	}
	f16 := make([]float64, t.n16)
	for i := range f16 {
		f16[i] = math.Exp(0.7*r.NormFloat64() - 0.245)
	}
	w := make([]float64, n)
	sum := 0.0
	for i := range w {
		_, k := t.kindOf(i)
		p := &kinds[k]
		if r.Float64() < p.empty {
			continue
		}
		w[i] = p.density * math.Exp(p.sigma*r.NormFloat64()-p.sigma*p.sigma/2) * f16[i>>8]
		sum += w[i]
	}
	// A trickle everywhere: lone hosts in "empty" space, and room when the
	// world is nearly full.
	eps := 1e-4 * (sum/float64(n) + 1e-9)
	for i := range w {
		w[i] += eps
	}
	target := make([]float64, n)
	capped := make([]bool, n)
	left := float64(hosts)
	for {
		s := 0.0
		for i := range w {
			if !capped[i] {
				s += w[i]
			}
		}
		lambda := left / s
		more := false
		for i := range w {
			if !capped[i] && w[i]*lambda >= capacity {
				capped[i], more = true, true
				left -= capacity
			}
		}
		if !more {
			for i := range w {
				if capped[i] {
					target[i] = capacity
				} else {
					target[i] = w[i] * lambda
				}
			}
			break
		}
	}
	counts = make([]int16, n)
	u := r.Float64()
	cumT, prev, total := 0.0, 0, 0
	for i, x := range target {
		cumT += x
		next := int(math.Floor(cumT + u))
		c := min(max(next-prev, 0), int(capacity))
		prev = next
		counts[i] = int16(c)
		total += c
	}
	// Floating point may leave the total off by a few: settle it.
	for i := r.IntN(n); total != hosts; i = (i + 1) % n {
		switch {
		case total < hosts && float64(counts[i]) < capacity:
			counts[i]++
			total++
		case total > hosts && counts[i] > 0:
			counts[i]--
			total--
		}
	}
	return counts, full
}

// octets picks k distinct last octets of a /24 in increasing order: .1 .. .254,
// or every value when full.
func octets(r *rand.Rand, k int, full bool, dst []uint8) []uint8 {
	lo, span := 1, 254
	if full {
		lo, span = 0, 256
	}
	var in [4]uint64
	set := func(o int) bool {
		if in[o>>6]&(1<<(o&63)) != 0 {
			return false
		}
		in[o>>6] |= 1 << (o & 63)
		return true
	}
	if 2*k <= span {
		for n := 0; n < k; {
			if set(lo + r.IntN(span)) {
				n++
			}
		}
	} else {
		// Dense: pick the ones left out instead.
		var out [4]uint64
		for n := 0; n < span-k; {
			o := lo + r.IntN(span)
			if out[o>>6]&(1<<(o&63)) == 0 {
				out[o>>6] |= 1 << (o & 63)
				n++
			}
		}
		for o := lo; o < lo+span; o++ {
			if out[o>>6]&(1<<(o&63)) == 0 {
				set(o)
			}
		}
	}
	dst = dst[:0]
	for o := range 256 {
		if in[o>>6]&(1<<(o&63)) != 0 {
			dst = append(dst, uint8(o))
		}
	}
	return dst
}
