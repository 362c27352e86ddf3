// Command gps finds the services of IPv4 on all TCP ports without scanning
// them all (GPS, SIGCOMM 2022). Each subcommand parses its flags and wires
// packages together; the work lives in pkg/ and services/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/labserve"
	"github.com/gpsscan/gps/pkg/logging"
)

// command is one subcommand: its flags and what it runs.
type command struct {
	name  string
	usage string
	flags func(fs *flag.FlagSet) func(ctx context.Context, log *zap.Logger) error
}

// errUsage marks an error that is the user's (exit status 2).
var errUsage = errors.New("usage")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func commands() []command {
	return append([]command{demoCmd(), firstCmd(), remainingCmd(), labGenCmd(), labServeCmd(), evalCmd(),
		seederCmd(), modelerCmd(), predictorCmd(), proberCmd(), allCmd(), watchCmd("predictions"), watchCmd("results"),
		benchScannersCmd(), listCmd()}, inventoryCmds()...)
}

func main() {
	// A lab too big for one process's descriptors runs helper processes of
	// this same binary; in one of those, this serves and never returns.
	labserve.RunHelperIfRequested()
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	cmds := commands()
	byName := make(map[string]command)
	for _, c := range cmds {
		byName[c.name] = c
	}
	usage := func() {
		fmt.Fprintln(stderr, "usage: gps <command> [flags]\n\ncommands:")
		names := make([]string, 0, len(cmds))
		width := 0
		for _, c := range cmds {
			names = append(names, c.name)
			width = max(width, len(c.name))
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(stderr, "  %-*s  %s\n", width, n, byName[n].usage)
		}
		fmt.Fprintln(stderr, "\nRun 'gps <command> -h' for its flags.")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	name := args[0]
	rest := args[1:]
	// Two-word commands: "lab gen".
	if len(rest) > 0 {
		if _, ok := byName[name+" "+rest[0]]; ok {
			name, rest = name+" "+rest[0], rest[1:]
		}
	}
	c, ok := byName[name]
	if !ok {
		fmt.Fprintf(stderr, "gps: unknown command %q\n\n", name)
		usage()
		return 2
	}
	fs := flag.NewFlagSet("gps "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "console", "log format: console or json")
	runFn := c.flags(fs)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gps %s: unexpected argument %q\n", c.name, fs.Arg(0))
		return 2
	}
	if err := finiteFlags(fs); err != nil {
		fmt.Fprintf(stderr, "gps %s: %v\n", c.name, err)
		return 2
	}
	log, err := logging.New(*level, *format)
	if err != nil {
		fmt.Fprintf(stderr, "gps %s: %v\n", c.name, err)
		return 2
	}
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runFn(ctx, log.With(zap.String("command", c.name))); err != nil {
		fmt.Fprintf(stderr, "gps %s: %v\n", c.name, err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

// finiteFlags rejects a float flag of any command that holds NaN or an
// infinity: strconv.ParseFloat accepts them, and every range check of the
// form x < lo || x > hi lets NaN through.
func finiteFlags(fs *flag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok {
			return
		}
		if x, ok := g.Get().(float64); ok && (math.IsNaN(x) || math.IsInf(x, 0)) {
			errs = append(errs, usageErr("--%s %v: want a finite number", f.Name, x))
		}
	})
	return errors.Join(errs...)
}
