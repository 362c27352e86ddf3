package seeder

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

func seedDone(t *testing.T, b *bus.Bus) (wire.SeedDone, bool) {
	t.Helper()
	kv, err := b.Control(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), bus.KeySeed)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return wire.SeedDone{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var d wire.SeedDone
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		t.Fatal(err)
	}
	return d, true
}

func run(t *testing.T, b *bus.Bus, c Config) (*Stats, error) {
	t.Helper()
	st := new(Stats)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := Run(ctx, Deps{Config: c, Bus: b, Log: zaptest.NewLogger(t), Stats: st,
		Now: func() time.Time { return time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC) }})
	return st, err
}

// results decodes stored results (batches or not) as rows.
func results(t *testing.T, msgs []*jetstream.RawStreamMsg) []row.Row {
	t.Helper()
	var out []row.Row
	for _, m := range msgs {
		rs, err := wire.DecodeResults(m.Data)
		if err != nil {
			t.Fatalf("stored result: %v", err)
		}
		for _, r := range rs {
			if r.Phase != wire.PhaseSeed || r.Source != "import" || m.Subject != wire.ResultsSubject(wire.PhaseSeed) {
				t.Fatalf("result %+v on %s", r, m.Subject)
			}
			out = append(out, r.Row())
		}
	}
	return out
}

func TestImportGPSRows(t *testing.T) {
	dir, w := labtest.WriteWorld(t, lab.Config{Seed: 1, Hosts: 2000, Slash16s: 2, SeedFrac: 0.2})
	// The seed, gzipped, with its first row repeated: a duplicate row of the
	// file is still delivered.
	want := append(slices.Clone(w.Seed), w.Seed[0])
	path := filepath.Join(dir, "seed.jsonl.gz")
	f, _ := os.Create(path)
	zw := gzip.NewWriter(f)
	enc := json.NewEncoder(zw)
	for _, r := range want {
		enc.Encode(r)
	}
	zw.Close()
	f.Close()

	b := bustest.New(t)
	c := Config{Import: path, Batch: 100}
	st, err := run(t, b, c)
	if err != nil {
		t.Fatal(err)
	}
	msgs := servicetest.Stored(t, b, bus.StreamResults)
	got := results(t, msgs)
	if len(got) != len(want) || int(st.Results.Load()) != len(want) || st.Duplicates.Load() != 0 {
		t.Fatalf("%d results stored, stats %d acked %d dups; want %d", len(got), st.Results.Load(), st.Duplicates.Load(), len(want))
	}
	// Batches of wire.BatchResults in the file's order, the last one the
	// rest: its first row is the repeated one when the file's length says so.
	if wantMsgs := (len(want) + wire.BatchResults - 1) / wire.BatchResults; len(msgs) != wantMsgs {
		t.Fatalf("%d messages for %d results, want %d", len(msgs), len(want), wantMsgs)
	}
	ids := make(map[string]bool)
	for _, m := range msgs {
		ids[m.Header.Get(jetstream.MsgIDHeader)] = true
	}
	first := "seed:" + want[0].IP + ":" + itoa(want[0].Port) + ":0:" + itoa(wire.BatchResults) + ":"
	if len(ids) != len(msgs) || !strings.HasPrefix(msgs[0].Header.Get(jetstream.MsgIDHeader), first) {
		t.Fatalf("%d distinct Nats-Msg-Ids for %d messages; first %q, want %q...", len(ids), len(msgs),
			msgs[0].Header.Get(jetstream.MsgIDHeader), first)
	}
	key := func(r row.Row) string { b, _ := json.Marshal(r); return string(b) }
	gs, ws := make([]string, len(got)), make([]string, len(want))
	for i := range got {
		gs[i], ws[i] = key(got[i]), key(want[i])
	}
	slices.Sort(gs)
	slices.Sort(ws)
	if !slices.Equal(gs, ws) {
		t.Fatal("published rows differ from the file's")
	}
	done, ok := seedDone(t, b)
	if !ok || done.Results != len(want) || done.LastSeq != msgs[len(msgs)-1].Sequence || done.V != wire.Version {
		t.Fatalf("seed done %+v (found %v), want %d results, last seq %d", done, ok, len(want), msgs[len(msgs)-1].Sequence)
	}

	t.Run("re-run does nothing", func(t *testing.T) {
		st, err := run(t, b, c)
		if err != nil || st.Rows.Load() != 0 || len(servicetest.Stored(t, b, bus.StreamResults)) != len(msgs) {
			t.Fatalf("re-run: %v, %d rows read", err, st.Rows.Load())
		}
	})
	t.Run("forced re-run is de-duplicated", func(t *testing.T) {
		c := c
		c.Force = true
		st, err := run(t, b, c)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(results(t, servicetest.Stored(t, b, bus.StreamResults))); n != len(want) || int(st.Duplicates.Load()) != len(want) {
			t.Fatalf("after a forced re-run %d results stored, %d duplicates; want %d", n, st.Duplicates.Load(), len(want))
		}
		again, _ := seedDone(t, b)
		if again.LastSeq != done.LastSeq || again.Results != done.Results {
			t.Fatalf("seed done after re-run %+v, before %+v", again, done)
		}
	})
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestImportBadLinePublishesNothing(t *testing.T) {
	for _, tc := range []struct {
		name, file, format string
		line               int
	}{
		{"gps", "testdata/gps_bad.jsonl", FormatGPS, 3},
		{"lzr", "testdata/lzr_bad.jsonl", FormatLZR, 2},
		{"zgrab2 without a port", "testdata/zgrab2.jsonl", FormatZGrab2, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bustest.New(t)
			_, err := run(t, b, Config{Import: tc.file, Format: tc.format})
			var le *row.LineError
			if !errors.As(err, &le) || le.Line != tc.line || !strings.Contains(err.Error(), tc.file+":"+itoa(tc.line)+":") {
				t.Fatalf("error %v, want %s:%d", err, tc.file, tc.line)
			}
			if n := len(servicetest.Stored(t, b, bus.StreamResults)); n != 0 {
				t.Fatalf("%d results published from a bad file", n)
			}
			if _, ok := seedDone(t, b); ok {
				t.Fatal("seed done written for a bad file")
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestImportLZRAndZGrab2(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       Config
		want    []row.Row
		skipped uint64
	}{
		{"lzr", Config{Import: "testdata/lzr.jsonl", Format: FormatLZR}, []row.Row{
			{IP: "127.1.0.1", Port: 80, Fingerprint: "http", Data: "HTTP/1.1 200 OK\r\nServer: nginx/1.18.0\r\n\r\n", Window: ptr[int64](65160)},
			{IP: "127.1.0.2", Port: 22, Fingerprint: "ssh", Data: "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10\r\n", Window: ptr[int64](64240)},
			{IP: "127.1.0.3", Port: 5000, Window: ptr[int64](0)},
		}, 1},
		{"zgrab2", Config{Import: "testdata/zgrab2.jsonl", Format: FormatZGrab2, Port: 21}, []row.Row{
			{IP: "127.1.0.1", Port: 80, Fingerprint: "http", Data: "HTTP/1.1 200 OK\nContent-Type: text/html\nServer: nginx/1.18.0\nX-Custom: 1"},
			{IP: "127.1.0.2", Port: 22, Fingerprint: "ssh", Data: "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10"},
			{IP: "127.1.0.3", Port: 443, Fingerprint: "tls", Data: "HTTP/1.1 301 Moved Permanently\nLocation: https://www.example.test/",
				TLSCert: ptr("O=GPS Lab, CN=www.example.test"),
				TLSOIDs: []string{"1.2.840.10045.4.3.2", "2.5.4.10", "2.5.4.3", "2.5.29.15", "2.5.29.37", "1.3.6.1.5.5.7.3.1",
					"1.3.6.1.5.5.7.3.2", "2.5.29.19", "2.5.29.17", "2.5.29.32", "2.23.140.1.2.1"}},
			{IP: "127.1.0.5", Port: 21, Fingerprint: "ftp", Data: "220 (vsFTPd 3.0.3)"},
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bustest.New(t)
			st, err := run(t, b, tc.c)
			if err != nil {
				t.Fatal(err)
			}
			got := results(t, servicetest.Stored(t, b, bus.StreamResults))
			gj, _ := json.MarshalIndent(got, "", " ")
			wj, _ := json.MarshalIndent(tc.want, "", " ")
			if string(gj) != string(wj) {
				t.Fatalf("imported\n%s\nwant\n%s", gj, wj)
			}
			if st.Skipped.Load() != tc.skipped {
				t.Fatalf("skipped %d, want %d", st.Skipped.Load(), tc.skipped)
			}
			if d, ok := seedDone(t, b); !ok || d.Results != len(tc.want) {
				t.Fatalf("seed done %+v", d)
			}
		})
	}
}

// targets decodes stored target batches.
func targets(t *testing.T, msgs []*jetstream.RawStreamMsg) []wire.Target {
	t.Helper()
	var out []wire.Target
	for _, m := range msgs {
		ts, err := wire.DecodeTargets(m.Data)
		if err != nil || ts.Phase != wire.PhaseSeed {
			t.Fatalf("stored targets: %v %s", err, ts.Phase)
		}
		out = append(out, ts.Targets...)
	}
	return out
}

func TestSample(t *testing.T) {
	c := Config{Allow: []string{"127.1.0.0/24", "8.8.8.8"}, BlockFile: "", SeedFrac: 0.05, Ports: "22,80,443", Seed: 9, Batch: 10}
	// 257 allowed addresses: round(0.05 * 257) = 13 addresses x 3 ports.
	b := bustest.New(t)
	st, err := run(t, b, c)
	if err != nil {
		t.Fatal(err)
	}
	msgs := servicetest.Stored(t, b, bus.StreamTargets)
	ts := targets(t, msgs)
	if len(ts) != 39 || len(msgs) != 4 || st.Targets.Load() != 39 {
		t.Fatalf("%d targets in %d messages, want 39 in 4", len(ts), len(msgs))
	}
	if id := msgs[0].Header.Get(jetstream.MsgIDHeader); id != "seedt:9:0" {
		t.Fatalf("first Nats-Msg-Id %q", id)
	}
	pol, _ := ipv4.LoadPolicy(c.Allow, "", "")
	perAddr := make(map[string][]int)
	for _, x := range ts {
		a, err := row.ParseAddr(x.IP)
		if err != nil || !pol.Allowed(a) {
			t.Fatalf("target %v outside the allow list", x)
		}
		perAddr[x.IP] = append(perAddr[x.IP], x.Port)
	}
	if len(perAddr) != 13 {
		t.Fatalf("%d sampled addresses, want 13", len(perAddr))
	}
	for ip, ps := range perAddr {
		slices.Sort(ps)
		if !slices.Equal(ps, []int{22, 80, 443}) {
			t.Fatalf("%s: ports %v", ip, ps)
		}
	}
	sorted := slices.Clone(ts)
	slices.SortFunc(sorted, func(a, b wire.Target) int { return strings.Compare(a.IP+itoa(a.Port), b.IP+itoa(b.Port)) })
	if slices.Equal(ts, sorted) {
		t.Fatal("targets not permuted")
	}
	if _, ok := seedDone(t, b); ok {
		t.Fatal("sample mode wrote seed done")
	}

	t.Run("re-run is de-duplicated", func(t *testing.T) {
		st, err := run(t, b, c)
		if err != nil || st.Duplicates.Load() != 4 || len(servicetest.Stored(t, b, bus.StreamTargets)) != 4 {
			t.Fatalf("re-run: %v, %d duplicates", err, st.Duplicates.Load())
		}
	})
	t.Run("shards split the same targets", func(t *testing.T) {
		sb := bustest.New(t)
		for shard := range 3 {
			c := c
			c.Shards, c.Shard = 3, shard
			if _, err := run(t, sb, c); err != nil {
				t.Fatal(err)
			}
		}
		st := targets(t, servicetest.Stored(t, sb, bus.StreamTargets))
		key := func(x wire.Target) string { return x.IP + ":" + itoa(x.Port) }
		a, b := make([]string, 0, len(ts)), make([]string, 0, len(st))
		for _, x := range ts {
			a = append(a, key(x))
		}
		for _, x := range st {
			b = append(b, key(x))
		}
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Fatalf("sharded targets differ: %d vs %d", len(b), len(a))
		}
	})
}

func TestValidateAndFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"import", []string{"--import", "x.jsonl"}, true},
		{"import lzr", []string{"--import", "x.jsonl", "--format", "lzr"}, true},
		{"bad format", []string{"--import", "x.jsonl", "--format", "csv"}, false},
		{"sample needs allow", nil, false},
		{"sample", []string{"--allow", "127.0.0.0/8", "--ports", "22,80-90", "--rand-seed", "3"}, true},
		{"sample allow file", []string{"--allow-file", "allow.txt"}, true},
		{"bad ports", []string{"--allow", "127.0.0.0/8", "--ports", "0-10"}, false},
		{"bad seed-frac", []string{"--allow", "127.0.0.0/8", "--seed-frac", "1.5"}, false},
		{"shards need a seed", []string{"--allow", "127.0.0.0/8", "--shards", "2", "--shard", "1"}, false},
		{"shard out of range", []string{"--allow", "127.0.0.0/8", "--shards", "2", "--shard", "2", "--rand-seed", "1"}, false},
		{"batch too big", []string{"--allow", "127.0.0.0/8", "--batch", "1000000"}, false},
		{"format needs import", []string{"--allow", "127.0.0.0/8", "--format", "lzr"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			fs := flag.NewFlagSet("seeder", flag.ContinueOnError)
			c.RegisterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	var c Config
	fs := flag.NewFlagSet("seeder", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if c.Format != "gps" || c.Ports != "1-65535" || c.Batch != 1000 || c.SeedFrac != 0.01 || c.Shards != 1 {
		t.Fatalf("defaults %+v", c)
	}
	if ps, err := parsePorts("22,80-82,22"); err != nil || !slices.Equal(ps, []uint16{22, 80, 81, 82}) {
		t.Fatalf("parsePorts: %v %v", ps, err)
	}
}

// TestImportTooBigPublishesNothing: an import is validated whole before
// anything is published; a row whose result cannot be one message (over
// the server's max payload), or a .gz cut short, fails naming FILE:LINE,
// and leaves no results and no control record behind.
func TestImportTooBigPublishesNothing(t *testing.T) {
	dir := t.TempDir()
	gpsRow := func(i int) string {
		return `{"ip":"127.1.` + itoa(i/250) + `.` + itoa(i%250+1) + `","p":80,"data":"HTTP/1.1 200 OK"}`
	}
	lzrRow := func(i int, data string) string {
		return `{"saddr":"127.1.` + itoa(i/250) + `.` + itoa(i%250+1) + `","sport":22,"data":"` + data + `","fingerprint":"ssh"}`
	}
	write := func(name string, lines []string, gz bool) string {
		path := filepath.Join(dir, name)
		data := []byte(strings.Join(lines, "\n") + "\n")
		if gz {
			var buf strings.Builder
			zw := gzip.NewWriter(&buf)
			zw.Write(data)
			zw.Close()
			data = []byte(buf.String())
			data = data[:len(data)*2/3]
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	var good, goodLZR []string
	for i := range 2400 {
		good = append(good, gpsRow(i))
		goodLZR = append(goodLZR, lzrRow(i, "SSH-2.0-OpenSSH_9.6"))
	}
	// A row of row.MaxLine bytes reads, but its result, with the result's
	// own fields and the headers, is over the default max payload of 1 MiB.
	head := `{"ip":"127.9.0.1","p":80,"data":"`
	atLimit := head + strings.Repeat("x", row.MaxLine-len(head)-2) + `"}`
	for _, tc := range []struct {
		name, format string
		path         string
		line         int
		want         error
	}{
		{"gps 10 MB row", FormatGPS, write("big.jsonl", append(slices.Clone(good), `{"ip":"127.9.0.1","p":80,"data":"`+strings.Repeat("x", 10<<20)+`"}`, gpsRow(0)), false), 2401, row.ErrLongLine},
		{"gps row at the line limit", FormatGPS, write("limit.jsonl", append(slices.Clone(good), atLimit, gpsRow(0)), false), 2401, ErrBadRecord},
		{"lzr 2 MB banner", FormatLZR, write("big-lzr.jsonl", append(slices.Clone(goodLZR), lzrRow(9999, strings.Repeat("y", 2<<20))), false), 2401, row.ErrLongLine},
		{"lzr banner at the line limit", FormatLZR, write("limit-lzr.jsonl", append(slices.Clone(goodLZR), lzrRow(9999, strings.Repeat("y", row.MaxLine-200))), false), 2401, ErrBadRecord},
		{"lzr truncated gz", FormatLZR, write("cut.jsonl.gz", goodLZR, true), 0, row.ErrGzip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bustest.New(t)
			if b.MaxPayload() != bus.DefaultMaxPayload {
				t.Fatalf("test server's max payload %d, want the default %d", b.MaxPayload(), bus.DefaultMaxPayload)
			}
			_, err := run(t, b, Config{Import: tc.path, Format: tc.format})
			var le *row.LineError
			if !errors.Is(err, tc.want) || !errors.As(err, &le) || le.File != tc.path || (tc.line > 0 && le.Line != tc.line) {
				t.Fatalf("error %v, want %v at %s:%d", err, tc.want, tc.path, tc.line)
			}
			if n := len(servicetest.Stored(t, b, bus.StreamResults)); n != 0 {
				t.Fatalf("%d results published from a file that failed", n)
			}
			if _, ok := seedDone(t, b); ok {
				t.Fatal("seed done written for a file that failed")
			}
		})
	}
}
