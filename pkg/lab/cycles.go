package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/gpsscan/gps/pkg/row"
)

// Ops of a Change.
const (
	OpAdd    = "add"    // a service appears: Row
	OpDel    = "del"    // a service goes away: IP, Port
	OpMove   = "move"   // a host moves with all its services: IP to To
	OpChange = "change" // a service's row changes (its banner): Row, at the same ip and port
)

// Change is one event of a cycle, one JSON line of
// changes/cycle-NNNN.jsonl:
//
//	{"op":"add","cause":"new-service","row":{"ip":"127.1.0.8","p":8080,...}}
//	{"op":"del","cause":"gone-host","ip":"127.1.0.8","p":443}
//	{"op":"move","cause":"dhcp","ip":"127.3.4.5","to":"127.3.9.77"}
//	{"op":"change","cause":"version","row":{"ip":"127.1.0.8","p":22,"data":"SSH-2.0-OpenSSH_8.10p1",...}}
//
// A cycle's changes apply in file order to the truth of the cycle before.
type Change struct {
	Op    string   `json:"op"`
	Cause string   `json:"cause,omitempty"` // why (the Cause constants); informative
	Row   *row.Row `json:"row,omitempty"`   // add, change
	IP    string   `json:"ip,omitempty"`    // del, move
	Port  int      `json:"p,omitempty"`     // del
	To    string   `json:"to,omitempty"`    // move
}

// CycleCounts summarise one cycle's changes; meta.json lists them.
type CycleCounts struct {
	Cycle    int `json:"cycle"`
	Services int `json:"services"` // services of the world at this cycle
	Added    int `json:"added"`    // services that appeared (add)
	Gone     int `json:"gone"`     // services that went away (del)
	Moved    int `json:"moved"`    // hosts that moved (move)
	Changed  int `json:"changed"`  // services whose banner changed (change)
}

// CountChanges counts the changes by op (Cycle and Services stay zero).
func CountChanges(cs []Change) CycleCounts {
	var c CycleCounts
	for i := range cs {
		switch cs[i].Op {
		case OpAdd:
			c.Added++
		case OpDel:
			c.Gone++
		case OpMove:
			c.Moved++
		case OpChange:
			c.Changed++
		}
	}
	return c
}

// ChangesDir is the directory of a world's change files.
const ChangesDir = "changes"

// ChangesFile is the path of the changes of cycle k (from 1) of the world
// in dir.
func ChangesFile(dir string, k int) string {
	return filepath.Join(dir, ChangesDir, fmt.Sprintf("cycle-%04d.jsonl", k))
}

// ErrCycle is wrapped by the error of a cycle a world does not have.
var ErrCycle = errors.New("no such cycle")

// Cycles is the number of cycles after cycle 0 that the world of meta has.
func (m Meta) Cycles() int {
	n, _ := m.Params["cycles"].(int)
	return n
}

func writeChanges(out io.Writer, cs []Change) error {
	for i := range cs {
		b, err := json.Marshal(&cs[i])
		if err != nil {
			return err
		}
		if _, err := out.Write(append(b, '\n')); err != nil {
			return err
		}
	}
	return nil
}

// ReadChanges reads the changes of cycle k (from 1) of the world in dir. A
// malformed line is a *row.LineError naming the file and line.
func ReadChanges(dir string, k int) ([]Change, error) {
	var out []Change
	path := WorldFile(filepath.Join(dir, ChangesDir), filepath.Base(ChangesFile(dir, k)))
	err := row.EachFileLine(path, func(_ int, b []byte) error {
		c, err := parseChange(b)
		if err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	return out, nil
}

// parseChange decodes one change line and checks it has what its op needs.
func parseChange(b []byte) (Change, error) {
	var c Change
	if err := json.Unmarshal(b, &c); err != nil {
		return Change{}, fmt.Errorf("bad change: %w", err)
	}
	switch c.Op {
	case OpAdd, OpChange:
		if c.Row == nil {
			return Change{}, fmt.Errorf("bad change: %q without a row", c.Op)
		}
		rb, _ := json.Marshal(c.Row)
		if _, err := row.Parse(rb); err != nil {
			return Change{}, fmt.Errorf("bad change: %w", err)
		}
	case OpDel:
		if _, err := row.ParseAddr(c.IP); err != nil || c.Port < 1 || c.Port > 65535 {
			return Change{}, fmt.Errorf("bad change: del needs an IPv4 ip and a port 1..65535, have %q %d", c.IP, c.Port)
		}
	case OpMove:
		_, err1 := row.ParseAddr(c.IP)
		_, err2 := row.ParseAddr(c.To)
		if err1 != nil || err2 != nil {
			return Change{}, fmt.Errorf("bad change: move needs IPv4 ip and to, have %q %q", c.IP, c.To)
		}
	default:
		return Change{}, fmt.Errorf("bad change: op %q is none of add, del, move, change", c.Op)
	}
	return c, nil
}

// Snapshot is the truth of a world at one cycle, which changes apply to.
// It is not safe for concurrent use.
type Snapshot struct {
	hosts map[uint32][]row.Row // by address, each by port
	n     int
}

// NewSnapshot holds the services ss; of several rows of one (ip, port) the
// first is kept.
func NewSnapshot(ss []row.Service) *Snapshot {
	s := &Snapshot{hosts: make(map[uint32][]row.Row)}
	for _, x := range ss {
		rs := s.hosts[x.Addr]
		if i, found := portIndex(rs, x.Port); !found {
			s.hosts[x.Addr] = slices.Insert(rs, i, x.Row)
			s.n++
		}
	}
	return s
}

func portIndex(rs []row.Row, port int) (int, bool) {
	return slices.BinarySearchFunc(rs, port, func(r row.Row, p int) int { return r.Port - p })
}

// Len is the number of services.
func (s *Snapshot) Len() int { return s.n }

// Apply applies changes in order. A change that does not fit (adding a
// service that is there, deleting or changing one that is not, moving a
// host that is not there or onto one that is) is an error, and the
// changes before it stay applied.
func (s *Snapshot) Apply(cs []Change) error {
	for i := range cs {
		if err := s.apply(&cs[i]); err != nil {
			return fmt.Errorf("apply change %d: %w", i+1, err)
		}
	}
	return nil
}

func (s *Snapshot) apply(c *Change) error {
	switch c.Op {
	case OpAdd, OpChange:
		if c.Row == nil {
			return fmt.Errorf("%s without a row", c.Op)
		}
		a, err := c.Row.Validate()
		if err != nil {
			return err
		}
		rs := s.hosts[a]
		i, found := portIndex(rs, c.Row.Port)
		switch {
		case c.Op == OpAdd && found:
			return fmt.Errorf("add %s:%d: the service is there", c.Row.IP, c.Row.Port)
		case c.Op == OpChange && !found:
			return fmt.Errorf("change %s:%d: no such service", c.Row.IP, c.Row.Port)
		case found:
			rs[i] = *c.Row
		default:
			s.hosts[a] = slices.Insert(rs, i, *c.Row)
			s.n++
		}
	case OpDel:
		a, err := row.ParseAddr(c.IP)
		if err != nil {
			return err
		}
		rs := s.hosts[a]
		i, found := portIndex(rs, c.Port)
		if !found {
			return fmt.Errorf("del %s:%d: no such service", c.IP, c.Port)
		}
		if rs = slices.Delete(rs, i, i+1); len(rs) == 0 {
			delete(s.hosts, a)
		} else {
			s.hosts[a] = rs
		}
		s.n--
	case OpMove:
		from, err1 := row.ParseAddr(c.IP)
		to, err2 := row.ParseAddr(c.To)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		rs := s.hosts[from]
		switch {
		case len(rs) == 0:
			return fmt.Errorf("move %s: no such host", c.IP)
		case len(s.hosts[to]) > 0:
			return fmt.Errorf("move %s to %s: the address is taken", c.IP, c.To)
		}
		for i := range rs {
			rs[i].IP = c.To
		}
		delete(s.hosts, from)
		s.hosts[to] = rs
	default:
		return fmt.Errorf("unknown op %q", c.Op)
	}
	return nil
}

// Services returns the services in (address, port) order, as truth.jsonl
// has them. The rows are copies: changing them changes nothing here.
func (s *Snapshot) Services() []row.Service {
	addrs := make([]uint32, 0, len(s.hosts))
	for a := range s.hosts {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	out := make([]row.Service, 0, s.n)
	for _, a := range addrs {
		for _, r := range s.hosts[a] {
			r.TLSOIDs = slices.Clone(r.TLSOIDs)
			out = append(out, row.Service{Row: r, Addr: a})
		}
	}
	return out
}

// Timeline walks the cycles of a world directory forwards, applying each
// cycle's changes to the truth of the cycle before: the cheap way to visit
// cycle after cycle. It is not safe for concurrent use.
type Timeline struct {
	dir string
	n   int // cycles after 0
	k   int // the current cycle
	s   *Snapshot
}

// OpenTimeline reads the world's meta.json and truth.jsonl; the timeline
// starts at cycle 0. A world without meta.json (a converted scan, say) has
// no cycles but 0.
func OpenTimeline(dir string) (*Timeline, error) {
	m, err := ReadMeta(dir)
	if errors.Is(err, fs.ErrNotExist) {
		m, err = Meta{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open timeline: %w", err)
	}
	ss, err := row.ReadAll(WorldFile(dir, TruthFile))
	if err != nil {
		return nil, fmt.Errorf("open timeline: %w", err)
	}
	return &Timeline{dir: dir, n: m.Cycles(), s: NewSnapshot(ss)}, nil
}

// Cycles is the number of cycles after cycle 0 the world has.
func (t *Timeline) Cycles() int { return t.n }

// Cycle is the current cycle.
func (t *Timeline) Cycle() int { return t.k }

// Len is the number of services at the current cycle.
func (t *Timeline) Len() int { return t.s.Len() }

// Services are the services at the current cycle (see Snapshot.Services).
func (t *Timeline) Services() []row.Service { return t.s.Services() }

// Next moves to the next cycle and returns its changes. Past the last
// cycle it is an error wrapping ErrCycle. A change line that is malformed
// or does not fit the truth before it is a *row.LineError naming the file
// and line; the timeline cannot go on after it.
func (t *Timeline) Next() ([]Change, error) {
	if err := t.check(t.k + 1); err != nil {
		return nil, err
	}
	var cs []Change
	path := WorldFile(filepath.Join(t.dir, ChangesDir), filepath.Base(ChangesFile(t.dir, t.k+1)))
	err := row.EachFileLine(path, func(_ int, b []byte) error {
		c, err := parseChange(b)
		if err == nil {
			err = t.s.apply(&c)
		}
		cs = append(cs, c)
		return err
	})
	if err != nil {
		t.n = t.k // the snapshot is half-way: no cycle after this one is trustworthy
		return nil, fmt.Errorf("read cycle %d: %w", t.k+1, err)
	}
	t.k++
	return cs, nil
}

// Seek moves to cycle k: forwards by applying changes, backwards by
// starting again from truth.jsonl.
func (t *Timeline) Seek(k int) error {
	if err := t.check(k); err != nil {
		return err
	}
	if k < t.k {
		nt, err := OpenTimeline(t.dir)
		if err != nil {
			return err
		}
		*t = *nt
	}
	for t.k < k {
		if _, err := t.Next(); err != nil {
			return err
		}
	}
	return nil
}

func (t *Timeline) check(k int) error {
	if k < 0 || k > t.n {
		return fmt.Errorf("cycle %d: %w: the world in %s has cycles 0..%d", k, ErrCycle, t.dir, t.n)
	}
	return nil
}

// ReadCycle returns the truth of the world in dir at cycle k: truth.jsonl
// itself at cycle 0, after that truth.jsonl with the changes of cycles
// 1..k applied, in (address, port) order. A cycle past the last is an error
// wrapping ErrCycle that says how many the world has.
func ReadCycle(dir string, k int) ([]row.Service, error) {
	if k == 0 {
		ss, err := row.ReadAll(WorldFile(dir, TruthFile))
		if err != nil {
			return nil, fmt.Errorf("read cycle 0: %w", err)
		}
		return ss, nil
	}
	t, err := OpenTimeline(dir)
	if err != nil {
		return nil, fmt.Errorf("read cycle %d: %w", k, err)
	}
	if err := t.Seek(k); err != nil {
		return nil, fmt.Errorf("read cycle %d: %w", k, err)
	}
	return t.Services(), nil
}
