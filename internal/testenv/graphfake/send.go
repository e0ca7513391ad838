// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"
)

// sendMail submits a message: MIME (Content-Type text/plain, the message in
// base64) or JSON ({"message":{…},"saveToSentItems":…}). The transmitted MIME is
// recorded for Sent, a copy goes to Sent Items (always for MIME, unless
// saveToSentItems is false for JSON), and recipients that are mailboxes of the
// fake get it in their Inbox at once. 202 Accepted, no body, as Graph.
func (s *Server) sendMail(rc *reqCtx) *apiResponse {
	ct, _, _ := mime.ParseMediaType(rc.header.Get("Content-Type"))
	var raw []byte
	save := true
	switch strings.ToLower(ct) {
	case "text/plain":
		b, err := base64.StdEncoding.DecodeString(string(stripSpace(rc.body)))
		if err != nil || len(b) == 0 {
			return rc.fail(http.StatusBadRequest, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
		}
		raw = b
	case "application/json":
		var in struct {
			Message         *jsonMessage `json:"message"`
			SaveToSentItems *bool        `json:"saveToSentItems"`
		}
		if err := json.Unmarshal(rc.body, &in); err != nil {
			return rc.fail(http.StatusBadRequest, "RequestBodyRead", "The request body is not valid JSON for sendMail.")
		}
		if in.Message == nil {
			return rc.fail(http.StatusBadRequest, "ErrorInvalidParameter", "The message parameter is required.")
		}
		if len(in.Message.Attachments) > 0 {
			s.logf("graphfake: sendMail: attachments of the JSON form are not supported and left out")
		}
		if in.SaveToSentItems != nil {
			save = *in.SaveToSentItems
		}
		raw = buildMIME(rc.mb.upn, in.Message)
	default:
		return rc.fail(http.StatusUnsupportedMediaType, "UnsupportedMediaType", "The content type must be text/plain (base64 MIME) or application/json.")
	}
	h := parseMessage(raw)
	if len(h.fields) == 0 {
		return rc.fail(http.StatusBadRequest, "ErrorMimeContentInvalid", "The MIME content is not a valid message.")
	}
	mb := rc.mb // its UPN never changes: no lock needed to read it
	if h.from != nil && !strings.EqualFold(h.from.Address, mb.upn) {
		return rc.fail(http.StatusForbidden, "ErrorSendAsDenied",
			"The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.")
	}
	now := s.opts.Now().UTC().Truncate(time.Second)
	sent, saved, rcpts := prepareSend(raw, mb.upn, now, func() string {
		_, dom, _ := strings.Cut(mb.upn, "@")
		return "<" + strings.ReplaceAll(newGUID(), "-", "") + "@" + dom + ">"
	})
	if len(rcpts) == 0 {
		return rc.fail(http.StatusBadRequest, "ErrorInvalidRecipients", "At least one recipient is required.")
	}
	savedHdr, sentHdr := parseMessage(saved), parseMessage(sent)
	s.mu.Lock()
	defer s.mu.Unlock()
	mb.sent = append(mb.sent, sent)
	if save {
		s.addMessage(mb.wk["sentitems"], saved, savedHdr, now, true)
	}
	seen := map[*mailbox]bool{}
	for _, a := range rcpts {
		if to := s.byName[strings.ToLower(a)]; to != nil && !seen[to] {
			seen[to] = true
			s.addMessage(to.wk["inbox"], bytes.Clone(sent), sentHdr, now, false)
		}
	}
	return rc.empty(http.StatusAccepted)
}

// translateIDs converts ids between exchangeIdFormat values. Every id must be of
// the addressed mailbox; one that is garbled or of another mailbox gets
// errorDetails in its result instead of a targetId, as in Graph.
func (s *Server) translateIDs(rc *reqCtx) *apiResponse {
	var in struct {
		InputIDs     []string `json:"inputIds"`
		SourceIDType string   `json:"sourceIdType"`
		TargetIDType string   `json:"targetIdType"`
	}
	if err := json.Unmarshal(rc.body, &in); err != nil {
		return rc.fail(http.StatusBadRequest, "RequestBodyRead", "The request body is not valid JSON for translateExchangeIds.")
	}
	src, ok1 := idFormatNames[strings.ToLower(in.SourceIDType)]
	dst, ok2 := idFormatNames[strings.ToLower(in.TargetIDType)]
	switch {
	case !ok1 || !ok2:
		return rc.fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid exchangeIdFormat: '%s' or '%s'.", in.SourceIDType, in.TargetIDType))
	case len(in.InputIDs) == 0 || len(in.InputIDs) > 1000:
		return rc.fail(http.StatusBadRequest, "BadRequest", "inputIds must hold between 1 and 1000 ids.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	value := make([]obj, 0, len(in.InputIDs))
	for _, id := range in.InputIDs {
		r, err := s.ids.parseFormat(id, src)
		switch {
		case err != nil:
			value = append(value, obj{{"sourceId", id}, {"errorDetails", obj{{"code", "ErrorInvalidIdMalformed"}, {"message", "Id is malformed."}}}})
			continue
		case r.mbox != rc.mb.num:
			value = append(value, obj{{"sourceId", id}, {"errorDetails", obj{{"code", "ErrorItemNotFound"}, {"message", "The id is not of this mailbox."}}}})
			continue
		}
		if m := rc.mb.msgs[r.num]; !r.folder && m != nil {
			r.gen = m.gen // a mutable id names the message where it is now
		}
		value = append(value, obj{{"sourceId", id}, {"targetId", s.ids.format(r, dst)}})
	}
	return rc.json(http.StatusOK, obj{{"@odata.context", s.metadata("Collection(microsoft.graph.convertIdResult)")}, {"value", value}})
}
