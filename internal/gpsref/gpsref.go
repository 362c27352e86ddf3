// Package gpsref is a small, deliberately plain reference implementation of the
// GPS algorithm as specified in GPS.md (features, Phase 1 model and priors
// plan, Phase 2 predictions). It uses ordinary Go maps and favours clarity
// over speed: it is the oracle that the optimised packages are tested against.
//
// Duplicate rows of the same (ip, port) are merged into one service whose
// feature set is the union of the rows' feature sets.
package gpsref

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gpsscan/gps/pkg/row"
)

// mustAddr parses an IPv4 dotted quad; the reference panics on bad input.
func mustAddr(ip string) uint32 {
	a, err := row.ParseAddr(ip)
	if err != nil {
		panic(fmt.Sprintf("gpsref: %v", err))
	}
	return a
}

// mask keeps the top n bits of a.
func mask(a uint32, n int) uint32 {
	if n <= 0 {
		return 0
	}
	return a &^ (uint32(math.MaxUint32) >> uint(n))
}

// hex8 renders an address as 8 lowercase hex digits.
func hex8(a uint32) string { return fmt.Sprintf("%08x", a) }

// dataFeatures returns the application-layer ("data") features of a row,
// possibly with duplicates.
func dataFeatures(r row.Row) []string {
	var d []string
	for _, line := range strings.Split(r.Data, "\n") {
		d = append(d, "http line: "+line)
	}
	d = append(d, "fingerprint: "+r.Fingerprint)
	if r.Window != nil {
		d = append(d, "window: "+strconv.FormatInt(*r.Window, 10))
	}
	if r.Fingerprint == "ssh" {
		d = append(d, "ssh banner: "+r.Data)
	}
	if r.Fingerprint == "tls" {
		if r.TLSCert != nil {
			d = append(d, "tls cert: "+*r.TLSCert)
		}
		for _, o := range r.TLSOIDs {
			// "more than 7 characters" (BigQuery LENGTH counts characters).
			if utf8.RuneCountInString(o) > 7 {
				d = append(d, "tls oid: "+o)
			}
		}
	}
	return d
}

// featureSet returns the features of a row as a set.
func featureSet(r row.Row) map[string]bool {
	a := mustAddr(r.IP)
	set := map[string]bool{}
	for n := 16; n <= 22; n++ {
		set["s"+strconv.Itoa(n)+": "+hex8(mask(a, n))] = true
	}
	set["L4"] = true
	h16 := hex8(mask(a, 16))
	var asn string
	if r.ASN != nil {
		asn = strconv.FormatInt(*r.ASN, 10)
		set["asn: "+asn] = true
	}
	for _, d := range dataFeatures(r) {
		set[d] = true
		set["16:"+d+"-"+h16] = true
		if r.ASN != nil {
			set["asn:"+d+"-asn: "+asn] = true
		}
	}
	return set
}

// Features returns the exact GPS feature strings of one row (a set; sorted,
// no duplicates).
func Features(r row.Row) []string {
	return sortedKeys(featureSet(r))
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// hosts merges rows into services: addr -> port -> union of feature sets.
func hosts(rows []row.Row) map[uint32]map[int]map[string]bool {
	h := map[uint32]map[int]map[string]bool{}
	for _, r := range rows {
		a := mustAddr(r.IP)
		if h[a] == nil {
			h[a] = map[int]map[string]bool{}
		}
		if h[a][r.Port] == nil {
			h[a][r.Port] = map[string]bool{}
		}
		for f := range featureSet(r) {
			h[a][r.Port][f] = true
		}
	}
	return h
}

// ModelRow is one row of the GPS model.
type ModelRow struct {
	IP      string
	P       *int    // p_a: the seed service's port; nil for a single-port host row
	NeededP int     // p_b: the antecedent port (for single-port hosts: that port)
	Count   int     // 0 for single-port rows
	Support int     // 0 for single-port rows
	Hitrate float64 // 0 for single-port rows
	Feature *string // nil for single-port rows
}

// ruleKey packs one rule (p_b, f) -> p_a, with f interned to an integer id,
// into a single integer (ports are 16 bits, ids 32 bits) for fast maps.
func ruleKey(pb, f, pa int) uint64 {
	if pb < 0 || pb > 0xffff || pa < 0 || pa > 0xffff || f < 0 || f > 0xffffffff {
		panic(fmt.Sprintf("gpsref: key out of range: %d %d %d", pb, f, pa))
	}
	return uint64(pb)<<48 | uint64(pa)<<32 | uint64(f)
}

// antKey packs one antecedent (p_b, f) like ruleKey, with p_a = 0.
func antKey(pb, f int) uint64 { return ruleKey(pb, f, 0) }

// Model runs GPS Phase 1 steps 1-5 on the seed rows with the given hitrate
// threshold. Rows are returned sorted by ip (numeric), then P (nil first), then
// NeededP.
func Model(seed []row.Row, hitrate float64) []ModelRow {
	all := hosts(seed)

	// Step 1: kept hosts answer on 2..10 distinct ports.
	kept := map[uint32]map[int]map[string]bool{}
	for a, svcs := range all {
		if len(svcs) >= 2 && len(svcs) <= 10 {
			kept[a] = svcs
		}
	}

	// Feature strings are interned to ids only to keep map keys small.
	ids := map[string]int{}
	id := func(f string) int {
		if i, ok := ids[f]; ok {
			return i
		}
		ids[f] = len(ids)
		return ids[f]
	}

	// Steps 2-3: count(p_b, f, p_a) and support(p_b, f) over kept hosts.
	// Services are merged, so each host contributes at most once to each key.
	count := map[uint64]int{}
	support := map[uint64]int{}
	for _, svcs := range kept {
		for pb, feats := range svcs {
			for f := range feats {
				fi := id(f)
				support[antKey(pb, fi)]++
				for pa := range svcs {
					if pa != pb {
						count[ruleKey(pb, fi, pa)]++
					}
				}
			}
		}
	}

	var out []ModelRow
	// Step 4: best surviving antecedent for every service of a kept host.
	for a, svcs := range kept {
		ip := row.FormatAddr(a)
		for pa := range svcs {
			found := false
			var bestPB, bestC, bestS int
			var bestF string
			var bestH float64
			for pb, feats := range svcs {
				if pb == pa {
					continue
				}
				for f := range feats {
					fi := ids[f]
					c := count[ruleKey(pb, fi, pa)]
					if c <= 2 {
						continue // rule dropped
					}
					s := support[antKey(pb, fi)]
					h := float64(c) / float64(s)
					better := !found ||
						h > bestH ||
						(h == bestH && pb < bestPB) ||
						(h == bestH && pb == bestPB && f < bestF)
					if better {
						found = true
						bestPB, bestF, bestC, bestS, bestH = pb, f, c, s, h
					}
				}
			}
			if found && bestH > hitrate {
				p, f := pa, bestF
				out = append(out, ModelRow{IP: ip, P: &p, NeededP: bestPB,
					Count: bestC, Support: bestS, Hitrate: bestH, Feature: &f})
			}
		}
	}
	// Step 5: single-port hosts.
	for a, svcs := range all {
		if len(svcs) == 1 {
			for p := range svcs {
				out = append(out, ModelRow{IP: row.FormatAddr(a), NeededP: p})
			}
		}
	}

	sort.SliceStable(out, func(i, j int) bool {
		ai, aj := mustAddr(out[i].IP), mustAddr(out[j].IP)
		if ai != aj {
			return ai < aj
		}
		pi, pj := -1, -1
		if out[i].P != nil {
			pi = *out[i].P
		}
		if out[j].P != nil {
			pj = *out[j].P
		}
		if pi != pj {
			return pi < pj
		}
		return out[i].NeededP < out[j].NeededP
	})
	return out
}

// PlanRow is one group of the priors scanning plan: scan Port across Prefix.
type PlanRow struct {
	Port   int
	Prefix string // "a.b.c.d/step"
	Count  int
}

func prefixString(a uint32, step int) string {
	return row.FormatAddr(mask(a, step)) + "/" + strconv.Itoa(step)
}

// Plan groups model rows by (NeededP, ip's /step prefix), keeps groups with
// float64(c)/2^(32-step) > hitrate, sorted by count descending, then port asc,
// then prefix (numeric) asc.
func Plan(model []ModelRow, step int, hitrate float64) []PlanRow {
	type group struct {
		port int
		net  uint32
	}
	counts := map[group]int{}
	for _, m := range model {
		counts[group{m.NeededP, mask(mustAddr(m.IP), step)}]++
	}
	size := math.Ldexp(1, 32-step) // 2^(32-step)
	type kept struct {
		g group
		c int
	}
	var ks []kept
	for g, c := range counts {
		if float64(c)/size > hitrate {
			ks = append(ks, kept{g, c})
		}
	}
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].c != ks[j].c {
			return ks[i].c > ks[j].c
		}
		if ks[i].g.port != ks[j].g.port {
			return ks[i].g.port < ks[j].g.port
		}
		return ks[i].g.net < ks[j].g.net
	})
	out := make([]PlanRow, 0, len(ks))
	for _, k := range ks {
		out = append(out, PlanRow{Port: k.g.port, Prefix: prefixString(k.g.net, step), Count: k.c})
	}
	return out
}

// Predict is GPS Phase 2: returns the distinct "ip:port" predictions, sorted
// (as strings).
func Predict(model []ModelRow, plan []PlanRow, priors []row.Row, seed []row.Row, step int) []string {
	// Rules: distinct (p_b, f) -> set of p_a, from non-single-port model rows.
	type antecedent struct {
		pb int
		f  string
	}
	rules := map[antecedent]map[int]bool{}
	for _, m := range model {
		if m.P == nil || m.Feature == nil {
			continue
		}
		k := antecedent{m.NeededP, *m.Feature}
		if rules[k] == nil {
			rules[k] = map[int]bool{}
		}
		rules[k][*m.P] = true
	}
	// Plan coverage: (prefix string, port).
	type cover struct {
		prefix string
		port   int
	}
	planned := map[cover]bool{}
	for _, pr := range plan {
		planned[cover{pr.Prefix, pr.Port}] = true
	}
	// Seed services of any host.
	type svc struct {
		a uint32
		p int
	}
	inSeed := map[svc]bool{}
	for _, r := range seed {
		inSeed[svc{mustAddr(r.IP), r.Port}] = true
	}

	preds := map[string]bool{}
	for a, svcs := range hosts(priors) {
		for pb, feats := range svcs {
			for f := range feats {
				for pa := range rules[antecedent{pb, f}] {
					if planned[cover{prefixString(a, step), pa}] || inSeed[svc{a, pa}] {
						continue
					}
					preds[row.FormatAddr(a)+":"+strconv.Itoa(pa)] = true
				}
			}
		}
	}
	return sortedKeys(preds)
}
