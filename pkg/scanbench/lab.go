package scanbench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// lab is the pair of namespaces, the veth between them and the listeners.
type lab struct {
	labInfo
	TargetNS, TargetIf, ScanMAC string
	fds                         []int    // listeners, in the target namespace
	made                        []string // namespaces this lab added
	log                         *zap.Logger
}

// ipCmd runs ip with args.
func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newLab builds the namespaces and binds the listeners. On error, what was
// made is removed. Names carry the pid and a random tag, so that concurrent
// runs do not collide, nor a run with one left behind by a killed run
// whose pid came round again; an interface name stays within 15 bytes.
func newLab(ctx context.Context, c Config, log *zap.Logger) (_ *lab, err error) {
	id := fmt.Sprintf("%d%03x", os.Getpid(), rand.IntN(1<<12))
	l := &lab{labInfo: labInfo{ScanNS: "gpsbench-" + id + "-s", ScanIf: "gbs" + id,
		TargetMAC: "02:00:c6:12:00:02"}, TargetNS: "gpsbench-" + id + "-t", TargetIf: "gbt" + id,
		ScanMAC: "02:00:c6:12:00:01", log: log}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.close())
		}
	}()
	steps := [][]string{
		{"netns", "add", l.ScanNS},
		{"netns", "add", l.TargetNS},
		{"link", "add", l.ScanIf, "address", l.ScanMAC, "netns", l.ScanNS, "type", "veth",
			"peer", "name", l.TargetIf, "address", l.TargetMAC, "netns", l.TargetNS},
		{"-n", l.ScanNS, "addr", "add", scanAddr + "/30", "dev", l.ScanIf},
		{"-n", l.ScanNS, "link", "set", "lo", "up"},
		{"-n", l.ScanNS, "link", "set", l.ScanIf, "up"},
		{"-n", l.ScanNS, "route", "add", TargetSpace.String(), "via", targetAddr},
		{"-n", l.ScanNS, "neigh", "replace", targetAddr, "lladdr", l.TargetMAC, "dev", l.ScanIf, "nud", "permanent"},
		{"-n", l.TargetNS, "addr", "add", targetAddr + "/30", "dev", l.TargetIf},
		{"-n", l.TargetNS, "link", "set", "lo", "up"},
		{"-n", l.TargetNS, "link", "set", l.TargetIf, "up"},
		// AnyIP: every address of 198.19.0.0/16 is local, so closed ones answer RST.
		{"-n", l.TargetNS, "route", "add", "local", TargetSpace.String(), "dev", "lo"},
		{"-n", l.TargetNS, "neigh", "replace", scanAddr, "lladdr", l.ScanMAC, "dev", l.TargetIf, "nud", "permanent"},
	}
	for _, s := range steps {
		if err := ipCmd(ctx, s...); err != nil {
			return nil, fmt.Errorf("build bench namespaces: %w", err)
		}
		if s[0] == "netns" {
			l.made = append(l.made, s[2])
		}
	}
	open := c.OpenAddrs()
	if l.fds, err = listenIn("/run/netns/"+l.TargetNS, open, c.Port); err != nil {
		return nil, fmt.Errorf("bind bench listeners: %w", err)
	}
	log.Info("bench namespaces up", zap.String("scanner_netns", l.ScanNS), zap.String("target_netns", l.TargetNS),
		zap.String("veth", l.ScanIf+"/"+l.TargetIf), zap.Stringer("targets", c.Prefix()), zap.Int("listeners", len(l.fds)),
		zap.Uint16("port", c.Port))
	return l, nil
}

// close closes the listeners and deletes the namespaces (which deletes the
// veth pair).
func (l *lab) close() error {
	var errs []error
	for _, fd := range l.fds {
		syscall.Close(fd)
	}
	l.fds = nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ns := range l.made { // never one this lab did not add
		if err := ipCmd(ctx, "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	l.made = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove bench namespaces: %w", err)
	}
	l.log.Info("bench namespaces removed", zap.String("scanner_netns", l.ScanNS), zap.String("target_netns", l.TargetNS))
	return nil
}

// listenIn binds a listening TCP socket to each (addr, port) inside the
// network namespace at nsPath. A socket belongs to the namespace of the
// thread that made it, so a locked OS thread enters the namespace, makes
// them and comes back; if it cannot come back, it is not unlocked and dies
// with its goroutine.
func listenIn(nsPath string, addrs []uint32, port uint16) ([]int, error) {
	type res struct {
		fds []int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		fds, err, back := listenLocked(nsPath, addrs, port)
		if back {
			runtime.UnlockOSThread()
		}
		ch <- res{fds, err}
	}()
	r := <-ch
	return r.fds, r.err
}

func listenLocked(nsPath string, addrs []uint32, port uint16) (fds []int, err error, back bool) {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err, true
	}
	defer orig.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		return nil, err, true
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter %s: %w", nsPath, err), true
	}
	defer func() {
		if e := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); e != nil {
			err, back = errors.Join(err, fmt.Errorf("leave %s: %w", nsPath, e)), false
		}
		if err != nil {
			for _, fd := range fds {
				syscall.Close(fd)
			}
			fds = nil
		}
	}()
	for _, a := range addrs {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return fds, fmt.Errorf("socket: %w", err), true
		}
		fds = append(fds, fd)
		sa := &syscall.SockaddrInet4{Port: int(port), Addr: [4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}}
		if err := syscall.Bind(fd, sa); err != nil {
			return fds, fmt.Errorf("bind %d.%d.%d.%d:%d: %w", sa.Addr[0], sa.Addr[1], sa.Addr[2], sa.Addr[3], port, err), true
		}
		if err := syscall.Listen(fd, 64); err != nil {
			return fds, fmt.Errorf("listen: %w", err), true
		}
	}
	return fds, nil, true
}
