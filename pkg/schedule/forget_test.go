package schedule

import (
	"context"
	"testing"
)

func TestForgetLetsATargetBePushedAgain(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	tg := Target{Addr: 1, Port: 80}
	s.Push(tg, 0.5, nil)
	w, ok, err := s.TryNext(context.Background())
	if err != nil || !ok {
		t.Fatalf("TryNext: %v %v", ok, err)
	}
	s.Report(w, 1)
	s.Push(tg, 0.5, nil)
	if s.Len() != 0 {
		t.Fatalf("a target sent before was queued again before Forget: len %d", s.Len())
	}
	s.Forget()
	s.Push(tg, 0.5, nil)
	if s.Len() != 1 {
		t.Fatalf("after Forget: len %d, want 1", s.Len())
	}
}
