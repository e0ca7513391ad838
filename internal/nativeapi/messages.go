// SPDX-License-Identifier: Apache-2.0

package nativeapi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/ingest"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
	"github.com/emaillistener/emaillistener/internal/webhook"
)

// SyncRequest is the body of POST /v1/accounts/{id}/sync: which older mail
// to deliver as message.new events, by date (Since, with SentSince the Date
// header instead of the arrival date) or by a filter in the form Creatio
// uses (IMAP SEARCH criteria such as "UNDRAFT UNDELETED SINCE 01-Nov-2026",
// or .NET ticks). One of the two is required, so that no typo loads a whole
// mailbox.
type SyncRequest struct {
	Since        string   `json:"since,omitempty"` // RFC 3339 date-time or date (2026-11-01)
	SentSince    bool     `json:"sentSince,omitempty"`
	ExcludeFlags []string `json:"excludeFlags,omitempty"` // e.g. \Draft, \Deleted, a keyword
	UIDFrom      uint32   `json:"uidFrom,omitempty"`
	Filter       string   `json:"filter,omitempty"`
}

// maxFlags bounds excludeFlags.
const maxFlags = 32

func (req *SyncRequest) query(kind mail.ServerKind) (mail.Query, error) {
	if req.Filter != "" {
		if req.Since != "" || req.SentSince || len(req.ExcludeFlags) > 0 || req.UIDFrom != 0 {
			return mail.Query{}, badRequest("filter and since/sentSince/excludeFlags/uidFrom exclude each other")
		}
		f, err := (&creatio.SyncEmailsCommand{Filters: req.Filter}).ParseFilter(kind)
		if err != nil {
			return mail.Query{}, badRequest("filter: %v", err)
		}
		return f.Query(), nil
	}
	if req.Since == "" {
		return mail.Query{}, badRequest("since (a date) or filter is required")
	}
	if kind == mail.ServerExchange && (len(req.ExcludeFlags) > 0 || req.UIDFrom != 0) {
		return mail.Query{}, badRequest("excludeFlags and uidFrom are for IMAP accounts")
	}
	since, err := time.Parse(time.RFC3339, req.Since)
	if err != nil {
		if since, err = time.Parse(time.DateOnly, req.Since); err != nil {
			return mail.Query{}, badRequest("since: an RFC 3339 date-time or a date (2026-11-01)")
		}
	}
	if len(req.ExcludeFlags) > maxFlags {
		return mail.Query{}, badRequest("excludeFlags: at most %d", maxFlags)
	}
	for _, f := range req.ExcludeFlags {
		if f == "" || strings.ContainsFunc(f, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`(){%*"]`, r) }) {
			return mail.Query{}, badRequest("excludeFlags: %q is not a flag or keyword", mail.Excerpt(f, 64))
		}
	}
	return mail.Query{Since: since.UTC(), SentSince: req.SentSince, NotFlags: req.ExcludeFlags, UIDFrom: req.UIDFrom}, nil
}

func (h *Handler) sync(w http.ResponseWriter, r *http.Request) error {
	mb, err := h.lookup(r)
	if err != nil {
		return err
	}
	var req SyncRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	q, err := req.query(mb.Kind)
	if err != nil {
		return err
	}
	if err := h.opts.Accounts.Synchronize(r.Context(), mb, q); err != nil {
		return err
	}
	h.log.Info("native account sync started", "account", mb.ID, "token", tokenName(r.Context()))
	out := map[string]any{"account": mb.ID}
	if p, ok := h.opts.Accounts.History(mb.ID); ok {
		out["sync"] = webhook.NewProgress(p)
	}
	writeJSON(w, http.StatusAccepted, out)
	return nil
}

// SendRequest is the JSON body of POST /v1/accounts/{id}/send (raw MIME is
// sent as Content-Type: message/rfc822 instead).
type SendRequest struct {
	From        *webhook.Address     `json:"from,omitempty"` // default: the account's address
	To          []webhook.Address    `json:"to"`
	Cc          []webhook.Address    `json:"cc,omitempty"`
	Bcc         []webhook.Address    `json:"bcc,omitempty"`
	ReplyTo     []webhook.Address    `json:"replyTo,omitempty"`
	Subject     string               `json:"subject"`
	Text        string               `json:"text,omitempty"`
	HTML        string               `json:"html,omitempty"`
	InReplyTo   string               `json:"inReplyTo,omitempty"`
	References  string               `json:"references,omitempty"`
	Importance  string               `json:"importance,omitempty"` // low, normal or high
	Attachments []webhook.Attachment `json:"attachments,omitempty"`
}

// maxSendBody bounds a send's body when the handler is used on its own;
// httpapi bounds it first by EL_MAX_SEND_BYTES.
const maxSendBody = 48 << 20

// maxRecipients bounds a send's addresses.
const maxRecipients = 500

func (req *SendRequest) message(mb *mail.Mailbox) (*mail.Message, error) {
	msg := &mail.Message{Subject: req.Subject, Text: req.Text, HTML: req.HTML, InReplyTo: req.InReplyTo,
		References: req.References, From: mail.Address{Address: mb.SenderAddress}}
	if req.From != nil {
		msg.From = mail.Address{Name: req.From.Name, Address: req.From.Address}
	}
	if len(req.To)+len(req.Cc)+len(req.Bcc) == 0 {
		return nil, badRequest("to, cc or bcc: at least one recipient is required")
	}
	if len(req.To)+len(req.Cc)+len(req.Bcc)+len(req.ReplyTo) > maxRecipients {
		return nil, badRequest("at most %d addresses", maxRecipients)
	}
	conv := func(in []webhook.Address) []mail.Address {
		out := make([]mail.Address, 0, len(in))
		for _, a := range in {
			out = append(out, mail.Address{Name: a.Name, Address: a.Address})
		}
		return out
	}
	msg.To, msg.Cc, msg.Bcc, msg.ReplyTo = conv(req.To), conv(req.Cc), conv(req.Bcc), conv(req.ReplyTo)
	switch req.Importance {
	case "", "normal":
		msg.Importance = mail.ImportanceNormal
	case "low":
		msg.Importance = mail.ImportanceLow
	case "high":
		msg.Importance = mail.ImportanceHigh
	default:
		return nil, badRequest(`importance: "low", "normal" or "high"`)
	}
	for i, a := range req.Attachments {
		if a.Name == "" {
			return nil, badRequest("attachments[%d].name is required", i)
		}
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		msg.Attachments = append(msg.Attachments, mail.Attachment{Name: a.Name, ContentType: ct, ContentID: a.ContentID,
			Inline: a.Inline, Data: a.Data})
	}
	msg.MessageID = "<" + newID() + "@" + domain(msg.From.Address) + ">"
	return msg, nil
}

func domain(addr string) string {
	if _, d, ok := strings.Cut(addr, "@"); ok && d != "" && !strings.ContainsAny(d, "<> \t\r\n") {
		return d
	}
	return "emaillistener.invalid"
}

// sendVia returns the credentials mb sends with: an Exchange account's own
// (its server sends and keeps the copy in Sent Items), an IMAP account's
// SMTP server.
func sendVia(mb *mail.Mailbox) (*mail.Mailbox, error) {
	if mb.Kind == mail.ServerExchange {
		return mb, nil
	}
	s := mb.SMTP
	if s == nil {
		return nil, errorf(http.StatusConflict, "the account has no smtp settings: add them with PATCH /v1/accounts/%s", mb.ID)
	}
	// The send credentials carry the account's id: the copy in Sent goes to
	// the account's IMAP folders.
	smtp := &mail.Mailbox{ID: mb.ID, Kind: mb.Kind, ServerType: mb.ServerType, Host: s.Host, Port: s.Port, Secure: s.Secure,
		UseSSL: s.Secure == mail.SecureSSL, UserName: s.UserName, Password: s.Password, SenderAddress: mb.SenderAddress}
	if s.Password == "" && mb.UseOAuth { // XOAUTH2 with the account's access token
		smtp.UseOAuth, smtp.AccessToken = true, mb.AccessToken
	}
	return smtp, nil
}

// Sent is the answer of send.
type Sent struct {
	MessageID string `json:"messageId"`
}

func (h *Handler) send(w http.ResponseWriter, r *http.Request) error {
	mb, err := h.lookup(r)
	if err != nil {
		return err
	}
	smtp, err := sendVia(mb)
	if err != nil {
		return err
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var (
		id     string
		submit func(smtp *mail.Mailbox) error
	)
	if ct == "message/rfc822" {
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSendBody))
		if err != nil {
			return err
		}
		hdr, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return badRequest("the message's header cannot be read: %v", err)
		}
		id = hdr.Get("Message-Id")
		submit = func(smtp *mail.Mailbox) error { return h.opts.Accounts.SendRaw(r.Context(), smtp, raw) }
	} else {
		var req SendRequest
		if err := decodeWithin(w, r, maxSendBody, &req); err != nil {
			return err
		}
		msg, err := req.message(mb)
		if err != nil {
			return err
		}
		id = msg.MessageID
		submit = func(smtp *mail.Mailbox) error { return h.opts.Accounts.Send(r.Context(), smtp, msg) }
	}
	err = submit(smtp)
	if err != nil && smtp.UseOAuth && mail.ClassOf(err) == mail.ClassAuth && mb.OAuth2 != nil {
		// The access token expired since the IMAP session last logged in
		// (opaque tokens, as Gmail's, give no warning): once more with a
		// fresh one, which the account keeps. A refused login took nothing.
		if err = h.opts.Accounts.RenewToken(r.Context(), mb); err == nil {
			var cur *mail.Mailbox
			if cur, err = h.opts.Accounts.Mailbox(r.Context(), mb.ID); err == nil && cur != nil {
				smtp.AccessToken = cur.AccessToken
				err = submit(smtp)
			}
		}
	}
	if err != nil {
		return err
	}
	h.log.Info("native account sent mail", "account", mb.ID, "token", tokenName(r.Context()))
	writeJSON(w, http.StatusOK, Sent{MessageID: id})
	return nil
}

// Message fetches at once per node, and how long one waits for a turn:
// each holds up to EL_MAX_MESSAGE_BYTES and its parse, outside the budget
// of live deliveries.
const (
	maxFetches = 4
	fetchWait  = 5 * time.Second
)

// fetch downloads the message of the request's {message}; release frees its
// turn once the answer is written.
func (h *Handler) fetch(r *http.Request) (mb *mail.Mailbox, f *source.Fetched, release func(), err error) {
	if mb, err = h.lookup(r); err != nil {
		return nil, nil, nil, err
	}
	t := time.NewTimer(h.fetchWait)
	defer t.Stop()
	select {
	case h.fetches <- struct{}{}:
	case <-t.C:
		return nil, nil, nil, errorf(http.StatusServiceUnavailable, "too many message fetches at once (%d); retry shortly", maxFetches)
	case <-r.Context().Done():
		return nil, nil, nil, r.Context().Err()
	}
	release = func() { <-h.fetches }
	if f, err = h.download(r, mb); err != nil {
		release()
		return nil, nil, nil, err
	}
	return mb, f, release, nil
}

func (h *Handler) download(r *http.Request, mb *mail.Mailbox) (*source.Fetched, error) {
	key := r.PathValue("message")
	folder, id, ok := webhook.ParseMessageKey(key)
	if !ok || !serverID(mb.Kind, id) {
		return nil, errorf(http.StatusNotFound, "no message %q: use the id of a message.new event", mail.Excerpt(key, 64))
	}
	f, err := h.opts.Accounts.Message(r.Context(), mb, folder, id)
	switch {
	case errors.Is(err, source.ErrGone):
		return nil, errorf(http.StatusNotFound, "the server no longer has this message")
	case mail.ClassOf(err) == mail.ClassProtocol:
		return nil, errorf(http.StatusNotFound, "the server has no such message or folder: %v", err)
	}
	return f, err
}

// maxItemID bounds an Exchange item id (Exchange's are about 150
// characters of base64, Graph's about as long).
const maxItemID = 512

// serverID reports whether id can be a message's id on a server of kind:
// an IMAP UID, or an Exchange (EWS or Graph) item id.
func serverID(kind mail.ServerKind, id string) bool {
	if kind == mail.ServerExchange {
		return len(id) <= maxItemID && !strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r >= 0x7f })
	}
	n, err := strconv.ParseUint(id, 10, 32)
	return err == nil && n != 0
}

// parse parses a fetched message of mb as the webhook events show it.
func (h *Handler) parse(mb *mail.Mailbox, f *source.Fetched) (*mail.Message, error) {
	if h.opts.Parse == nil {
		return nil, errorf(http.StatusNotImplemented, "message parsing is not configured")
	}
	msg, err := ingest.Prepare(h.opts.Parse, mb, f)
	if err != nil {
		return nil, errorf(http.StatusUnprocessableEntity, "the message cannot be parsed: %v", err)
	}
	return msg, nil
}

func (h *Handler) message(w http.ResponseWriter, r *http.Request) error {
	mb, f, release, err := h.fetch(r)
	if err != nil {
		return err
	}
	defer release()
	switch r.URL.Query().Get("format") {
	case "raw":
		if f.Truncated {
			w.Header().Set("Emaillistener-Truncated", "header only: the message exceeds EL_MAX_MESSAGE_BYTES")
		}
		w.Header().Set("Content-Type", "message/rfc822")
		w.Header().Set("Content-Length", strconv.Itoa(len(f.Raw)))
		_, _ = w.Write(f.Raw)
		return nil
	case "", "json":
		msg, err := h.parse(mb, f)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, webhook.NewMessage(mb.ID, msg,
			webhook.MessageOptions{InlineMax: mb.WebhookInlineMax, LinkBase: h.opts.LinkBase}))
		return nil
	}
	return badRequest(`format: "json" (default) or "raw"`)
}

func (h *Handler) attachment(w http.ResponseWriter, r *http.Request) error {
	index, err := strconv.Atoi(r.PathValue("index"))
	if err != nil || index < 0 {
		return errorf(http.StatusNotFound, "no attachment %q", mail.Excerpt(r.PathValue("index"), 16))
	}
	mb, f, release, err := h.fetch(r)
	if err != nil {
		return err
	}
	defer release()
	msg, err := h.parse(mb, f)
	if err != nil {
		return err
	}
	if index >= len(msg.Attachments) {
		return errorf(http.StatusNotFound, "the message has %d attachments", len(msg.Attachments))
	}
	a := msg.Attachments[index]
	ct := a.ContentType
	if _, _, err := mime.ParseMediaType(ct); err != nil || ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(a.Data)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if d := mime.FormatMediaType("attachment", map[string]string{"filename": a.Name}); d != "" {
		w.Header().Set("Content-Disposition", d)
	} else {
		w.Header().Set("Content-Disposition", "attachment")
	}
	_, _ = w.Write(a.Data)
	return nil
}
