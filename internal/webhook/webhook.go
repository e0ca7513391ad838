// SPDX-License-Identifier: Apache-2.0

// Package webhook is the wire format of the native API's deliveries: the
// JSON events posted to a client's webhook and their signature, in the
// Standard Webhooks style (https://www.standardwebhooks.com/):
//
//	webhook-id:        the event id, the same on every retry (deduplicate on it)
//	webhook-timestamp: Unix seconds of this attempt
//	webhook-signature: "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body))
//
// The key is the account's webhook secret: a secret of the form
// "whsec_<base64>" (as Standard Webhooks libraries generate) is the decoded
// bytes, any other secret its UTF-8 bytes. The package does no I/O.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// TypeMessageNew is the type of the event a new email makes.
const TypeMessageNew = "message.new"

// MaxInlineAttachment is the largest attachment whose content an event
// carries (base64 in data); larger ones are described without it.
const MaxInlineAttachment = 256 << 10

// secretPrefix marks a base64 secret as Standard Webhooks libraries make.
const secretPrefix = "whsec_"

// Key returns the HMAC key of secret.
func Key(secret string) []byte {
	if rest, ok := strings.CutPrefix(secret, secretPrefix); ok {
		if k, err := base64.StdEncoding.DecodeString(rest); err == nil && len(k) > 0 {
			return k
		}
	}
	return []byte(secret)
}

// Sign returns the webhook-signature value of body sent as event id at ts.
func Sign(secret, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, Key(secret))
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Headers returns the headers of one attempt to send body as event id, signed
// at now: a retry signs again with a fresh timestamp, so that receivers
// which refuse old timestamps accept it.
func Headers(secret, id string, body []byte, now time.Time) http.Header {
	ts := now.Unix()
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, Sign(secret, id, ts, body))
	return h
}

// EventID is a message's event id: derived from the account and where the
// message was found, so a redelivery (after a crash between the webhook's
// answer and the cursor's advance) has the same id.
func EventID(account mail.MailboxID, msg *mail.Message) string {
	h := sha256.New()
	for _, s := range []string{string(account), msg.Folder, msg.SourceID, msg.MessageID} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "msg_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Event is one webhook delivery.
type Event struct {
	Type      string         `json:"type"`
	ID        string         `json:"id"`
	Timestamp string         `json:"timestamp"` // RFC 3339, when the event was made
	Account   mail.MailboxID `json:"account"`
	Folder    string         `json:"folder"`
	Message   *Message       `json:"message,omitempty"`
}

// Message is an email as events carry it.
type Message struct {
	MessageID   string       `json:"messageId"`
	Subject     string       `json:"subject"`
	From        *Address     `json:"from,omitempty"`
	To          []Address    `json:"to"`
	Cc          []Address    `json:"cc"`
	Date        string       `json:"date,omitempty"` // RFC 3339; absent when unknown
	Text        string       `json:"text"`
	HTML        string       `json:"html"`
	Attachments []Attachment `json:"attachments"`
}

// Address is a mailbox address.
type Address struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
}

// Attachment is one attached or inline file; Data (base64) is set when it
// is at most MaxInlineAttachment bytes.
type Attachment struct {
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
	Size        int    `json:"size"`
	ContentID   string `json:"contentId,omitempty"`
	Inline      bool   `json:"inline"`
	Data        []byte `json:"data,omitempty"`
}

// NewMessageEvent builds the message.new event of msg found in account.
func NewMessageEvent(account mail.MailboxID, msg *mail.Message, now time.Time) Event {
	m := &Message{MessageID: msg.MessageID, Subject: msg.Subject, To: addresses(msg.To), Cc: addresses(msg.Cc),
		Text: msg.Text, HTML: msg.HTML, Attachments: make([]Attachment, 0, len(msg.Attachments))}
	if msg.From != (mail.Address{}) {
		m.From = &Address{Name: msg.From.Name, Address: msg.From.Address}
	}
	if !msg.Date.IsZero() {
		m.Date = msg.Date.UTC().Format(time.RFC3339)
	}
	for _, a := range msg.Attachments {
		at := Attachment{Name: a.Name, ContentType: a.ContentType, Size: len(a.Data), ContentID: a.ContentID, Inline: a.Inline}
		if len(a.Data) <= MaxInlineAttachment {
			at.Data = a.Data
		}
		m.Attachments = append(m.Attachments, at)
	}
	return Event{Type: TypeMessageNew, ID: EventID(account, msg), Timestamp: now.UTC().Format(time.RFC3339Nano),
		Account: account, Folder: msg.Folder, Message: m}
}

func addresses(in []mail.Address) []Address {
	out := make([]Address, 0, len(in))
	for _, a := range in {
		out = append(out, Address{Name: a.Name, Address: a.Address})
	}
	return out
}

// Marshal encodes an event.
func Marshal(ev Event) ([]byte, error) { return json.Marshal(ev) }
