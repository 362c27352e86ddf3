package wire

import (
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// The fast decoder reads RESULTS messages as our producers write them
// (json.Marshal of Result, one per line) several times faster than
// encoding/json, and with a few allocations a message instead of a dozen
// a result: at 200K results/s decoding and the garbage it leaves would
// otherwise take most of a core. It gives up (ok false) on anything it does
// not know for sure: an unknown or differently cased key, a fraction or an
// exponent, a null where a value is needed, a surrogate escape, invalid
// UTF-8, a syntax error; DecodeResults then decodes the message with
// encoding/json, whose result and errors are the reference. FuzzDecode
// checks that the two agree wherever the fast one succeeds.

// decodeLinesFast decodes one result per non-blank line.
func decodeLinesFast(b []byte) ([]Result, bool) {
	// One string for the whole message: every field without escapes is a
	// substring of it, allocated once.
	s := string(b)
	rs := make([]Result, 0, strings.Count(s, "\n")+1)
	var d fastDecoder
	for line := range strings.SplitSeq(s, "\n") {
		if isBlank(line) {
			continue
		}
		rs = append(rs, Result{})
		d.s, d.i = line, 0
		if !d.result(&rs[len(rs)-1]) {
			return nil, false
		}
	}
	return rs, true
}

func isBlank(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isSpace(s[i]) {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// fastDecoder reads one line.
type fastDecoder struct {
	s    string
	i    int
	buf  []byte // unescaping
	tRaw string // the last time decoded, and its value: a batch's results
	tVal time.Time
}

func (d *fastDecoder) ws() {
	for d.i < len(d.s) && isSpace(d.s[d.i]) {
		d.i++
	}
}

// next skips white space and reports whether the next byte is c (and
// consumes it if so).
func (d *fastDecoder) next(c byte) bool {
	d.ws()
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// result reads one object, then the end of the line.
func (d *fastDecoder) result(r *Result) bool {
	if !d.next('{') {
		return false
	}
	if !d.next('}') {
		for {
			key, ok := d.key()
			if !ok || !d.next(':') || !d.field(r, key) {
				return false
			}
			if d.next('}') {
				break
			}
			if !d.next(',') {
				return false
			}
		}
	}
	d.ws()
	return d.i == len(d.s)
}

// key reads an object key: only plain ones (no escapes) are ours.
func (d *fastDecoder) key() (string, bool) {
	d.ws()
	if d.i >= len(d.s) || d.s[d.i] != '"' {
		return "", false
	}
	j := strings.IndexByte(d.s[d.i+1:], '"')
	if j < 0 {
		return "", false
	}
	k := d.s[d.i+1 : d.i+1+j]
	if strings.IndexByte(k, '\\') >= 0 {
		return "", false
	}
	d.i += j + 2
	return k, true
}

func (d *fastDecoder) field(r *Result, key string) bool {
	d.ws()
	var ok bool
	switch key {
	case "v":
		r.V, ok = d.int()
	case "ip":
		r.IP, ok = d.str()
	case "port":
		r.Port, ok = d.int()
	case "phase":
		r.Phase, ok = d.str()
	case "protocol":
		r.Protocol, ok = d.str()
	case "data":
		r.Data, ok = d.str()
	case "source":
		r.Source, ok = d.str()
	case "probes":
		var v int64
		if v, ok = d.int64v(); ok && v >= 0 {
			r.Probes = uint64(v)
		}
		ok = ok && v >= 0
	case "tls_cert":
		if d.null() {
			r.TLSCert = nil
			return true
		}
		var s string
		if s, ok = d.str(); ok {
			r.TLSCert = &s
		}
	case "tls_oids":
		r.TLSOIDs, ok = d.strs()
	case "window":
		r.Window, ok = d.int64Ptr()
	case "asn":
		r.ASN, ok = d.int64Ptr()
	case "time":
		ok = d.time(&r.Time)
	case "gone":
		r.Gone, ok = d.bool()
	case "cycle":
		r.Cycle, ok = d.int()
	}
	return ok
}

// bool reads true or false (null is left to the general decoder).
func (d *fastDecoder) bool() (bool, bool) {
	switch {
	case strings.HasPrefix(d.s[d.i:], "true"):
		d.i += 4
		return true, true
	case strings.HasPrefix(d.s[d.i:], "false"):
		d.i += 5
		return false, true
	}
	return false, false
}

func (d *fastDecoder) null() bool {
	if strings.HasPrefix(d.s[d.i:], "null") {
		d.i += 4
		return true
	}
	return false
}

// int64v reads an integer: -?(0|[1-9][0-9]*), at most 18 digits, not
// followed by a fraction or an exponent.
func (d *fastDecoder) int64v() (int64, bool) {
	i, neg := d.i, false
	if i < len(d.s) && d.s[i] == '-' {
		neg = true
		i++
	}
	start := i
	var v int64
	for i < len(d.s) && d.s[i] >= '0' && d.s[i] <= '9' {
		v = v*10 + int64(d.s[i]-'0')
		i++
	}
	n := i - start
	if n == 0 || n > 18 || n > 1 && d.s[start] == '0' {
		return 0, false
	}
	if i < len(d.s) && (d.s[i] == '.' || d.s[i] == 'e' || d.s[i] == 'E') {
		return 0, false
	}
	d.i = i
	if neg {
		v = -v
	}
	return v, true
}

func (d *fastDecoder) int() (int, bool) {
	v, ok := d.int64v()
	return int(v), ok
}

func (d *fastDecoder) int64Ptr() (*int64, bool) {
	if d.null() {
		return nil, true
	}
	v, ok := d.int64v()
	if !ok {
		return nil, false
	}
	return &v, true
}

// str reads a string: a substring of the message when it has no escapes.
func (d *fastDecoder) str() (string, bool) {
	if d.i >= len(d.s) || d.s[d.i] != '"' {
		return "", false
	}
	start := d.i + 1
	ascii := true
	for i := start; i < len(d.s); i++ {
		switch c := d.s[i]; {
		case c == '"':
			v := d.s[start:i]
			if !ascii && !utf8.ValidString(v) {
				return "", false // encoding/json replaces invalid bytes
			}
			d.i = i + 1
			return v, true
		case c == '\\':
			return d.unescape(start)
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// unescape reads a string with escapes, from start (after the quote).
func (d *fastDecoder) unescape(start int) (string, bool) {
	b := d.buf[:0]
	i := start
	for i < len(d.s) {
		c := d.s[i]
		switch {
		case c == '"':
			if !utf8.Valid(b) {
				return "", false
			}
			d.buf, d.i = b, i+1
			return string(b), true
		case c < 0x20:
			return "", false
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(d.s) {
			return "", false
		}
		switch e := d.s[i+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(d.s[i+2:])
			if !ok || utf16.IsSurrogate(r) {
				return "", false
			}
			b = utf8.AppendRune(b, r)
			i += 4
		default:
			return "", false
		}
		i += 2
	}
	return "", false
}

func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[:4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// strs reads null or an array of strings.
func (d *fastDecoder) strs() ([]string, bool) {
	if d.null() {
		return nil, true
	}
	if !d.next('[') {
		return nil, false
	}
	out := []string{}
	if d.next(']') {
		return out, true
	}
	for {
		d.ws()
		s, ok := d.str()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		if d.next(']') {
			return out, true
		}
		if !d.next(',') {
			return nil, false
		}
	}
}

// time reads an RFC 3339 time as time.Time's UnmarshalJSON does (which
// reads the quoted bytes as they are: an escape is an error there, and
// left to encoding/json here). The results of a batch mostly share one
// time: the last one is kept.
func (d *fastDecoder) time(t *time.Time) bool {
	if d.i >= len(d.s) || d.s[d.i] != '"' {
		return false
	}
	j := strings.IndexByte(d.s[d.i+1:], '"')
	if j < 0 {
		return false
	}
	raw := d.s[d.i : d.i+j+2]
	if strings.IndexByte(raw[1:len(raw)-1], '\\') >= 0 {
		return false
	}
	if raw != d.tRaw || d.tRaw == "" {
		var v time.Time
		if v.UnmarshalJSON([]byte(raw)) != nil {
			return false
		}
		d.tRaw, d.tVal = raw, v
	}
	*t = d.tVal
	d.i += len(raw)
	return true
}
