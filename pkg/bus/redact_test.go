package bus_test

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gpsscan/gps/pkg/bus"
)

// TestConnectHidesCredentials: a password or token in the URL appears in
// neither the connection error nor the logs, whether the URL parses or not;
// the rest of the URL (user, host) does, to say which server failed.
func TestConnectHidesCredentials(t *testing.T) {
	for _, tc := range []struct {
		name, url, secret string
		want              []string // in the error
	}{
		{"password", "nats://alice:s3cretpw@127.0.0.1:1", "s3cretpw", []string{"alice:xxxxx@127.0.0.1:1"}},
		{"token", "nats://tok3nvalue@127.0.0.1:1", "tok3nvalue", []string{"nats://xxxxx@127.0.0.1:1"}},
		{"no scheme", "bob:hunter22@127.0.0.1:1", "hunter22", []string{"bob:xxxxx@127.0.0.1:1"}},
		{"bad escape", "nats://carol:pa%zzword@127.0.0.1:1", "pa%zzword", []string{"carol:xxxxx@127.0.0.1:1"}},
		{"cluster", "nats://127.0.0.1:1,nats://dave:d4vepass@127.0.0.1:2", "d4vepass", []string{"nats://127.0.0.1:1,nats://dave:xxxxx@127.0.0.1:2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			_, err := bus.Connect(context.Background(), bus.Config{URL: tc.url, Name: "test"}, zap.New(core))
			if err == nil {
				t.Fatal("connected to a port with no server")
			}
			if strings.Contains(err.Error(), tc.secret) {
				t.Fatalf("error shows the secret: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q lacks %q", err, w)
				}
			}
			for _, e := range logs.All() {
				if s := e.Message + " " + strings.Join(mapValues(e.ContextMap()), " "); strings.Contains(s, tc.secret) {
					t.Fatalf("log shows the secret: %s", s)
				}
			}
		})
	}
}

func mapValues(m map[string]any) []string {
	var out []string
	for _, v := range m {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "",
		"nats://127.0.0.1:4222": "nats://127.0.0.1:4222",
		"nats://u:p@h:1":        "nats://u:xxxxx@h:1",
		"nats://t@h:1":          "nats://xxxxx@h:1",
		"tls://u:p@a@h:1/x@y":   "tls://u:xxxxx@h:1/x@y",
		"nats://a:b@h:1, nats://c@h:2,nats://h:3": "nats://a:xxxxx@h:1, nats://xxxxx@h:2,nats://h:3",
	} {
		if got := bus.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
