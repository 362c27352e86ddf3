package seeder

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/progress"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// progressEvery is how often a long import or sample logs its progress.
const progressEvery = 10 * time.Second

// Run publishes the seed (see the package doc) and returns nil when it is
// on the bus; it returns early with ctx's error if ctx ends first.
func Run(ctx context.Context, d Deps) error {
	d.fill()
	if _, err := bus.CheckService(Service, d.Config, d.Bus); err != nil {
		return err
	}
	if err := d.Bus.Setup(ctx); err != nil {
		return fmt.Errorf("run seeder: %w", err)
	}
	if d.Ready != nil {
		d.Ready()
	}
	if d.Config.Cycle > 0 {
		return runCycles(ctx, &d)
	}
	if d.Config.Import != "" {
		return runImport(ctx, &d)
	}
	return runSample(ctx, &d)
}

// maxImportID is the longest Nats-Msg-Id of an imported batch
// (resultBatcher.send).
var maxImportID = fmt.Sprintf("seed:255.255.255.255:65535:%d:%d:%x", uint32(math.MaxUint32), wire.BatchResults, uint64(math.MaxUint64))

// batchSlack bounds what a batch of wire.BatchBytes adds: its last result
// past the limit is sent alone, so only the headers count.
const batchSlack = 4 << 10

// fitsMessage checks that r's result, sent alone, fits in one message of
// the bus: a batch of several stays under wire.BatchBytes, but a result is
// as large as its row. It encodes the result only when the row's strings
// could make it too large (JSON writes a byte as 6 at most, \u00XX).
func fitsMessage(r row.Row, now time.Time, maxPayload int64) error {
	strs := len(r.IP) + len(r.Data) + len(r.Fingerprint)
	if r.TLSCert != nil {
		strs += len(*r.TLSCert)
	}
	for _, o := range r.TLSOIDs {
		strs += len(o) + 3
	}
	if int64(6*strs+batchSlack) <= maxPayload {
		return nil
	}
	res := wire.ResultFromRow(r, wire.PhaseSeed, now, "import")
	b, err := json.Marshal(&res)
	if err != nil {
		return fmt.Errorf("%w: encode result: %v", ErrBadRecord, err)
	}
	if size := bus.PayloadSize(b, maxImportID); int64(size) > maxPayload {
		return fmt.Errorf("%w: its result is %d bytes with headers, over the bus's max payload of %d bytes", ErrBadRecord, size, maxPayload)
	}
	return nil
}

// repeatKey identifies an (ip, port) of the file.
func repeatKey(addr uint32, port int) uint64 { return uint64(addr)<<16 | uint64(port) }

func runImport(ctx context.Context, d *Deps) (err error) {
	c := d.Config
	log := d.Log.With(zap.String("file", c.Import), zap.String("format", c.Format))
	kv, err := d.Bus.Control(ctx)
	if err != nil {
		return fmt.Errorf("import seed: %w", err)
	}
	if !c.Force {
		var e jetstream.KeyValueEntry
		err := d.Bus.Retry(ctx, "read control record", func(ctx context.Context) (err error) {
			e, err = kv.Get(ctx, bus.KeySeed)
			return err
		})
		switch {
		case err == nil:
			var done wire.SeedDone
			_ = json.Unmarshal(e.Value(), &done)
			log.Info("seed already imported, nothing to do (--force imports again)",
				zap.Int("results", done.Results), zap.Uint64("last_seq", done.LastSeq), zap.Time("time", done.Time))
			return nil
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return fmt.Errorf("import seed: read control record: %w", err)
		}
	}
	read, err := reader(c)
	if err != nil {
		return err
	}

	// Pass 1: validate the whole file; nothing is published if a line is
	// bad, or if its result could not be published (over the server's max
	// payload): a failed import must leave no results for the modeler.
	maxPayload := d.Bus.MaxPayload()
	if maxPayload < wire.BatchBytes+batchSlack {
		return fmt.Errorf("import seed: the server's max payload of %d bytes is under a batch of results (%d bytes); raise max_payload",
			maxPayload, wire.BatchBytes+batchSlack)
	}
	now := d.Now()
	var rows, skipped uint64
	if err := read(c.Import, func(r row.Row) error {
		rows++
		return fitsMessage(r, now, maxPayload)
	}, func() { skipped++ }); err != nil {
		return fmt.Errorf("import seed: %w", err)
	}
	log.Info("seed file valid", zap.Uint64("services", rows), zap.Uint64("skipped", skipped), zap.Int64("max_payload", maxPayload))

	// Pass 2: publish, in batches (wire.BatchResults).
	meter := progress.Start(log, "seed results", int64(rows), progressEvery)
	defer func() { meter.Finish(err) }()
	rb := newResultBatcher(newPublisher(d.Bus, importWindow(c.Batch)))
	repeats := make(map[uint64]uint32)
	var n uint64
	err = read(c.Import, func(r row.Row) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		a, err := r.Validate()
		if err != nil {
			return err
		}
		k := repeatKey(a, r.Port)
		rep := repeats[k]
		repeats[k] = rep + 1
		n++
		d.Stats.Rows.Add(1)
		meter.Add(1)
		res := wire.ResultFromRow(r, wire.PhaseSeed, now, "import")
		return rb.add(ctx, &res, rep)
	}, func() { d.Stats.Skipped.Add(1) })
	if err == nil {
		err = rb.flush(ctx)
	}
	pub := rb.pub
	d.Stats.Results.Store(pub.acked)
	d.Stats.Duplicates.Store(pub.dups)
	if err != nil {
		return fmt.Errorf("import seed: %w", err)
	}
	if n != rows {
		return fmt.Errorf("import seed: %s changed while importing (%d services, then %d)", c.Import, rows, n)
	}
	done := wire.SeedDone{V: wire.Version, Results: int(n), LastSeq: pub.maxSeq, Time: d.Now()}
	b, err := json.Marshal(done)
	if err != nil {
		return fmt.Errorf("import seed: encode control record: %w", err)
	}
	if err := d.Bus.Retry(ctx, "write control record", func(ctx context.Context) error {
		_, err := kv.Put(ctx, bus.KeySeed, b)
		return err
	}); err != nil {
		return fmt.Errorf("import seed: write control record: %w", err)
	}
	if n == 0 {
		log.Warn("seed file has no services")
	}
	log.Info("seed imported", zap.Uint64("results", n), zap.Uint64("duplicates", pub.dups), zap.Uint64("last_seq", pub.maxSeq))
	return nil
}

// targetsSeedSalt separates the (address, port) permutation from the
// address sample drawn with the same seed.
const targetsSeedSalt = 0x5eed7a26e75

func runSample(ctx context.Context, d *Deps) (err error) {
	c, log := d.Config, d.Log
	pol, err := ipv4.LoadPolicy(c.Allow, c.AllowFile, c.BlockFile)
	if err != nil {
		return fmt.Errorf("sample seed: %w", err)
	}
	ports, err := parsePorts(c.Ports)
	if err != nil {
		return fmt.Errorf("sample seed: %w", err)
	}
	seed := c.Seed
	if seed == 0 {
		var b [8]byte
		if _, err := crand.Read(b[:]); err != nil {
			return fmt.Errorf("sample seed: pick a random seed: %w", err)
		}
		seed = int64(binary.LittleEndian.Uint64(b[:]) >> 1)
	}
	nAddr := pol.Count()
	k := uint64(math.Round(c.SeedFrac * float64(nAddr)))
	log = log.With(zap.Int64("rand_seed", seed), zap.Int("shard", c.Shard), zap.Int("shards", c.Shards))
	log.Info("sampling seed", zap.Uint64("allowed_addresses", nAddr), zap.Uint64("sampled_addresses", k),
		zap.Int("ports", len(ports)), zap.Stringer("allow", pol.Allow))
	if k == 0 {
		return fmt.Errorf("sample seed: seed-frac %v of %d allowed addresses samples none", c.SeedFrac, nAddr)
	}
	addrs, err := ipv4.NewCycle(nAddr, seed)
	if err != nil {
		return fmt.Errorf("sample seed: %w", err)
	}
	sample := make([]uint32, 0, k)
	for it := addrs.Shard(0, 1); uint64(len(sample)) < k; {
		i, _ := it.Next()
		sample = append(sample, pol.Addr(i))
	}
	total := k * uint64(len(ports))
	pairs, err := ipv4.NewCycle(total, seed^targetsSeedSalt)
	if err != nil {
		return fmt.Errorf("sample seed: %w", err)
	}
	meter := progress.Start(log, "seed targets", int64(total/uint64(c.Shards)), progressEvery)
	defer func() { meter.Finish(err) }()

	pub := newPublisher(d.Bus, 64)
	subject := wire.TargetsSubject(wire.PhaseSeed)
	idPrefix := fmt.Sprintf("seedt:%d:", seed)
	if c.Shards > 1 {
		idPrefix = fmt.Sprintf("seedt:%d:%d/%d:", seed, c.Shard, c.Shards)
	}
	batch := make([]wire.Target, 0, c.Batch)
	batches := 0
	send := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := json.Marshal(wire.Targets{V: wire.Version, Phase: wire.PhaseSeed, Targets: batch, Time: d.Now()})
		if err != nil {
			return fmt.Errorf("encode targets: %w", err)
		}
		if err := pub.publish(ctx, subject, fmt.Sprintf("%s%d", idPrefix, batches), b, 1); err != nil {
			return err
		}
		batches++
		d.Stats.Targets.Add(uint64(len(batch)))
		meter.Add(int64(len(batch)))
		batch = batch[:0]
		return nil
	}
	np := uint64(len(ports))
	for e := range pairs.Shard(c.Shard, c.Shards).All() {
		batch = append(batch, wire.Target{IP: ipv4.FormatAddr(sample[e/np]), Port: int(ports[e%np])})
		if len(batch) == c.Batch {
			if err := send(); err != nil {
				return fmt.Errorf("sample seed: %w", err)
			}
		}
	}
	if len(batch) > 0 {
		if err := send(); err != nil {
			return fmt.Errorf("sample seed: %w", err)
		}
	}
	if err := pub.flush(ctx); err != nil {
		return fmt.Errorf("sample seed: %w", err)
	}
	d.Stats.Messages.Store(pub.acked)
	d.Stats.Duplicates.Store(pub.dups)
	log.Info("seed targets published", zap.Uint64("targets", d.Stats.Targets.Load()), zap.Int("messages", batches),
		zap.Uint64("duplicates", pub.dups))
	return nil
}
