package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/services/all"
	"github.com/gpsscan/gps/services/pipetest"
)

// natsCluster is a JetStream cluster of three nats-servers in this process,
// on 127.0.0.1.
type natsCluster struct {
	servers []*server.Server
}

// startCluster starts servers s1, s2, s3 of cluster "gps", each routing to
// the other two, each with its own store, and waits for a meta leader.
func startCluster(t *testing.T) *natsCluster {
	t.Helper()
	const n = 3
	ports := make([]int, n)
	var routes []*url.URL
	for i := range ports {
		// A free port for each route listener (they must be known up front).
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", ports[i])})
	}
	c := &natsCluster{}
	dir := t.TempDir()
	for i := range n {
		name := fmt.Sprintf("s%d", i+1)
		var others []*url.URL
		for j, r := range routes {
			if j != i {
				others = append(others, r)
			}
		}
		s, err := server.NewServer(&server.Options{
			ServerName: name, Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
			JetStream: true, StoreDir: filepath.Join(dir, name),
			Cluster: server.ClusterOpts{Name: "gps", Host: "127.0.0.1", Port: ports[i]},
			Routes:  others,
		})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		c.servers = append(c.servers, s)
	}
	t.Cleanup(func() {
		for _, s := range c.servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
	})
	for _, s := range c.servers {
		if !s.ReadyForConnections(30 * time.Second) {
			t.Fatalf("%s not ready", s.Name())
		}
	}
	return c
}

// urls is every client URL, comma-separated (as --nats takes a cluster).
func (c *natsCluster) urls() string {
	var us []string
	for _, s := range c.servers {
		us = append(us, s.ClientURL())
	}
	return strings.Join(us, ",")
}

// server returns the server named name.
func (c *natsCluster) server(t *testing.T, name string) *server.Server {
	t.Helper()
	for _, s := range c.servers {
		if s.Name() == name {
			return s
		}
	}
	t.Fatalf("no server %q", name)
	return nil
}

// TestClusterFaults is the pipeline on a 3-node JetStream cluster with
// replicas 3, the services as separate processes: mid-run one NATS server
// (the leader of RESULTS) is shut down and the cluster goes on with two;
// then the predictor is killed -9 and restarted. The run must end exactly
// as a run without faults: the modeler's model is the model of the RESULTS
// stream, each result applied once; the predictions are those of the
// stream replayed by a predictor that never crashed, each published once
// (pipetest.CheckExact, as in TestSeparateProcesses); and the services
// found are those `gps all` finds on one server, the predictions nearly
// (pipetest.CheckClose).
func TestClusterFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node NATS cluster and the services as processes")
	}
	started := time.Now()
	bin := pipetest.Binary(t)
	world := pipetest.MakeWorld(t)
	ref := pipetest.Reference(t, world)

	cl := startCluster(t)
	urls := cl.urls()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Config{URL: urls, Replicas: 3, Name: "test"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	servicetest.WaitWithin(t, time.Minute, "a JetStream meta leader with every peer online", func() bool {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := b.JS.AccountInfo(rctx); err != nil {
			return false
		}
		for _, s := range cl.servers {
			if s.JetStreamIsLeader() {
				return len(s.JetStreamClusterPeers()) == len(cl.servers)
			}
		}
		return false
	})
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster up, streams set up, %v in", time.Since(started).Round(time.Millisecond))

	// A stop under the load of the whole test suite has taken the prober
	// past the default 20s, which exits 1 and says nothing; past Stop's
	// 30s the process prints its goroutines instead (pipetest.Proc.Stop).
	common := []string{"--nats", urls, "--replicas", "3", "--log-format", "json", "--metrics-addr", "127.0.0.1:0", "--shutdown-timeout", "60s"}
	args := map[string][]string{
		"prober":    append([]string{"prober", "--world", world}, common...),
		"modeler":   append(append([]string{"modeler", "--snapshot-every", "500"}, pipetest.ModelerWorldFlags(t, world)...), common...),
		"predictor": append([]string{"predictor", "--snapshot-every", "500"}, common...),
		"inventory": append([]string{"inventory", "serve"}, common...),
	}
	services := []string{"prober", "modeler", "predictor", "inventory"}
	procs := map[string]*pipetest.Proc{}
	for _, n := range services {
		procs[n] = pipetest.Start(t, bin, n, args[n]...)
	}
	for _, n := range services {
		addr := procs[n].TelemetryAddr(t)
		servicetest.WaitWithin(t, time.Minute, n+" ready", func() bool {
			code, _ := pipetest.Get(t, addr, "/readyz")
			return code == 200
		})
	}
	seeder := pipetest.Start(t, bin, "seeder", append([]string{"seeder", "--import", filepath.Join(world, "seed.jsonl")}, common...)...)
	if err := seeder.Wait(); err != nil {
		t.Fatalf("seeder: %v", err)
	}
	// results is the state of RESULTS (nil while the request fails).
	results := func() *jetstream.StreamInfo {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		s, err := b.JS.Stream(rctx, bus.StreamResults)
		if err != nil {
			return nil
		}
		si, err := s.Info(rctx)
		if err != nil {
			return nil
		}
		return si
	}
	if si := results(); si == nil || si.Config.Replicas != 3 || si.Cluster == nil || len(si.Cluster.Replicas) != 2 {
		t.Fatalf("RESULTS: %d replicas (%+v); want 3", si.Config.Replicas, si.Cluster)
	}

	// Fault 1: the server leading RESULTS goes away mid-run (the seed is
	// in, the priors plan is being swept).
	counter := pipetest.NewResultCounter(b)
	servicetest.WaitWithin(t, time.Minute, "the priors phase under way", func() bool {
		return counter.Count(ctx) > 2500
	})
	si := results()
	if si == nil || si.Cluster == nil || si.Cluster.Leader == "" {
		t.Fatal("RESULTS has no leader")
	}
	victim := cl.server(t, si.Cluster.Leader)
	victim.Shutdown()
	victim.WaitForShutdown()
	t.Logf("shut down NATS server %s (leader of RESULTS) at %d RESULTS messages, %v in", victim.Name(), si.State.Msgs, time.Since(started).Round(time.Millisecond))
	servicetest.WaitWithin(t, time.Minute, "a new leader of RESULTS", func() bool {
		si := results()
		return si != nil && si.Cluster != nil && si.Cluster.Leader != "" && si.Cluster.Leader != victim.Name()
	})
	si = results()
	t.Logf("RESULTS led by %s, %d messages, %v in", si.Cluster.Leader, si.State.Msgs, time.Since(started).Round(time.Millisecond))

	// The cluster goes on with two of three servers: results are stored,
	// predictions delivered to the prober, and no service gave up.
	progress := func() int64 {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		c, err := b.JS.Consumer(rctx, bus.StreamPredictions, "prober")
		if err != nil {
			return -1
		}
		ci, err := c.Info(rctx)
		if err != nil {
			return -1
		}
		return int64(ci.Delivered.Stream) + counter.Count(ctx)
	}
	p0 := progress()
	servicetest.WaitWithin(t, time.Minute, "progress on two servers", func() bool { return progress() > p0+1000 })
	for _, n := range []string{"prober", "modeler", "predictor"} {
		if procs[n].Exited() {
			t.Fatalf("%s exited when a NATS server went away: %v", n, procs[n].Wait())
		}
	}

	// Fault 2: the predictor is killed -9 mid-stream and restarted.
	procs["predictor"].Kill9()
	t.Logf("killed the predictor with SIGKILL at %d results, %v in", counter.Count(ctx), time.Since(started).Round(time.Millisecond))
	procs["predictor"] = pipetest.Start(t, bin, "predictor-restarted", args["predictor"]...)

	if err := b.WaitIdle(ctx, time.Second, all.Consumers(), zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))); err != nil {
		t.Fatalf("wait for the pipeline: %v", err)
	}
	t.Logf("idle %v in", time.Since(started).Round(time.Millisecond))
	for _, n := range services {
		procs[n].Stop(t)
		t.Logf("%s: warnings %v", procs[n].Name, procs[n].Warnings())
	}
	o := pipetest.Collect(t, b)
	pipetest.CheckExact(t, b, o)
	// Against `gps all` without faults: the same services found, nearly
	// the same predictions (pipetest.CheckClose: their number depends on the
	// order in which results reach the predictor, which faults move; the
	// predictions of this run's own stream are checked exactly above).
	pipetest.CheckClose(t, o, ref)
	t.Logf("done in %v", time.Since(started).Round(time.Millisecond))
}
