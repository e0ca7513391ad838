// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// Permissions (application roles or delegated scopes) that operations accept,
// after Graph's permission reference: any one of a list will do.
var (
	permMailRead  = []string{"Mail.ReadBasic", "Mail.ReadBasic.All", "Mail.Read", "Mail.ReadWrite"}
	permMailBody  = []string{"Mail.Read", "Mail.ReadWrite"}
	permMailWrite = []string{"Mail.ReadWrite"}
	permMailSend  = []string{"Mail.Send"}
	permUserRead  = []string{"User.Read", "User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All", "Directory.Read.All"}
	permTranslate = []string{"User.Read", "User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All"}
	permSubscribe = []string{"Mail.ReadBasic", "Mail.ReadBasic.All", "Mail.Read", "Mail.ReadWrite"}
)

type handler func(*reqCtx) *apiResponse

// routed is the outcome of routing: the operation, the permissions it needs and
// the user it addresses, if any.
type routed struct {
	h     handler
	perms []string
	user  *string // the {id|upn} segment, or "" for /me
}

// routeKeys are the keys a route captured.
type routeKeys struct {
	folder string // folder id or well-known name; "" for /messages
	msg    string
	sub    string
}

// seg is a path segment, possibly in key syntax: mailFolders('inbox').
type seg struct {
	name   string
	key    string
	hasKey bool
}

func (g seg) is(name string) bool { return strings.EqualFold(g.name, name) }

func parseSegs(escaped string) ([]seg, bool) {
	var out []seg
	for _, raw := range strings.Split(strings.Trim(escaped, "/"), "/") {
		if raw == "" {
			continue
		}
		v, err := url.PathUnescape(raw)
		if err != nil {
			return nil, false
		}
		g := seg{name: v}
		if i := strings.IndexByte(v, '('); i > 0 && strings.HasSuffix(v, ")") {
			g = seg{name: v[:i], key: strings.Trim(v[i+1:len(v)-1], "'\""), hasKey: true}
		}
		if len(g.name) > len("microsoft.graph.") && strings.EqualFold(g.name[:len("microsoft.graph.")], "microsoft.graph.") {
			g.name = g.name[len("microsoft.graph."):]
		}
		out = append(out, g)
	}
	return out, true
}

// methods maps HTTP methods to operations of one resource.
type methods map[string]struct {
	h     handler
	perms []string
}

// route maps a request to an operation. Segment names match case-insensitively,
// as in Graph. An unknown segment is 400 "Resource not found for the segment",
// a known resource with the wrong method 405.
func (s *Server) route(rc *reqCtx) (routed, *apiResponse) {
	segs, ok := parseSegs(rc.path)
	if !ok || len(segs) == 0 {
		return routed{}, rc.fail(http.StatusBadRequest, "BadRequest", "Invalid request.")
	}
	var ms methods
	var user *string
	bad := ""
	switch {
	case segs[0].is("users") && (len(segs) > 1 || segs[0].hasKey):
		u, rest := "", segs[1:]
		if segs[0].hasKey {
			u = segs[0].key
		} else {
			u, rest = segs[1].name, segs[2:]
		}
		user = &u
		rc.userSeg = "users/" + url.PathEscape(u)
		ms, bad = s.userRoutes(rc, rest)
	case segs[0].is("me") && !segs[0].hasKey:
		me := ""
		user = &me
		rc.userSeg = "me"
		ms, bad = s.userRoutes(rc, segs[1:])
	case segs[0].is("subscriptions"):
		ms, bad = s.subscriptionRoutes(rc, segs)
	default:
		bad = segs[0].name
	}
	if bad != "" {
		return routed{}, rc.fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", bad))
	}
	m, ok := ms[rc.method]
	if !ok {
		allow := make([]string, 0, len(ms))
		for k := range ms {
			allow = append(allow, k)
		}
		sort.Strings(allow)
		r := rc.fail(http.StatusMethodNotAllowed, "BadRequest", "Specified HTTP method is not allowed for the request target.")
		r.header.Set("Allow", strings.Join(allow, ", "))
		return routed{}, r
	}
	return routed{h: m.h, perms: m.perms, user: user}, nil
}

func get(h handler, perms []string) methods {
	return methods{http.MethodGet: {h, perms}}
}

// userRoutes routes what follows /users/{id} or /me.
func (s *Server) userRoutes(rc *reqCtx, rest []seg) (methods, string) {
	if len(rest) == 0 {
		return get(s.getUser, permUserRead), ""
	}
	head := rest[0]
	switch {
	case head.is("mailFolders"):
		if !head.hasKey && len(rest) == 1 {
			return methods{
				http.MethodGet:  {s.listFolders, permMailRead},
				http.MethodPost: {s.createFolder, permMailWrite},
			}, ""
		}
		key, tail := head.key, rest[1:]
		if !head.hasKey {
			key, tail = rest[1].name, rest[2:]
		}
		// childFolders/{id} may repeat; the last key names the folder (ids are
		// unique within a mailbox).
		for len(tail) > 0 && tail[0].is("childFolders") {
			rc.keys.folder = key
			if !tail[0].hasKey && len(tail) == 1 {
				return methods{
					http.MethodGet:  {s.listChildFolders, permMailRead},
					http.MethodPost: {s.createFolder, permMailWrite},
				}, ""
			}
			if tail[0].hasKey {
				key, tail = tail[0].key, tail[1:]
			} else {
				key, tail = tail[1].name, tail[2:]
			}
		}
		rc.keys.folder = key
		if len(tail) == 0 {
			return get(s.getFolder, permMailRead), ""
		}
		if !tail[0].is("messages") {
			return nil, tail[0].name
		}
		return s.messageRoutes(rc, tail)
	case head.is("messages"):
		return s.messageRoutes(rc, rest)
	case head.is("sendMail") && len(rest) == 1:
		return methods{http.MethodPost: {s.sendMail, permMailSend}}, ""
	case head.is("translateExchangeIds") && len(rest) == 1:
		return methods{http.MethodPost: {s.translateIDs, permTranslate}}, ""
	}
	return nil, head.name
}

// messageRoutes routes messages[...] of a folder (rc.keys.folder) or of the
// mailbox.
func (s *Server) messageRoutes(rc *reqCtx, t []seg) (methods, string) {
	if t[0].hasKey {
		rc.keys.msg = t[0].key
		t = append([]seg{{name: "messages"}, {name: t[0].key}}, t[1:]...)
	}
	switch {
	case len(t) == 1:
		return get(s.listMessages, permMailRead), ""
	case t[1].is("delta") && rc.keys.folder != "" && len(t) == 2:
		return get(s.serveDelta, permMailRead), ""
	}
	rc.keys.msg = t[1].name
	switch {
	case len(t) == 2:
		return methods{
			http.MethodGet:    {s.getMessage, permMailRead},
			http.MethodPatch:  {s.patchMessage, permMailWrite},
			http.MethodDelete: {s.deleteMessage, permMailWrite},
		}, ""
	case len(t) == 3 && t[2].is("$value"):
		return get(s.getMIME, permMailBody), ""
	case len(t) == 3 && t[2].is("move"):
		return methods{http.MethodPost: {s.moveMessage, permMailWrite}}, ""
	}
	return nil, t[2].name
}

// subscriptionRoutes routes /subscriptions[...].
func (s *Server) subscriptionRoutes(rc *reqCtx, segs []seg) (methods, string) {
	if segs[0].hasKey {
		segs = append([]seg{{name: "subscriptions"}, {name: segs[0].key}}, segs[1:]...)
	}
	switch len(segs) {
	case 1:
		return methods{
			http.MethodGet:  {s.listSubscriptions, permSubscribe},
			http.MethodPost: {s.createSubscription, permSubscribe},
		}, ""
	case 2:
		rc.keys.sub = segs[1].name
		return methods{
			http.MethodGet:    {s.getSubscription, permSubscribe},
			http.MethodPatch:  {s.renewSubscription, permSubscribe},
			http.MethodDelete: {s.deleteSubscription, permSubscribe},
		}, ""
	case 3:
		if segs[2].is("reauthorize") {
			rc.keys.sub = segs[1].name
			return methods{http.MethodPost: {s.reauthorizeSubscription, permSubscribe}}, ""
		}
		return nil, segs[2].name
	}
	return nil, segs[3].name
}

// resolveUser finds the addressed mailbox and checks that the caller may use it:
// an app token any mailbox, a delegated token only its own.
func (s *Server) resolveUser(rc *reqCtx, u string) *apiResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u == "" { // /me
		if rc.p.app {
			return rc.fail(http.StatusBadRequest, "BadRequest", "/me request is only valid with delegated authentication flow.")
		}
		u = rc.p.userID
	}
	mb := s.byName[strings.ToLower(u)]
	if mb == nil {
		return rc.fail(http.StatusNotFound, "ErrorInvalidUser", fmt.Sprintf("The requested user '%s' is invalid.", u))
	}
	if !rc.p.app && rc.p.userID != mb.id {
		return rc.fail(http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
	}
	rc.mb = mb
	s.stats.byUser[mb.upn]++
	return nil
}
