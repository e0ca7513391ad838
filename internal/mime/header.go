// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Header notes.
//
// The top-level header block is split here (RFC 5322 §2.2) rather than by
// go-message, whose textproto.ReadHeader rejects the whole block at the first
// line without a colon: a field starts with a name and a colon, continues on
// lines starting with white space, and the block ends at the first empty line.
// A line without a colon is an unindented continuation, a common mailer bug.
// repairPartHeaders (tree.go) applies the same rules to part headers.

// encodedWordRe matches one RFC 2047 encoded word, tolerating what Go's strict
// decoder refuses: missing base64 padding and spaces in the encoded text.
var encodedWordRe = regexp.MustCompile(`=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=`)

// field is one header field with its value unfolded but not decoded.
type field struct {
	name  string
	value string
}

// header is a header block in message order.
type header []field

// get returns the first value of the named field, or "".
func (h header) get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			return f.value
		}
	}
	return ""
}

// all returns every value of the named field in order.
func (h header) all(name string) []string {
	var vs []string
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			vs = append(vs, f.value)
		}
	}
	return vs
}

// scanHeader splits the header block at the start of raw into fields and
// returns the offset at which the body starts (len(raw) when there is none).
// Folded lines are joined with a single space, as net/textproto does.
func scanHeader(raw []byte) (header, int) {
	var h header
	var cur *strings.Builder
	flush := func() {
		if cur != nil {
			h[len(h)-1].value = strings.TrimSpace(cur.String())
			cur = nil
		}
	}
	pos := 0
	for pos < len(raw) {
		end := bytes.IndexByte(raw[pos:], '\n')
		next := len(raw)
		if end >= 0 {
			end += pos
			next = end + 1
		} else {
			end = len(raw)
		}
		line := bytes.TrimRight(raw[pos:end], "\r")
		if len(bytes.TrimSpace(line)) == 0 && (len(line) == 0 || cur == nil) {
			// The empty line ends the header. A whitespace-only line after a
			// field is an (empty) continuation per RFC 5322 obs-FWS, but
			// before any field it can only be the separator.
			flush()
			return h, next
		}
		switch {
		case line[0] == ' ' || line[0] == '\t':
			if cur != nil {
				cur.WriteByte(' ')
				cur.Write(bytes.TrimSpace(line))
			}
		case validFieldName(line):
			flush()
			colon := bytes.IndexByte(line, ':')
			name := string(bytes.TrimRight(line[:colon], " \t"))
			h = append(h, field{name: name})
			cur = &strings.Builder{}
			cur.Write(bytes.TrimSpace(line[colon+1:]))
		case len(h) == 0 && bytes.HasPrefix(line, []byte("From ")):
			// An mbox separator from a saved mailbox; not a field.
		case len(h) == 0 && bytes.IndexByte(line, ':') < 0:
			// Text before any field: this is not a header block at all. A
			// line with a colon but no valid name is a broken field, dropped
			// like one after other fields.
			return nil, 0
		case bytes.IndexByte(line, ':') < 0 && cur != nil:
			cur.WriteByte(' ')
			cur.Write(bytes.TrimSpace(line))
		}
		pos = next
	}
	flush()
	return h, len(raw)
}

// validFieldName reports whether line starts with an RFC 5322 field name
// (printable ASCII but colon) followed by a colon, allowing the white space
// before the colon that some mailers emit.
func validFieldName(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false
	}
	name := bytes.TrimRight(line[:colon], " \t")
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// headerDecoder turns raw header text into UTF-8.
type headerDecoder struct {
	// fallback is the charset assumed for raw 8-bit header bytes: the
	// message's own body charset when it declares one, since the same mailer
	// wrote both.
	fallback string
	wd       mime.WordDecoder
	warnings []string
}

// newHeaderDecoder returns a decoder whose RFC 2047 charset conversion never
// fails: Go's decoder rejects the whole header when one word has an unknown
// charset, and we would rather sniff that word.
func newHeaderDecoder(fallback string) *headerDecoder {
	d := &headerDecoder{fallback: fallback}
	d.wd.CharsetReader = func(label string, r io.Reader) (io.Reader, error) {
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		s, _ := decodeText(b, label, false)
		return strings.NewReader(s), nil
	}
	return d
}

// text decodes a header value: raw 8-bit bytes, then RFC 2047 encoded words.
func (d *headerDecoder) text(v string) string {
	v = d.utf8(v)
	if !strings.Contains(v, "=?") {
		return v
	}
	out, err := d.wd.DecodeHeader(v)
	if err != nil {
		out = v
	}
	if strings.Contains(out, "=?") {
		out = d.lenientWords(out)
	}
	return validUTF8([]byte(out))
}

// utf8 converts raw 8-bit header bytes (RFC 6532 allows UTF-8; older mailers
// send their local charset unencoded) to UTF-8.
func (d *headerDecoder) utf8(v string) string {
	if utf8.ValidString(v) {
		return v
	}
	s, _ := decodeText([]byte(v), d.fallback, false)
	return s
}

// lenientWords decodes encoded words that Go's decoder left alone because they
// are malformed (unpadded base64, bad QP). Adjacent words separated only by
// white space are joined, as RFC 2047 §6.2 requires.
func (d *headerDecoder) lenientWords(s string) string {
	var b strings.Builder
	last := 0
	prevWordEnd := -1
	for _, m := range encodedWordRe.FindAllStringSubmatchIndex(s, -1) {
		decoded, ok := decodeWord(s[m[2]:m[3]], s[m[4]:m[5]], s[m[6]:m[7]])
		if !ok {
			continue
		}
		between := s[last:m[0]]
		if !(prevWordEnd == last && strings.TrimSpace(between) == "") {
			b.WriteString(between)
		}
		b.WriteString(decoded)
		last = m[1]
		prevWordEnd = m[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

// decodeWord decodes the text of one encoded word.
func decodeWord(charset, enc, text string) (string, bool) {
	if i := strings.IndexByte(charset, '*'); i >= 0 {
		charset = charset[:i] // RFC 2231 §5 language suffix
	}
	var raw []byte
	switch enc {
	case "b", "B":
		text = strings.TrimRight(strings.Join(strings.Fields(text), ""), "=")
		var err error
		raw, err = base64.RawStdEncoding.DecodeString(text)
		if err != nil {
			return "", false
		}
	default:
		text = strings.ReplaceAll(text, "_", " ")
		var err error
		raw, err = io.ReadAll(quotedprintable.NewReader(strings.NewReader(text)))
		if err != nil && len(raw) == 0 {
			return "", false
		}
	}
	s, _ := decodeText(raw, charset, false)
	return s, true
}

// HeaderBlock cuts a message, or a prefix of one (a download stopped at a
// size limit), to its header block: through the first blank line, or else
// through its last complete line, so that a header-only message never ends
// in half a field.
func HeaderBlock(raw []byte) []byte {
	end := -1
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		end = i + 4
	}
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 && (end < 0 || i+2 < end) {
		end = i + 2
	}
	if end >= 0 {
		return raw[:end]
	}
	return raw[:bytes.LastIndexByte(raw, '\n')+1]
}
