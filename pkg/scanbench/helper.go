package scanbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/netprobe"
)

// RunHelper runs the gps side of one benchmark run: job is HelperEnv's
// value. It is called in the scanner namespace (the benchmark starts this
// binary there with ip netns exec), scans the job's prefix with
// netprobe.SYNScan under a policy that allows that prefix only (the
// benchmarking range), and writes one JSON result to out.
func RunHelper(ctx context.Context, job string, out io.Writer, log *zap.Logger) error {
	res, err := helper(ctx, job, log)
	if err != nil {
		res.Error = err.Error()
	}
	if e := json.NewEncoder(out).Encode(res); e != nil {
		return fmt.Errorf("write helper result: %w", e)
	}
	return err
}

func helper(ctx context.Context, job string, log *zap.Logger) (helperResult, error) {
	var j helperJob
	if err := json.Unmarshal([]byte(job), &j); err != nil {
		return helperResult{}, fmt.Errorf("read helper job: %w", err)
	}
	pr, err := ipv4.ParsePrefix(j.Prefix)
	if err != nil {
		return helperResult{}, fmt.Errorf("read helper job: %w", err)
	}
	if !(TargetSpace.Contains(pr.First()) && TargetSpace.Contains(pr.Last())) {
		return helperResult{}, fmt.Errorf("%w: helper target %s outside %s", ErrConfig, pr, TargetSpace)
	}
	pol, err := ipv4.NewPolicy(ipv4.NewSet(pr), ipv4.Set{})
	if err != nil {
		return helperResult{}, err
	}
	rate := j.Rate
	if rate == 0 {
		rate = -1 // netprobe: unlimited
	}
	p, err := netprobe.New(netprobe.Options{Policy: pol, Engine: netprobe.EngineSYN, Rate: rate, Batch: j.Batch, Log: log})
	if err != nil {
		return helperResult{}, err
	}
	var r helperResult
	st, err := p.SYNScan(ctx, pr.First(), pr.Bits, j.Port, j.Cooldown, func(addr uint32, _ uint16) {
		r.Open = append(r.Open, addr)
	})
	r.Sent, r.SendSeconds = st.Sent, st.SendTime.Seconds()
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	return r, err
}
