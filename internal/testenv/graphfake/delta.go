// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// A delta round over a folder is a walk through its change log. State tokens carry
// everything (no server-side state), sealed with a MAC:
//
//   - An initial round ("S" state) lists the messages that were in the folder at
//     the round's start, its snapshot position in the log, page by page; its
//     delta link resumes from the snapshot position, so messages that arrived
//     while the client paged come as "created" in the next round.
//   - An incremental round ("I" state) replays the log window between the delta
//     token's position and the log's end at the round's start, coalesced per
//     message: a message created (or moved in) in the window is "created", one
//     that left it is @removed (reason "deleted", also for a move out), others
//     "updated". Changed messages are rendered as they are now.
//
// The original query options ($filter, $select, $orderby, $top, changeType) ride
// in the tokens, as Graph documents. A token is refused with 410 Gone when the
// log no longer holds its position (more than Options.DeltaLogLimit changes
// later) or after ExpireDeltaTokens.

// deltaState is the content of a skip or delta token.
type deltaState struct {
	Kind   byte      `json:"k"` // 'S' initial round, 'I' incremental round, 'D' delta token
	Mbox   uint32    `json:"m"`
	Folder uint32    `json:"f"`
	Epoch  uint32    `json:"e"`
	Pos    uint64    `json:"p"`           // S: snapshot; I: window start; D: seen up to
	End    uint64    `json:"t,omitempty"` // I: window end
	After  uint64    `json:"a,omitempty"` // S: last message number returned; I: offset into the window
	AfterT int64     `json:"r,omitempty"` // S, newest first: receivedDateTime (Unix) of the last message returned
	Count  int       `json:"n,omitempty"` // S: messages returned so far
	Opts   deltaOpts `json:"o"`
}

type deltaOpts struct {
	Filter     string `json:"fi,omitempty"`
	Select     string `json:"se,omitempty"`
	ChangeType string `json:"ct,omitempty"`
	Desc       bool   `json:"de,omitempty"`
	Top        int    `json:"to,omitempty"`
}

// maxFilteredDelta is Graph's cap on an initial round with $filter.
const maxFilteredDelta = 5000

// Token kinds in the sealed envelope: a skip token cannot pass as a delta token.
const (
	tokSkip  = 'S'
	tokDelta = 'D'
)

func (s *Server) sealState(st deltaState) string {
	b, _ := json.Marshal(st)
	kind := byte(tokSkip)
	if st.Kind == 'D' {
		kind = tokDelta
	}
	return s.ids.sealToken(kind, b)
}

func (s *Server) openState(kind byte, tok string) (deltaState, bool) {
	b, err := s.ids.openToken(kind, tok)
	var st deltaState
	if err != nil || json.Unmarshal(b, &st) != nil {
		return st, false
	}
	return st, (kind == tokDelta) == (st.Kind == 'D')
}

// serveDelta answers GET …/mailFolders/{id}/messages/delta.
func (s *Server) serveDelta(rc *reqCtx) *apiResponse {
	q := rc.query
	rc.preferImmutable()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.deltaRequests++
	mb := rc.mb
	f, r := s.findFolder(rc, rc.keys.folder)
	if r != nil {
		return r
	}
	badToken := func() *apiResponse {
		s.logf("graphfake: %s: bad delta or skip token", rc.path)
		return rc.fail(http.StatusBadRequest, "BadRequest", "Badly formed token.")
	}
	dt, st0 := q.Get("$deltatoken"), q.Get("$skiptoken")
	var st deltaState
	switch {
	case dt != "" && st0 != "":
		return badToken()
	case dt != "" || st0 != "":
		kind, tok := byte(tokDelta), dt
		if st0 != "" {
			kind, tok = tokSkip, st0
		}
		var ok bool
		if st, ok = s.openState(kind, tok); !ok || st.Mbox != mb.num || st.Folder != f.num || st.Pos > f.seq {
			return badToken()
		}
		if st.Epoch != mb.epoch || st.Pos < f.dropped {
			return s.gone(rc, f, st.Opts)
		}
	default:
		o := deltaOpts{Filter: q.Get("$filter"), Select: q.Get("$select"), ChangeType: strings.ToLower(q.Get("changeType"))}
		if _, err := parseFilter(o.Filter, true); err != nil {
			return badFilter(rc)
		}
		switch o.ChangeType {
		case "", "created", "updated", "deleted":
		default:
			return rc.fail(http.StatusBadRequest, "ErrorInvalidUrlQuery", "The changeType option must be created, updated or deleted.")
		}
		if v := q.Get("$orderby"); v != "" {
			desc, ok := parseOrder(v, true)
			if !ok || !desc {
				return rc.fail(http.StatusBadRequest, "ErrorInvalidUrlQuery", "Delta queries only support $orderby=receivedDateTime desc.")
			}
			o.Desc = true
		}
		if v := q.Get("$top"); v != "" {
			n, ok := rc.top(0)
			if !ok {
				return rc.fail(http.StatusBadRequest, "ErrorInvalidUrlQuery", "The value of $top is invalid.")
			}
			o.Top = n
		}
		st = deltaState{Kind: 'S', Mbox: mb.num, Folder: f.num, Epoch: mb.epoch, Pos: f.seq, Opts: o}
	}
	def := DefaultPageSize
	if st.Opts.Top > 0 {
		def = st.Opts.Top
	}
	size := rc.pageSize(def)
	filter, _ := parseFilter(st.Opts.Filter, true)
	sel := parseSelect(st.Opts.Select)
	if st.Kind == 'D' {
		st = deltaState{Kind: 'I', Mbox: st.Mbox, Folder: st.Folder, Epoch: st.Epoch, Pos: st.Pos, End: f.seq, Opts: st.Opts}
	}
	var value []obj
	var next *deltaState
	if st.Kind == 'S' {
		value, next = s.initialPage(f, st, filter, sel, size)
	} else {
		value, next = s.incrementalPage(f, st, filter, sel, size)
	}
	out := obj{{"@odata.context", s.metadata("Collection(message)")}}
	base := "/" + rc.userSeg + "/mailFolders('" + f.id + "')/messages/delta"
	if next != nil {
		out = append(out, kv{"@odata.nextLink", s.apiLink(base, [][2]string{{"$skiptoken", s.sealState(*next)}})})
	} else {
		end := st.Pos
		if st.Kind == 'I' {
			end = st.End
		}
		d := deltaState{Kind: 'D', Mbox: mb.num, Folder: f.num, Epoch: st.Epoch, Pos: end, Opts: st.Opts}
		out = append(out, kv{"@odata.deltaLink", s.apiLink(base, [][2]string{{"$deltatoken", s.sealState(d)}})})
	}
	if value == nil {
		value = []obj{}
	}
	out = append(out, kv{"value", value})
	return rc.json(http.StatusOK, out)
}

// gone is the sync reset: 410 with the URL of a new initial round in Location.
// Callers hold s.mu.
func (s *Server) gone(rc *reqCtx, f *folder, o deltaOpts) *apiResponse {
	var q [][2]string
	add := func(k, v string) {
		if v != "" {
			q = append(q, [2]string{k, v})
		}
	}
	add("$filter", o.Filter)
	add("$select", o.Select)
	add("changeType", o.ChangeType)
	if o.Desc {
		add("$orderby", "receivedDateTime desc")
	}
	if o.Top > 0 {
		add("$top", strconv.Itoa(o.Top))
	}
	s.logf("graphfake: %s: delta token expired (410)", rc.path)
	r := rc.fail(http.StatusGone, "syncStateNotFound", "The sync state of this delta token no longer exists; synchronize the folder again from the start.")
	r.header.Set("Location", s.apiLink("/"+rc.userSeg+"/mailFolders('"+f.id+"')/messages/delta", q))
	return r
}

// initialPage returns a page of an initial round and the state of the next page
// (nil when the round is complete). Callers hold s.mu.
func (s *Server) initialPage(f *folder, st deltaState, filter dateFilter, sel selection, size int) ([]obj, *deltaState) {
	var cands []*message
	for _, m := range f.msgs {
		if m.entered > st.Pos || !filter.match(m.received) {
			continue
		}
		if st.After != 0 {
			if st.Opts.Desc {
				// After the cursor in newest-first order.
				t := m.received.Unix()
				if t > st.AfterT || t == st.AfterT && m.num >= st.After {
					continue
				}
			} else if m.num <= st.After {
				continue
			}
		}
		cands = append(cands, m)
	}
	if st.Opts.Desc {
		slices.SortFunc(cands, byReceived(true))
	} else {
		slices.SortFunc(cands, func(a, b *message) int { return cmpU64(a.num, b.num) })
	}
	limit := len(cands)
	if st.Opts.Filter != "" {
		limit = min(limit, maxFilteredDelta-st.Count)
	}
	n := min(size, limit)
	value := make([]obj, 0, n)
	for _, m := range cands[:n] {
		value = append(value, s.messageObj(m, sel, true))
	}
	if n >= limit {
		return value, nil
	}
	last := cands[n-1]
	next := st
	next.After, next.AfterT, next.Count = last.num, last.received.Unix(), st.Count+n
	return value, &next
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// coalesced is a message's net change over a log window.
type coalesced struct {
	num              uint64
	created, removed bool
	last             uint64
}

// window coalesces f's log entries with st.Pos < seq <= st.End. Callers hold s.mu
// and have checked st.Pos >= f.dropped.
func window(f *folder, st deltaState) []*coalesced {
	entries := f.log[st.Pos-f.dropped : st.End-f.dropped]
	by := map[uint64]*coalesced{}
	var out []*coalesced
	for _, e := range entries {
		c := by[e.msg]
		if c == nil {
			c = &coalesced{num: e.msg}
			by[e.msg] = c
			out = append(out, c)
		}
		c.last = e.seq
		switch e.kind {
		case chCreated:
			c.created, c.removed = true, false
		case chDeleted:
			c.removed = true
		}
	}
	slices.SortFunc(out, func(a, b *coalesced) int { return cmpU64(a.last, b.last) })
	return out
}

// incrementalPage returns a page of an incremental round. Callers hold s.mu.
func (s *Server) incrementalPage(f *folder, st deltaState, filter dateFilter, sel selection, size int) ([]obj, *deltaState) {
	list := window(f, st)
	var value []obj
	i := int(st.After)
	for ; i < len(list) && len(value) < size; i++ {
		c := list[i]
		ct := st.Opts.ChangeType
		if c.removed {
			if ct == "" || ct == "deleted" {
				value = append(value, obj{
					{"@odata.type", "#microsoft.graph.message"},
					{"id", s.immutableID(f.mbox, c.num)},
					{"@removed", obj{{"reason", "deleted"}}},
				})
			}
			continue
		}
		m := f.msgs[c.num]
		if m == nil || !filter.match(m.received) || ct == "deleted" || ct == "created" && !c.created || ct == "updated" && c.created {
			// A message gone since the window closed shows up as removed next round.
			continue
		}
		value = append(value, s.messageObj(m, sel, true))
	}
	if i >= len(list) {
		return value, nil
	}
	next := st
	next.After = uint64(i)
	return value, &next
}
