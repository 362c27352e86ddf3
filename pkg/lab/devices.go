package lab

import (
	"strconv"
	"strings"
)

// device is a type of host: the services it runs, with optional ports,
// vendor/version variants and banners shared by every host of a variant.
type device struct {
	name string
	mix  [numKinds]float64 // relative frequency in hosting, residential, enterprise, university, unannounced space
	gen  func(g *gen, h *host)
}

func mixOf(hosting, residential, enterprise, university, none float64) [numKinds]float64 {
	return [numKinds]float64{hosting, residential, enterprise, university, none}
}

// newCatalog lists the device types. Most have 1-8 ports; hosting panels,
// domain controllers and big mail servers have more than 10.
func newCatalog() []device {
	return []device{
		{"web", mixOf(30, 4, 12, 10, 6), (*gen).devWeb},
		{"linux", mixOf(20, 2, 8, 12, 3), (*gen).devLinux},
		{"ssh", mixOf(12, 3, 5, 8, 4), (*gen).devSSH},
		{"mail", mixOf(6, 0.3, 4, 3, 0.5), (*gen).devMail},
		{"panel", mixOf(5, 0, 0.3, 0.3, 0.2), (*gen).devPanel},
		{"mikrotik", mixOf(1, 6, 2, 1, 3), (*gen).devMikrotik},
		{"camera", mixOf(0.5, 9, 3, 1.5, 4), (*gen).devCamera},
		{"iot", mixOf(0.5, 12, 1.5, 1, 5), (*gen).devIoT},
		{"cpe", mixOf(0, 35, 1, 0.5, 5), (*gen).devCPE},
		{"db", mixOf(6, 0.3, 2, 2, 1), (*gen).devDB},
		{"windows", mixOf(5, 1, 10, 6, 2), (*gen).devWindows},
		{"windesk", mixOf(0.5, 6, 3, 4, 3), (*gen).devWinDesk},
		{"printer", mixOf(0.1, 1, 8, 8, 1), (*gen).devPrinter},
		{"k8s", mixOf(4, 0, 1, 1, 0.5), (*gen).devK8s},
		{"voip", mixOf(1, 2, 3, 2, 1), (*gen).devVoIP},
		{"ftp", mixOf(3, 1.5, 2, 2, 1), (*gen).devFTP},
		{"dns", mixOf(2, 0.5, 2, 2, 1), (*gen).devDNS},
		{"vpn", mixOf(1, 1, 8, 3, 1), (*gen).devVPN},
		{"nas", mixOf(0.5, 5, 2, 2, 1), (*gen).devNAS},
		{"proxy", mixOf(1, 0.5, 1.5, 1, 1), (*gen).devProxy},
		{"vnc", mixOf(0.5, 2, 1, 2, 1), (*gen).devVNC},
		{"game", mixOf(1.5, 5, 0.2, 1, 1), (*gen).devGame},
		{"blank", mixOf(4, 12, 5, 5, 8), (*gen).devBlank},
	}
}

// ---- building blocks ----

// head renders an HTTP response head: status line and the non-empty lines.
func head(status string, lines ...string) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 ")
	b.WriteString(status)
	for _, l := range lines {
		if l != "" {
			b.WriteByte('\n')
			b.WriteString(l)
		}
	}
	return b.String()
}

func serverLine(s string) string {
	if s == "" {
		return ""
	}
	return "Server: " + s
}

// webSrv is an HTTP server product and version.
type webSrv struct {
	w      float64
	server string // Server header; "" sends none
	os     osID
	extra  string // more header lines, "\n"-separated
	etag   bool   // static pages carry a per-host ETag
}

func (s webSrv) weight() float64 { return s.w }

// webServers are the stand-alone web servers. Read-only.
var webServers = []webSrv{
	{10, "nginx", osLinux, "", false},
	{6, "nginx/1.18.0 (Ubuntu)", osLinux, "", false},
	{3, "nginx/1.24.0", osLinux, "", false},
	{2, "nginx/1.20.1", osLinux3, "", false},
	{8, "Apache", osLinux, "", true},
	{5, "Apache/2.4.41 (Ubuntu)", osLinux, "", true},
	{4, "Apache/2.4.52 (Ubuntu)", osLinux, "", true},
	{3, "Apache/2.4.6 (CentOS) OpenSSL/1.0.2k-fips PHP/7.4.33", osLinux3, "X-Powered-By: PHP/7.4.33", true},
	{5, "Microsoft-IIS/10.0", osWindows, "X-Powered-By: ASP.NET", false},
	{1.5, "Microsoft-IIS/8.5", osWindowsOld, "X-Powered-By: ASP.NET\nX-AspNet-Version: 4.0.30319", false},
	{3, "LiteSpeed", osLinux, "Alt-Svc: h3=\":443\"; ma=2592000, h3-29=\":443\"; ma=2592000", false},
	{2, "openresty", osLinux, "", false},
	{1.5, "Caddy", osLinux, "Alt-Svc: h3=\":443\"; ma=2592000", false},
	{1, "lighttpd/1.4.59", osLinux, "", true},
	{1.5, "Apache-Coyote/1.1", osLinux, "", false},
	{1, "", osLinux, "X-Powered-By: Express", true},
	{1, "Kestrel", osLinux, "", false},
	{1, "gunicorn", osLinux, "", false},
}

// Non-ASCII page titles, for the few heads that carry a bit of body. Read-only.
var titles = []string{"Café de Flore – Réservations", "Добро пожаловать", "ようこそ", "Zürich Immobilien AG",
	"Página de inicio", "Ärztehaus Süd", "Łódź – Urząd Miasta", "Ã‰cole Saint-Ã‰tienne"}

// page is the HTTP head a web server answers with on this host: a default
// page (identical on every host of the server), an application, a redirect
// to the host's domain, or an error.
func (g *gen) page(h *host, s *webSrv) string {
	srv := serverLine(s.server)
	switch one(g, h, "page", opt[int]{35, 0}, opt[int]{35, 1}, opt[int]{20, 2}, opt[int]{10, 3}) {
	case 0:
		etag := ""
		if s.etag {
			etag = "ETag: \"" + g.token(4, hexdigits) + "-" + g.token(13, hexdigits) + "\""
		}
		return head("200 OK", srv, "Content-Type: text/html", "Content-Length: "+strconv.Itoa(defaultLen(s.server)), s.extra, etag,
			"Accept-Ranges: bytes")
	case 1:
		lang := one(g, h, "lang", opt[string]{4, ""}, opt[string]{2, "X-Powered-By: PHP/8.1.2-1ubuntu2.18"},
			opt[string]{1, "X-Powered-By: PHP/7.4.33"}, opt[string]{1, "X-Powered-By: PHP/8.2.20"}, opt[string]{1, "X-Generator: Drupal 10 (https://www.drupal.org)"})
		cookie := ""
		if g.chance(0.3) {
			cookie = "Set-Cookie: PHPSESSID=" + g.token(26, alnumLow) + "; path=/"
		}
		hd := head("200 OK", srv, "Content-Type: text/html; charset=UTF-8", s.extra, lang, cookie,
			"Vary: Accept-Encoding", "Content-Length: "+strconv.Itoa(800+g.r.IntN(60000)))
		if g.chance(0.05) {
			hd += "\n\n<title>" + titles[g.r.IntN(len(titles))] + "</title>"
		}
		return hd
	case 2:
		return head("301 Moved Permanently", srv, "Content-Type: text/html", "Location: https://"+g.domain(h)+"/", s.extra)
	}
	return head(one(g, h, "err", opt[string]{1, "403 Forbidden"}, opt[string]{1, "404 Not Found"}), srv,
		"Content-Type: text/html; charset=iso-8859-1", s.extra)
}

// defaultLen is the size of a server's default page: the same on every host.
func defaultLen(server string) int {
	x := uint64(14695981039346656037)
	for i := 0; i < len(server); i++ {
		x = (x ^ uint64(server[i])) * 1099511628211
	}
	return 600 + int(Mix64(x)%11000)
}

// cert is a TLS certificate: an identity string and its OIDs.
type cert struct {
	id   string
	oids []string
}

// OIDs of typical certificates. Read-only.
var (
	oidsDV = []string{"1.2.840.113549.1.1.11", "2.5.4.3", "2.5.29.15", "2.5.29.37", "1.3.6.1.5.5.7.3.1",
		"1.3.6.1.5.5.7.3.2", "2.5.29.19", "2.5.29.14", "2.5.29.35", "1.3.6.1.5.5.7.1.1", "2.5.29.17", "2.5.29.32",
		"2.23.140.1.2.1", "1.3.6.1.4.1.11129.2.4.2"}
	oidsDVEC = []string{"1.2.840.10045.4.3.3", "1.2.840.10045.2.1", "2.5.4.3", "2.5.29.15", "2.5.29.37",
		"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2", "2.5.29.19", "2.5.29.14", "2.5.29.35", "1.3.6.1.5.5.7.1.1",
		"2.5.29.17", "2.5.29.32", "2.23.140.1.2.1", "1.3.6.1.4.1.11129.2.4.2"}
	oidsOV = []string{"1.2.840.113549.1.1.11", "2.5.4.6", "2.5.4.8", "2.5.4.7", "2.5.4.10", "2.5.4.3",
		"2.5.29.15", "2.5.29.37", "1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2", "2.5.29.19", "2.5.29.32",
		"2.23.140.1.2.2", "2.5.29.31", "1.3.6.1.5.5.7.1.1", "2.5.29.35", "2.5.29.14", "2.5.29.17",
		"1.3.6.1.4.1.11129.2.4.2"}
	oidsSelf    = []string{"1.2.840.113549.1.1.11", "2.5.4.3", "2.5.4.10", "2.5.4.6", "2.5.29.14", "2.5.29.35", "2.5.29.19"}
	oidsSelfOld = []string{"1.2.840.113549.1.1.5", "2.5.4.3", "2.5.4.10", "2.5.4.11"}
	oidsK8s     = []string{"1.2.840.113549.1.1.11", "2.5.4.3", "2.5.29.15", "2.5.29.37", "1.3.6.1.5.5.7.3.1",
		"2.5.29.19", "2.5.29.35", "2.5.29.17"}
)

// webCert is the certificate of a web site: its own (unique), the hosting
// provider's or company's wildcard (shared in the AS), a self-signed one made
// at install (unique), or a distribution default (shared everywhere).
func (g *gen) webCert(h *host) cert {
	switch one(g, h, "certsrc", opt[int]{45, 0}, opt[int]{25, 1}, opt[int]{15, 2}, opt[int]{15, 3}) {
	case 0:
		if g.hash(uint64(h.addr), "ec")%3 == 0 {
			return cert{"CN=" + g.domain(h), oidsDVEC}
		}
		return cert{"CN=" + g.domain(h), oidsDV}
	case 1:
		if h.as != nil {
			return cert{"CN=*." + h.as.domain + ", O=" + h.as.name, oidsOV}
		}
	case 3:
		return one(g, h, "defcert",
			opt[cert]{3, cert{"CN=localhost.localdomain, O=SomeOrganization, OU=SomeOrganizationalUnit, L=SomeCity, ST=SomeState, C=--", oidsSelfOld}},
			opt[cert]{2, cert{"CN=localhost", oidsSelf}},
			opt[cert]{1, cert{"CN=ubuntu", oidsSelf}})
	}
	return cert{"CN=" + g.hostname(h), oidsSelf}
}

// tlsData is what a TLS service shows: the head of the inner HTTP answer, or
// nothing when the scanner only did the handshake.
func (g *gen) tlsData(inner string) string {
	if g.chance(0.25) {
		return ""
	}
	return inner
}

// sshPort is where a server's ssh listens: 22, the AS's image default, or
// an admin's choice.
func (g *gen) sshPort(h *host) int {
	if h.as != nil && h.as.sshPort != 0 && g.chance(0.6) {
		return h.as.sshPort
	}
	switch x := g.r.Float64(); {
	case x < 0.03:
		return 2222
	case x < 0.04:
		return 22222
	case x < 0.045:
		return 2200
	case x < 0.05:
		return 10022
	case x < 0.06:
		return 1024 + g.r.IntN(64000)
	}
	return 22
}

// altHTTP is a non-standard port for HTTP (port forwards, admins' choices).
func (g *gen) altHTTP() int {
	return oneR(g, opt[int]{5, 8080}, opt[int]{2, 8081}, opt[int]{2, 8000}, opt[int]{2, 8888}, opt[int]{1, 81},
		opt[int]{1, 8008}, opt[int]{1, 3000}, opt[int]{1, 5000}, opt[int]{1, 9000}, opt[int]{1, 88},
		opt[int]{2, 1024 + g.r.IntN(64000)})
}

// distro is a server OS with the versions of what it ships.
type distro struct {
	w                              float64
	ssh, apache, nginx, mysql, tag string // tag is what Postfix and Dovecot print, e.g. "(Ubuntu)"
	os                             osID
}

func (d distro) weight() float64 { return d.w }

// distros are the Linux/BSD server systems. Read-only.
var distros = []distro{
	{3, "SSH-2.0-OpenSSH_8.2p1 Ubuntu-4ubuntu0.11", "Apache/2.4.41 (Ubuntu)", "nginx/1.18.0 (Ubuntu)", "8.0.39-0ubuntu0.20.04.1", " (Ubuntu)", osLinux},
	{5, "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10", "Apache/2.4.52 (Ubuntu)", "nginx/1.18.0 (Ubuntu)", "8.0.39-0ubuntu0.22.04.1", " (Ubuntu)", osLinux},
	{3, "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5", "Apache/2.4.58 (Ubuntu)", "nginx/1.24.0 (Ubuntu)", "8.0.39-0ubuntu0.24.04.2", " (Ubuntu)", osLinux},
	{1.5, "SSH-2.0-OpenSSH_7.6p1 Ubuntu-4ubuntu0.7", "Apache/2.4.29 (Ubuntu)", "nginx/1.14.0 (Ubuntu)", "5.7.42-0ubuntu0.18.04.1", " (Ubuntu)", osLinux},
	{1.5, "SSH-2.0-OpenSSH_7.9p1 Debian-10+deb10u4", "Apache/2.4.38 (Debian)", "nginx/1.14.2", "10.3.39-MariaDB-0+deb10u2", " (Debian)", osLinux},
	{2.5, "SSH-2.0-OpenSSH_8.4p1 Debian-5+deb11u3", "Apache/2.4.62 (Debian)", "nginx/1.18.0", "10.5.26-MariaDB-0+deb11u2", " (Debian)", osLinux},
	{3, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", "Apache/2.4.62 (Debian)", "nginx/1.22.1", "10.11.6-MariaDB-0+deb12u1", " (Debian)", osLinux},
	{2.5, "SSH-2.0-OpenSSH_7.4", "Apache/2.4.6 (CentOS) OpenSSL/1.0.2k-fips", "nginx/1.20.1", "5.5.68-MariaDB", "", osLinux3},
	{1.5, "SSH-2.0-OpenSSH_8.7", "Apache/2.4.57 (Rocky Linux) OpenSSL/3.0.7", "nginx/1.20.1", "8.0.36", "", osLinux},
	{1, "SSH-2.0-OpenSSH_8.0", "Apache/2.4.37 (AlmaLinux) OpenSSL/1.1.1k", "nginx/1.14.1", "8.0.32", "", osLinux},
	{0.5, "SSH-2.0-OpenSSH_9.3 FreeBSD-20230719", "Apache/2.4.58 (FreeBSD)", "nginx/1.24.0", "8.0.35", "", osBSD},
}

// mysqlData is the greeting (or refusal) of a MySQL/MariaDB server. The
// refusal names the scanner's address, the same on every host.
func (g *gen) mysqlData(h *host, version string) string {
	switch one(g, h, "mysql", opt[int]{5, 0}, opt[int]{3, 1}) {
	case 0:
		auth := "mysql_native_password"
		if strings.HasPrefix(version, "8.") {
			auth = "caching_sha2_password"
		}
		return version + "\n" + auth
	}
	product := "MySQL"
	if strings.Contains(version, "MariaDB") {
		product = "MariaDB"
	}
	return "Host '198.51.100.7' is not allowed to connect to this " + product + " server"
}

// ---- device types ----

func (g *gen) devWeb(h *host) {
	s := pick(g, h, "websrv", webServers)
	h.win = g.window(h, s.os)
	port80, port443 := 80, 443
	if s.server == "Apache-Coyote/1.1" {
		port80, port443 = 8080, 8443 // Tomcat
	}
	if g.chance(0.06) {
		port80 = g.altHTTP()
	}
	switch x := g.r.Float64(); {
	case x < 0.35:
		h.add(port80, "http", g.page(h, s))
	case x < 0.50:
		h.addTLS(port443, g.tlsData(g.page(h, s)), g.webCert(h))
	default:
		p := g.page(h, s)
		h.add(port80, "http", p)
		h.addTLS(port443, g.tlsData(p), g.webCert(h))
	}
	if g.chance(0.06) {
		h.add(8080, "http", g.page(h, s))
	}
	if g.chance(0.05) {
		h.addTLS(8443, g.tlsData(g.page(h, s)), g.webCert(h))
	}
}

// devLinux is a Linux server: ssh plus the distribution's web server and
// a few usual extras.
func (g *gen) devLinux(h *host) {
	d := pick(g, h, "distro", distros)
	h.win = g.window(h, d.os)
	h.add(g.sshPort(h), "ssh", d.ssh)
	s := &webSrv{server: d.nginx, os: d.os}
	if g.biased(h, "lxweb") < 0.45 {
		s = &webSrv{server: d.apache, os: d.os, etag: true}
	}
	if g.biased(h, "tokens") < 0.3 { // server_tokens off
		s.server, _, _ = strings.Cut(s.server, "/")
	}
	p := g.page(h, s)
	if g.chance(0.75) {
		h.add(80, "http", p)
	}
	if g.chance(0.6) {
		h.addTLS(443, g.tlsData(p), g.webCert(h))
	}
	if g.chance(0.08) {
		h.add(3306, "mysql", g.mysqlData(h, d.mysql))
	}
	if g.chance(0.04) {
		h.add(5432, "postgres", "")
	}
	if g.chance(0.06) {
		h.add(8080, "http", head("404 Not Found", "Content-Type: text/html;charset=utf-8", "Content-Language: en", "Content-Length: 682"))
	}
	if g.chance(0.05) {
		h.add(21, "ftp", oneR(g, opt[string]{2, "220 (vsFTPd 3.0.5)"}, opt[string]{1, "220 (vsFTPd 3.0.3)"},
			opt[string]{1, "220 ProFTPD Server (Debian) [::ffff:" + h.ip + "]"}))
	}
	if g.chance(0.05) {
		h.add(25, "smtp", "220 "+g.hostname(h)+" ESMTP Postfix"+d.tag)
	}
	if g.chance(0.05) {
		h.add(111, "unknown", "")
	}
	if g.chance(0.02) {
		h.addTLS(10000, g.tlsData(head("200 Document follows", "Date: "+g.httpDate(), "Server: MiniServ/2.105",
			"Connection: close", "Content-type: text/html; Charset=UTF-8")), cert{"CN=" + g.hostname(h) + ", O=Webmin Webserver on " + g.hostname(h), oidsSelf})
	}
	if g.chance(0.02) {
		h.addTLS(9090, "", cert{"CN=" + g.hostname(h) + ", O=Cockpit", oidsSelf})
	}
	if g.chance(0.02) {
		h.add(3000, "http", head("302 Found", "Cache-Control: no-store", "Content-Type: text/html; charset=utf-8", "Location: /login",
			"X-Content-Type-Options: nosniff", "X-Frame-Options: deny", "X-Xss-Protection: 1; mode=block"))
	}
	if g.chance(0.03) {
		h.add(9100, "http", head("200 OK", "Content-Type: text/html; charset=UTF-8"))
	}
	if g.chance(0.02) {
		h.add(6379, "redis", "-NOAUTH Authentication required.")
	}
}

// sshOther are ssh servers besides the distributions'. Read-only.
var sshOther = []opt[string]{
	{3, "SSH-2.0-dropbear_2020.81"}, {2, "SSH-2.0-dropbear_2022.83"}, {1, "SSH-2.0-dropbear_2019.78"},
	{1, "SSH-2.0-OpenSSH_for_Windows_8.1"}, {1, "SSH-2.0-Go"}, {0.5, "SSH-2.0-libssh_0.9.6"}, {0.5, "SSH-2.0-OpenSSH_6.6.1p1 Ubuntu-2ubuntu2.13"},
}

// devSSH is a host showing only ssh (firewalled servers, jump hosts).
func (g *gen) devSSH(h *host) {
	if g.biased(h, "sshkind") < 0.75 {
		d := pick(g, h, "distro", distros)
		h.win = g.window(h, d.os)
		h.add(g.sshPort(h), "ssh", d.ssh)
	} else {
		h.win = g.window(h, osEmbedded)
		h.add(g.sshPort(h), "ssh", pick(g, h, "sshother", sshOther).v)
	}
	if g.chance(0.08) {
		h.add(g.sshPort(h), "ssh", pick(g, h, "distro", distros).ssh) // a second sshd for admins
	}
}

// devMail is a mail server: SMTP, submission, POP3, IMAP and their TLS ports.
func (g *gen) devMail(h *host) {
	name := g.hostname(h)
	if h.k == kindHosting {
		name = "mail." + g.domain(h)
	}
	c := g.webCert(h)
	if g.chance(0.6) {
		c = cert{"CN=" + name, oidsDV}
	}
	var smtp, pop, imap, web string
	switch one(g, h, "mta", opt[int]{5, 0}, opt[int]{3, 1}, opt[int]{2, 2}, opt[int]{1, 3}, opt[int]{1, 4}) {
	case 0: // Postfix + Dovecot
		d := pick(g, h, "distro", distros)
		h.win = g.window(h, d.os)
		smtp = "220 " + name + " ESMTP Postfix" + d.tag
		pop = "+OK Dovecot" + d.tag + " ready."
		imap = "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN AUTH=LOGIN] Dovecot" + d.tag + " ready."
		web = g.page(h, &webSrv{server: d.nginx})
		if g.chance(0.5) {
			h.add(g.sshPort(h), "ssh", d.ssh)
		}
	case 1: // Exim + Dovecot
		h.win = g.window(h, osLinux)
		smtp = "220 " + name + " ESMTP Exim 4.96 " + g.mailDate()
		pop = "+OK Dovecot ready."
		imap = "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready."
		web = g.page(h, &webSrv{server: "Apache"})
		if g.chance(0.5) {
			h.add(g.sshPort(h), "ssh", pick(g, h, "distro", distros).ssh)
		}
	case 2: // Exchange
		h.win = g.window(h, osWindows)
		smtp = "220 " + name + " Microsoft ESMTP MAIL Service ready at " + g.mailDate()
		pop = "+OK The Microsoft Exchange POP3 service is ready."
		imap = "* OK The Microsoft Exchange IMAP4 service is ready."
		web = head("302 Found", "Server: Microsoft-IIS/10.0", "Location: https://"+name+"/owa/", "X-Powered-By: ASP.NET",
			"X-FEServer: "+g.token(3, alnumUp)+"-EX"+strconv.Itoa(1+g.r.IntN(9)))
		if g.chance(0.4) {
			h.add(3389, "rdp", "RDP: TLS, CredSSP")
		}
	case 3: // Zimbra
		h.win = g.window(h, osLinux)
		smtp = "220 " + name + " ESMTP Postfix"
		pop = "+OK " + name + " Zimbra POP3 server ready"
		imap = "* OK " + name + " Zimbra IMAP4rev1 server ready"
		web = g.page(h, &webSrv{server: "nginx"})
		if g.chance(0.5) {
			h.addTLS(7071, g.tlsData(head("200 OK", "Content-Type: text/html;charset=utf-8", "Content-Language: en-US")), c)
		}
	default: // a plain relay
		h.win = g.window(h, osLinux3)
		h.add(25, "smtp", oneR(g, opt[string]{2, "220 " + name + " ESMTP Sendmail 8.15.2/8.15.2; " + g.mailDate()},
			opt[string]{2, "220 " + name + " ESMTP"}, opt[string]{1, "220 " + name + " ESMTP Postfix"},
			opt[string]{1, "220 mx.google.com ESMTP ready"}))
		if g.chance(0.5) {
			h.add(587, "smtp", "220 "+name+" ESMTP")
		}
		return
	}
	for _, p := range []struct {
		port int
		p    float64
		fp   string
	}{{25, 0.95, "smtp"}, {587, 0.7, "smtp"}, {465, 0.6, "tls"}, {110, 0.55, "pop3"}, {143, 0.6, "imap"},
		{993, 0.7, "tls"}, {995, 0.55, "tls"}, {80, 0.45, "http"}, {443, 0.5, "tls"}} {
		if !g.chance(p.p) {
			continue
		}
		switch p.port {
		case 25, 587:
			h.add(p.port, p.fp, smtp)
		case 465:
			h.addTLS(p.port, g.tlsData(smtp), c)
		case 110:
			h.add(p.port, p.fp, pop)
		case 995:
			h.addTLS(p.port, g.tlsData(pop), c)
		case 143:
			h.add(p.port, p.fp, imap)
		case 993:
			h.addTLS(p.port, g.tlsData(imap), c)
		case 80:
			h.add(p.port, p.fp, web)
		case 443:
			h.addTLS(p.port, g.tlsData(web), c)
		}
	}
	if g.chance(0.1) {
		h.add(4190, "unknown", "\"IMPLEMENTATION\" \"Dovecot Pigeonhole\"\n\"SIEVE\" \"fileinto reject envelope encoded-character vacation subaddress comparator-i;ascii-numeric relational regex imap4flags copy include variables body enotify environment mailbox date index ihave duplicate mime foreverypart extracttext\"\n\"NOTIFY\" \"mailto\"\n\"SASL\" \"PLAIN LOGIN\"\n\"STARTTLS\"\n\"VERSION\" \"1.0\"\nOK \"Dovecot ready.\"")
	}
	if len(h.svcs) == 0 {
		h.add(25, "smtp", smtp)
	}
}

// devPanel is shared web hosting run by a control panel: a dozen or more
// ports. Some are firewalled down to a handful.
func (g *gen) devPanel(h *host) {
	name := g.hostname(h)
	keep := one(g, h, "firewall", opt[float64]{6, 0.92}, opt[float64]{2, 0.6}, opt[float64]{1, 0.3})
	c := g.webCert(h)
	maybe := func(p float64) bool { return g.chance(p * keep) }
	dovecotPop, dovecotImap := "+OK Dovecot ready.", "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE NAMESPACE LITERAL+ STARTTLS AUTH=PLAIN AUTH=LOGIN] Dovecot ready."
	mail := func(smtp string) {
		for _, port := range []int{25, 587} {
			if maybe(1) {
				h.add(port, "smtp", smtp)
			}
		}
		if maybe(0.9) {
			h.addTLS(465, g.tlsData(smtp), c)
		}
		if maybe(1) {
			h.add(110, "pop3", dovecotPop)
		}
		if maybe(1) {
			h.add(143, "imap", dovecotImap)
		}
		if maybe(0.95) {
			h.addTLS(993, g.tlsData(dovecotImap), c)
		}
		if maybe(0.95) {
			h.addTLS(995, g.tlsData(dovecotPop), c)
		}
	}
	web := func(s *webSrv) {
		p := g.page(h, s)
		if maybe(1) {
			h.add(80, "http", p)
		}
		if maybe(1) {
			h.addTLS(443, g.tlsData(p), c)
		}
	}
	dns := func() {
		if maybe(0.8) {
			h.add(53, "dns", "version.bind: 9.11.36-RedHat-9.11.36-16.el8_10.2")
		}
	}
	switch one(g, h, "panel", opt[int]{5, 0}, opt[int]{3, 1}, opt[int]{1.5, 2}) {
	case 0: // cPanel
		h.win = g.window(h, osLinux3)
		if maybe(1) {
			h.add(21, "ftp", "220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------\n220-You are user number 1 of 50 allowed.\n"+
				"220-Local time is now "+g.when().Format("15:04")+". Server port: 21.\n220-IPv6 connections are also welcome on this server.\n"+
				"220 You will be disconnected after 15 minutes of inactivity.")
		}
		if maybe(0.9) {
			h.add(g.sshPort(h), "ssh", oneR(g, opt[string]{2, "SSH-2.0-OpenSSH_7.4"}, opt[string]{2, "SSH-2.0-OpenSSH_8.0"}, opt[string]{1, "SSH-2.0-OpenSSH_8.7"}))
		}
		mail("220-" + name + " ESMTP Exim 4.96.2 #2 " + g.mailDate() + " \n220-We do not authorize the use of this system to transport unsolicited, \n220 and/or bulk e-mail.")
		dns()
		web(&webSrv{server: "Apache"})
		for _, port := range []int{2082, 2086, 2095} {
			if maybe(0.85) {
				h.add(port, "http", head("301 Moved", "Server: cpsrvd", "Content-Type: text/html", "Location: https://"+h.ip+":"+strconv.Itoa(port+1)+"/"))
			}
		}
		for _, port := range []int{2083, 2087, 2096} {
			if maybe(0.85) {
				h.addTLS(port, g.tlsData(head("200 OK", "Connection: close", "Content-Type: text/html; charset=utf-8", "Cache-Control: no-cache, no-store, must-revalidate, private", "Server: cpsrvd")), c)
			}
		}
		if maybe(0.3) {
			h.add(2077, "http", head("401 Unauthorized", "Server: cpdavd", "WWW-Authenticate: Basic realm=\"Web Disk\""))
			h.addTLS(2078, "", c)
		}
		if maybe(0.35) {
			h.add(3306, "mysql", g.mysqlData(h, "5.7.44-log"))
		}
		if maybe(0.3) {
			h.add(26, "smtp", "220-"+name+" ESMTP Exim 4.96.2 #2 "+g.mailDate()+" \n220-We do not authorize the use of this system to transport unsolicited, \n220 and/or bulk e-mail.")
		}
	case 1: // Plesk
		h.win = g.window(h, osLinux)
		d := pick(g, h, "distro", distros)
		if maybe(1) {
			h.add(21, "ftp", "220 ProFTPD Server (ProFTPD) ["+h.ip+"]")
		}
		if maybe(0.9) {
			h.add(g.sshPort(h), "ssh", d.ssh)
		}
		mail("220 " + name + " ESMTP Postfix" + d.tag)
		dns()
		web(&webSrv{server: "nginx", extra: "X-Powered-By: PleskLin"})
		if maybe(0.6) {
			h.add(106, "unknown", "200 poppassd v1.8.5 hello, who are you?")
		}
		if maybe(0.95) {
			h.addTLS(8443, g.tlsData(head("303 See Other", "Server: sw-cp-server", "Content-Type: text/html; charset=UTF-8", "Location: /login.php")),
				cert{"CN=Plesk, O=Plesk, L=Schaffhausen, ST=Schaffhausen, C=CH", oidsSelf})
		}
		if maybe(0.8) {
			h.add(8880, "http", head("303 See Other", "Server: sw-cp-server", "Content-Type: text/html; charset=UTF-8", "Location: /login.php"))
		}
		if maybe(0.4) {
			h.add(3306, "mysql", g.mysqlData(h, d.mysql))
		}
	default: // DirectAdmin
		h.win = g.window(h, osLinux)
		if maybe(1) {
			h.add(21, "ftp", "220 ProFTPD Server (DirectAdmin) ["+h.ip+"]")
		}
		if maybe(0.9) {
			h.add(22, "ssh", pick(g, h, "distro", distros).ssh)
		}
		mail("220 " + name + " ESMTP Exim 4.97.1 " + g.mailDate())
		dns()
		web(&webSrv{server: "Apache/2", etag: true})
		if maybe(1) {
			h.add(2222, "http", head("200 OK", "Server: DirectAdmin Daemon v1.664", "Content-Type: text/html", "Cache-Control: no-cache"))
		}
		if maybe(0.4) {
			h.add(3306, "mysql", g.mysqlData(h, "10.6.18-MariaDB"))
		}
	}
	if len(h.svcs) == 0 {
		h.add(80, "http", head("200 OK", "Server: Apache"))
	}
}

// routerOS versions. Read-only.
var routerOS = []opt[string]{{3, "6.49.10"}, {2, "6.48.6"}, {1, "6.45.9"}, {1, "6.47.10"}, {2, "7.12.1"}, {2, "7.14.3"}, {1, "7.16"}}

// devMikrotik is a MikroTik RouterOS router with its management services.
func (g *gen) devMikrotik(h *host) {
	v := pick(g, h, "routeros", routerOS).v
	v6 := v[0] == '6'
	h.win = 64240
	if v6 {
		h.win = 14600
	}
	identity := "MikroTik"
	if g.chance(0.3) {
		identity = strings.ToUpper(g.token(2, alnumUp)) + "-" + words[g.r.IntN(len(words))] + "-gw" // admins rename routers
	}
	if g.chance(0.8) {
		h.add(8291, "unknown", "")
	}
	if g.chance(0.5) {
		h.add(22, "ssh", "SSH-2.0-ROSSSH")
	}
	if g.chance(0.4) {
		label := "(stable)"
		if v6 {
			label = "(long-term)"
		}
		h.add(23, "telnet", "MikroTik v"+v+" "+label+"\nLogin: ")
	}
	if g.chance(0.55) {
		if v6 {
			h.add(80, "http", head("200 OK", "Content-Length: 1400", "Content-Type: text/html", "Expires: 0", "Cache-Control: no-cache"))
		} else {
			h.add(80, "http", head("200 OK", "Content-Type: text/html", "Expires: Thu, 01 Jan 1970 00:00:00 GMT", "Cache-Control: no-cache, no-store, must-revalidate", "Content-Length: 3921"))
		}
	}
	if g.chance(0.45) {
		h.add(21, "ftp", "220 "+identity+" FTP server (MikroTik "+v+") ready")
	}
	if g.chance(0.45) {
		h.add(2000, "unknown", "\u0001\u0000\u0000\u0000")
	}
	if g.chance(0.25) {
		h.add(8728, "unknown", "")
	}
	if g.chance(0.1) {
		h.add(1723, "pptp", "Firmware: 1\nHostname: MikroTik\nVendor: MikroTik")
	}
	if len(h.svcs) == 0 {
		h.add(8291, "unknown", "")
	}
}

// devCamera is an IP camera or DVR. Owners forward its web UI to odd ports.
func (g *gen) devCamera(h *host) {
	web := 80
	if g.chance(0.25) {
		web = g.altHTTP()
	}
	rtsp := 554
	if g.chance(0.1) {
		rtsp = oneR(g, opt[int]{2, 10554}, opt[int]{1, 8554}, opt[int]{1, 5554})
	}
	nonce := func() string { return g.token(32, hexdigits) }
	switch one(g, h, "camera", opt[int]{5, 0}, opt[int]{3, 1}, opt[int]{1, 2}, opt[int]{3, 3}) {
	case 0: // Hikvision
		h.win = 5840
		srv := one(g, h, "hikweb", opt[string]{4, "App-webs/"}, opt[string]{2, "DNVRS-Webs"}, opt[string]{2, "Hikvision-Webs"}, opt[string]{1, "webserver"})
		if g.chance(0.85) {
			h.add(web, "http", head("200 OK", "Content-Type: text/html", "Server: "+srv, "Connection: close", "Content-Length: 480"))
		}
		if g.chance(0.75) {
			h.add(rtsp, "rtsp", "RTSP/1.0 401 Unauthorized\nCSeq: 1\nWWW-Authenticate: Digest realm=\"IP Camera("+g.token(5, "0123456789")+
				")\", nonce=\""+nonce()+"\", stale=\"FALSE\"")
		}
		if g.chance(0.7) {
			h.add(8000, "unknown", "")
		}
		if g.chance(0.3) {
			h.addTLS(443, "", cert{"CN=192.0.0.64, O=Hikvision, C=CN", oidsSelf})
		}
	case 1: // Dahua
		h.win = 14600
		if g.chance(0.85) {
			h.add(web, "http", head("200 OK", "CACHE-CONTROL: no-cache", "Content-Type: text/html", "X-Frame-Options: SAMEORIGIN",
				"X-XSS-Protection: 1; mode=block", "Server: Webs"))
		}
		if g.chance(0.75) {
			h.add(rtsp, "rtsp", "RTSP/1.0 401 Unauthorized\nCSeq: 1\nWWW-Authenticate: Digest realm=\"Login to "+g.token(15, alnumUp)+
				"\", nonce=\""+nonce()+"\"")
		}
		if g.chance(0.8) {
			h.add(37777, "unknown", "")
		}
		if g.chance(0.2) {
			h.add(37778, "unknown", "")
		}
		if g.chance(0.2) {
			h.addTLS(443, "", cert{"CN=Dahua, O=Dahua Technology, C=CN", oidsSelfOld})
		}
	case 2: // Axis
		h.win = 29200
		if g.chance(0.9) {
			h.add(web, "http", head("302 Found", "Server: Apache/2.4.54 (Unix) OpenSSL/1.1.1t", "Location: /index.html", "Content-Type: text/html; charset=iso-8859-1"))
		}
		if g.chance(0.7) {
			h.add(rtsp, "rtsp", "RTSP/1.0 200 OK\nCSeq: 1\nServer: GStreamer RTSP server\nPublic: OPTIONS, DESCRIBE, ANNOUNCE, GET_PARAMETER, PAUSE, PLAY, RECORD, SETUP, SET_PARAMETER, TEARDOWN")
		}
		if g.chance(0.4) {
			h.addTLS(443, "", cert{"CN=axis-" + g.token(12, hexdigits), oidsSelf})
		}
		if g.chance(0.1) {
			h.add(21, "ftp", "220 Axis P1448-LE Network Camera 10.12.199 (2023) ready.")
		}
	default: // generic XiongMai-style DVR
		h.win = 5840
		realm := one(g, h, "dvrrealm", opt[string]{3, "DVR"}, opt[string]{1, "网络摄像机"}, opt[string]{1, "NETSurveillance"})
		if g.chance(0.85) {
			h.add(web, "http", head("200 OK", "Server: uc-httpd 1.0.0", "Content-Type: text/html; charset=UTF-8",
				"WWW-Authenticate: Basic realm=\""+realm+"\""))
		}
		if g.chance(0.6) {
			h.add(34567, "unknown", "")
		}
		if g.chance(0.4) {
			h.add(rtsp, "rtsp", "RTSP/1.0 200 OK\nCSeq: 1\nServer: H264DVR 1.0\nPublic: OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY, PAUSE")
		}
		if g.chance(0.3) {
			h.add(23, "telnet", "\nLocalHost login: ")
		}
	}
	if len(h.svcs) == 0 {
		h.add(rtsp, "rtsp", "RTSP/1.0 200 OK\nCSeq: 1")
	}
}

// iotVariant is an embedded Linux box: its telnet prompt and web server.
type iotVariant struct {
	w      float64
	telnet string
	web    string // Server and realm lines of its web UI
	win    int64
}

func (v iotVariant) weight() float64 { return v.w }

// iotVariants. Read-only.
var iotVariants = []iotVariant{
	{4, "\n(none) login: ", "Server: Boa/0.94.14rc21\nWWW-Authenticate: Basic realm=\"Default: admin/1234\"", 5840},
	{3, "Login: ", "Server: GoAhead-Webs\nWWW-Authenticate: Basic realm=\"GoAhead\"", 5840},
	{3, "\ndvrdvs login: ", "Server: uc-httpd 1.0.0", 14600},
	{2, "\nHi3518 login: ", "Server: thttpd/2.25b 29dec2003", 4380},
	{2, "\nOpenWrt login: ", "Server: uhttpd", 14600},
	{2, "\nZXHN H108N\nLogin: ", "Server: Mini web server 1.0 ZTE corp 2005.", 5792},
	{1.5, "BusyBox v1.19.4 (2015-04-10 15:23:18 CST) built-in shell (ash)\nEnter 'help' for a list of built-in commands.\n", "Server: mini_httpd/1.19 19dec2003", 2920},
	{1, "\nKirinRouter login: ", "Server: Mbedthis-Appweb/2.4.2\nWWW-Authenticate: Basic realm=\"网络摄像机\"", 5840},
	{1, "Bem-vindo ao roteador\nUsuário: ", "Server: lighttpd/1.4.35\nWWW-Authenticate: Basic realm=\"ConfiguraÃ§Ã£o do roteador\"", 14600},
	{1, "\nWelcome to the router of l'Ã©cole\nlogin: ", "Server: Boa/0.94.13", 5840},
}

// devIoT is an embedded device with telnet and a small web server.
func (g *gen) devIoT(h *host) {
	v := pick(g, h, "iot", iotVariants)
	h.win = v.win
	hasTelnet := g.chance(0.6)
	if hasTelnet {
		h.add(23, "telnet", v.telnet)
	}
	webPage := head("401 Unauthorized", strings.Split(v.web, "\n")...) + "\nContent-Type: text/html"
	if !hasTelnet || g.chance(0.4) {
		port := 80
		if g.chance(0.12) {
			port = g.altHTTP()
		}
		h.add(port, "http", webPage)
	}
	if g.chance(0.06) {
		h.add(2323, "telnet", v.telnet)
	}
	if g.chance(0.05) {
		h.add(81, "http", webPage)
	}
	if g.chance(0.03) {
		h.add(5555, "unknown", "")
	}
	if g.chance(0.05) {
		h.add(7547, "http", head("404 Not Found", "Content-Length: 0"))
	}
}

// cpeVariant is an ISP's home router model.
type cpeVariant struct {
	w     float64
	model string
	tr069 string // answer of the TR-069 management port; {nonce} is per host
	web   string // answer of its web UI
	win   int64
	extra int // a port only this model opens
}

func (v cpeVariant) weight() float64 { return v.w }

// cpeVariants. Read-only.
var cpeVariants = []cpeVariant{
	{4, "ZyXEL VMG3625-T20A", "HTTP/1.1 401 Unauthorized\nContent-Type: text/html\nServer: RomPager/4.07 UPnP/1.0\nEXT:\nWWW-Authenticate: Digest realm=\"IgdAuthentication\", nonce=\"{nonce}\", qop=\"auth\"",
		"HTTP/1.1 200 OK\nServer: RomPager/4.07 UPnP/1.0\nContent-Type: text/html", 5840, 0},
	{3, "Sagemcom F@st 5366", "HTTP/1.1 404 Not Found\nServer: gSOAP/2.8\nContent-Type: text/xml; charset=utf-8\nContent-Length: 0\nConnection: close",
		"HTTP/1.1 200 OK\nServer: micro_httpd\nCache-Control: no-cache\nContent-Type: text/html", 14600, 52869},
	{3, "Huawei HG8245H", "HTTP/1.1 401 Unauthorized\nContent-Length: 0\nWWW-Authenticate: Digest realm=\"HuaweiHomeGateway\", nonce=\"{nonce}\", qop=\"auth\", algorithm=\"MD5\"",
		"HTTP/1.1 200 OK\nContent-Type: text/html\nX-Frame-Options: SAMEORIGIN\nCache-Control: no-cache", 5792, 37215},
	{2, "Technicolor TG789vac", "HTTP/1.1 401 Unauthorized\nServer: TR069 CPE\nWWW-Authenticate: Basic realm=\"Technicolor\"\nContent-Length: 0",
		"HTTP/1.1 200 OK\nServer: Technicolor\nContent-Type: text/html; charset=UTF-8", 14600, 0},
	{2, "TP-Link Archer VR400", "HTTP/1.1 401 Unauthorized\nServer: mini_httpd/1.19 19dec2003\nContent-Type: text/html; charset=%s\nWWW-Authenticate: Basic realm=\"TR069\"",
		"HTTP/1.1 200 OK\nServer: mini_httpd/1.19 19dec2003\nContent-Type: text/html", 5840, 0},
	{2, "AVM FRITZ!Box 7590", "HTTP/1.1 404 Not Found\nContent-Length: 0\nServer: FRITZ!Box",
		"HTTP/1.1 303 See Other\nContent-Length: 0\nLocation: https://fritz.box/", 65535, 8089},
	{1.5, "Netgear DGN2200", "HTTP/1.1 401 Unauthorized\nServer: Allegro-Software-RomPager/4.34\nWWW-Authenticate: Basic realm=\"Broadband Router\"",
		"HTTP/1.1 200 OK\nServer: Allegro-Software-RomPager/4.34\nContent-Type: text/html", 4380, 0},
	{1, "ZTE ZXHN H298A", "HTTP/1.1 401 Unauthorized\nServer: ZTE web server 1.0 ZTE corp 2015.\nWWW-Authenticate: Digest realm=\"ZTE\", nonce=\"{nonce}\"",
		"HTTP/1.1 200 OK\nServer: Mini web server 1.0 ZTE corp 2005.\nContent-Type: text/html", 5792, 0},
}

// devCPE is a home router: the ISP manages it over TR-069, often on a port of
// the ISP's choosing; little else is open.
func (g *gen) devCPE(h *host) {
	v := pick(g, h, "cpe", cpeVariants)
	h.win = v.win
	port := 7547
	if h.as != nil && h.as.cpePort != 0 {
		port = h.as.cpePort
	}
	h.add(port, "http", strings.Replace(v.tr069, "{nonce}", g.token(32, hexdigits), 1))
	if g.chance(0.06) {
		h.add(80, "http", v.web)
	}
	if g.chance(0.04) {
		name := g.token(16, alnumLow)
		if strings.Contains(v.model, "FRITZ") {
			h.addTLS(443, "", cert{"CN=" + name + ".myfritz.net", oidsDV})
		} else {
			h.addTLS(443, g.tlsData(v.web), cert{"CN=" + one(g, h, "cpecert", opt[string]{1, "Broadband Router"}, opt[string]{1, "router.local"}), oidsSelfOld})
		}
	}
	if g.chance(0.03) {
		h.add(8080, "http", v.web)
	}
	if v.extra != 0 && g.chance(0.1) {
		h.add(v.extra, "http", head("404 Not Found", "Server: Linux/3.4.11-rt19, UPnP/1.0, Portable SDK for UPnP devices/1.6.19", "Content-Length: 48", "Content-Type: text/html"))
	}
	if g.chance(0.03) {
		h.add(49152, "http", head("404 Not Found", "Server: Linux/2.6.36, UPnP/1.0, Portable SDK for UPnP devices/1.6.6", "Content-Length: 48", "Content-Type: text/html"))
	}
	if g.chance(0.03) {
		h.add(53, "dns", "version.bind: dnsmasq-2.78")
	}
	if g.chance(0.03) {
		h.add(5060, "sip", "SIP/2.0 404 Not Found\nServer: "+v.model)
	}
	if g.chance(0.03) {
		h.add(22, "ssh", "SSH-2.0-dropbear_2017.75")
	}
	if g.chance(0.03) {
		h.add(23, "telnet", "Login: ")
	}
}

// devDB is a database server, often with ssh.
func (g *gen) devDB(h *host) {
	d := pick(g, h, "distro", distros)
	h.win = g.window(h, d.os)
	switch one(g, h, "db", opt[int]{5, 0}, opt[int]{3, 1}, opt[int]{3, 2}, opt[int]{2, 3}, opt[int]{1.5, 4}, opt[int]{1.5, 5}, opt[int]{1, 6}) {
	case 0: // MySQL / MariaDB of the distribution
		h.add(3306, "mysql", g.mysqlData(h, d.mysql))
		if g.chance(0.1) {
			h.add(33060, "unknown", "")
		}
	case 1: // a MySQL of its own
		h.add(3306, "mysql", g.mysqlData(h, oneR(g, opt[string]{2, "5.7.44-log"}, opt[string]{2, "8.0.36"}, opt[string]{1, "5.6.51"}, opt[string]{1, "10.6.18-MariaDB"})))
	case 2:
		h.add(5432, "postgres", oneR(g, opt[string]{2, ""},
			opt[string]{1, "SFATAL\nVFATAL\nC28000\nMno pg_hba.conf entry for host \"198.51.100.7\", user \"postgres\", database \"postgres\", no encryption"}))
	case 3:
		if g.chance(0.7) {
			h.add(6379, "redis", oneR(g, opt[string]{3, "-NOAUTH Authentication required."},
				opt[string]{1, "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user."}))
		} else {
			v := oneR(g, opt[string]{2, "6.0.16"}, opt[string]{2, "7.0.15"}, opt[string]{1, "5.0.7"})
			h.add(6379, "redis", "$3745\n# Server\nredis_version:"+v+"\nredis_mode:standalone\nos:Linux 5.15.0-"+strconv.Itoa(50+g.r.IntN(70))+
				"-generic x86_64\nrun_id:"+g.token(40, hexdigits))
		}
	case 4:
		v := oneR(g, opt[string]{2, "4.4.29\nmaxWireVersion: 9"}, opt[string]{2, "6.0.15\nmaxWireVersion: 17"}, opt[string]{1, "3.6.8\nmaxWireVersion: 6"})
		h.add(27017, "mongodb", "version: "+v)
	case 5: // Elasticsearch, maybe with Kibana
		h.add(9200, "http", head("200 OK", "X-elastic-product: Elasticsearch", "content-type: application/json", "content-length: "+strconv.Itoa(530+g.r.IntN(20))))
		if g.chance(0.5) {
			h.add(9300, "unknown", "")
		}
		if g.chance(0.3) {
			h.add(5601, "http", head("302 Found", "location: /spaces/enter", "x-content-type-options: nosniff", "kbn-name: "+g.hostname(h),
				"content-security-policy: script-src 'self'; worker-src blob: 'self'; style-src 'unsafe-inline' 'self'"))
		}
	default: // Microsoft SQL Server
		h.win = g.window(h, osWindows)
		h.add(1433, "mssql", oneR(g, opt[string]{2, "Version: 15.00.2000\nInstance: MSSQLSERVER"}, opt[string]{1, "Version: 13.00.1601\nInstance: MSSQLSERVER"},
			opt[string]{1, "Version: 16.00.1000\nInstance: SQLEXPRESS"}))
		if g.chance(0.5) {
			h.add(3389, "rdp", "RDP: TLS, CredSSP")
		}
		return
	}
	if g.chance(0.6) {
		h.add(g.sshPort(h), "ssh", d.ssh)
	}
	if g.chance(0.1) {
		h.add(80, "http", g.page(h, &webSrv{server: d.nginx}))
	}
	if g.chance(0.05) {
		h.add(11211, "unknown", "")
	}
}

// winVersion is a Windows release.
type winVersion struct {
	w      float64
	iis    string
	smb    string
	os     osID
	build  string
	server bool
}

func (v winVersion) weight() float64 { return v.w }

// Windows releases, servers and desktops. Read-only.
var (
	winServers = []winVersion{
		{2, "Microsoft-IIS/8.5", "SMB 3.0.2\nsigning: enabled, not required", osWindowsOld, "6.3.9600", true},
		{3, "Microsoft-IIS/10.0", "SMB 3.1.1\nsigning: enabled, not required", osWindows, "10.0.14393", true},
		{4, "Microsoft-IIS/10.0", "SMB 3.1.1\nsigning: enabled, not required", osWindows, "10.0.17763", true},
		{3, "Microsoft-IIS/10.0", "SMB 3.1.1\nsigning: required", osWindows, "10.0.20348", true},
		{1, "Microsoft-IIS/7.5", "SMB 1\nOS: Windows Server 2008 R2 Standard 7601 Service Pack 1\nLanManager: Windows Server 2008 R2 Standard 6.1", osWindowsOld, "6.1.7601", true},
	}
	winDesktops = []winVersion{
		{4, "", "SMB 3.1.1\nsigning: enabled, not required", osWindows, "10.0.19045", false},
		{2, "", "SMB 3.1.1\nsigning: enabled, not required", osWindows, "10.0.22631", false},
		{1, "", "SMB 1\nOS: Windows 7 Professional 7601 Service Pack 1\nLanManager: Windows 7 Professional 6.1", osWindowsOld, "6.1.7601", false},
	}
)

// rdp is what an RDP server tells a scanner; some leak the machine name.
func (g *gen) rdp(h *host, v *winVersion) string {
	s := "RDP: TLS, CredSSP\nProduct version: " + v.build
	if g.chance(0.5) {
		prefix := "WIN-"
		if !v.server {
			prefix = "DESKTOP-"
		}
		s += "\nTarget name: " + prefix + g.token(7, alnumUp)
	}
	return s
}

// devWindows is a Windows server; some are domain controllers (> 10 ports).
func (g *gen) devWindows(h *host) {
	v := pick(g, h, "winsrv", winServers)
	h.win = g.window(h, v.os)
	if g.chance(0.08) { // domain controller
		for _, p := range []struct {
			port     int
			fp, data string
		}{{53, "dns", "version.bind: Microsoft DNS " + v.build}, {88, "unknown", ""}, {135, "unknown", ""}, {139, "", ""},
			{389, "ldap", "namingContexts: DC=" + h.as.domainLabel() + ",DC=local"}, {445, "smb", v.smb}, {464, "unknown", ""}, {593, "unknown", "ncacn_http/1.0"},
			{636, "unknown", ""}, {3268, "ldap", "namingContexts: DC=" + h.as.domainLabel() + ",DC=local"}, {3269, "unknown", ""}, {9389, "unknown", ""}} {
			if g.chance(0.92) {
				h.add(p.port, p.fp, p.data)
			}
		}
		if g.chance(0.7) {
			h.add(3389, "rdp", g.rdp(h, v))
		}
		return
	}
	if g.chance(0.8) {
		h.add(135, "unknown", "")
	}
	if g.chance(0.5) {
		h.add(139, "", "")
	}
	if g.chance(0.75) {
		h.add(445, "smb", v.smb)
	}
	if g.chance(0.7) {
		h.add(3389, "rdp", g.rdp(h, v))
	}
	if g.chance(0.3) {
		h.add(80, "http", g.page(h, &webSrv{server: v.iis, extra: "X-Powered-By: ASP.NET"}))
	}
	if g.chance(0.2) {
		h.addTLS(443, g.tlsData(g.page(h, &webSrv{server: v.iis, extra: "X-Powered-By: ASP.NET"})), g.webCert(h))
	}
	if g.chance(0.25) {
		h.add(5985, "http", head("404 Not Found", "Content-Type: text/html; charset=us-ascii", "Server: Microsoft-HTTPAPI/2.0", "Connection: close", "Content-Length: 315"))
	}
	if g.chance(0.08) {
		h.add(1433, "mssql", "Version: 15.00.2000\nInstance: MSSQLSERVER")
	}
	if g.chance(0.05) {
		h.add(21, "ftp", "220 Microsoft FTP Service")
	}
	if len(h.svcs) == 0 {
		h.add(3389, "rdp", g.rdp(h, v))
	}
}

// domainLabel is the AS's domain without its TLD, for Windows domains.
func (a *asys) domainLabel() string {
	if a == nil {
		return "corp"
	}
	l, _, _ := strings.Cut(a.domain, ".")
	return l
}

// devWinDesk is a Windows desktop exposing remote access or file sharing.
func (g *gen) devWinDesk(h *host) {
	v := pick(g, h, "windesk", winDesktops)
	h.win = g.window(h, v.os)
	if g.chance(0.7) {
		port := 3389
		if g.chance(0.1) {
			port = oneR(g, opt[int]{1, 3390}, opt[int]{1, 33890}, opt[int]{1, 1024 + g.r.IntN(64000)})
		}
		h.add(port, "rdp", g.rdp(h, v))
	}
	if g.chance(0.4) {
		h.add(445, "smb", v.smb)
	}
	if g.chance(0.25) {
		h.add(139, "", "")
	}
	if g.chance(0.2) {
		h.add(135, "unknown", "")
	}
	if g.chance(0.08) {
		h.add(5357, "http", head("503 Service Unavailable", "Content-Type: text/html; charset=us-ascii", "Server: Microsoft-HTTPAPI/2.0", "Connection: close", "Content-Length: 326"))
	}
	if g.chance(0.05) {
		h.add(5900, "vnc", "RFB 003.008")
	}
	if len(h.svcs) == 0 {
		h.add(445, "smb", v.smb)
	}
}

// printerVariant is a printer vendor's set of banners.
type printerVariant struct {
	w        float64
	web, ipp string
	ftp      string
	cert     string // default certificate; "" means one per device
	win      int64
}

func (v printerVariant) weight() float64 { return v.w }

// printerVariants. Read-only.
var printerVariants = []printerVariant{
	{4, "Server: HP HTTP Server; HP LaserJet Pro MFP M426fdn - F6W15A; Serial Number: {serial}; Built:Thu Jan 11, 2024 12:50:20PM {TRFM2SEAP2n002.2402A.00}",
		"Server: HP-ChaiSOE/1.0", "220 JD FTP Server Ready", "", 5840},
	{2, "Server: debut/1.30", "Server: debut/1.30", "220 FTP print service:V-1.13/Use the password:", "", 5840},
	{1.5, "Server: KM-MFP-http/V0.0.1", "Server: KM-MFP-http/V0.0.1", "220 KYOCERA FTP server ready.", "CN=KM-MFP, O=KYOCERA Document Solutions Inc., C=JP", 14600},
	{1.5, "Server: CANON HTTP Server", "Server: CANON HTTP Server", "220 Canon FTP Server ready.", "CN=Canon iR-ADV C5535, O=CANON INC., C=JP", 8192},
	{1.5, "Server: EPSON_Linux UPnP/1.0 Epson UPnP SDK/1.0", "Server: EPSON_Linux UPnP/1.0 Epson UPnP SDK/1.0", "", "CN=EPSON, O=SEIKO EPSON CORP., C=JP", 14600},
	{1, "Server: Lexmark_Web_Server", "Server: Lexmark_Web_Server", "220 Lexmark MX511de FTP Server NR.APS.F470 ready.", "", 5840},
	{1, "Server: Xerox_MicroServer/Xerox11", "Server: CUPS/2.2 IPP/2.1", "220 FUJI XEROX ApeosPort-VI C3371 FTP server ready", "CN=Xerox, O=Xerox Corporation", 65535},
}

// devPrinter is a network printer.
func (g *gen) devPrinter(h *host) {
	v := pick(g, h, "printer", printerVariants)
	h.win = v.win
	serial := g.token(10, alnumUp)
	if g.chance(0.9) {
		h.add(80, "http", head("200 OK", strings.Replace(v.web, "{serial}", serial, 1), "Content-Type: text/html"))
	}
	if g.chance(0.6) {
		c := cert{v.cert, oidsSelf}
		if c.id == "" {
			c.id = "CN=NPI" + serial[:6] + ", O=" + strings.Fields(strings.TrimPrefix(v.web, "Server: "))[0]
		}
		h.addTLS(443, "", c)
	}
	if g.chance(0.6) {
		h.add(515, "unknown", "")
	}
	if g.chance(0.6) {
		h.add(631, "http", head("400 Bad Request", v.ipp, "Content-Type: text/html"))
	}
	if g.chance(0.85) {
		h.add(9100, "unknown", "")
	}
	if v.ftp != "" && g.chance(0.3) {
		h.add(21, "ftp", v.ftp)
	}
	if g.chance(0.1) {
		h.add(23, "telnet", "\nPassword: ")
	}
	if len(h.svcs) == 0 {
		h.add(9100, "unknown", "")
	}
}

// uuid is a random RFC 4122 version 4 identifier.
func (g *gen) uuid() string {
	t := g.token(32, hexdigits)
	return t[:8] + "-" + t[8:12] + "-4" + t[13:16] + "-a" + t[17:20] + "-" + t[20:]
}

// devK8s is a container host: a Kubernetes node or a Docker engine.
func (g *gen) devK8s(h *host) {
	h.win = g.window(h, osLinux)
	node := "node-" + g.token(5, alnumLow)
	if g.chance(0.6) {
		h.add(g.sshPort(h), "ssh", pick(g, h, "distro", distros).ssh)
	}
	kubelet := func() {
		h.addTLS(10250, g.tlsData(head("404 Not Found", "Content-Type: text/plain; charset=utf-8", "X-Content-Type-Options: nosniff")),
			cert{"CN=" + node + "@" + strconv.Itoa(1700000000+g.r.IntN(50000000)), oidsK8s})
	}
	switch one(g, h, "k8s", opt[int]{2, 0}, opt[int]{4, 1}, opt[int]{2, 2}) {
	case 0: // control plane
		h.addTLS(6443, g.tlsData(head("403 Forbidden", "Audit-Id: "+g.uuid(), "Cache-Control: no-cache, private", "Content-Type: application/json",
			"X-Content-Type-Options: nosniff", "X-Kubernetes-Pf-Flowschema-Uid: "+g.uuid(), "X-Kubernetes-Pf-Prioritylevel-Uid: "+g.uuid(),
			"Content-Length: 217")), cert{"CN=kube-apiserver", oidsK8s})
		kubelet()
		if g.chance(0.6) {
			h.addTLS(2379, "", cert{"CN=" + node, oidsK8s})
			h.addTLS(2380, "", cert{"CN=" + node, oidsK8s})
		}
		if g.chance(0.3) {
			h.addTLS(10257, "", cert{"CN=kube-controller-manager@" + strconv.Itoa(1700000000+g.r.IntN(50000000)), oidsK8s})
			h.addTLS(10259, "", cert{"CN=kube-scheduler@" + strconv.Itoa(1700000000+g.r.IntN(50000000)), oidsK8s})
		}
	case 1: // worker with NodePort services
		kubelet()
		if g.chance(0.4) {
			h.add(10256, "http", head("200 OK", "Content-Type: application/json", "X-Content-Type-Options: nosniff"))
		}
		for range g.r.IntN(4) {
			h.add(30000+g.r.IntN(2768), "http", g.page(h, pickR(g, webServers)))
		}
	default: // Docker engine
		va := one(g, h, "docker", opt[[2]string]{2, [2]string{"24.0.7", "1.43"}}, opt[[2]string]{2, [2]string{"20.10.7", "1.41"}},
			opt[[2]string]{1, [2]string{"26.1.4", "1.45"}})
		v, api := va[0], va[1]
		if g.chance(0.7) {
			h.add(2375, "http", head("404 Not Found", "Api-Version: "+api, "Content-Type: application/json", "Docker-Experimental: false",
				"Ostype: linux", "Server: Docker/"+v+" (linux)"))
		} else {
			h.addTLS(2376, "", cert{"CN=" + g.hostname(h), oidsSelf})
		}
		if g.chance(0.3) {
			h.add(80, "http", g.page(h, &webSrv{server: "nginx"}))
		}
		if g.chance(0.2) {
			h.add(9000, "http", head("200 OK", "Content-Type: text/html; charset=utf-8", "X-Content-Type-Options: nosniff", "X-Xss-Protection: 1; mode=block"))
		}
	}
}

// devVoIP is a PBX, SIP gateway or phone.
func (g *gen) devVoIP(h *host) {
	to := "To: <sip:probe@" + h.ip + ">;tag=" + g.token(8, hexdigits)
	sip := func(server string) string {
		return "SIP/2.0 200 OK\nVia: SIP/2.0/TCP 198.51.100.7:5060;branch=z9hG4bK-1;received=198.51.100.7\nFrom: <sip:probe@198.51.100.7>;tag=1\n" +
			to + "\nCall-ID: 1@198.51.100.7\nCSeq: 1 OPTIONS\n" + server + "\nAllow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO\nContent-Length: 0"
	}
	switch one(g, h, "voip", opt[int]{3, 0}, opt[int]{1.5, 1}, opt[int]{2, 2}, opt[int]{1.5, 3}) {
	case 0: // Asterisk / FreePBX
		h.win = g.window(h, osLinux3)
		h.add(5060, "sip", sip("Server: "+one(g, h, "asterisk", opt[string]{2, "Asterisk PBX 16.2.1~dfsg-1+deb10u2"}, opt[string]{2, "Asterisk PBX 18.10.0"}, opt[string]{1, "FPBX-16.0.40(18.20.0)"})))
		if g.chance(0.5) {
			p := g.page(h, &webSrv{server: "Apache/2.4.6 (CentOS) OpenSSL/1.0.2k-fips PHP/7.4.33", extra: "X-Powered-By: PHP/7.4.33"})
			h.add(80, "http", p)
			if g.chance(0.6) {
				h.addTLS(443, g.tlsData(p), g.webCert(h))
			}
		}
		if g.chance(0.2) {
			h.addTLS(5061, "", g.webCert(h))
		}
		if g.chance(0.4) {
			h.add(g.sshPort(h), "ssh", "SSH-2.0-OpenSSH_7.4")
		}
		if g.chance(0.05) {
			h.add(8088, "http", head("404 Not Found", "Server: Asterisk/18.10.0", "Content-Type: text/html"))
		}
	case 1: // FreeSWITCH
		h.win = g.window(h, osLinux)
		h.add(5060, "sip", sip("User-Agent: FreeSWITCH-mod_sofia/1.10.9-release~64bit"))
		if g.chance(0.4) {
			h.add(5080, "sip", sip("User-Agent: FreeSWITCH-mod_sofia/1.10.9-release~64bit"))
		}
		if g.chance(0.2) {
			h.add(8021, "unknown", "Content-Type: auth/request")
		}
		if g.chance(0.5) {
			h.add(g.sshPort(h), "ssh", pick(g, h, "distro", distros).ssh)
		}
	case 2: // desk phone
		h.win = 5840
		model := one(g, h, "phone", opt[string]{2, "Yealink SIP-T46S 66.86.0.15"}, opt[string]{1, "Grandstream GXP2170 1.0.11.23"}, opt[string]{1, "PolycomVVX-VVX_411-UA/6.4.3.5156"})
		if g.chance(0.6) {
			h.add(5060, "sip", sip("User-Agent: "+model))
		}
		h.add(80, "http", head("200 OK", "Server: "+strings.Fields(model)[0]+" embed httpd", "Content-Type: text/html"))
		if g.chance(0.5) {
			h.addTLS(443, "", cert{"CN=" + strings.Fields(model)[0] + " Device Certificate", oidsSelfOld})
		}
	default: // Cisco voice gateway / router
		h.win = g.window(h, osCisco)
		h.add(5060, "sip", sip("Server: Cisco-SIPGateway/IOS-15.x"))
		if g.chance(0.6) {
			h.add(22, "ssh", "SSH-2.0-Cisco-1.25")
		}
		if g.chance(0.4) {
			h.add(23, "telnet", "\nUser Access Verification\n\nUsername: ")
		}
		if g.chance(0.3) {
			h.add(80, "http", head("401 Unauthorized", "Server: cisco-IOS", "WWW-Authenticate: Basic realm=\"level_15 or view_access\""))
		}
	}
}

// ftpBanners are FTP greetings; {ip} and {time} are per host. Read-only.
var ftpBanners = []opt[string]{
	{4, "220 (vsFTPd 3.0.3)"}, {2, "220 (vsFTPd 3.0.5)"}, {3, "220 ProFTPD Server (Debian) [::ffff:{ip}]"},
	{1.5, "220 ProFTPD 1.3.5e Server (ProFTPD Default Installation) [{ip}]"},
	{2, "220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------\n220-You are user number 1 of 50 allowed.\n220-Local time is now {time}. Server port: 21.\n220-This is a private system - No anonymous login\n220 You will be disconnected after 15 minutes of inactivity."},
	{1.5, "220-FileZilla Server 0.9.60 beta\n220-written by Tim Kosse (tim.kosse@filezilla-project.org)\n220 Please visit https://filezilla-project.org/"},
	{2, "220 Microsoft FTP Service"}, {1, "220 FTP Server ready."},
	{0.3, "220 Bienvenue sur le serveur FTP de la Mairie – accès réservé"},
	{0.3, "220 Willkommen auf dem FTP-Server der Müller GmbH"},
	{0.3, "220 Добро пожаловать на FTP-сервер"},
	{0.3, "220 Servidor FTP da Prefeitura — acesso restrito"},
	{0.3, "220 Bienvenue sur le serveur de l'Ã©cole"},
}

// devFTP is a file server.
func (g *gen) devFTP(h *host) {
	b := pick(g, h, "ftp", ftpBanners).v
	if strings.Contains(b, "Microsoft") || strings.Contains(b, "FileZilla") {
		h.win = g.window(h, osWindows)
	} else {
		h.win = g.window(h, osLinux)
	}
	b = strings.Replace(b, "{ip}", h.ip, 1)
	b = strings.Replace(b, "{time}", g.when().Format("15:04"), 1)
	port := 21
	if g.chance(0.05) {
		port = oneR(g, opt[int]{2, 2121}, opt[int]{1, 2100}, opt[int]{1, 1024 + g.r.IntN(64000)})
	}
	h.add(port, "ftp", b)
	if g.chance(0.45) {
		h.add(g.sshPort(h), "ssh", pick(g, h, "distro", distros).ssh)
	}
	if g.chance(0.35) {
		h.add(80, "http", g.page(h, pick(g, h, "websrv", webServers)))
	}
	if g.chance(0.2) {
		h.addTLS(443, "", g.webCert(h))
	}
	if g.chance(0.05) {
		h.addTLS(990, "", g.webCert(h))
	}
}

// devDNS is a name server answering on TCP 53 (data: its version.bind).
func (g *gen) devDNS(h *host) {
	v := one(g, h, "dns", opt[string]{3, "version.bind: 9.18.28-0ubuntu0.22.04.1-Ubuntu"}, opt[string]{2, "version.bind: 9.16.1-Ubuntu"},
		opt[string]{2, "version.bind: dnsmasq-2.86"}, opt[string]{1, "version.bind: PowerDNS Authoritative Server 4.5.3"},
		opt[string]{1, "version.bind: unbound 1.13.1"}, opt[string]{1, "version.bind: Microsoft DNS 10.0.17763"}, opt[string]{3, ""})
	if strings.Contains(v, "Microsoft") {
		h.win = g.window(h, osWindows)
	} else {
		h.win = g.window(h, osLinux)
	}
	h.add(53, "dns", v)
	if g.chance(0.4) {
		h.add(g.sshPort(h), "ssh", pick(g, h, "distro", distros).ssh)
	}
	if g.chance(0.05) {
		h.add(953, "unknown", "")
	}
	if g.chance(0.1) {
		h.add(80, "http", g.page(h, &webSrv{server: "nginx"}))
	}
	if g.chance(0.03) {
		h.addTLS(853, "", g.webCert(h))
	}
}

// devVPN is a firewall or VPN gateway.
func (g *gen) devVPN(h *host) {
	redirect := head("301 Moved Permanently", "Location: https://"+h.ip+"/", "Content-Length: 0")
	switch one(g, h, "vpn", opt[int]{4, 0}, opt[int]{2, 1}, opt[int]{1.5, 2}, opt[int]{1.5, 3}, opt[int]{1, 4}, opt[int]{1, 5}) {
	case 0: // FortiGate
		h.win = 5840
		c := cert{"CN=FortiGate, O=Fortinet Ltd., OU=FortiGate", oidsSelf}
		if g.chance(0.4) {
			c = cert{"CN=FGT60F" + g.token(10, alnumUp) + ", O=Fortinet, OU=FortiGate, C=US", oidsSelf}
		}
		page := head("200 OK", "Server: xxxxxxxx-xxxxx", "Content-Type: text/html", "X-Frame-Options: SAMEORIGIN", "Content-Security-Policy: frame-ancestors 'self'")
		ports := []int{443}
		if g.chance(0.4) {
			ports = []int{one(g, h, "fgtport", opt[int]{3, 10443}, opt[int]{2, 8443}, opt[int]{1, 4443}, opt[int]{1, 1024 + g.r.IntN(64000)})}
		}
		if g.chance(0.25) {
			ports = append(ports, 443)
		}
		for _, p := range ports {
			h.addTLS(p, g.tlsData(page), c)
		}
		if g.chance(0.3) {
			h.add(541, "unknown", "")
		}
		if g.chance(0.2) {
			h.add(22, "ssh", "SSH-2.0-FortiSSH_"+g.token(8, alnumLow))
		}
		if g.chance(0.2) {
			h.add(80, "http", redirect)
		}
	case 1: // Cisco ASA
		h.win = g.window(h, osCisco)
		c := cert{"CN=ASA Temporary Self Signed Certificate", oidsSelfOld}
		if g.chance(0.5) {
			c = cert{"CN=vpn." + g.hostname(h), oidsOV}
		}
		h.addTLS(443, g.tlsData(head("302 Found", "Location: /+CSCOE+/logon.html", "Cache-Control: no-store", "Content-Type: text/html; charset=utf-8")), c)
		if g.chance(0.4) {
			h.add(22, "ssh", "SSH-2.0-Cisco-1.25")
		}
	case 2: // Palo Alto GlobalProtect
		h.win = g.window(h, osBSD)
		h.addTLS(443, g.tlsData(head("200 OK", "Content-Type: text/html; charset=UTF-8", "X-Frame-Options: DENY", "X-Xss-Protection: 1; mode=block",
			"Strict-Transport-Security: max-age=31536000;", "X-Content-Type-Options: nosniff")), cert{"CN=gp." + g.hostname(h), oidsOV})
		if g.chance(0.3) {
			h.addTLS(4443, "", cert{"CN=gp." + g.hostname(h), oidsOV})
		}
	case 3: // SonicWall
		h.win = g.window(h, osEmbedded)
		h.addTLS(one(g, h, "swport", opt[int]{2, 443}, opt[int]{1, 4433}), g.tlsData(head("200 OK", "Server: SonicWALL SSL-VPN Web Server", "Content-Type: text/html")),
			cert{"CN=192.168.168.168, O=HTTPS Management Certificate for SonicWALL (self-signed)", oidsSelfOld})
		if g.chance(0.3) {
			h.add(80, "http", head("200 OK", "Server: SonicWALL", "Content-Type: text/html"))
		}
		if g.chance(0.2) {
			h.add(22, "ssh", "SSH-2.0-SonicWALL")
		}
	case 4: // pfSense
		h.win = g.window(h, osBSD)
		h.addTLS(443, g.tlsData(head("200 OK", "Server: nginx", "Content-Type: text/html; charset=utf-8", "Set-Cookie: PHPSESSID="+g.token(32, hexdigits)+"; path=/; secure; HttpOnly")),
			cert{"CN=pfSense-" + g.token(13, hexdigits) + ", O=pfSense webConfigurator Self-Signed Certificate", oidsSelf})
		if g.chance(0.4) {
			h.add(22, "ssh", "SSH-2.0-OpenSSH_9.3")
		}
		if g.chance(0.3) {
			h.add(80, "http", redirect)
		}
	default: // OpenVPN Access Server
		h.win = g.window(h, osLinux)
		c := cert{"CN=OpenVPN Web CA " + g.when().Format("2006.01.02") + " " + g.token(8, hexdigits), oidsSelf}
		h.addTLS(443, "", c)
		if g.chance(0.7) {
			h.addTLS(943, g.tlsData(head("200 OK", "Server: OpenVPN-AS", "Content-Type: text/html")), c)
		}
		if g.chance(0.5) {
			h.add(1194, "unknown", "")
		}
	}
	if g.chance(0.08) {
		h.add(1723, "pptp", "Firmware: 0\nHostname: \nVendor: Microsoft")
	}
}

// devNAS is a home/office NAS.
func (g *gen) devNAS(h *host) {
	switch one(g, h, "nas", opt[int]{4, 0}, opt[int]{3, 1}, opt[int]{1, 2}) {
	case 0: // Synology
		h.win = 64240
		c := cert{"CN=synology, O=Synology Inc., C=TW", oidsSelf}
		if g.chance(0.3) {
			c = cert{"CN=" + g.token(10, alnumLow) + ".synology.me", oidsDV}
		}
		if g.chance(0.8) {
			h.add(5000, "http", head("200 OK", "Server: nginx", "Content-Type: text/html; charset=\"UTF-8\"", "Cache-control: no-store", "X-Content-Type-Options: nosniff"))
		}
		if g.chance(0.7) {
			h.addTLS(5001, "", c)
		}
		if g.chance(0.3) {
			h.add(80, "http", head("200 OK", "Server: nginx", "Content-Type: text/html"))
		}
		if g.chance(0.35) {
			h.addTLS(443, "", c)
		}
		if g.chance(0.15) {
			h.add(22, "ssh", "SSH-2.0-OpenSSH_8.2")
		}
		if g.chance(0.15) {
			h.add(21, "ftp", "220 Synology FTP server ready.")
		}
		if g.chance(0.1) {
			h.add(6690, "unknown", "")
		}
		if g.chance(0.05) {
			h.add(5006, "http", head("401 Unauthorized", "Server: nginx", "WWW-Authenticate: Basic realm=\"WebDAV\""))
		}
	case 1: // QNAP
		h.win = 14600
		c := cert{"CN=QNAP NAS, O=QNAP Systems, C=TW", oidsSelfOld}
		if g.chance(0.8) {
			h.add(8080, "http", head("200 OK", "Server: http server 1.0", "Content-Type: text/html", "X-Frame-Options: SAMEORIGIN"))
		}
		if g.chance(0.6) {
			h.addTLS(443, "", c)
		}
		if g.chance(0.2) {
			h.addTLS(8081, "", c)
		}
		if g.chance(0.2) {
			h.add(21, "ftp", "220 NASFTPD Turbo station 1.3.6e Server (ProFTPD) ["+h.ip+"]")
		}
		if g.chance(0.2) {
			h.add(22, "ssh", "SSH-2.0-OpenSSH_8.0")
		}
	default: // Asustor
		h.win = 5840
		h.add(8000, "http", head("200 OK", "Server: lighttpd", "Content-Type: text/html"))
		if g.chance(0.6) {
			h.addTLS(8001, "", cert{"CN=ASUSTOR Inc., O=ASUSTOR Inc., C=TW", oidsSelf})
		}
	}
	if len(h.svcs) == 0 {
		h.add(5000, "http", head("200 OK", "Server: nginx", "Content-Type: text/html"))
	}
}

// devProxy is an open or misconfigured proxy.
func (g *gen) devProxy(h *host) {
	h.win = g.window(h, osLinux)
	name := g.hostname(h)
	switch one(g, h, "proxy", opt[int]{3, 0}, opt[int]{1.5, 1}, opt[int]{1, 2}, opt[int]{2, 3}) {
	case 0:
		v := one(g, h, "squid", opt[string]{2, "3.5.27"}, opt[string]{2, "4.10"}, opt[string]{1, "5.7"})
		port := 3128
		if g.chance(0.2) {
			port = 8080
		}
		h.add(port, "http", head("400 Bad Request", "Server: squid/"+v, "Mime-Version: 1.0", "Content-Type: text/html;charset=utf-8",
			"X-Squid-Error: ERR_INVALID_URL 0", "Vary: Accept-Language", "Content-Language: en", "X-Cache: MISS from "+name,
			"X-Cache-Lookup: NONE from "+name+":"+strconv.Itoa(port), "Via: 1.1 "+name+" (squid/"+v+")", "Connection: close"))
	case 1:
		h.add(8888, "http", head("400 Bad Request", "Server: tinyproxy/1.11.1", "Content-Type: text/html", "Connection: close"))
	case 2:
		h.add(8118, "http", head("400 Invalid header received from client", "Proxy-Agent: Privoxy 3.0.32", "Content-Type: text/plain", "Connection: close"))
	default:
		h.add(1080, "unknown", "")
	}
	if g.chance(0.5) {
		h.add(g.sshPort(h), "ssh", pick(g, h, "distro", distros).ssh)
	}
}

// devVNC is a desktop shared over VNC.
func (g *gen) devVNC(h *host) {
	v := one(g, h, "vnc", opt[string]{6, "RFB 003.008"}, opt[string]{2, "RFB 003.003"}, opt[string]{1, "RFB 003.889"}, opt[string]{1, "RFB 004.001"})
	if v == "RFB 003.889" {
		h.win = g.window(h, osBSD)
	} else {
		h.win = g.window(h, osWindows)
	}
	h.add(5900, "vnc", v)
	if g.chance(0.2) {
		h.add(5901, "vnc", v)
	}
	if g.chance(0.1) {
		h.add(5800, "http", head("200 OK", "Server: RealVNC/E4", "Content-Type: text/html"))
	}
	if g.chance(0.3) {
		h.add(22, "ssh", pick(g, h, "distro", distros).ssh)
	}
}

// Minecraft server messages; some with non-ASCII. Read-only.
var motds = []string{"A Minecraft Server", "§aBienvenue sur le serveur!", "Survival 1.20 – join us", "Добро пожаловать", "Servidor de São Paulo"}

// devGame is a game server or a peer-to-peer client on a random port.
func (g *gen) devGame(h *host) {
	h.win = g.window(h, osLinux)
	switch one(g, h, "game", opt[int]{3, 0}, opt[int]{1, 1}, opt[int]{4, 2}, opt[int]{1, 3}) {
	case 0:
		v := one(g, h, "mc", opt[string]{2, "1.20.4\nprotocol: 765"}, opt[string]{1, "1.19.2\nprotocol: 760"}, opt[string]{1, "1.21.1\nprotocol: 767"})
		port := 25565
		if g.chance(0.2) {
			port = 25565 + 1 + g.r.IntN(20)
		}
		h.add(port, "minecraft", "version: "+v+"\nmotd: "+motds[g.r.IntN(len(motds))])
		if g.chance(0.1) {
			h.add(25575, "unknown", "")
		}
		if g.chance(0.3) {
			h.add(g.sshPort(h), "ssh", pick(g, h, "distro", distros).ssh)
		}
		if g.chance(0.1) {
			h.add(8123, "http", head("200 OK", "Content-Type: text/html", "Server: Dynmap"))
		}
	case 1:
		h.add(10011, "unknown", "TS3\nWelcome to the TeamSpeak 3 ServerQuery interface, type \"help\" for a list of commands and \"help <command>\" for information on a specific command.")
		if g.chance(0.7) {
			h.add(30033, "unknown", "")
		}
		if g.chance(0.4) {
			h.add(g.sshPort(h), "ssh", pick(g, h, "distro", distros).ssh)
		}
	case 2: // a peer-to-peer client on the port its user picked
		h.win = g.window(h, oneR(g, opt[osID]{2, osWindows}, opt[osID]{1, osLinux}))
		h.add(1024+g.r.IntN(64512), oneR(g, opt[string]{2, "unknown"}, opt[string]{1, ""}), oneR(g, opt[string]{3, ""}, opt[string]{1, "\u0013BitTorrent protocol"}))
	default:
		h.add(27015, "unknown", "")
	}
}

// devBlank is a host that accepts a connection and says nothing.
func (g *gen) devBlank(h *host) {
	h.win = g.window(h, oneR(g, opt[osID]{3, osLinux}, opt[osID]{2, osEmbedded}, opt[osID]{1, osWindows}))
	port := oneR(g, opt[int]{30, 80}, opt[int]{20, 443}, opt[int]{10, 22}, opt[int]{8, 8080}, opt[int]{4, 21}, opt[int]{3, 25},
		opt[int]{5, 23}, opt[int]{20, 1 + g.r.IntN(65535)})
	h.add(port, oneR(g, opt[string]{3, ""}, opt[string]{2, "unknown"}), "")
}
