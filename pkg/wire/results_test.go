package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

// sampleResults are results with every kind of field our producers write.
func sampleResults(n int) []Result {
	t := time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC)
	var out []Result
	for i := range n {
		r := Result{V: Version, IP: fmt.Sprintf("127.1.%d.%d", i/250, i%250+1), Port: 1 + i%65535, Phase: PhaseSeed,
			Protocol: "http", Data: "HTTP/1.1 200 OK\r\nServer: nginx\r\n<b>&amp;</b> \"q\" \\ é ☃ \u0001", Time: t, Source: "import"}
		switch i % 4 {
		case 1:
			r.TLSCert, r.TLSOIDs = ptr("CN=example.org"), []string{"2.5.29.17", "1.3.6.1"}
			r.Window, r.ASN = ptr[int64](64240), ptr[int64](64500)
		case 2:
			r.Phase, r.Protocol, r.Data = PhasePriors, "ssh", "SSH-2.0-OpenSSH_9.6"
			r.Time = t.Add(time.Second)
		case 3:
			r.Phase, r.Data, r.Window = PhasePredicted, "", ptr[int64](0)
		}
		out = append(out, r)
	}
	return out
}

func batchOf(t testing.TB, rs []Result) []byte {
	t.Helper()
	var b ResultBatch
	for i := range rs {
		ok, err := b.Add(&rs[i])
		if err != nil || !ok {
			t.Fatalf("add %d: %v %v", i, ok, err)
		}
	}
	return b.Take()
}

func TestResultsRoundTrip(t *testing.T) {
	for _, n := range []int{1, 2, 7, BatchResults} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			want := sampleResults(n)
			data := batchOf(t, want)
			if got := bytes.Count(data, []byte("\n")); got != n-1 {
				t.Fatalf("%d newlines in a batch of %d", got, n)
			}
			if _, ok := decodeLinesFast(data); !ok {
				t.Fatal("the fast decoder refused a batch our producers write")
			}
			got, err := DecodeResults(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// A message of one result, as written before batches, reads as a batch of
// one; so does one pretty-printed over several lines, or ending in a newline.
func TestDecodeResultsSingle(t *testing.T) {
	r := sampleResults(2)[1]
	compact, _ := json.Marshal(r)
	indented, _ := json.MarshalIndent(r, "", "  ")
	for name, data := range map[string][]byte{
		"compact":          compact,
		"indented":         indented,
		"trailing newline": append(bytes.Clone(compact), '\n'),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeResults(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], r) {
				t.Fatalf("got %+v, want [%+v]", got, r)
			}
			one, err := DecodeResult(compact)
			if err != nil || !reflect.DeepEqual(one, r) {
				t.Fatalf("DecodeResult: %+v %v", one, err)
			}
		})
	}
}

func TestDecodeResultsBad(t *testing.T) {
	good := batchOf(t, sampleResults(3))
	lines := strings.Split(string(good), "\n")
	with := func(i int, line string) []byte {
		ls := append([]string(nil), lines...)
		ls[i] = line
		return []byte(strings.Join(ls, "\n"))
	}
	edit := func(i int, mod func(*Result)) []byte {
		r := sampleResults(3)[i]
		mod(&r)
		b, _ := json.Marshal(r)
		return with(i, string(b))
	}
	cases := []struct {
		name, data, want string
	}{
		{"empty", "", "empty message"},
		{"blank", "\n \n", "empty message"},
		{"bad json", string(with(1, `{"v":1,"ip":`)), "result 2"},
		{"wrong version", string(edit(2, func(r *Result) { r.V = 2 })), "result 3 of 3: bad message: result version 2"},
		{"bad ip", string(edit(0, func(r *Result) { r.IP = "300.1.2.3" })), "result 1 of 3"},
		{"bad port", string(edit(1, func(r *Result) { r.Port = 0 })), "result 2 of 3"},
		{"bad phase", string(edit(1, func(r *Result) { r.Phase = "later" })), "result phase"},
		{"not an object", string(with(1, `[1,2]`)), "result 2"},
		{"single bad", `{"v":1,"ip":"1.2.3.4","port":0,"phase":"seed"}`, "port 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := DecodeResults([]byte(tc.data))
			if !errors.Is(err, ErrBad) {
				t.Fatalf("err = %v (%d results), want ErrBad", err, len(rs))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestResultBatchLimits(t *testing.T) {
	var b ResultBatch
	rs := sampleResults(BatchResults)
	for i := range rs {
		if b.Full() {
			t.Fatalf("full after %d results", i)
		}
		if ok, err := b.Add(&rs[i]); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if !b.Full() || b.Len() != BatchResults {
		t.Fatalf("len %d full %v, want %d and full", b.Len(), b.Full(), BatchResults)
	}
	if b.Due(time.Now()) || !b.Due(time.Now().Add(BatchDelay)) {
		t.Fatal("Due does not follow BatchDelay")
	}
	b.Take()
	if b.Len() != 0 || b.Due(time.Now().Add(time.Hour)) {
		t.Fatal("Take left results behind")
	}

	big := sampleResults(1)[0]
	big.Data = strings.Repeat("x", BatchBytes/2)
	if ok, _ := b.Add(&big); !ok {
		t.Fatal("the first result must always fit")
	}
	if ok, _ := b.Add(&big); ok {
		t.Fatal("a result past BatchBytes was added")
	}
	if b.Len() != 1 {
		t.Fatalf("len %d after a refused add", b.Len())
	}
	huge := big
	huge.Data = strings.Repeat("y", 2*BatchBytes)
	var c ResultBatch
	if ok, _ := c.Add(&huge); !ok || !c.Full() {
		t.Fatal("a result over BatchBytes alone must go, alone")
	}
}

func TestResultBatchID(t *testing.T) {
	rs := sampleResults(5)
	id := func(rs []Result) string {
		var b ResultBatch
		for i := range rs {
			b.Add(&rs[i])
		}
		return b.ID("res")
	}
	if got, want := id(rs[:1]), "res:127.1.0.1:1"; got != want {
		t.Fatalf("single result id %q, want %q (the id of an unbatched result)", got, want)
	}
	later := sampleResults(5)
	for i := range later {
		later[i].Time = later[i].Time.Add(time.Hour) // republished: same services, new times
	}
	if id(rs) != id(later) {
		t.Fatal("the same services in the same order must have the same id")
	}
	other := sampleResults(5)
	other[4].Port++
	ids := map[string]bool{id(rs): true, id(other): true, id(rs[:4]): true, id(rs[:1]): true}
	if len(ids) != 4 {
		t.Fatalf("different batches share an id: %v", ids)
	}
	if !strings.HasPrefix(id(rs), "res:127.1.0.1:1:5:") {
		t.Fatalf("batch id %q", id(rs))
	}
}

// FuzzDecode checks the fast decoder against encoding/json: wherever it
// succeeds, it must give exactly what encoding/json gives, line by line.
func FuzzDecode(f *testing.F) {
	f.Add(batchOf(f, sampleResults(4)))
	f.Add([]byte(`{"v":1,"ip":"1.2.3.4","port":80,"phase":"seed","data":"a\u00e9\ud83d\ude00","time":"2026-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"v":1, "port":-0,"asn":null,"window":12,"tls_cert":null,"tls_oids":null}` + "\n" + `{"IP":"x"}`))
	f.Add([]byte(`{"v":1,"port":1e3,"data":"\x80","time":"2026-01-02T03:04:05+01:00"}`))
	f.Add([]byte(" {}\n\n{\"tls_oids\":[\"a\" , \"b\\/\"]}\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, ok := decodeLinesFast(data)
		if !ok {
			return
		}
		var want []Result
		for line := range strings.SplitSeq(string(data), "\n") {
			if isBlank(line) {
				continue
			}
			var r Result
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("fast decoder accepted %q, encoding/json says %v", line, err)
			}
			want = append(want, r)
		}
		if len(rs) == 0 && len(want) == 0 {
			return
		}
		if !reflect.DeepEqual(rs, want) {
			t.Fatalf("fast decoder differs on %q:\n got %+v\nwant %+v", data, rs, want)
		}
	})
}

func BenchmarkDecodeResults(b *testing.B) {
	data := batchOf(b, sampleResults(BatchResults))
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeResults(data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*BatchResults), "ns/result")
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeStream(data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*BatchResults), "ns/result")
	})
}

// TestDecodeErrorsAreShort checks that an error about a huge value repeats
// a few hundred bytes of it at most: errors go to logs and dead letters.
func TestDecodeErrorsAreShort(t *testing.T) {
	huge := strings.Repeat("9", 600<<10)
	for _, tc := range []struct {
		name   string
		decode func([]byte) error
		data   string
	}{
		{"result ip", decodeResults, `{"v":1,"ip":"` + huge + `","port":80,"phase":"seed"}`},
		{"result phase", decodeResults, `{"v":1,"ip":"127.0.0.1","port":80,"phase":"` + huge + `"}`},
		{"result number", decodeResults, `{"v":1,"ip":"127.0.0.1","port":` + huge + `,"phase":"seed"}`},
		{"result in a batch", decodeResults, `{"v":1,"ip":"127.0.0.1","port":80,"phase":"seed"}` + "\n" + `{"v":1,"ip":"x` + huge + `","port":80,"phase":"seed"}`},
		{"result string as number", decodeResults, `{"v":1,"ip":"127.0.0.1","port":"` + huge + `","phase":"seed"}`},
		{"targets ip", decodeTargets, `{"v":1,"phase":"seed","targets":[{"ip":"` + huge + `","port":80}]}`},
		{"targets prefix", decodeTargets, `{"v":1,"phase":"priors","targets":[{"prefix":"` + huge + `","port":80}]}`},
		{"targets phase", decodeTargets, `{"v":1,"phase":"` + huge + `","targets":[]}`},
		{"targets number", decodeTargets, `{"v":` + huge + `,"phase":"seed","targets":[]}`},
		{"prediction ip", decodePrediction, `{"v":1,"ip":"` + huge + `","port":80,"probability":0.5}`},
		{"prediction number", decodePrediction, `{"v":1,"ip":"127.0.0.1","port":80,"probability":` + huge + `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode([]byte(tc.data))
			if !errors.Is(err, ErrBad) {
				t.Fatalf("err = %.200v, want ErrBad", err)
			}
			if n := len(err.Error()); n > 512 {
				t.Fatalf("error of %d bytes: %.300s", n, err)
			}
		})
	}
}

func decodeResults(b []byte) error    { _, err := DecodeResults(b); return err }
func decodeTargets(b []byte) error    { _, err := DecodeTargets(b); return err }
func decodePrediction(b []byte) error { _, err := DecodePrediction(b); return err }

// A gone result names the service it retracts: without ip or port it is bad.
func TestGoneResult(t *testing.T) {
	for _, c := range []struct {
		name, msg string
		ok        bool
	}{
		{"gone", `{"v":1,"ip":"127.1.2.3","port":80,"phase":"refresh","time":"2026-11-25T12:00:00Z","gone":true}`, true},
		{"no ip", `{"v":1,"port":80,"phase":"refresh","time":"2026-11-25T12:00:00Z","gone":true}`, false},
		{"no port", `{"v":1,"ip":"127.1.2.3","phase":"refresh","time":"2026-11-25T12:00:00Z","gone":true}`, false},
		{"not a bool", `{"v":1,"ip":"127.1.2.3","port":80,"phase":"refresh","time":"2026-11-25T12:00:00Z","gone":1}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs, err := DecodeResults([]byte(c.msg))
			if c.ok != (err == nil) {
				t.Fatalf("DecodeResults: %v, want ok %v", err, c.ok)
			}
			if c.ok && (!rs[0].Gone || rs[0].Phase != PhaseRefresh) {
				t.Errorf("decoded %+v: want gone, phase refresh", rs[0])
			}
			if c.ok {
				if fast, ok := decodeLinesFast([]byte(c.msg)); !ok || !fast[0].Gone {
					t.Errorf("fast decoder: %+v, %v: want it to read gone", fast, ok)
				}
			}
		})
	}
}
