// Package row reads and writes services in the GPS row schema: JSON lines of
// {"ip","p","asn","data","fingerprint","w","tls_cert","tls_oids"}, optionally
// gzipped. A malformed line is an error naming FILE:LINE.
package row

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
)

// Row is one service as GPS sees it.
type Row struct {
	IP          string   `json:"ip"`
	Port        int      `json:"p"`
	ASN         *int64   `json:"asn"`
	Data        string   `json:"data"`
	Fingerprint string   `json:"fingerprint"`
	Window      *int64   `json:"w"`
	TLSCert     *string  `json:"tls_cert,omitempty"`
	TLSOIDs     []string `json:"tls_oids,omitempty"`
}

// Service is a validated Row with the address parsed to a uint32.
type Service struct {
	Row
	Addr uint32
}

// ErrBadRow is wrapped by every validation error.
var ErrBadRow = errors.New("bad row")

// Validate parses the row's address and checks its fields.
func (r *Row) Validate() (uint32, error) {
	a, err := netip.ParseAddr(r.IP)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("%w: ip %q is not an IPv4 address", ErrBadRow, r.IP)
	}
	if r.Port < 1 || r.Port > 65535 {
		return 0, fmt.Errorf("%w: port %d out of range 1..65535", ErrBadRow, r.Port)
	}
	if r.ASN != nil && (*r.ASN < 0 || *r.ASN > 4294967295) {
		return 0, fmt.Errorf("%w: asn %d out of range", ErrBadRow, *r.ASN)
	}
	if r.Window != nil && (*r.Window < 0 || *r.Window > 4294967295) {
		return 0, fmt.Errorf("%w: window %d out of range", ErrBadRow, *r.Window)
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}

// FormatAddr renders a uint32 address in dotted quad.
func FormatAddr(a uint32) string {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}).String()
}

// ParseAddr parses a dotted quad into a uint32.
func ParseAddr(s string) (uint32, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("%q is not an IPv4 address", s)
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}

// LineError names the place of a bad line.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// Open opens a file for reading, transparently un-gzipping names ending in .gz.
func Open(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open rows: %w", err)
	}
	if !strings.HasSuffix(path, ".gz") {
		return f, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open rows: %s: %w: %w", path, ErrGzip, err)
	}
	return &gzipFile{zr: zr, f: f}, nil
}

// ErrGzip is wrapped by every error of a corrupt or truncated .gz file, so
// the fault reads as the compression's rather than as a bad line where the
// data stopped.
var ErrGzip = errors.New("gzip: corrupt or truncated file")

// gzipFile is an open .gz file; it marks the errors of the stream with
// ErrGzip.
type gzipFile struct {
	zr *gzip.Reader
	f  *os.File
}

func (g *gzipFile) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: %w", ErrGzip, err)
	}
	return n, err
}

func (g *gzipFile) Close() error { return errors.Join(g.zr.Close(), g.f.Close()) }

// BlameGzip returns err, the error of a line of r (a reader of Open), or,
// when r is a .gz whose stream turns out corrupt further on, the corruption
// at that line: a corrupt stream can decode to garbage that fails as a bad
// line before gzip's checksum, at the end, says why. It reads the rest of
// r only then, on the way out of a failed read.
func BlameGzip(r io.Reader, err error) error {
	var le *LineError
	if _, ok := r.(*gzipFile); !ok || !errors.As(err, &le) || errors.Is(err, ErrGzip) {
		return err
	}
	if _, gerr := io.Copy(io.Discard, r); gerr != nil {
		return &LineError{File: le.File, Line: le.Line, Err: fmt.Errorf("%w (the line reads as: %v)", gerr, le.Err)}
	}
	return err
}

// MaxLine is the longest line of a rows file, in bytes without its newline:
// the default max payload of a NATS message, so a file reads the same in
// batch and in the streaming pipeline, which cannot carry a longer row; and
// one hostile line cannot take all the memory.
const MaxLine = 1 << 20

// ErrLongLine is wrapped by the error of a line longer than MaxLine.
var ErrLongLine = fmt.Errorf("%w: line longer than %d bytes", ErrBadRow, MaxLine)

// EachLine calls fn with every non-blank line of r, trimmed of spaces, and
// its number (from 1); b is valid only during the call. The first error of
// fn, or of reading r (a truncated .gz wraps ErrGzip, a line longer than
// MaxLine is ErrLongLine), stops it as a *LineError naming name and the
// line, before the part of a line read so far is given to fn.
func EachLine(r io.Reader, name string, fn func(line int, b []byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	line := 0
	var long []byte
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: collect it whole, up to MaxLine.
			long = append(long[:0], b...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(long) > MaxLine+2 { // + "\r\n"
					return &LineError{name, line + 1, ErrLongLine}
				}
				b, err = br.ReadSlice('\n')
				long = append(long, b...)
			}
			b = long
		}
		if len(b) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return &LineError{name, line + 1, err}
		}
		line++
		if err != nil && !errors.Is(err, io.EOF) {
			return &LineError{name, line, err}
		}
		if len(bytes.TrimRight(b, "\r\n")) > MaxLine {
			return &LineError{name, line, ErrLongLine}
		}
		if t := bytes.TrimSpace(b); len(t) > 0 {
			if ferr := fn(line, t); ferr != nil {
				return &LineError{name, line, ferr}
			}
		}
		if err != nil {
			return nil // io.EOF
		}
	}
}

// EachFileLine is EachLine on the file at path (gzipped if it ends in .gz),
// with a corrupt .gz blamed for a bad line where it shows (BlameGzip).
func EachFileLine(path string, fn func(line int, b []byte) error) error {
	rc, err := Open(path)
	if err != nil {
		return err
	}
	defer rc.Close()
	return BlameGzip(rc, EachLine(rc, path, fn))
}

// Scan reads rows from r, calling fn for each valid one. name is used in
// errors. Blank lines are skipped. The first bad line stops the scan with a
// *LineError, as does an error reading r (see EachLine).
func Scan(r io.Reader, name string, fn func(Service) error) error {
	return EachLine(r, name, parsed(fn))
}

// parsed turns fn of a row into fn of a line, parsing the line first.
func parsed(fn func(Service) error) func(int, []byte) error {
	return func(_ int, b []byte) error {
		s, err := Parse(b)
		if err != nil {
			return err
		}
		return fn(s)
	}
}

// Parse decodes and validates one JSON line. Unknown fields are allowed (other
// tools add their own); wrong types and missing required fields are not.
func Parse(b []byte) (Service, error) {
	var raw struct {
		Row
		IPSet   *string `json:"ip"`
		PortSet *int    `json:"p"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return Service{}, fmt.Errorf("%w: %v", ErrBadRow, err)
	}
	if raw.IPSet == nil {
		return Service{}, fmt.Errorf("%w: missing \"ip\"", ErrBadRow)
	}
	if raw.PortSet == nil {
		return Service{}, fmt.Errorf("%w: missing \"p\"", ErrBadRow)
	}
	r := raw.Row
	r.IP, r.Port = *raw.IPSet, *raw.PortSet
	a, err := r.Validate()
	if err != nil {
		return Service{}, err
	}
	return Service{Row: r, Addr: a}, nil
}

// ReadFile scans a whole file (gzipped if it ends in .gz).
func ReadFile(path string, fn func(Service) error) error {
	return EachFileLine(path, parsed(fn))
}

// ReadAll returns every row of a file.
func ReadAll(path string) ([]Service, error) {
	var out []Service
	err := ReadFile(path, func(s Service) error {
		out = append(out, s)
		return nil
	})
	return out, err
}
