package scanbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Run builds the namespaces, runs every scanner Runs times at every rate
// (interleaved, so machine noise spreads over all of them) and removes the
// namespaces. A scanner whose binary is missing is skipped (Result.Skipped).
func Run(ctx context.Context, c Config, log *zap.Logger) (_ *Report, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.WithDefaults()
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoIP, err)
	}
	pr := c.Prefix()
	if !benchRange.Contains(pr.First()) || !benchRange.Contains(pr.Last()) { // the scan safety rule, whatever the config says
		return nil, fmt.Errorf("%w: targets %s outside %s", ErrConfig, pr, benchRange)
	}
	skipped := map[string]string{}
	for _, s := range c.Scanners {
		if s == ScannerGPS {
			continue
		}
		if _, err := exec.LookPath(s); err != nil {
			skipped[s] = s + " not installed (apt-get install -y zmap masscan)"
			log.Warn("scanner skipped", zap.String("scanner", s), zap.String("reason", skipped[s]))
		}
	}
	rep := &Report{Targets: c.Targets, Open: c.Open, Port: c.Port, Prefix: pr.String(), Runs: c.Runs,
		Cooldown: c.Cooldown.String(), Machine: machine(), Start: time.Now().UTC()}
	for _, r := range c.Rates {
		for _, s := range c.Scanners {
			rep.Results = append(rep.Results, Result{Scanner: s, Rate: r, Skipped: skipped[s]})
		}
	}
	dir, err := os.MkdirTemp("", "gpsbench-")
	if err != nil {
		return nil, fmt.Errorf("make bench dir: %w", err)
	}
	defer os.RemoveAll(dir)
	empty := filepath.Join(dir, "empty.conf")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		return nil, fmt.Errorf("make bench dir: %w", err)
	}
	l, err := newLab(ctx, c, log)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, l.close()) }()
	openSet := map[uint32]bool{}
	for _, a := range c.OpenAddrs() {
		openSet[a] = true
	}
	for run := 1; run <= c.Runs; run++ {
		for i := range rep.Results {
			res := &rep.Results[i]
			if res.Skipped != "" {
				continue
			}
			var s Sample
			var err error
			start := time.Now()
			switch res.Scanner {
			case ScannerGPS:
				s, err = runGPS(ctx, c, l.labInfo, res.Rate, openSet)
			case ScannerZMap:
				s, err = runZMap(ctx, c, l.labInfo, res.Rate, openSet, dir, empty)
			case ScannerMasscan:
				s, err = runMasscan(ctx, c, l.labInfo, res.Rate)
			}
			s.Seconds = time.Since(start).Seconds()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				return nil, fmt.Errorf("run %s at rate %s: %w", res.Scanner, rateString(res.Rate), err)
			}
			s.HitRate = float64(s.Found) / float64(c.Open)
			res.Samples = append(res.Samples, s)
			log.Info("bench run", zap.String("scanner", res.Scanner), zap.String("rate_cap", rateString(res.Rate)),
				zap.Int("run", run), zap.Uint64("sent", s.Sent), zap.Float64("pps", s.PPS), zap.Int("found", s.Found),
				zap.Int("false", s.False), zap.Float64("hit_rate", s.HitRate), zap.Float64("seconds", s.Seconds))
		}
	}
	rep.summarise()
	return rep, nil
}

func machine() string {
	var u syscall.Utsname
	rel := ""
	if syscall.Uname(&u) == nil {
		b := make([]byte, 0, len(u.Release))
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		rel = string(b)
	}
	return fmt.Sprintf("%d cores, %s/%s, linux %s, %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, rel, runtime.Version())
}

// inNS is a command run in the scanner namespace; it is killed with the
// benchmark (ctx, and the parent's death).
func inNS(ctx context.Context, ns string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

func runZMap(ctx context.Context, c Config, l labInfo, rate float64, open map[uint32]bool, dir, empty string) (Sample, error) {
	out := filepath.Join(dir, "zmap.out")
	os.Remove(out)
	cmd := inNS(ctx, l.ScanNS, zmapArgs(c, l, rate, out, empty)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return Sample{}, fmt.Errorf("%w: %s", err, tail(stderr.String()))
	}
	var s Sample
	var err error
	if s.Sent, s.PPS, err = parseZMapStatus(stderr.Bytes()); err != nil {
		return s, err
	}
	f, err := os.Open(out)
	if err != nil {
		return s, err
	}
	defer f.Close()
	found, err := readAddrs(f)
	if err != nil {
		return s, err
	}
	s.Found, s.False = hits(found, open)
	return s, nil
}

// runMasscan runs masscan and reads its status output. On a veth, masscan
// 1.3's receive thread can sit in libpcap long after --wait is over; it is
// killed once its send phase at the cap plus the wait and a grace period
// are over, and its "found=" count is its result.
func runMasscan(ctx context.Context, c Config, l labInfo, rate float64) (Sample, error) {
	limit := 15*time.Second + c.Cooldown
	if rate > 0 {
		limit += time.Duration(float64(c.Targets) / rate * float64(time.Second))
	}
	mctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := inNS(mctx, l.ScanNS, masscanArgs(c, l, rate)...)
	var stderr, stdout bytes.Buffer
	cmd.Stderr, cmd.Stdout = &stderr, &stdout
	err := cmd.Run()
	if err != nil && mctx.Err() == nil {
		return Sample{}, fmt.Errorf("%w: %s", err, tail(stderr.String()))
	}
	pps, found, perr := parseMasscanStatus(stderr.Bytes())
	if perr != nil {
		return Sample{}, fmt.Errorf("%w: %s", perr, tail(stderr.String()))
	}
	// masscan reports no per-address list once killed; found= counts
	// distinct answers, all of them open (closed ones answer RST).
	return Sample{Sent: uint64(c.Targets), PPS: pps, Found: found}, nil
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

// HelperEnv carries a helper job to the gps binary run in the scanner
// namespace; a command that sees it calls RunHelper instead of its work.
const HelperEnv = "GPS_SCANBENCH_HELPER"

// helperJob is what the helper scans.
type helperJob struct {
	Prefix   string        `json:"prefix"`
	Port     uint16        `json:"port"`
	Rate     float64       `json:"rate"` // 0: unlimited
	Batch    int           `json:"batch"`
	Cooldown time.Duration `json:"cooldown"`
}

// helperResult is the helper's answer, one JSON object on stdout.
type helperResult struct {
	Sent        uint64   `json:"sent"`
	SendSeconds float64  `json:"send_seconds"`
	Open        []uint32 `json:"open"`
	Error       string   `json:"error,omitempty"`
}

func runGPS(ctx context.Context, c Config, l labInfo, rate float64, open map[uint32]bool) (Sample, error) {
	job, err := json.Marshal(helperJob{Prefix: c.Prefix().String(), Port: c.Port, Rate: rate, Batch: c.Batch, Cooldown: c.Cooldown})
	if err != nil {
		return Sample{}, err
	}
	cmd := inNS(ctx, l.ScanNS, c.Self...)
	cmd.Env = append(os.Environ(), HelperEnv+"="+string(job))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var r helperResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return Sample{}, fmt.Errorf("gps helper: %w; no result (%v): %s", runErr, err, tail(stderr.String()))
	}
	if r.Error != "" {
		return Sample{}, fmt.Errorf("gps helper: %s", r.Error)
	}
	if runErr != nil {
		return Sample{}, fmt.Errorf("gps helper: %w: %s", runErr, tail(stderr.String()))
	}
	s := Sample{Sent: r.Sent}
	if r.SendSeconds > 0 {
		s.PPS = float64(r.Sent) / r.SendSeconds
	}
	s.Found, s.False = hits(r.Open, open)
	return s, nil
}
