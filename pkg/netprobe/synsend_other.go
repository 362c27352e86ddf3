//go:build !linux

package netprobe

import "syscall"

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
