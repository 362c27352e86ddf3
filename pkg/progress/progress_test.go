package progress

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestFinish: the last line says "finished" only for work that finished;
// work that failed ends with "stopped" and its count.
func TestFinish(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{{nil, "finished"}, {errors.New("seed.jsonl:3: bad ip"), "stopped"}} {
		core, logs := observer.New(zapcore.InfoLevel)
		m := Start(zap.New(core), "rows", 0, time.Hour)
		m.Add(2)
		m.Finish(tc.err)
		m.Finish(nil) // once only
		entries := logs.All()
		if len(entries) != 1 || entries[0].Message != tc.want {
			t.Fatalf("err %v: logged %v, want one %q line", tc.err, entries, tc.want)
		}
		ctx := entries[0].ContextMap()
		if ctx["done"] != int64(2) {
			t.Fatalf("done = %v, want 2", ctx["done"])
		}
	}
}
