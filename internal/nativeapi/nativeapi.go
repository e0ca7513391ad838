// SPDX-License-Identifier: Apache-2.0

// Package nativeapi is the service's own REST API for clients other than
// Creatio, under /v1/: accounts (IMAP or Exchange mailboxes) registered in the
// same registry and placement as Creatio's, whose new emails are posted as
// signed webhook events (package webhook) instead of to Creatio. Requests
// carry "Authorization: Bearer <token>", a token of EL_API_TOKENS; without
// any the API answers 503. The routes are described by openapi.json, served
// at /v1/openapi.json.
package nativeapi

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/httpapi"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/source"
	"github.com/emaillistener/emaillistener/internal/webhook"
)

//go:embed openapi.json
var openAPI []byte

// Accounts is what the API needs of the service (service.Service).
type Accounts interface {
	// Subscribe registers and starts (or restarts) subscriptions.
	Subscribe(ctx context.Context, mbs []*mail.Mailbox, mode mail.Mode) error
	// Close stops and forgets subscriptions.
	Close(ctx context.Context, ids []mail.MailboxID) error
	// Mailboxes lists every registered mailbox; Mailbox reads one (nil when
	// there is none).
	Mailboxes(ctx context.Context) ([]*mail.Mailbox, error)
	Mailbox(ctx context.Context, id mail.MailboxID) (*mail.Mailbox, error)
	// Statuses returns the status of the ids some node serves.
	Statuses(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]mail.Status, error)
	// Folders lists the mailbox's folders (a session of its own).
	Folders(ctx context.Context, mb *mail.Mailbox) ([]creatio.MailboxFolder, error)
	// Validate logs in to the mailbox's server and says what went wrong.
	Validate(ctx context.Context, mb *mail.Mailbox) creatio.CredentialsValidationInfo
	// Synchronize starts a history load; History is its progress.
	Synchronize(ctx context.Context, mb *mail.Mailbox, q mail.Query) error
	History(id mail.MailboxID) (mail.HistoryProgress, bool)
	// Send and SendRaw send through the SMTP server mb describes.
	Send(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error
	SendRaw(ctx context.Context, mb *mail.Mailbox, raw []byte) error
	// Message downloads one message (service.ErrNoMessage when it is gone).
	Message(ctx context.Context, mb *mail.Mailbox, folder, id string) (*source.Fetched, error)
	// AccessToken redeems an OAuth account's refresh token; it returns the
	// refresh token to keep.
	AccessToken(ctx context.Context, o *mail.OAuth2) (access, refresh string, err error)
	// RenewToken gets an OAuth account a fresh access token and registers
	// it (an update the running subscription takes without a restart).
	RenewToken(ctx context.Context, mb *mail.Mailbox) error
}

// Options configures New.
type Options struct {
	Accounts Accounts
	Tokens   *Tokens // nil or empty: the API is disabled (503)
	// Parse turns a fetched message into an email (required for message
	// fetch); LinkBase prefixes attachment links (EL_PUBLIC_URL).
	Parse    func(raw []byte) (*mail.Message, error)
	LinkBase string
	Logger   *slog.Logger
}

// Handler serves /v1/.
type Handler struct {
	opts      Options
	log       *slog.Logger
	mux       *http.ServeMux
	fetches   chan struct{} // message fetches running (maxFetches)
	fetchWait time.Duration
}

// route is one operation, its path in OpenAPI form (which is also
// http.ServeMux's).
type route struct {
	Method, Path string
	public       bool // answered without a token
}

// routes lists every operation the handler serves; openapi.json documents
// exactly these (TestOpenAPICoversRoutes).
var routes = []route{
	{Method: http.MethodGet, Path: "/v1/openapi.json", public: true},
	{Method: http.MethodGet, Path: "/v1/accounts"},
	{Method: http.MethodPost, Path: "/v1/accounts"},
	{Method: http.MethodGet, Path: "/v1/accounts/{id}"},
	{Method: http.MethodPatch, Path: "/v1/accounts/{id}"},
	{Method: http.MethodDelete, Path: "/v1/accounts/{id}"},
	{Method: http.MethodGet, Path: "/v1/accounts/{id}/folders"},
	{Method: http.MethodPost, Path: "/v1/accounts/{id}/validate"},
	{Method: http.MethodPost, Path: "/v1/accounts/{id}/sync"},
	{Method: http.MethodPost, Path: "/v1/accounts/{id}/send"},
	{Method: http.MethodGet, Path: "/v1/accounts/{id}/messages/{message}"},
	{Method: http.MethodGet, Path: "/v1/accounts/{id}/messages/{message}/attachments/{index}"},
}

// maxBody bounds a request body when the handler is used on its own (httpapi
// bounds it first).
const maxBody = 1 << 20

// New returns the handler; it does no I/O.
func New(opts Options) (*Handler, error) {
	if opts.Accounts == nil {
		return nil, errors.New("nativeapi: Options.Accounts is required")
	}
	if opts.Logger == nil {
		opts.Logger = obs.Discard()
	}
	h := &Handler{opts: opts, log: opts.Logger, mux: http.NewServeMux(), fetches: make(chan struct{}, maxFetches),
		fetchWait: fetchWait}
	ops := map[string]func(http.ResponseWriter, *http.Request) error{
		"GET /v1/openapi.json":                                         h.openapi,
		"GET /v1/accounts":                                             h.list,
		"POST /v1/accounts":                                            h.create,
		"GET /v1/accounts/{id}":                                        h.get,
		"PATCH /v1/accounts/{id}":                                      h.update,
		"DELETE /v1/accounts/{id}":                                     h.delete,
		"GET /v1/accounts/{id}/folders":                                h.folders,
		"POST /v1/accounts/{id}/validate":                              h.validate,
		"POST /v1/accounts/{id}/sync":                                  h.sync,
		"POST /v1/accounts/{id}/send":                                  h.send,
		"GET /v1/accounts/{id}/messages/{message}":                     h.message,
		"GET /v1/accounts/{id}/messages/{message}/attachments/{index}": h.attachment,
	}
	for _, r := range routes {
		op := ops[r.Method+" "+r.Path]
		if op == nil {
			return nil, fmt.Errorf("nativeapi: no handler for %s %s", r.Method, r.Path)
		}
		h.mux.Handle(r.Method+" "+r.Path, h.wrap(r, op))
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// wrap applies authentication and maps errors to statuses.
func (h *Handler) wrap(rt route, op func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !rt.public {
			if !h.opts.Tokens.Enabled() {
				writeError(w, http.StatusServiceUnavailable, "native API disabled: set EL_API_TOKENS")
				return
			}
			g, ok := h.opts.Tokens.Check(r.Header.Get("Authorization"))
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="emaillistener"`)
				writeError(w, http.StatusUnauthorized, errNoToken.Error()+" with a token of EL_API_TOKENS")
				return
			}
			if g.Scope == ScopeRead && r.Method != http.MethodGet {
				writeError(w, http.StatusForbidden, "this token may only read (scope read in EL_API_TOKENS)")
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), grantKey{}, g))
		}
		if err := op(w, r); err != nil {
			h.fail(w, r, err)
		}
	})
}

type grantKey struct{}

// grant is the request's token's grant (public routes: the zero grant).
func grant(ctx context.Context) Grant { g, _ := ctx.Value(grantKey{}).(Grant); return g }

func tokenName(ctx context.Context) string { return grant(ctx).Name }

// apiError is an error with its status.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var mbe *http.MaxBytesError
	code, msg := http.StatusInternalServerError, "internal error"
	switch {
	case errors.As(err, &ae):
		code, msg = ae.code, ae.msg
	case errors.As(err, &mbe):
		code, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.Is(err, httpapi.ErrUnavailable):
		code, msg = http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, httpapi.ErrUnsupported):
		code, msg = http.StatusNotImplemented, err.Error()
	case errors.As(err, new(*mail.UserError)):
		// A mail server's answer or a message it cannot take, in words for
		// the user: the request was fine, the server (or the mail) was not.
		code, msg = http.StatusBadGateway, err.Error()
		if mail.ClassOf(err) == mail.ClassConfig {
			code = http.StatusUnprocessableEntity
		}
	}
	if code == http.StatusInternalServerError {
		h.log.Error("native api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, code, msg)
}

type errorBody struct {
	Error string `json:"error"`
	Code  int    `json:"code"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: mail.Excerpt(msg, 1024), Code: code})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // message ids and addresses keep their angle brackets
	b := []byte(`{"error":"internal error","code":500}`)
	if err := enc.Encode(v); err != nil {
		code = http.StatusInternalServerError
	} else {
		b = buf.Bytes()
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func (h *Handler) openapi(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(openAPI)
	return nil
}

// AccountRequest is the body of POST /v1/accounts, and of PATCH, where it
// is applied over the account's current settings (fields left out keep
// their values; secrets are kept unless given).
type AccountRequest struct {
	ID    string `json:"id,omitempty"`
	Email string `json:"email"`
	// One of IMAP (with SMTP to send) and Exchange.
	IMAP     *Server   `json:"imap,omitempty"`
	SMTP     *Server   `json:"smtp,omitempty"`
	Exchange *Exchange `json:"exchange,omitempty"`
	Folders  []string  `json:"folders,omitempty"`
	Webhook  Webhook   `json:"webhook"`
}

// Exchange is an Exchange mailbox: on premises through EWS, on Exchange
// Online the way EL_EXCHANGE_ONLINE says (Microsoft Graph with the
// service's application credentials needs no password). It sends through
// the same server, so it needs no SMTP block.
type Exchange struct {
	// URL is the EWS URL or the server's host name; empty: Autodiscover
	// from the email address's domain.
	URL      string `json:"url,omitempty"`
	User     string `json:"user,omitempty"` // default: the email address; DOMAIN\user for NTLM
	Password string `json:"password,omitempty"`
}

// Server is a mail server and the login on it.
type Server struct {
	Host     string `json:"host"`
	Port     int    `json:"port,omitempty"`
	Secure   string `json:"secure,omitempty"` // tls (default), starttls or none
	User     string `json:"user,omitempty"`   // default: the email address (SMTP: the IMAP user)
	Password string `json:"password,omitempty"`
	// OAuth2 logs in to IMAP with XOAUTH2 instead of a password (SMTP then
	// uses the same access token unless given a password).
	OAuth2 *OAuth2 `json:"oauth2,omitempty"`
}

// OAuth2 is the OAuth client and refresh token an account's access tokens
// come from (Gmail, Microsoft 365, any RFC 6749 provider): the service
// redeems the refresh token at once, and again whenever the server rejects
// the access token or it is about to expire.
type OAuth2 struct {
	TokenURL     string   `json:"tokenUrl"`
	ClientID     string   `json:"clientId"`
	ClientSecret string   `json:"clientSecret,omitempty"`
	RefreshToken string   `json:"refreshToken,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
}

// Webhook is where an account's events go, which, and how.
type Webhook struct {
	URL    string   `json:"url"`
	Secret string   `json:"secret,omitempty"`
	Events []string `json:"events,omitempty"` // empty: all
	// Payload of message.new: "parsed" (default) or "raw" (the MIME, base64).
	Payload string `json:"payload,omitempty"`
	// MaxInlineAttachmentBytes: larger attachments come as links (default
	// 256 KiB; 0: every attachment as a link).
	MaxInlineAttachmentBytes *int `json:"maxInlineAttachmentBytes,omitempty"`
}

// Account is an account as the API shows it: no password, no secret.
type Account struct {
	ID       string            `json:"id"`
	Email    string            `json:"email"`
	IMAP     *Server           `json:"imap,omitempty"`
	SMTP     *Server           `json:"smtp,omitempty"`
	Exchange *Exchange         `json:"exchange,omitempty"`
	Folders  []string          `json:"folders"`
	Webhook  Webhook           `json:"webhook"`
	State    string            `json:"state"`
	Status   *Status           `json:"status,omitempty"`
	Sync     *webhook.Progress `json:"sync,omitempty"` // the last history load started on the answering node
}

// Status details an account's state.
type Status struct {
	ErrorClass  string   `json:"errorClass,omitempty"`
	LastError   string   `json:"lastError,omitempty"`
	Node        string   `json:"node,omitempty"`
	Since       string   `json:"since,omitempty"`
	RetryAt     string   `json:"retryAt,omitempty"`
	LastEventAt string   `json:"lastEventAt,omitempty"`
	Delivered   uint64   `json:"delivered"`
	Folders     []string `json:"folders"`
	Stale       bool     `json:"stale,omitempty"`
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Bounds of what an account may ask for.
const (
	minSecretLen = 16
	maxSecretLen = 256
	maxFolders   = 1000
	maxURL       = 2048
	maxScopes    = 32
	maxOAuthText = 4096 // client id, secret, refresh token, scope
)

func badRequest(format string, args ...any) error {
	return errorf(http.StatusBadRequest, format, args...)
}

// secure parses a "secure" field into the option and its default port.
func secure(field, v string, ports [3]int) (mail.SecureOption, int, error) {
	var opt mail.SecureOption
	switch strings.ToLower(v) {
	case "", "tls":
		opt = mail.SecureSSL
	case "starttls":
		opt = mail.SecureStartTLS
	case "none":
		opt = mail.SecureNone
	default:
		return 0, 0, badRequest(`%s.secure: "tls", "starttls" or "none"`, field)
	}
	return opt, defaultPort(opt, ports), nil
}

// defaultPort is the port of ports (tls, starttls, none) for secure.
func defaultPort(secure mail.SecureOption, ports [3]int) int {
	switch secure {
	case mail.SecureStartTLS:
		return ports[1]
	case mail.SecureNone:
		return ports[2]
	}
	return ports[0]
}

// server validates a server block; user and password default to the
// given ones. oauth: the login may be a token instead of a password.
func (sv Server) server(field string, ports [3]int, user, password string, oauth bool) (*mail.Server, error) {
	out := &mail.Server{Host: strings.TrimSpace(sv.Host), UserName: sv.User, Password: sv.Password}
	if out.Host == "" || strings.ContainsAny(out.Host, "/ ") {
		return nil, badRequest("%s.host: a host name or address is required", field)
	}
	var err error
	if out.Secure, out.Port, err = secure(field, sv.Secure, ports); err != nil {
		return nil, err
	}
	if sv.Port != 0 {
		if sv.Port < 1 || sv.Port > 65535 {
			return nil, badRequest("%s.port: 1 to 65535", field)
		}
		out.Port = sv.Port
	}
	if out.UserName == "" {
		out.UserName = user
	}
	if out.Password == "" {
		out.Password = password
	}
	if out.Password == "" && !oauth {
		return nil, badRequest("%s.password (or, for imap, oauth2) is required", field)
	}
	return out, nil
}

// client validates an oauth2 block.
func (o *OAuth2) client() (*mail.OAuth2, error) {
	u, err := url.Parse(o.TokenURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || len(o.TokenURL) > maxURL {
		return nil, badRequest("imap.oauth2.tokenUrl: the provider's token endpoint, an absolute http(s) URL")
	}
	if o.ClientID == "" || o.RefreshToken == "" {
		return nil, badRequest("imap.oauth2: clientId and refreshToken are required")
	}
	if len(o.Scopes) > maxScopes {
		return nil, badRequest("imap.oauth2.scopes: at most %d", maxScopes)
	}
	for _, s := range append([]string{o.ClientID, o.ClientSecret, o.RefreshToken}, o.Scopes...) {
		if len(s) > maxOAuthText {
			return nil, badRequest("imap.oauth2: a value longer than %d characters", maxOAuthText)
		}
	}
	return &mail.OAuth2{TokenURL: o.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret, RefreshToken: o.RefreshToken,
		Scopes: slices.Clone(o.Scopes)}, nil
}

// mailbox validates req and turns it into a native mailbox.
func (req *AccountRequest) mailbox() (*mail.Mailbox, error) {
	id := strings.ToLower(strings.TrimSpace(req.ID))
	if id == "" {
		id = newID()
	} else if !idPattern.MatchString(id) {
		return nil, badRequest("id: 1 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit")
	}
	email := strings.TrimSpace(req.Email)
	if email == "" || !strings.Contains(email, "@") {
		return nil, badRequest("email: an email address is required")
	}
	var mb *mail.Mailbox
	var err error
	switch {
	case req.IMAP != nil && req.Exchange != nil:
		return nil, badRequest("imap and exchange exclude each other (to change an account's kind, set the other to null)")
	case req.Exchange != nil:
		if req.SMTP != nil {
			return nil, badRequest("smtp: an exchange account sends through its Exchange server")
		}
		mb, err = req.Exchange.mailbox(email)
	case req.IMAP != nil:
		mb, err = req.imapMailbox(email)
	default:
		return nil, badRequest("imap or exchange is required")
	}
	if err != nil {
		return nil, err
	}
	mb.ID, mb.SenderAddress, mb.Client = mail.MailboxID(id), email, mail.ClientNative
	if len(req.Folders) > maxFolders {
		return nil, badRequest("folders: at most %d", maxFolders)
	}
	for _, f := range req.Folders {
		if strings.TrimSpace(f) == "" {
			return nil, badRequest("folders: empty folder name")
		}
	}
	mb.FolderIDs = slices.Clone(req.Folders)
	return mb, req.Webhook.apply(mb)
}

// imapMailbox validates the imap and smtp blocks.
func (req *AccountRequest) imapMailbox(email string) (*mail.Mailbox, error) {
	oauth := req.IMAP.OAuth2 != nil
	if oauth && req.IMAP.Password != "" {
		return nil, badRequest("imap: password and oauth2 exclude each other")
	}
	imap, err := req.IMAP.server("imap", imapPorts, email, "", oauth)
	if err != nil {
		return nil, err
	}
	mb := &mail.Mailbox{Kind: mail.ServerIMAP, ServerType: "imap", Host: imap.Host, Port: imap.Port, Secure: imap.Secure,
		UseSSL: imap.Secure == mail.SecureSSL, UserName: imap.UserName, Password: imap.Password, UseOAuth: oauth}
	if oauth {
		if mb.OAuth2, err = req.IMAP.OAuth2.client(); err != nil {
			return nil, err
		}
	}
	if req.SMTP != nil {
		if req.SMTP.OAuth2 != nil {
			return nil, badRequest("smtp.oauth2: SMTP uses the imap block's OAuth client")
		}
		if mb.SMTP, err = req.SMTP.server("smtp", smtpPorts, imap.UserName, imap.Password, oauth); err != nil {
			return nil, err
		}
	}
	return mb, nil
}

// mailbox validates an exchange block. Without a URL the server is found
// by Autodiscover, as Creatio's IsAutodiscover does.
func (ex *Exchange) mailbox(email string) (*mail.Mailbox, error) {
	u := strings.TrimSpace(ex.URL)
	mb := &mail.Mailbox{Kind: mail.ServerExchange, ServerType: "exchange", Host: u, Secure: mail.SecureSSL, UseSSL: true,
		UserName: strings.TrimSpace(ex.User), Password: ex.Password}
	switch {
	case u == "":
		mb.Extra = map[string]string{creatio.ExtraIsAutodiscover: "true"}
	case len(u) > maxURL:
		return nil, badRequest("exchange.url: at most %d characters", maxURL)
	case strings.Contains(u, "://"):
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Hostname() == "" || p.User != nil {
			return nil, badRequest("exchange.url: an http(s) EWS URL without credentials, or a host name")
		}
	case strings.ContainsAny(u, "/ @"):
		return nil, badRequest("exchange.url: an http(s) EWS URL without credentials, or a host name")
	}
	if mb.UserName == "" {
		mb.UserName = email
	}
	return mb, nil
}

// apply validates the webhook block into mb.
func (wh Webhook) apply(mb *mail.Mailbox) error {
	u, err := url.Parse(wh.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return badRequest("webhook.url: an absolute http(s) URL without credentials is required")
	}
	mb.WebhookURL = u.String()
	if n := len(wh.Secret); n < minSecretLen || n > maxSecretLen {
		return badRequest("webhook.secret: %d to %d characters are required", minSecretLen, maxSecretLen)
	}
	mb.WebhookSecret = wh.Secret
	mb.WebhookEvents = nil
	for _, ev := range wh.Events {
		if !slices.Contains(webhook.Types, ev) {
			return badRequest("webhook.events: %q is not one of %s", mail.Excerpt(ev, 64), strings.Join(webhook.Types, ", "))
		}
		if !slices.Contains(mb.WebhookEvents, ev) {
			mb.WebhookEvents = append(mb.WebhookEvents, ev)
		}
	}
	switch wh.Payload {
	case "", "parsed":
		mb.WebhookRaw = false
	case "raw":
		mb.WebhookRaw = true
	default:
		return badRequest(`webhook.payload: "parsed" or "raw"`)
	}
	switch n := wh.MaxInlineAttachmentBytes; {
	case n == nil:
		mb.WebhookInlineMax = 0
	case *n < 0 || *n > maxInline:
		return badRequest("webhook.maxInlineAttachmentBytes: 0 to %d", maxInline)
	case *n == 0:
		mb.WebhookInlineMax = -1
	default:
		mb.WebhookInlineMax = *n
	}
	return nil
}

// maxInline bounds the inline attachment size an account may ask for: an
// event is held in memory while it is retried.
const maxInline = 16 << 20

// request rebuilds the request that makes mb, secrets included: PATCH
// applies its body over it.
func request(mb *mail.Mailbox) AccountRequest {
	req := AccountRequest{ID: string(mb.ID), Email: mb.SenderAddress, Folders: mb.FolderIDs, Webhook: webhookOf(mb)}
	if mb.Kind == mail.ServerExchange {
		req.Exchange = exchangeOf(mb)
		req.Exchange.Password = mb.Password
	} else {
		req.IMAP = &Server{Host: mb.Host, Port: explicitPort(mb.Secure, mb.Port, imapPorts), Secure: secureName(mb.Secure),
			User: mb.UserName, Password: mb.Password}
		if o := mb.OAuth2; o != nil {
			req.IMAP.OAuth2 = &OAuth2{TokenURL: o.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
				RefreshToken: o.RefreshToken, Scopes: o.Scopes}
		}
	}
	// Defaults stay defaults, so that a PATCH that does not touch them
	// leaves the subscription as it is.
	req.Webhook.Secret, req.Webhook.Events = mb.WebhookSecret, mb.WebhookEvents
	if mb.WebhookInlineMax == 0 {
		req.Webhook.MaxInlineAttachmentBytes = nil
	}
	if s := mb.SMTP; s != nil {
		req.SMTP = &Server{Host: s.Host, Port: explicitPort(s.Secure, s.Port, smtpPorts), Secure: secureName(s.Secure),
			User: s.UserName, Password: s.Password}
	}
	return req
}

// Default ports by "secure": tls, starttls, none.
var (
	imapPorts = [3]int{993, 143, 143}
	smtpPorts = [3]int{465, 587, 25}
)

// explicitPort is port, or 0 when it is the default for secure: a PATCH
// that changes only "secure" then gets that option's default port.
func explicitPort(secure mail.SecureOption, port int, ports [3]int) int {
	if port == defaultPort(secure, ports) {
		return 0
	}
	return port
}

// exchangeOf shows an exchange account's server, without the password.
func exchangeOf(mb *mail.Mailbox) *Exchange {
	ex := &Exchange{URL: mb.Host, User: mb.UserName}
	if mb.Extra[creatio.ExtraIsAutodiscover] == "true" {
		ex.URL = ""
	}
	return ex
}

// webhookOf shows mb's webhook settings, without the secret.
func webhookOf(mb *mail.Mailbox) Webhook {
	wh := Webhook{URL: mb.WebhookURL, Events: mb.WebhookEvents, Payload: "parsed"}
	if mb.WebhookRaw {
		wh.Payload = "raw"
	}
	n := webhook.DefaultInlineMax
	switch {
	case mb.WebhookInlineMax < 0:
		n = 0
	case mb.WebhookInlineMax > 0:
		n = mb.WebhookInlineMax
	}
	wh.MaxInlineAttachmentBytes = &n
	if wh.Events == nil {
		wh.Events = slices.Clone(webhook.Types)
	}
	return wh
}

// newID returns a random UUID (version 4) in lower case.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func secureName(s mail.SecureOption) string {
	switch s {
	case mail.SecureStartTLS:
		return "starttls"
	case mail.SecureNone:
		return "none"
	}
	return "tls"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// account renders mb with its status (nil: no node serves it).
func account(mb *mail.Mailbox, st *mail.Status) Account {
	a := Account{ID: string(mb.ID), Email: mb.SenderAddress, Folders: mb.FolderIDs, Webhook: webhookOf(mb), State: mail.StateClosed}
	if mb.Kind == mail.ServerExchange {
		a.Exchange = exchangeOf(mb)
	} else {
		a.IMAP = &Server{Host: mb.Host, Port: mb.Port, Secure: secureName(mb.Secure), User: mb.UserName}
		if o := mb.OAuth2; o != nil { // without its secrets
			a.IMAP.OAuth2 = &OAuth2{TokenURL: o.TokenURL, ClientID: o.ClientID, Scopes: o.Scopes}
		}
	}
	if s := mb.SMTP; s != nil {
		a.SMTP = &Server{Host: s.Host, Port: s.Port, Secure: secureName(s.Secure), User: s.UserName}
	}
	if a.Folders == nil {
		a.Folders = []string{}
	}
	if st == nil {
		return a
	}
	if !st.Stale {
		a.State = st.State
	}
	a.Status = &Status{ErrorClass: st.ErrorClass, LastError: st.LastError, Node: st.Node, Since: stamp(st.Since),
		RetryAt: stamp(st.RetryAt), LastEventAt: stamp(st.LastEventAt), Delivered: st.Delivered, Folders: st.Folders, Stale: st.Stale}
	if a.Status.Folders == nil {
		a.Status.Folders = []string{}
	}
	return a
}

// natives returns the registered native mailboxes.
func (h *Handler) natives(ctx context.Context) ([]*mail.Mailbox, error) {
	all, err := h.opts.Accounts.Mailboxes(ctx)
	if err != nil {
		return nil, err
	}
	g := grant(ctx)
	out := all[:0:0]
	for _, mb := range all {
		if mb.Native() && g.reaches(string(mb.ID)) {
			out = append(out, mb)
		}
	}
	slices.SortFunc(out, func(a, b *mail.Mailbox) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out, nil
}

func (h *Handler) render(ctx context.Context, mbs []*mail.Mailbox) ([]Account, error) {
	ids := make([]mail.MailboxID, len(mbs))
	for i, mb := range mbs {
		ids[i] = mb.ID
	}
	states, err := h.opts.Accounts.Statuses(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]Account, len(mbs))
	for i, mb := range mbs {
		var st *mail.Status
		if v, ok := states[mb.ID]; ok {
			st = &v
		}
		out[i] = account(mb, st)
		if p, ok := h.opts.Accounts.History(mb.ID); ok {
			out[i].Sync = webhook.NewProgress(p)
		}
	}
	return out, nil
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) error {
	mbs, err := h.natives(r.Context())
	if err != nil {
		return err
	}
	accounts, err := h.render(r.Context(), mbs)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"accounts": accounts})
	return nil
}

// lookup returns the native account of the request's {id}, or a 404 error.
func (h *Handler) lookup(r *http.Request) (*mail.Mailbox, error) {
	id := mail.MailboxID(strings.ToLower(r.PathValue("id")))
	mb, err := h.opts.Accounts.Mailbox(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if mb == nil || !mb.Native() || !grant(r.Context()).reaches(string(mb.ID)) {
		return nil, errorf(http.StatusNotFound, "no account %q", mail.Excerpt(string(id), 64))
	}
	return mb, nil
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) error {
	mb, err := h.lookup(r)
	if err != nil {
		return err
	}
	accounts, err := h.render(r.Context(), []*mail.Mailbox{mb})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, accounts[0])
	return nil
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) error {
	mb, err := h.lookup(r)
	if err != nil {
		return err
	}
	if err := h.opts.Accounts.Close(r.Context(), []mail.MailboxID{mb.ID}); err != nil {
		return err
	}
	h.log.Info("native account deleted", "account", mb.ID, "token", tokenName(r.Context()))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Folder is one folder of an account: its name on the server (what
// "folders" in an account takes), display name and parent.
type Folder struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Parent string `json:"parent,omitempty"`
}

func (h *Handler) folders(w http.ResponseWriter, r *http.Request) error {
	mb, err := h.lookup(r)
	if err != nil {
		return err
	}
	list, err := h.opts.Accounts.Folders(r.Context(), mb)
	if err != nil {
		return err
	}
	out := make([]Folder, 0, len(list))
	for _, f := range list {
		out = append(out, Folder{ID: f.ID, Name: f.Name, Parent: f.ParentID})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// Validation is the answer of validate.
type Validation struct {
	Valid   bool   `json:"valid"`
	Message string `json:"message,omitempty"`
}

func (h *Handler) validate(w http.ResponseWriter, r *http.Request) error {
	mb, err := h.lookup(r)
	if err != nil {
		return err
	}
	v := h.opts.Accounts.Validate(r.Context(), mb)
	writeJSON(w, http.StatusOK, Validation{Valid: v.IsValid, Message: v.Message})
	return nil
}

// decode reads a JSON body into v, refusing unknown fields.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeWithin(w, r, maxBody, v)
}

func decodeWithin(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body: %v", err)
	}
	if dec.More() {
		return badRequest("request body: one JSON object expected")
	}
	return nil
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) error {
	var req AccountRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if g := grant(r.Context()); g.Prefix != "" {
		switch id := strings.ToLower(strings.TrimSpace(req.ID)); {
		case id == "":
			req.ID = g.Prefix + newID()
		case !g.reaches(id):
			return errorf(http.StatusForbidden, "this token may only make accounts whose id starts with %q", g.Prefix)
		}
	}
	mb, err := req.mailbox()
	if err != nil {
		return err
	}
	old, err := h.opts.Accounts.Mailbox(r.Context(), mb.ID)
	if err != nil {
		return err
	}
	mode, code := mail.ModeCreate, http.StatusCreated
	if old != nil {
		if !old.Native() {
			return errorf(http.StatusConflict, "id %q belongs to a mailbox of another client", mb.ID)
		}
		mode, code = mail.ModeRecreate, http.StatusOK
	}
	if err := h.token(r, old, mb); err != nil {
		return err
	}
	return h.register(w, r, mb, mode, code)
}

// update applies a partial account over the account's settings.
func (h *Handler) update(w http.ResponseWriter, r *http.Request) error {
	old, err := h.lookup(r)
	if err != nil {
		return err
	}
	req := request(old)
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if !strings.EqualFold(strings.TrimSpace(req.ID), string(old.ID)) {
		return badRequest("id cannot be changed (delete the account and create another)")
	}
	mb, err := req.mailbox()
	if err != nil {
		return err
	}
	if err := h.token(r, old, mb); err != nil {
		return err
	}
	return h.register(w, r, mb, mail.ModeRecreate, http.StatusOK)
}

// token gives an OAuth account its access token: old's while the OAuth
// client and refresh token are unchanged, else a new one from the
// provider, now, so that a wrong client or a revoked grant is a clear
// answer to this request instead of a failed login later.
func (h *Handler) token(r *http.Request, old, mb *mail.Mailbox) error {
	if mb.OAuth2 == nil {
		return nil
	}
	if old != nil && old.OAuth2 != nil && old.AccessToken != "" && reflect.DeepEqual(*old.OAuth2, *mb.OAuth2) {
		mb.AccessToken = old.AccessToken
		return nil
	}
	access, refresh, err := h.opts.Accounts.AccessToken(r.Context(), mb.OAuth2)
	if err != nil {
		if c := mail.ClassOf(err); c == mail.ClassAuth || c == mail.ClassConfig {
			return errorf(http.StatusUnprocessableEntity, "imap.oauth2: %v", err)
		}
		return errorf(http.StatusBadGateway, "imap.oauth2: %v", err)
	}
	mb.AccessToken, mb.OAuth2.RefreshToken = access, refresh
	return nil
}

// register subscribes mb and answers with the account.
func (h *Handler) register(w http.ResponseWriter, r *http.Request, mb *mail.Mailbox, mode mail.Mode, code int) error {
	if err := h.opts.Accounts.Subscribe(r.Context(), []*mail.Mailbox{mb}, mode); err != nil {
		return err
	}
	h.log.Info("native account registered", "account", mb.ID, "mode", mode, "host", mb.Host, "token", tokenName(r.Context()))
	accounts, err := h.render(r.Context(), []*mail.Mailbox{mb})
	if err != nil {
		return err
	}
	if code == http.StatusCreated {
		w.Header().Set("Location", "accounts/"+string(mb.ID))
	}
	writeJSON(w, code, accounts[0])
	return nil
}
