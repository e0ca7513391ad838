// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
)

// caller is the identity and routing of one EWS request.
type caller struct {
	acct          *account
	scheme        string
	mbox          *mailbox // the mailbox acted on: own or impersonated; nil for the service account itself
	impersonating bool
	backend       int
	affinity      bool // X-PreferServerAffinity: true
	hadCookie     bool // a valid X-BackEndOverrideCookie routed the request
	ms            bool // DateTimePrecision Milliseconds
	w             http.ResponseWriter
	r             *http.Request
}

// budget is the account whose throttling budget the request draws on: the
// impersonated mailbox when impersonating, as Exchange charges it.
func (c *caller) budget() string {
	if c.mbox != nil {
		return strings.ToLower(c.mbox.smtp)
	}
	return strings.ToLower(c.acct.login)
}

// opFunc writes the response element of one operation into b (inside an open
// Body) or returns a *fault.
type opFunc func(s *Server, c *caller, op *node, b *xw) error

var operations map[string]opFunc

func init() {
	operations = map[string]opFunc{
		"GetFolder":       (*Server).opGetFolder,
		"FindFolder":      (*Server).opFindFolder,
		"GetItem":         (*Server).opGetItem,
		"FindItem":        (*Server).opFindItem,
		"SyncFolderItems": (*Server).opSyncFolderItems,
		"CreateItem":      (*Server).opCreateItem,
		"UpdateItem":      (*Server).opUpdateItem,
		"DeleteItem":      (*Server).opDeleteItem,
		"MoveItem":        (*Server).opMoveItem,
		"CopyItem":        (*Server).opCopyItem,
		"Subscribe":       (*Server).opSubscribe,
		"Unsubscribe":     (*Server).opUnsubscribe,
		"GetEvents":       (*Server).opGetEvents,
	}
}

// requestServerVersions are the RequestServerVersion values the fake accepts.
var requestServerVersions = map[string]bool{
	"Exchange2007": true, "Exchange2007_SP1": true, "Exchange2009": true, "Exchange2010": true,
	"Exchange2010_SP1": true, "Exchange2010_SP2": true, "Exchange2012": true, "Exchange2013": true,
	"Exchange2013_SP1": true, "Exchange2015": true, "Exchange2016": true, "Exchange2019": true,
	"V2015_10_05": true, "V2016_01_06": true, "V2016_04_13": true, "V2016_07_13": true,
	"V2016_10_10": true, "V2017_01_07": true, "V2017_04_14": true, "V2017_07_11": true,
	"V2017_10_09": true, "V2018_01_08": true,
}

func (s *Server) serveEWS(w http.ResponseWriter, r *http.Request, p principal) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "413 - Request Entity Too Large", http.StatusRequestEntityTooLarge)
		}
		return
	}
	s.trace("request", body)
	setDiagHeaders(w, r)
	if f := s.busyFault(); f != nil {
		s.count("ErrorServerBusy")
		writeFault(w, f)
		return
	}
	if s.ewsDisabledFor(p.acct.mbox) {
		s.forbidden(w)
		return
	}
	env, err := parseXML(bytes.NewReader(body))
	if err != nil {
		var se *syntaxError
		errors.As(err, &se)
		s.faultOut(w, &fault{code: "ErrorSchemaValidation", text: "The request failed schema validation.", line: se.line, col: se.col, violation: se.msg})
		return
	}
	header, op, f := splitEnvelope(env)
	if f != nil {
		s.faultOut(w, f)
		return
	}
	fn := operations[op.local]
	if fn == nil && op.local != "GetStreamingEvents" {
		s.logf("ewsfake: operation %s is not implemented", op.local)
		s.count(op.local)
		s.faultOut(w, schemaFault(op, "The element 'Body' in namespace '%s' has invalid child element '%s' in namespace '%s'.", nsSOAP, op.local, op.space))
		return
	}
	s.count(op.local)
	c, f := s.resolveCaller(w, r, p, header)
	if f != nil {
		s.faultOut(w, f)
		return
	}
	if c.mbox != p.acct.mbox && s.ewsDisabledFor(c.mbox) {
		s.forbidden(w)
		return
	}
	if op.local == "GetStreamingEvents" {
		s.serveStream(w, r, c, op)
		return
	}
	var b xw
	envelopeStart(&b, true)
	if err := fn(s, c, op, &b); err != nil {
		var f *fault
		if !errors.As(err, &f) {
			f = &fault{code: "ErrorInternalServerError", text: "An internal server error occurred. The operation failed."}
			s.logf("ewsfake: %s: %v", op.local, err)
		}
		s.faultOut(w, f)
		return
	}
	envelopeEnd(&b)
	s.trace("response", b.Bytes())
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

// splitEnvelope checks the SOAP envelope and returns its Header (may be nil) and the
// operation element (the first child of Body).
func splitEnvelope(env *node) (header, op *node, f *fault) {
	if !env.is(nsSOAP, "Envelope") {
		return nil, nil, schemaFault(env, "The root element must be '%s:Envelope', not '%s:%s'.", nsSOAP, env.space, env.local)
	}
	if err := checkSeq(env, opt(nsSOAP, "Header"), one(nsSOAP, "Body")); err != nil {
		return nil, nil, err.(*fault)
	}
	body := env.child(nsSOAP, "Body")
	if len(body.kids) != 1 {
		return nil, nil, schemaFault(body, "The element 'Body' in namespace '%s' must contain exactly one operation.", nsSOAP)
	}
	op = body.kids[0]
	if op.space != nsMsg {
		return nil, nil, schemaFault(op, "The element 'Body' in namespace '%s' has invalid child element '%s' in namespace '%s'.", nsSOAP, op.local, op.space)
	}
	return env.child(nsSOAP, "Header"), op, nil
}

// resolveCaller reads the SOAP header (version, impersonation, precision) and routes
// the request to a backend.
func (s *Server) resolveCaller(w http.ResponseWriter, r *http.Request, p principal, header *node) (*caller, *fault) {
	c := &caller{acct: p.acct, scheme: p.scheme, w: w, r: r, mbox: p.acct.mbox}
	var imp *node
	for _, h := range kidsOf(header) {
		switch {
		case h.is(nsTypes, "RequestServerVersion"):
			if v, _ := h.attr("Version"); !requestServerVersions[v] {
				return nil, faultInvalidVersion
			}
		case h.is(nsTypes, "ExchangeImpersonation"):
			imp = h
		case h.is(nsTypes, "DateTimePrecision"):
			c.ms = h.value() == "Milliseconds"
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if imp != nil {
		sid := imp.child(nsTypes, "ConnectingSID")
		if sid == nil || len(sid.kids) != 1 {
			return nil, schemaFault(imp, "The element 'ExchangeImpersonation' in namespace '%s' has incomplete content.", nsTypes)
		}
		if !c.acct.service {
			return nil, faultImpersonateDenied
		}
		who := sid.kids[0]
		var target *mailbox
		switch who.local {
		case "SmtpAddress", "PrimarySmtpAddress":
			target = s.byAddr[strings.ToLower(who.value())]
		case "PrincipalName":
			if a := s.logins[strings.ToLower(who.value())]; a != nil {
				target = a.mbox
			}
		}
		if target == nil {
			return nil, faultNonExistentMailbox
		}
		c.mbox, c.impersonating = target, true
	} else if c.acct.service && c.scheme == "Bearer" {
		return nil, faultImpersonationOAuth
	}
	c.affinity = strings.EqualFold(r.Header.Get("X-PreferServerAffinity"), "true")
	c.backend, c.hadCookie = s.route(r, c)
	w.Header().Set("X-CalculatedBETarget", s.backends[c.backend].fqdn)
	return c, nil
}

func kidsOf(n *node) []*node {
	if n == nil {
		return nil
	}
	return n.kids
}

func (s *Server) faultOut(w http.ResponseWriter, f *fault) {
	s.logf("ewsfake: fault %s: %s %s", f.code, f.text, f.violation)
	writeFault(w, f)
}

// forbidden is what IIS answers when EWS is disabled for the mailbox
// (Set-CASMailbox -EwsEnabled $false): HTTP 403 with an HTML body, no SOAP.
func (s *Server) forbidden(w http.ResponseWriter) {
	s.count("forbidden")
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(w, "403 - Forbidden: Access is denied.")
}

func (s *Server) ewsDisabledFor(mb *mailbox) bool {
	if mb == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return mb.ewsDisabled
}

// setDiagHeaders adds the diagnostic headers Exchange puts on EWS responses and
// echoes client-request-id when asked to.
func setDiagHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("request-id", newGUID())
	h.Set("X-FEServer", "EWSFAKE-CAS01")
	h.Set("X-DiagInfo", "EWSFAKE-CAS01")
	if id := r.Header.Get("client-request-id"); id != "" && strings.EqualFold(r.Header.Get("return-client-request-id"), "true") {
		h.Set("client-request-id", id)
	}
	h.Set("X-AspNet-Version", "4.0.30319")
	h.Set("X-Powered-By", "ASP.NET")
}

func (s *Server) trace(what string, body []byte) {
	if !s.opts.Trace {
		return
	}
	const maxTrace = 4096
	if len(body) > maxTrace {
		body = append(body[:maxTrace:maxTrace], "…"...)
	}
	s.logf("ewsfake: %s: %s", what, body)
}
