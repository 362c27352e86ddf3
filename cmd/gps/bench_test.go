package main

import (
	"testing"
)

// TestBenchUsage: gps bench scanners rejects bad flags before it builds
// anything (the benchmark itself needs root and runs by hand).
func TestBenchUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad rate", []string{"bench", "scanners", "--rate", "fast"}, "--rate"},
		{"negative rate", []string{"bench", "scanners", "--rate", "-5"}, "rate -5"},
		{"targets", []string{"bench", "scanners", "--targets", "1000"}, "targets 1000"},
		{"scanner", []string{"bench", "scanners", "--scanners", "gps,nmap"}, `"nmap"`},
		{"port", []string{"bench", "scanners", "--port", "70000"}, "--port"},
		{"runs", []string{"bench", "scanners", "--runs", "-1"}, "runs -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantUsageError(t, tt.args, tt.want) })
	}
}

func TestBenchRates(t *testing.T) {
	got, err := parseRates("100000, 0,2.5e5")
	if err != nil || len(got) != 3 || got[0] != 100000 || got[1] != 0 || got[2] != 250000 {
		t.Fatalf("parseRates = %v, %v", got, err)
	}
	if s := joinRates(got); s != "100000,0,250000" {
		t.Fatalf("joinRates = %q", s)
	}
}
