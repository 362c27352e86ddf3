package modeler

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/model"
)

// SnapshotObject is the name of the modeler's snapshot in the snapshot store.
const SnapshotObject = "modeler"

// snapMagic opens a modeler snapshot: format and version in 8 bytes. It is
// followed by the RESULTS stream sequence the model covers (uint64, big
// endian) and the model itself (model.WriteTo).
const snapMagic = "GPSMODL\x01"

// ErrSnapshot marks a snapshot that cannot be read.
var ErrSnapshot = errors.New("bad snapshot")

// EncodeSnapshot writes a snapshot of m, which covers the RESULTS stream up
// to and including seq, to w.
func EncodeSnapshot(w io.Writer, seq uint64, m *model.Model) error {
	var hdr [16]byte
	copy(hdr[:8], snapMagic)
	binary.BigEndian.PutUint64(hdr[8:], seq)
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	if _, err := m.WriteTo(w); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	return nil
}

// DecodeSnapshot reads a snapshot written by EncodeSnapshot.
func DecodeSnapshot(r io.Reader) (*model.Model, uint64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var hdr [16]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, 0, fmt.Errorf("%w: header: %v", ErrSnapshot, err)
	}
	if string(hdr[:8]) != snapMagic {
		return nil, 0, fmt.Errorf("%w: magic %q, want %q", ErrSnapshot, hdr[:8], snapMagic)
	}
	seq := binary.BigEndian.Uint64(hdr[8:])
	m, err := model.ReadFrom(br)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: model: %v", ErrSnapshot, err)
	}
	// Read to the end: the object store checks the digest there.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	return m, seq, nil
}

// loadSnapshot reads the named snapshot; found is false when there is none.
func loadSnapshot(ctx context.Context, store jetstream.ObjectStore, name string) (m *model.Model, seq uint64, found bool, err error) {
	found, err = bus.GetObject(ctx, store, name, func(r io.Reader) (err error) {
		m, seq, err = DecodeSnapshot(r)
		return err
	})
	if err != nil || !found {
		return nil, 0, false, err
	}
	return m, seq, true, nil
}

// putSnapshot stores an encoded snapshot under name, replacing the last one.
func putSnapshot(ctx context.Context, store jetstream.ObjectStore, name string, data []byte) error {
	return bus.PutObject(ctx, store, name, "model snapshot: magic, RESULTS sequence, model", data)
}
