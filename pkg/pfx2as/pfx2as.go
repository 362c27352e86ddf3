// Package pfx2as is the prefix-to-AS table, as in CAIDA's prefix-to-AS
// files: one "prefix<TAB>len<TAB>asn" a line. The live prober reads one to
// fill the asn of each service it finds; a lab world writes its own.
package pfx2as

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/gpsscan/gps/pkg/row"
)

// Prefix is one announced prefix.
type Prefix struct {
	Prefix string // dotted quad
	Len    int
	ASN    int64
}

// Write writes a table, one prefix a line.
func Write(out io.Writer, pfx []Prefix) error {
	var b []byte
	for _, p := range pfx {
		b = append(b[:0], p.Prefix...)
		b = append(b, '\t')
		b = strconv.AppendInt(b, int64(p.Len), 10)
		b = append(b, '\t')
		b = strconv.AppendInt(b, p.ASN, 10)
		b = append(b, '\n')
		if _, err := out.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// Read reads a prefix-to-AS table: one "prefix<TAB>len<TAB>asn" per
// line. Blank lines and lines starting with '#' are skipped; a bad line is a
// *row.LineError naming FILE:LINE.
func Read(path string) ([]Prefix, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read pfx2as: %w", err)
	}
	defer f.Close()
	var out []Prefix
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == '#' {
			continue
		}
		p, err := parse(t)
		if err != nil {
			return nil, fmt.Errorf("read pfx2as: %w", &row.LineError{File: path, Line: line, Err: err})
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read pfx2as: %w", &row.LineError{File: path, Line: line + 1, Err: err})
	}
	return out, nil
}

func parse(s string) (Prefix, error) {
	f := strings.Split(s, "\t")
	if len(f) != 3 {
		return Prefix{}, fmt.Errorf("want 3 tab-separated fields (prefix, len, asn), have %d", len(f))
	}
	a, err := row.ParseAddr(f[0])
	if err != nil {
		return Prefix{}, fmt.Errorf("prefix: %w", err)
	}
	l, err := strconv.Atoi(f[1])
	if err != nil || l < 0 || l > 32 {
		return Prefix{}, fmt.Errorf("len %q is not an integer in 0..32", f[1])
	}
	if a&^mask(l) != 0 {
		return Prefix{}, fmt.Errorf("prefix %s has bits set beyond /%d", f[0], l)
	}
	asn, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || asn < 0 || asn > math.MaxUint32 {
		return Prefix{}, fmt.Errorf("asn %q is not an integer in 0..4294967295", f[2])
	}
	return Prefix{Prefix: f[0], Len: l, ASN: asn}, nil
}

func mask(l int) uint32 {
	if l == 0 {
		return 0
	}
	return ^uint32(0) << (32 - l)
}

// Table finds the origin AS of an address by longest prefix match.
type Table struct {
	byLen [33]map[uint32]int64
	lens  []int // lengths present, longest first
}

// NewTable indexes a prefix table. A prefix listed twice keeps its last ASN.
func NewTable(pfx []Prefix) (*Table, error) {
	l := &Table{}
	for _, p := range pfx {
		a, err := row.ParseAddr(p.Prefix)
		if err != nil || p.Len < 0 || p.Len > 32 {
			return nil, fmt.Errorf("index prefixes: bad prefix %s/%d", p.Prefix, p.Len)
		}
		if l.byLen[p.Len] == nil {
			l.byLen[p.Len] = map[uint32]int64{}
			l.lens = append(l.lens, p.Len)
		}
		l.byLen[p.Len][a&mask(p.Len)] = p.ASN
	}
	slices.Sort(l.lens)
	slices.Reverse(l.lens)
	return l, nil
}

// Lookup returns the ASN of the longest prefix holding addr.
func (l *Table) Lookup(addr uint32) (int64, bool) {
	for _, n := range l.lens {
		if asn, ok := l.byLen[n][addr&mask(n)]; ok {
			return asn, true
		}
	}
	return 0, false
}
