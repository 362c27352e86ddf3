package model

import (
	"slices"
	"testing"

	"github.com/gpsscan/gps/pkg/features"
)

// TestAddFound: a port found again joins its features to the port's, a new
// port is appended with its own copy of the features.
func TestAddFound(t *testing.T) {
	feats := []features.ID{3, 1}
	var fs []Found
	fs = AddFound(fs, 80, feats)
	feats[0] = 99 // the caller reuses its slice
	fs = AddFound(fs, 443, []features.ID{5})
	fs = AddFound(fs, 80, []features.ID{2, 3})
	if len(fs) != 2 || fs[0].Port != 80 || !slices.Equal(fs[0].Feats, []features.ID{1, 2, 3}) || fs[1].Port != 443 || !slices.Equal(fs[1].Feats, []features.ID{5}) {
		t.Fatalf("found %+v, want 80 with 1 2 3 and 443 with 5", fs)
	}
}
