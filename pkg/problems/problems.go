// Package problems collects the problems of a configuration, so a Validate
// reports every bad field at once rather than the first, each problem
// wrapping the package's sentinel (ErrConfig) for errors.Is.
package problems

import (
	"errors"
	"fmt"
)

// List is the problems found so far; its zero value is not usable (New).
type List struct {
	sentinel error
	errs     []error
}

// New returns an empty List whose problems wrap sentinel.
func New(sentinel error) *List {
	return &List{sentinel: sentinel}
}

// Addf adds the problem format describes (fmt.Errorf's verbs, %w included).
func (l *List) Addf(format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%w: %w", l.sentinel, fmt.Errorf(format, args...)))
}

// Err returns every problem joined (errors.Join), or nil if there is none.
func (l *List) Err() error {
	return errors.Join(l.errs...)
}
