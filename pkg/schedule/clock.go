package schedule

import (
	"context"
	"sync"
	"time"
)

// Clock is the time a Scheduler paces its releases by: the wall clock for a
// prober, a simulated one for a replay.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends, returning ctx's error then.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now is time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits d or until ctx ends.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SimClock is simulated time: Sleep moves it on at once. A Scheduler with a
// rate driven by a SimClock releases work at simulated time probes/rate, so
// a replay's curve over time means what it would on the Internet.
type SimClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewSimClock starts simulated time at start.
func NewSimClock(start time.Time) *SimClock { return &SimClock{now: start} }

// Now is the simulated time.
func (c *SimClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep moves simulated time on by d, without waiting.
func (c *SimClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	return nil
}
