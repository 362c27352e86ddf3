// Package progress logs the rate of long work periodically, so an operator
// watching stderr sees that a long run is alive and how far it got.
package progress

import (
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Meter counts units of work and logs a rate line every interval.
type Meter struct {
	log   *zap.Logger
	what  string
	total int64 // 0 if unknown
	n     atomic.Int64
	start time.Time
	stop  chan struct{}
	once  sync.Once
	done  chan struct{}
}

// Start begins logging the progress of `what` every interval. total may be
// 0 when unknown.
func Start(log *zap.Logger, what string, total int64, interval time.Duration) *Meter {
	m := &Meter{log: log, what: what, total: total, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.logLine("progress")
			}
		}
	}()
	return m
}

// Add counts n more units.
func (m *Meter) Add(n int64) { m.n.Add(n) }

// Count is the units counted so far.
func (m *Meter) Count() int64 { return m.n.Load() }

func (m *Meter) logLine(msg string) {
	n := m.n.Load()
	el := time.Since(m.start)
	fields := []zap.Field{zap.String("what", m.what), zap.Int64("done", n),
		zap.Duration("elapsed", el.Round(time.Millisecond)),
		zap.Float64("per_second", float64(n)/max(el.Seconds(), 1e-9))}
	if m.total > 0 {
		fields = append(fields, zap.Int64("total", m.total), zap.Float64("percent", 100*float64(n)/float64(m.total)))
	}
	m.log.Info(msg, fields...)
}

// Done stops the meter and logs a final line.
func (m *Meter) Done() { m.Finish(nil) }

// Finish stops the meter and logs a final line: "finished", or with err
// "stopped" and how far the work got (so a failed run does not claim to
// have finished; the error itself is the caller's to report).
func (m *Meter) Finish(err error) {
	m.once.Do(func() {
		close(m.stop)
		<-m.done
		if err != nil {
			m.logLine("stopped")
			return
		}
		m.logLine("finished")
	})
}
