//go:build !linux

package netprobe

import (
	"fmt"
	"syscall"
)

type mmsghdr struct{}

func forceRcvBuf(fd, n int) {}

// send sends the packets of b one sendto(2) at a time (sendmmsg is Linux's).
func (b *synBatch) send(fd int) error {
	for i := range b.n {
		to := &syscall.SockaddrInet4{Addr: b.to[i].Addr}
		if err := syscall.Sendto(fd, b.pkts[i][:], 0, to); err != nil {
			return err
		}
	}
	return nil
}

// openReplySocket opens the socket the SYN engine reads replies from: off
// Linux, a raw TCP socket (a copy of every TCP segment received).
func openReplySocket() (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("raw TCP socket: %w", err)
	}
	return fd, nil
}

func incoming(syscall.Sockaddr) bool { return true }
