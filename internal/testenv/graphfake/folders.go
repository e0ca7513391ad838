// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// findFolder resolves rc's folder key: a garbled key is 400
// ErrorInvalidIdMalformed, a well-formed one naming nothing 404
// ErrorItemNotFound, as in Graph. Callers hold s.mu.
func (s *Server) findFolder(rc *reqCtx, key string) (*folder, *apiResponse) {
	if f := s.lookupFolder(rc.mb, key); f != nil {
		return f, nil
	}
	if r, err := s.ids.parseID(key); err == nil && r.folder {
		return nil, rc.fail(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
	}
	return nil, rc.fail(http.StatusBadRequest, "ErrorInvalidIdMalformed", "Id is malformed.")
}

// folderObj renders a mailFolder. Callers hold s.mu.
func (s *Server) folderObj(f *folder) obj {
	unread, size, children := 0, 0, 0
	for _, m := range f.msgs {
		if !m.read {
			unread++
		}
		size += len(m.mime)
	}
	for _, c := range f.mbox.order {
		if c.parent == f {
			children++
		}
	}
	parent := s.ids.id(objRef{folder: true, mbox: f.mbox.num}) // the mailbox's non-IPM root, not addressable
	if f.parent != nil {
		parent = f.parent.id
	}
	return obj{
		{"id", f.id},
		{"displayName", f.name},
		{"parentFolderId", parent},
		{"childFolderCount", children},
		{"unreadItemCount", unread},
		{"totalItemCount", len(f.msgs)},
		{"sizeInBytes", size},
		{"isHidden", f.hidden},
	}
}

func (s *Server) getUser(rc *reqCtx) *apiResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := rc.mb
	name, _, _ := strings.Cut(mb.upn, "@")
	return rc.json(http.StatusOK, obj{
		{"@odata.context", s.metadata("users/$entity")},
		{"businessPhones", []string{}},
		{"displayName", name},
		{"mail", mb.upn},
		{"userPrincipalName", mb.upn},
		{"id", mb.id},
	})
}

func (s *Server) getFolder(rc *reqCtx) *apiResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, r := s.findFolder(rc, rc.keys.folder)
	if r != nil {
		return r
	}
	return rc.json(http.StatusOK, append(obj{{"@odata.context", s.metadata("users('" + rc.mb.id + "')/mailFolders/$entity")}}, s.folderObj(f)...))
}

// listFolders lists the top-level folders: the children of msgfolderroot.
func (s *Server) listFolders(rc *reqCtx) *apiResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.folderPage(rc, rc.mb.wk["msgfolderroot"], "mailFolders")
}

func (s *Server) listChildFolders(rc *reqCtx) *apiResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, r := s.findFolder(rc, rc.keys.folder)
	if r != nil {
		return r
	}
	return s.folderPage(rc, f, "mailFolders('"+f.id+"')/childFolders")
}

// folderPage answers one page of parent's children ($top, $skip,
// includeHiddenFolders). $select is accepted and not applied: folder objects are
// small. Callers hold s.mu.
func (s *Server) folderPage(rc *reqCtx, parent *folder, ctx string) *apiResponse {
	top, ok := rc.top(DefaultPageSize)
	skip, err := strconv.Atoi(rc.query.Get("$skip"))
	if !ok || (rc.query.Has("$skip") && (err != nil || skip < 0)) {
		return rc.fail(http.StatusBadRequest, "ErrorInvalidUrlQuery", "The value of $top or $skip is invalid.")
	}
	hidden := strings.EqualFold(rc.query.Get("includeHiddenFolders"), "true")
	var all []*folder
	for _, f := range parent.mbox.order {
		if f.parent == parent && (hidden || !f.hidden) {
			all = append(all, f)
		}
	}
	value := []obj{}
	for i := skip; i < len(all) && i < skip+top; i++ {
		value = append(value, s.folderObj(all[i]))
	}
	out := obj{{"@odata.context", s.metadata("users('" + rc.mb.id + "')/" + ctx)}, {"value", value}}
	if skip+top < len(all) {
		q := [][2]string{}
		if hidden {
			q = append(q, [2]string{"includeHiddenFolders", "true"})
		}
		if v := rc.query.Get("$select"); v != "" {
			q = append(q, [2]string{"$select", v})
		}
		q = append(q, [2]string{"$top", strconv.Itoa(top)}, [2]string{"$skip", strconv.Itoa(skip + top)})
		out = append(out, kv{"@odata.nextLink", s.apiLink(rc.path, q)})
	}
	return rc.json(http.StatusOK, out)
}

// createFolder creates a folder under rc's folder, or at the top level.
func (s *Server) createFolder(rc *reqCtx) *apiResponse {
	var in struct {
		DisplayName string `json:"displayName"`
		IsHidden    bool   `json:"isHidden"`
	}
	if err := json.Unmarshal(rc.body, &in); err != nil {
		return rc.fail(http.StatusBadRequest, "RequestBodyRead", "The request body is not valid JSON for a mailFolder.")
	}
	if strings.TrimSpace(in.DisplayName) == "" {
		return rc.fail(http.StatusBadRequest, "ErrorInvalidRequest", "The displayName property is required.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	parent := rc.mb.wk["msgfolderroot"]
	if rc.keys.folder != "" {
		var r *apiResponse
		if parent, r = s.findFolder(rc, rc.keys.folder); r != nil {
			return r
		}
	}
	if childNamed(parent, in.DisplayName) != nil {
		return rc.fail(http.StatusConflict, "ErrorFolderExists", "A folder with the specified name already exists.")
	}
	f := s.newFolder(rc.mb, parent, in.DisplayName)
	f.hidden = in.IsHidden
	return rc.json(http.StatusCreated, append(obj{{"@odata.context", s.metadata("users('" + rc.mb.id + "')/mailFolders/$entity")}}, s.folderObj(f)...))
}
