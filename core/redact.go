package core

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Redacted is what RedactURL and RedactHeader put in place of a secret.
const Redacted = "REDACTED"

// RedactURL returns rawURL fit for a log line or an error message: the
// value of every query parameter is replaced by Redacted (short, name-like
// keys are kept: "?room=REDACTED&token=REDACTED"), a query part that is not
// such a key=value pair (a bare token, "?eyJhbGci...") becomes Redacted
// whole, the password of the user info is redacted, and so is a user name
// given without a password (an API key passed as "key@host"). A fragment
// is dropped. Every query value is redacted, not only those with
// well-known names, because tokens travel under any name (token,
// access_token, sig, key, ...). A URL that does not parse is cut at its
// user info and at its first '?' or '#'. tether builds every error and
// event that mentions a URL with it.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return redactUnparsed(rawURL)
	}
	return redactParsed(u)
}

func redactParsed(u *url.URL) string {
	r := *u
	if r.User != nil {
		if _, ok := r.User.Password(); ok {
			r.User = url.UserPassword(r.User.Username(), Redacted)
		} else {
			r.User = url.User(Redacted)
		}
	}
	if r.RawQuery != "" {
		var keys []string
		opaque := false
		for _, part := range strings.Split(r.RawQuery, "&") {
			k, _, hasValue := strings.Cut(part, "=")
			name, err := url.QueryUnescape(k)
			if !hasValue || err != nil || !nameLike(name) {
				opaque = opaque || part != ""
				continue
			}
			if kept := url.QueryEscape(name) + "=" + Redacted; !slices.Contains(keys, kept) {
				keys = append(keys, kept)
			}
		}
		slices.Sort(keys)
		if opaque {
			keys = append(keys, Redacted)
		}
		r.RawQuery = strings.Join(keys, "&")
	}
	r.Fragment, r.RawFragment = "", ""
	return r.String()
}

// nameLike reports whether a query key looks like a parameter's name
// rather than a secret: at most 32 letters, digits and "_-.[]".
func nameLike(k string) bool {
	if k == "" || len(k) > 32 {
		return false
	}
	for _, c := range k {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_' || c == '-' || c == '.' || c == '[' || c == ']':
		default:
			return false
		}
	}
	return true
}

// redactUnparsed cuts a URL that url.Parse refused: everything from the
// first '?' or '#' goes, and so does user info (up to the last '@' of the
// authority).
func redactUnparsed(s string) string {
	cut := false
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s, cut = s[:i], true
	}
	rest := s
	prefix := ""
	if i := strings.Index(s, "//"); i >= 0 {
		prefix, rest = s[:i+2], s[i+2:]
	}
	authority := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority = rest[:i]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		rest = Redacted + "@" + rest[i+1:]
	}
	s = prefix + rest
	if cut {
		s += "?" + Redacted
	}
	return s
}

// secretHeaders are the request and response headers that carry
// credentials, in canonical form.
var secretHeaders = map[string]bool{
	"Authorization":          true,
	"Proxy-Authorization":    true,
	"Cookie":                 true,
	"Set-Cookie":             true,
	"Sec-Websocket-Protocol": true, // browsers cannot set Authorization: bearer tokens ride here
	"X-Api-Key":              true,
	"X-Auth-Token":           true,
}

// RedactHeader returns a copy of h fit for a log line: the values of
// Authorization, Proxy-Authorization, Cookie, Set-Cookie,
// Sec-WebSocket-Protocol (where browser clients put bearer tokens),
// X-Api-Key and X-Auth-Token are replaced by Redacted. Other headers are
// copied as they are. A nil h gives nil.
func RedactHeader(h http.Header) http.Header {
	if h == nil {
		return nil
	}
	out := make(http.Header, len(h))
	for k, vs := range h {
		if secretHeaders[http.CanonicalHeaderKey(k)] {
			red := make([]string, len(vs))
			for i := range red {
				red[i] = Redacted
			}
			out[k] = red
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// redactedError is an error whose message had a URL redacted; the chain
// under it is unchanged, for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactError returns err with every occurrence of raw (and of its
// parsed, re-encoded forms) in its message replaced by its redacted form.
func redactError(err error, raw string, forms ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := RedactURL(raw)
	changed := false
	var ue *url.Error
	if errors.As(err, &ue) && ue.URL != "" {
		// url.Error quotes the URL, escaping what it holds: replace its
		// quoted form, whatever the raw one looked like.
		q := strconv.Quote(ue.URL)
		if strings.Contains(msg, q) {
			msg = strings.ReplaceAll(msg, q, strconv.Quote(RedactURL(ue.URL)))
			changed = true
		}
	}
	for _, s := range append([]string{raw}, forms...) {
		if s != "" && s != red && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, red)
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &redactedError{msg: msg, err: err}
}
