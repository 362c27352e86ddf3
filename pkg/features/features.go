// Package features computes the GPS feature strings of a service (GPS.md,
// "Feature strings, exactly") and represents them compactly.
//
// A feature is an ID: a uint64 whose top three bits give its kind and whose
// rest holds what it is made of (an interned data string, a prefix, an AS).
// Only the data features (the lines of data, the protocol, the window, the ssh
// banner, the tls certificate and OIDs) are interned as strings; the prefix,
// AS and crossed features are arithmetic on them. This keeps millions of
// crossed features from ever being built as strings while the exact GPS
// string of any ID can still be rendered on demand.
package features

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gpsscan/gps/pkg/row"
)

// ID is a compact feature.
type ID uint64

// Kind is what a feature is made of.
type Kind uint8

// The kinds of features.
const (
	KindData     Kind = 1 // "http line: ...", "fingerprint: ...", "window: ...", "ssh banner: ...", "tls cert: ...", "tls oid: ..."
	KindPrefix   Kind = 2 // "sN: hhhhhhhh"
	KindL4       Kind = 3 // "L4"
	KindASN      Kind = 4 // "asn: N"
	KindCross16  Kind = 5 // "16:" + data + "-" + hhhhhhhh
	KindCrossASN Kind = 6 // "asn:" + data + "-asn: " + N
)

const (
	kindShift = 61
	payload   = 1<<kindShift - 1
	// MaxData is the number of distinct data strings a Dict can hold: an AS
	// crossed feature packs the data id beside a 32-bit AS number.
	MaxData = 1 << 29
)

// L4 is the port-only feature.
const L4 = ID(uint64(KindL4) << kindShift)

// Kind returns the kind of the feature.
func (f ID) Kind() Kind { return Kind(f >> kindShift) }

// DataID returns the interned data string id of a data or crossed feature.
func (f ID) DataID() uint32 {
	switch f.Kind() {
	case KindData:
		return uint32(f & payload)
	case KindCross16:
		return uint32((f & payload) >> 16)
	case KindCrossASN:
		return uint32((f & payload) >> 32)
	}
	return 0
}

func mk(k Kind, p uint64) ID { return ID(uint64(k)<<kindShift | p) }

// Prefix is the "sN: " feature of addr.
func Prefix(n int, addr uint32) ID { return mk(KindPrefix, uint64(n)<<32|uint64(mask(addr, n))) }

// ASN is the "asn: " feature.
func ASN(asn uint32) ID { return mk(KindASN, uint64(asn)) }

func data(id uint32) ID                 { return mk(KindData, uint64(id)) }
func cross16(id uint32, addr uint32) ID { return mk(KindCross16, uint64(id)<<16|uint64(addr>>16)) }
func crossASN(id uint32, asn uint32) ID { return mk(KindCrossASN, uint64(id)<<32|uint64(asn)) }
func mask(addr uint32, n int) uint32    { return addr &^ (1<<(32-n) - 1) }

// Dict interns the data strings of features. It is not safe for concurrent
// writes; readers (String, Compare, Of with intern=false) may run
// concurrently with each other when no writer is active.
type Dict struct {
	ids  map[string]uint32
	strs []string
	// OfAll's scratch (a writer's).
	scratch  []ID
	scratchI []uint32
	parts    []ofPart
}

// NewDict returns an empty dictionary.
func NewDict() *Dict { return &Dict{ids: make(map[string]uint32)} }

// Len is the number of interned data strings.
func (d *Dict) Len() int { return len(d.strs) }

// Data returns the data string of an interned id.
func (d *Dict) Data(id uint32) string { return d.strs[id] }

func (d *Dict) lookup(b []byte, intern bool) (uint32, bool) {
	if id, ok := d.ids[string(b)]; ok {
		return id, true
	}
	if !intern || len(d.strs) >= MaxData {
		return 0, false
	}
	id := uint32(len(d.strs))
	s := string(b)
	d.strs = append(d.strs, s)
	d.ids[s] = id
	return id, true
}

// DataFeature returns the data feature of an exact string like "fingerprint: ssh".
func (d *Dict) DataFeature(s string, intern bool) (ID, bool) {
	id, ok := d.lookup([]byte(s), intern)
	return data(id), ok
}

// Of appends the features of one service to dst, sorted and distinct. With
// intern false, data strings not yet in the dictionary are skipped: such a
// feature cannot match anything the dictionary's users have seen.
//
// The kinds order the IDs (data < prefix < L4 < AS < crossed /16 < crossed
// AS), and within a kind the IDs of one service order as their data ids, so
// only the data ids need sorting: the rest is emitted in order.
func (d *Dict) Of(dst []ID, s *row.Service, intern bool) []ID {
	var local [32]uint32
	return assemble(dst, d.dataIDs(local[:0], s, intern, nil), s)
}

// misses collects, one after the other, the data strings that dataIDs did
// not find.
type misses struct {
	b    []byte
	ends []uint32
}

// dataIDs appends the ids of the data strings of s to ids, in the order
// GPS.md lists them (not sorted, maybe repeated). A string not in the
// dictionary is interned when intern is true; otherwise it is skipped, and
// appended to miss when miss is not nil.
func (d *Dict) dataIDs(ids []uint32, s *row.Service, intern bool, miss *misses) []uint32 {
	// The strings are built in a buffer of this call's own, so that
	// readers share nothing.
	var bufArr [256]byte
	buf := bufArr[:0]
	add := func(prefix, v string) {
		buf = append(append(buf[:0], prefix...), v...)
		if id, ok := d.lookup(buf, intern); ok {
			ids = append(ids, id)
		} else if miss != nil {
			miss.b = append(miss.b, buf...)
			miss.ends = append(miss.ends, uint32(len(miss.b)))
		}
	}
	rest := s.Data
	for {
		i := strings.IndexByte(rest, '\n')
		if i < 0 {
			add("http line: ", rest)
			break
		}
		add("http line: ", rest[:i])
		rest = rest[i+1:]
	}
	add("fingerprint: ", s.Fingerprint)
	if s.Window != nil {
		var w [24]byte
		add("window: ", string(strconv.AppendInt(w[:0], *s.Window, 10)))
	}
	switch s.Fingerprint {
	case "ssh":
		add("ssh banner: ", s.Data)
	case "tls":
		if s.TLSCert != nil {
			add("tls cert: ", *s.TLSCert)
		}
		for _, o := range s.TLSOIDs {
			if utf8.RuneCountInString(o) > 7 {
				add("tls oid: ", o)
			}
		}
	}
	return ids
}

// assemble appends to dst the features of s whose data strings have the
// given ids (which it sorts and compacts in place).
func assemble(dst []ID, ids []uint32, s *row.Service) []ID {
	var asn uint32
	hasASN := s.ASN != nil
	if hasASN {
		asn = uint32(*s.ASN)
	}
	if len(ids) > 1 {
		// Insertion sort: a service has a handful of data strings.
		for i := 1; i < len(ids); i++ {
			for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
				ids[j], ids[j-1] = ids[j-1], ids[j]
			}
		}
		ids = slices.Compact(ids)
	}
	for _, id := range ids {
		dst = append(dst, data(id))
	}
	for n := 16; n <= 22; n++ {
		dst = append(dst, Prefix(n, s.Addr))
	}
	dst = append(dst, L4)
	if hasASN {
		dst = append(dst, ASN(asn))
	}
	for _, id := range ids {
		dst = append(dst, cross16(id, s.Addr))
	}
	if hasASN {
		for _, id := range ids {
			dst = append(dst, crossASN(id, asn))
		}
	}
	return dst
}

// AppendString appends the exact GPS string of f to b.
func (d *Dict) AppendString(b []byte, f ID) []byte {
	p := uint64(f & payload)
	switch f.Kind() {
	case KindData:
		return append(b, d.strs[uint32(p)]...)
	case KindPrefix:
		b = append(b, 's')
		b = strconv.AppendUint(b, p>>32, 10)
		b = append(b, ": "...)
		return appendHex8(b, uint32(p))
	case KindL4:
		return append(b, "L4"...)
	case KindASN:
		b = append(b, "asn: "...)
		return strconv.AppendUint(b, p, 10)
	case KindCross16:
		b = append(b, "16:"...)
		b = append(b, d.strs[uint32(p>>16)]...)
		b = append(b, '-')
		return appendHex8(b, uint32(p&0xffff)<<16)
	case KindCrossASN:
		b = append(b, "asn:"...)
		b = append(b, d.strs[uint32(p>>32)]...)
		b = append(b, "-asn: "...)
		return strconv.AppendUint(b, p&0xffffffff, 10)
	}
	return fmt.Appendf(b, "<bad feature %#x>", uint64(f))
}

// String renders f as its exact GPS string.
func (d *Dict) String(f ID) string { return string(d.AppendString(nil, f)) }

// Compare orders two features by the byte order of their strings, as GPS's
// tie-break does.
func (d *Dict) Compare(a, b ID) int {
	if a == b {
		return 0
	}
	var x, y [256]byte
	return bytes.Compare(d.AppendString(x[:0], a), d.AppendString(y[:0], b))
}

// Parse turns an exact GPS feature string back into an ID, interning its data
// part when intern is true. It is the inverse of String.
func (d *Dict) Parse(s string, intern bool) (ID, error) {
	bad := func() (ID, error) { return 0, fmt.Errorf("parse feature %q: not a GPS feature", s) }
	switch {
	case s == "L4":
		return L4, nil
	case strings.HasPrefix(s, "asn: "):
		n, err := strconv.ParseUint(s[5:], 10, 32)
		if err != nil {
			return bad()
		}
		return ASN(uint32(n)), nil
	case len(s) == 13 && s[0] == 's' && s[3:5] == ": ":
		n, err1 := strconv.Atoi(s[1:3])
		h, err2 := strconv.ParseUint(s[5:], 16, 32)
		if err1 != nil || err2 != nil || n < 16 || n > 22 || uint32(h) != mask(uint32(h), n) {
			return bad()
		}
		return Prefix(n, uint32(h)), nil
	case strings.HasPrefix(s, "16:"):
		// "16:" + d + "-" + 8 hex digits
		if len(s) < 3+9 || s[len(s)-9] != '-' {
			return bad()
		}
		h, err := strconv.ParseUint(s[len(s)-8:], 16, 32)
		if err != nil || uint32(h)&0xffff != 0 {
			return bad()
		}
		id, ok := d.lookup([]byte(s[3:len(s)-9]), intern)
		if !ok {
			return 0, fmt.Errorf("parse feature %q: %w", s, ErrUnknown)
		}
		return cross16(id, uint32(h)), nil
	case strings.HasPrefix(s, "asn:"):
		i := strings.LastIndex(s, "-asn: ")
		if i < 4 {
			return bad()
		}
		n, err := strconv.ParseUint(s[i+6:], 10, 32)
		if err != nil {
			return bad()
		}
		id, ok := d.lookup([]byte(s[4:i]), intern)
		if !ok {
			return 0, fmt.Errorf("parse feature %q: %w", s, ErrUnknown)
		}
		return crossASN(id, uint32(n)), nil
	}
	for _, p := range dataPrefixes {
		if strings.HasPrefix(s, p) {
			id, ok := d.lookup([]byte(s), intern)
			if !ok {
				return 0, fmt.Errorf("parse feature %q: %w", s, ErrUnknown)
			}
			return data(id), nil
		}
	}
	return bad()
}

var dataPrefixes = []string{"http line: ", "fingerprint: ", "window: ", "ssh banner: ", "tls cert: ", "tls oid: "}

// ErrUnknown is returned by Parse without interning for a data string the
// dictionary does not hold.
var ErrUnknown = errors.New("data string not in dictionary")

func appendHex8(b []byte, v uint32) []byte {
	const hex = "0123456789abcdef"
	for s := 28; s >= 0; s -= 4 {
		b = append(b, hex[(v>>uint(s))&0xf])
	}
	return b
}
