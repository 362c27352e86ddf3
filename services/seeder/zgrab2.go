package seeder

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gpsscan/gps/pkg/row"
)

// zgrab2 output (processing.go's Grab at v1.0.0 and later): one JSON object
// per target, {"ip", "port"?, "domain"?, "data": {"<module name>":
// {"status", "protocol", "result", "timestamp", "error"}}}.
type zgrabRecord struct {
	IP   string                 `json:"ip"`
	Port *int                   `json:"port"`
	Data map[string]zgrabModule `json:"data"`
}

type zgrabModule struct {
	Status   string          `json:"status"`
	Protocol string          `json:"protocol"`
	Port     *int            `json:"port"`
	Result   json.RawMessage `json:"result"`
}

// zgrabResult holds the fields of the modules GPS reads.
type zgrabResult struct {
	Banner       *string               `json:"banner"`        // banner, ftp, smtp, pop3, imap, ...
	Response     *zgrabHTTP            `json:"response"`      // http
	ServerID     *struct{ Raw string } `json:"server_id"`     // ssh
	HandshakeLog *zgrabHandshake       `json:"handshake_log"` // tls
	TLS          *zgrabTLSLog          `json:"tls"`           // smtp/imap/pop3 STARTTLS
}

type zgrabHTTP struct {
	StatusLine string                     `json:"status_line"`
	StatusCode int                        `json:"status_code"`
	Protocol   struct{ Name string }      `json:"protocol"`
	Headers    map[string]json.RawMessage `json:"headers"`
	Request    *struct {
		TLSLog *zgrabTLSLog `json:"tls_log"`
	} `json:"request"`
}

type zgrabTLSLog struct {
	HandshakeLog *zgrabHandshake `json:"handshake_log"`
}

type zgrabHandshake struct {
	ServerCertificates *struct {
		Certificate *struct {
			Raw    string `json:"raw"`
			Parsed *struct {
				SubjectDN string `json:"subject_dn"`
			} `json:"parsed"`
		} `json:"certificate"`
	} `json:"server_certificates"`
}

// parseZGrab2 maps a zgrab2 line to its services. Every module whose status
// is "success" gives a service; modules that reached the same port of the
// host (e.g. tls and http on 443) are merged into one row. The port is the
// module's "port", else the record's "port", else defPort (--port); with
// none it is an error. The mapping:
//
//   - data: banner modules' result.banner; http's result.response rendered
//     as a head, "HTTP/1.1 200 OK\nServer: nginx\n..." (headers sorted, the
//     body left out, as GPS rows carry the head); ssh's result.server_id.raw
//   - fingerprint: the module's protocol, "tls" when a certificate was seen
//     (as GPS rows mark HTTPS)
//   - tls_cert: the leaf certificate's parsed.subject_dn (from raw if not
//     parsed); tls_oids: from raw, the signature algorithm, the subject's
//     attribute types and the extensions (with the key purposes and policies
//     they list)
//   - w, asn: absent (zgrab2 sees neither)
func parseZGrab2(b []byte, defPort int) ([]row.Row, error) {
	var x zgrabRecord
	if err := json.Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("%w: zgrab2: %v", ErrBadRecord, err)
	}
	if x.IP == "" {
		return nil, fmt.Errorf("%w: zgrab2: no \"ip\"", ErrBadRecord)
	}
	names := make([]string, 0, len(x.Data))
	for name := range x.Data {
		names = append(names, name)
	}
	slices.Sort(names)
	var out []row.Row
	for _, name := range names {
		m := x.Data[name]
		if m.Status != "success" {
			continue
		}
		port := defPort
		switch {
		case m.Port != nil:
			port = *m.Port
		case x.Port != nil:
			port = *x.Port
		}
		if port == 0 {
			return nil, fmt.Errorf("%w: zgrab2: module %q of %s has no port (give --port)", ErrBadRecord, name, x.IP)
		}
		r, err := zgrabRow(name, m)
		if err != nil {
			return nil, err
		}
		r.IP, r.Port = x.IP, port
		i := slices.IndexFunc(out, func(o row.Row) bool { return o.Port == port })
		if i < 0 {
			out = append(out, r)
			continue
		}
		o := &out[i]
		if o.Data == "" {
			o.Data = r.Data
		}
		if o.TLSCert == nil && r.TLSCert != nil {
			o.TLSCert, o.TLSOIDs, o.Fingerprint = r.TLSCert, r.TLSOIDs, "tls"
		}
		if o.Fingerprint == "" {
			o.Fingerprint = r.Fingerprint
		}
	}
	return out, nil
}

// zgrabRow maps one successful module (IP and port left to the caller).
func zgrabRow(name string, m zgrabModule) (row.Row, error) {
	r := row.Row{Fingerprint: m.Protocol}
	if r.Fingerprint == "" {
		r.Fingerprint = name
	}
	if len(m.Result) == 0 || string(m.Result) == "null" {
		return r, nil
	}
	var res zgrabResult
	if err := json.Unmarshal(m.Result, &res); err != nil {
		return r, fmt.Errorf("%w: zgrab2: module %q result: %v", ErrBadRecord, name, err)
	}
	var hs *zgrabHandshake
	switch {
	case res.Response != nil:
		head, err := renderHTTP(res.Response)
		if err != nil {
			return r, fmt.Errorf("%w: zgrab2: module %q: %v", ErrBadRecord, name, err)
		}
		r.Data = head
		if res.Response.Request != nil && res.Response.Request.TLSLog != nil {
			hs = res.Response.Request.TLSLog.HandshakeLog
		}
	case res.ServerID != nil:
		r.Data = res.ServerID.Raw
	case res.Banner != nil:
		r.Data = *res.Banner
	}
	if res.HandshakeLog != nil {
		hs = res.HandshakeLog
	} else if hs == nil && res.TLS != nil {
		hs = res.TLS.HandshakeLog
	}
	if hs != nil && hs.ServerCertificates != nil && hs.ServerCertificates.Certificate != nil {
		c := hs.ServerCertificates.Certificate
		var der []byte
		if c.Raw != "" {
			der, _ = base64.StdEncoding.DecodeString(c.Raw)
		}
		subject := ""
		if c.Parsed != nil {
			subject = c.Parsed.SubjectDN
		}
		if subject == "" && der != nil {
			if xc, err := x509.ParseCertificate(der); err == nil {
				subject = xc.Subject.String()
			}
		}
		r.TLSCert = &subject
		r.TLSOIDs = certOIDs(der)
		r.Fingerprint = "tls"
	}
	return r, nil
}

// renderHTTP renders zgrab2's HTTP response as the head GPS rows carry.
func renderHTTP(h *zgrabHTTP) (string, error) {
	var b strings.Builder
	status := h.StatusLine
	if status == "" && h.StatusCode != 0 {
		status = strconv.Itoa(h.StatusCode) + " " + http.StatusText(h.StatusCode)
	}
	if !strings.HasPrefix(status, "HTTP/") {
		proto := h.Protocol.Name
		if proto == "" {
			proto = "HTTP/1.1"
		}
		status = proto + " " + status
	}
	b.WriteString(strings.TrimSpace(status))
	type line struct{ k, v string }
	var ls []line
	for key, raw := range h.Headers {
		if key == "unknown" {
			var unk []struct {
				Key   string   `json:"key"`
				Value []string `json:"value"`
			}
			if err := json.Unmarshal(raw, &unk); err != nil {
				return "", fmt.Errorf("headers.unknown: %v", err)
			}
			for _, u := range unk {
				for _, v := range u.Value {
					ls = append(ls, line{headerName(u.Key), v})
				}
			}
			continue
		}
		var vs []string
		if err := json.Unmarshal(raw, &vs); err != nil {
			var v string // a lone string, as some writers emit
			if err2 := json.Unmarshal(raw, &v); err2 != nil {
				return "", fmt.Errorf("header %q: %v", key, err)
			}
			vs = []string{v}
		}
		for _, v := range vs {
			ls = append(ls, line{headerName(key), v})
		}
	}
	slices.SortStableFunc(ls, func(a, b line) int { return strings.Compare(a.k, b.k) })
	for _, l := range ls {
		b.WriteString("\n" + l.k + ": " + l.v)
	}
	return b.String(), nil
}

// headerName turns zgrab2's header key ("content_type") into the header
// name ("Content-Type").
func headerName(k string) string {
	parts := strings.FieldsFunc(k, func(r rune) bool { return r == '_' || r == '-' })
	for i, p := range parts {
		parts[i] = strings.ToUpper(p[:1]) + strings.ToLower(p[1:])
	}
	return strings.Join(parts, "-")
}

// Certificate OIDs (RFC 5280).
var (
	oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidPolicies    = asn1.ObjectIdentifier{2, 5, 29, 32}
)

type rdnSET []struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

type tbsCertificate struct {
	Version    int `asn1:"optional,explicit,default:0,tag:0"`
	Serial     asn1.RawValue
	SigAlg     pkix.AlgorithmIdentifier
	Issuer     asn1.RawValue
	Validity   asn1.RawValue
	Subject    []rdnSET
	PublicKey  asn1.RawValue
	IssuerUID  asn1.BitString   `asn1:"optional,tag:1"`
	SubjectUID asn1.BitString   `asn1:"optional,tag:2"`
	Extensions []pkix.Extension `asn1:"optional,explicit,tag:3"`
}

type certificate struct {
	TBS    tbsCertificate
	SigAlg pkix.AlgorithmIdentifier
	Sig    asn1.BitString
}

// certOIDs lists a DER certificate's OIDs in the order GPS rows carry them:
// the signature algorithm, the subject's attribute types, then each
// extension, followed by the key purposes (extKeyUsage) or policy
// identifiers (certificatePolicies) it lists. nil if der does not parse.
func certOIDs(der []byte) []string {
	if len(der) == 0 {
		return nil
	}
	var c certificate
	if rest, err := asn1.Unmarshal(der, &c); err != nil || len(rest) > 0 {
		return nil
	}
	out := []string{c.TBS.SigAlg.Algorithm.String()}
	for _, set := range c.TBS.Subject {
		for _, a := range set {
			out = append(out, a.Type.String())
		}
	}
	for _, e := range c.TBS.Extensions {
		out = append(out, e.Id.String())
		switch {
		case e.Id.Equal(oidExtKeyUsage):
			var ids []asn1.ObjectIdentifier
			if _, err := asn1.Unmarshal(e.Value, &ids); err == nil {
				for _, id := range ids {
					out = append(out, id.String())
				}
			}
		case e.Id.Equal(oidPolicies):
			var pols []struct {
				ID         asn1.ObjectIdentifier
				Qualifiers asn1.RawValue `asn1:"optional"`
			}
			if _, err := asn1.Unmarshal(e.Value, &pols); err == nil {
				for _, p := range pols {
					out = append(out, p.ID.String())
				}
			}
		}
	}
	return out
}
