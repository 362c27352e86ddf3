package bus

import "strings"

// redactedUser replaces what RedactURL hides.
const redactedUser = "xxxxx"

// minSecret is the length from which a credential is also hidden where it
// appears outside its URL in an error message.
const minSecret = 3

// RedactURL returns a NATS URL, or several comma-separated, fit for a log or
// an error: the password of user:password@ becomes xxxxx, and a lone user,
// which NATS reads as a token, becomes xxxxx too. It works on the text, not
// on a parsed URL, so a URL that does not parse is redacted as well.
func RedactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if at, info := userinfo(p); at >= 0 {
			user, _, hasPass := strings.Cut(info, ":")
			if !hasPass {
				user = redactedUser
			} else {
				user += ":" + redactedUser
			}
			parts[i] = p[:at-len(info)] + user + p[at:]
		}
	}
	return strings.Join(parts, ",")
}

// userinfo finds the userinfo of one URL: the text between the scheme's
// "://" (or the start) and the last "@" of the authority. at is the index of
// that "@" in u, -1 when there is none.
func userinfo(u string) (at int, info string) {
	start := 0
	if i := strings.Index(u, "://"); i >= 0 {
		start = i + 3
	}
	authority := u[start:]
	if i := strings.IndexAny(authority, "/?#"); i >= 0 {
		authority = authority[:i]
	}
	i := strings.LastIndex(authority, "@")
	if i < 0 {
		return -1, ""
	}
	return start + i, authority[:i]
}

// secrets are the credentials of urls as they may appear in a message: the
// userinfo whole, and its token or password alone.
func secrets(urls string) []string {
	var out []string
	for _, p := range strings.Split(urls, ",") {
		at, info := userinfo(p)
		if at < 0 || info == "" {
			continue
		}
		out = append(out, info)
		if _, pass, ok := strings.Cut(info, ":"); ok {
			if pass != "" {
				out = append(out, pass)
			}
		}
	}
	return out
}

// redactedError is an error whose message has the credentials of a URL
// removed; errors.Is and errors.As still see the error underneath.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErr hides the credentials of urls in err's message: a library's
// error may quote the URL it was given (url.Parse does).
func redactErr(err error, urls string) error {
	msg := err.Error()
	ss := secrets(urls)
	if len(ss) == 0 {
		return err
	}
	// The whole userinfo first, so the user of user:password stays readable.
	msg = strings.ReplaceAll(msg, urls, RedactURL(urls))
	for _, s := range ss {
		// A secret of a character or two would take every such letter of
		// the message with it; the URL it sits in is replaced above.
		if len(s) >= minSecret {
			msg = strings.ReplaceAll(msg, s, redactedUser)
		}
	}
	return &redactedError{msg: msg, err: err}
}
