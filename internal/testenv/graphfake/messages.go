// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
)

// selection is a parsed $select: lower-case property names; nil selects the
// default properties.
type selection map[string]bool

func parseSelect(v string) selection {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	sel := selection{}
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			sel[strings.ToLower(p)] = true
		}
	}
	return sel
}

// optIn are the properties Graph returns only when selected.
var optIn = map[string]bool{"internetmessageheaders": true, "uniquebody": true}

// messageProps are the properties of a message resource the fake renders, in
// Graph's order.
var messageProps = []string{
	"createdDateTime", "lastModifiedDateTime", "changeKey", "categories", "receivedDateTime", "sentDateTime",
	"hasAttachments", "internetMessageId", "subject", "bodyPreview", "importance", "parentFolderId",
	"conversationId", "isDeliveryReceiptRequested", "isReadReceiptRequested", "isRead", "isDraft",
	"inferenceClassification", "body", "uniqueBody", "sender", "from", "toRecipients", "ccRecipients",
	"bccRecipients", "replyTo", "flag", "internetMessageHeaders",
}

var knownProps = func() map[string]bool {
	m := map[string]bool{"id": true}
	for _, p := range messageProps {
		m[strings.ToLower(p)] = true
	}
	return m
}()

// messageObj renders a message with the selected properties; id and
// @odata.etag are always there, as in Graph. Callers hold s.mu.
func (s *Server) messageObj(m *message, sel selection, withType bool) obj {
	mb := m.folder.mbox
	ck := changeKey(mb.num, m.version)
	o := obj{}
	if withType {
		o = append(o, kv{"@odata.type", "#microsoft.graph.message"})
	}
	o = append(o, kv{"@odata.etag", `W/"` + ck + `"`}, kv{"id", s.msgID(m)})
	h := m.hdr
	for _, p := range messageProps {
		lp := strings.ToLower(p)
		if sel == nil && optIn[lp] || sel != nil && !sel[lp] {
			continue
		}
		var v any
		switch p {
		case "createdDateTime":
			v = graphTime(m.created)
		case "lastModifiedDateTime":
			v = graphTime(m.modified)
		case "changeKey":
			v = ck
		case "categories":
			v = append([]string{}, m.categories...)
		case "receivedDateTime":
			v = graphTime(m.received)
		case "sentDateTime":
			if h.date.IsZero() {
				v = graphTime(m.received)
			} else {
				v = graphTime(h.date)
			}
		case "hasAttachments":
			v = h.attachments
		case "internetMessageId":
			v = h.messageID
		case "subject":
			v = h.subject
		case "bodyPreview":
			v = h.preview
		case "importance":
			v = "normal"
		case "parentFolderId":
			v = m.folder.id
		case "conversationId":
			v = s.ids.id(objRef{mbox: mb.num, num: m.num}) // stable, unique enough
		case "isDeliveryReceiptRequested", "isReadReceiptRequested", "isDraft":
			v = false
		case "isRead":
			v = m.read
		case "inferenceClassification":
			v = "focused"
		case "body", "uniqueBody":
			v = obj{{"contentType", "text"}, {"content", bodyText(m.mime)}}
		case "sender", "from":
			if h.from != nil {
				v = emailAddress(h.from)
			}
		case "toRecipients":
			v = recipients(h.to)
		case "ccRecipients":
			v = recipients(h.cc)
		case "bccRecipients":
			v = recipients(h.bcc)
		case "replyTo":
			v = []obj{}
		case "flag":
			v = obj{{"flagStatus", "notFlagged"}}
		case "internetMessageHeaders":
			l := make([]obj, len(h.fields))
			for i, f := range h.fields {
				l[i] = obj{{"name", f[0]}, {"value", f[1]}}
			}
			v = l
		}
		o = append(o, kv{p, v})
	}
	return o
}

func bodyText(raw []byte) string {
	head, body := splitHeader(raw)
	h := mail.Header{}
	for _, f := range unfold(head) {
		k := http.CanonicalHeaderKey(f[0])
		h[k] = append(h[k], f[1])
	}
	return textOf(h.Get("Content-Type"), h.Get("Content-Transfer-Encoding"), body, 0)
}

func emailAddress(a *mail.Address) obj {
	return obj{{"emailAddress", obj{{"name", a.Name}, {"address", a.Address}}}}
}

func recipients(l []*mail.Address) []obj {
	out := make([]obj, 0, len(l))
	for _, a := range l {
		out = append(out, emailAddress(a))
	}
	return out
}

// findMessage resolves rc's message key (and, for .../mailFolders/{id}/messages/{id},
// checks the folder). Callers hold s.mu.
func (s *Server) findMessage(rc *reqCtx) (*message, *apiResponse) {
	m, malformed := s.lookupMessage(rc.mb, rc.keys.msg)
	if malformed {
		return nil, rc.fail(http.StatusBadRequest, "ErrorInvalidIdMalformed", "Id is malformed.")
	}
	if m != nil && rc.keys.folder != "" {
		f, r := s.findFolder(rc, rc.keys.folder)
		if r != nil {
			return nil, r
		}
		if m.folder != f {
			m = nil
		}
	}
	if m == nil {
		return nil, rc.fail(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
	}
	return m, nil
}

func (s *Server) messageEntity(rc *reqCtx, m *message, sel selection) obj {
	ctx := obj{{"@odata.context", s.metadata("users('" + rc.mb.id + "')/messages/$entity")}}
	return append(ctx, s.messageObj(m, sel, false)...)
}

func (s *Server) getMessage(rc *reqCtx) *apiResponse {
	rc.preferImmutable()
	s.mu.Lock()
	defer s.mu.Unlock()
	m, r := s.findMessage(rc)
	if r != nil {
		return r
	}
	return rc.json(http.StatusOK, s.messageEntity(rc, m, parseSelect(rc.query.Get("$select"))))
}

// getMIME answers the message's MIME as stored, labelled text/plain as Graph
// labels it.
func (s *Server) getMIME(rc *reqCtx) *apiResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.mimeRequests++
	m, r := s.findMessage(rc)
	if r != nil {
		return r
	}
	h := http.Header{}
	h.Set("Content-Type", "text/plain")
	return &apiResponse{status: http.StatusOK, header: h, body: slices.Clone(m.mime)}
}

// patchMessage updates categories and isRead; other writable properties are
// accepted and ignored (and logged); unknown ones are refused as Graph refuses
// them.
func (s *Server) patchMessage(rc *reqCtx) *apiResponse {
	var in map[string]json.RawMessage
	if err := json.Unmarshal(rc.body, &in); err != nil {
		return rc.fail(http.StatusBadRequest, "RequestBodyRead", "The request body is not a valid JSON object.")
	}
	var cats []string
	var read *bool
	for k, v := range in {
		switch lk := strings.ToLower(k); {
		case lk == "categories":
			if err := json.Unmarshal(v, &cats); err != nil || cats == nil {
				return rc.fail(http.StatusBadRequest, "RequestBodyRead", "Cannot convert the value of 'categories' to a collection of strings.")
			}
		case lk == "isread":
			var b bool
			if err := json.Unmarshal(v, &b); err != nil {
				return rc.fail(http.StatusBadRequest, "RequestBodyRead", "Cannot convert the value of 'isRead' to Edm.Boolean.")
			}
			read = &b
		case strings.HasPrefix(lk, "@odata."):
		case knownProps[lk]:
			s.logf("graphfake: PATCH message: property %s accepted and ignored", k)
		default:
			return rc.fail(http.StatusBadRequest, "RequestBodyRead",
				fmt.Sprintf("The property '%s' does not exist on type 'microsoft.graph.message'.", k))
		}
	}
	rc.preferImmutable()
	s.mu.Lock()
	defer s.mu.Unlock()
	m, r := s.findMessage(rc)
	if r != nil {
		return r
	}
	changed := false
	if cats != nil && !slices.Equal(cats, m.categories) {
		m.categories, changed = slices.Clone(cats), true
	}
	if read != nil && *read != m.read {
		m.read, changed = *read, true
	}
	if changed {
		s.updated(m)
	}
	if rc.prefers("return=minimal") {
		rc.applied = append(rc.applied, "return=minimal")
		return rc.empty(http.StatusNoContent)
	}
	return rc.json(http.StatusOK, s.messageEntity(rc, m, nil))
}

// deleteMessage moves a message to Deleted Items, or deletes it for good when it
// is there already, as Outlook does.
func (s *Server) deleteMessage(rc *reqCtx) *apiResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, r := s.findMessage(rc)
	if r != nil {
		return r
	}
	if di := rc.mb.wk["deleteditems"]; m.folder != di {
		s.move(m, di)
	} else {
		s.hardDelete(m)
	}
	return rc.empty(http.StatusNoContent)
}

func (s *Server) moveMessage(rc *reqCtx) *apiResponse {
	var in struct {
		DestinationID string `json:"destinationId"`
	}
	if err := json.Unmarshal(rc.body, &in); err != nil || in.DestinationID == "" {
		return rc.fail(http.StatusBadRequest, "ErrorInvalidRequest", "The destinationId parameter is required.")
	}
	rc.preferImmutable()
	s.mu.Lock()
	defer s.mu.Unlock()
	m, r := s.findMessage(rc)
	if r != nil {
		return r
	}
	to, r := s.findFolder(rc, in.DestinationID)
	if r != nil {
		return r
	}
	s.move(m, to)
	return rc.json(http.StatusCreated, s.messageEntity(rc, m, nil))
}

// dateFilter is a parsed $filter on receivedDateTime: comparisons joined by
// "and", the only filter the fake supports.
type dateFilter []struct {
	op string
	t  time.Time
}

var errFilter = errors.New("unsupported $filter")

// parseFilter reads "receivedDateTime ge 2024-01-02T03:04:05Z [and …]"; only
// lists ge/gt alone.
func parseFilter(v string, onlyLower bool) (dateFilter, error) {
	f := dateFilter{}
	if strings.TrimSpace(v) == "" {
		return f, nil
	}
	w := strings.Fields(v)
	for i := 0; i < len(w); i += 4 {
		if i+3 > len(w) || !strings.EqualFold(w[i], "receivedDateTime") || (i+3 < len(w) && !strings.EqualFold(w[i+3], "and")) {
			return nil, errFilter
		}
		op := strings.ToLower(w[i+1])
		switch op {
		case "ge", "gt":
		case "le", "lt", "eq":
			if onlyLower {
				return nil, errFilter
			}
		default:
			return nil, errFilter
		}
		t, err := parseGraphTime(w[i+2])
		if err != nil {
			return nil, errFilter
		}
		f = append(f, struct {
			op string
			t  time.Time
		}{op, t})
		if i+3 == len(w)-1 {
			return nil, errFilter // trailing "and"
		}
	}
	if onlyLower && len(f) > 1 {
		return nil, errFilter
	}
	return f, nil
}

func (f dateFilter) match(t time.Time) bool {
	for _, c := range f {
		var ok bool
		switch c.op {
		case "ge":
			ok = !t.Before(c.t)
		case "gt":
			ok = t.After(c.t)
		case "le":
			ok = !t.After(c.t)
		case "lt":
			ok = t.Before(c.t)
		case "eq":
			ok = t.Equal(c.t)
		}
		if !ok {
			return false
		}
	}
	return true
}

func badFilter(rc *reqCtx) *apiResponse {
	return rc.fail(http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
}

// parseOrder reads $orderby: receivedDateTime [asc|desc]; def applies when absent.
func parseOrder(v string, def bool) (desc bool, ok bool) {
	w := strings.Fields(v)
	switch {
	case len(w) == 0:
		return def, true
	case !strings.EqualFold(w[0], "receivedDateTime") || len(w) > 2:
		return false, false
	case len(w) == 1 || strings.EqualFold(w[1], "asc"):
		return false, true
	case strings.EqualFold(w[1], "desc"):
		return true, true
	}
	return false, false
}

// byReceived orders messages by receivedDateTime, ties by delivery order.
func byReceived(desc bool) func(a, b *message) int {
	return func(a, b *message) int {
		c := a.received.Compare(b.received)
		if c == 0 {
			switch {
			case a.num < b.num:
				c = -1
			case a.num > b.num:
				c = 1
			}
		}
		if desc {
			return -c
		}
		return c
	}
}

// listMessages lists a folder's (or the mailbox's) messages: $filter on
// receivedDateTime, $orderby receivedDateTime (default newest first), $top,
// $skip, $select; further pages through @odata.nextLink with $skip.
func (s *Server) listMessages(rc *reqCtx) *apiResponse {
	q := rc.query
	filter, err := parseFilter(q.Get("$filter"), false)
	if err != nil {
		return badFilter(rc)
	}
	desc, ok := parseOrder(q.Get("$orderby"), true)
	if !ok {
		return rc.fail(http.StatusBadRequest, "ErrorInvalidUrlQuery", "The $orderby option is not supported: only receivedDateTime is.")
	}
	top, ok := rc.top(DefaultPageSize)
	skip, err := strconv.Atoi(q.Get("$skip"))
	if !ok || (q.Has("$skip") && (err != nil || skip < 0)) {
		return rc.fail(http.StatusBadRequest, "ErrorInvalidUrlQuery", "The value of $top or $skip is invalid.")
	}
	top = rc.pageSize(top)
	rc.preferImmutable()
	sel := parseSelect(q.Get("$select"))
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*message
	ctx := "users('" + rc.mb.id + "')/messages"
	if rc.keys.folder != "" {
		f, r := s.findFolder(rc, rc.keys.folder)
		if r != nil {
			return r
		}
		ctx = "users('" + rc.mb.id + "')/mailFolders('" + f.id + "')/messages"
		for _, m := range f.msgs {
			if filter.match(m.received) {
				all = append(all, m)
			}
		}
	} else {
		for _, m := range rc.mb.msgs {
			if filter.match(m.received) {
				all = append(all, m)
			}
		}
	}
	slices.SortFunc(all, byReceived(desc))
	value := []obj{}
	for i := skip; i < len(all) && i < skip+top; i++ {
		value = append(value, s.messageObj(all[i], sel, false))
	}
	out := obj{{"@odata.context", s.metadata(ctx)}, {"value", value}}
	if skip+top < len(all) {
		var lq [][2]string
		for _, k := range []string{"$filter", "$orderby", "$select"} {
			if v := q.Get(k); v != "" {
				lq = append(lq, [2]string{k, v})
			}
		}
		lq = append(lq, [2]string{"$top", strconv.Itoa(top)}, [2]string{"$skip", strconv.Itoa(skip + top)})
		out = append(out, kv{"@odata.nextLink", s.apiLink(rc.path, lq)})
	}
	return rc.json(http.StatusOK, out)
}
