package netprobe

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/row"
)

// SYN engine: ZMap's design on raw sockets. A SYN is built with gopacket
// (IPv4 + TCP, lengths and checksums computed) and sent on a raw IP socket;
// replies are read from an AF_PACKET socket whose classic BPF filter passes
// only SYN-ACKs and RSTs to our source ports (synrecv_linux.go; a raw TCP
// socket elsewhere) and decoded with one DecodingLayerParser. Probes keep no state on the wire: the sequence number
// and the source port are a keyed cookie of (source, destination, port),
// AES under a key drawn for each run (ZMap's validate.c); a SYN-ACK is valid
// when it acknowledges cookie+1 on the cookie's port, a RST when it
// acknowledges cookie+1 or carries cookie, and its source is inside the
// policy (checked again on receive). The kernel answers the SYN-ACKs of our
// raw SYNs with a RST, as for any SYN scan. An open port is then grabbed
// over a connect() like the connect engine's; the row's "w" is the
// SYN-ACK's window.
const (
	synPortBase  = 61000 // source ports 61000..65095, above Linux's ephemeral range
	synPortRange = 4096
)

// synEngine sends SYNs and matches replies to waiting probes.
type synEngine struct {
	p     *Prober
	block cipher.Block
	send  int // raw IP socket (IPPROTO_RAW: we write the IP header)
	recv  int // raw TCP socket: a copy of every TCP segment received

	mu      sync.Mutex
	pending map[uint64][]chan synReply // (dst, port) -> probes waiting
	srcs    map[uint32]uint32          // destination /24 -> source address

	scans   atomic.Pointer[[]*synScan] // the SYN-only scans in progress (synscan.go)
	scansMu sync.Mutex                 // serialises changes of scans

	stop atomic.Bool
	done chan struct{}
}

func svcKey(addr uint32, port uint16) uint64 { return uint64(addr)<<16 | uint64(port) }

type synReply struct {
	open   bool
	window uint16
}

func newSYNEngine(p *Prober) (*synEngine, error) {
	var key [16]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("syn engine key: %w", err)
	}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("syn engine key: %w", err)
	}
	send, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("%w: syn engine: raw IP socket: %w (needs CAP_NET_RAW; use engine %q)", ErrEngine, err, EngineConnect)
	}
	recv, err := openReplySocket()
	if err != nil {
		syscall.Close(send)
		return nil, fmt.Errorf("%w: syn engine: %w (needs CAP_NET_RAW; use engine %q)", ErrEngine, err, EngineConnect)
	}
	// Wake the receiver now and then to see whether it should stop.
	tv := syscall.NsecToTimeval(int64(100 * time.Millisecond))
	if err := syscall.SetsockoptTimeval(recv, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(send)
		syscall.Close(recv)
		return nil, fmt.Errorf("syn engine: %w", err)
	}
	syscall.SetsockoptInt(recv, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<20)
	forceRcvBuf(recv, 32<<20) // as root, past rmem_max: a SYN scan's replies come in bursts
	e := &synEngine{p: p, block: block, send: send, recv: recv, pending: map[uint64][]chan synReply{},
		srcs: map[uint32]uint32{}, done: make(chan struct{})}
	go e.receive()
	return e, nil
}

// cookie is the keyed hash of a probe: the SYN's sequence number and source
// port.
func (e *synEngine) cookie(src, dst uint32, dport uint16) (seq uint32, sport uint16) {
	var in, out [16]byte
	binary.BigEndian.PutUint32(in[0:], src)
	binary.BigEndian.PutUint32(in[4:], dst)
	binary.BigEndian.PutUint16(in[8:], dport)
	e.block.Encrypt(out[:], in[:])
	return binary.BigEndian.Uint32(out[0:]), synPortBase + binary.BigEndian.Uint16(out[4:])%synPortRange
}

// source is the address the kernel would send from to dst (found with a
// UDP connect, which sends nothing), cached per /24.
func (e *synEngine) source(dst uint32) (uint32, error) {
	e.mu.Lock()
	s, ok := e.srcs[dst>>8]
	e.mu.Unlock()
	if ok {
		return s, nil
	}
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: ipOf(dst), Port: 9})
	if err != nil {
		return 0, fmt.Errorf("route to %s: %w", row.FormatAddr(dst), err)
	}
	la := c.LocalAddr().(*net.UDPAddr)
	c.Close()
	s, err = row.ParseAddr(la.IP.String())
	if err != nil {
		return 0, err
	}
	e.mu.Lock()
	e.srcs[dst>>8] = s
	e.mu.Unlock()
	return s, nil
}

func ipOf(a uint32) net.IP { return net.IPv4(byte(a>>24), byte(a>>16), byte(a>>8), byte(a)).To4() }

// probe sends SYNs to (dst, port) (retrying timeouts) and waits for a valid
// reply. The caller checked the policy.
func (e *synEngine) probe(ctx context.Context, dst uint32, port uint16) (synReply, bool, error) {
	src, err := e.source(dst)
	if err != nil {
		return synReply{}, false, err
	}
	seq, sport := e.cookie(src, dst, port)
	ch := make(chan synReply, 1)
	k := svcKey(dst, port)
	e.mu.Lock()
	e.pending[k] = append(e.pending[k], ch)
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		ws := e.pending[k]
		for i, w := range ws {
			if w == ch {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(e.pending, k)
		} else {
			e.pending[k] = ws
		}
		e.mu.Unlock()
	}()
	pkt, err := synPacket(src, dst, sport, port, seq)
	if err != nil {
		return synReply{}, false, err
	}
	for attempt := 0; ; attempt++ {
		if !e.p.gate.admit(dst, port) { // before every send, retries included
			return synReply{}, false, ErrRefused
		}
		if err := e.p.lim.Wait(ctx); err != nil {
			return synReply{}, false, err
		}
		e.p.st.Connects.Add(1)
		if err := syscall.Sendto(e.send, pkt, 0, &syscall.SockaddrInet4{Addr: [4]byte(ipOf(dst))}); err != nil {
			return synReply{}, false, fmt.Errorf("send syn to %s:%d: %w", row.FormatAddr(dst), port, err)
		}
		t := time.NewTimer(e.p.o.Timeout)
		select {
		case r := <-ch:
			t.Stop()
			return r, true, nil
		case <-ctx.Done():
			t.Stop()
			return synReply{}, false, ctx.Err()
		case <-t.C:
		}
		if attempt >= e.p.o.Retries {
			return synReply{}, false, nil
		}
		e.p.st.Retries.Add(1)
	}
}

// synPacket builds an IPv4 SYN.
func synPacket(src, dst uint32, sport, dport uint16, seq uint32) ([]byte, error) {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: ipOf(src), DstIP: ipOf(dst),
		Id: uint16(seq), Flags: layers.IPv4DontFragment}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: seq, SYN: true, Window: 65535,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		return nil, err
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp); err != nil {
		return nil, fmt.Errorf("build syn: %w", err)
	}
	return buf.Bytes(), nil
}

// receive reads TCP segments, validates the replies to our SYNs and hands
// them to the waiting probes.
func (e *synEngine) receive() {
	defer close(e.done)
	var (
		ip4     layers.IPv4
		tcp     layers.TCP
		decoded []gopacket.LayerType
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeIPv4, &ip4, &tcp)
	parser.IgnoreUnsupported = true
	buf := make([]byte, 65536)
	for !e.stop.Load() {
		n, sa, err := syscall.Recvfrom(e.recv, buf, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			if !e.stop.Load() {
				e.p.log.Warn("syn engine receive stopped", zap.Error(err))
			}
			return
		}
		if !incoming(sa) || !synCandidate(buf[:n]) {
			continue // cheap pre-filter: not a SYN-ACK or RST to our source ports
		}
		if err := parser.DecodeLayers(buf[:n], &decoded); err != nil || len(decoded) < 2 {
			continue
		}
		if !(tcp.SYN && tcp.ACK) && !tcp.RST {
			continue // our own SYNs on lo, and all other traffic
		}
		dport := uint16(tcp.DstPort)
		if dport < synPortBase || dport >= synPortBase+synPortRange {
			continue
		}
		from := binary.BigEndian.Uint32(ip4.SrcIP.To4())
		to := binary.BigEndian.Uint32(ip4.DstIP.To4())
		port := uint16(tcp.SrcPort)
		seq, sport := e.cookie(to, from, port)
		valid := sport == dport && (tcp.Ack == seq+1 || (tcp.RST && tcp.Seq == seq))
		if !valid || !e.p.gate.replyFrom(from) {
			e.p.st.SYNInvalid.Add(1)
			continue
		}
		r := synReply{open: tcp.SYN && tcp.ACK, window: tcp.Window}
		if scans := e.scans.Load(); scans != nil {
			for _, sc := range *scans {
				sc.reply(from, port, r)
			}
		}
		e.mu.Lock()
		for _, ch := range e.pending[svcKey(from, port)] {
			select {
			case ch <- r:
			default: // already answered (a retransmitted SYN-ACK)
			}
		}
		e.mu.Unlock()
	}
}

// synCandidate reports whether an IPv4 packet may be a reply to one of our
// SYNs (TCP, SYN-ACK or RST, to a port of our source range), looking at the
// bytes only; DecodeLayers and the cookie decide.
func synCandidate(b []byte) bool {
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != syscall.IPPROTO_TCP {
		return false
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl+20 {
		return false
	}
	t := b[ihl:]
	dport := binary.BigEndian.Uint16(t[2:])
	flags := t[13]
	const syn, rst, ack = 0x02, 0x04, 0x10
	return dport >= synPortBase && dport < synPortBase+synPortRange && (flags&rst != 0 || flags&(syn|ack) == syn|ack)
}

func (e *synEngine) close() error {
	e.stop.Store(true)
	<-e.done
	return errors.Join(syscall.Close(e.send), syscall.Close(e.recv))
}
