// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// msgHeader is what the fake reads from a message to answer property requests.
// Parsing is forgiving: a broken header yields empty fields, never an error,
// because Exchange stores whatever transport hands it.
type msgHeader struct {
	fields      [][2]string // every field in order, unfolded, undecoded
	subject     string
	from        *mail.Address
	to, cc, bcc []*mail.Address
	messageID   string
	date        time.Time
	attachments bool
	preview     string // bodyPreview
}

// maxPreview is the length of Graph's bodyPreview in characters.
const maxPreview = 255

var attachmentRE = regexp.MustCompile(`(?i)content-disposition:\s*attachment`)

// parseMessage reads the header of an RFC 5322 message and a preview of its text.
func parseMessage(raw []byte) *msgHeader {
	h := &msgHeader{}
	head, body := splitHeader(raw)
	h.fields = unfold(head)
	mh := mail.Header{}
	for _, f := range h.fields {
		k := textproto.CanonicalMIMEHeaderKey(f[0])
		mh[k] = append(mh[k], f[1])
	}
	dec := new(mime.WordDecoder)
	if v, err := dec.DecodeHeader(mh.Get("Subject")); err == nil {
		h.subject = v
	} else {
		h.subject = mh.Get("Subject")
	}
	if l, err := mh.AddressList("From"); err == nil && len(l) > 0 {
		h.from = l[0]
	}
	h.to, _ = mh.AddressList("To")
	h.cc, _ = mh.AddressList("Cc")
	h.bcc, _ = mh.AddressList("Bcc")
	h.messageID = strings.TrimSpace(mh.Get("Message-Id"))
	if d, err := mail.ParseDate(mh.Get("Date")); err == nil {
		h.date = d.UTC()
	}
	h.attachments = attachmentRE.Match(raw)
	h.preview = preview(textOf(mh.Get("Content-Type"), mh.Get("Content-Transfer-Encoding"), body, 0))
	return h
}

// splitHeader splits a message at its first empty line (CRLF or bare LF).
func splitHeader(raw []byte) (head, body []byte) {
	i, n := bytes.Index(raw, []byte("\r\n\r\n")), 4
	if j := bytes.Index(raw, []byte("\n\n")); j >= 0 && (i < 0 || j < i) {
		i, n = j, 2
	}
	if i < 0 {
		return raw, nil
	}
	return raw[:i], raw[i+n:]
}

// unfold splits a header block into fields, joining continuation lines.
func unfold(head []byte) [][2]string {
	var out [][2]string
	for _, line := range strings.Split(strings.ReplaceAll(string(head), "\r\n", "\n"), "\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1][1] += " " + strings.TrimSpace(line)
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			continue
		}
		out = append(out, [2]string{name, strings.TrimSpace(value)})
	}
	return out
}

// textOf returns the first text/plain content of an entity (else text/html with
// the tags stripped), decoded; depth bounds the recursion into multiparts.
func textOf(ctype, cte string, body []byte, depth int) string {
	mt, params, err := mime.ParseMediaType(ctype)
	if ctype == "" || err != nil {
		mt = "text/plain"
	}
	switch {
	case strings.HasPrefix(mt, "multipart/") && depth < 8:
		r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		html := ""
		for {
			p, err := r.NextRawPart()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(io.LimitReader(p, 1<<20))
			if strings.Contains(strings.ToLower(p.Header.Get("Content-Disposition")), "attachment") {
				continue
			}
			t := textOf(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), b, depth+1)
			pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			if t != "" && (pt == "text/plain" || pt == "" || strings.HasPrefix(pt, "multipart/")) {
				return t
			}
			if html == "" {
				html = t
			}
		}
		return html
	case mt == "text/plain":
		return decodeCTE(cte, body)
	case mt == "text/html":
		return stripTags(decodeCTE(cte, body))
	}
	return ""
}

func decodeCTE(cte string, body []byte) string {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(stripSpace(body))))
		if err == nil || len(b) > 0 {
			return string(b)
		}
	case "quoted-printable":
		if b, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body))); err == nil || len(b) > 0 {
			return string(b)
		}
	}
	return string(body)
}

var tagRE = regexp.MustCompile(`(?s)<style.*?</style>|<script.*?</script>|<[^>]*>`)

func stripTags(s string) string { return tagRE.ReplaceAllString(s, " ") }

// preview collapses white space and cuts at maxPreview characters, as
// bodyPreview does.
func preview(s string) string {
	var b strings.Builder
	n, space := 0, false
	for _, r := range s {
		if n >= maxPreview {
			break
		}
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
			if n >= maxPreview {
				break
			}
		}
		if r == utf8.RuneError {
			r = '\uFFFD'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

func stripSpace(b []byte) []byte {
	return bytes.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, b)
}

// prepareSend turns what a client submitted into the transmitted message: From
// (the mailbox), Message-ID and Date are added when missing (as Exchange's
// transport does) and Bcc is removed. It returns the transmitted MIME, the copy
// saved to Sent Items (which keeps Bcc) and the recipients.
func prepareSend(raw []byte, from string, now time.Time, newID func() string) (sent, saved []byte, rcpts []string) {
	h := parseMessage(raw)
	var add bytes.Buffer
	if h.from == nil {
		fmt.Fprintf(&add, "From: %s\r\n", (&mail.Address{Address: from}).String())
	}
	if h.messageID == "" {
		fmt.Fprintf(&add, "Message-ID: %s\r\n", newID())
	}
	if h.date.IsZero() {
		fmt.Fprintf(&add, "Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	saved = append(add.Bytes(), raw...)
	head, body := splitHeader(saved)
	var out bytes.Buffer
	skip := false
	for _, line := range strings.SplitAfter(string(head), "\n") {
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !skip {
				out.WriteString(line)
			}
			continue
		}
		name, _, _ := strings.Cut(line, ":")
		skip = strings.EqualFold(strings.TrimSpace(name), "Bcc")
		if !skip {
			out.WriteString(line)
		}
	}
	if b := out.Bytes(); len(b) > 0 && b[len(b)-1] != '\n' {
		out.WriteString("\r\n")
	}
	out.WriteString("\r\n")
	out.Write(body)
	for _, l := range [][]*mail.Address{h.to, h.cc, h.bcc} {
		for _, a := range l {
			rcpts = append(rcpts, a.Address)
		}
	}
	return out.Bytes(), saved, rcpts
}

// jsonMessage is the part of a Graph message resource that sendMail's JSON form
// turns into MIME.
type jsonMessage struct {
	Subject string `json:"subject"`
	Body    *struct {
		ContentType string `json:"contentType"`
		Content     string `json:"content"`
	} `json:"body"`
	ToRecipients  []recipient `json:"toRecipients"`
	CcRecipients  []recipient `json:"ccRecipients"`
	BccRecipients []recipient `json:"bccRecipients"`
	ReplyTo       []recipient `json:"replyTo"`
	Attachments   []any       `json:"attachments"`
}

type recipient struct {
	EmailAddress struct {
		Name    string `json:"name"`
		Address string `json:"address"`
	} `json:"emailAddress"`
}

// buildMIME renders sendMail's JSON message as the MIME Exchange would transmit
// (attachments are not supported by the fake and are left out).
func buildMIME(from string, m *jsonMessage) []byte {
	var b bytes.Buffer
	addrs := func(name string, rs []recipient) {
		if len(rs) == 0 {
			return
		}
		l := make([]string, len(rs))
		for i, r := range rs {
			l[i] = (&mail.Address{Name: r.EmailAddress.Name, Address: r.EmailAddress.Address}).String()
		}
		fmt.Fprintf(&b, "%s: %s\r\n", name, strings.Join(l, ", "))
	}
	fmt.Fprintf(&b, "From: %s\r\n", (&mail.Address{Address: from}).String())
	addrs("To", m.ToRecipients)
	addrs("Cc", m.CcRecipients)
	addrs("Bcc", m.BccRecipients)
	addrs("Reply-To", m.ReplyTo)
	fmt.Fprintf(&b, "Subject: %s\r\nMIME-Version: 1.0\r\n", mime.QEncoding.Encode("utf-8", m.Subject))
	ctype, content := "text/plain", ""
	if m.Body != nil {
		content = m.Body.Content
		if strings.EqualFold(m.Body.ContentType, "html") {
			ctype = "text/html"
		}
	}
	fmt.Fprintf(&b, "Content-Type: %s; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", ctype)
	w := quotedprintable.NewWriter(&b)
	_, _ = io.WriteString(w, content)
	_ = w.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}
