package layout

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/gpsscan/gps"

// TestDependenciesPointDown: no package under internal/ or pkg/, nor its
// tests, imports services/, directly or through another package.
func TestDependenciesPointDown(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-test", "-json=ImportPath,Imports,DepOnly", module+"/internal/...", module+"/pkg/...")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []Package
	for d := json.NewDecoder(strings.NewReader(string(out))); ; {
		var p Package
		if err := d.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	roots := 0
	for _, p := range pkgs {
		if !p.DepOnly && strings.HasPrefix(p.ImportPath, module+"/pkg/bus") {
			roots++
		}
	}
	if roots == 0 {
		t.Fatalf("go list lists none of pkg/bus among %d packages: the patterns match nothing", len(pkgs))
	}
	for _, v := range Violations(pkgs, module+"/services/") {
		t.Errorf("imports services/: %s", strings.ReplaceAll(v, module+"/", ""))
	}
}

func TestViolations(t *testing.T) {
	const m = module + "/"
	pkgs := []Package{
		{ImportPath: m + "pkg/a", Imports: []string{"fmt", m + "pkg/b"}},
		{ImportPath: m + "pkg/b", Imports: []string{m + "pkg/c"}, DepOnly: true},
		{ImportPath: m + "pkg/c", Imports: []string{m + "services/all"}, DepOnly: true},
		{ImportPath: m + "pkg/d", Imports: []string{"fmt"}},
		{ImportPath: m + "pkg/d [" + m + "pkg/d.test]", Imports: []string{m + "services/x [" + m + "pkg/d.test]"}},
		{ImportPath: m + "services/x [" + m + "pkg/d.test]", DepOnly: true},
		{ImportPath: m + "services/all", Imports: []string{m + "pkg/d"}, DepOnly: true},
		{ImportPath: "fmt", DepOnly: true},
	}
	got := Violations(pkgs, m+"services/")
	want := []string{
		m + "pkg/a -> " + m + "pkg/b -> " + m + "pkg/c -> " + m + "services/all",
		m + "pkg/d -> " + m + "services/x",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Violations =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
