// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"bufio"
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
	"slices"
	"strings"
	"time"
)

// msgHeader is what the fake reads from a message's MIME header to answer property
// requests. Parsing is forgiving: a broken header yields empty fields, never an error,
// because Exchange stores whatever transport hands it.
type msgHeader struct {
	fields     [][2]string // every field in order, unfolded, undecoded
	subject    string
	from       []addr
	sender     []addr
	to, cc     []addr
	bcc        []addr
	replyTo    []addr
	messageID  string
	inReplyTo  string
	references string
	date       time.Time
	// itemClass is the Exchange item class the message gets on delivery: IPM.Note,
	// or a meeting message class for iCalendar invitations, so that clients meet
	// t:MeetingRequest and friends as they do in a real inbox.
	itemClass   string
	attachments bool
}

var (
	attachmentRE = regexp.MustCompile(`(?i)content-disposition:\s*attachment`)
	calendarRE   = regexp.MustCompile(`(?i)text/calendar[^\r\n]*method="?(request|cancel|reply)`)
)

func (h *msgHeader) class() string { return h.itemClass }

// element is the schema element for the item class.
func (h *msgHeader) element() string {
	switch {
	case h.itemClass == "IPM.Schedule.Meeting.Request":
		return "t:MeetingRequest"
	case h.itemClass == "IPM.Schedule.Meeting.Canceled":
		return "t:MeetingCancellation"
	case strings.HasPrefix(h.itemClass, "IPM.Schedule.Meeting.Resp"):
		return "t:MeetingResponse"
	}
	return "t:Message"
}

func (h *msgHeader) senderOrFrom() *addr {
	switch {
	case len(h.sender) > 0:
		return &h.sender[0]
	case len(h.from) > 0:
		return &h.from[0]
	}
	return nil
}

type addr struct{ name, email string }

var wordDecoder = mime.WordDecoder{CharsetReader: func(charset string, in io.Reader) (io.Reader, error) {
	// Without x/text, only what the standard library decodes itself (UTF-8,
	// ISO-8859-1, US-ASCII); other charsets keep their raw bytes.
	return in, nil
}}

func parseHeader(raw []byte) *msgHeader {
	h := &msgHeader{}
	end := headerEnd(raw)
	sc := bufio.NewScanner(bytes.NewReader(raw[:end]))
	sc.Buffer(make([]byte, 0, 4096), len(raw)+1)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(h.fields) > 0 {
			last := &h.fields[len(h.fields)-1]
			last[1] += " " + strings.TrimSpace(line)
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		h.fields = append(h.fields, [2]string{strings.TrimSpace(name), strings.TrimSpace(value)})
	}
	get := func(name string) string {
		for _, f := range h.fields {
			if strings.EqualFold(f[0], name) {
				return f[1]
			}
		}
		return ""
	}
	h.subject = decodeWords(get("Subject"))
	h.from = parseAddrs(get("From"))
	h.sender = parseAddrs(get("Sender"))
	h.to = parseAddrs(get("To"))
	h.cc = parseAddrs(get("Cc"))
	h.bcc = parseAddrs(get("Bcc"))
	h.replyTo = parseAddrs(get("Reply-To"))
	h.messageID = get("Message-ID")
	h.inReplyTo = get("In-Reply-To")
	h.references = get("References")
	if d, err := mail.ParseDate(get("Date")); err == nil {
		h.date = d.UTC()
	}
	h.itemClass = "IPM.Note"
	ct, _, _ := mime.ParseMediaType(get("Content-Type"))
	if strings.HasPrefix(ct, "multipart/") {
		h.attachments = attachmentRE.Match(raw)
	}
	if m := calendarRE.FindSubmatch(raw); m != nil {
		switch strings.ToLower(string(m[1])) {
		case "request":
			h.itemClass = "IPM.Schedule.Meeting.Request"
		case "cancel":
			h.itemClass = "IPM.Schedule.Meeting.Canceled"
		default:
			h.itemClass = "IPM.Schedule.Meeting.Resp.Pos"
		}
	}
	return h
}

// headerEnd is the offset of the empty line ending the header (or len(raw)).
func headerEnd(raw []byte) int {
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		if j := bytes.Index(raw, []byte("\n\n")); j >= 0 && j < i {
			return j + 2
		}
		return i + 4
	}
	if j := bytes.Index(raw, []byte("\n\n")); j >= 0 {
		return j + 2
	}
	return len(raw)
}

func decodeWords(s string) string {
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}

func parseAddrs(s string) []addr {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	p := mail.AddressParser{WordDecoder: &wordDecoder}
	list, err := p.ParseList(s)
	if err != nil {
		return []addr{{email: strings.TrimSpace(s)}}
	}
	out := make([]addr, len(list))
	for i, a := range list {
		out[i] = addr{name: a.Name, email: a.Address}
	}
	return out
}

// bodies extracts the first text/plain and text/html parts of a message, decoded
// from their transfer encoding, for the Body property.
func bodies(raw []byte) (text, html string) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", ""
	}
	walkPart(textproto.MIMEHeader(msg.Header), msg.Body, 0, &text, &html)
	return text, html
}

func walkPart(h textproto.MIMEHeader, body io.Reader, depth int, text, html *string) {
	ct, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		ct = "text/plain"
	}
	if strings.HasPrefix(ct, "multipart/") && depth < 8 {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return
			}
			walkPart(p.Header, p, depth+1, text, html)
		}
	}
	if strings.HasPrefix(strings.ToLower(h.Get("Content-Disposition")), "attachment") {
		return
	}
	var r io.Reader = body
	switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &newlineStripper{r: body})
	}
	b, _ := io.ReadAll(io.LimitReader(r, 16<<20))
	switch {
	case ct == "text/plain" && *text == "":
		*text = string(b)
	case ct == "text/html" && *html == "":
		*html = string(b)
	}
}

// newlineStripper drops CR and LF so base64 bodies wrapped at 76 columns decode.
type newlineStripper struct{ r io.Reader }

func (n *newlineStripper) Read(p []byte) (int, error) {
	for {
		k, err := n.r.Read(p)
		j := 0
		for _, c := range p[:k] {
			if c != '\r' && c != '\n' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// outgoing is a message a client asked to send or save through CreateItem with
// structured properties instead of MIME.
type outgoing struct {
	subject     string
	body        string
	html        bool
	from        addr
	to, cc, bcc []addr
	messageID   string
}

// buildMIME renders an outgoing message as RFC 5322, the way a mail server would
// serialise a message composed in EWS: UTF-8, quoted-printable body.
func buildMIME(o outgoing, now time.Time) []byte {
	var b bytes.Buffer
	hdr := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	hdr("From", formatAddrs([]addr{o.from}))
	if len(o.to) > 0 {
		hdr("To", formatAddrs(o.to))
	}
	if len(o.cc) > 0 {
		hdr("Cc", formatAddrs(o.cc))
	}
	if len(o.bcc) > 0 {
		hdr("Bcc", formatAddrs(o.bcc))
	}
	hdr("Subject", mime.QEncoding.Encode("utf-8", o.subject))
	hdr("Date", now.Format(time.RFC1123Z))
	hdr("Message-ID", o.messageID)
	hdr("MIME-Version", "1.0")
	ct := "text/plain"
	if o.html {
		ct = "text/html"
	}
	hdr("Content-Type", ct+`; charset="utf-8"`)
	hdr("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(o.body, "\r\n", "\n"), "\n", "\r\n")))
	_ = qp.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

func formatAddrs(list []addr) string {
	parts := make([]string, len(list))
	for i, a := range list {
		parts[i] = (&mail.Address{Name: a.name, Address: a.email}).String()
	}
	return strings.Join(parts, ", ")
}

// prepareSend completes a MIME message as the transport would before handing it
// on: a Date, Message-ID and From are added when missing. It returns the completed
// message (what Sent Items keeps, Bcc included), what is transmitted (without the
// Bcc header) and all recipients.
func prepareSend(raw []byte, from string, now time.Time, newMessageID func() string) (saved, sent []byte, rcpts []addr) {
	h := parseHeader(raw)
	rcpts = append(append(append([]addr{}, h.to...), h.cc...), h.bcc...)
	end := headerEnd(raw)
	has := func(name string) bool {
		for _, f := range h.fields {
			if strings.EqualFold(f[0], name) {
				return true
			}
		}
		return false
	}
	var added bytes.Buffer
	if !has("From") {
		fmt.Fprintf(&added, "From: %s\r\n", from)
	}
	if !has("Date") {
		fmt.Fprintf(&added, "Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	if !has("Message-ID") {
		fmt.Fprintf(&added, "Message-ID: %s\r\n", newMessageID())
	}
	saved = slices.Concat(added.Bytes(), raw)
	out := bytes.NewBuffer(append([]byte{}, added.Bytes()...))
	// Copy the header without Bcc (and its continuation lines).
	skipping := false
	for _, line := range bytes.SplitAfter(raw[:end], []byte("\n")) {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if !skipping {
				out.Write(line)
			}
			continue
		}
		name, _, _ := bytes.Cut(line, []byte(":"))
		skipping = strings.EqualFold(strings.TrimSpace(string(name)), "Bcc")
		if !skipping {
			out.Write(line)
		}
	}
	out.Write(raw[end:])
	return saved, out.Bytes(), rcpts
}
