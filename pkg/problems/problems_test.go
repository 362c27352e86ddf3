package problems

import (
	"errors"
	"io"
	"testing"
)

func TestList(t *testing.T) {
	errBad := errors.New("invalid config")
	t.Run("none", func(t *testing.T) {
		if err := New(errBad).Err(); err != nil {
			t.Fatalf("Err() = %v, want nil", err)
		}
	})
	t.Run("every problem, each wrapping the sentinel", func(t *testing.T) {
		l := New(errBad)
		l.Addf("--port %d: want 0..65535", 70000)
		l.Addf("read list: %w", io.ErrUnexpectedEOF)
		err := l.Err()
		want := "invalid config: --port 70000: want 0..65535\ninvalid config: read list: unexpected EOF"
		if err == nil || err.Error() != want {
			t.Fatalf("Err() = %q, want %q", err, want)
		}
		if !errors.Is(err, errBad) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Err() = %v: want it to wrap the sentinel and the %%w argument", err)
		}
	})
}
