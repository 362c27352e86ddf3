// Package layout checks the direction of the repository's dependencies:
// pkg/ and internal/ are libraries the services are built from, so nothing
// under them, tests included, may import services/ (Violations; its test
// runs it on `go list -deps -test`).
package layout

import (
	"slices"
	"strings"
)

// Package is a package as `go list -json` describes it.
type Package struct {
	ImportPath string
	Imports    []string
	DepOnly    bool // listed only as a dependency of the packages asked for
}

// Violations returns, for every package asked for (not DepOnly) that
// depends on a package under forbidden (an import path prefix such as
// "github.com/gpsscan/gps/services/"), the shortest import chain from it to
// one, as "a -> b -> c". pkgs is the whole `go list -deps` output; a test
// variant "p [p.test]" counts as p.
func Violations(pkgs []Package, forbidden string) []string {
	imports := make(map[string][]string, len(pkgs))
	for _, p := range pkgs {
		imports[p.ImportPath] = p.Imports
	}
	var out []string
	for _, root := range pkgs {
		if root.DepOnly {
			continue
		}
		if chain := shortestChain(imports, root.ImportPath, forbidden); chain != nil {
			out = append(out, strings.Join(chain, " -> "))
		}
	}
	slices.Sort(out)
	return out
}

// shortestChain searches breadth first from root for a package under
// forbidden and returns the import chain to it, or nil.
func shortestChain(imports map[string][]string, root, forbidden string) []string {
	from := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if strings.HasPrefix(plain(p), forbidden) {
			var chain []string
			for ; p != ""; p = from[p] {
				chain = append(chain, plain(p))
			}
			slices.Reverse(chain)
			return chain
		}
		for _, q := range imports[p] {
			if _, seen := from[q]; !seen {
				from[q] = p
				queue = append(queue, q)
			}
		}
	}
	return nil
}

// plain strips the test variant suffix of an import path: "p [p.test]" is p.
func plain(path string) string {
	p, _, _ := strings.Cut(path, " [")
	return p
}
