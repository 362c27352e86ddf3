package bus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// putTimeout bounds one object upload: 15 s, and a second for every 20 MB.
func putTimeout(n int) time.Duration {
	return 15*time.Second + time.Duration(n/20e6)*time.Second
}

// PutObject stores data under name in store (a model snapshot), replacing
// the last version. An object store put waits for the acks of all its
// chunks with ctx only, so a lost ack (a server going away) would hold it
// until ctx ends: the put is bounded by a timeout that grows with the size.
func PutObject(ctx context.Context, store jetstream.ObjectStore, name, description string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, putTimeout(len(data)))
	defer cancel()
	if _, err := store.Put(ctx, jetstream.ObjectMeta{Name: name, Description: description}, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("put object %s: %w", name, err)
	}
	return nil
}

// GetObject reads the object name of store with read; found is false (and
// read not called) when there is none.
func GetObject(ctx context.Context, store jetstream.ObjectStore, name string, read func(io.Reader) error) (found bool, err error) {
	obj, err := store.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get object %s: %w", name, err)
	}
	defer obj.Close()
	if err := read(obj); err != nil {
		return false, fmt.Errorf("read object %s: %w", name, err)
	}
	return true, nil
}
