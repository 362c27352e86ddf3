package netprobe

import (
	"errors"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of sendmmsg(2); Go pads it like C does.
type mmsghdr struct {
	hdr syscall.Msghdr
	len uint32
}

// forceRcvBuf raises a socket's receive buffer past rmem_max where allowed
// (CAP_NET_ADMIN); it is a hint, failures are ignored.
func forceRcvBuf(fd, n int) {
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, n)
}

// sendBatch sends every packet of b on the raw socket fd with as few
// sendmmsg(2) calls as the kernel allows.
func (b *synBatch) send(fd int) error {
	n := b.n
	for i := range n {
		m := &b.msgs[i]
		m.hdr = syscall.Msghdr{Name: (*byte)(unsafe.Pointer(&b.to[i])), Namelen: syscall.SizeofSockaddrInet4,
			Iov: &b.iov[i], Iovlen: 1}
		b.iov[i] = syscall.Iovec{Base: &b.pkts[i][0]}
		b.iov[i].SetLen(synLen)
	}
	for done := 0; done < n; {
		r, _, errno := syscall.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.msgs[done])),
			uintptr(n-done), 0, 0, 0)
		if errno != 0 {
			switch {
			case errors.Is(errno, syscall.EINTR), errors.Is(errno, syscall.EAGAIN):
				continue
			case errors.Is(errno, syscall.ENOBUFS): // the device queue is full: let it drain
				time.Sleep(50 * time.Microsecond)
				continue
			}
			return errno
		}
		done += int(r)
	}
	return nil
}
