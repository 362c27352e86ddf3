// Package atomicfile writes a file whole or not at all: the content goes to a
// temporary file in the same directory, which is renamed over the target only
// after it is fully written and synced.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write calls fill with a buffered writer on a temporary file and, if fill
// succeeds, renames the temporary file to path. On any error path is untouched.
func Write(path string, fill func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp file for %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = fill(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	return nil
}

// Set writes several files; if any fails, none of the ones written by this
// call are left behind in place of the old ones (best effort: earlier renames
// are undone by removing the new files).
func Set(files map[string]func(w io.Writer) error, order []string) error {
	var done []string
	for _, p := range order {
		if err := Write(p, files[p]); err != nil {
			var errs []error
			errs = append(errs, err)
			for _, d := range done {
				if rerr := os.Remove(d); rerr != nil {
					errs = append(errs, rerr)
				}
			}
			return errors.Join(errs...)
		}
		done = append(done, p)
	}
	return nil
}
