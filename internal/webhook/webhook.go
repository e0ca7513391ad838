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
	"fmt"
	"net/http"
	"net/url"
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

// Event types.
const (
	TypeMessageNew   = "message.new"   // a new email in a watched folder
	TypeAccountState = "account.state" // the account's subscription changed state
	TypeSyncProgress = "sync.progress" // a history load (POST /v1/accounts/{id}/sync) moved on
)

// Types lists every event type, for validating an account's event filter.
var Types = []string{TypeMessageNew, TypeAccountState, TypeSyncProgress}

// DefaultInlineMax is the largest attachment whose content an event carries
// (base64 in data) unless the account says otherwise; larger ones come with
// a link to fetch them.
const DefaultInlineMax = 256 << 10

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
	return "msg_" + digest(string(account), msg.Folder, msg.SourceID, msg.MessageID)
}

func digest(parts ...string) string {
	h := sha256.New()
	for _, s := range parts {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// MessageKey is a message's id in the API: its folder and its id on the
// server (the IMAP UID), in one URL-safe token.
func MessageKey(folder, serverID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(folder + "\x00" + serverID))
}

// ParseMessageKey reverses MessageKey.
func ParseMessageKey(key string) (folder, serverID string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil {
		return "", "", false
	}
	folder, serverID, ok = strings.Cut(string(b), "\x00")
	return folder, serverID, ok && folder != "" && serverID != ""
}

// Event is one webhook delivery; which of Message, Raw, State and Progress
// is set depends on Type.
type Event struct {
	Type      string         `json:"type"`
	ID        string         `json:"id"`
	Timestamp string         `json:"timestamp"` // RFC 3339, when the event was made
	Account   mail.MailboxID `json:"account"`
	Folder    string         `json:"folder,omitempty"`
	Message   *Message       `json:"message,omitempty"`
	Raw       []byte         `json:"raw,omitempty"` // message.new for accounts that want raw MIME (base64)
	State     *State         `json:"state,omitempty"`
	Progress  *Progress      `json:"progress,omitempty"`
}

// Message is an email as events and GET /v1/accounts/{id}/messages/{message}
// show it. In raw events only its identity and header fields are set.
type Message struct {
	ID          string       `json:"id"`       // MessageKey: fetch it again with this
	ServerID    string       `json:"serverId"` // the message's id in its folder (IMAP: the UID)
	MessageID   string       `json:"messageId"`
	Subject     string       `json:"subject"`
	From        *Address     `json:"from,omitempty"`
	To          []Address    `json:"to"`
	Cc          []Address    `json:"cc"`
	ReplyTo     []Address    `json:"replyTo,omitempty"`
	InReplyTo   string       `json:"inReplyTo,omitempty"`
	Date        string       `json:"date,omitempty"` // RFC 3339; absent when unknown
	Size        int          `json:"size,omitempty"` // of the raw message, bytes
	Text        string       `json:"text"`
	HTML        string       `json:"html"`
	Attachments []Attachment `json:"attachments"`
	Warnings    []string     `json:"warnings,omitempty"` // what the parser repaired, or that only the header was fetched
}

// Address is a mailbox address.
type Address struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
}

// Attachment is one attached or inline file: Data (base64) when it is at
// most the inline size, else URL, where GET fetches it.
type Attachment struct {
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
	Size        int    `json:"size"`
	ContentID   string `json:"contentId,omitempty"`
	Inline      bool   `json:"inline"`
	Data        []byte `json:"data,omitempty"`
	URL         string `json:"url,omitempty"`
}

// MessageOptions says how NewMessage renders an email.
type MessageOptions struct {
	// InlineMax: attachments up to this size carry their data; 0 means
	// DefaultInlineMax, negative none.
	InlineMax int
	// LinkBase prefixes attachment links ("" keeps them relative to the
	// service, "/v1/..."); e.g. "https://mail-sync.example.com".
	LinkBase string
	// HeadersOnly leaves bodies and attachments out (raw events).
	HeadersOnly bool
}

// NewMessage renders msg of account for the API.
func NewMessage(account mail.MailboxID, msg *mail.Message, o MessageOptions) *Message {
	key := MessageKey(msg.Folder, msg.SourceID)
	m := &Message{ID: key, ServerID: msg.SourceID, MessageID: msg.MessageID, Subject: msg.Subject, To: addresses(msg.To),
		Cc: addresses(msg.Cc), InReplyTo: msg.InReplyTo, Size: msg.Size, Attachments: []Attachment{}, Warnings: msg.Warnings}
	if len(msg.ReplyTo) > 0 {
		m.ReplyTo = addresses(msg.ReplyTo)
	}
	if msg.From != (mail.Address{}) {
		m.From = &Address{Name: msg.From.Name, Address: msg.From.Address}
	}
	if !msg.Date.IsZero() {
		m.Date = msg.Date.UTC().Format(time.RFC3339)
	}
	if o.HeadersOnly {
		return m
	}
	m.Text, m.HTML = msg.Text, msg.HTML
	limit := o.InlineMax
	if limit == 0 {
		limit = DefaultInlineMax
	}
	for i, a := range msg.Attachments {
		at := Attachment{Name: a.Name, ContentType: a.ContentType, Size: len(a.Data), ContentID: a.ContentID, Inline: a.Inline}
		if len(a.Data) <= limit {
			at.Data = a.Data
		} else if msg.SourceID != "" {
			at.URL = fmt.Sprintf("%s/v1/accounts/%s/messages/%s/attachments/%d", strings.TrimSuffix(o.LinkBase, "/"),
				url.PathEscape(string(account)), key, i)
		}
		m.Attachments = append(m.Attachments, at)
	}
	return m
}

// NewMessageEvent builds the message.new event of msg found in account;
// with raw, the event carries msg.Raw and the message's header fields only.
func NewMessageEvent(account mail.MailboxID, msg *mail.Message, raw bool, o MessageOptions, now time.Time) Event {
	ev := Event{Type: TypeMessageNew, ID: EventID(account, msg), Timestamp: now.UTC().Format(time.RFC3339Nano),
		Account: account, Folder: msg.Folder}
	if raw {
		o.HeadersOnly = true
		ev.Raw = msg.Raw
	}
	ev.Message = NewMessage(account, msg, o)
	return ev
}

// State is an account's state in account.state events.
type State struct {
	State      string `json:"state"` // exists, error or closed
	ErrorClass string `json:"errorClass,omitempty"`
	Error      string `json:"error,omitempty"`
	Node       string `json:"node,omitempty"`
	Since      string `json:"since,omitempty"`
}

// NewStateEvent builds the account.state event of st.
func NewStateEvent(account mail.MailboxID, st mail.Status, now time.Time) Event {
	s := &State{State: st.State, ErrorClass: st.ErrorClass, Error: st.LastError, Node: st.Node}
	if !st.Since.IsZero() {
		s.Since = st.Since.UTC().Format(time.RFC3339Nano)
	}
	return Event{Type: TypeAccountState, ID: "st_" + digest(string(account), s.State, s.ErrorClass, s.Error, s.Since),
		Timestamp: now.UTC().Format(time.RFC3339Nano), Account: account, State: s}
}

// Progress is a history load's progress in sync.progress events.
type Progress struct {
	State     string `json:"state"` // queued, running, done or failed
	Filter    string `json:"filter"`
	Folder    string `json:"folder,omitempty"`
	Found     int    `json:"found"`
	Delivered int    `json:"delivered"`
	Skipped   int    `json:"skipped"`
	Started   string `json:"started,omitempty"`
	Finished  string `json:"finished,omitempty"`
	Error     string `json:"error,omitempty"`
}

// NewProgress renders a history load's progress.
func NewProgress(p mail.HistoryProgress) *Progress {
	out := &Progress{State: p.State, Filter: p.Filter, Folder: p.Folder, Found: p.Found, Delivered: p.Delivered,
		Skipped: p.Skipped, Error: p.Error}
	if !p.Started.IsZero() {
		out.Started = p.Started.UTC().Format(time.RFC3339Nano)
	}
	if !p.Finished.IsZero() {
		out.Finished = p.Finished.UTC().Format(time.RFC3339Nano)
	}
	return out
}

// NewProgressEvent builds the sync.progress event of p.
func NewProgressEvent(account mail.MailboxID, p mail.HistoryProgress, now time.Time) Event {
	pr := NewProgress(p)
	id := "sync_" + digest(string(account), pr.Started, pr.State, pr.Folder, strconv.Itoa(pr.Found),
		strconv.Itoa(pr.Delivered), strconv.Itoa(pr.Skipped))
	return Event{Type: TypeSyncProgress, ID: id, Timestamp: now.UTC().Format(time.RFC3339Nano), Account: account,
		Folder: pr.Folder, Progress: pr}
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
