package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/gpsscan/gps/pkg/explore"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/pfx2as"
	"github.com/gpsscan/gps/pkg/row"
)

// World is a world directory loaded for replay.
type World struct {
	Truth []row.Service
	Seed  []row.Service
	// rows of each distinct truth service (duplicate rows merge into one)
	byTarget map[gps.Target][]int32
	seedSet  map[gps.Target]bool
	seedAddr map[uint32]bool
	ports    map[uint32]int // distinct ports of each truth host
	real     int            // services of hosts with at most PseudoPorts ports
	seedReal int            // the seed's real services
	slash16s []uint32       // the /16s of the world, from truth and seed
	Meta     lab.Meta
	SeedFrac float64
	NSlash16 int
}

// PseudoPorts is the most ports a real host answers on: a host answering on
// more is a pseudo-service host (a middlebox or tarpit that accepts every
// connection), which GPS's ground truth leaves out.
const PseudoPorts = explore.PseudoPorts

// Services is the number of distinct services in truth.
func (w *World) Services() int { return len(w.byTarget) }

// RealServices is the number of distinct services of real hosts in truth.
func (w *World) RealServices() int { return w.real }

// IsReal reports whether t's host answers on at most PseudoPorts ports in truth.
func (w *World) IsReal(t gps.Target) bool { return w.ports[t.Addr] <= PseudoPorts }

// Addresses is the size of the scanned space: every address of the /16s.
func (w *World) Addresses() uint64 { return uint64(w.NSlash16) << 16 }

// SeedAddresses is how many addresses the seed scanned on every port.
func (w *World) SeedAddresses() uint64 {
	return uint64(math.Round(float64(w.NSlash16) * 65536 * w.SeedFrac))
}

// SeedCost is the probes the seed took: every port of every seed address.
func (w *World) SeedCost() uint64 { return w.SeedAddresses() * 65535 }

// LoadWorld reads DIR/meta.json, DIR/truth.jsonl and DIR/seed.jsonl, and
// checks DIR/pfx2as.tsv if there is one (eval does not use it, but a world
// with a bad one is a bad world). A malformed line is an error naming
// FILE:LINE (a *row.LineError).
func LoadWorld(dir string) (*World, error) {
	metaPath := filepath.Join(dir, lab.MetaFile)
	meta, err := lab.ReadMeta(dir)
	if err != nil {
		return nil, fmt.Errorf("load world: %w", jsonLineError(metaPath, err))
	}
	w := &World{Meta: meta, byTarget: map[gps.Target][]int32{}, seedSet: map[gps.Target]bool{}, seedAddr: map[uint32]bool{},
		ports: map[uint32]int{}}
	s16, ok1 := number(meta.Params["slash16s"])
	frac, ok2 := number(meta.Params["seed_frac"])
	if !ok1 || !ok2 || s16 < 1 || frac <= 0 || frac > 1 {
		return nil, fmt.Errorf("load world: %s: params need slash16s >= 1 and 0 < seed_frac <= 1, have %v and %v",
			metaPath, meta.Params["slash16s"], meta.Params["seed_frac"])
	}
	w.NSlash16, w.SeedFrac = int(s16), frac
	if _, err := os.Stat(filepath.Join(dir, lab.Pfx2ASFile)); err == nil {
		if _, err := pfx2as.Read(filepath.Join(dir, lab.Pfx2ASFile)); err != nil {
			return nil, fmt.Errorf("load world: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load world: %w", err)
	}
	if w.Truth, err = row.ReadAll(lab.WorldFile(dir, lab.TruthFile)); err != nil {
		return nil, fmt.Errorf("load world: %w", err)
	}
	seen16 := w.indexTruth()
	// A seed service missing from truth is an error at its line.
	err = row.ReadFile(lab.WorldFile(dir, lab.SeedFile), func(s row.Service) error {
		t := gps.Target{Addr: s.Addr, Port: uint16(s.Port)}
		if _, ok := w.byTarget[t]; !ok {
			return fmt.Errorf("seed service %s:%d is not in %s", s.IP, s.Port, lab.TruthFile)
		}
		w.Seed = append(w.Seed, s)
		if !w.seedSet[t] && w.IsReal(t) {
			w.seedReal++
		}
		w.seedSet[t] = true
		w.seedAddr[s.Addr] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load world: %w", err)
	}
	if len(seen16) > w.NSlash16 {
		return nil, fmt.Errorf("load world: truth spans %d /16s but %s says slash16s %d", len(seen16), metaPath, w.NSlash16)
	}
	return w, nil
}

// indexTruth indexes w.Truth (byTarget, ports, real) and returns the /16s
// it spans.
func (w *World) indexTruth() map[uint32]bool {
	seen16 := map[uint32]bool{}
	for i, s := range w.Truth {
		t := gps.Target{Addr: s.Addr, Port: uint16(s.Port)}
		if len(w.byTarget[t]) == 0 {
			w.ports[s.Addr]++
		}
		w.byTarget[t] = append(w.byTarget[t], int32(i))
		seen16[s.Addr>>16] = true
	}
	for t := range w.byTarget {
		if w.IsReal(t) {
			w.real++
		}
	}
	return seen16
}

// jsonLineError turns a JSON syntax or type error carrying a byte offset
// into path into a *row.LineError with the line (and the column in the
// message); other errors are returned as they are.
func jsonLineError(path string, err error) error {
	var off int64
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off, err = se.Offset, se
	case errors.As(err, &te):
		off, err = te.Offset, te
	default:
		return err
	}
	b, rerr := os.ReadFile(path)
	if rerr != nil {
		return err
	}
	off = min(max(off, 0), int64(len(b)))
	line := 1 + bytes.Count(b[:off], []byte("\n"))
	// the offset is just past the faulty byte
	col := max(off-1-int64(bytes.LastIndexByte(b[:off], '\n')), 1)
	return &row.LineError{File: path, Line: line, Err: fmt.Errorf("column %d: %w", col, err)}
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}
