// Package mime turns a raw RFC 5322 message into a mail.Message: decoded
// headers, the text and HTML bodies in UTF-8, and attachments with their data.
//
// Parsing never fails on malformed input. A message is parsed in these steps:
//
//  1. The top-level header block is split into fields in order (header.go).
//  2. enmime builds the MIME part tree and undoes transfer encodings; we keep
//     charset decoding for ourselves (charset.go).
//  3. The part tree is walked in document order to pick the bodies and list
//     the attachments (body.go, names.go).
//  4. Header fields are decoded (RFC 2047, raw 8-bit) into the message fields
//     (fields.go, address.go).
//
// Whatever had to be repaired is listed in Message.Warnings. The package is
// pure: no I/O, no shared state, safe for concurrent use.
package mime

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/inbucket/html2text"
	"github.com/jhillyerd/enmime/v2"
	"github.com/jhillyerd/enmime/v2/mediatype"

	"github.com/emaillistener/emaillistener/internal/mail"
)

const (
	// maxWarnings and maxWarningBytes bound Message.Warnings; see
	// boundWarnings.
	maxWarnings     = 50
	maxWarningBytes = 300
)

// ErrEmpty is returned for input without any content.
var ErrEmpty = errors.New("mime: empty message")

// mediaTypeRe accepts a media type ("text/plain") or a disposition
// ("attachment") in the lenient Content-Type fallback.
var mediaTypeRe = regexp.MustCompile(`^[a-z0-9!#$&^_.+-]+(/[a-z0-9!#$&^_.+-]+)?$`)

// Options tunes Parse. A nil *Options is the zero value: no limits.
type Options struct {
	// MaxAttachmentBytes is the largest decoded attachment whose data is
	// kept; bigger ones are listed with nil Data and a warning. 0 means no
	// limit.
	MaxAttachmentBytes int64
}

// Parse parses one raw message. It returns an error only when nothing usable
// can be produced: for empty input (ErrEmpty) and, as a safety net, when a
// dependency panics. Otherwise it returns a best-effort message whose
// MessageID is never empty. raw is not modified; attachment Data does not
// alias it.
func Parse(raw []byte, opts *Options) (msg *mail.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("mime: parser panic: %v", r)
		}
	}()
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, ErrEmpty
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	return parse(raw, o), nil
}

// parse does the work of Parse.
func parse(raw []byte, opts Options) *mail.Message {
	h, bodyStart := scanHeader(raw)
	msg := &mail.Message{Size: len(raw)}

	var c *collector
	var structureErr error
	var guard structureGuard
	root, err := newEnmimeParser(&guard).ReadParts(bytes.NewReader(raw))
	switch {
	case err != nil:
		structureErr = err
	case root.FirstChild == nil && strings.HasPrefix(root.ContentType, "multipart/") && root.Boundary != "":
		// Not one boundary line matched: the whole body is the preamble,
		// which enmime drops.
		structureErr = fmt.Errorf("no part found for boundary %q", root.Boundary)
		c = collect(root)
	default:
		c = collect(root)
	}

	fallback := ""
	if c != nil {
		fallback = c.fallbackCharset()
	}
	dec := newHeaderDecoder(fallback)
	fillHeaderFields(msg, h, dec, raw)

	a := &assembler{msg: msg, opts: opts, dec: dec}
	if c != nil {
		a.warnings = append(a.warnings, c.warnings...)
	}
	if guard.capped {
		a.warnings = append(a.warnings, fmt.Sprintf("more than %d multiparts; the rest kept unparsed", maxMultiparts))
	}
	if structureErr != nil {
		// Show the client something rather than nothing.
		text, w := decodeText(raw[bodyStart:], fallback, false)
		msg.Text = text
		a.warnings = append(a.warnings, fmt.Sprintf("mime structure unreadable (%v); body kept as text", structureErr))
		if w != "" {
			a.warnings = append(a.warnings, "body: "+w)
		}
	} else {
		a.attachments(a.bodies(c))
	}
	if msg.Text == "" && msg.HTML != "" {
		// The client may only show text; html2text is what enmime would use.
		if text, err := html2text.FromString(msg.HTML); err == nil {
			msg.Text = text
		}
	}
	msg.Warnings = boundWarnings(append(a.warnings, dec.warnings...))
	return msg
}

// boundWarnings caps the number and length of warnings: they quote header
// lines and part errors, which a hostile or broken message makes arbitrarily
// many and long (and not always UTF-8), and they are informational only.
func boundWarnings(ws []string) []string {
	if len(ws) > maxWarnings {
		more := len(ws) - maxWarnings
		ws = append(ws[:maxWarnings:maxWarnings], fmt.Sprintf("%d more warnings omitted", more))
	}
	for i, w := range ws {
		w = validUTF8([]byte(w)) // errors may quote raw input
		ws[i] = w
		if len(w) > maxWarningBytes {
			cut := maxWarningBytes
			for cut > 0 && !utf8.RuneStart(w[cut]) {
				cut--
			}
			ws[i] = w[:cut] + "…"
		}
	}
	return ws
}

// fillHeaderFields sets the header-derived fields of msg.
func fillHeaderFields(msg *mail.Message, h header, dec *headerDecoder, raw []byte) {
	msg.Headers = make([]mail.Header, 0, len(h))
	for _, f := range h {
		msg.Headers = append(msg.Headers, mail.Header{Name: validUTF8([]byte(f.name)), Value: dec.text(f.value)})
	}
	msg.Subject = dec.text(h.get("Subject"))

	from := dec.addressList("From", h.get("From"))
	if len(from) == 0 {
		from = dec.addressList("Sender", h.get("Sender"))
	}
	if len(from) > 0 {
		msg.From = from[0]
	}
	// A repeated header is malformed (RFC 5322 §3.6 allows one), but losing
	// recipients is worse than merging them.
	list := func(name string) []mail.Address {
		return dec.addressList(name, strings.Join(h.all(name), ", "))
	}
	msg.To = list("To")
	msg.Cc = list("Cc")
	msg.Bcc = list("Bcc")
	msg.ReplyTo = list("Reply-To")

	msg.Date = parseDate(h.get("Date"))
	if msg.Date.IsZero() && h.get("Date") != "" {
		dec.warnings = append(dec.warnings, fmt.Sprintf("Date: unparsable %q", dec.text(h.get("Date"))))
	}
	msg.MessageID = validUTF8([]byte(messageID(h.get("Message-ID"))))
	if msg.MessageID == "" {
		msg.MessageID = syntheticMessageID(raw)
	}
	msg.InReplyTo = validUTF8([]byte(h.get("In-Reply-To")))
	msg.References = validUTF8([]byte(collapseSpace(h.get("References"))))
	msg.Importance = importance(h)
}

// newEnmimeParser configures enmime for best effort: damaged parts are
// skipped or kept partially instead of failing the message, a multipart
// without boundary is read as one part, and charset handling is left to us.
func newEnmimeParser(g *structureGuard) *enmime.Parser {
	return enmime.NewParser(
		enmime.SkipMalformedParts(true),
		enmime.MultipartWOBoundaryAsSinglePart(true),
		enmime.SetReadPartErrorPolicy(func(*enmime.Part, error) bool { return true }),
		enmime.DisableCharacterDetection(true),
		enmime.DisableTextConversion(true),
		enmime.MaxStoredPartErrors(maxPartWarnings),
		enmime.SetCustomParseMediaType(g.mediaType),
	)
}

// structureGuard is enmime's media type parser for one message. It differs
// from enmime's own parser in three ways:
//
//   - A value enmime cannot parse still yields its type; enmime would drop
//     the part.
//   - Text parts are declared UTF-8, so that enmime passes their bytes
//     through untouched; decodeText applies the real charset later.
//   - After maxMultiparts distinct boundaries, further multiparts lose their
//     boundary and are read as single parts. enmime reads nested parts through
//     one stacked reader per level, byte by byte, and an unterminated nested
//     part makes that cost grow exponentially with depth: twenty levels in a
//     1 KB message take seconds. Real mail nests a handful of levels.
//
// enmime calls it for each part header in document order, on one goroutine.
type structureGuard struct {
	boundaries map[string]bool
	capped     bool // a multipart was flattened
}

func (g *structureGuard) mediaType(v string) (string, map[string]string, []string, error) {
	mt, params, invalid, err := mediatype.ParseWithOptions(v, mediatype.ParseOptions{StripMediaTypeInvalidCharacters: true})
	if err != nil {
		mt, params = lenientMediaType(v)
		invalid = nil
	}
	switch {
	case strings.HasPrefix(mt, "text/"):
		if params == nil {
			params = make(map[string]string)
		}
		params["charset"] = "utf-8"
	case strings.HasPrefix(mt, "multipart/") && params["boundary"] != "":
		b := params["boundary"]
		if g.boundaries == nil {
			g.boundaries = make(map[string]bool)
		}
		if !g.boundaries[b] && len(g.boundaries) >= maxMultiparts {
			delete(params, "boundary")
			g.capped = true
			break
		}
		g.boundaries[b] = true
	}
	return mt, params, invalid, nil
}

// lenientMediaType splits "type/sub; k=v; …" without any validation beyond
// the type token, for values the MIME parsers reject.
func lenientMediaType(v string) (string, map[string]string) {
	parts := strings.Split(v, ";")
	mt := strings.ToLower(strings.TrimSpace(parts[0]))
	if !mediaTypeRe.MatchString(mt) {
		mt = ""
	}
	params := make(map[string]string)
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(p, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			continue
		}
		if _, dup := params[k]; !dup {
			params[k] = strings.Trim(strings.TrimSpace(val), `"`)
		}
	}
	return mt, params
}

// declaredCharset returns the charset parameter of a part's Content-Type as
// sent (enmime only sees the UTF-8 we substitute).
func declaredCharset(p *enmime.Part) string {
	v := p.Header.Get("Content-Type")
	if v == "" {
		return ""
	}
	_, params, _, err := mediatype.Parse(v)
	if err != nil {
		_, params = lenientMediaType(v)
	}
	return params["charset"]
}
