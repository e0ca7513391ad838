// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/cention-sany/utf7"
	"github.com/gogs/chardet"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
)

// Charset handling notes.
//
// We do charset decoding ourselves instead of leaving it to the MIME library:
// go-message converts through a process-wide hook (message.CharsetReader, a
// global we leave unset; transfer.go shows it no charset at all), and enmime,
// used before it, ran a statistical detector over every text part and
// preferred its guess over the declared charset when it was confident. On
// short Cyrillic and CJK bodies those guesses are often wrong, which turns
// correctly labelled mail into mojibake. Mail clients trust the declared
// label (RFC 2046 §4.1.2), and so do we. We only sniff when the label is
// missing, unknown, or contradicted by the bytes (UTF-8 sent as "us-ascii", a
// body labelled windows-1251 that is valid UTF-8, "unknown-8bit").
//
// Every function here returns valid UTF-8 and never fails: the last resort is
// windows-1252, which maps every byte.

const (
	// sniffLimit caps how much of a body is fed to the charset detector; the
	// detector is linear but not cheap, and the first 64 KiB decide as well as
	// the whole of a multi-megabyte text.
	sniffLimit = 64 << 10
	// metaSearchLimit is how far into an HTML body we look for <meta charset>.
	// Outlook puts large <style> blocks before it, so WHATWG's 1024 bytes are
	// too few.
	metaSearchLimit = 16 << 10
)

var (
	// winCodepageRe matches the many spellings of Windows code pages that are
	// not WHATWG labels: "cp-1251", "win-1251", "windows1251", "ms1252".
	winCodepageRe = regexp.MustCompile(`^(?:windows|win|cp|ms|ansi)[-_ ]?(12[5][0-8])$`)
	// metaCharsetRe finds the charset of <meta charset=…> and of
	// <meta http-equiv="Content-Type" content="text/html; charset=…">.
	metaCharsetRe = regexp.MustCompile(`(?i)<meta[^>]*?charset\s*=\s*["']?\s*([a-z0-9_.:-]+)`)
)

// lookupCharset returns the decoder for a MIME charset label and its canonical
// lower-case name, or nil when the label is unknown. Labels are matched like
// browsers do (WHATWG), which also maps "iso-8859-1" and "us-ascii" to their
// windows-1252 superset and "gb2312" to GBK, plus a few common misspellings.
func lookupCharset(label string) (encoding.Encoding, string) {
	label = normalizeLabel(label)
	switch label {
	case "":
		return nil, ""
	case "utf-7", "utf7", "unicode-1-1-utf-7", "csunicode11utf7":
		// RFC 2152; old Outlook Express sent it. Not a WHATWG encoding.
		return utf7.UTF7, "utf-7"
	}
	candidates := []string{label}
	if m := winCodepageRe.FindStringSubmatch(label); m != nil {
		candidates = append(candidates, "windows-"+m[1])
	}
	if rest, ok := strings.CutPrefix(label, "x-"); ok {
		candidates = append(candidates, rest)
	}
	candidates = append(candidates,
		strings.ReplaceAll(label, "_", "-"),
		strings.ReplaceAll(label, "-", ""), // "gb-18030" from the detector
	)
	for _, c := range candidates {
		e, err := htmlindex.Get(c)
		if err != nil {
			continue
		}
		name, _ := htmlindex.Name(e)
		if name == "replacement" {
			// WHATWG maps ISO-2022-KR and friends to an encoding that
			// decodes everything to U+FFFD; sniffing does better.
			return nil, ""
		}
		return e, name
	}
	// IANA knows more legacy names (IBM code pages, Mac encodings).
	if e, err := ianaindex.MIME.Encoding(label); err == nil && e != nil {
		name, _ := ianaindex.MIME.Name(e)
		return e, strings.ToLower(name)
	}
	return nil, ""
}

// normalizeLabel lower-cases a charset label and strips the quotes and
// parameter junk that broken mailers leave in it (`"utf-8"`, `utf-8;`).
func normalizeLabel(label string) string {
	label = strings.ToLower(strings.TrimSpace(label))
	label = strings.Trim(label, "\"' ;,")
	if label == "utf8mb4" || label == "utf8" {
		return "utf-8"
	}
	return label
}

// isUTF8Family reports whether a label means "ASCII or UTF-8": for those the
// bytes decide, because mislabelled UTF-8 is the most common charset error.
func isUTF8Family(label string) bool {
	switch normalizeLabel(label) {
	case "", "utf-8", "us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us", "us", "7bit", "8bit":
		return true
	}
	return false
}

// decodeText converts b, labelled with charset label, to UTF-8. isHTML enables
// <meta charset> lookup when the label is missing. The returned warning is empty
// unless the label could not be trusted.
func decodeText(b []byte, label string, isHTML bool) (string, string) {
	if isUTF8Family(label) {
		if utf8.Valid(b) {
			return string(b), ""
		}
		if normalizeLabel(label) == "utf-8" && hasMultibyteUTF8(b) {
			// Real UTF-8 with a few damaged bytes: keep it, mark the damage.
			return strings.ToValidUTF8(string(b), "\uFFFD"), "invalid UTF-8 bytes replaced"
		}
		return sniffText(b, label, isHTML)
	}
	enc, name := lookupCharset(label)
	if enc == nil {
		if utf8.Valid(b) {
			return string(b), fmt.Sprintf("unknown charset %q; content is UTF-8", label)
		}
		return sniffText(b, label, isHTML)
	}
	if !strings.HasPrefix(name, "utf-16") && hasMultibyteUTF8(b) && utf8.Valid(b) {
		// Legacy-charset text is practically never valid UTF-8 once it has
		// non-ASCII bytes, while UTF-8 mislabelled by a web form is common.
		return string(b), fmt.Sprintf("charset %q declared but content is UTF-8", label)
	}
	out, err := enc.NewDecoder().Bytes(b)
	if err != nil {
		return sniffText(b, label, isHTML)
	}
	return validUTF8(out), ""
}

// sniffText guesses the charset of b: HTML <meta>, then the statistical
// detector, then windows-1252.
func sniffText(b []byte, label string, isHTML bool) (string, string) {
	why := "no charset declared"
	if label != "" {
		why = fmt.Sprintf("charset %q does not fit the content", label)
	}
	if isHTML {
		if meta := htmlMetaCharset(b); meta != "" && !isUTF8Family(meta) {
			if enc, name := lookupCharset(meta); enc != nil {
				if out, err := enc.NewDecoder().Bytes(b); err == nil {
					return validUTF8(out), fmt.Sprintf("%s; used %s from <meta>", why, name)
				}
			}
		}
	}
	name := detectCharset(b, isHTML)
	if enc, canon := lookupCharset(name); enc != nil {
		if out, err := enc.NewDecoder().Bytes(b); err == nil {
			return validUTF8(out), fmt.Sprintf("%s; detected %s", why, canon)
		}
	}
	out, _ := charmap.Windows1252.NewDecoder().Bytes(b)
	return validUTF8(out), fmt.Sprintf("%s; assumed windows-1252", why)
}

// detectCharset runs the statistical detector over (a prefix of) b and returns
// the best label, or "" when nothing was recognised. Ties are broken by name:
// the detector runs its recognisers concurrently and would otherwise return
// equal-confidence results in a random order.
func detectCharset(b []byte, isHTML bool) string {
	if len(b) > sniffLimit {
		b = b[:sniffLimit]
	}
	d := chardet.NewTextDetector()
	if isHTML {
		d = chardet.NewHtmlDetector()
	}
	results, err := d.DetectAll(b)
	if err != nil || len(results) == 0 {
		return ""
	}
	best := results[0]
	for _, r := range results[1:] {
		if r.Confidence > best.Confidence || r.Confidence == best.Confidence && r.Charset < best.Charset {
			best = r
		}
	}
	return best.Charset
}

// htmlMetaCharset returns the charset an HTML document declares for itself.
func htmlMetaCharset(b []byte) string {
	if len(b) > metaSearchLimit {
		b = b[:metaSearchLimit]
	}
	if m := metaCharsetRe.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// hasMultibyteUTF8 reports whether b contains at least one well-formed
// multi-byte UTF-8 sequence.
func hasMultibyteUTF8(b []byte) bool {
	for len(b) > 0 {
		i := bytes.IndexFunc(b, func(r rune) bool { return r >= utf8.RuneSelf })
		if i < 0 {
			return false
		}
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			return true
		}
		b = b[i+size:]
	}
	return false
}

// validUTF8 returns b as a string, replacing invalid sequences.
func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
