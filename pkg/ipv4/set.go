// Package ipv4 holds what keeps a scanner inside the address space it may
// touch, after ZMap's lib/constraint.c and lib/blocklist.c: sets of CIDR
// prefixes read from lists, a Policy of an allow list (required) and block
// lists (the IANA special-purpose ranges always among them), the count and
// the i-th address of what is allowed, and the full-cycle pseudo-random
// permutation ZMap walks its targets in (src/cyclic.c).
//
// Where ZMap paints a prefix tree (last write wins), a Set here is a sorted
// list of disjoint address ranges: membership is a binary search, and a
// Policy is "in the allow list and in no block list" (a block always wins).
package ipv4

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/gpsscan/gps/pkg/row"
)

// ErrBadPrefix is wrapped by every parse error of a prefix or an address.
var ErrBadPrefix = errors.New("bad prefix")

// Prefix is a CIDR prefix: the first address and the prefix length.
type Prefix struct {
	Addr uint32
	Bits int // 0..32
}

// ParsePrefix parses "a.b.c.d/n" or a single address "a.b.c.d" (a /32). A
// prefix with host bits set ("10.0.0.1/8") is refused: in an allow or block
// list it is most likely a typo, and guessing could widen a scan.
func ParsePrefix(s string) (Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return Prefix{}, fmt.Errorf("%w: %q is not an IPv4 address or prefix", ErrBadPrefix, s)
		}
		return Prefix{Addr: fromAddr(a), Bits: 32}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return Prefix{}, fmt.Errorf("%w: %q is not an IPv4 prefix", ErrBadPrefix, s)
	}
	if m := p.Masked(); m != p {
		return Prefix{}, fmt.Errorf("%w: %q has host bits set (the prefix is %s)", ErrBadPrefix, s, m)
	}
	return Prefix{Addr: fromAddr(p.Addr()), Bits: p.Bits()}, nil
}

// MustParsePrefix is ParsePrefix for constants; it panics on a bad prefix.
func MustParsePrefix(s string) Prefix {
	p, err := ParsePrefix(s)
	if err != nil {
		panic(err)
	}
	return p
}

func fromAddr(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// FormatAddr renders an address as a dotted quad.
func FormatAddr(a uint32) string {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}).String()
}

// String renders the prefix as "a.b.c.d/n".
func (p Prefix) String() string { return fmt.Sprintf("%s/%d", FormatAddr(p.Addr), p.Bits) }

// Mask returns the netmask of the prefix length.
func (p Prefix) Mask() uint32 {
	if p.Bits <= 0 {
		return 0
	}
	return ^uint32(0) << (32 - p.Bits)
}

// First is the first address of the prefix.
func (p Prefix) First() uint32 { return p.Addr & p.Mask() }

// Last is the last address of the prefix.
func (p Prefix) Last() uint32 { return p.Addr | ^p.Mask() }

// Size is the number of addresses of the prefix.
func (p Prefix) Size() uint64 { return 1 << (32 - p.Bits) }

// Contains reports whether a is in the prefix.
func (p Prefix) Contains(a uint32) bool { return a&p.Mask() == p.First() }

// span is an inclusive range of addresses.
type span struct{ lo, hi uint32 }

// Set is a set of IPv4 addresses, kept as sorted, disjoint, non-adjacent
// ranges. The zero Set is empty. Set operations return new sets; a Set is
// safe for concurrent reads. A Set built from prefixes (NewSet, Add, Union
// of such sets, the parsers) also remembers them as given, so a Policy can
// tell an explicitly allowed 127.0.0.0/8 from a 0.0.0.0/0 that covers it.
type Set struct {
	r   []span
	src []Prefix // the prefixes as given; nil after Minus and Intersect
}

// NewSet returns the union of the prefixes.
func NewSet(ps ...Prefix) Set {
	r := make([]span, 0, len(ps))
	for _, p := range ps {
		r = append(r, span{p.First(), p.Last()})
	}
	return Set{normalize(r), slices.Clone(ps)}
}

// normalize sorts and merges overlapping or adjacent ranges.
func normalize(r []span) []span {
	if len(r) == 0 {
		return nil
	}
	slices.SortFunc(r, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
	out := r[:1]
	for _, s := range r[1:] {
		last := &out[len(out)-1]
		if uint64(s.lo) <= uint64(last.hi)+1 {
			last.hi = max(last.hi, s.hi)
			continue
		}
		out = append(out, s)
	}
	return out
}

// Add adds a prefix to the set.
func (s *Set) Add(p Prefix) {
	s.r = normalize(append(slices.Clone(s.r), span{p.First(), p.Last()}))
	s.src = append(slices.Clip(s.src), p)
}

// Empty reports whether the set has no address.
func (s Set) Empty() bool { return len(s.r) == 0 }

// Count is the number of addresses in the set (up to 2^32).
func (s Set) Count() uint64 {
	var n uint64
	for _, x := range s.r {
		n += uint64(x.hi-x.lo) + 1
	}
	return n
}

// find returns the index of the range holding a, or -1.
func (s Set) find(a uint32) int {
	i, _ := slices.BinarySearchFunc(s.r, a, func(x span, a uint32) int {
		switch {
		case x.hi < a:
			return -1
		case x.lo > a:
			return 1
		}
		return 0
	})
	if i < len(s.r) && s.r[i].lo <= a && a <= s.r[i].hi {
		return i
	}
	return -1
}

// Contains reports whether a is in the set.
func (s Set) Contains(a uint32) bool { return s.find(a) >= 0 }

// ContainsPrefix reports whether every address of p is in the set.
func (s Set) ContainsPrefix(p Prefix) bool {
	i := s.find(p.First())
	return i >= 0 && s.r[i].hi >= p.Last()
}

// Union is the set of addresses in s or o.
func (s Set) Union(o Set) Set {
	return Set{normalize(append(slices.Clone(s.r), o.r...)), append(slices.Clip(s.src), o.src...)}
}

// Minus is the set of addresses in s and not in o.
func (s Set) Minus(o Set) Set {
	var out []span
	j := 0
	for _, x := range s.r {
		lo := uint64(x.lo)
		hi := uint64(x.hi)
		for j < len(o.r) && uint64(o.r[j].hi) < lo {
			j++
		}
		for k := j; k < len(o.r) && uint64(o.r[k].lo) <= hi && lo <= hi; k++ {
			b := o.r[k]
			if uint64(b.lo) > lo {
				out = append(out, span{uint32(lo), b.lo - 1})
			}
			lo = uint64(b.hi) + 1
		}
		if lo <= hi {
			out = append(out, span{uint32(lo), uint32(hi)})
		}
	}
	return Set{r: out}
}

// Intersect is the set of addresses in s and in o.
func (s Set) Intersect(o Set) Set {
	var out []span
	i, j := 0, 0
	for i < len(s.r) && j < len(o.r) {
		a, b := s.r[i], o.r[j]
		lo, hi := max(a.lo, b.lo), min(a.hi, b.hi)
		if lo <= hi {
			out = append(out, span{lo, hi})
		}
		if a.hi < b.hi {
			i++
		} else {
			j++
		}
	}
	return Set{r: out}
}

// Prefixes returns the set as the fewest CIDR prefixes, in address order.
func (s Set) Prefixes() []Prefix {
	var out []Prefix
	for _, x := range s.r {
		out = appendRange(out, x.lo, x.hi)
	}
	return out
}

// appendRange appends the CIDR prefixes covering lo..hi exactly.
func appendRange(out []Prefix, lo, hi uint32) []Prefix {
	for a := uint64(lo); a <= uint64(hi); {
		// The largest block aligned at a that stays within hi.
		size := 32
		if a != 0 {
			size = bits.TrailingZeros32(uint32(a))
		}
		for size > 0 && a+(uint64(1)<<size)-1 > uint64(hi) {
			size--
		}
		out = append(out, Prefix{Addr: uint32(a), Bits: 32 - size})
		a += uint64(1) << size
	}
	return out
}

// String renders the set as comma-separated prefixes.
func (s Set) String() string {
	ps := s.Prefixes()
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// parseLine parses one line of a list: a prefix or an address, optionally
// followed by a "#" comment; blank and comment-only lines give ok == false.
func parseLine(line string) (p Prefix, ok bool, err error) {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return Prefix{}, false, nil
	}
	p, err = ParsePrefix(line)
	return p, err == nil, err
}

// ParseList reads a list, one prefix or address a line, "#" comments and
// blank lines allowed, as ZMap's allow and block list files. name is used in
// errors, which are *row.LineError (FILE:LINE).
func ParseList(r io.Reader, name string) (Set, error) {
	sc := bufio.NewScanner(r)
	var ps []Prefix
	n := 0
	for sc.Scan() {
		n++
		p, ok, err := parseLine(sc.Text())
		if err != nil {
			return Set{}, &row.LineError{File: name, Line: n, Err: err}
		}
		if ok {
			ps = append(ps, p)
		}
	}
	if err := sc.Err(); err != nil {
		return Set{}, &row.LineError{File: name, Line: n + 1, Err: err}
	}
	return NewSet(ps...), nil
}

// ReadFile reads a list file (see ParseList).
func ReadFile(path string) (Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return Set{}, fmt.Errorf("read prefix list: %w", err)
	}
	defer f.Close()
	return ParseList(f, path)
}

// ParseStrings parses prefixes given one per element (as flag values); an
// element may itself be a comma-separated list. what names them in errors.
func ParseStrings(what string, ss []string) (Set, error) {
	var ps []Prefix
	for _, s := range ss {
		for _, part := range strings.Split(s, ",") {
			p, ok, err := parseLine(part)
			if err != nil {
				return Set{}, fmt.Errorf("parse %s: %w", what, err)
			}
			if ok {
				ps = append(ps, p)
			}
		}
	}
	return NewSet(ps...), nil
}
