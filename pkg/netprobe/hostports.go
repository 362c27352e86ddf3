package netprobe

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
)

// Wildcard listeners of this machine (0.0.0.0:P, or [::]:P, which takes
// IPv4 too) accept connections on every loopback address: a lab scan of
// port P would reach the machine's own service on every 127.x.y.z (and a lab
// cannot serve P there anyway: its bind fails). New reads them once from
// /proc/net/tcp and /proc/net/tcp6, and the gate refuses loopback targets
// on those ports like targets outside the policy (ErrRefused, nothing
// sent). Listeners started after New are not seen.

// hostListenPorts returns the ports with a wildcard TCP listener on this
// machine; nil where /proc is not readable.
func hostListenPorts() map[uint16]bool {
	ports := map[uint16]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		for _, p := range wildcardListeners(fh) {
			ports[p] = true
		}
		fh.Close()
	}
	return ports
}

// wildcardListeners parses /proc/net/tcp{,6}: the local ports of LISTEN
// (0A) sockets bound to the all-zeros address.
func wildcardListeners(r io.Reader) []uint16 {
	var out []uint16
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != "0A" {
			continue
		}
		host, port, ok := strings.Cut(f[1], ":")
		if !ok || strings.Trim(host, "0") != "" {
			continue
		}
		if p, err := strconv.ParseUint(port, 16, 16); err == nil {
			out = append(out, uint16(p))
		}
	}
	return out
}

// hostPort reports whether (addr, port) would reach a wildcard listener of
// this machine.
func (g *gate) hostPort(addr uint32, port uint16) bool {
	return addr>>24 == 127 && g.hostPorts[port]
}
