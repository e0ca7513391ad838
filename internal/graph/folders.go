// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Folder is what Graph reports about a mail folder.
type Folder struct {
	ID          string // immutable folder id
	ParentID    string // the root's id for top-level folders
	DisplayName string
	// WellKnown is the well-known name ("inbox", "sentitems", …) when the
	// folder was asked for by it or identified as it; Folders identifies
	// the inbox.
	WellKnown string
	Total     int // messages (totalItemCount)
	Children  int // direct subfolders (childFolderCount)
}

// Bounds of a folder listing: Graph returns at most 100 folders per page
// here; a tree deeper or larger than this is refused rather than walked
// without end.
const (
	folderPage     = 100
	MaxFolders     = 10000
	MaxFolderDepth = 32
	maxPages       = 1000 // pages followed in any one paged listing
)

const folderSelect = "id,displayName,parentFolderId,childFolderCount,totalItemCount"

// wellKnownFolders are the well-known mail folder names Graph accepts in
// place of an id.
var wellKnownFolders = map[string]bool{
	"archive": true, "clutter": true, "conflicts": true, "conversationhistory": true,
	"deleteditems": true, "drafts": true, "inbox": true, "junkemail": true,
	"localfailures": true, "msgfolderroot": true, "outbox": true, "recoverableitemsdeletions": true,
	"scheduled": true, "searchfolders": true, "sentitems": true, "serverfailures": true,
	"syncissues": true,
}

type folderJSON struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	ParentID    string `json:"parentFolderId"`
	Children    int    `json:"childFolderCount"`
	Total       int    `json:"totalItemCount"`
}

func (x *folderJSON) folder() Folder {
	return Folder{ID: x.ID, ParentID: x.ParentID, DisplayName: x.DisplayName, Total: x.Total, Children: x.Children}
}

type folderPageJSON struct {
	Value    []folderJSON `json:"value"`
	NextLink string       `json:"@odata.nextLink"`
}

// Folders lists the mailbox's whole folder tree: the folders under the
// root, then each one's child folders, depth first in Graph's order
// (hidden folders are left out, as Graph does by default). The inbox is
// marked WellKnown "inbox". A tree of more than MaxFolders folders or
// deeper than MaxFolderDepth fails (ClassProtocol).
func (c *Client) Folders(ctx context.Context, user string) ([]Folder, error) {
	const op = "graph folders"
	if user == "" {
		return nil, mail.Errorf(mail.ClassConfig, op, "empty user")
	}
	var inbox string
	if f, err := c.Folder(ctx, user, "inbox"); err == nil {
		inbox = f.ID
	} else if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoMailbox) {
		return nil, err
	}
	var out []Folder
	var walk func(parent string, depth int) error
	walk = func(parent string, depth int) error {
		path := userPath(user) + "/mailFolders"
		if parent != "" {
			path += "/" + url.PathEscape(parent) + "/childFolders"
		}
		q := query{}.add("$select", folderSelect).add("$top", "100")
		link := c.resolve(path, q.String())
		var kids []Folder
		err := pages(ctx, c, &call{op: op, users: []string{user}, kind: tMailbox, perm: "Mail.ReadBasic"}, link, func(p *folderPageJSON) error {
			for i := range p.Value {
				if len(out)+len(kids) >= MaxFolders {
					return mail.Errorf(mail.ClassProtocol, op, "the mailbox has more than %d folders", MaxFolders)
				}
				f := p.Value[i].folder()
				if f.ID == "" {
					return mail.Errorf(mail.ClassProtocol, op, "a folder without an id")
				}
				if f.ID == inbox {
					f.WellKnown = "inbox"
				}
				kids = append(kids, f)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, f := range kids {
			out = append(out, f)
			if f.Children == 0 {
				continue
			}
			if depth+1 >= MaxFolderDepth {
				return mail.Errorf(mail.ClassProtocol, op, "the folder tree is deeper than %d levels", MaxFolderDepth)
			}
			if err := walk(f.ID, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("", 0); err != nil {
		return nil, err
	}
	return out, nil
}

// paged is a page of a collection: its @odata.nextLink.
type paged interface{ next() string }

func (p *folderPageJSON) next() string { return p.NextLink }

// pages GETs link and the @odata.nextLink pages after it (each checked to
// stay on BaseURL), handing each page to fn; at most maxPages. The mailbox
// slot is held for one page at a time, not while fn runs.
func pages[P any, PP interface {
	*P
	paged
}](ctx context.Context, c *Client, tmpl *call, link string, fn func(PP) error) error {
	for n := 0; link != ""; n++ {
		if n == maxPages {
			return mail.Errorf(mail.ClassProtocol, tmpl.op, "more than %d pages", maxPages)
		}
		r := *tmpl
		r.method, r.url, r.idempotent = "GET", link, true
		p := PP(new(P))
		if err := c.getJSON(ctx, &r, p); err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
		link = p.next()
		if link != "" {
			if _, err := c.checkLink(tmpl.op, link); err != nil {
				return err
			}
		}
	}
	return nil
}

// Folder reads one folder by id or well-known name ("inbox", "sentitems",
// …; case-insensitive). A folder that does not exist fails with
// ErrNotFound (ClassConfig).
func (c *Client) Folder(ctx context.Context, user, idOrWellKnown string) (Folder, error) {
	const op = "graph folder"
	if user == "" || idOrWellKnown == "" {
		return Folder{}, mail.Errorf(mail.ClassConfig, op, "empty user or folder")
	}
	name := idOrWellKnown
	wk := ""
	if wellKnownFolders[strings.ToLower(name)] {
		wk = strings.ToLower(name)
		name = wk
	}
	r := &call{
		op: op, method: "GET", users: []string{user}, kind: tFolder, perm: "Mail.ReadBasic", idempotent: true,
		url: c.resolve(userPath(user)+"/mailFolders/"+url.PathEscape(name), query{}.add("$select", folderSelect).String()),
	}
	var x folderJSON
	if err := c.getJSON(ctx, r, &x); err != nil {
		return Folder{}, err
	}
	if x.ID == "" {
		return Folder{}, mail.Errorf(mail.ClassProtocol, op, "the folder has no id")
	}
	f := x.folder()
	f.WellKnown = wk
	return f, nil
}
