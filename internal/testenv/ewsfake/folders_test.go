// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"slices"
	"strings"
	"testing"
)

func TestGetFolderWireFormat(t *testing.T) {
	s, c := newFake(t, Options{})
	_, err := s.Deliver("alice@ewsfake.test", "inbox", testMessage("one", "x@example.org", "alice@ewsfake.test"))
	mustOK(t, err)
	env, raw := c.call(`<msg:GetFolder><msg:FolderShape><typ:BaseShape>Default</typ:BaseShape>` +
		`<typ:AdditionalProperties><typ:FieldURI FieldURI="folder:FolderClass"/></typ:AdditionalProperties></msg:FolderShape>` +
		`<msg:FolderIds><typ:DistinguishedFolderId Id="inbox"/><typ:DistinguishedFolderId Id="tasks"/>` +
		`<typ:DistinguishedFolderId Id="calendar"/><typ:FolderId Id="garbage"/></msg:FolderIds></msg:GetFolder>`)

	// The envelope as Exchange 2013+ renders it: s: envelope, h:ServerVersionInfo
	// in the header, m:/t: prefixes.
	for _, want := range []string{
		`<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"`,
		`<m:GetFolderResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages><m:GetFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Folders><t:Folder><t:FolderId Id="`,
		`<m:GetFolderResponseMessage ResponseClass="Error"><m:MessageText>The specified folder could not be found in the store.</m:MessageText><m:ResponseCode>ErrorFolderNotFound</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:GetFolderResponseMessage>`,
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("response lacks %s\n%s", want, raw)
		}
	}
	ms := messages(t, env)
	if len(ms) != 4 {
		t.Fatalf("%d messages, want one per folder id", len(ms))
	}
	checkCode(t, ms[0], "NoError")
	checkCode(t, ms[1], "ErrorFolderNotFound") // a valid name this mailbox lacks
	checkCode(t, ms[2], "NoError")
	checkCode(t, ms[3], "ErrorInvalidIdMalformed")
	inbox := path(ms[0], "Folders", "Folder")
	if got := kidNames(inbox); !slices.Equal(got, []string{"FolderId", "FolderClass", "DisplayName", "TotalCount", "ChildFolderCount", "UnreadCount"}) {
		t.Errorf("inbox children %v (schema order)", got)
	}
	if path(inbox, "TotalCount").value() != "1" || path(inbox, "UnreadCount").value() != "1" {
		t.Errorf("counts: %s", raw)
	}
	if id, _ := path(inbox, "FolderId").attr("Id"); id != s.FolderID("alice@ewsfake.test", "inbox") {
		t.Errorf("FolderId %s, want %s", id, s.FolderID("alice@ewsfake.test", "inbox"))
	}
	if cal := path(ms[2], "Folders").kids[0]; cal.local != "CalendarFolder" || path(cal, "UnreadCount") != nil {
		t.Errorf("calendar rendered as %s %v", cal.local, kidNames(cal))
	}

	// Another mailbox's folder is not ours to read.
	mustOK(t, s.AddMailbox("bob@ewsfake.test", "", "pw-bob"))
	env, _ = c.call(`<msg:GetFolder><msg:FolderShape><typ:BaseShape>IdOnly</typ:BaseShape></msg:FolderShape><msg:FolderIds>` +
		`<typ:FolderId Id="` + s.FolderID("bob@ewsfake.test", "inbox") + `"/></msg:FolderIds></msg:GetFolder>`)
	single(t, env, "ErrorAccessDenied")
}

func TestFindFolderDeepAndPaging(t *testing.T) {
	s, c := newFake(t, Options{})
	sub, err := s.CreateFolder("alice@ewsfake.test", "inbox", "Invoices", "")
	mustOK(t, err)
	_, err = s.CreateFolder("alice@ewsfake.test", sub, "2026", "IPF.Note")
	mustOK(t, err)

	find := func(traversal, view string) *node {
		env, _ := c.call(`<msg:FindFolder Traversal="` + traversal + `"><msg:FolderShape><typ:BaseShape>IdOnly</typ:BaseShape>` +
			`<typ:AdditionalProperties><typ:FieldURI FieldURI="folder:DisplayName"/><typ:FieldURI FieldURI="folder:ParentFolderId"/>` +
			`<typ:FieldURI FieldURI="folder:ChildFolderCount"/><typ:FieldURI FieldURI="folder:TotalCount"/><typ:FieldURI FieldURI="folder:FolderClass"/>` +
			`</typ:AdditionalProperties></msg:FolderShape>` + view +
			`<msg:ParentFolderIds><typ:DistinguishedFolderId Id="msgfolderroot"/></msg:ParentFolderIds></msg:FindFolder>`)
		return single(t, env, "NoError").child(nsMsg, "RootFolder")
	}
	names := func(root *node) []string {
		var out []string
		for _, f := range path(root, "Folders").kids {
			out = append(out, path(f, "DisplayName").value())
		}
		return out
	}
	shallow := find("Shallow", "")
	if got := names(shallow); !slices.Equal(got, []string{"Inbox", "Drafts", "Sent Items", "Deleted Items", "Junk Email", "Outbox", "Calendar", "Contacts"}) {
		t.Errorf("shallow = %v", got)
	}
	deep := find("Deep", "")
	if got := names(deep); !slices.Contains(got, "Invoices") || !slices.Contains(got, "2026") || len(got) != 10 {
		t.Errorf("deep = %v", got)
	}
	first := path(deep, "Folders").kids[0]
	if got := kidNames(first); !slices.Equal(got, []string{"FolderId", "ParentFolderId", "FolderClass", "DisplayName", "TotalCount", "ChildFolderCount"}) {
		t.Errorf("folder children %v", got)
	}

	var all []string
	for off := 0; ; {
		root := find("Deep", `<msg:IndexedPageFolderView MaxEntriesReturned="4" Offset="`+itoa(off)+`" BasePoint="Beginning"/>`)
		page := names(root)
		all = append(all, page...)
		if n, _ := root.attr("TotalItemsInView"); n != "10" {
			t.Fatalf("TotalItemsInView %s", n)
		}
		last, _ := root.attr("IncludesLastItemInRange")
		next, _ := root.attr("IndexedPagingOffset")
		if last == "true" {
			if len(page) != 2 {
				t.Errorf("last page %v", page)
			}
			break
		}
		if len(page) != 4 || next != itoa(off+4) {
			t.Fatalf("page at %d = %v, next %s", off, page, next)
		}
		off += 4
	}
	if !slices.Equal(all, names(deep)) {
		t.Errorf("paged %v != unpaged %v", all, names(deep))
	}
}
