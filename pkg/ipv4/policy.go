package ipv4

import (
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Sentinels of NewPolicy.
var (
	ErrNoAllowList     = errors.New("an allow list is required")
	ErrNothingAllowed  = errors.New("no address is left after the block lists")
	errNilPolicyLookup = errors.New("policy not built by NewPolicy")
)

//go:embed blocklist.conf
var ianaConf string

// IANABlocklistConf is the text of the IANA special-purpose list, in the
// list format with the RFC of each range, as ZMap's conf/blocklist.conf.
func IANABlocklistConf() string { return ianaConf }

// IANABlocklist returns the IANA special-purpose IPv4 ranges and multicast,
// 127.0.0.0/8 and 198.18.0.0/15 among them (see NewPolicy for the lab
// exceptions).
func IANABlocklist() Set {
	s, err := ParseList(strings.NewReader(ianaConf), "blocklist.conf")
	if err != nil {
		panic(err) // embedded and tested
	}
	return s
}

// LabSpace is where an explicitly allowed prefix overrides the IANA list:
// loopback (the lab) and benchmarking (a test-made network namespace).
func LabSpace() Set {
	return NewSet(MustParsePrefix("127.0.0.0/8"), MustParsePrefix("198.18.0.0/15"))
}

// Policy decides which addresses may be probed: those in Allow and in no
// block list. Block always wins. Build it with NewPolicy, which folds the
// IANA list into Block; Count and Addr need NewPolicy.
type Policy struct {
	Allow Set // the allow list as given
	Block Set // the effective block list: the user's, plus IANA except the allowed lab space

	allowed Set      // Allow minus Block
	cum     []uint64 // cum[i] = addresses of allowed.r[:i]
}

// NewPolicy builds the policy of an allow list and the user's block list.
// The IANA special-purpose ranges are always blocked, except the parts of
// the allow list given as prefixes inside 127.0.0.0/8 or 198.18.0.0/15:
// allowing 127.0.0.0/8 lets the loopback lab be scanned, allowing 10.0.0.0/8
// allows nothing, and allowing 0.0.0.0/0 still blocks every IANA range. An
// empty allow list is ErrNoAllowList (there is no default that covers
// public space); a policy that allows nothing is ErrNothingAllowed.
func NewPolicy(allow, block Set) (*Policy, error) {
	if allow.Empty() {
		return nil, fmt.Errorf("build scan policy: %w", ErrNoAllowList)
	}
	// Only prefixes that lie wholly in the lab space lift the IANA block: an
	// explicit 127.0.0.0/8 does, a 0.0.0.0/0 that covers it does not.
	var explicit []Prefix
	for _, pr := range allow.src {
		if LabSpace().ContainsPrefix(pr) {
			explicit = append(explicit, pr)
		}
	}
	iana := IANABlocklist().Minus(NewSet(explicit...))
	p := &Policy{Allow: allow, Block: block.Union(iana)}
	p.allowed = allow.Minus(p.Block)
	if p.allowed.Empty() {
		return nil, fmt.Errorf("build scan policy: allow %s: %w", allow, ErrNothingAllowed)
	}
	p.cum = make([]uint64, len(p.allowed.r)+1)
	for i, x := range p.allowed.r {
		p.cum[i+1] = p.cum[i] + uint64(x.hi-x.lo) + 1
	}
	return p, nil
}

// LoadPolicy builds a policy from allow prefixes (flag values, each possibly
// comma-separated), an allow file and a block file (either file may be "").
func LoadPolicy(allow []string, allowFile, blockFile string) (*Policy, error) {
	a, err := ParseStrings("allow list", allow)
	if err != nil {
		return nil, fmt.Errorf("load scan policy: %w", err)
	}
	if allowFile != "" {
		f, err := ReadFile(allowFile)
		if err != nil {
			return nil, fmt.Errorf("load scan policy: %w", err)
		}
		a = a.Union(f)
	}
	var b Set
	if blockFile != "" {
		if b, err = ReadFile(blockFile); err != nil {
			return nil, fmt.Errorf("load scan policy: %w", err)
		}
	}
	return NewPolicy(a, b)
}

// Allowed reports whether a may be probed.
func (p *Policy) Allowed(a uint32) bool { return p.Allow.Contains(a) && !p.Block.Contains(a) }

// AllowedPrefix reports whether every address of pr may be probed.
func (p *Policy) AllowedPrefix(pr Prefix) bool {
	return p.Allow.ContainsPrefix(pr) && p.Block.Intersect(NewSet(pr)).Empty()
}

// Clip returns the parts of pr that may be probed, as the fewest prefixes.
func (p *Policy) Clip(pr Prefix) []Prefix {
	return p.Allow.Minus(p.Block).Intersect(NewSet(pr)).Prefixes()
}

// AllowedSet is the set of addresses that may be probed.
func (p *Policy) AllowedSet() Set { return p.Allow.Minus(p.Block) }

// Count is the number of addresses that may be probed (log it: an operator
// should see how much of the Internet a run may touch).
func (p *Policy) Count() uint64 {
	if p.cum == nil {
		return p.AllowedSet().Count()
	}
	return p.cum[len(p.cum)-1]
}

// Addr returns the i-th allowed address in ascending order, 0 <= i <
// Count(), as ZMap's blocklist_lookup_index: a permutation of [0, Count())
// becomes a permutation of the allowed addresses.
func (p *Policy) Addr(i uint64) uint32 {
	if p.cum == nil {
		panic(errNilPolicyLookup)
	}
	// The last range whose cumulative start is <= i.
	k, found := slices.BinarySearch(p.cum, i)
	if !found {
		k--
	}
	if k >= len(p.allowed.r) {
		panic(fmt.Sprintf("ipv4: address index %d out of range %d", i, p.Count()))
	}
	return p.allowed.r[k].lo + uint32(i-p.cum[k])
}

// String summarises the policy for logs.
func (p *Policy) String() string {
	return fmt.Sprintf("allow %s (%d addresses allowed)", p.Allow, p.Count())
}
