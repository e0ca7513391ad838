// SPDX-License-Identifier: Apache-2.0

// Package mime turns a raw RFC 5322 message into a mail.Message: decoded
// headers, the text and HTML bodies in UTF-8, and attachments with their data.
//
// Parsing never fails on malformed input. A message is parsed in these steps:
//
//  1. The top-level header block is split into fields in order (header.go).
//  2. go-message reads the MIME part tree and undoes transfer encodings, with
//     lenient fallbacks where it gives up (tree.go, transfer.go); media types
//     (mediatype.go) and charsets (charset.go) are ours.
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
	"strings"
	"unicode/utf8"

	"github.com/inbucket/html2text"

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
	t, structureErr := readStructure(h, bodyStart, raw)
	if t != nil {
		c = collect(t)
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
		// The client may only show text.
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
