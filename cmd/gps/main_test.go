package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	world := filepath.Join(dir, "world")
	bad := filepath.Join(dir, "bad.jsonl")
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
	for _, want := range []string{"seeder", "modeler", "predictor", "prober", "all", "RESULTS", "TARGETS", "PREDICTIONS", "gps.dlq.modeler", "gps-snapshots/predictor"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("gps list lacks %q:\n%s", want, out.String())
		}
	}
	if code := run([]string{"list"}, io.Discard); code != 0 {
		t.Fatalf("gps list exit %d", code)
	}
}
