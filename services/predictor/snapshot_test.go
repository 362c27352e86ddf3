package predictor

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gpsscan/gps/pkg/features"
	"github.com/gpsscan/gps/pkg/model"
)

// TestSnapshotRoundTrip: a snapshot reads back to the hosts it was written
// from, with the probability each prediction was last published at.
func TestSnapshotRoundTrip(t *testing.T) {
	st := &state{m: model.New(), hosts: map[uint32]*hostState{
		7: {found: []model.Found{{Port: 80, Feats: []features.ID{1, 2}}}, predicted: []published{{port: 443, p: 0.25}, {port: 8080, p: 1e-4}}, at: 1234},
		9: {found: []model.Found{{Port: 22}}},
	}, cycle: 5}
	var buf bytes.Buffer
	if err := encodeSnapshot(&buf, 42, st); err != nil {
		t.Fatal(err)
	}
	got, seq, err := decodeSnapshot(&buf)
	if err != nil || seq != 42 {
		t.Fatalf("decode: seq %d, %v", seq, err)
	}
	h := got.hosts[7]
	if h == nil || len(h.predicted) != 2 || h.predicted[0] != (published{443, 0.25}) || h.predicted[1] != (published{8080, 1e-4}) || h.at != 1234 {
		t.Fatalf("host 7 read back as %+v", h)
	}
	if h := got.hosts[9]; h == nil || len(h.found) != 1 || len(h.predicted) != 0 {
		t.Fatalf("host 9 read back as %+v", h)
	}
	if got.cycle != 5 {
		t.Fatalf("cycle read back as %d, want 5", got.cycle)
	}
}

// TestSnapshotV1: a snapshot of version 1 (ports predicted, no
// probabilities) reads with every port published at probability 1, so
// none is published again after the upgrade.
func TestSnapshotV1(t *testing.T) {
	var sec []byte
	sec = binary.AppendUvarint(sec, 1)   // hosts
	sec = binary.AppendUvarint(sec, 7)   // address
	sec = binary.AppendUvarint(sec, 0)   // found
	sec = binary.AppendUvarint(sec, 2)   // predicted
	sec = binary.AppendUvarint(sec, 443) // ports
	sec = binary.AppendUvarint(sec, 8080)
	var buf bytes.Buffer
	buf.WriteString(snapMagicV1)
	buf.Write(binary.BigEndian.AppendUint64(nil, 5))
	buf.Write(binary.BigEndian.AppendUint64(nil, uint64(len(sec))))
	buf.Write(sec)
	if _, err := model.New().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	got, seq, err := decodeSnapshot(&buf)
	if err != nil || seq != 5 {
		t.Fatalf("decode v1: seq %d, %v", seq, err)
	}
	if h := got.hosts[7]; h == nil || len(h.predicted) != 2 || h.predicted[0] != (published{443, 1}) || h.predicted[1] != (published{8080, 1}) {
		t.Fatalf("v1 host read back as %+v", got.hosts[7])
	}
}
