package bus

import (
	"errors"
	"testing"
)

type testConfig struct{ n int }

var errTestConfig = errors.New("bad test config")

func (c testConfig) WithDefaults() testConfig {
	if c.n == 0 {
		c.n = 7
	}
	return c
}

func (c testConfig) Validate() error {
	if c.n < 0 {
		return errTestConfig
	}
	return nil
}

func TestCheckService(t *testing.T) {
	b := new(Bus)
	for _, tc := range []struct {
		name  string
		c     testConfig
		b     *Bus
		want  error
		wantN int
	}{
		{"defaults", testConfig{}, b, nil, 7},
		{"set", testConfig{n: 3}, b, nil, 3},
		{"bad config", testConfig{n: -1}, b, errTestConfig, -1},
		{"no bus", testConfig{}, nil, ErrNoBus, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := CheckService("test", tc.c, tc.b)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("CheckService = %v, want %v", err, tc.want)
			}
			if c.n != tc.wantN {
				t.Errorf("config n = %d, want %d", c.n, tc.wantN)
			}
		})
	}
}
