package netprobe

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/row"
)

// SYN-only scanning: ZMap's job, L4 only. SYNScan sweeps a prefix on one
// port with one SYN per allowed address (no retries, no connect, no grab)
// from a single sender goroutine that fills a batch of Options.Batch
// packets from a template (the cookie in the sequence number and source
// port, checksums computed in place), waits for the rate limiter to allow
// the whole batch (WaitN; the limiter's burst is Options.Batch, so the rate
// holds) and hands it to the kernel with one sendmmsg(2). The gate admits
// every address as its packet is built, right before the send.
// Replies are validated by the engine's receiver exactly as for Probe (the
// cookie, then the policy) and reported once per address.

// SYNScanStats summarise one SYNScan.
type SYNScanStats struct {
	Sent     uint64        // SYNs sent (allowed addresses)
	Refused  uint64        // addresses of the prefix outside the policy (not sent)
	Open     uint64        // distinct addresses that answered SYN-ACK
	Closed   uint64        // RSTs received (validated)
	SendTime time.Duration // first send to last send
	Elapsed  time.Duration // SendTime plus the wait for late replies
}

// PacketsPerSecond is the send rate of the scan.
func (s SYNScanStats) PacketsPerSecond() float64 {
	if s.SendTime <= 0 {
		return 0
	}
	return float64(s.Sent) / s.SendTime.Seconds()
}

// SYNScan sends one SYN to port on every allowed address of prefix/bits,
// then listens wait longer for late replies, and calls fn (never
// concurrently) once for each address that answered with a SYN-ACK, with
// the SYN-ACK's window. It needs the "syn" engine (ErrEngine otherwise); a
// prefix wholly outside the policy is ErrRefused. Probe, Sweep and other
// SYNScans may run meanwhile (each gets the replies of its own prefix and
// port; the rate limit is shared).
func (p *Prober) SYNScan(ctx context.Context, prefix uint32, bits int, port uint16, wait time.Duration,
	fn func(addr uint32, window uint16)) (SYNScanStats, error) {
	var st SYNScanStats
	if p.syn == nil {
		return st, fmt.Errorf("syn scan: %w: needs engine %q", ErrEngine, EngineSYN)
	}
	pr, parts, err := p.gate.clip(prefix, bits, port)
	if err != nil {
		return st, fmt.Errorf("syn scan: %w", err)
	}
	sc := &synScan{first: pr.First(), last: pr.Last(), port: port, fn: fn, seen: map[uint32]struct{}{}}
	p.syn.addScan(sc)
	defer p.syn.removeScan(sc)
	start := time.Now()
	sent, err := p.syn.sweep(ctx, parts, port)
	st.SendTime = time.Since(start)
	st.Sent = sent
	st.Refused = pr.Size() - countAddrs(parts)
	if err == nil {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-t.C:
		}
		t.Stop()
	}
	st.Elapsed = time.Since(start)
	sc.mu.Lock()
	st.Open = uint64(len(sc.seen))
	sc.fn = nil // late replies after we return are not reported
	sc.mu.Unlock()
	st.Closed = sc.closed.Load()
	if err != nil {
		return st, fmt.Errorf("syn scan %s port %d: %w", pr, port, err)
	}
	p.log.Debug("syn scanned", zap.Stringer("prefix", pr), zap.Uint16("port", port), zap.Uint64("sent", st.Sent),
		zap.Uint64("open", st.Open), zap.Duration("send_time", st.SendTime))
	return st, nil
}

func countAddrs(ps []ipv4.Prefix) uint64 {
	var n uint64
	for _, p := range ps {
		n += p.Size()
	}
	return n
}

// synScan is the receiver's view of a SYNScan in progress.
type synScan struct {
	first, last uint32
	port        uint16
	closed      atomic.Uint64

	mu   sync.Mutex
	seen map[uint32]struct{}
	fn   func(addr uint32, window uint16)
}

// addScan registers a scan with the receiver. The list is copied on write:
// the receiver reads it for every reply without a lock.
func (e *synEngine) addScan(sc *synScan) {
	e.scansMu.Lock()
	defer e.scansMu.Unlock()
	var l []*synScan
	if old := e.scans.Load(); old != nil {
		l = slices.Clone(*old)
	}
	l = append(l, sc)
	e.scans.Store(&l)
}

func (e *synEngine) removeScan(sc *synScan) {
	e.scansMu.Lock()
	defer e.scansMu.Unlock()
	l := slices.DeleteFunc(slices.Clone(*e.scans.Load()), func(x *synScan) bool { return x == sc })
	e.scans.Store(&l)
}

// reply takes a validated reply from the engine's receiver.
func (s *synScan) reply(from uint32, port uint16, r synReply) {
	if port != s.port || from < s.first || from > s.last {
		return
	}
	if !r.open {
		s.closed.Add(1)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.seen[from]; dup || s.fn == nil {
		return
	}
	s.seen[from] = struct{}{}
	s.fn(from, r.window)
}

// synLen is the length of our SYNs: IPv4 (20) and TCP with an MSS option (24).
const synLen = 44

// synBatch holds up to len(pkts) SYNs ready for one sendmmsg.
type synBatch struct {
	n    int
	pkts [][synLen]byte
	to   []syscall.RawSockaddrInet4
	iov  []syscall.Iovec
	msgs []mmsghdr
}

func newSYNBatch(size int) *synBatch {
	return &synBatch{pkts: make([][synLen]byte, size), to: make([]syscall.RawSockaddrInet4, size),
		iov: make([]syscall.Iovec, size), msgs: make([]mmsghdr, size)}
}

// sweep sends one SYN to port on every allowed address of parts, a batch at
// a time, and returns the number sent.
func (e *synEngine) sweep(ctx context.Context, parts []ipv4.Prefix, port uint16) (uint64, error) {
	p := e.p
	b := newSYNBatch(p.o.Batch)
	var (
		sent    uint64
		srcNet  = uint64(1) << 32 // no /24 yet
		src     uint32
		flushed = func() error {
			if b.n == 0 {
				return nil
			}
			if err := p.lim.WaitN(ctx, b.n); err != nil {
				return err
			}
			p.st.Connects.Add(uint64(b.n))
			if err := b.send(e.send); err != nil {
				return fmt.Errorf("send syns: %w", err)
			}
			sent += uint64(b.n)
			b.n = 0
			return nil
		}
	)
	for dst := range p.gate.addrs(parts, port) {
		if uint64(dst>>8) != srcNet {
			s, err := e.source(dst)
			if err != nil {
				return sent, err
			}
			src, srcNet = s, uint64(dst>>8)
		}
		seq, sport := e.cookie(src, dst, port)
		fillSYN(b.pkts[b.n][:], src, dst, sport, port, seq)
		b.to[b.n] = syscall.RawSockaddrInet4{Family: syscall.AF_INET}
		binary.BigEndian.PutUint32(b.to[b.n].Addr[:], dst)
		b.n++
		p.st.Probes.Add(1)
		if b.n == len(b.pkts) {
			if err := flushed(); err != nil {
				return sent, err
			}
		}
	}
	return sent, flushed()
}

// fillSYN writes the SYN synPacket builds into b (synLen bytes), without
// allocating: the same fields, lengths and checksums.
func fillSYN(b []byte, src, dst uint32, sport, dport uint16, seq uint32) {
	_ = b[synLen-1]
	// IPv4
	b[0], b[1] = 0x45, 0
	binary.BigEndian.PutUint16(b[2:], synLen)
	binary.BigEndian.PutUint16(b[4:], uint16(seq)) // id
	binary.BigEndian.PutUint16(b[6:], 0x4000)      // don't fragment
	b[8], b[9] = 64, syscall.IPPROTO_TCP
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint32(b[12:], src)
	binary.BigEndian.PutUint32(b[16:], dst)
	binary.BigEndian.PutUint16(b[10:], ^fold(sum16(b[:20], 0)))
	// TCP
	t := b[20:synLen]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], 0)
	t[12], t[13] = 6<<4, 0x02 // 24-byte header; SYN
	binary.BigEndian.PutUint16(t[14:], 65535)
	t[16], t[17], t[18], t[19] = 0, 0, 0, 0       // checksum, urgent pointer
	t[20], t[21], t[22], t[23] = 2, 4, 0x05, 0xb4 // MSS 1460
	pseudo := uint32(src>>16) + uint32(src&0xffff) + uint32(dst>>16) + uint32(dst&0xffff) + syscall.IPPROTO_TCP + uint32(len(t))
	binary.BigEndian.PutUint16(t[16:], ^fold(sum16(t, pseudo)))
}

func sum16(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// synSweep is Sweep on the SYN engine: a SYNScan of the prefix, each
// address that answers SYN-ACK grabbed at once (bounded by Concurrency)
// while the scan goes on. No retries: one SYN per address.
func (p *Prober) synSweep(ctx context.Context, pr ipv4.Prefix, port uint16, fn func(row.Row)) (uint64, error) {
	var (
		mu      sync.Mutex // fn is never called concurrently
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := p.SYNScan(sctx, pr.Addr, pr.Bits, port, p.o.Timeout, func(addr uint32, window uint16) {
		w := int64(window)
		wg.Add(1)
		go func() { // never block the receiver
			defer wg.Done()
			if p.acquire(sctx) != nil {
				return
			}
			defer p.release()
			r, ok, err := p.grabOpen(sctx, addr, port, &w)
			switch {
			case err != nil:
				errOnce.Do(func() { first = err; cancel() })
			case ok:
				mu.Lock()
				fn(r)
				mu.Unlock()
			}
		}()
	})
	wg.Wait()
	p.st.Closed.Add(st.Closed)
	if silent := st.Sent - min(st.Sent, st.Open+st.Closed); silent > 0 {
		p.st.Timeouts.Add(silent)
	}
	if err == nil {
		err = first
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		return st.Sent, fmt.Errorf("sweep %s port %d: %w", pr, port, err)
	}
	return st.Sent, nil
}
