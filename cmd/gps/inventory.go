package main

import (
	"context"
	"flag"
	"os"

	"github.com/gpsscan/gps/services/inventory"
	"github.com/gpsscan/gps/services/watch"
)

// inventoryCmds are the commands of the inventory: the service, the export
// of its bucket and the watch of its events.
func inventoryCmds() []command {
	return []command{inventoryServeCmd(), inventoryExportCmd(), watchServicesCmd()}
}

func inventoryServeCmd() command {
	return serviceCmd("inventory serve", "keep the latest state of every service (bucket gps-inventory) and publish its events (gps.inventory.>)", daemonOpts,
		func(fs *flag.FlagSet) (func() error, func(context.Context, svc) error) {
			var c inventory.Config
			c.RegisterFlags(fs)
			return func() error { return c.Validate() }, func(ctx context.Context, s svc) error {
				return inventory.Run(ctx, inventory.Deps{Config: c, Bus: s.Bus, Log: s.Log, Stats: &inventory.Stats{}, Metrics: s.Metrics, Ready: s.Ready})
			}
		})
}

func inventoryExportCmd() command {
	return serviceCmd("inventory", "print the inventory (bucket gps-inventory) as JSON lines, sorted by address and port", toolOpts,
		func(fs *flag.FlagSet) (func() error, func(context.Context, svc) error) {
			state := fs.String("state", "live", "services in this state: live, gone or all")
			return func() error {
					if !inventory.ValidState(*state) {
						return usageErr("--state %q: want live, gone or all", *state)
					}
					return nil
				}, func(ctx context.Context, s svc) error {
					s.Ready()
					return inventory.Export(ctx, s.Bus, *state, os.Stdout)
				}
		})
}

func watchServicesCmd() command {
	return serviceCmd("watch services", "print the service events gps.inventory.> (new, changed, gone) as JSON lines", toolOpts,
		func(fs *flag.FlagSet) (func() error, func(context.Context, svc) error) {
			c := watch.Config{What: "services"}
			c.RegisterFlags(fs)
			return func() error { return c.Validate() }, func(ctx context.Context, s svc) error {
				s.Ready()
				return watch.Run(ctx, watch.Deps{Config: c, Bus: s.Bus, Log: s.Log, Out: os.Stdout})
			}
		})
}
