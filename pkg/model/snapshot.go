package model

// Snapshots: the whole model state in a versioned binary format, so that a
// streaming service can resume after a crash.
//
// Layout (integers are unsigned LEB128 varints unless said otherwise; a
// feature is written rotated left by 3 bits, so that its kind costs one
// byte instead of making every feature ten bytes long):
//
//	magic "GPSMODEL", format version
//	version (changes applied), services
//	dictionary: n, then n strings (length, bytes), in id order
//	keys: n, then per key in index order: feature, port, support, the host
//	  set (support <= listHosts: the sorted host ids as deltas; more: a
//	  roaring bitmap), the count list (length, then per entry port delta
//	  and count)
//	port bitmaps: n, then per port in order: port delta, bitmap
//	hosts: n, then per host in id order: address (4 bytes little endian),
//	  state, services, then per service: port, and its features (waiting
//	  or pseudo: count, then deltas) or key indexes (counted: count, then
//	  zigzag deltas); a free host id (all its services removed) is a
//	  waiting host of address 0 and no service
//
// Format 1 (before Remove) held nothing for a pseudo host's services: read,
// they have no features, and a Remove that takes such a host back under
// MaxPorts counts it without them (its ports only).
//	trailer "END!", CRC-32C of every byte before the trailer (4 bytes LE)
//
// A bitmap is its length then roaring's portable serialisation (after
// RunOptimize). ReadFrom validates everything it reads and checks that the
// counts agree with the hosts before it checks the checksum, so a corrupt
// or truncated snapshot is an error, never a panic or a model that could
// later go wrong.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gpsscan/gps/pkg/features"
)

const (
	snapshotMagic   = "GPSMODEL"
	snapshotTrailer = "END!"
	snapshotFormat  = 2
)

// ErrSnapshot is wrapped by every error of ReadFrom about its input.
var ErrSnapshot = errors.New("bad model snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func rotFeat(f features.ID) uint64   { return bits.RotateLeft64(uint64(f), 3) }
func unrotFeat(x uint64) features.ID { return features.ID(bits.RotateLeft64(x, -3)) }

// encoder buffers output and sums it.
type encoder struct {
	w   io.Writer
	buf []byte
	n   int64
	crc uint32
	err error
	bm  bytes.Buffer
}

func (e *encoder) flush() {
	if e.err != nil {
		e.buf = e.buf[:0]
		return
	}
	e.crc = crc32.Update(e.crc, castagnoli, e.buf)
	n, err := e.w.Write(e.buf)
	e.n += int64(n)
	e.err = err
	e.buf = e.buf[:0]
}

func (e *encoder) uvarint(x uint64) {
	e.buf = binary.AppendUvarint(e.buf, x)
	if len(e.buf) >= 1<<16 {
		e.flush()
	}
}

func (e *encoder) bytes(b []byte) {
	e.buf = append(e.buf, b...)
	if len(e.buf) >= 1<<16 {
		e.flush()
	}
}

func (e *encoder) bitmap(b *roaring.Bitmap) {
	c := b.Clone()
	c.RunOptimize()
	e.bm.Reset()
	if _, err := c.WriteTo(&e.bm); err != nil && e.err == nil {
		e.err = err
	}
	e.uvarint(uint64(e.bm.Len()))
	e.bytes(e.bm.Bytes())
}

// WriteTo writes a snapshot of the model to w (see ReadFrom). It counts as
// a read: it may run concurrently with other reads, not with writes.
func (m *Model) WriteTo(w io.Writer) (int64, error) {
	m.sync()
	e := &encoder{w: w, buf: make([]byte, 0, 1<<17)}
	e.bytes([]byte(snapshotMagic))
	e.uvarint(snapshotFormat)
	e.uvarint(m.version)
	e.uvarint(uint64(m.services))

	e.uvarint(uint64(m.dict.Len()))
	for i := range m.dict.Len() {
		s := m.dict.Data(uint32(i))
		e.uvarint(uint64(len(s)))
		e.buf = append(e.buf, s...)
		if len(e.buf) >= 1<<16 {
			e.flush()
		}
	}

	e.uvarint(uint64(m.nkeys))
	for k := range m.nkeys {
		ks := m.keys.at(k)
		e.uvarint(rotFeat(ks.feat))
		e.uvarint(uint64(ks.port))
		e.uvarint(uint64(ks.support))
		if ks.support <= listHosts {
			prev := uint32(0)
			for _, h := range m.hostList(ks) {
				e.uvarint(uint64(h - prev))
				prev = h
			}
		} else {
			e.bitmap(m.bitmaps[ks.hosts[0]])
		}
		co := m.coList(ks)
		e.uvarint(uint64(len(co)))
		prev := uint16(0)
		for _, c := range co {
			e.uvarint(uint64(c.Port - prev))
			e.uvarint(uint64(c.N))
			prev = c.Port
		}
		if e.err != nil {
			return e.n, fmt.Errorf("write model snapshot: %w", e.err)
		}
	}

	var ports []int
	for p, b := range m.portHosts {
		if b != nil {
			ports = append(ports, p)
		}
	}
	e.uvarint(uint64(len(ports)))
	prev := 0
	for _, p := range ports {
		e.uvarint(uint64(p - prev))
		e.bitmap(m.portHosts[p])
		prev = p
	}

	e.uvarint(uint64(len(m.hosts)))
	for hid := range m.hosts {
		h := &m.hosts[hid]
		e.buf = binary.LittleEndian.AppendUint32(e.buf, h.addr)
		e.buf = append(e.buf, byte(h.state))
		e.uvarint(uint64(h.n))
		for _, sv := range m.svcs.block(h.svcs, int(h.n)) {
			e.uvarint(uint64(sv.port))
			switch h.state {
			case stateWaiting, statePseudo:
				e.uvarint(uint64(sv.n))
				prev := features.ID(0)
				for i, f := range m.feats.block(sv.off, int(sv.n)) {
					if i == 0 {
						e.uvarint(rotFeat(f))
					} else {
						e.uvarint(uint64(f - prev))
					}
					prev = f
				}
			case stateCounted:
				e.uvarint(uint64(sv.n))
				prev := int64(0)
				for _, k := range m.ids.block(sv.off, int(sv.n)) {
					d := int64(k) - prev
					e.uvarint(uint64(d<<1) ^ uint64(d>>63))
					prev = int64(k)
				}
			}
		}
		if e.err != nil {
			return e.n, fmt.Errorf("write model snapshot: %w", e.err)
		}
	}
	e.flush()
	var tail [8]byte
	copy(tail[:], snapshotTrailer)
	binary.LittleEndian.PutUint32(tail[4:], e.crc)
	e.buf = append(e.buf, tail[:]...)
	if e.err == nil {
		n, err := e.w.Write(e.buf)
		e.n += int64(n)
		e.err = err
	}
	if e.err != nil {
		return e.n, fmt.Errorf("write model snapshot: %w", e.err)
	}
	return e.n, nil
}

// decoder reads a snapshot through its own buffer, summing what it consumes.
type decoder struct {
	r      io.Reader
	buf    []byte
	pos    int
	end    int
	off    int64 // offset of buf[0] in the stream
	crc    uint32
	rerr   error // the reader's error, once it has one
	empty  int   // reads in a row that returned nothing
	fs     []features.ID
	ids    []uint32
	format uint64
}

var errTruncated = errors.New("truncated")

func (d *decoder) fail(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrSnapshot, d.off+int64(d.pos), fmt.Sprintf(format, args...))
}

// fill makes at least n bytes available, or fails.
func (d *decoder) fill(n int) error {
	if d.end-d.pos >= n {
		return nil
	}
	d.crc = crc32.Update(d.crc, castagnoli, d.buf[:d.pos])
	copy(d.buf, d.buf[d.pos:d.end])
	d.off += int64(d.pos)
	d.end -= d.pos
	d.pos = 0
	for d.end < n {
		if d.end == len(d.buf) {
			// Grow with the data read, not with what a length claims.
			nb := make([]byte, min(n, 2*len(d.buf)))
			copy(nb, d.buf[:d.end])
			d.buf = nb
		}
		if d.rerr != nil {
			if d.rerr == io.EOF || d.rerr == io.ErrUnexpectedEOF {
				return d.fail("%v", errTruncated)
			}
			return fmt.Errorf("read model snapshot: %w", d.rerr)
		}
		k, err := d.r.Read(d.buf[d.end:])
		d.end += k
		if err != nil {
			d.rerr = err
		} else if k == 0 {
			if d.empty++; d.empty >= 100 {
				d.rerr = io.ErrNoProgress
			}
		}
	}
	return nil
}

func (d *decoder) uvarint() (uint64, error) {
	if d.end-d.pos < binary.MaxVarintLen64 {
		// Near the end of the input: fill what there is.
		if err := d.fill(binary.MaxVarintLen64); err != nil && d.end == d.pos {
			return 0, err
		}
	}
	x, n := binary.Uvarint(d.buf[d.pos:d.end])
	if n <= 0 {
		if n == 0 {
			return 0, d.fail("%v", errTruncated)
		}
		return 0, d.fail("varint overflows 64 bits")
	}
	d.pos += n
	return x, nil
}

// num reads a varint of at most max.
func (d *decoder) num(what string, max uint64) (uint64, error) {
	x, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if x > max {
		return 0, d.fail("%s %d out of range (max %d)", what, x, max)
	}
	return x, nil
}

func (d *decoder) bytes(n int) ([]byte, error) {
	if err := d.fill(n); err != nil {
		return nil, err
	}
	b := d.buf[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

func (d *decoder) bitmap(what string) (b *roaring.Bitmap, err error) {
	n, err := d.num(what+" bitmap length", 1<<31)
	if err != nil {
		return nil, err
	}
	raw, err := d.bytes(int(n))
	if err != nil {
		return nil, err
	}
	b = roaring.New()
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, d.fail("%s bitmap: %v", what, r)
		}
	}()
	// roaring copies what it reads from an io.Reader (no reference to raw).
	k, err := b.ReadFrom(bytes.NewReader(raw))
	if err != nil {
		return nil, d.fail("%s bitmap: %v", what, err)
	}
	if k != int64(n) {
		return nil, d.fail("%s bitmap: %d bytes, read %d", what, n, k)
	}
	if err := b.Validate(); err != nil {
		return nil, d.fail("%s bitmap: %v", what, err)
	}
	return b, nil
}

// ReadFrom reads a snapshot written by WriteTo and returns the model it
// holds, which behaves exactly as the one written. Any defect of the input
// is an error wrapping ErrSnapshot.
func ReadFrom(r io.Reader) (*Model, error) {
	d := &decoder{r: r, buf: make([]byte, 1<<16)}
	m, err := d.model()
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (d *decoder) model() (*Model, error) {
	magic, err := d.bytes(len(snapshotMagic))
	if err != nil {
		return nil, err
	}
	if string(magic) != snapshotMagic {
		return nil, d.fail("not a model snapshot (magic %q)", magic)
	}
	format, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if format != snapshotFormat && format != 1 {
		return nil, d.fail("format version %d, this build reads 1 and %d", format, snapshotFormat)
	}
	d.format = format
	m := New()
	if m.version, err = d.uvarint(); err != nil {
		return nil, err
	}
	services, err := d.num("services", 1<<40)
	if err != nil {
		return nil, err
	}
	m.services = int(services)

	// Dictionary.
	nstr, err := d.num("dictionary size", features.MaxData)
	if err != nil {
		return nil, err
	}
	for i := range nstr {
		n, err := d.num("string length", 1<<30)
		if err != nil {
			return nil, err
		}
		b, err := d.bytes(int(n))
		if err != nil {
			return nil, err
		}
		f, ok := m.dict.DataFeature(string(b), true)
		if !ok || f.DataID() != uint32(i) {
			return nil, d.fail("dictionary string %d %q repeats string %d", i, b, f.DataID())
		}
	}

	// Keys.
	nkeys, err := d.num("keys", maxKeys)
	if err != nil {
		return nil, err
	}
	// Size the key table for them (within reason: nkeys is not checked yet).
	if n := 1 << bits.Len(uint(min(nkeys, 1<<22)*4/3)); n > len(m.slots) {
		m.initSlots(n)
	}
	for k := range uint32(nkeys) {
		if err := d.key(m, k); err != nil {
			return nil, err
		}
	}

	// Port bitmaps.
	nports, err := d.num("ports", 1<<16)
	if err != nil {
		return nil, err
	}
	port := -1
	for i := range nports {
		delta, err := d.num("port delta", 1<<16)
		if err != nil {
			return nil, err
		}
		if (i > 0 && delta == 0) || port+int(delta) > 1<<16-1 || (i == 0 && delta > 1<<16-1) {
			return nil, d.fail("port bitmaps out of order")
		}
		port = max(port, 0) + int(delta)
		b, err := d.bitmap(fmt.Sprintf("port %d", port))
		if err != nil {
			return nil, err
		}
		if m.portHosts == nil {
			m.portHosts = make([]*roaring.Bitmap, 1<<16)
		}
		m.portHosts[port] = b
	}

	// Hosts.
	nhosts, err := d.num("hosts", 1<<32-1)
	if err != nil {
		return nil, err
	}
	for hid := range uint32(nhosts) {
		if err := d.host(m, hid); err != nil {
			return nil, err
		}
	}

	if err := d.consistent(m); err != nil {
		return nil, err
	}

	// Trailer.
	if err := d.fill(len(snapshotTrailer) + 4); err != nil {
		return nil, err
	}
	crc := crc32.Update(d.crc, castagnoli, d.buf[:d.pos])
	tail, _ := d.bytes(len(snapshotTrailer) + 4)
	if string(tail[:len(snapshotTrailer)]) != snapshotTrailer {
		return nil, d.fail("no trailer after the hosts")
	}
	if want := binary.LittleEndian.Uint32(tail[len(snapshotTrailer):]); crc != want {
		return nil, d.fail("checksum %08x, trailer says %08x", crc, want)
	}
	return m, nil
}

// validFeat reports whether f is a feature a Dict of n strings can make.
func validFeat(f features.ID, n int) bool {
	p := uint64(f) & (1<<61 - 1)
	switch f.Kind() {
	case features.KindData:
		return p < uint64(n)
	case features.KindPrefix:
		w := int(p >> 32)
		a := uint32(p)
		return w >= 16 && w <= 22 && a&(1<<(32-w)-1) == 0
	case features.KindL4:
		return f == features.L4
	case features.KindASN:
		return p < 1<<32
	case features.KindCross16:
		return p>>16 < uint64(n)
	case features.KindCrossASN:
		return p>>32 < uint64(n)
	}
	return false
}

func (d *decoder) key(m *Model, k uint32) error {
	x, err := d.uvarint()
	if err != nil {
		return err
	}
	f := unrotFeat(x)
	if !validFeat(f, m.dict.Len()) {
		return d.fail("key %d: bad feature %#x", k, uint64(f))
	}
	port, err := d.num("port", 1<<16-1)
	if err != nil {
		return err
	}
	p := uint16(port)
	if got := m.key(p, f); got != k {
		return d.fail("key %d repeats key %d (%v)", k, got, Key{p, f})
	}
	support, err := d.num("support", 1<<32-1)
	if err != nil {
		return err
	}
	if support <= listHosts {
		var hs [listHosts]uint32
		h := uint64(0)
		for i := range int(support) {
			delta, err := d.num("host delta", 1<<32-1)
			if err != nil {
				return err
			}
			if i > 0 && delta == 0 {
				return d.fail("key %d: hosts not sorted", k)
			}
			h += delta
			if h > 1<<32-1 {
				return d.fail("key %d: host id out of range", k)
			}
			hs[i] = uint32(h)
		}
		ks := m.keys.at(k)
		switch {
		case support <= inlineHosts:
			copy(ks.hosts[:], hs[:support])
		default:
			off := m.hl.alloc(classOf(int(support)))
			copy(m.hl.block(off, int(support)), hs[:support])
			ks.hosts[0] = off
		}
	} else {
		b, err := d.bitmap(fmt.Sprintf("key %d", k))
		if err != nil {
			return err
		}
		if c := b.GetCardinality(); c != support {
			return d.fail("key %d: support %d, bitmap holds %d", k, support, c)
		}
		m.keys.at(k).hosts[0] = m.newBitmap(b)
	}
	ks := m.keys.at(k)
	ks.support = uint32(support)

	n, err := d.num("count list length", 1<<16-1)
	if err != nil {
		return err
	}
	if n > 0 && support == 0 {
		return d.fail("key %d has counts but no hosts", k)
	}
	if n > 0 {
		ks.co = m.co.alloc(classOf(int(n)))
		ks.coLen = uint16(n)
	}
	pa := 0
	for i := range int(n) {
		delta, err := d.num("port delta", 1<<16-1)
		if err != nil {
			return err
		}
		c, err := d.num("count", uint64(support))
		if err != nil {
			return err
		}
		pa += int(delta)
		if (i > 0 && delta == 0) || pa > 1<<16-1 || pa == int(p) || c == 0 {
			return d.fail("key %d: bad count list entry %d (port %d, count %d)", k, i, pa, c)
		}
		*m.co.at(ks.co + uint32(i)) = PortCount{uint16(pa), uint32(c)}
	}
	return nil
}

func (d *decoder) host(m *Model, hid uint32) error {
	b, err := d.bytes(5)
	if err != nil {
		return err
	}
	h := host{addr: binary.LittleEndian.Uint32(b), state: hostState(b[4])}
	if _, dup := m.hostIdx[h.addr]; dup {
		return d.fail("host %d: address repeats", hid)
	}
	n, err := d.num("services", 1<<16)
	if err != nil {
		return err
	}
	switch {
	case h.state == stateWaiting && n == 0 && h.addr == 0:
		m.free.Add(hid) // a free id: no address, no service
		m.hosts = append(m.hosts, h)
		return nil
	case h.state == stateWaiting && n >= 1 && n < MinPorts:
	case h.state == stateCounted && n >= MinPorts && n <= MaxPorts:
	case h.state == statePseudo && n > MaxPorts:
	default:
		return d.fail("host %d: state %d with %d services", hid, h.state, n)
	}
	m.hostIdx[h.addr] = hid
	h.n = uint32(n)
	h.svcs = m.svcs.alloc(classOf(int(n)))
	m.hosts = append(m.hosts, h)
	var seen [1 << 16 / 64]uint64
	for i := range uint32(n) {
		port, err := d.num("port", 1<<16-1)
		if err != nil {
			return err
		}
		if seen[port/64]&(1<<(port%64)) != 0 {
			return d.fail("host %d: port %d repeats", hid, port)
		}
		seen[port/64] |= 1 << (port % 64)
		sv := service{port: uint16(port)}
		switch {
		case h.state == stateWaiting, h.state == statePseudo && d.format > 1:
			if sv.n, sv.off, err = d.feats(m, hid); err != nil {
				return err
			}
		case h.state == stateCounted:
			if sv.n, sv.off, err = d.keyIDs(m, hid, sv.port); err != nil {
				return err
			}
		}
		*m.svcs.at(h.svcs + i) = sv
	}
	return nil
}

func (d *decoder) feats(m *Model, hid uint32) (uint32, uint32, error) {
	n, err := d.num("features", 1<<31-1)
	if err != nil || n == 0 {
		return 0, 0, err
	}
	fs := d.fs[:0]
	var prev features.ID
	for i := range uint32(n) {
		x, err := d.uvarint()
		if err != nil {
			return 0, 0, err
		}
		f := prev + features.ID(x)
		if i == 0 {
			f = unrotFeat(x)
		} else if x == 0 || f < prev {
			return 0, 0, d.fail("host %d: features not sorted", hid)
		}
		if !validFeat(f, m.dict.Len()) {
			return 0, 0, d.fail("host %d: bad feature %#x", hid, uint64(f))
		}
		fs = append(fs, f)
		prev = f
	}
	d.fs = fs
	off := m.feats.alloc(classOf(len(fs)))
	copy(m.feats.block(off, len(fs)), fs)
	return uint32(n), off, nil
}

func (d *decoder) keyIDs(m *Model, hid uint32, port uint16) (uint32, uint32, error) {
	n, err := d.num("keys", 1<<31-1)
	if err != nil || n == 0 {
		return 0, 0, err
	}
	ids := d.ids[:0]
	prev := int64(0)
	for range n {
		z, err := d.uvarint()
		if err != nil {
			return 0, 0, err
		}
		k := prev + (int64(z>>1) ^ -int64(z&1))
		if k < 0 || k >= int64(m.nkeys) {
			return 0, 0, d.fail("host %d: key %d out of range", hid, k)
		}
		if m.keys.at(uint32(k)).port != port {
			return 0, 0, d.fail("host %d: key %d is not of port %d", hid, k, port)
		}
		ids = append(ids, uint32(k))
		prev = k
	}
	d.ids = ids
	off := m.ids.alloc(classOf(len(ids)))
	copy(m.ids.block(off, len(ids)), ids)
	return uint32(n), off, nil
}

// consistent checks that the counts are those of the hosts: every key's
// host set is the set of counted hosts whose service has it, every port
// bitmap the set of counted hosts with a service on the port, and every
// count list the one its hosts make. The model then cannot go wrong on the
// next Add.
func (d *decoder) consistent(m *Model) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrSnapshot, fmt.Sprintf(format, args...))
	}
	total := 0
	for i := range m.hosts {
		total += int(m.hosts[i].n)
	}
	if total != m.services {
		return fail("%d services, hosts hold %d", m.services, total)
	}
	// The references of counted hosts to keys: each at most once per host
	// (a key is of one port), as many as the key's support.
	refs := make([]uint32, m.nkeys)
	last := make([]uint32, m.nkeys) // the last host (+1) seen with the key
	// Hosts come in order, so a key's references walk its sorted host list.
	cursor := make([]uint8, m.nkeys)
	var counted uint64
	for hid := range m.hosts {
		h := &m.hosts[hid]
		if h.state != stateCounted {
			continue
		}
		for _, sv := range m.svcs.block(h.svcs, int(h.n)) {
			counted++
			if m.portHosts == nil || m.portHosts[sv.port] == nil || !m.portHosts[sv.port].Contains(uint32(hid)) {
				return fail("host %d port %d missing from the port bitmap", hid, sv.port)
			}
			for _, k := range m.ids.block(sv.off, int(sv.n)) {
				if last[k] == uint32(hid)+1 {
					return fail("host %d has key %v twice", hid, m.keys.at(k).key())
				}
				last[k] = uint32(hid) + 1
				refs[k]++
				ks := m.keys.at(k)
				if ks.support <= listHosts {
					l := m.hostList(ks)
					if c := int(cursor[k]); c >= len(l) || l[c] != uint32(hid) {
						return fail("host %d missing from key %v", hid, ks.key())
					}
					cursor[k]++
				} else if !m.bitmaps[ks.hosts[0]].Contains(uint32(hid)) {
					return fail("host %d missing from key %v", hid, ks.key())
				}
			}
		}
	}
	var inPorts uint64
	for _, b := range m.portHosts {
		if b != nil {
			inPorts += b.GetCardinality()
		}
	}
	if inPorts != counted {
		return fail("port bitmaps hold %d services, counted hosts have %d", inPorts, counted)
	}
	// The key's counts are those its hosts' other ports make (its hosts are
	// the ones that have it: they hold the references, as many).
	counts := make([]uint32, 1<<16)
	var touched []uint16
	var bad error
	for k := range m.nkeys {
		ks := m.keys.at(k)
		if refs[k] != ks.support {
			return fail("key %v: support %d, %d hosts have it", ks.key(), ks.support, refs[k])
		}
		if ks.support < MinCount && ks.coLen == 0 {
			continue // keeps no counts (a snapshot of an older build may hold some)
		}
		touched = touched[:0]
		visit := func(hid uint32) bool {
			h := &m.hosts[hid]
			for _, sv := range m.svcs.block(h.svcs, int(h.n)) {
				if sv.port != ks.port {
					if counts[sv.port] == 0 {
						touched = append(touched, sv.port)
					}
					counts[sv.port]++
				}
			}
			return true
		}
		if ks.support <= listHosts {
			for _, hid := range m.hostList(ks) {
				visit(hid)
			}
		} else {
			m.bitmaps[ks.hosts[0]].Iterate(visit)
		}
		co := m.coList(ks)
		if bad == nil && len(co) != len(touched) {
			bad = fail("key %v: %d counts, its hosts make %d", ks.key(), len(co), len(touched))
		}
		for _, c := range co {
			if bad == nil && counts[c.Port] != c.N {
				bad = fail("key %v port %d: count %d, its hosts make %d", ks.key(), c.Port, c.N, counts[c.Port])
			}
		}
		for _, p := range touched {
			counts[p] = 0
		}
		if bad != nil {
			return bad
		}
		if ks.support < MinCount {
			m.w.dropCounts(ks) // right, but kept only from MinCount hosts on
		}
	}
	return nil
}
