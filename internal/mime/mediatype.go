// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"mime"
	"regexp"
	"strings"
)

// mediaTypeRe accepts a media type ("text/plain") or a disposition
// ("attachment") in the lenient fallback.
var mediaTypeRe = regexp.MustCompile(`^[a-z0-9!#$&^_.+-]+(/[a-z0-9!#$&^_.+-]+)?$`)

// parseMediaType splits a Content-Type or Content-Disposition value into its
// lower-case type and its parameters: by RFC 2045 with mime.ParseMediaType,
// which also joins and decodes RFC 2231 parameters, and else leniently. The
// type is "" when v has none; parameter values are not decoded further.
func parseMediaType(v string) (string, map[string]string) {
	if v == "" {
		return "", nil
	}
	if mt, params, err := mime.ParseMediaType(v); err == nil {
		return mt, params
	}
	return lenientMediaType(v)
}

// lenientMediaType reads what mime.ParseMediaType rejects, as mail clients
// do: unquoted specials in values (boundary=----=_Part_1), a missing ";"
// after the type, repeated parameters (the first wins), stray characters in
// the type, a missing subtype or type.
func lenientMediaType(v string) (string, map[string]string) {
	segs := splitUnquoted(v, ';')
	head := strings.TrimSpace(segs[0])
	first := 1 // segs[first:] are parameters
	if eq := strings.IndexByte(head, '='); eq >= 0 && !strings.Contains(head[:eq], "/") {
		head, first = "", 0 // a parameter where the type should be
	} else if i := strings.IndexAny(head, " \t"); i >= 0 {
		segs = append([]string{head[:i], head[i:]}, segs[1:]...)
		head = head[:i]
	}
	mt := strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			r += 'a' - 'A'
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$&^_.+-/", r) {
			return r
		}
		return -1 // quotes and other debris: "text/html\""
	}, head)
	switch {
	case mt == "text/":
		mt = "text/plain"
	case mt == "multipart/":
		mt = "multipart/mixed" // RFC 2046 §5.1.3
	case strings.HasSuffix(mt, "/"):
		mt = "application/octet-stream"
	}
	if !mediaTypeRe.MatchString(mt) {
		mt = ""
	}
	params := make(map[string]string)
	for _, p := range segs[first:] {
		k, val, ok := strings.Cut(p, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			continue
		}
		if _, dup := params[k]; !dup {
			params[k] = unquote(strings.TrimSpace(val))
		}
	}
	return mt, params
}

// splitUnquoted splits s at each sep outside quoted strings. A quote opens a
// quoted string only where a value starts, after "=": elsewhere it is debris
// (text/html").
func splitUnquoted(s string, sep byte) []string {
	var parts []string
	quoted, escaped := false, false
	start := 0
	var prev byte // the last byte outside quotes that is not white space
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case quoted:
			escaped = c == '\\'
			quoted = c != '"'
		case c == '"' && prev == '=':
			quoted = true
		case c == sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
		if c := s[i]; !quoted && c != ' ' && c != '\t' {
			prev = c
		}
	}
	return append(parts, s[start:])
}

// unquote removes the quotes around a parameter value and undoes its
// backslash escapes; an unbalanced quote is dropped.
func unquote(v string) string {
	if !strings.HasPrefix(v, `"`) {
		return strings.TrimSuffix(v, `"`)
	}
	v = strings.TrimSuffix(v[1:], `"`)
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
