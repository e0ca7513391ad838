// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"mime"
	netmail "net/mail"
	"path/filepath"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Email is Creatio's EmailContract.DTO.Email (docs/CREATIO-PROTOCOL.md §11.4,
// §10.2). It travels both ways:
// inside LoadEmailCommand to ProcessFullEmail (built by NewEmail) and inside
// SendCommand from Creatio (read with Message). The misspelt names are Creatio's.
//
// The list fields must encode as [] rather than null for Creatio; NewEmail never
// leaves them nil. An Email built by hand must do the same.
type Email struct {
	ID                  string       `json:"Id"`                  // inbound: Message-ID; outbound (send): Message-ID to use
	Subject             string       `json:"Subject"`             // activity Title
	Body                string       `json:"Body"`                // HTML or text, see IsHtmlBody
	Sender              string       `json:"Sender"`              // "Name <addr>" or bare address
	Recepients          []string     `json:"Recepients"`          // To, "Name <addr>"
	CopyRecepients      []string     `json:"CopyRecepients"`      // Cc
	BlindCopyRecepients []string     `json:"BlindCopyRecepients"` // Bcc
	Headers             []string     `json:"Headers"`             // "Name=Value", one per header field
	Importance          FlexInt      `json:"Importance"`          // None=0, Normal=1, High=2, Low=3
	IsHTMLBody          FlexBool     `json:"IsHtmlBody"`          // Body is HTML
	Attachments         []Attachment `json:"Attachments"`         // content inline, base64
	SendDateTimeStamp   FlexInt      `json:"SendDateTimeStamp"`   // UTC .NET ticks, see Ticks
	MessageID           string       `json:"MessageId"`           // required by Creatio; dedup key (docs/CREATIO-PROTOCOL.md §14)
	InReplyTo           string       `json:"InReplyTo"`           // threading
	References          string       `json:"References"`          // raw header value
}

// Attachment is Creatio's EmailContract.DTO.Attachment (docs/CREATIO-PROTOCOL.md §11.5).
type Attachment struct {
	// ID is the Content-ID without "cid:" or angle brackets for inline parts; it
	// must match the cid: reference in the HTML body or Creatio downgrades the
	// part to a normal attachment. On send it is Creatio's file GUID.
	ID   string `json:"Id"`
	Name string `json:"Name"` // file name
	// Data is the content; encoding/json writes it as standard base64 with
	// padding, which is what Creatio's Convert.FromBase64String expects.
	Data     Base64   `json:"Base64Data"`
	IsInline FlexBool `json:"IsInline"`
}

// NewEmail maps a parsed message to the Email Creatio expects from
// ProcessFullEmail (docs/CREATIO-PROTOCOL.md §11.4):
//   - Body is the HTML part when there is one (IsHtmlBody=true), else the text.
//   - Sender and recipients are "Name <addr>" (bare address without a name).
//   - Headers are "Name=Value" with CR/LF folding collapsed to one space.
//   - Id and MessageId are the Message-ID, angle brackets kept.
//   - SendDateTimeStamp is Ticks(m.Date), 0 when the message has no usable Date
//     header; callers then call DefaultSendDate with the server's internal date,
//     because Creatio's hash deduplication uses the send date
//     (docs/CREATIO-PROTOCOL.md §14).
//
// Attachment data is shared with m, not copied.
func NewEmail(m *mail.Message) Email {
	e := Email{
		ID:                  m.MessageID,
		Subject:             m.Subject,
		Sender:              m.From.String(),
		Recepients:          addressStrings(m.To),
		CopyRecepients:      addressStrings(m.Cc),
		BlindCopyRecepients: addressStrings(m.Bcc),
		Headers:             make([]string, 0, len(m.Headers)),
		Importance:          FlexInt(m.Importance),
		Attachments:         make([]Attachment, 0, len(m.Attachments)),
		SendDateTimeStamp:   FlexInt(Ticks(m.Date)),
		MessageID:           m.MessageID,
		InReplyTo:           oneLine(m.InReplyTo),
		References:          oneLine(m.References),
	}
	if m.HTML != "" {
		e.Body, e.IsHTMLBody = m.HTML, true
	} else {
		e.Body = m.Text
	}
	for _, h := range m.Headers {
		e.Headers = append(e.Headers, strings.TrimSpace(h.Name)+"="+oneLine(h.Value))
	}
	for _, a := range m.Attachments {
		data := a.Data
		if data == nil {
			data = []byte{} // "" rather than null
		}
		e.Attachments = append(e.Attachments, Attachment{
			ID:       strings.TrimSuffix(strings.TrimPrefix(a.ContentID, "<"), ">"),
			Name:     a.Name,
			Data:     Base64(data),
			IsInline: FlexBool(a.Inline),
		})
	}
	return e
}

// DefaultSendDate sets SendDateTimeStamp to Ticks(t) when it is still 0, for a
// message without a usable Date header (t is then usually the IMAP INTERNALDATE).
func (e *Email) DefaultSendDate(t time.Time) {
	if e.SendDateTimeStamp == 0 {
		e.SendDateTimeStamp = FlexInt(Ticks(t))
	}
}

func addressStrings(as []mail.Address) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		if s := a.String(); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// oneLine replaces each line break together with the white space around it
// by one space, so a folded header value fits in one "Name=Value" line (Creatio
// joins Headers with "\n", docs/CREATIO-PROTOCOL.md §11.4) and cannot inject
// header lines on send.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for part := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if part = strings.Trim(part, " \t"); part == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(part)
	}
	return b.String()
}

// Message maps an Email from a SendCommand (docs/CREATIO-PROTOCOL.md §10.2) to
// the domain message to send:
//   - MessageID is Id, else the MessageId header property, else MessageId; it is
//     wrapped in angle brackets when bare. Empty means "generate one".
//   - Recipients are parsed as RFC 5322 addresses; an unparsable entry is kept
//     as a bare address so the SMTP server, not this mapping, rejects it.
//   - Headers "Name=Value" (or "Name:Value") become header fields, except
//     Creatio's internal MessageId and In-Reply-To/References, which fill the
//     fields of the same name. Values are kept on one line (no injection).
//   - Attachments with IsInline get ContentID = Id; ContentType is guessed from
//     the file extension.
//
// Date is left zero: the sender stamps it.
func (e *Email) Message() *mail.Message {
	m := &mail.Message{
		Subject:    oneLine(e.Subject),
		From:       parseAddress(e.Sender),
		To:         parseAddresses(e.Recepients),
		Cc:         parseAddresses(e.CopyRecepients),
		Bcc:        parseAddresses(e.BlindCopyRecepients),
		Importance: mail.Importance(e.Importance),
		InReplyTo:  oneLine(e.InReplyTo),
		References: oneLine(e.References),
	}
	if e.IsHTMLBody {
		m.HTML = e.Body
	} else {
		m.Text = e.Body
	}
	headerID := ""
	for _, h := range e.Headers {
		i := strings.IndexAny(h, "=:")
		if i <= 0 {
			continue
		}
		name, value := strings.TrimSpace(h[:i]), strings.TrimSpace(oneLine(h[i+1:]))
		if name == "" || strings.ContainsAny(name, " \t") {
			continue
		}
		switch {
		case strings.EqualFold(name, "MessageId") || strings.EqualFold(name, "Message-ID"):
			headerID = value
		case strings.EqualFold(name, "In-Reply-To"):
			if m.InReplyTo == "" {
				m.InReplyTo = value
			}
		case strings.EqualFold(name, "References"):
			if m.References == "" {
				m.References = value
			}
		default:
			m.Headers = append(m.Headers, mail.Header{Name: name, Value: value})
		}
	}
	m.MessageID = angleID(firstNonEmpty(e.ID, headerID, e.MessageID))
	for _, a := range e.Attachments {
		ct := mime.TypeByExtension(strings.ToLower(filepath.Ext(a.Name)))
		if ct == "" {
			ct = "application/octet-stream"
		}
		att := mail.Attachment{Name: a.Name, ContentType: ct, Inline: bool(a.IsInline), Data: []byte(a.Data)}
		if a.IsInline {
			att.ContentID = a.ID
		}
		m.Attachments = append(m.Attachments, att)
	}
	return m
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}

func angleID(s string) string {
	s = oneLine(strings.TrimSpace(s))
	if s == "" || strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		return s
	}
	return "<" + strings.Trim(s, "<>") + ">"
}

func parseAddress(s string) mail.Address {
	s = strings.TrimSpace(oneLine(s))
	if s == "" {
		return mail.Address{}
	}
	if a, err := netmail.ParseAddress(s); err == nil {
		return mail.Address{Name: a.Name, Address: a.Address}
	}
	return mail.Address{Address: s}
}

func parseAddresses(in []string) []mail.Address {
	var out []mail.Address
	for _, s := range in {
		s = strings.TrimSpace(oneLine(s))
		if s == "" {
			continue
		}
		if a, err := netmail.ParseAddress(s); err == nil {
			out = append(out, mail.Address{Name: a.Name, Address: a.Address})
			continue
		}
		if list, err := netmail.ParseAddressList(s); err == nil {
			for _, a := range list {
				out = append(out, mail.Address{Name: a.Name, Address: a.Address})
			}
			continue
		}
		out = append(out, mail.Address{Address: s})
	}
	return out
}

// LoadEmailCommand is the body of ProcessFullEmail (docs/CREATIO-PROTOCOL.md §11.3).
type LoadEmailCommand struct {
	Emails           []Email          `json:"Emails"`
	SubscriptionInfo SubscriptionInfo `json:"SubscriptionInfo"`
}

// SubscriptionInfo tells Creatio whose mailbox a LoadEmailCommand is for
// (docs/CREATIO-PROTOCOL.md §11.3). Creatio logs in as SysAdminUnit and looks
// the mailbox up by MailboxId; a wrong value drops the emails.
type SubscriptionInfo struct {
	ID             string `json:"Id"`             // subscription id = mailbox id
	SysAdminUnit   string `json:"SysAdminUnit"`   // credentials BpmUser
	MailboxID      string `json:"MailboxId"`      // credentials Id
	WorkspaceName  string `json:"WorkspaceName"`  // credentials BpmUserWorkspace
	TimeZoneID     string `json:"TimeZoneId"`     // credentials BpmUserTimeZone
	EventTimeStamp int64  `json:"EventTimeStamp"` // UTC .NET ticks of the event
}

// NewLoadEmailCommand builds the ProcessFullEmail body for emails of mb; now is
// the event time. A nil emails encodes as [].
func NewLoadEmailCommand(mb *mail.Mailbox, emails []Email, now time.Time) LoadEmailCommand {
	if emails == nil {
		emails = []Email{}
	}
	return LoadEmailCommand{
		Emails: emails,
		SubscriptionInfo: SubscriptionInfo{
			ID:             string(mb.ID),
			SysAdminUnit:   mb.User,
			MailboxID:      string(mb.ID),
			WorkspaceName:  mb.Workspace,
			TimeZoneID:     mb.TimeZone,
			EventTimeStamp: Ticks(now),
		},
	}
}
