package lab

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gpsscan/gps/pkg/row"
)

// gen generates the hosts of one world, in address order.
type gen struct {
	c       Config
	r       *rand.Rand
	salt    uint64 // mixes Seed into the hashes behind AS- and /24-wide choices
	t       *topo
	devs    []device
	noneMix []float64 // cumulative device mix of unannounced space
	counts  []int16   // hosts per /24
	full    bool      // the /24s use all 256 addresses
	h       host      // reused for every host
}

func newGen(c Config) *gen {
	devs := newCatalog()
	t := buildTopo(c, devs)
	g := &gen{
		c:    c,
		r:    rand.New(rand.NewPCG(uint64(c.Seed), streamHosts)),
		salt: Mix64(uint64(c.Seed) ^ 0x6c616221),
		t:    t,
		devs: devs,
	}
	s := 0.0
	for _, d := range devs {
		s += d.mix[kindNone]
		g.noneMix = append(g.noneMix, s)
	}
	g.counts, g.full = allocHosts(g.r, t, c.Hosts)
	return g
}

// run calls fn for every host in increasing address order. The host is
// reused: fn must not keep it.
func (g *gen) run(fn func(h *host)) {
	var oct []uint8
	for i24, n := range g.counts {
		if n == 0 {
			continue
		}
		as, k := g.t.kindOf(i24)
		base := spaceStart + uint32(i24)<<8
		oct = octets(g.r, int(n), g.full, oct)
		for _, o := range oct {
			g.makeHost(base|uint32(o), as, k)
			fn(&g.h)
		}
	}
}

// host is one host while it is generated.
type host struct {
	addr    uint32
	ip      string
	as      *asys // nil when unannounced
	k       kind
	kp      *kindParams
	dev     int // index of the device type in the catalog; -1 for a pseudo-service host
	win     int64
	winNull bool
	svcs    []svc
	name    string // hostname, made on first use
	dom     string // web domain, made on first use
}

// svc is one service of a host.
type svc struct {
	port    int
	fp      string
	data    string
	cert    string // set for tls
	oids    []string
	winNull bool
}

func (g *gen) makeHost(addr uint32, as *asys, k kind) {
	h := &g.h
	*h = host{addr: addr, ip: row.FormatAddr(addr), as: as, k: k, kp: &kinds[k], svcs: h.svcs[:0]}
	if g.r.Float64() < g.c.PseudoFrac {
		h.dev = -1
		g.pseudo(h)
	} else {
		h.dev = g.deviceOf(h)
		g.devs[h.dev].gen(g, h)
		if len(h.svcs) == 0 {
			// Every device type should add something; be safe anyway.
			h.add(80, "", "")
		}
		if g.r.Float64() < g.c.NoiseFrac {
			g.noise(h)
		}
	}
	if h.win == 0 {
		h.win = g.window(h, osLinux)
	}
	// Scanners miss the window now and then: for a whole host or one service.
	h.winNull = g.r.Float64() < 0.01
	for i := range h.svcs {
		h.svcs[i].winNull = g.r.Float64() < 0.005
	}
	slices.SortFunc(h.svcs, func(a, b svc) int { return a.port - b.port })
}

// deviceOf chooses the device type: by the AS's mix, or, as dense hosting
// /24s often hold one customer's fleet, the dominant type of the /24.
func (g *gen) deviceOf(h *host) int {
	cum := g.noneMix
	if h.as != nil {
		cum = h.as.mix
	}
	u := g.r.Float64()
	if g.r.Float64() < h.kp.typeBias {
		u = unit(g.hash(uint64(h.addr>>8), "type"))
	}
	return pickCum(cum, u)
}

// rows appends the host's services to dst as rows.
func (h *host) rows(dst []row.Row) []row.Row {
	for i := range h.svcs {
		s := &h.svcs[i]
		r := row.Row{IP: h.ip, Port: s.port, Data: s.data, Fingerprint: s.fp}
		if h.as != nil {
			asn := h.as.asn
			r.ASN = &asn
		}
		if !h.winNull && !s.winNull {
			w := h.win
			r.Window = &w
		}
		if s.fp == "tls" {
			cert := s.cert
			r.TLSCert = &cert
			r.TLSOIDs = slices.Clone(s.oids) // the catalog's slices stay private
		}
		dst = append(dst, r)
	}
	return dst
}

// has reports whether the host already answers on port.
func (h *host) has(port int) bool {
	for i := range h.svcs {
		if h.svcs[i].port == port {
			return true
		}
	}
	return false
}

// add adds a service unless the port is taken (the first one wins).
func (h *host) add(port int, fp, data string) {
	if port < 1 || port > 65535 || h.has(port) {
		return
	}
	h.svcs = append(h.svcs, svc{port: port, fp: fp, data: data})
}

// addTLS adds a TLS service with its certificate.
func (h *host) addTLS(port int, data string, c cert) {
	if port < 1 || port > 65535 || h.has(port) {
		return
	}
	h.svcs = append(h.svcs, svc{port: port, fp: "tls", data: data, cert: c.id, oids: c.oids})
}

// ---- randomness ----

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

// hash mixes the world seed, a number (a /24, an AS) and a key into 64 bits:
// the same inputs give the same choice wherever and whenever it is made.
func (g *gen) hash(n uint64, key string) uint64 {
	x := g.salt ^ Mix64(n+0x9e3779b97f4a7c15)
	for i := 0; i < len(key); i++ {
		x = (x ^ uint64(key[i])) * 0x100000001b3
	}
	return Mix64(x)
}

// Mix64 is the splitmix64 finaliser: a well-mixed hash of x, for draws
// that depend on nothing but their key.
func Mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// biased returns a uniform number for a choice named key. Hosts of one /24 or
// one AS often make the same choice (an ISP deploys one CPE model, a customer
// one server image): that is what lets GPS predict.
func (g *gen) biased(h *host, key string) float64 {
	x := g.r.Float64()
	switch {
	case x < h.kp.bias24:
		return unit(g.hash(uint64(h.addr>>8), key))
	case x < h.kp.bias24+h.kp.biasAS:
		if h.as != nil {
			return unit(g.hash(1<<40|uint64(h.as.asn), key))
		}
		return unit(g.hash(2<<40|uint64(h.addr>>16), key))
	}
	return g.r.Float64()
}

// weighted is a variant with a relative frequency.
type weighted interface{ weight() float64 }

// pickW picks an index of xs by weight with uniform u.
func pickW[T weighted](xs []T, u float64) int {
	tot := 0.0
	for i := range xs {
		tot += xs[i].weight()
	}
	x := u * tot
	for i := range xs {
		if x -= xs[i].weight(); x < 0 {
			return i
		}
	}
	return len(xs) - 1
}

// pick picks a variant, biased to the host's /24 and AS.
func pick[T weighted](g *gen, h *host, key string, xs []T) *T {
	return &xs[pickW(xs, g.biased(h, key))]
}

// pickR picks a variant independently of neighbours.
func pickR[T weighted](g *gen, xs []T) *T { return &xs[pickW(xs, g.r.Float64())] }

// opt is a weighted value, for small inline tables.
type opt[T any] struct {
	w float64
	v T
}

func (x opt[T]) weight() float64 { return x.w }

// one returns a value of a small weighted table, biased like pick.
func one[T any](g *gen, h *host, key string, xs ...opt[T]) T { return pick(g, h, key, xs).v }

// oneR returns a value of a small weighted table, independently.
func oneR[T any](g *gen, xs ...opt[T]) T { return pickR(g, xs).v }

// ---- operating systems and TCP windows ----

type osID int

const (
	osLinux  osID = iota // current kernels
	osLinux3             // 3.x kernels: CentOS 7, older appliances
	osEmbedded
	osWindows
	osWindowsOld
	osBSD
	osCisco
)

// tcpWindows are the SYN-ACK windows of each OS family. Read-only.
var tcpWindows = [...][]opt[int64]{
	osLinux:      {{6, 64240}, {1, 65160}, {2, 29200}, {1, 28960}},
	osLinux3:     {{5, 29200}, {2, 14600}, {1, 28960}},
	osEmbedded:   {{4, 5840}, {3, 14600}, {1, 4380}, {1, 2920}, {1, 5792}, {1, 65535}},
	osWindows:    {{3, 65535}, {2, 8192}, {1, 64240}},
	osWindowsOld: {{5, 8192}, {1, 16384}, {1, 65535}},
	osBSD:        {{5, 65535}, {1, 65228}, {1, 16384}},
	osCisco:      {{3, 4128}, {1, 8192}, {1, 16384}},
}

// window picks the host's TCP window for an OS family.
func (g *gen) window(h *host, os osID) int64 {
	return pick(g, h, "win"+strconv.Itoa(int(os)), tcpWindows[os]).v
}

// ---- names ----

// Word lists for names. Read-only.
var (
	words = []string{"alpha", "amber", "apex", "aqua", "atlas", "birch", "bright", "cedar", "cobalt", "coral",
		"crest", "delta", "ember", "falcon", "fern", "flint", "forge", "fox", "garnet", "glen", "harbor", "hawk",
		"haven", "iris", "ivy", "jade", "juniper", "kite", "lark", "lumen", "maple", "mesa", "mint", "nova", "oak",
		"onyx", "orchid", "pine", "pixel", "quartz", "raven", "reef", "ridge", "river", "sage", "shore", "sierra",
		"slate", "spruce", "summit", "terra", "tide", "vale", "willow", "zephyr"}
	tlds = []string{".com", ".com", ".com", ".net", ".org", ".de", ".fr", ".io", ".co.uk", ".nl", ".ru", ".com.br", ".jp", ".pl"}
)

// dashed renders the address as 127-1-2-3.
func (h *host) dashed() string { return strings.ReplaceAll(h.ip, ".", "-") }

// hostname is the host's DNS name, unique per host, in its AS's style.
func (g *gen) hostname(h *host) string {
	if h.name != "" {
		return h.name
	}
	if h.as == nil {
		h.name = "ip-" + h.dashed() + ".localdomain"
		return h.name
	}
	style := g.hash(1<<40|uint64(h.as.asn), "ptr") % 3
	d := h.as.domain
	switch h.k {
	case kindHosting:
		h.name = []string{"vps-" + h.dashed() + "." + d, "srv" + strconv.Itoa(int(h.addr&0xfffff)) + "." + d,
			"static." + revIP(h.addr) + ".clients." + d}[style]
	case kindResidential:
		h.name = []string{"host-" + h.dashed() + ".dyn." + d, h.dashed() + ".adsl." + d,
			"cpe-" + h.dashed() + ".cust." + d}[style]
	case kindEnterprise:
		h.name = []string{"srv" + strconv.Itoa(int(h.addr&0xffff)) + "." + d, "host" + strconv.Itoa(int(h.addr&0xffff)) + ".dmz." + d,
			"gw-" + h.dashed() + "." + d}[style]
	default:
		h.name = []string{"h" + strconv.Itoa(int(h.addr&0xffff)) + ".cs." + d, "pc-" + h.dashed() + ".net." + d,
			"lab" + strconv.Itoa(int(h.addr&0xffff)) + ".phys." + d}[style]
	}
	return h.name
}

func revIP(a uint32) string {
	return strconv.Itoa(int(a&0xff)) + "." + strconv.Itoa(int(a>>8&0xff)) + "." + strconv.Itoa(int(a>>16&0xff)) + "." + strconv.Itoa(int(a>>24))
}

// domain is a web site name served by the host (its customer's domain).
func (g *gen) domain(h *host) string {
	if h.dom == "" {
		x := g.hash(uint64(h.addr), "domain")
		h.dom = words[x%uint64(len(words))] + words[x>>8%uint64(len(words))]
		if x>>16%3 == 0 {
			h.dom += strconv.Itoa(int(x >> 20 % 1000))
		}
		h.dom += tlds[x>>32%uint64(len(tlds))]
	}
	return h.dom
}

// token returns n random characters of alphabet.
func (g *gen) token(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.r.IntN(len(alphabet))]
	}
	return string(b)
}

const (
	hexdigits = "0123456789abcdef"
	alnumUp   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	alnumLow  = "abcdefghijklmnopqrstuvwxyz0123456789"
)

// scanTime is when the world was "scanned"; dates in banners fall in the
// week after it.
var scanTime = time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)

func (g *gen) when() time.Time { return scanTime.Add(time.Duration(g.r.Int64N(7*86400)) * time.Second) }

// httpDate is a per-host unique Date header value.
func (g *gen) httpDate() string { return g.when().Format("Mon, 02 Jan 2006 15:04:05 GMT") }

// mailDate is the date of SMTP greetings.
func (g *gen) mailDate() string { return g.when().Format("Mon, 02 Jan 2006 15:04:05 -0700") }

// ---- pseudo-services and noise ----

// pseudoVariants are what middleboxes answer on every port. Read-only.
var pseudoVariants = []opt[[2]string]{
	{50, [2]string{"", ""}},
	{15, [2]string{"unknown", ""}},
	{15, [2]string{"http", "HTTP/1.1 400 Bad Request\nConnection: close\nContent-Length: 0"}},
	{10, [2]string{"unknown", "Connection refused by policy"}},
	{5, [2]string{"http", "HTTP/1.0 403 Forbidden\nServer: BigIP\nConnection: close"}},
	{5, [2]string{"unknown", "\u0000\u0000\u0000\u0000"}},
}

// pseudo makes a middlebox answering identically on 100-400 random ports.
func (g *gen) pseudo(h *host) {
	v := pickR(g, pseudoVariants).v
	h.win = oneR(g, opt[int64]{3, 65535}, opt[int64]{2, 8192}, opt[int64]{2, 14600}, opt[int64]{1, 4128}, opt[int64]{1, 5840})
	// h.add checks ports one by one; a bitmap keeps hundreds of them cheap.
	var taken [1024]uint64
	for n := 100 + g.r.IntN(301); len(h.svcs) < n; {
		p := 1 + g.r.IntN(65535)
		if taken[p>>6]&(1<<(p&63)) == 0 {
			taken[p>>6] |= 1 << (p & 63)
			h.svcs = append(h.svcs, svc{port: p, fp: v[0], data: v[1]})
		}
	}
}

// noise adds 1-2 random services on random, mostly high, ports.
func (g *gen) noise(h *host) {
	for range 1 + g.r.IntN(2) {
		port := 1024 + g.r.IntN(64512)
		if g.chance(0.15) {
			port = 1 + g.r.IntN(1023)
		}
		word := words[g.r.IntN(len(words))]
		switch x := g.r.Float64(); {
		case x < 0.3:
			h.add(port, "unknown", "")
		case x < 0.45:
			h.add(port, "", "")
		case x < 0.7:
			h.add(port, "http", "HTTP/1.1 200 OK\nServer: "+word+"/"+strconv.Itoa(g.r.IntN(4))+"."+strconv.Itoa(g.r.IntN(20))+
				"\nContent-Type: text/html")
		case x < 0.8:
			h.add(port, "ssh", "SSH-2.0-"+word+"_"+strconv.Itoa(1+g.r.IntN(9)))
		default:
			h.add(port, "unknown", word+" "+g.token(8+g.r.IntN(24), alnumLow))
		}
	}
}
