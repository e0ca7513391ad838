// SPDX-License-Identifier: Apache-2.0

// Package nativeapi is the service's own REST API for clients other than
// Creatio, under /v1/ (issue 15): accounts (IMAP mailboxes) registered in the
// same registry and placement as Creatio's, whose new emails are posted as
// signed webhook events (package webhook) instead of to Creatio. Requests
// carry "Authorization: Bearer <token>", a token of EL_API_TOKENS; without
// any the API answers 503. The routes are described by openapi.json, served
// at /v1/openapi.json.
package nativeapi

import (
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
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/httpapi"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
)

//go:embed openapi.json
var openAPI []byte

// Accounts is what the API needs of the service (service.Service).
type Accounts interface {
	// Subscribe registers and starts (or restarts) subscriptions.
	Subscribe(ctx context.Context, mbs []*mail.Mailbox, mode mail.Mode) error
	// Close stops and forgets subscriptions.
	Close(ctx context.Context, ids []mail.MailboxID) error
	// Mailboxes lists every registered mailbox.
	Mailboxes(ctx context.Context) ([]*mail.Mailbox, error)
	// Statuses returns the status of the ids some node serves.
	Statuses(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]mail.Status, error)
	// Folders lists the mailbox's folders (a session of its own).
	Folders(ctx context.Context, mb *mail.Mailbox) ([]creatio.MailboxFolder, error)
	// Validate logs in to the mailbox's server and says what went wrong.
	Validate(ctx context.Context, mb *mail.Mailbox) creatio.CredentialsValidationInfo
}

// Options configures New.
type Options struct {
	Accounts Accounts
	Tokens   *Tokens // nil or empty: the API is disabled (503)
	Logger   *slog.Logger
}

// Handler serves /v1/.
type Handler struct {
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
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
	{Method: http.MethodDelete, Path: "/v1/accounts/{id}"},
	{Method: http.MethodGet, Path: "/v1/accounts/{id}/folders"},
	{Method: http.MethodPost, Path: "/v1/accounts/{id}/validate"},
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
	h := &Handler{opts: opts, log: opts.Logger, mux: http.NewServeMux()}
	ops := map[string]func(http.ResponseWriter, *http.Request) error{
		"GET /v1/openapi.json":            h.openapi,
		"GET /v1/accounts":                h.list,
		"POST /v1/accounts":               h.create,
		"GET /v1/accounts/{id}":           h.get,
		"DELETE /v1/accounts/{id}":        h.delete,
		"GET /v1/accounts/{id}/folders":   h.folders,
		"POST /v1/accounts/{id}/validate": h.validate,
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
			name, scope, ok := h.opts.Tokens.Check(r.Header.Get("Authorization"))
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="emaillistener"`)
				writeError(w, http.StatusUnauthorized, errNoToken.Error()+" with a token of EL_API_TOKENS")
				return
			}
			if scope == ScopeRead && r.Method != http.MethodGet {
				writeError(w, http.StatusForbidden, "this token may only read (scope read in EL_API_TOKENS)")
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), tokenKey{}, name))
		}
		if err := op(w, r); err != nil {
			h.fail(w, r, err)
		}
	})
}

type tokenKey struct{}

func tokenName(ctx context.Context) string { s, _ := ctx.Value(tokenKey{}).(string); return s }

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
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error","code":500}`)
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

// AccountRequest is the body of POST /v1/accounts.
type AccountRequest struct {
	ID      string   `json:"id,omitempty"`
	Email   string   `json:"email"`
	IMAP    IMAP     `json:"imap"`
	Folders []string `json:"folders,omitempty"`
	Webhook Webhook  `json:"webhook"`
}

// IMAP is an account's IMAP server and login.
type IMAP struct {
	Host     string `json:"host"`
	Port     int    `json:"port,omitempty"`
	Secure   string `json:"secure,omitempty"` // tls (default), starttls or none
	User     string `json:"user,omitempty"`   // default: the email address
	Password string `json:"password,omitempty"`
}

// Webhook is where an account's events go.
type Webhook struct {
	URL    string `json:"url"`
	Secret string `json:"secret,omitempty"`
}

// Account is an account as the API shows it: no password, no secret.
type Account struct {
	ID      string   `json:"id"`
	Email   string   `json:"email"`
	IMAP    IMAP     `json:"imap"`
	Folders []string `json:"folders"`
	Webhook Webhook  `json:"webhook"`
	State   string   `json:"state"`
	Status  *Status  `json:"status,omitempty"`
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

// maxSecretLen and minSecretLen bound a webhook secret.
const (
	minSecretLen = 16
	maxSecretLen = 256
)

// mailbox validates req and turns it into a native mailbox.
func (req *AccountRequest) mailbox() (*mail.Mailbox, error) {
	bad := func(format string, args ...any) error { return errorf(http.StatusBadRequest, format, args...) }
	id := strings.ToLower(strings.TrimSpace(req.ID))
	if id == "" {
		id = newID()
	} else if !idPattern.MatchString(id) {
		return nil, bad("id: 1 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit")
	}
	email := strings.TrimSpace(req.Email)
	if email == "" || !strings.Contains(email, "@") {
		return nil, bad("email: an email address is required")
	}
	mb := &mail.Mailbox{ID: mail.MailboxID(id), Kind: mail.ServerIMAP, ServerType: "imap", SenderAddress: email,
		Client: mail.ClientNative, UserName: req.IMAP.User, Password: req.IMAP.Password}
	if mb.Host = strings.TrimSpace(req.IMAP.Host); mb.Host == "" || strings.ContainsAny(mb.Host, "/ ") {
		return nil, bad("imap.host: a host name or address is required")
	}
	switch strings.ToLower(req.IMAP.Secure) {
	case "", "tls":
		mb.Secure, mb.UseSSL, mb.Port = mail.SecureSSL, true, 993
	case "starttls":
		mb.Secure, mb.Port = mail.SecureStartTLS, 143
	case "none":
		mb.Secure, mb.Port = mail.SecureNone, 143
	default:
		return nil, bad(`imap.secure: "tls", "starttls" or "none"`)
	}
	if req.IMAP.Port != 0 {
		if req.IMAP.Port < 1 || req.IMAP.Port > 65535 {
			return nil, bad("imap.port: 1 to 65535")
		}
		mb.Port = req.IMAP.Port
	}
	if mb.UserName == "" {
		mb.UserName = email
	}
	if mb.Password == "" {
		return nil, bad("imap.password is required")
	}
	for _, f := range req.Folders {
		if strings.TrimSpace(f) == "" {
			return nil, bad("folders: empty folder name")
		}
	}
	mb.FolderIDs = slices.Clone(req.Folders)
	u, err := url.Parse(req.Webhook.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, bad("webhook.url: an absolute http(s) URL without credentials is required")
	}
	mb.WebhookURL = u.String()
	if n := len(req.Webhook.Secret); n < minSecretLen || n > maxSecretLen {
		return nil, bad("webhook.secret: %d to %d characters are required", minSecretLen, maxSecretLen)
	}
	mb.WebhookSecret = req.Webhook.Secret
	return mb, nil
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
	a := Account{ID: string(mb.ID), Email: mb.SenderAddress, Folders: mb.FolderIDs,
		IMAP:    IMAP{Host: mb.Host, Port: mb.Port, Secure: secureName(mb.Secure), User: mb.UserName},
		Webhook: Webhook{URL: mb.WebhookURL}, State: mail.StateClosed}
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
	out := all[:0:0]
	for _, mb := range all {
		if mb.Native() {
			out = append(out, mb)
		}
	}
	slices.SortFunc(out, func(a, b *mail.Mailbox) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out, nil
}

// find returns the registered mailbox id (native or not), or nil.
func (h *Handler) find(ctx context.Context, id mail.MailboxID) (*mail.Mailbox, error) {
	all, err := h.opts.Accounts.Mailboxes(ctx)
	if err != nil {
		return nil, err
	}
	for _, mb := range all {
		if mb.ID == id {
			return mb, nil
		}
	}
	return nil, nil
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
	mb, err := h.find(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if mb == nil || !mb.Native() {
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

func (h *Handler) create(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return err
	}
	var req AccountRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return errorf(http.StatusBadRequest, "request body: %v", err)
	}
	mb, err := req.mailbox()
	if err != nil {
		return err
	}
	old, err := h.find(r.Context(), mb.ID)
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
	if err := h.opts.Accounts.Subscribe(r.Context(), []*mail.Mailbox{mb}, mode); err != nil {
		return err
	}
	h.log.Info("native account registered", "account", mb.ID, "mode", mode, "host", mb.Host, "token", tokenName(r.Context()))
	accounts, err := h.render(r.Context(), []*mail.Mailbox{mb})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "accounts/"+string(mb.ID))
	writeJSON(w, code, accounts[0])
	return nil
}
