package labserve

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gpsscan/gps/pkg/row"
)

// subjectAttrs maps the keys of a subject string to attribute types.
var subjectAttrs = map[string]asn1.ObjectIdentifier{
	"CN":           {2, 5, 4, 3},
	"SERIALNUMBER": {2, 5, 4, 5},
	"C":            {2, 5, 4, 6},
	"L":            {2, 5, 4, 7},
	"ST":           {2, 5, 4, 8},
	"STREET":       {2, 5, 4, 9},
	"O":            {2, 5, 4, 10},
	"OU":           {2, 5, 4, 11},
	"POSTALCODE":   {2, 5, 4, 17},
	"emailAddress": {1, 2, 840, 113549, 1, 9, 1},
}

// Attr is one attribute of a subject string.
type Attr struct{ Key, Value string }

// ParseSubject splits a subject string of the lab's form "CN=x, O=y, C=z"
// into its attributes, in order. A ", " not followed by a known key
// ("CN=", "O=", "OU=", "L=", "ST=", "C=", ...) belongs to the value (as in
// "O=Fortinet Ltd., OU=FortiGate"); a string not starting with a known key
// is one CN.
func ParseSubject(s string) []Attr {
	if s == "" {
		return nil
	}
	var out []Attr
	for _, piece := range strings.Split(s, ", ") {
		if k, v, ok := strings.Cut(piece, "="); ok {
			if _, known := subjectAttrs[k]; known {
				out = append(out, Attr{k, v})
				continue
			}
		}
		if len(out) == 0 {
			out = append(out, Attr{"CN", piece})
			continue
		}
		out[len(out)-1].Value += ", " + piece
	}
	return out
}

// parseOID parses a dotted OID.
func parseOID(s string) (asn1.ObjectIdentifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("oid %q has fewer than 2 arcs", s)
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("oid %q: bad arc %q", s, p)
		}
		oid[i] = n
	}
	return oid, nil
}

// authority is the lab CA and the certificates it minted, one per distinct
// (subject, OIDs).
type authority struct {
	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey
	leafKey *ecdsa.PrivateKey // shared by every leaf: minting stays cheap

	mu    sync.Mutex
	certs map[string]*certEntry
}

type certEntry struct {
	once sync.Once
	cert *tls.Certificate
	err  error
}

// newAuthority generates a lab CA (ECDSA P-256, valid from an hour ago for
// ten years).
func newAuthority() (*authority, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate lab CA key: %w", err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate lab leaf key: %w", err)
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "GPS Lab CA", Organization: []string{"gps lab"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("make lab CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("make lab CA: %w", err)
	}
	return &authority{ca: ca, caKey: caKey, leafKey: leafKey, certs: map[string]*certEntry{}}, nil
}

func randSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("make certificate serial: %w", err)
	}
	return n, nil
}

// cert returns the certificate of subject and oids, minting it on first use.
func (a *authority) cert(subject string, oids []string) (*tls.Certificate, error) {
	key := subject + "\x00" + strings.Join(oids, ",")
	a.mu.Lock()
	e := a.certs[key]
	if e == nil {
		e = &certEntry{}
		a.certs[key] = e
	}
	a.mu.Unlock()
	e.once.Do(func() { e.cert, e.err = a.mint(subject, oids) })
	return e.cert, e.err
}

// minted is the number of distinct certificates minted so far.
func (a *authority) minted() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.certs)
}

func (a *authority) mint(subject string, oids []string) (*tls.Certificate, error) {
	var name pkix.Name
	for _, at := range ParseSubject(subject) {
		name.ExtraNames = append(name.ExtraNames, pkix.AttributeTypeAndValue{Type: subjectAttrs[at.Key], Value: at.Value})
	}
	var exts []pkix.Extension
	if len(oids) > 0 {
		list := make([]asn1.ObjectIdentifier, 0, len(oids))
		for _, s := range oids {
			oid, err := parseOID(s)
			if err != nil {
				return nil, fmt.Errorf("mint certificate %q: %w", subject, err)
			}
			list = append(list, oid)
		}
		v, err := asn1.Marshal(list)
		if err != nil {
			return nil, fmt.Errorf("mint certificate %q: %w", subject, err)
		}
		exts = append(exts, pkix.Extension{Id: row.OIDListExtension, Value: v})
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         name,
		NotBefore:       a.ca.NotBefore,
		NotAfter:        a.ca.NotAfter.AddDate(-1, 0, 0),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.ca, &a.leafKey.PublicKey, a.caKey)
	if err != nil {
		return nil, fmt.Errorf("mint certificate %q: %w", subject, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, a.ca.Raw}, PrivateKey: a.leafKey}, nil
}

// caPEM is the CA certificate in PEM.
func (a *authority) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.ca.Raw})
}

// errNoCert is returned for a TLS service whose row has no certificate.
var errNoCert = errors.New("tls service without a certificate subject")
