// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// subscription is a change notification subscription to a mailbox's messages.
// Guarded by Server.mu.
type subscription struct {
	n                       uint64 // creation order
	id                      string
	mb                      *mailbox
	folder                  *folder // nil: every message of the mailbox
	resource                string  // as the client gave it
	changeType              string  // as the client gave it
	created, updated, gone  bool    // the change types
	notifyURL, lifecycleURL string
	clientState             string
	expiration              time.Time
	creatorID               string
	// reauthAt is when a reauthorizationRequired event was sent and not yet
	// answered (zero: none pending).
	reauthAt time.Time
}

// Subscription is a snapshot of a live subscription.
type Subscription struct {
	ID              string
	User            string // UPN of the mailbox
	Resource        string
	ChangeType      string
	NotificationURL string
	LifecycleURL    string
	ClientState     string
	Expiration      time.Time
}

// Subscriptions returns the live (unexpired) subscriptions, oldest first.
func (s *Server) Subscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Subscription
	for _, sub := range s.sortedSubs() {
		out = append(out, Subscription{
			ID: sub.id, User: sub.mb.upn, Resource: sub.resource, ChangeType: sub.changeType,
			NotificationURL: sub.notifyURL, LifecycleURL: sub.lifecycleURL, ClientState: sub.clientState,
			Expiration: sub.expiration,
		})
	}
	return out
}

// sortedSubs prunes expired subscriptions (Graph deletes them) and lists the
// others, oldest first. Callers hold s.mu.
func (s *Server) sortedSubs() []*subscription {
	now := s.opts.Now()
	var out []*subscription
	for _, sub := range s.subs {
		if !now.Before(sub.expiration) {
			s.removeSub(sub)
			continue
		}
		out = append(out, sub)
	}
	slices.SortFunc(out, func(a, b *subscription) int { return cmpU64(a.n, b.n) })
	return out
}

func (s *Server) liveSubscriptions() int { return len(s.sortedSubs()) }

func (s *Server) removeSub(sub *subscription) {
	delete(s.subs, sub.id)
	delete(sub.mb.subs, sub)
}

// RemoveSubscriptions deletes every subscription to the mailbox, sending each a
// subscriptionRemoved lifecycle event first (if it has a lifecycle URL).
func (s *Server) RemoveSubscriptions(upn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.userSubs(upn) {
		s.lifecycle(sub, "subscriptionRemoved")
		s.removeSub(sub)
	}
}

// RequireReauthorization sends reauthorizationRequired to every subscription of
// the mailbox. With Options.ReauthorizationGrace their notifications stop after
// the grace until the client reauthorizes or renews.
func (s *Server) RequireReauthorization(upn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	for _, sub := range s.userSubs(upn) {
		s.lifecycle(sub, "reauthorizationRequired")
		if sub.reauthAt.IsZero() {
			sub.reauthAt = now
		}
	}
}

// SendMissed sends a "missed" lifecycle event to every subscription of the
// mailbox, telling clients to resynchronize.
func (s *Server) SendMissed(upn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.userSubs(upn) {
		s.lifecycle(sub, "missed")
	}
}

// userSubs lists the live subscriptions of a mailbox. Callers hold s.mu.
func (s *Server) userSubs(upn string) []*subscription {
	var out []*subscription
	for _, sub := range s.sortedSubs() {
		if strings.EqualFold(sub.mb.upn, upn) {
			out = append(out, sub)
		}
	}
	return out
}

func (s *Server) subObj(sub *subscription, withContext bool) obj {
	var o obj
	if withContext {
		o = obj{{"@odata.context", s.metadata("subscriptions/$entity")}}
	}
	var lc any
	if sub.lifecycleURL != "" {
		lc = sub.lifecycleURL
	}
	var cs any
	if sub.clientState != "" {
		cs = sub.clientState
	}
	return append(o,
		kv{"id", sub.id},
		kv{"resource", sub.resource},
		kv{"applicationId", s.opts.ClientID},
		kv{"changeType", sub.changeType},
		kv{"clientState", cs},
		kv{"notificationUrl", sub.notifyURL},
		kv{"notificationQueryOptions", nil},
		kv{"lifecycleNotificationUrl", lc},
		kv{"expirationDateTime", graphTime7(sub.expiration)},
		kv{"creatorId", sub.creatorID},
		kv{"includeResourceData", nil},
		kv{"latestSupportedTlsVersion", "v1_2"},
		kv{"encryptionCertificate", nil},
		kv{"encryptionCertificateId", nil},
		kv{"notificationUrlAppId", nil},
	)
}

// visible tells whether the caller may see a subscription: an app token those of
// the app, a delegated token those the user created.
func visible(rc *reqCtx, sub *subscription) bool { return rc.p.app || sub.creatorID == rc.p.userID }

// findSub resolves rc's subscription id. Callers hold s.mu.
func (s *Server) findSub(rc *reqCtx) (*subscription, *apiResponse) {
	s.sortedSubs() // prune expired ones
	sub := s.subs[strings.ToLower(rc.keys.sub)]
	if sub == nil || !visible(rc, sub) {
		return nil, rc.fail(http.StatusNotFound, "ResourceNotFound", "The subscription was not found.")
	}
	return sub, nil
}

func (s *Server) listSubscriptions(rc *reqCtx) *apiResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	value := []obj{}
	for _, sub := range s.sortedSubs() {
		if visible(rc, sub) {
			value = append(value, s.subObj(sub, false))
		}
	}
	return rc.json(http.StatusOK, obj{{"@odata.context", s.metadata("subscriptions")}, {"value", value}})
}

func (s *Server) getSubscription(rc *reqCtx) *apiResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, r := s.findSub(rc)
	if r != nil {
		return r
	}
	return rc.json(http.StatusOK, s.subObj(sub, true))
}

func (s *Server) deleteSubscription(rc *reqCtx) *apiResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, r := s.findSub(rc)
	if r != nil {
		return r
	}
	s.removeSub(sub)
	return rc.empty(http.StatusNoContent)
}

// reauthorizeSubscription answers a reauthorizationRequired challenge.
func (s *Server) reauthorizeSubscription(rc *reqCtx) *apiResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, r := s.findSub(rc)
	if r != nil {
		return r
	}
	sub.reauthAt = time.Time{}
	return rc.empty(http.StatusNoContent)
}

// renewSubscription is PATCH: a new expirationDateTime, which also reauthorizes.
func (s *Server) renewSubscription(rc *reqCtx) *apiResponse {
	var in map[string]json.RawMessage
	if err := json.Unmarshal(rc.body, &in); err != nil {
		return rc.fail(http.StatusBadRequest, "InvalidRequest", "The request body is not a valid JSON object.")
	}
	var exp string
	for k, v := range in {
		if strings.EqualFold(k, "expirationDateTime") {
			if json.Unmarshal(v, &exp) != nil {
				return rc.fail(http.StatusBadRequest, "InvalidRequest", "expirationDateTime must be a string.")
			}
		} else {
			s.logf("graphfake: PATCH subscription: %s ignored", k)
		}
	}
	if exp == "" {
		return rc.fail(http.StatusBadRequest, "InvalidRequest", "expirationDateTime is required.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, r := s.findSub(rc)
	if r != nil {
		return r
	}
	t, r := s.expiration(rc, exp)
	if r != nil {
		return r
	}
	sub.expiration, sub.reauthAt = t, time.Time{}
	return rc.json(http.StatusOK, s.subObj(sub, true))
}

// expiration checks a requested expirationDateTime: in the future, at most
// MaxSubscriptionLifetime ahead; sooner than MinSubscriptionLifetime is moved out
// to it.
func (s *Server) expiration(rc *reqCtx, v string) (time.Time, *apiResponse) {
	t, err := parseGraphTime(v)
	if err != nil {
		return t, rc.fail(http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("expirationDateTime '%s' is not a valid date and time.", v))
	}
	now := s.opts.Now()
	switch {
	case !t.After(now):
		return t, rc.fail(http.StatusBadRequest, "InvalidRequest", "Subscription expiration must be in the future.")
	case t.Sub(now) > MaxSubscriptionLifetime:
		return t, rc.fail(http.StatusBadRequest, "InvalidRequest",
			fmt.Sprintf("Subscription expiration can only be %.0f minutes in the future.", MaxSubscriptionLifetime.Minutes()))
	case t.Sub(now) < MinSubscriptionLifetime:
		t = now.Add(MinSubscriptionLifetime)
	}
	return t.UTC(), nil
}

// createSubscription checks the request, validates the notification URL(s) with
// the handshake (the mutex released meanwhile), and creates the subscription.
func (s *Server) createSubscription(rc *reqCtx) *apiResponse {
	var in struct {
		ChangeType               string `json:"changeType"`
		NotificationURL          string `json:"notificationUrl"`
		LifecycleNotificationURL string `json:"lifecycleNotificationUrl"`
		Resource                 string `json:"resource"`
		ExpirationDateTime       string `json:"expirationDateTime"`
		ClientState              string `json:"clientState"`
		IncludeResourceData      bool   `json:"includeResourceData"`
	}
	if err := json.Unmarshal(rc.body, &in); err != nil {
		return rc.fail(http.StatusBadRequest, "InvalidRequest", "The request body is not valid JSON for a subscription.")
	}
	bad := func(msg string) *apiResponse {
		s.logf("graphfake: POST /subscriptions: %s", msg)
		return rc.fail(http.StatusBadRequest, "InvalidRequest", msg)
	}
	switch {
	case in.ChangeType == "" || in.NotificationURL == "" || in.Resource == "" || in.ExpirationDateTime == "":
		return bad("changeType, notificationUrl, resource and expirationDateTime are required.")
	case len(in.ClientState) > 128:
		return bad("clientState must not be longer than 128 characters.")
	case in.IncludeResourceData:
		return bad("includeResourceData is not supported by this server.")
	}
	sub := &subscription{id: newGUID(), resource: in.Resource, changeType: in.ChangeType,
		notifyURL: in.NotificationURL, lifecycleURL: in.LifecycleNotificationURL, clientState: in.ClientState}
	for _, ct := range strings.Split(in.ChangeType, ",") {
		switch strings.ToLower(strings.TrimSpace(ct)) {
		case "created":
			sub.created = true
		case "updated":
			sub.updated = true
		case "deleted":
			sub.gone = true
		default:
			return bad(fmt.Sprintf("changeType '%s' is not supported for messages.", ct))
		}
	}
	for _, u := range []string{in.NotificationURL, in.LifecycleNotificationURL} {
		if u != "" && !loopbackURL(u) {
			return bad(fmt.Sprintf("Notification URL '%s' is not allowed: this server only notifies loopback http(s) URLs.", u))
		}
	}
	s.mu.Lock()
	mb, folder, r := s.subResource(rc, in.Resource)
	if r == nil {
		sub.expiration, r = s.expiration(rc, in.ExpirationDateTime)
	}
	s.mu.Unlock()
	if r != nil {
		return r
	}
	sub.mb, sub.folder = mb, folder
	sub.creatorID = s.spID
	if !rc.p.app {
		sub.creatorID = rc.p.userID
	}
	urls := []string{in.NotificationURL}
	if l := in.LifecycleNotificationURL; l != "" && l != in.NotificationURL {
		urls = append(urls, l)
	}
	for _, u := range urls {
		if msg := s.validateURL(rc.ctx, u); msg != "" {
			s.logf("graphfake: subscription validation of %s failed: %s", u, msg)
			return rc.fail(http.StatusBadRequest, "ValidationError", "Subscription validation request failed. "+msg)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return rc.fail(http.StatusServiceUnavailable, "ServiceUnavailable", "The service is shutting down.")
	}
	s.subSeq++
	sub.n = s.subSeq
	s.subs[sub.id] = sub
	mb.subs[sub] = struct{}{}
	return rc.json(http.StatusCreated, s.subObj(sub, true))
}

// subResource resolves a subscription resource: [/]users/{id|upn}/messages,
// me/messages, or …/mailFolders('{id|name}')/messages (also
// …/mailFolders/{id}/messages). Callers hold s.mu.
func (s *Server) subResource(rc *reqCtx, res string) (*mailbox, *folder, *apiResponse) {
	unsupported := rc.fail(http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("Resource '%s' is not supported; subscribe to a mailbox's or a mail folder's messages.", res))
	segs, ok := parseSegs(strings.SplitN(res, "?", 2)[0])
	if !ok || len(segs) < 2 {
		return nil, nil, unsupported
	}
	var u string
	switch {
	case segs[0].is("users") && segs[0].hasKey:
		u, segs = segs[0].key, segs[1:]
	case segs[0].is("users") && len(segs) > 2:
		u, segs = segs[1].name, segs[2:]
	case segs[0].is("me") && !segs[0].hasKey:
		if rc.p.app {
			return nil, nil, rc.fail(http.StatusBadRequest, "BadRequest", "/me request is only valid with delegated authentication flow.")
		}
		u, segs = rc.p.userID, segs[1:]
	default:
		return nil, nil, unsupported
	}
	mb := s.byName[strings.ToLower(u)]
	if mb == nil {
		return nil, nil, rc.fail(http.StatusNotFound, "ErrorInvalidUser", fmt.Sprintf("The requested user '%s' is invalid.", u))
	}
	if !rc.p.app && rc.p.userID != mb.id {
		return nil, nil, rc.fail(http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
	}
	var f *folder
	if segs[0].is("mailFolders") {
		key := segs[0].key
		if !segs[0].hasKey {
			if len(segs) < 2 {
				return nil, nil, unsupported
			}
			key, segs = segs[1].name, segs[1:]
		}
		segs = segs[1:]
		rc.mb = mb
		var r *apiResponse
		if f, r = s.findFolder(rc, key); r != nil {
			return nil, nil, r
		}
	}
	if len(segs) != 1 || !segs[0].is("messages") || segs[0].hasKey {
		return nil, nil, unsupported
	}
	return mb, f, nil
}

// loopbackURL tells whether u is an http(s) URL on a loopback address: the fake
// never sends traffic anywhere else. (Graph itself insists on HTTPS; the fake
// also accepts plain HTTP so that tests need no certificates.)
func loopbackURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") {
		return false
	}
	h := p.Hostname()
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// validationToken imitates the readable token Graph sends, which needs URL
// decoding (spaces, colons) before it is echoed.
func validationToken() string {
	return "Validation: Testing client application reachability for subscription Request-Id: " + newGUID()
}

// validateURL runs the handshake: POST u?validationToken=…, which must be
// answered 200 text/plain with the decoded token within ValidationTimeout. It
// returns "" on success, else what went wrong.
func (s *Server) validateURL(ctx context.Context, u string) string {
	s.mu.Lock()
	s.stats.validations++
	s.mu.Unlock()
	tok := validationToken()
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	ctx, stop := mergeDone(ctx, s.ctx)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, s.opts.ValidationTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+sep+"validationToken="+url.QueryEscape(tok), nil)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := s.opts.NotifyClient.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return "The notification endpoint did not answer within the validation timeout."
		}
		return "The notification endpoint could not be reached."
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case resp.StatusCode != http.StatusOK:
		return fmt.Sprintf("Notification endpoint must respond with 200 OK to validation request (got %d).", resp.StatusCode)
	case ct != "text/plain":
		return "The response to the validation request must have Content-Type text/plain."
	case strings.TrimSpace(string(body)) != tok:
		return "The response to the validation request must be the decoded validation token."
	}
	return ""
}

// mergeDone returns a context of a that is also cancelled when b is, and its
// release.
func mergeDone(a, b context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return ctx, func() { stop(); cancel() }
}
