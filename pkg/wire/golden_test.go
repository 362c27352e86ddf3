package wire

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The JSON on the bus is a contract with downstream tools: these tests hold
// every message to a golden file in testdata/. A changed JSON tag, a new or
// dropped field, or a changed encoding fails them. When the change is meant
// (and Version or docs/wire.md say so), rewrite the files with
//
//	go test ./pkg/wire -run Golden -update
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var goldenTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// goldenResults are a probed result with every field set and an imported
// one with the optional fields absent or null.
func goldenResults() []Result {
	return []Result{
		{V: Version, IP: "127.1.2.3", Port: 443, Phase: PhasePriors, Protocol: "tls",
			Data: "HTTP/1.1 200 OK\r\nServer: nginx", TLSCert: ptr("CN=example.org"), TLSOIDs: []string{"2.5.29.17", "2.5.29.19"},
			Window: ptr[int64](64240), ASN: ptr[int64](64500), Time: goldenTime, Source: "probe", Probes: 1048576},
		{V: Version, IP: "127.1.2.4", Port: 22, Phase: PhaseSeed, Protocol: "ssh",
			Data: "SSH-2.0-OpenSSH_9.6", Time: goldenTime, Source: "import"},
	}
}

// goldenCase is one message: how to encode it and how to decode it back.
type goldenCase struct {
	name   string
	value  any                         // what the producer encodes
	encode func(t *testing.T) []byte   // the bytes it publishes
	decode func(b []byte) (any, error) // what a consumer reads back
	fields []reflect.Type              // struct types whose every JSON key must appear
	except []string                    // keys of those shown by another case
}

func goldenCases() []goldenCase {
	rs := goldenResults()
	targets := Targets{V: Version, Phase: PhasePriors, Time: goldenTime, Targets: []Target{
		{Prefix: "127.1.0.0/16", Port: 80, Hits: 41, SeedProbes: 1966.08},
		{IP: "127.1.2.3", Port: 22},
	}, Skip: []string{"127.1.0.7", "127.1.9.20"}}
	pred := Prediction{V: Version, IP: "127.1.2.3", Port: 8443, Probability: 0.82,
		Evidence:     Evidence{Port: 443, Feature: "tls cert: CN=example.org", Count: 41, Support: 50},
		ModelVersion: 12345, Time: goldenTime}
	gone := Result{V: Version, IP: "127.1.2.3", Port: 8080, Phase: PhaseRefresh, Time: goldenTime, Source: "probe", Probes: 2097152, Gone: true, Cycle: 3}
	seed := SeedDone{V: Version, Results: 4618, LastSeq: 37, Time: goldenTime}
	plan := PlanDone{V: Version, Groups: 31, ModelSeq: 40, Time: goldenTime}
	marshal := func(v any) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	strict := func(newV func() any) func(b []byte) (any, error) {
		return func(b []byte) (any, error) {
			v := newV()
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				return nil, err
			}
			return reflect.ValueOf(v).Elem().Interface(), nil
		}
	}
	return []goldenCase{
		{
			name:   "result",
			value:  []Result{rs[0]},
			encode: func(t *testing.T) []byte { return batchOf(t, rs[:1]) },
			decode: func(b []byte) (any, error) { return DecodeResults(b) },
			fields: []reflect.Type{reflect.TypeFor[Result]()},
			except: []string{"gone", "cycle"}, // result-gone shows them
		},
		{
			name:   "results-batch",
			value:  rs,
			encode: func(t *testing.T) []byte { return batchOf(t, rs) },
			decode: func(b []byte) (any, error) { return DecodeResults(b) },
			fields: []reflect.Type{reflect.TypeFor[Result]()},
			except: []string{"gone", "cycle"}, // result-gone shows them
		},
		{
			name:   "result-gone",
			value:  []Result{gone},
			encode: func(t *testing.T) []byte { return batchOf(t, []Result{gone}) },
			decode: func(b []byte) (any, error) { return DecodeResults(b) },
			fields: []reflect.Type{reflect.TypeFor[Result]()},
			except: []string{"tls_cert", "tls_oids"}, // a gone result has no certificate
		},
		{
			name:   "targets",
			value:  targets,
			encode: marshal(targets),
			decode: func(b []byte) (any, error) { return DecodeTargets(b) },
			fields: []reflect.Type{reflect.TypeFor[Targets](), reflect.TypeFor[Target]()},
		},
		{
			name:   "prediction",
			value:  pred,
			encode: marshal(pred),
			decode: func(b []byte) (any, error) { return DecodePrediction(b) },
			fields: []reflect.Type{reflect.TypeFor[Prediction](), reflect.TypeFor[Evidence]()},
		},
		{
			name:   "seed-done",
			value:  seed,
			encode: marshal(seed),
			decode: strict(func() any { return new(SeedDone) }),
			fields: []reflect.Type{reflect.TypeFor[SeedDone]()},
		},
		{
			name:   "plan-done",
			value:  plan,
			encode: marshal(plan),
			decode: strict(func() any { return new(PlanDone) }),
			fields: []reflect.Type{reflect.TypeFor[PlanDone]()},
		},
	}
}

// TestGolden encodes every message and compares the bytes with its golden
// file, then decodes the golden file and compares the value.
func TestGolden(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join("testdata", c.name+".golden")
			got := c.encode(t)
			if *update {
				if err := os.WriteFile(path, append(bytes.Clone(got), '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			file, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			want := bytes.TrimSuffix(file, []byte("\n"))
			if !bytes.Equal(got, want) {
				t.Errorf("encoding changed: the wire format is a contract (see docs/wire.md)\n got %s\nwant %s", got, want)
			}

			back, err := c.decode(want)
			if err != nil {
				t.Fatalf("decode %s: %v", path, err)
			}
			if !reflect.DeepEqual(back, c.value) {
				t.Errorf("decode %s:\n got %+v\nwant %+v", path, back, c.value)
			}

			// The value must show every field, so that no tag goes unchecked.
			keys := jsonKeys(t, want)
			for _, typ := range c.fields {
				for i := range typ.NumField() {
					name := jsonName(typ.Field(i))
					if name != "" && !keys[name] && !slices.Contains(c.except, name) {
						t.Errorf("%s: field %s.%s (%q) is not in the golden value: give it a value there",
							path, typ.Name(), typ.Field(i).Name, name)
					}
				}
			}
		})
	}
}

// jsonName is the key a struct field is written under ("" if never).
func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return ""
	}
	if name, _, _ := strings.Cut(tag, ","); name != "" {
		return name
	}
	return f.Name
}

// jsonKeys is every object key in b, a JSON value or JSON lines, at any depth.
func jsonKeys(t *testing.T, b []byte) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				keys[k] = true
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		walk(v)
	}
	return keys
}

// docs/wire.md shows every golden message as it is: the page cannot drift
// from the format.
func TestGoldenInDocs(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "wire.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range goldenCases() {
		file, err := os.ReadFile(filepath.Join("testdata", c.name+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(file), "\n"), "\n") {
			if !strings.Contains(string(doc), line+"\n") {
				t.Errorf("docs/wire.md does not show %s.golden's line %s", c.name, line)
			}
		}
	}
}
