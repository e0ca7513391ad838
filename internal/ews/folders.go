// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"context"
	"encoding/xml"
	"strconv"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Folder is what GetFolder and FindFolders report about a folder.
type Folder struct {
	ID          FolderID // ID and ChangeKey
	ParentID    string
	DisplayName string
	Class       string // FolderClass: "IPF.Note" for mail, "IPF.Appointment", …
	Total       int    // items
	Children    int    // direct subfolders
	// Kind is the element name: "Folder", "SearchFolder", "CalendarFolder",
	// "ContactsFolder", "TasksFolder".
	Kind string
}

// Paging of FindFolder: Exchange returns at most 1,000 entries per call
// (EWSFindCountLimit); maxFolderPages bounds a listing at 100,000 folders.
const (
	folderPage     = 500
	maxFolderPages = 200
)

type folderXML struct {
	XMLName     xml.Name
	FolderID    idXML  `xml:"FolderId"`
	ParentID    idXML  `xml:"ParentFolderId"`
	Class       string `xml:"FolderClass"`
	DisplayName string `xml:"DisplayName"`
	Total       string `xml:"TotalCount"`
	Children    string `xml:"ChildFolderCount"`
}

func (x *folderXML) folder() Folder {
	return Folder{
		ID:          FolderID{ID: x.FolderID.ID, ChangeKey: x.FolderID.ChangeKey},
		ParentID:    x.ParentID.ID,
		DisplayName: x.DisplayName,
		Class:       x.Class,
		Total:       atoi(x.Total),
		Children:    atoi(x.Children),
		Kind:        x.XMLName.Local,
	}
}

type foldersXML struct {
	List []folderXML `xml:",any"`
}

type getFolderMsg struct {
	responseMessage
	Folders foldersXML `xml:"Folders"`
}

// folderShape writes m:FolderShape: ids plus the properties Folder reports.
func (w *xmlw) folderShape() {
	w.start("m:FolderShape")
	w.elem("t:BaseShape", "IdOnly")
	w.fieldURIs("folder:DisplayName", "folder:FolderClass", "folder:ParentFolderId",
		"folder:ChildFolderCount", "folder:TotalCount")
	w.end("m:FolderShape")
}

// GetFolder reads folders by id or well-known name, in the order asked. A
// missing folder fails the call with ErrNotFound.
func (c *Client) GetFolder(ctx context.Context, t Target, ids ...FolderID) ([]Folder, error) {
	const op = "GetFolder"
	if len(ids) == 0 {
		return nil, nil
	}
	for _, id := range ids {
		if id.empty() {
			return nil, mail.Errorf(mail.ClassConfig, "ews "+op, "empty folder id")
		}
	}
	msgs, err := call[getFolderMsg](ctx, c, t, op, true, func(w *xmlw) {
		w.start("m:GetFolder")
		w.folderShape()
		w.start("m:FolderIds")
		for _, id := range ids {
			w.folderID(id)
		}
		w.end("m:FolderIds")
		w.end("m:GetFolder")
	})
	if err != nil {
		return nil, err
	}
	var out []Folder
	for i := range msgs {
		for j := range msgs[i].Folders.List {
			out = append(out, msgs[i].Folders.List[j].folder())
		}
	}
	return out, nil
}

// rootFolderXML is FindFolder's and FindItem's m:RootFolder.
type rootFolderXML struct {
	Offset  string     `xml:"IndexedPagingOffset,attr"`
	Total   string     `xml:"TotalItemsInView,attr"`
	Last    string     `xml:"IncludesLastItemInRange,attr"`
	Folders foldersXML `xml:"Folders"`
	Items   itemsXML   `xml:"Items"`
}

// next returns the offset of the next page and whether this one was the last.
func (r *rootFolderXML) next(offset, n int) (int, bool) {
	if isTrue(r.Last) {
		return 0, true
	}
	next := offset + n
	if o := atoi(r.Offset); o > offset {
		next = o
	}
	return next, false
}

type findFolderMsg struct {
	responseMessage
	Root rootFolderXML `xml:"RootFolder"`
}

// FindFolders lists the subfolders of parent: its children, or with deep the
// whole tree below it, paging until the server says it sent the last one.
func (c *Client) FindFolders(ctx context.Context, t Target, parent FolderID, deep bool) ([]Folder, error) {
	const op = "FindFolder"
	if parent.empty() {
		return nil, mail.Errorf(mail.ClassConfig, "ews "+op, "empty parent folder id")
	}
	traversal := "Shallow"
	if deep {
		traversal = "Deep"
	}
	var out []Folder
	offset := 0
	for range maxFolderPages {
		msgs, err := call[findFolderMsg](ctx, c, t, op, true, func(w *xmlw) {
			w.start("m:FindFolder", "Traversal", traversal)
			w.folderShape()
			w.empty("m:IndexedPageFolderView", "MaxEntriesReturned", strconv.Itoa(folderPage),
				"Offset", strconv.Itoa(offset), "BasePoint", "Beginning")
			w.start("m:ParentFolderIds")
			w.folderID(parent)
			w.end("m:ParentFolderIds")
			w.end("m:FindFolder")
		})
		if err != nil {
			return nil, err
		}
		root := &msgs[0].Root
		for i := range root.Folders.List {
			out = append(out, root.Folders.List[i].folder())
		}
		next, last := root.next(offset, len(root.Folders.List))
		if last {
			return out, nil
		}
		if len(root.Folders.List) == 0 || next <= offset {
			return nil, mail.Errorf(mail.ClassProtocol, "ews "+op, "paging makes no progress at offset %d", offset)
		}
		offset = next
	}
	return nil, mail.Errorf(mail.ClassProtocol, "ews "+op, "more than %d pages of folders", maxFolderPages)
}

func atoi(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func isTrue(s string) bool {
	s = strings.TrimSpace(s)
	return s == "true" || s == "1"
}
