package bus

import (
	"errors"
	"fmt"
)

// ErrNoBus is the error of a service started without a bus.
var ErrNoBus = errors.New("no bus")

// ServiceConfig is the Config of a service: its defaults and its check.
type ServiceConfig[C any] interface {
	WithDefaults() C
	Validate() error
}

// CheckService is the start every service's Run shares: it returns c with
// its defaults, checked, and refuses to run without a bus (ErrNoBus). A
// config error is returned as it is, for the caller's errors.Is.
func CheckService[C ServiceConfig[C]](service string, c C, b *Bus) (C, error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return c, err
	}
	if b == nil {
		return c, fmt.Errorf("run %s: %w", service, ErrNoBus)
	}
	return c, nil
}
