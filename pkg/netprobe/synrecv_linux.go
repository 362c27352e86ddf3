package netprobe

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// replyFilter is the classic BPF program of the reply socket: IPv4 TCP, not
// a fragment, to a port of our source range, SYN-ACK or RST. The kernel runs
// it on every packet received, so only candidates are copied to us. A
// cooked (SOCK_DGRAM) packet socket runs it on the network header.
func replyFilter() ([]bpf.RawInstruction, error) {
	const (
		drop   = 0
		accept = 0xffff
	)
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 9, Size: 1},                                                      // 0: protocol
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: syscall.IPPROTO_TCP, SkipTrue: 10},             // 1: -> drop
		bpf.LoadAbsolute{Off: 6, Size: 2},                                                      // 2: flags + fragment offset
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 8},                            // 3: a later fragment -> drop
		bpf.LoadMemShift{Off: 0},                                                               // 4: X = IP header length
		bpf.LoadIndirect{Off: 2, Size: 2},                                                      // 5: TCP destination port
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: synPortBase, SkipTrue: 5},                      // 6: -> drop
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: synPortBase + synPortRange, SkipTrue: 4}, // 7: -> drop
		bpf.LoadIndirect{Off: 13, Size: 1},                                                     // 8: TCP flags
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x04, SkipTrue: 3},                              // 9: RST -> accept
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x12},                                         // 10: SYN|ACK bits
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x12, SkipTrue: 1},                                // 11: SYN-ACK -> accept
		bpf.RetConstant{Val: drop},                                                             // 12
		bpf.RetConstant{Val: accept},                                                           // 13
	})
}

// openReplySocket opens the socket the SYN engine reads replies from: an
// AF_PACKET socket for IPv4 on every interface (it sees packets as they
// arrive, before the TCP stack, as ZMap's pcap does), with replyFilter
// attached. It needs CAP_NET_RAW.
func openReplySocket() (int, error) {
	proto := htons(syscall.ETH_P_IP)
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, int(proto))
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w", err)
	}
	prog, err := replyFilter()
	if err == nil {
		fp := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
		err = unix.SetsockoptSockFprog(fd, syscall.SOL_SOCKET, syscall.SO_ATTACH_FILTER, &fp)
	}
	if err == nil {
		err = syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: proto})
	}
	if err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("packet socket filter: %w", err)
	}
	return fd, nil
}

// incoming reports whether a packet read from the reply socket arrived (a
// packet socket also sees what this host sends, on loopback twice).
func incoming(from syscall.Sockaddr) bool {
	ll, ok := from.(*syscall.SockaddrLinklayer)
	return !ok || ll.Pkttype != syscall.PACKET_OUTGOING
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
