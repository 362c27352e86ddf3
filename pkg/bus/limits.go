package bus

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrLimits is wrapped by every error of ParseLimits.
var ErrLimits = errors.New("bad stream limits")

// ParseLimits parses the stream limits of the command line: maxAge and
// maxBytes are each empty (no limit), one value for every stream ("72h",
// "50GiB"), or comma-separated STREAM=value pairs, optionally after a value
// for the streams not named ("RESULTS=7d,PREDICTIONS=48h",
// "10GiB,RESULTS=200GiB"). Ages are Go durations or whole days ("7d"); sizes
// are bytes with an optional unit: K, M, G, T (powers of 1000, also KB, ...)
// or KiB, MiB, GiB, TiB (powers of 1024). 0 is unlimited. Stream names are
// those of StreamNames, in any case.
func ParseLimits(maxAge, maxBytes string) (map[string]Limits, error) {
	ages, err := parseSpec(maxAge, "max age", parseAge)
	if err != nil {
		return nil, err
	}
	sizes, err := parseSpec(maxBytes, "max bytes", parseBytes)
	if err != nil {
		return nil, err
	}
	if len(ages) == 0 && len(sizes) == 0 {
		return nil, nil
	}
	out := make(map[string]Limits)
	for _, name := range append([]string{AllStreams}, StreamNames()...) {
		age, okA := ages[name]
		size, okS := sizes[name]
		if !okA && !okS {
			continue // the AllStreams entry, if any, applies
		}
		if !okA {
			age = ages[AllStreams]
		}
		if !okS {
			size = sizes[AllStreams]
		}
		out[name] = Limits{MaxAge: age, MaxBytes: size}
	}
	return out, nil
}

// parseSpec parses "value", "STREAM=value,..." or "value,STREAM=value,..."
// into values by stream name (AllStreams for the bare value).
func parseSpec[T any](spec, what string, parse func(string) (T, error)) (map[string]T, error) {
	out := make(map[string]T)
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		stream, val, named := strings.Cut(part, "=")
		if !named {
			stream, val = AllStreams, part
		} else {
			stream = strings.ToUpper(strings.TrimSpace(stream))
			if !slices.Contains(StreamNames(), stream) {
				return nil, fmt.Errorf("%w: %s %q: unknown stream %q (want one of %s)", ErrLimits, what, spec, stream, strings.Join(StreamNames(), ", "))
			}
		}
		if _, dup := out[stream]; dup {
			return nil, fmt.Errorf("%w: %s %q: %s given twice", ErrLimits, what, spec, stream)
		}
		v, err := parse(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("%w: %s %q: %v", ErrLimits, what, spec, err)
		}
		out[stream] = v
	}
	return out, nil
}

func parseAge(v string) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || !(n >= 0 && n <= 1e5) { // NaN fails every comparison
			return 0, fmt.Errorf("age %q: want a duration like 72h or 7d", v)
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("age %q: want a duration like 72h or 7d", v)
	}
	if d > 0 && d < time.Second {
		return 0, fmt.Errorf("age %q: under a second", v)
	}
	return d, nil
}

func parseBytes(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{ // longest first
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
		{"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"t", 1e12}, {"b", 1},
	}
	num, mult := strings.ToLower(v), 1.0
	for _, u := range units {
		if s, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(s), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || !(n >= 0 && n*mult <= math.MaxInt64/2) { // NaN fails every comparison
		return 0, fmt.Errorf("size %q: want bytes like 1073741824, 50GiB or 200G", v)
	}
	return int64(n * mult), nil
}

// FormatLimits renders limits as ParseLimits reads them (for logs).
func FormatLimits(ls map[string]Limits) string {
	if len(ls) == 0 {
		return "unlimited"
	}
	var parts []string
	for _, name := range append([]string{AllStreams}, StreamNames()...) {
		if l, ok := ls[name]; ok {
			parts = append(parts, fmt.Sprintf("%s: max age %v, max bytes %d", name, l.MaxAge, l.MaxBytes))
		}
	}
	return strings.Join(parts, "; ")
}
