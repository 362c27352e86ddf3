package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/lab"
)

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	world := filepath.Join(dir, "world")
	bad := filepath.Join(dir, "bad.jsonl")
	empty := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(empty, nil, 0o644)
	os.WriteFile(bad, []byte(`{"ip":"127.1.0.1","p":22}`+"\n"+`{"ip":"127.1.0.1","p":99999}`+"\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no command", nil, 2, "usage"},
		{"unknown command", []string{"nope"}, 2, "unknown command"},
		{"bad flag", []string{"first", "--bogus"}, 2, "bogus"},
		{"missing flags", []string{"first"}, 2, "need --seed"},
		{"bad step", []string{"first", "--seed", bad, "--out", dir, "--step", "40"}, 2, "--step 40"},
		{"lab gen", []string{"lab", "gen", "--out", world, "--hosts", "3000", "--slash16s", "4", "--seed-frac", "0.2"}, 0, ""},
		{"all bad hitrate", []string{"all", "--world", world, "--hitrate", "2", "--metrics-addr", ""}, 2, "--hitrate 2"},
		{"all no allow list", []string{"all", "--metrics-addr", ""}, 2, "allow list is required"},
		{"bad line", []string{"first", "--seed", bad, "--out", filepath.Join(dir, "x")}, 1, bad + ":2:"},
		{"first", []string{"first", "--seed", filepath.Join(world, "seed.jsonl"), "--out", filepath.Join(dir, "gps")}, 0, ""},
		{"empty seed", []string{"first", "--seed", empty, "--out", filepath.Join(dir, "gps")}, 1, empty + ": no services"},
		{"remaining", []string{"remaining", "--seed", filepath.Join(world, "seed.jsonl"), "--priors", filepath.Join(world, "seed.jsonl"), "--dir", filepath.Join(dir, "gps")}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(tt.args, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr lacks %q:\n%s", tt.want, stderr.String())
			}
		})
	}
	for _, f := range []string{"gps/model.jsonl", "gps/plan.csv", "gps/predictions.txt", "world/truth.jsonl", "world/meta.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x", "model.jsonl")); err == nil {
		t.Errorf("model.jsonl written despite a bad line")
	}
}

// TestList: `gps list` names every service with the streams it uses.
func TestList(t *testing.T) {
	var out bytes.Buffer
	if err := writeServices(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"seeder", "modeler", "predictor", "prober", "all", "RESULTS", "TARGETS", "PREDICTIONS", "gps.dlq.modeler", "gps-snapshots/predictor", "INVENTORY", "gps-inventory"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("gps list lacks %q:\n%s", want, out.String())
		}
	}
	if code := run([]string{"list"}, io.Discard); code != 0 {
		t.Fatalf("gps list exit %d", code)
	}
}

// TestHostileFlags: every numeric flag rejects NaN and infinities, and every
// bad flag is a usage error (status 2) naming the flag, found before any
// connection (the NATS URL points at a port with no server).
func TestHostileFlags(t *testing.T) {
	dir := t.TempDir()
	noServer := []string{"--nats", "nats://127.0.0.1:1", "--metrics-addr", ""}
	svc := func(name string, args ...string) []string {
		return append(append([]string{name}, noServer...), args...)
	}
	out := filepath.Join(dir, "out")
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"first nan", []string{"first", "--seed", "x", "--out", out, "--hitrate", "NaN"}, "--hitrate NaN"},
		{"first inf", []string{"first", "--seed", "x", "--out", out, "--hitrate", "Inf"}, "--hitrate +Inf"},
		{"first -inf", []string{"first", "--seed", "x", "--out", out, "--hitrate", "-Inf"}, "--hitrate -Inf"},
		{"eval nan", []string{"eval", "--world", dir, "--out", out, "--hitrate", "nan"}, "--hitrate NaN"},
		{"eval cycle-seed-frac", []string{"eval", "--world", dir, "--out", out, "--cycle-seed-frac", "NaN"}, "--cycle-seed-frac NaN"},
		{"eval gone-after", []string{"eval", "--world", dir, "--out", out, "--gone-after", "-1"}, "--gone-after -1"},
		{"lab gen seed-frac", []string{"lab", "gen", "--out", out, "--seed-frac", "NaN"}, "--seed-frac NaN"},
		{"lab gen pseudo-frac", []string{"lab", "gen", "--out", out, "--pseudo-frac", "-Inf"}, "--pseudo-frac -Inf"},
		{"lab gen noise-frac", []string{"lab", "gen", "--out", out, "--noise-frac", "NaN"}, "--noise-frac NaN"},
		{"lab gen hosts 0", []string{"lab", "gen", "--out", out, "--hosts", "0"}, "--hosts 0"},
		{"lab gen ases 0", []string{"lab", "gen", "--out", out, "--ases", "0"}, "--ases 0"},
		{"lab gen slash16s 0", []string{"lab", "gen", "--out", out, "--slash16s", "0"}, "--slash16s 0"},
		{"lab gen seed-frac 0", []string{"lab", "gen", "--out", out, "--seed-frac", "0"}, "--seed-frac 0"},
		{"demo hosts 0", []string{"demo", "--dir", out, "--hosts", "0"}, "--hosts 0"},
		{"demo step", []string{"demo", "--dir", out, "--step", "40"}, "--step 40"},
		{"bench rate", []string{"bench", "scanners", "--rate", "1000,NaN"}, "NaN"},
		{"modeler nan", svc("modeler", "--hitrate", "NaN"), "--hitrate NaN"},
		{"modeler step", svc("modeler", "--step", "40"), "--step 40"},
		{"predictor nan", svc("predictor", "--hitrate", "NaN"), "--hitrate NaN"},
		{"prober min-probability", svc("prober", "--world", dir, "--min-probability", "NaN"), "--min-probability NaN"},
		{"prober loss", svc("prober", "--world", dir, "--loss", "Inf"), "--loss +Inf"},
		{"prober rate", svc("prober", "--allow", "127.0.0.0/8", "--live", "--rate", "NaN"), "--rate NaN"},
		{"prober engine", svc("prober", "--allow", "127.0.0.0/8", "--live", "--engine", "nope"), `--engine "nope"`},
		{"seeder seed-frac", svc("seeder", "--allow", "127.0.0.0/8", "--seed-frac", "NaN"), "--seed-frac NaN"},
		{"seeder ports", svc("seeder", "--allow", "127.0.0.0/8", "--ports", "0-9"), "ports"},
		{"all nan", svc("all", "--hitrate", "NaN"), "--hitrate NaN"},
		{"all step", svc("all", "--step", "40"), "--step 40"},
		{"all loss", svc("all", "--loss", "2"), "--loss 2"},
		{"all engine", svc("all", "--live", "--engine", "udp"), "--engine \"udp\""},
		{"stream max age", svc("modeler", "--stream-max-age", "NaNd"), "NaNd"},
		{"stream max bytes", svc("modeler", "--stream-max-bytes", "NaN"), "NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if stderr := wantUsageError(t, tt.args, tt.want); strings.Contains(stderr, "no servers") {
				t.Fatalf("flags checked after connecting:\n%s", stderr)
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a rejected command wrote %s", out)
	}
}

// TestLabGenZeroFractions: --pseudo-frac 0 and --noise-frac 0 mean none,
// not the defaults a zero field of lab.Config stands for.
func TestLabGenZeroFractions(t *testing.T) {
	world := filepath.Join(t.TempDir(), "world")
	var stderr bytes.Buffer
	if code := run([]string{"lab", "gen", "--out", world, "--hosts", "500", "--slash16s", "1", "--pseudo-frac", "0", "--noise-frac", "0"}, &stderr); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	m, err := lab.ReadMeta(world)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pseudo_frac", "noise_frac"} {
		if f, ok := m.Params[k].(float64); !ok || f >= 0 {
			t.Errorf("meta %s = %v, want negative (none)", k, m.Params[k])
		}
	}
}

// TestCredentialsHidden: a password or token in --nats is not printed in
// the error when the connection fails (pkg/bus's test checks the logs).
func TestCredentialsHidden(t *testing.T) {
	for _, url := range []string{"nats://alice:s3cretpw@127.0.0.1:1", "nats://s3cretpw@127.0.0.1:1"} {
		var stderr bytes.Buffer
		if code := run([]string{"modeler", "--nats", url, "--metrics-addr", ""}, &stderr); code != 1 {
			t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr.String())
		}
		if strings.Contains(stderr.String(), "s3cretpw") || !strings.Contains(stderr.String(), "xxxxx@127.0.0.1:1") {
			t.Fatalf("stderr shows the secret, or not the server:\n%s", stderr.String())
		}
	}
}

// wantUsageError runs the command, requires exit status 2 and want in its
// stderr, and returns the stderr.
func wantUsageError(t *testing.T, args []string, want string) string {
	t.Helper()
	var stderr bytes.Buffer
	if code := run(args, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), want) {
		t.Fatalf("stderr lacks %q:\n%s", want, stderr.String())
	}
	return stderr.String()
}

// TestInventoryCLI: `gps inventory` refuses a bad --state before it
// connects, and exports a bucket (empty here) with status 0.
func TestInventoryCLI(t *testing.T) {
	wantUsageError(t, []string{"inventory", "--nats", "nats://127.0.0.1:1", "--state", "bogus"}, "--state")
	wantUsageError(t, []string{"watch", "services", "--nats", "nats://127.0.0.1:1", "--event", "bogus"}, "--event")
	b := bustest.New(t)
	var stderr strings.Builder
	if code := run([]string{"inventory", "--nats", b.ClientURL(), "--state", "all"}, &stderr); code != 0 {
		t.Fatalf("gps inventory: exit %d: %s", code, stderr.String())
	}
}
