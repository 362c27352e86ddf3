package netprobe

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
)

func TestFingerprint(t *testing.T) {
	for _, tc := range []struct {
		port uint16
		obs  Observation
		data string
		want string
	}{
		{22, ObsBanner, "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10", "ssh"},
		{25, ObsBanner, "220 mx.example.org ESMTP Postfix", "smtp"},
		{21, ObsBanner, "220 (vsFTPd 3.0.5)", "ftp"},
		{21, ObsBanner, "220 Axis P1448-LE Network Camera 10.12.199 (2023) ready.", "ftp"},
		{587, ObsBanner, "220 host ready", "smtp"},
		{110, ObsBanner, "+OK Dovecot ready.", "pop3"},
		{143, ObsBanner, "* OK [CAPABILITY IMAP4rev1] Dovecot ready.", "imap"},
		{6379, ObsBanner, "-NOAUTH Authentication required.", "redis"},
		{3306, ObsBanner, "8.0.36", "mysql"},
		{27017, ObsBanner, "version: 6.0.15", "mongodb"},
		{25565, ObsBanner, "version: 1.20.4", "minecraft"},
		{23, ObsBanner, "\nLocalHost login: ", "telnet"},
		{2000, ObsBanner, "\x01\x00\x00\x00", "unknown"},
		{80, ObsBanner, "HTTP/1.1 400 Bad Request", "http"},
		{5432, ObsSilent, "", "postgres"},
		{8291, ObsSilent, "", "unknown"},
		{139, ObsClosed, "", ""},
	} {
		if got := Fingerprint(tc.port, tc.obs, tc.data); got != tc.want {
			t.Errorf("Fingerprint(%d, %d, %q) = %q, want %q", tc.port, tc.obs, tc.data, got, tc.want)
		}
	}
}

// TestFingerprintWorld names every banner service of a generated world as
// the world does (the lab serves data-less services as closed when their
// fingerprint is "" and silent otherwise).
func TestFingerprintWorld(t *testing.T) {
	w := labtest.World(t, lab.Config{Seed: 5, Hosts: 20000, Slash16s: 16})
	n, ok := 0, 0
	for _, r := range w.Truth {
		if r.Fingerprint == "tls" || (r.Fingerprint == "http" && r.Data != "") {
			continue // named by their handshakes
		}
		obs := ObsBanner
		switch {
		case r.Data == "" && r.Fingerprint == "":
			obs = ObsClosed
		case r.Data == "":
			obs = ObsSilent
		}
		n++
		if got := Fingerprint(uint16(r.Port), obs, r.Data); got == r.Fingerprint {
			ok++
		} else if n-ok <= 10 {
			t.Logf("%s:%d: %q named %q, world says %q", r.IP, r.Port, r.Data, got, r.Fingerprint)
		}
	}
	t.Logf("%d of %d banner services named as the world names them", ok, n)
	if float64(ok) < 0.995*float64(n) {
		t.Fatalf("named %d of %d right, want >= 99.5 %%", ok, n)
	}
}

func TestBannerData(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SSH-2.0-x\r\n", "SSH-2.0-x"},
		{"220-a \r\n220 b\r\n", "220-a \n220 b"},
		{"\r\nLogin: \r\n", "\nLogin: "},
		{"Login: ", "Login: "},
		{"x\n", "x"},
	} {
		if got := bannerData([]byte(tc.in)); got != tc.want {
			t.Errorf("bannerData(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	head := "HTTP/1.1 200 OK\r\nServer: x\r\nCONTENT-TYPE: text/html\r\n\r\n"
	if got, want := headData([]byte(head), "<html><title>Zürich</title>"), "HTTP/1.1 200 OK\nServer: x\nCONTENT-TYPE: text/html\n\n<title>Zürich</title>"; got != want {
		t.Errorf("headData = %q, want %q", got, want)
	}
	if got, want := headData([]byte(head), "<html>no title"), "HTTP/1.1 200 OK\nServer: x\nCONTENT-TYPE: text/html"; got != want {
		t.Errorf("headData = %q, want %q", got, want)
	}
}

// TestCertFields: a certificate without the lab's OID list gets its subject
// in the lab's order and the OIDs found in it.
func TestCertFields(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		// A typical real-world order: C, O, CN.
		Subject:     pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{2, 5, 4, 6}, Value: "US"}, {Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "Example, Inc."}, {Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "example.org"}}},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"example.org"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := SubjectString(c.Subject), "CN=example.org, O=Example, Inc., C=US"; got != want {
		t.Errorf("SubjectString = %q, want %q", got, want)
	}
	want := []string{"1.2.840.10045.4.3.2", "2.5.4.6", "2.5.4.10", "2.5.4.3", "2.5.29.15", "2.5.29.37", "2.5.29.17", "1.3.6.1.5.5.7.3.1"}
	if got := CertOIDs(c); !slices.Equal(got, want) {
		t.Errorf("CertOIDs = %v, want %v", got, want)
	}
}

// TestFilterReasons: the LZR-style rules, each with its reason and counter.
func TestFilterReasons(t *testing.T) {
	p, err := New(Options{Policy: policy(t, "127.1.0.0/16"), PseudoPorts: 2})
	if err != nil {
		t.Fatal(err)
	}
	w0, w := int64(0), int64(64240)
	for _, tc := range []struct {
		name string
		r    row.Row
		want string
	}{
		{"banner", row.Row{Port: 21, Data: "220 ready", Fingerprint: "ftp", Window: &w}, ""},
		{"tls without data", row.Row{Port: 443, Fingerprint: "tls"}, ""},
		{"no data", row.Row{Port: 23, Fingerprint: "unknown"}, ReasonNoData},
		{"zero window", row.Row{Port: 22, Data: "SSH-2.0-x", Fingerprint: "ssh", Window: &w0}, ReasonZeroWindow},
	} {
		if got := p.filter(0x7f010001, &tc.r); got != tc.want {
			t.Errorf("%s: reason %q, want %q", tc.name, got, tc.want)
		}
	}
	for port := range 4 { // the same answer on a third port and on: a pseudo host
		got := p.filter(0x7f010002, &row.Row{Port: 8000 + port, Data: "HTTP/1.1 200 OK", Fingerprint: "http"})
		if want := map[bool]string{true: ReasonPseudo, false: ""}[port >= 2]; got != want {
			t.Errorf("same answer on port %d: reason %q, want %q", 8000+port, got, want)
		}
	}
	st := p.Stats()
	if st.DropNoData.Load() != 1 || st.DropZeroWindow.Load() != 1 || st.DropPseudo.Load() != 2 {
		t.Errorf("counters: no-data %d, zero-window %d, pseudo %d; want 1, 1, 2",
			st.DropNoData.Load(), st.DropZeroWindow.Load(), st.DropPseudo.Load())
	}
}
