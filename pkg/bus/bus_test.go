package bus_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
)

func TestPublishDedupAndDeadLetter(t *testing.T) {
	ctx := context.Background()
	b := bustest.New(t)
	// Setup twice is fine.
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := b.Publish(ctx, "gps.results.seed", "same-id", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := b.JS.Stream(ctx, bus.StreamResults)
	info, _ := s.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("%d messages stored for one Nats-Msg-Id, want 1", info.State.Msgs)
	}
	c, err := b.Consumer(ctx, bus.StreamResults, "t", nil, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.DeadLetter(ctx, "tester", msg, errors.New("broken")); err != nil {
		t.Fatal(err)
	}
	d, _ := b.JS.Stream(ctx, bus.StreamDeadLetter)
	m, err := d.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(bus.HeaderReason) != "broken" || m.Header.Get(bus.HeaderSubject) != "gps.results.seed" || m.Subject != "gps.dlq.tester" {
		t.Fatalf("dead letter %s %v", m.Subject, m.Header)
	}
	// Async batch with de-duplication.
	a := b.Async(100)
	for i := 0; i < 250; i++ {
		if err := a.Publish(ctx, "gps.predictions.priors", string(rune('a'+i%50)), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p, _ := b.JS.Stream(ctx, bus.StreamPredictions)
	pi, _ := p.Info(ctx)
	if pi.State.Msgs != 50 {
		t.Fatalf("%d predictions stored, want 50 distinct ids", pi.State.Msgs)
	}
}

// TestDeadLetterBounded checks that a dead letter always ends: stored whole
// when it fits, with its body cut (size and hash kept) when the copy would
// pass the server's max payload, with no body when the stream refuses the
// body, and, when the stream refuses even that, the message terminated
// with ErrDeadLetterLost. The reason is cut every time.
func TestDeadLetterBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := bustest.New(t)
	maxPayload := int(b.NC.MaxPayload())
	huge := bytes.Repeat([]byte("x"), maxPayload-200) // fits the server as a message, not as a dead letter
	reason := errors.New("bad ip " + strings.Repeat("9", 200<<10))
	for i, tc := range []struct {
		name       string
		body       []byte
		dlqMaxSize int32 // the dead-letter stream's message limit (0: none)
		stored     int   // bytes of body stored, -1: no dead letter
		cut        bool
	}{
		{"small", []byte(`{"v":1}`), 0, 7, false},
		{"near max payload", huge, 0, -2, true},
		{"body refused by the stream", huge, 4096, 0, true},
		{"refused whole", []byte(`{"v":1}`), 64, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := b.JS.Stream(ctx, bus.StreamDeadLetter)
			if err != nil {
				t.Fatal(err)
			}
			cfg := s.CachedInfo().Config
			cfg.MaxMsgSize = tc.dlqMaxSize
			if tc.dlqMaxSize == 0 {
				cfg.MaxMsgSize = -1
			}
			if _, err := b.JS.UpdateStream(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			subject := "gps.targets.t" + strconv.Itoa(i)
			if err := b.Publish(ctx, subject, tc.name, tc.body); err != nil {
				t.Fatal(err)
			}
			c, err := b.Consumer(ctx, bus.StreamTargets, "dl"+strconv.Itoa(i), []string{subject}, 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			err = b.DeadLetter(ctx, "t"+strconv.Itoa(i), msg, reason)
			if tc.stored == -1 {
				if !errors.Is(err, bus.ErrDeadLetterLost) {
					t.Fatalf("err = %v, want ErrDeadLetterLost", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			for ci, err := c.Info(ctx); err != nil || ci.NumAckPending != 0 || ci.NumPending != 0; ci, err = c.Info(ctx) {
				if ctx.Err() != nil { // a term is not confirmed: poll
					t.Fatalf("consumer %+v %v: the message is not terminated", ci, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if tc.stored == -1 {
				return
			}
			d, _ := b.JS.Stream(ctx, bus.StreamDeadLetter)
			m, err := d.GetLastMsgForSubject(ctx, "gps.dlq.t"+strconv.Itoa(i))
			if err != nil {
				t.Fatal(err)
			}
			if r := m.Header.Get(bus.HeaderReason); len(r) > bus.MaxReason || !strings.HasPrefix(r, "bad ip 999") {
				t.Fatalf("reason of %d bytes: %.100s", len(r), r)
			}
			if m.Header.Get(bus.HeaderBodySize) != strconv.Itoa(len(tc.body)) || m.Header.Get(bus.HeaderSubject) != subject {
				t.Fatalf("headers %v", m.Header)
			}
			if !bytes.HasPrefix(tc.body, m.Data) || tc.stored >= 0 && len(m.Data) != tc.stored || tc.stored == -2 && len(m.Data) < maxPayload/2 {
				t.Fatalf("stored %d bytes of %d", len(m.Data), len(tc.body))
			}
			sum := sha256.Sum256(tc.body)
			if got := m.Header.Get(bus.HeaderBodySHA256); tc.cut != (got != "") || tc.cut && got != hex.EncodeToString(sum[:]) {
				t.Fatalf("body hash %q (cut %v)", got, tc.cut)
			}
		})
	}
}
