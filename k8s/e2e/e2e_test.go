// Package e2e runs k8s/ in a real single-node Kubernetes: TestKubernetes
// calls run.sh, which brings the cluster up, installs the official NATS
// chart and the overlay k8s/e2e/overlay, and runs TestCluster against it.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"

	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/pkg/wire"
	"github.com/gpsscan/gps/services/all"
	"github.com/gpsscan/gps/services/inventory"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/pipetest"
	"github.com/gpsscan/gps/services/predictor"
)

func TestMain(m *testing.M) { pipetest.Main(m) }

// minTimeout is the least -timeout TestKubernetes runs with, and
// stopMargin the part of it left to run.sh to stop the cluster when out of
// time. A cold run on a fresh 2-core machine took 19 minutes after `go
// test ./...` (30 with its own test binary to build; 52 on a machine
// shared with other builds, load 6-14), most of it building Kubernetes
// and helm; a warm run 3 to 5.
const minTimeout, stopMargin = 30 * time.Minute, 2 * time.Minute

// TestKubernetes runs k8s/e2e/run.sh: only with GPS_E2E=1, as root (it
// installs Debian packages, starts containerd and a kubelet, adds network
// interfaces).
func TestKubernetes(t *testing.T) {
	if os.Getenv("GPS_E2E") != "1" {
		t.Skip("set GPS_E2E=1 to run k8s/ in a real single-node cluster (root; see k8s/README.md)")
	}
	if os.Geteuid() != 0 {
		t.Skip("GPS_E2E=1 but not root: the cluster needs root")
	}
	// run.sh gets the test's time but a margin: on SIGTERM it stops the
	// cluster and exits (its trap), so a run out of time fails cleanly
	// instead of leaving a kubelet behind.
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		if time.Until(d) < minTimeout {
			t.Fatalf("GPS_E2E=1 needs -timeout %v or more (a cold run builds Kubernetes first; see k8s/README.md); %s left", minTimeout, time.Until(d).Round(time.Minute))
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-stopMargin))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "./run.sh")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopMargin / 2
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(os.Stdout, &out)
	cmd.Stderr = cmd.Stdout
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 77 {
		t.Skipf("run.sh skipped: %s", lastLine(out.String(), "SKIP: "))
	}
	if err != nil {
		if ctx.Err() != nil {
			t.Fatalf("run.sh: %v: out of time (-timeout, less %v to stop the cluster)", err, stopMargin)
		}
		t.Fatalf("run.sh: %v", err)
	}
	for line := range strings.SplitSeq(out.String(), "\n") {
		if i := strings.Index(line, "E2E: "); i >= 0 {
			t.Log(line[i:])
		}
	}
}

func lastLine(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if j := strings.Index(lines[i], prefix); j >= 0 {
			return lines[i][j+len(prefix):]
		}
	}
	return "(no reason given)"
}

// cluster is what run.sh hands TestCluster.
type cluster struct {
	t       *testing.T
	kubectl string
	world   string
	nats    string
}

func (c *cluster) k(args ...string) string {
	c.t.Helper()
	out, err := exec.Command(c.kubectl, args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (c *cluster) pods(ns string) []corev1.Pod {
	c.t.Helper()
	var l corev1.PodList
	if err := json.Unmarshal([]byte(c.k("-n", ns, "get", "pods", "-o", "json")), &l); err != nil {
		c.t.Fatal(err)
	}
	return l.Items
}

func component(p corev1.Pod) string { return p.Labels["app.kubernetes.io/component"] }

func get(url string) (int, string, error) {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestCluster checks the pipeline deployed by run.sh: only with
// GPS_E2E_CLUSTER=1 (run.sh sets it, with the kubectl, the NATS servers'
// pod addresses and the lab world).
func TestCluster(t *testing.T) {
	if os.Getenv("GPS_E2E_CLUSTER") != "1" {
		t.Skip("run by k8s/e2e/run.sh against the cluster it starts (GPS_E2E_CLUSTER=1)")
	}
	c := &cluster{t: t, kubectl: os.Getenv("KUBECTL"), world: os.Getenv("GPS_E2E_WORLD"), nats: os.Getenv("GPS_E2E_NATS")}
	ctx := context.Background()
	var faults []string

	// The reference: `gps all --world` on the same world, outside the cluster.
	t0 := time.Now()
	refBus := bustest.New(t)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	sim, _, err := all.Run(rctx, all.Deps{Config: all.Config{World: c.world, Quiet: time.Second,
		Modeler: modeler.Config{Hitrate: pipetest.Hitrate, Step: 16}, Predictor: predictor.Config{Hitrate: pipetest.Hitrate}},
		Bus: refBus, Log: zap.NewNop()})
	cancel()
	if err != nil {
		t.Fatalf("gps all --world: %v", err)
	}
	ref := pipetest.Collect(t, refBus)
	t.Logf("gps all --world (%s): coverage %.4f, %d services found, %d predictions", time.Since(t0).Round(time.Second), sim.Coverage, len(ref.Found), len(ref.Preds))

	// Every address is the benchmarking range's (pods, node) or loopback.
	bench := netip.MustParsePrefix("198.18.0.0/15")
	podCount := map[string]int{}
	for _, ns := range []string{"nats", "gps"} {
		for _, p := range c.pods(ns) {
			podCount[ns]++
			for _, ip := range append([]string{p.Status.PodIP, p.Status.HostIP}, "") {
				if ip == "" {
					continue
				}
				if a, err := netip.ParseAddr(ip); err != nil || !(bench.Contains(a) || a.IsLoopback()) {
					t.Errorf("pod %s/%s: address %s outside 198.18.0.0/15", ns, p.Name, ip)
				}
			}
		}
	}

	b, err := bus.Connect(ctx, bus.Config{URL: c.nats, Name: "gps-e2e"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	// One prober for the run compared with gps all (two each order what
	// they pulled, which moves the predictions past CheckClose's 2 %): the
	// other ends before any work is published.
	c.k("-n", "gps", "scale", "deployment/gps-prober", "--replicas=1")
	c.k("-n", "gps", "rollout", "status", "deployment/gps-prober", "--timeout=5m")
	servicetest.WaitWithin(t, 2*time.Minute, "one prober pod", func() bool {
		n := 0
		for _, p := range c.pods("gps") {
			if component(p) == "prober" {
				n++
			}
		}
		return n == 1
	})

	// The import: the seeder Job, created suspended, is let go.
	c.k("-n", "gps", "patch", "job", "gps-seeder", "--type", "merge", "-p", `{"spec":{"suspend":false}}`)
	results := pipetest.NewResultCounter(b)
	servicetest.WaitWithin(t, 3*time.Minute, "the run to get under way (3000 results)", func() bool {
		return results.Count(ctx) > 3000
	})

	// Faults mid-run: the server leading RESULTS, then the modeler.
	leader := ""
	servicetest.WaitWithin(t, time.Minute, "the leader of RESULTS", func() bool {
		s, err := b.JS.Stream(ctx, bus.StreamResults)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil || info.Cluster == nil {
			return false
		}
		if info.Config.Replicas != 3 || len(info.Cluster.Replicas) != 2 {
			t.Errorf("RESULTS: %d replicas (%d peers besides the leader), want 3", info.Config.Replicas, len(info.Cluster.Replicas))
		}
		leader = info.Cluster.Leader
		return leader != ""
	})
	// count is the results so far, tried again while RESULTS elects a
	// leader (Count is -1 then).
	count := func() int64 {
		n := results.Count(ctx)
		for i := 0; n < 0 && i < 20; i++ {
			time.Sleep(500 * time.Millisecond)
			n = results.Count(ctx)
		}
		return n
	}
	n := count()
	c.k("-n", "nats", "delete", "pod", leader, "--wait=false")
	faults = append(faults, fmt.Sprintf("NATS pod %s (leader of RESULTS) deleted at %d results", leader, n))
	time.Sleep(2 * time.Second)
	for _, p := range c.pods("gps") {
		if component(p) == "modeler" && p.DeletionTimestamp == nil {
			c.k("-n", "gps", "delete", "pod", p.Name, "--wait=false")
			faults = append(faults, fmt.Sprintf("modeler pod %s deleted at %d results", p.Name, count()))
		}
	}
	for _, f := range faults {
		t.Log("fault: " + f)
	}

	c.k("-n", "gps", "wait", "--for=condition=complete", "job/gps-seeder", "--timeout=5m")
	c.k("-n", "nats", "rollout", "status", "statefulset/nats", "--timeout=5m")
	c.k("-n", "gps", "rollout", "status", "deployment/gps-modeler", "--timeout=5m")
	idle := func() {
		t.Helper()
		ictx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		if err := b.WaitIdle(ictx, 5*time.Second, all.Consumers(), zap.NewNop()); err != nil {
			t.Fatalf("wait for the pipeline: %v", err)
		}
	}
	idle()
	t.Logf("pipeline idle: %d results", count())

	// Telemetry of every pod.
	for _, p := range c.pods("gps") {
		if p.Status.Phase != corev1.PodRunning {
			continue
		}
		base := "http://" + p.Status.PodIP + ":9090"
		hc, _, herr := get(base + "/healthz")
		rc, _, rerr := get(base + "/readyz")
		mc, body, merr := get(base + "/metrics")
		if err := errors.Join(herr, rerr, merr); err != nil || hc != 200 || rc != 200 || mc != 200 {
			t.Errorf("%s: /healthz %d, /readyz %d, /metrics %d: %v", p.Name, hc, rc, mc, err)
			continue
		}
		t.Logf("%s (%s): /healthz 200, /readyz 200, /metrics: %s", p.Name, p.Status.PodIP, metricsDigest(body))
		if component(p) == "prober" { // what lets the run's order part from gps all's
			var given []string
			for _, r := range telemetry.LockstepReasons() {
				v, _ := metricValue(body, fmt.Sprintf("%s{%s=%q}", telemetry.NameLockstepGivenUp, telemetry.LabelReason, r))
				given = append(given, fmt.Sprintf("%s %.0f", r, v))
			}
			t.Logf("%s: lockstep waits given up: %s", p.Name, strings.Join(given, ", "))
		}
	}
	c.checkInventory(ctx, b)
	for _, p := range c.pods("nats") {
		code, body, err := get("http://" + p.Status.PodIP + ":8222/healthz?js-enabled-only=true")
		if err != nil || code != 200 {
			t.Errorf("%s /healthz: %d %v %s", p.Name, code, err, body)
			continue
		}
		_, varz, _ := get("http://" + p.Status.PodIP + ":8222/varz")
		var v struct {
			Version string `json:"version"`
			Routes  int    `json:"routes"`
		}
		_ = json.Unmarshal([]byte(varz), &v)
		t.Logf("%s (%s): nats-server %s, /healthz 200, %d routes", p.Name, p.Status.PodIP, v.Version, v.Routes)
	}

	// The overlay's second prober back: it joins the shared consumers
	// (nothing is pending) and goes through the rolling restart.
	c.k("-n", "gps", "scale", "deployment/gps-prober", "--replicas=2")
	c.k("-n", "gps", "rollout", "status", "deployment/gps-prober", "--timeout=5m")
	faults = append(faults, "gps-prober scaled from 1 to 2")

	// Rolling restarts: every old pod of the modeler, the probers and the
	// inventory answers 503 on /readyz between SIGTERM and its end (the
	// manifests' --shutdown-delay 2s keeps it there before the drain, which
	// with nothing to commit takes milliseconds). The inventory must also
	// resume from its bucket (checked below).
	for _, d := range []string{"modeler", "prober", "inventory"} {
		var ips []string
		for _, p := range c.pods("gps") {
			if component(p) == d && p.Status.PodIP != "" && p.DeletionTimestamp == nil {
				ips = append(ips, p.Status.PodIP)
			}
		}
		seen := make([][]int, len(ips))
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for i, ip := range ips {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					code, _, err := get("http://" + ip + ":9090/readyz")
					if err != nil && len(seen[i]) > 0 { // answered, then gone: the process ended
						return
					}
					if len(seen[i]) == 0 || seen[i][len(seen[i])-1] != code {
						seen[i] = append(seen[i], code)
					}
					time.Sleep(50 * time.Millisecond)
				}
			})
		}
		c.k("-n", "gps", "rollout", "restart", "deployment/gps-"+d)
		c.k("-n", "gps", "rollout", "status", "deployment/gps-"+d, "--timeout=5m")
		servicetest.WaitWithin(t, 2*time.Minute, "the old "+d+" pods to end", func() bool {
			for _, p := range c.pods("gps") {
				if component(p) == d && slices.Contains(ips, p.Status.PodIP) {
					return false
				}
			}
			return true
		})
		close(stop)
		wg.Wait()
		for i, ip := range ips {
			t.Logf("rolling restart of gps-%s: old pod %s answered /readyz %v until it ended", d, ip, seen[i])
			if !slices.Contains(seen[i], http.StatusServiceUnavailable) {
				t.Errorf("gps-%s pod %s: /readyz never 503 between SIGTERM and its end (%v)", d, ip, seen[i])
			}
		}
		what := fmt.Sprintf("rolling restart of gps-%s (%d pods, /readyz 503 on SIGTERM", d, len(ips))
		if d == "inventory" {
			what += ", resumed from its bucket"
		}
		faults = append(faults, what+")")
	}
	idle()

	// Nothing lost, nothing twice: the modeler's snapshot (its last, stored
	// on SIGTERM) is the model of the whole stream, and the predictions
	// are those of the stream replayed.
	o := pipetest.Collect(t, b)
	servicetest.WaitWithin(t, time.Minute, "the modeler's snapshot to cover RESULTS", func() bool {
		store, err := b.Snapshots(ctx)
		if err != nil {
			return false
		}
		data, err := store.GetBytes(ctx, modeler.SnapshotObject)
		if err != nil {
			return false
		}
		_, seq, err := modeler.DecodeSnapshot(bytes.NewReader(data))
		return err == nil && seq == uint64(o.ResultMsgs)
	})
	pipetest.CheckExact(t, b, o)
	// The restarted inventory resumed from its bucket: no service and no
	// event twice.
	c.checkInventory(ctx, b)
	// The tolerance of TestSeparateProcessesLive (pipetest.CheckClose):
	// the services found within 0.5 %, the predictions within 2 %, the
	// coverage within 2 points.
	if df := pipetest.SymDiff(o.Found, ref.Found); float64(df) > 0.005*float64(len(ref.Found)) {
		t.Errorf("services found: %d, gps all --world %d, %d differ: more than 0.5 %%", len(o.Found), len(ref.Found), df)
	}
	if dp := pipetest.SymDiff(o.Preds, ref.Preds); float64(dp) > 0.02*float64(len(ref.Preds)) {
		t.Errorf("predictions: %d, gps all --world %d, %d differ: more than 2 %%", len(o.Preds), len(ref.Preds), dp)
	}
	sum, err := eval.SummarizeRun(ctx, b, c.world, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(sum.Coverage - sim.Coverage); d > 0.02 {
		t.Errorf("cluster coverage %.4f, gps all --world %.4f: %.1f points apart, want at most 2", sum.Coverage, sim.Coverage, 100*d)
	}
	t.Logf("E2E: %d pods (nats %d, gps %d); services found %d (gps all --world: %d), coverage %.4f (%.4f); predictions compared: %d (gps all --world: %d, %d differ)",
		podCount["nats"]+podCount["gps"], podCount["nats"], podCount["gps"], len(o.Found), len(ref.Found), sum.Coverage, sim.Coverage,
		len(o.Preds), len(ref.Preds), pipetest.SymDiff(o.Preds, ref.Preds))
	t.Logf("E2E: faults survived: %s", strings.Join(faults, "; "))
}

// checkInventory checks the inventory Deployment against the streams: its
// bucket holds every service of RESULTS, live (the run declares none
// gone), INVENTORY has one "new" event for each, and its pod's /metrics say
// the same.
func (c *cluster) checkInventory(ctx context.Context, b *bus.Bus) {
	t := c.t
	t.Helper()
	var metrics string
	for _, p := range c.pods("gps") {
		if component(p) == "inventory" && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			_, metrics, _ = get("http://" + p.Status.PodIP + ":9090/metrics")
		}
	}
	o := pipetest.Collect(t, b)
	kv, err := b.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states, err := inventory.Load(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	live, lastSeen := 0, int64(0)
	for _, st := range states {
		a, _ := row.ParseAddr(st.IP)
		if st.State != wire.StateLive || !o.Found[gps.Target{Addr: a, Port: uint16(st.Port)}] {
			t.Errorf("inventory: %s:%d %s, not a service of RESULTS", st.IP, st.Port, st.State)
			continue
		}
		live++
		lastSeen += st.LastSeen.Unix()
	}
	if live != len(o.Found) {
		t.Errorf("inventory: %d live services, RESULTS has %d", live, len(o.Found))
	}
	events := map[string]int{}
	if err := b.EachMessage(ctx, bus.StreamInventory, func(d []byte) {
		var ev wire.ServiceEvent
		if err := json.Unmarshal(d, &ev); err != nil {
			t.Errorf("INVENTORY: %v", err)
		}
		events[ev.Event]++
	}); err != nil {
		t.Fatal(err)
	}
	if events[wire.EventNew] != len(o.Found) || len(events) != 1 {
		t.Errorf("INVENTORY: events %v, want %d new", events, len(o.Found))
	}
	want := map[string]float64{
		fmt.Sprintf("%s{state=%q}", telemetry.NameInventoryServices, wire.StateLive): float64(live),
		fmt.Sprintf("%s{state=%q}", telemetry.NameInventoryServices, wire.StateGone): 0,
	}
	for k, w := range want {
		if v, ok := metricValue(metrics, k); !ok || v != w {
			t.Errorf("inventory /metrics: %s = %v (found: %v), want %v", k, v, ok, w)
		}
	}
	// The mean of the bucket's last answers (Unix seconds). The age is
	// reported, not checked: a prober on a world times its results by the
	// world's clock, which runs ahead of the wall clock by the probes'
	// simulated time.
	seen, ok := metricValue(metrics, telemetry.NameInventoryLastSeen)
	if mean := float64(lastSeen) / float64(max(live, 1)); !ok || math.Abs(seen-mean) > 1e-6*mean {
		t.Errorf("inventory /metrics: %s %v (found: %v), the bucket's mean last seen %v", telemetry.NameInventoryLastSeen, seen, ok, mean)
	}
	age := time.Since(time.Unix(int64(seen), 0))
	t.Logf("inventory: %d live services (RESULTS: %d), INVENTORY %v, data's mean age %s", live, len(o.Found), events, age.Round(time.Second))
}

// metricValue is the value of one series (name{labels} as exposed) in a
// /metrics page.
func metricValue(body, series string) (float64, bool) {
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			return f, err == nil
		}
	}
	return 0, false
}

// metricsDigest sums the gps_ counters a pod exposes.
func metricsDigest(body string) string {
	sums := map[string]float64{}
	series := 0
	for line := range strings.SplitSeq(body, "\n") {
		if !strings.HasPrefix(line, "gps_") {
			continue
		}
		series++
		name := line[:strings.IndexAny(line, "{ ")]
		if !strings.HasSuffix(name, "_total") {
			continue
		}
		var v float64
		fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
		sums[name] += v
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(sums)) {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, sums[k]))
	}
	return fmt.Sprintf("%d gps_ series; %s", series, strings.Join(parts, ", "))
}
