package predictor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/features"
	"github.com/gpsscan/gps/pkg/model"
)

// SnapshotObject is the name of the predictor's snapshot in the snapshot store.
const SnapshotObject = "predictor"

// snapMagic opens a predictor snapshot: format and version in 8 bytes. It is
// followed by the RESULTS stream sequence the snapshot covers (uint64, big
// endian), the length of the host section (uint64, big endian), the host
// section, and the model (model.WriteTo) to the end.
//
// The host section is uvarints: the number of hosts, then for each host in
// address order its address, its services found (the number, then for each
// its port, the number of its features and the features as 8 bytes little
// endian each) and the ports already predicted for it (the number, then the
// ports, each followed by the probability it was last published at, as
// float64 bits, 8 bytes little endian), then the model's size when it was
// last predicted (hostState.at); after the hosts, the cycle of a
// continuous run the predictor is in. Features are ids of the model's
// dictionary. A snapshot of version 2 (snapMagicV2) has no cycle: it
// reads as cycle 0. One of version 1 (snapMagicV1) has the ports alone:
// they read as published at probability 1, so none is published again, and
// the hosts as never predicted.
const (
	snapMagic   = "GPSPRED\x03"
	snapMagicV2 = "GPSPRED\x02"
	snapMagicV1 = "GPSPRED\x01"
)

// ErrSnapshot marks a snapshot that cannot be read.
var ErrSnapshot = errors.New("bad snapshot")

// state is what the predictor keeps: the model and, per host, what was found
// and what was predicted.
type state struct {
	m     *model.Model
	hosts map[uint32]*hostState
	cycle int // the highest cycle of a result applied
}

type hostState struct {
	found     []model.Found
	predicted []published
	at        int // the model's size (Model.Len) when the host was last predicted; 0: never
}

// published is a port predicted for a host and the probability it was last
// published at: it is published again only at a higher one.
type published struct {
	port uint16
	p    float64
}

// encodeSnapshot writes a snapshot of st, which covers RESULTS up to and
// including seq, to w.
func encodeSnapshot(w io.Writer, seq uint64, st *state) error {
	addrs := make([]uint32, 0, len(st.hosts))
	for a := range st.hosts {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(addrs)))
	for _, a := range addrs {
		h := st.hosts[a]
		b = binary.AppendUvarint(b, uint64(a))
		b = binary.AppendUvarint(b, uint64(len(h.found)))
		for _, f := range h.found {
			b = binary.AppendUvarint(b, uint64(f.Port))
			b = binary.AppendUvarint(b, uint64(len(f.Feats)))
			for _, id := range f.Feats {
				b = binary.LittleEndian.AppendUint64(b, uint64(id))
			}
		}
		b = binary.AppendUvarint(b, uint64(len(h.predicted)))
		for _, x := range h.predicted {
			b = binary.AppendUvarint(b, uint64(x.port))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x.p))
		}
		b = binary.AppendUvarint(b, uint64(h.at))
	}
	b = binary.AppendUvarint(b, uint64(st.cycle))
	var hdr [24]byte
	copy(hdr[:8], snapMagic)
	binary.BigEndian.PutUint64(hdr[8:], seq)
	binary.BigEndian.PutUint64(hdr[16:], uint64(len(b)))
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write snapshot hosts: %w", err)
	}
	if _, err := st.m.WriteTo(w); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	return nil
}

// decodeSnapshot reads a snapshot written by encodeSnapshot.
func decodeSnapshot(r io.Reader) (*state, uint64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var hdr [24]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, 0, fmt.Errorf("%w: header: %v", ErrSnapshot, err)
	}
	if m := string(hdr[:8]); m != snapMagic && m != snapMagicV2 && m != snapMagicV1 {
		return nil, 0, fmt.Errorf("%w: magic %q, want %q", ErrSnapshot, hdr[:8], snapMagic)
	}
	seq := binary.BigEndian.Uint64(hdr[8:])
	n := binary.BigEndian.Uint64(hdr[16:])
	if n > 1<<40 {
		return nil, 0, fmt.Errorf("%w: host section of %d bytes", ErrSnapshot, n)
	}
	sec := make([]byte, n)
	if _, err := io.ReadFull(br, sec); err != nil {
		return nil, 0, fmt.Errorf("%w: hosts: %v", ErrSnapshot, err)
	}
	hosts, cycle, err := decodeHosts(sec, string(hdr[:8]))
	if err != nil {
		return nil, 0, err
	}
	m, err := model.ReadFrom(br)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: model: %v", ErrSnapshot, err)
	}
	// Read to the end: the object store checks the digest there.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	return &state{m: m, hosts: hosts, cycle: cycle}, seq, nil
}

func decodeHosts(sec []byte, magic string) (map[uint32]*hostState, int, error) {
	v1 := magic == snapMagicV1
	r := bytes.NewReader(sec)
	var err error
	float := func() float64 {
		var v [8]byte
		if _, e := io.ReadFull(r, v[:]); e != nil && err == nil {
			err = e
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(v[:]))
	}
	next := func(limit uint64) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		if v, err = binary.ReadUvarint(r); err == nil && v > limit {
			err = fmt.Errorf("value %d over %d", v, limit)
		}
		return v
	}
	nh := next(uint64(len(sec)))
	hosts := make(map[uint32]*hostState, nh)
	for i := uint64(0); i < nh && err == nil; i++ {
		a := uint32(next(1<<32 - 1))
		h := &hostState{found: make([]model.Found, next(65535))}
		for j := range h.found {
			f := &h.found[j]
			f.Port = uint16(next(65535))
			f.Feats = make([]features.ID, next(uint64(r.Len()/8)))
			for k := range f.Feats {
				var v [8]byte
				if _, e := io.ReadFull(r, v[:]); e != nil && err == nil {
					err = e
				}
				f.Feats[k] = features.ID(binary.LittleEndian.Uint64(v[:]))
			}
		}
		h.predicted = make([]published, next(65535))
		for j := range h.predicted {
			x := &h.predicted[j]
			x.port, x.p = uint16(next(65535)), 1
			if !v1 {
				x.p = float()
			}
		}
		if !v1 {
			h.at = int(next(1 << 40))
		}
		hosts[a] = h
	}
	cycle := 0
	if magic == snapMagic {
		cycle = int(next(1 << 31))
	}
	if err == nil && r.Len() != 0 {
		err = fmt.Errorf("%d bytes left over", r.Len())
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%w: hosts: %v", ErrSnapshot, err)
	}
	return hosts, cycle, nil
}

// loadSnapshot reads the predictor's snapshot; found is false when there is none.
func loadSnapshot(ctx context.Context, store jetstream.ObjectStore) (st *state, seq uint64, found bool, err error) {
	found, err = bus.GetObject(ctx, store, SnapshotObject, func(r io.Reader) (err error) {
		st, seq, err = decodeSnapshot(r)
		return err
	})
	if err != nil || !found {
		return nil, 0, false, err
	}
	return st, seq, true, nil
}

// putSnapshot stores an encoded snapshot, replacing the last one.
func putSnapshot(ctx context.Context, store jetstream.ObjectStore, data []byte) error {
	return bus.PutObject(ctx, store, SnapshotObject, "predictor snapshot: magic, RESULTS sequence, hosts found and predicted, model", data)
}
