package scanbench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gpsscan/gps/pkg/row"
)

// lab is what a scanner needs to know of the namespaces.
type labInfo struct {
	ScanNS    string // network namespace the scanners run in
	ScanIf    string // its veth
	TargetMAC string // the veth peer's MAC: the "gateway"
}

// unlimitedMasscan is masscan's rate for "unlimited" (it has no such value).
const unlimitedMasscan = 100_000_000

func seconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

// zmapArgs is the zmap 2.x command line (after ip netns exec NS): one probe
// per address, no blocklist or config file (the target is in 198.18.0.0/15,
// which zmap's default blocklist excludes), only the target prefix.
func zmapArgs(c Config, l labInfo, rate float64, out, empty string) []string {
	return []string{"zmap", "-p", strconv.Itoa(int(c.Port)), "-i", l.ScanIf, "-S", scanAddr, "-G", l.TargetMAC,
		"-r", strconv.FormatFloat(rate, 'f', 0, 64), // 0: unlimited
		"-P", "1", "-c", strconv.Itoa(seconds(c.Cooldown)), "-b", empty, "-C", empty, "-o", out,
		"--disable-syslog", "-v", "2", c.Prefix().String()}
}

// masscanArgs is the masscan command line: no retries, only the target
// prefix.
func masscanArgs(c Config, l labInfo, rate float64) []string {
	if rate == 0 {
		rate = unlimitedMasscan
	}
	return []string{"masscan", c.Prefix().String(), "-p" + strconv.Itoa(int(c.Port)),
		"--rate", strconv.FormatFloat(rate, 'f', 0, 64), "-e", l.ScanIf, "--adapter-ip", scanAddr,
		"--router-mac", l.TargetMAC, "--wait", strconv.Itoa(seconds(c.Cooldown)), "--retries", "0"}
}

// zmap's status line: "0:01 59%; send: 65536 done (91.1 Kp/s avg); ...".
var zmapDone = regexp.MustCompile(`send: (\d+) done \(([0-9.]+) ([KMG]?)p/s avg\)`)

// parseZMapStatus returns what zmap sent and its average send rate, from
// its status output (the last "done" line).
func parseZMapStatus(stderr []byte) (sent uint64, pps float64, err error) {
	m := zmapDone.FindAllSubmatch(stderr, -1)
	if len(m) == 0 {
		return 0, 0, fmt.Errorf("no %q status line in zmap's output", "send: N done")
	}
	last := m[len(m)-1]
	sent, _ = strconv.ParseUint(string(last[1]), 10, 64)
	pps, _ = strconv.ParseFloat(string(last[2]), 64)
	return sent, pps * unit(string(last[3])), nil
}

func unit(s string) float64 {
	switch s {
	case "K", "k":
		return 1e3
	case "M":
		return 1e6
	case "G":
		return 1e9
	}
	return 1
}

// masscan's status line (\r-terminated): "rate: 99.93-kpps, 71.50% done, ... found=69".
var masscanStatus = regexp.MustCompile(`rate:\s*([0-9.]+)-kpps,\s*([0-9.]+)% done.*?found=(\d+)`)

// parseMasscanStatus returns masscan's last send rate reading before it was
// done (its own smoothed rate) and the most it reported found.
func parseMasscanStatus(stderr []byte) (pps float64, found int, err error) {
	lines := bytes.FieldsFunc(stderr, func(r rune) bool { return r == '\r' || r == '\n' })
	seen := false
	for _, ln := range lines {
		m := masscanStatus.FindSubmatch(ln)
		if m == nil {
			continue
		}
		seen = true
		k, _ := strconv.ParseFloat(string(m[1]), 64)
		done, _ := strconv.ParseFloat(string(m[2]), 64)
		f, _ := strconv.Atoi(string(m[3]))
		found = max(found, f)
		if done < 100 && k > 0 {
			pps = k * 1e3
		}
	}
	if !seen {
		return 0, 0, fmt.Errorf("no status line in masscan's output")
	}
	return pps, found, nil
}

// readAddrs reads addresses from scanner output: zmap's one address a line,
// masscan's -oL "open tcp 80 198.19.0.7 1700000000"; other lines are skipped.
func readAddrs(r io.Reader) ([]uint32, error) {
	var out []uint32
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 1:
		case len(f) >= 4 && f[0] == "open":
			f = f[3:]
		default:
			continue
		}
		a, err := row.ParseAddr(f[0])
		if err != nil {
			continue
		}
		out = append(out, a)
	}
	return out, sc.Err()
}
