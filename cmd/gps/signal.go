package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// onSIGHUP sends on the channel it returns at each SIGHUP until ctx ends
// (SIGHUPs that come while one waits unread count as one).
func onSIGHUP(ctx context.Context) <-chan struct{} {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	out := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}
