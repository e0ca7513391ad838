// SPDX-License-Identifier: Apache-2.0

package compose

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	gomime "mime"
	netmail "net/mail"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/inbucket/html2text"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Implementation notes for Build:
//   - MIME encoding (quoted-printable, base64, RFC 2047 words, RFC 2231
//     parameters, header folding) is done by go-message and the standard mime
//     package; this file only decides the structure and the header fields.
//   - go-message writes a header's fields in the reverse order they were added,
//     so fields are collected in display order and added back to front
//     (newHeader). Multipart boundaries are chosen here rather than by
//     go-message, which would otherwise move Content-Type to the top.
//   - No value coming from the client reaches a header unchecked: names must be
//     RFC 5322 field names, CR and LF are removed from values (header
//     injection), and fields the builder owns cannot be overridden.

// ErrInvalidHeader means msg.Headers has a field name that is not an RFC 5322
// field name (printable ASCII without ':' or spaces).
var ErrInvalidHeader = errors.New("compose: invalid header field name")

// dateLayout is RFC 5322 §3.3 date-time.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// fallbackIDDomain is the right-hand side of a generated Message-ID when the
// message has no usable sender domain (RFC 2606 reserves .invalid).
const fallbackIDDomain = "emaillistener.invalid"

// ownedHeaders are always written by Build itself, or (Bcc) must never be
// written: a Bcc field would show the blind copies to every recipient.
// msg.Headers entries with these names are dropped so they cannot duplicate or
// contradict Build's own. MessageId is Creatio's internal name for the
// Message-ID (docs/CREATIO-PROTOCOL.md §10.2). Reply-To, In-Reply-To and
// References from msg.Headers are dropped only when Build writes them from
// msg's fields.
var ownedHeaders = map[string]bool{
	"message-id": true, "messageid": true, "from": true, "to": true, "cc": true, "bcc": true,
	"subject": true, "date": true, "importance": true, "x-priority": true, "mime-version": true,
	"content-type": true, "content-transfer-encoding": true, "content-disposition": true,
	"content-id": true, "return-path": true, "received": true,
}

// field is one header field in display order.
type field struct{ name, value string }

// part is one MIME entity of the message tree.
type part struct {
	fields   []field
	body     []byte
	children []*part
}

// Build renders msg as an RFC 5322 message, dated now unless msg.Date is set.
// msg is not modified. The structure is, from the outside in:
//
//	multipart/mixed            only with attachments
//	  multipart/related        only with HTML and inline parts (RFC 2387)
//	    multipart/alternative  text/plain + text/html; the text is derived from
//	                           the HTML when msg.Text is empty
//	    inline parts           Content-ID: <id>, Content-Disposition: inline
//	  attachments              base64, Content-Disposition: attachment
//
// Without HTML the body is a single text/plain part. Text is quoted-printable
// UTF-8. Bcc recipients are not written (Recipients lists them for the
// envelope). msg.MessageID is used as is, angle brackets added when missing;
// only an empty one is generated, as <random@sender-domain>. Build fails with
// ErrInvalidHeader when msg.Headers has an unusable field name.
func Build(msg *mail.Message, now time.Time) ([]byte, error) {
	if msg == nil {
		return nil, errors.New("sender: nil message")
	}
	fields, err := messageFields(msg, now)
	if err != nil {
		return nil, err
	}
	root := bodyTree(msg)
	fields = append(fields, field{"MIME-Version", "1.0"})
	fields = append(fields, root.fields...)

	var buf bytes.Buffer
	buf.Grow(sizeHint(msg)) // a 35 MB attachment would otherwise be copied up the buffer's doublings
	w, err := message.CreateWriter(&buf, newHeader(fields))
	if err != nil {
		return nil, fmt.Errorf("sender: build message: %w", err)
	}
	if err := writeBody(w, root); err != nil {
		return nil, fmt.Errorf("sender: build message: %w", err)
	}
	return buf.Bytes(), nil
}

// sizeHint estimates the built message's size: base64 with line breaks is 4/3
// × 78/76 of the data, quoted-printable text somewhat more than the text, and
// a few KiB of header fields.
func sizeHint(msg *mail.Message) int {
	n := 8 << 10
	for _, a := range msg.Attachments {
		n += len(a.Data)/57*78 + 80 + 512
	}
	return n + (len(msg.HTML)+len(msg.Text))*9/8
}

// newHeader builds a go-message header that writes fields in the given order.
func newHeader(fields []field) message.Header {
	var h message.Header
	for i := len(fields) - 1; i >= 0; i-- {
		h.Add(fields[i].name, fields[i].value)
	}
	return h
}

// writeBody writes p's body or, for a multipart entity, its children into w,
// and closes w.
func writeBody(w *message.Writer, p *part) error {
	if len(p.children) == 0 {
		if _, err := w.Write(p.body); err != nil {
			return err
		}
		return w.Close()
	}
	for _, c := range p.children {
		cw, err := w.CreatePart(newHeader(c.fields))
		if err != nil {
			return err
		}
		if err := writeBody(cw, c); err != nil {
			return err
		}
	}
	return w.Close()
}

// messageFields returns the message-level header fields in display order.
func messageFields(msg *mail.Message, now time.Time) ([]field, error) {
	date := msg.Date
	if date.IsZero() {
		date = now
	}
	fs := []field{{"Date", date.Format(dateLayout)}}
	add := func(name, value string) {
		if value != "" {
			fs = append(fs, field{name, value})
		}
	}
	add("From", formatAddresses([]mail.Address{msg.From}))
	add("Reply-To", formatAddresses(msg.ReplyTo))
	add("To", formatAddresses(msg.To))
	add("Cc", formatAddresses(msg.Cc))
	fs = append(fs, field{"Subject", encodeText(OneLine(msg.Subject))}, field{"Message-ID", messageID(msg)})
	add("In-Reply-To", msgIDList(msg.InReplyTo))
	add("References", msgIDList(msg.References))
	fs = append(fs, importanceFields(msg.Importance)...)
	written := make(map[string]bool, len(fs))
	for _, f := range fs {
		written[strings.ToLower(f.name)] = true
	}
	for _, h := range msg.Headers {
		name := strings.TrimSpace(h.Name)
		if !validFieldName(name) {
			return nil, fmt.Errorf("%w: %q", ErrInvalidHeader, h.Name)
		}
		if key := strings.ToLower(name); ownedHeaders[key] || written[key] {
			continue
		}
		fs = append(fs, field{name, encodeText(OneLine(h.Value))})
	}
	return fs, nil
}

// importanceFields maps Creatio's Importance to the Importance field (RFC 2156)
// Outlook reads and the X-Priority most other clients read. None writes
// nothing, so the receiving client shows its default.
func importanceFields(imp mail.Importance) []field {
	switch imp {
	case mail.ImportanceHigh:
		return []field{{"Importance", "high"}, {"X-Priority", "1 (Highest)"}}
	case mail.ImportanceLow:
		return []field{{"Importance", "low"}, {"X-Priority", "5 (Lowest)"}}
	case mail.ImportanceNormal:
		return []field{{"Importance", "normal"}, {"X-Priority", "3 (Normal)"}}
	default:
		return nil
	}
}

// messageID returns msg.MessageID in angle brackets, or a new random one on the
// sender's domain.
func messageID(msg *mail.Message) string {
	id := strings.Join(strings.Fields(OneLine(msg.MessageID)), "")
	if id = strings.Trim(id, "<>"); id != "" && len(id) <= maxHeaderWord-2 {
		return "<" + id + ">"
	}
	// None, or one too long for a header line (it could not be folded):
	// a fresh one, as for a message without id.
	domain := fallbackIDDomain
	if _, d, ok := strings.Cut(msg.From.Address, "@"); ok && d != "" && !strings.ContainsAny(d, "<>@ \t\r\n") {
		domain = d
	}
	return "<" + newUUID() + "@" + domain + ">"
}

// msgIDList is In-Reply-To or References on one line, without ids too long to
// fit on a header line (they cannot be folded; no mail system issues them).
func msgIDList(v string) string {
	ws := strings.Fields(OneLine(v))
	ws = slices.DeleteFunc(ws, func(w string) bool { return len(w) > maxHeaderWord })
	return strings.Join(ws, " ")
}

// newUUID returns a random (version 4) UUID, the shape Creatio itself uses for
// Message-IDs (docs/CREATIO-PROTOCOL.md §10.2).
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// validFieldName reports whether name is an RFC 5322 §3.6.8 field name:
// printable US-ASCII except ':'.
func validFieldName(name string) bool {
	if name == "" || len(name) > maxFieldName {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < '!' || c > '~' || c == ':' {
			return false
		}
	}
	return true
}

// maxFieldName bounds the name of a client-supplied header field: with its
// value it must fit on one line (RFC 5322 §2.1.1 recommends 78 octets).
const maxFieldName = 76

// formatAddresses renders addresses for From/To/Cc/Reply-To, with display names
// RFC 2047-encoded when needed (net/mail). Entries without an address are
// skipped.
func formatAddresses(as []mail.Address) string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		addr := strings.TrimSpace(OneLine(a.Address))
		if addr == "" {
			continue
		}
		out = append(out, (&netmail.Address{Name: OneLine(a.Name), Address: addr}).String())
	}
	return strings.Join(out, ", ")
}

// encodeText RFC 2047-encodes s when it is not plain ASCII.
func encodeText(s string) string {
	enc := gomime.QEncoding.Encode("utf-8", s)
	for _, w := range strings.Fields(enc) {
		if len(w) > maxHeaderWord {
			// A word longer than a header line cannot be folded (found by
			// FuzzBuild: 1,000 'C's made a 999-octet line). Encoded-words can
			// split it: a reader joins adjacent ones without the space between
			// them (RFC 2047 §6.2).
			return splitEncodedWords(s)
		}
	}
	return enc
}

// maxHeaderWord is the longest unfoldable word a header value may carry: the
// field name and ": " must fit on the same 998-octet line (names are at most
// maxFieldName).
const maxHeaderWord = 998 - maxFieldName - 2

// splitEncodedWords encodes s as base64 encoded-words of at most 45 bytes of
// text each (60 characters encoded, well within RFC 2047's 75), never
// splitting a UTF-8 sequence.
func splitEncodedWords(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		n := min(len(s), 45)
		for k := n; k > 0 && k < len(s); k-- {
			if utf8.RuneStart(s[k]) {
				n = k
				break
			}
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("=?utf-8?b?" + base64.StdEncoding.EncodeToString([]byte(s[:n])) + "?=")
		s = s[n:]
	}
	return b.String()
}

// OneLine removes CR and LF (with the folding white space after them), so a
// client-supplied value cannot start a new header field.
func OneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(s)), " ")
}

// bodyTree builds the MIME structure described at Build.
func bodyTree(msg *mail.Message) *part {
	var inline, attached []mail.Attachment
	for _, a := range msg.Attachments {
		if a.Inline && contentID(a.ContentID) != "" && msg.HTML != "" {
			inline = append(inline, a)
		} else {
			attached = append(attached, a)
		}
	}
	body := textBody(msg)
	if len(inline) > 0 {
		related := &part{fields: []field{multipartType("multipart/related", map[string]string{"type": "multipart/alternative"})}}
		related.children = append(related.children, body)
		for _, a := range inline {
			related.children = append(related.children, attachmentPart(a, true))
		}
		body = related
	}
	if len(attached) == 0 {
		return body
	}
	mixed := &part{fields: []field{multipartType("multipart/mixed", nil)}, children: []*part{body}}
	for _, a := range attached {
		mixed.children = append(mixed.children, attachmentPart(a, false))
	}
	return mixed
}

// textBody is text/plain alone, or text/plain and text/html alternatives.
func textBody(msg *mail.Message) *part {
	text := msg.Text
	if msg.HTML == "" {
		return textPart("text/plain", text)
	}
	if text == "" {
		text = htmlToText(msg.HTML)
	}
	return &part{
		fields:   []field{multipartType("multipart/alternative", nil)},
		children: []*part{textPart("text/plain", text), textPart("text/html", msg.HTML)},
	}
}

// htmlToText derives the plain-text alternative. It only has to be readable:
// mail clients show the HTML.
func htmlToText(html string) string {
	text, err := html2text.FromString(html, html2text.Options{TextOnly: true})
	if err != nil {
		return ""
	}
	return text
}

func textPart(mediaType, text string) *part {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	return &part{
		fields: []field{
			{"Content-Type", gomime.FormatMediaType(mediaType, map[string]string{"charset": "utf-8"})},
			{"Content-Transfer-Encoding", "quoted-printable"},
		},
		body: []byte(text),
	}
}

// attachmentPart is a base64 file part. File names go into both the
// Content-Disposition filename (RFC 2183) and the Content-Type name parameter,
// which older Outlook versions read; mime.FormatMediaType encodes non-ASCII
// names per RFC 2231.
func attachmentPart(a mail.Attachment, inline bool) *part {
	name := strings.TrimSpace(OneLine(a.Name))
	ct := attachmentType(a)
	ctParams, dispParams := map[string]string{}, map[string]string{}
	if name != "" {
		ctParams["name"], dispParams["filename"] = name, name
	}
	disp := "attachment"
	if inline {
		disp = "inline"
	}
	fs := []field{
		{"Content-Type", formatMediaType(ct, ctParams)},
		{"Content-Disposition", formatMediaType(disp, dispParams)},
		{"Content-Transfer-Encoding", "base64"},
	}
	if id := contentID(a.ContentID); id != "" {
		fs = append(fs, field{"Content-ID", "<" + id + ">"})
	}
	return &part{fields: fs, body: a.Data}
}

// formatMediaType is mime.FormatMediaType, falling back to the bare type if a
// parameter cannot be encoded.
func formatMediaType(t string, params map[string]string) string {
	if s := gomime.FormatMediaType(t, params); s != "" {
		return s
	}
	return t
}

// attachmentType is a.ContentType when it parses, else a guess from the file
// extension, else application/octet-stream.
func attachmentType(a mail.Attachment) string {
	if t, _, err := gomime.ParseMediaType(a.ContentType); err == nil && strings.Contains(t, "/") {
		return t
	}
	if t := gomime.TypeByExtension(strings.ToLower(filepath.Ext(a.Name))); t != "" {
		if mt, _, err := gomime.ParseMediaType(t); err == nil {
			return mt
		}
	}
	return "application/octet-stream"
}

// contentID returns id without angle brackets, "cid:" or characters that
// cannot appear in a msg-id.
func contentID(id string) string {
	id = strings.TrimSpace(id)
	id = strings.TrimPrefix(id, "cid:")
	id = strings.Trim(id, "<>")
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || r == '<' || r == '>' {
			return -1
		}
		return r
	}, id)
}

// multipartType is a multipart Content-Type field with a fresh boundary.
func multipartType(mediaType string, params map[string]string) field {
	p := map[string]string{"boundary": newBoundary()}
	for k, v := range params {
		p[k] = v
	}
	return field{"Content-Type", gomime.FormatMediaType(mediaType, p)}
}

func newBoundary() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return "el-" + hex.EncodeToString(b[:])
}
