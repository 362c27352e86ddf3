package labserve

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/row"
)

// service is what one listener answers.
type service struct {
	r    row.Row
	kind kind
}

type kind int

const (
	kindClosed kind = iota // accept, close
	kindSilent             // accept, never write
	kindBanner             // write data on connect
	kindHTTP               // answer requests with data as the head
	kindTLS                // handshake, then the inner data as http/banner/silent
)

func kindOf(r row.Row) kind {
	switch {
	case r.Fingerprint == "tls":
		return kindTLS
	case r.Fingerprint == "http" && r.Data != "":
		return kindHTTP
	case r.Data != "":
		return kindBanner
	case r.Fingerprint == "":
		return kindClosed
	}
	return kindSilent
}

// handle serves one connection.
func (l *Lab) handle(c net.Conn, s *service) {
	start := time.Now()
	c.SetDeadline(start.Add(l.opts.IdleTimeout))
	switch s.kind {
	case kindClosed:
		return
	case kindSilent:
		hold(c)
	case kindBanner:
		if _, err := io.WriteString(c, crlf(s.r.Data)+"\r\n"); err != nil {
			l.stats.Errors.Add(1)
			return
		}
		hold(c)
	case kindHTTP:
		l.serveHTTP(c, s.r.Data)
	case kindTLS:
		l.serveTLS(c, s)
	}
}

// hold reads and discards until the peer closes or the deadline passes.
func hold(c net.Conn) {
	io.Copy(io.Discard, c)
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func (l *Lab) serveTLS(c net.Conn, s *service) {
	if s.r.TLSCert == nil {
		l.stats.Errors.Add(1)
		l.log.Debug("tls service without a certificate", zap.String("ip", s.r.IP), zap.Int("p", s.r.Port), zap.Error(errNoCert))
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS10,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			subj := ""
			if s.r.TLSCert != nil {
				subj = *s.r.TLSCert
			}
			return l.auth.cert(subj, s.r.TLSOIDs)
		},
	}
	tc := tls.Server(c, cfg)
	c.SetDeadline(time.Now().Add(l.opts.ReadTimeout))
	if err := tc.Handshake(); err != nil {
		l.stats.Errors.Add(1)
		return
	}
	l.stats.Handshake.Add(1)
	c.SetDeadline(time.Now().Add(l.opts.IdleTimeout))
	switch d := s.r.Data; {
	case strings.HasPrefix(d, "HTTP/"):
		l.serveHTTP(tc, d)
	case d != "":
		if _, err := io.WriteString(tc, crlf(d)+"\r\n"); err != nil {
			l.stats.Errors.Add(1)
			return
		}
		hold(tc)
	default:
		hold(tc)
	}
	tc.Close()
}

// serveHTTP waits for a request (anything ending in an empty line, or
// whatever arrives before the client pauses) and answers with data as the
// response head.
func (l *Lab) serveHTTP(c net.Conn, data string) {
	c.SetReadDeadline(time.Now().Add(l.opts.ReadTimeout))
	br := bufio.NewReaderSize(c, 4096)
	got := 0
	for got < 64<<10 {
		line, err := br.ReadSlice('\n')
		got += len(line)
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if got == 0 {
				return // nothing asked
			}
			break
		}
		if len(strings.TrimRight(string(line), "\r\n")) == 0 && err == nil {
			break
		}
	}
	l.stats.Requests.Add(1)
	c.SetDeadline(time.Now().Add(l.opts.IdleTimeout))
	bw := bufio.NewWriterSize(c, 16<<10)
	writeResponse(bw, data)
	if err := bw.Flush(); err != nil {
		l.stats.Errors.Add(1)
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	// Let the client read everything before the close, which would reset the
	// connection if its request is still unread.
	c.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, c)
}

// Response renders the HTTP response the lab sends for a row's data: the
// head with \r\n line endings and a body consistent with it.
func Response(data string) []byte {
	var b strings.Builder
	bw := bufio.NewWriter(&b)
	writeResponse(bw, data)
	bw.Flush()
	return []byte(b.String())
}

func writeResponse(w *bufio.Writer, data string) {
	head, tail, _ := strings.Cut(data, "\n\n")
	lines := strings.Split(head, "\n")
	var body string
	if !strings.HasPrefix(lines[0], "HTTP/") {
		// Not a response head: make one, the header-shaped lines as headers.
		var hdr, rest []string
		for _, ln := range strings.Split(data, "\n") {
			if k, _, ok := strings.Cut(ln, ": "); ok && k != "" && !strings.ContainsAny(k, " \t") {
				hdr = append(hdr, ln)
			} else {
				rest = append(rest, ln)
			}
		}
		lines = append([]string{"HTTP/1.1 200 OK"}, hdr...)
		body = strings.Join(rest, "\n")
		lines = append(lines, "Content-Length: "+strconv.Itoa(len(body)))
		tail = ""
	}
	status := 200
	if f := strings.Fields(lines[0]); len(f) > 1 {
		if n, err := strconv.Atoi(f[1]); err == nil {
			status = n
		}
	}
	clen, chunked := -1, false
	for _, ln := range lines[1:] {
		k, v, _ := strings.Cut(ln, ":")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "content-length":
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
				clen = n
			}
		case "transfer-encoding":
			chunked = strings.Contains(strings.ToLower(v), "chunked")
		}
	}
	for _, ln := range lines {
		w.WriteString(ln)
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	if status < 200 || status == 204 || status == 304 {
		return
	}
	if body == "" {
		body = tail
	}
	switch {
	case chunked:
		if body != "" {
			w.WriteString(strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n")
		}
		w.WriteString("0\r\n\r\n")
	case clen >= 0:
		if len(body) > clen {
			body = body[:clen]
		}
		w.WriteString(body)
		pad(w, clen-len(body))
	default:
		if body == "" {
			body = "<html><body>lab</body></html>\n"
		}
		w.WriteString(body)
	}
}

var filler = []byte(strings.Repeat("\n<!-- gps lab filler -->", 43)) // ~1 KiB, no <title>

func pad(w *bufio.Writer, n int) {
	for n > 0 {
		k := min(n, len(filler))
		w.Write(filler[:k])
		n -= k
	}
}
