// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// rfc2231Re matches one (possibly continued, possibly extended) parameter,
// RFC 2231 §3-4: name*0*=utf-8'ru'%D0%9E or name*1="tail".
var rfc2231Re = regexp.MustCompile(`(?i)(?:^|;)\s*([a-z0-9_-]+)\*(\d+)?(\*)?\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)`)

// attachmentName returns a usable file name for an attachment: the decoded
// name the sender gave, else one made from the content: "<subject>.eml" for a
// forwarded message, "winmail.dat" for TNEF, "attachment-<n>.<ext>" otherwise.
func (a *assembler) attachmentName(p *part, ct string, n int) string {
	// RFC 2231 names are decoded here first: mime.ParseMediaType drops a
	// name in any charset but UTF-8 and the lenient fallback keeps it
	// encoded. RFC 6266 §4.3 also prefers filename* to filename.
	name := rfc2231Param(p.rawDisp, "filename")
	if name == "" {
		name = rfc2231Param(p.rawType, "name")
	}
	if name == "" {
		name = p.fileName
	}
	if name = cleanFileName(a.dec.text(name)); name != "" {
		return name
	}
	switch ct {
	case "message/rfc822", "message/global":
		h, _ := scanHeader(p.content)
		subject := sanitizeName(a.dec.text(h.get("Subject")))
		if subject == "" {
			subject = "message"
		}
		return subject + ".eml"
	case "application/ms-tnef", "application/vnd.ms-tnef":
		return "winmail.dat"
	}
	return fmt.Sprintf("attachment-%d%s", n, extension(ct))
}

// extension returns a file extension for common attachment types. A fixed
// table rather than mime.ExtensionsByType, whose answer depends on the host's
// mime.types files.
func extension(ct string) string {
	switch ct {
	case "text/plain", "message/delivery-status", "message/disposition-notification", "text/rfc822-headers":
		return ".txt"
	case "text/html":
		return ".html"
	case "text/calendar":
		return ".ics"
	case "text/csv":
		return ".csv"
	case "text/vcard", "text/x-vcard":
		return ".vcf"
	case "image/png":
		return ".png"
	case "image/jpeg", "image/jpg", "image/pjpeg":
		return ".jpg"
	case "image/gif":
		return ".gif"
	case "image/bmp":
		return ".bmp"
	case "image/webp":
		return ".webp"
	case "image/svg+xml":
		return ".svg"
	case "application/pdf":
		return ".pdf"
	case "application/zip":
		return ".zip"
	case "application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature":
		return ".sig"
	case "message/rfc822":
		return ".eml"
	}
	return ".bin"
}

// cleanFileName makes a sender-supplied name safe to store: only the last path
// element (some clients send "C:\Users\…\file.pdf"), no control characters,
// bounded length.
func cleanFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	return truncateRunes(strings.TrimSpace(name), maxNameRunes)
}

// sanitizeName turns free text (a subject) into a file name base: characters
// that Windows forbids become "_", as Thunderbird does when saving mail.
func sanitizeName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsControl(r):
			return ' '
		case strings.ContainsRune(`/\:*?"<>|`, r):
			return '_'
		}
		return r
	}, s)
	s = strings.Trim(collapseSpace(s), " .")
	return truncateRunes(s, maxNameRunes-len(".eml"))
}

// truncateRunes cuts s to at most n runes.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return strings.TrimSpace(string([]rune(s)[:n]))
}

// rfc2231Param decodes parameter param of a header value by RFC 2231 when the
// standard parser could not: Go's mime package only understands UTF-8 and
// US-ASCII there, while older clients send windows-1251 or ISO-8859-1.
func rfc2231Param(v, param string) string {
	if !strings.Contains(v, "*") {
		return ""
	}
	type section struct {
		n        int
		extended bool
		value    string
	}
	var secs []section
	for _, m := range rfc2231Re.FindAllStringSubmatch(v, -1) {
		if !strings.EqualFold(m[1], param) {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		// A quoted section is kept exactly, white space at its ends included:
		// continuations split names anywhere, also just after a space
		// (filename*0="Report delivered "; filename*1="equipment.pdf").
		val := strings.TrimSpace(m[4])
		if strings.HasPrefix(val, `"`) {
			val = unquote(val)
		}
		secs = append(secs, section{n: n, extended: m[3] != "" || m[2] == "", value: val})
	}
	if len(secs) == 0 {
		return ""
	}
	sort.SliceStable(secs, func(i, j int) bool { return secs[i].n < secs[j].n })
	charset := ""
	var raw []byte
	for i, s := range secs {
		val := s.value
		if !s.extended {
			raw = append(raw, val...)
			continue
		}
		if i == 0 {
			// charset'language'value
			if parts := strings.SplitN(val, "'", 3); len(parts) == 3 {
				charset, val = parts[0], parts[2]
			}
		}
		raw = append(raw, percentDecode(val)...)
	}
	s, _ := decodeText(raw, charset, false)
	return s
}

// percentDecode undoes %XX escapes, keeping malformed ones as they are.
func percentDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			out = append(out, byte(v))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return out
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// cidRefs collects the targets of cid: URLs in an HTML body, lower-cased and
// URL-unescaped (RFC 2392 §2).
func cidRefs(html string) map[string]bool {
	refs := make(map[string]bool)
	for i := 0; i+4 <= len(html); {
		j := indexFold(html[i:], "cid:")
		if j < 0 {
			break
		}
		start := i + j + 4
		end := start
		for end < len(html) && !strings.ContainsRune("\"'()<> \t\r\n", rune(html[end])) {
			end++
		}
		ref := html[start:end]
		if u, err := url.PathUnescape(ref); err == nil {
			ref = u
		}
		refs[strings.ToLower(ref)] = true
		i = end
	}
	return refs
}

// indexFold is strings.Index for an ASCII needle, ignoring case.
func indexFold(s, substr string) int {
	for i := 0; i+len(substr) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(substr)], substr) {
			return i
		}
	}
	return -1
}
