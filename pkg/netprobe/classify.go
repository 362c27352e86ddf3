package netprobe

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"regexp"
	"slices"
	"strings"

	"github.com/gpsscan/gps/pkg/row"
)

// Observation is how a service answered the L7 grab, before fingerprinting.
type Observation int

// Observations.
const (
	// ObsBanner: the server spoke first (Data is what it said).
	ObsBanner Observation = iota
	// ObsClosed: the server accepted and closed without a byte.
	ObsClosed
	// ObsSilent: the server accepted and said nothing, to nothing we sent.
	ObsSilent
)

// Fingerprint names the protocol of a service that is neither HTTP nor TLS
// (those are recognised by their handshakes) from what it said, or did not
// say, and its port, in the vocabulary of lab worlds (and of Censys-like
// datasets): "ssh", "smtp", "ftp", "pop3", "imap", "telnet", "rtsp", "sip",
// "vnc", "smb", "rdp", "dns", "ldap", "pptp", "mysql", "postgres", "redis",
// "mongodb", "mssql", "minecraft", "http" (a server-first HTTP head),
// "unknown" for anything else that answered or stayed silent, and "" for a
// port that accepted and closed without a byte.
func Fingerprint(port uint16, obs Observation, data string) string {
	switch obs {
	case ObsClosed:
		return ""
	case ObsSilent:
		switch port {
		case 5432:
			return "postgres" // waits for a startup message
		case 53:
			return "dns" // DNS over TCP waits for a query
		}
		return "unknown"
	}
	if data == "" {
		return ""
	}
	for _, p := range prefixes {
		if strings.HasPrefix(data, p.prefix) {
			return p.fp
		}
	}
	switch {
	case strings.HasPrefix(data, "220"):
		return ftpOrSMTP(port, data)
	case strings.HasPrefix(data, "$") && strings.Contains(data, "redis_version:"):
		return "redis"
	case strings.HasPrefix(data, "Version: ") && strings.Contains(data, "Instance:"):
		return "mssql"
	case strings.HasPrefix(data, "version: "):
		if port == 27017 || port == 27018 || port == 27019 {
			return "mongodb"
		}
		return "minecraft"
	case strings.Contains(data, "is not allowed to connect to this MySQL server"),
		strings.Contains(data, "is not allowed to connect to this MariaDB server"):
		return "mysql"
	case port == 3306 && mysqlVersion.MatchString(data):
		return "mysql"
	case port == 23 || port == 2323:
		return "telnet"
	case telnetWords.MatchString(data):
		return "telnet"
	}
	return "unknown"
}

// prefixes are protocol greetings that name themselves. Read-only.
var prefixes = []struct{ prefix, fp string }{
	{"SSH-", "ssh"},
	{"HTTP/", "http"},
	{"RTSP/", "rtsp"},
	{"SIP/2.0", "sip"},
	{"RFB ", "vnc"},
	{"SMB ", "smb"},
	{"RDP:", "rdp"},
	{"+OK", "pop3"},
	{"* OK", "imap"},
	{"* PREAUTH", "imap"},
	{"version.bind:", "dns"},
	{"namingContexts:", "ldap"},
	{"Firmware:", "pptp"},
	{"SFATAL", "postgres"},
	{"-NOAUTH", "redis"},
	{"-DENIED Redis", "redis"},
	{"-ERR", "redis"},
}

var (
	mysqlVersion = regexp.MustCompile(`^\d+\.\d+\.\d+`)
	telnetWords  = regexp.MustCompile(`(?i)(login|username|password):\s*$`)
	smtpWords    = regexp.MustCompile(`(?i)\b(e?smtp|postfix|exim|sendmail|mail|mx)\b`)
	ftpWords     = regexp.MustCompile(`(?i)ftp`)
)

// ftpOrSMTP tells the two "220" greetings apart: by the words of the
// greeting, then by the port.
func ftpOrSMTP(port uint16, data string) string {
	ftp, smtp := ftpWords.MatchString(data), smtpWords.MatchString(data)
	switch {
	case ftp && !smtp:
		return "ftp"
	case smtp && !ftp:
		return "smtp"
	}
	switch port {
	case 25, 26, 465, 587, 2525:
		return "smtp"
	}
	return "ftp"
}

// bannerData turns what a server sent into a row's data: the final line
// ending is dropped and \r\n become \n (a lab world's rows use \n).
func bannerData(b []byte) string {
	s := string(b)
	switch {
	case strings.HasSuffix(s, "\r\n"):
		s = s[:len(s)-2]
	case strings.HasSuffix(s, "\n"):
		s = s[:len(s)-1]
	}
	return strings.ReplaceAll(s, "\r\n", "\n")
}

// headData turns a raw HTTP response head (status line and headers, as on
// the wire) and the start of its body into a row's data: the head's lines
// joined with \n, and, when the body has a <title>, "\n\n<title>...</title>".
func headData(raw []byte, body string) string {
	s := strings.ReplaceAll(string(raw), "\r\n", "\n")
	s = strings.TrimRight(s, "\n")
	if t := titleOf(body); t != "" {
		s += "\n\n<title>" + t + "</title>"
	}
	return s
}

var titleRE = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

func titleOf(body string) string {
	if len(body) > 64<<10 {
		body = body[:64<<10]
	}
	m := titleRE.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

// attribute keys of subject strings, in the order they are rendered.
var subjectOrder = []struct {
	oid asn1.ObjectIdentifier
	key string
}{
	{asn1.ObjectIdentifier{2, 5, 4, 3}, "CN"},
	{asn1.ObjectIdentifier{2, 5, 4, 10}, "O"},
	{asn1.ObjectIdentifier{2, 5, 4, 11}, "OU"},
	{asn1.ObjectIdentifier{2, 5, 4, 7}, "L"},
	{asn1.ObjectIdentifier{2, 5, 4, 8}, "ST"},
	{asn1.ObjectIdentifier{2, 5, 4, 6}, "C"},
	{asn1.ObjectIdentifier{2, 5, 4, 9}, "STREET"},
	{asn1.ObjectIdentifier{2, 5, 4, 17}, "POSTALCODE"},
	{asn1.ObjectIdentifier{2, 5, 4, 5}, "SERIALNUMBER"},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, "emailAddress"},
}

// SubjectString renders a certificate subject as lab worlds write tls_cert:
// "CN=x, O=y, OU=z, L=l, ST=s, C=c" (that order whatever the certificate's,
// then other attributes as OID=value in the certificate's order).
func SubjectString(n pkix.Name) string {
	var parts []string
	used := make([]bool, len(n.Names))
	for _, k := range subjectOrder {
		for i, at := range n.Names {
			if !used[i] && at.Type.Equal(k.oid) {
				used[i] = true
				parts = append(parts, k.key+"="+attrValue(at.Value))
			}
		}
	}
	for i, at := range n.Names {
		if !used[i] {
			parts = append(parts, at.Type.String()+"="+attrValue(at.Value))
		}
	}
	return strings.Join(parts, ", ")
}

func attrValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

// CertOIDs lists a certificate's OIDs: a lab certificate's list (its
// row.OIDListExtension) when it has one, else the signature algorithm, the
// subject's attribute types, the extensions, the extended key usages and
// the policies, in that order, each once.
func CertOIDs(c *x509.Certificate) []string {
	for _, e := range c.Extensions {
		if e.Id.Equal(row.OIDListExtension) {
			var list []asn1.ObjectIdentifier
			if rest, err := asn1.Unmarshal(e.Value, &list); err == nil && len(rest) == 0 {
				out := make([]string, len(list))
				for i, o := range list {
					out[i] = o.String()
				}
				return out
			}
		}
	}
	var out []string
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	add(sigAlgOID(c.SignatureAlgorithm))
	for _, at := range c.Subject.Names {
		add(at.Type.String())
	}
	for _, e := range c.Extensions {
		add(e.Id.String())
	}
	for _, u := range c.ExtKeyUsage {
		add(ekuOID[u])
	}
	for _, o := range c.UnknownExtKeyUsage {
		add(o.String())
	}
	for _, p := range c.Policies {
		add(p.String())
	}
	return out
}

func sigAlgOID(a x509.SignatureAlgorithm) string {
	return map[x509.SignatureAlgorithm]string{
		x509.SHA1WithRSA:     "1.2.840.113549.1.1.5",
		x509.SHA256WithRSA:   "1.2.840.113549.1.1.11",
		x509.SHA384WithRSA:   "1.2.840.113549.1.1.12",
		x509.SHA512WithRSA:   "1.2.840.113549.1.1.13",
		x509.ECDSAWithSHA1:   "1.2.840.10045.4.1",
		x509.ECDSAWithSHA256: "1.2.840.10045.4.3.2",
		x509.ECDSAWithSHA384: "1.2.840.10045.4.3.3",
		x509.ECDSAWithSHA512: "1.2.840.10045.4.3.4",
		x509.PureEd25519:     "1.3.101.112",
	}[a]
}

var ekuOID = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageServerAuth:      "1.3.6.1.5.5.7.3.1",
	x509.ExtKeyUsageClientAuth:      "1.3.6.1.5.5.7.3.2",
	x509.ExtKeyUsageCodeSigning:     "1.3.6.1.5.5.7.3.3",
	x509.ExtKeyUsageEmailProtection: "1.3.6.1.5.5.7.3.4",
	x509.ExtKeyUsageTimeStamping:    "1.3.6.1.5.5.7.3.8",
	x509.ExtKeyUsageOCSPSigning:     "1.3.6.1.5.5.7.3.9",
}
