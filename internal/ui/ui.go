// SPDX-License-Identifier: Apache-2.0

// Package ui is the operator's dashboard: one embedded page (HTML, a small
// vanilla script and a style sheet; nothing loaded from elsewhere, so it works
// offline) and the JSON endpoint behind it, GET api/overview, which lists the
// nodes with their capacity and load and the mailboxes with their state,
// filtered and paged on the server so that 10,000 mailboxes stay fast.
//
// The handler is mounted by httpapi under /ui/ (behind the admin token) and
// sees its paths without that prefix. It shows mailbox addresses and error
// texts, never credentials.
package ui

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/httpapi"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/service"
)

//go:embed static
var static embed.FS

// Source is what the dashboard shows (service.Service).
type Source interface {
	Inventory(ctx context.Context) (service.Inventory, error)
}

// Options configures New.
type Options struct {
	Source Source
	// Node names this node when its placement has no name for it (a single
	// node).
	Node    string
	Version string
	// CacheFor is how long one inventory serves overview requests (default
	// DefaultCacheFor): in a cluster it reads every record in Redis, and
	// several open pages must not multiply that.
	CacheFor time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
}

// states are the states a row can have, in the order of the counts.
var states = []string{mail.StateExists, mail.StateConnecting, mail.StateError, mail.StateClosed}

// Limits of the overview endpoint.
const (
	DefaultLimit    = 500
	MaxLimit        = 5000
	maxQuery        = 256
	DefaultCacheFor = 2 * time.Second
)

// Handler serves the dashboard.
type Handler struct {
	opts  Options
	log   *slog.Logger
	files map[string]file

	mu     sync.Mutex // held while the inventory is read: concurrent pages share one read
	cached *snapshot
}

type file struct {
	body  []byte
	ctype string
}

// snapshot is one inventory, sorted and shaped.
type snapshot struct {
	at      time.Time
	inv     service.Inventory
	rows    []Mailbox
	counts  map[string]int
	byNode  map[string]map[string]int
	expires time.Time
}

// New returns the dashboard handler; it does no I/O.
func New(opts Options) (*Handler, error) {
	if opts.Source == nil {
		return nil, errors.New("ui: Options.Source is required")
	}
	if opts.CacheFor <= 0 {
		opts.CacheFor = DefaultCacheFor
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = obs.Discard()
	}
	h := &Handler{opts: opts, log: opts.Logger, files: map[string]file{}}
	for name, ctype := range map[string]string{
		"index.html": "text/html; charset=utf-8",
		"app.js":     "text/javascript; charset=utf-8",
		"style.css":  "text/css; charset=utf-8",
	} {
		b, err := static.ReadFile("static/" + name)
		if err != nil {
			return nil, fmt.Errorf("ui: %w", err)
		}
		h.files[name] = file{body: b, ctype: ctype}
	}
	return h, nil
}

// csp allows nothing but this origin's own script, style and JSON.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// ServeHTTP serves the page, its assets and api/overview.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Content-Security-Policy", csp)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusMethodNotAllowed, "the dashboard is read-only: GET only")
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	switch p {
	case "api/overview":
		h.overview(w, r)
		return
	case "":
		p = "index.html"
	}
	f, ok := h.files[p]
	if !ok {
		writeError(w, http.StatusNotFound, "no such dashboard file: "+r.URL.Path)
		return
	}
	hd.Set("Content-Type", f.ctype)
	hd.Set("Cache-Control", "no-cache")
	_, _ = w.Write(f.body)
}

// Overview is the body of GET api/overview.
type Overview struct {
	GeneratedAt time.Time
	Mode        string // single or cluster
	Node        string // the node that answered
	Version     string
	Nodes       []Node
	// Counts and Total are over every mailbox; Matched over those the
	// filter selects, of which Mailboxes is the page [Offset, Offset+Limit).
	Counts    map[string]int
	Total     int
	Matched   int
	Offset    int
	Limit     int
	Mailboxes []Mailbox
}

// Node is a node with its capacity and load.
type Node struct {
	ID       string
	Addr     string `json:",omitempty"`
	Capacity int    // EL_MAX_SUBSCRIPTIONS; 0: no limit
	Owned    int    // mailboxes served (the answering node: now; others: last heartbeat)
	Load     float64
	Started  *time.Time `json:",omitempty"`
	Updated  *time.Time `json:",omitempty"` // last heartbeat
	Leaving  bool       `json:",omitempty"`
	Self     bool       `json:",omitempty"`
	States   map[string]int
}

// Mailbox is one row.
type Mailbox struct {
	ID      string
	Address string
	Kind    string
	// State is the subscription state as subscriptionsstate reports it:
	// closed also for a mailbox no live node serves (Stale, with the
	// LastKnownState its node published).
	State          string
	Stale          bool   `json:",omitempty"`
	LastKnownState string `json:",omitempty"`
	Node           string `json:",omitempty"`
	Transport      string `json:",omitempty"`
	Push           string `json:",omitempty"`
	Folders        []string
	Since          *time.Time `json:",omitempty"`
	// LastEventAt is when the last email was delivered to Creatio, and
	// LastEventAgeSeconds how long ago that was when the overview was made.
	// It is not a delivery lag: the service keeps no queue of undelivered
	// mail (the mail server is the queue), and a quiet mailbox ages too.
	LastEventAt         *time.Time `json:",omitempty"`
	LastEventAgeSeconds *int64     `json:",omitempty"`
	Delivered           uint64
	ErrorClass          string     `json:",omitempty"`
	LastError           string     `json:",omitempty"`
	RetryAt             *time.Time `json:",omitempty"`
	History             *History   `json:",omitempty"`
}

// History is the progress of the mailbox's last history load on the
// answering node.
type History struct {
	State     string
	Filter    string
	Folder    string `json:",omitempty"`
	Found     int
	Delivered int
	Skipped   int
	Started   *time.Time `json:",omitempty"`
	Finished  *time.Time `json:",omitempty"`
	Error     string     `json:",omitempty"`
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset := DefaultLimit, 0
	var err error
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > MaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a number from 1 to %d", MaxLimit))
			return
		}
	}
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			writeError(w, http.StatusBadRequest, "offset must be a number from 0")
			return
		}
	}
	var want []string
	for s := range strings.SplitSeq(q.Get("state"), ",") {
		if s = strings.ToLower(strings.TrimSpace(s)); s == "" {
			continue
		}
		if !slices.Contains(states, s) {
			writeError(w, http.StatusBadRequest, "state must be one of "+strings.Join(states, ", "))
			return
		}
		want = append(want, s)
	}
	text := strings.ToLower(strings.TrimSpace(q.Get("q")))
	if len(text) > maxQuery {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("q is longer than %d bytes", maxQuery))
		return
	}

	snap, err := h.snapshot(r.Context())
	if err != nil {
		code := http.StatusInternalServerError
		msg := "internal error"
		switch {
		case errors.Is(err, httpapi.ErrUnavailable):
			code, msg = http.StatusServiceUnavailable, err.Error()
		case errors.Is(err, httpapi.ErrUnsupported):
			code, msg = http.StatusNotImplemented, err.Error()
		default:
			h.log.Error("dashboard overview failed", "err", err)
		}
		writeError(w, code, msg)
		return
	}
	out := Overview{GeneratedAt: snap.at, Mode: snap.inv.Mode, Node: cmp.Or(snap.inv.Node, h.opts.Node), Version: h.opts.Version,
		Counts: snap.counts, Total: len(snap.rows), Offset: offset, Limit: limit, Mailboxes: []Mailbox{}}
	for _, n := range snap.inv.Nodes {
		out.Nodes = append(out.Nodes, nodeOf(n, h.opts.Node, snap.byNode))
	}
	for i := range snap.rows {
		m := &snap.rows[i]
		if (len(want) > 0 && !slices.Contains(want, m.State)) || (text != "" && !matches(m, text)) {
			continue
		}
		if out.Matched >= offset && len(out.Mailboxes) < limit {
			out.Mailboxes = append(out.Mailboxes, *m)
		}
		out.Matched++
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// matches reports whether text (lower case) is part of what the row shows.
func matches(m *Mailbox, text string) bool {
	for _, s := range []string{m.Address, m.ID, m.Node, m.ErrorClass, m.LastError, m.Transport, m.Kind} {
		if strings.Contains(strings.ToLower(s), text) {
			return true
		}
	}
	return false
}

// snapshot returns the cached inventory, or reads a new one.
func (h *Handler) snapshot(ctx context.Context) (*snapshot, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.opts.Now()
	if h.cached != nil && now.Before(h.cached.expires) {
		return h.cached, nil
	}
	inv, err := h.opts.Source.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	s := &snapshot{at: now.UTC(), inv: inv, rows: make([]Mailbox, len(inv.Mailboxes)),
		counts: map[string]int{}, byNode: map[string]map[string]int{}, expires: now.Add(h.opts.CacheFor)}
	for _, st := range states {
		s.counts[st] = 0
	}
	for i, mi := range inv.Mailboxes {
		m := rowOf(mi, now)
		s.rows[i] = m
		s.counts[m.State]++
		if mi.Status != nil && m.State != mail.StateClosed {
			// By the node running it (none named on a single node).
			if s.byNode[m.Node] == nil {
				s.byNode[m.Node] = map[string]int{}
			}
			s.byNode[m.Node][m.State]++
		}
	}
	slices.SortFunc(s.rows, func(a, b Mailbox) int {
		return cmp.Or(cmp.Compare(rank(a.State), rank(b.State)), strings.Compare(strings.ToLower(a.Address), strings.ToLower(b.Address)),
			strings.Compare(a.ID, b.ID))
	})
	h.cached = s
	return s, nil
}

// rank orders rows by what needs attention first.
func rank(state string) int {
	switch state {
	case mail.StateError:
		return 0
	case mail.StateConnecting:
		return 1
	case mail.StateClosed:
		return 2
	}
	return 3
}

func nodeOf(n service.NodeInfo, self string, byNode map[string]map[string]int) Node {
	out := Node{ID: n.ID, Addr: n.Addr, Capacity: n.Capacity, Owned: n.Owned, Leaving: n.Leaving, Self: n.Self,
		Started: timePtr(n.Started), Updated: timePtr(n.Updated), States: byNode[n.ID]}
	if out.ID == "" && n.Self {
		out.ID = self
	}
	if out.States == nil {
		out.States = map[string]int{}
	}
	if n.Capacity > 0 {
		out.Load = float64(n.Owned) / float64(n.Capacity)
	}
	return out
}

func rowOf(mi service.MailboxInfo, now time.Time) Mailbox {
	m := Mailbox{ID: string(mi.ID), Address: mi.Address, Kind: mi.Kind.String(), State: mail.StateClosed, Folders: []string{}}
	if h := mi.History; h != nil {
		m.History = &History{State: h.State, Filter: h.Filter, Folder: h.Folder, Found: h.Found, Delivered: h.Delivered,
			Skipped: h.Skipped, Started: timePtr(h.Started), Finished: timePtr(h.Finished), Error: h.Error}
	}
	st := mi.Status
	if st == nil || st.State == mail.StateClosed {
		return m
	}
	m.Node, m.Transport, m.Push, m.Delivered = st.Node, st.Transport, st.Push, st.Delivered
	if st.Folders != nil {
		m.Folders = st.Folders
	}
	if st.Stale {
		m.Stale, m.LastKnownState = true, st.State
		return m
	}
	m.State, m.Since = st.State, timePtr(st.Since)
	if !st.LastEventAt.IsZero() {
		m.LastEventAt = timePtr(st.LastEventAt)
		age := int64(max(now.Sub(st.LastEventAt), 0) / time.Second)
		m.LastEventAgeSeconds = &age
	}
	if st.State == mail.StateError {
		m.ErrorClass, m.LastError, m.RetryAt = st.ErrorClass, st.LastError, timePtr(st.RetryAt)
	}
	return m
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

type errorBody struct {
	Error string `json:"Error"`
	Code  int    `json:"Code"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: mail.Excerpt(msg, 1024), Code: code})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"Error":"internal error","Code":500}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
