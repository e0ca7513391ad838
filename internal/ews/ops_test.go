// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestGetFolderResponse(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		reply(w, opResp("GetFolder",
			okMsg("GetFolder", `<m:Folders><t:Folder><t:FolderId Id="`+testFolder+`" ChangeKey="`+testFolCK+`"/><t:ParentFolderId Id="`+testRoot+`" ChangeKey="AQAAAA=="/>`+
				`<t:FolderClass>IPF.Note</t:FolderClass><t:DisplayName>Posteingang</t:DisplayName><t:TotalCount>1289</t:TotalCount><t:ChildFolderCount>3</t:ChildFolderCount></t:Folder></m:Folders>`),
			errMsg("GetFolder", "ErrorFolderNotFound", "The specified folder could not be found in the store.", "")))
	})
	c := newClient(t, f.url(), nil)
	_, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}, FolderID{ID: "gone"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}

	f2 := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		reply(w, opResp("GetFolder",
			okMsg("GetFolder", `<m:Folders><t:Folder><t:FolderId Id="`+testFolder+`" ChangeKey="`+testFolCK+`"/><t:ParentFolderId Id="`+testRoot+`" ChangeKey="AQAAAA=="/>`+
				`<t:FolderClass>IPF.Note</t:FolderClass><t:DisplayName>Posteingang</t:DisplayName><t:TotalCount>1289</t:TotalCount><t:ChildFolderCount>3</t:ChildFolderCount></t:Folder></m:Folders>`)))
	})
	c = newClient(t, f2.url(), nil)
	fs, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"})
	if err != nil {
		t.Fatal(err)
	}
	want := Folder{ID: FolderID{ID: testFolder, ChangeKey: testFolCK}, ParentID: testRoot, DisplayName: "Posteingang", Class: "IPF.Note", Total: 1289, Children: 3, Kind: "Folder"}
	if len(fs) != 1 || fs[0] != want {
		t.Fatalf("folders = %+v", fs)
	}
}

// FindFolders pages with the offset the server reports until
// IncludesLastItemInRange.
func TestFindFoldersPaging(t *testing.T) {
	names := []string{"Inbox", "Drafts", "Sent Items", "Deleted Items", "Junk Email", "Archive", "Projects", "Projects/2026"}
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		off, _ := strconv.Atoi(req.Op.at(t, "m:IndexedPageFolderView").attr("Offset"))
		end := min(off+3, len(names))
		var b strings.Builder
		for i := off; i < end; i++ {
			cls := "IPF.Note"
			if i == 5 {
				cls = "IPF.Appointment"
			}
			fmt.Fprintf(&b, `<t:Folder><t:FolderId Id="F%d" ChangeKey="K%d"/><t:ParentFolderId Id="%s"/><t:FolderClass>%s</t:FolderClass><t:DisplayName>%s</t:DisplayName><t:TotalCount>%d</t:TotalCount><t:ChildFolderCount>0</t:ChildFolderCount></t:Folder>`,
				i, i, testRoot, cls, names[i], i*10)
		}
		reply(w, opResp("FindFolder", okMsg("FindFolder", fmt.Sprintf(`<m:RootFolder IndexedPagingOffset="%d" TotalItemsInView="%d" IncludesLastItemInRange="%t"><t:Folders>%s</t:Folders></m:RootFolder>`,
			end, len(names), end == len(names), b.String()))))
	})
	c := newClient(t, f.url(), nil)
	fs, err := c.FindFolders(ctxT(t), Target{Impersonate: testMailbox}, FolderID{Distinguished: "msgfolderroot"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != len(names) || fs[7].DisplayName != "Projects/2026" || fs[5].Class != "IPF.Appointment" || fs[3].Total != 30 {
		t.Fatalf("folders = %+v", fs)
	}
	if n := len(f.requests()); n != 3 {
		t.Errorf("%d pages, want 3", n)
	}
}

// A server that never says "last" and sends nothing new cannot loop us.
func TestFindFoldersNoProgress(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		reply(w, opResp("FindFolder", okMsg("FindFolder", `<m:RootFolder IndexedPagingOffset="0" TotalItemsInView="5" IncludesLastItemInRange="false"><t:Folders/></m:RootFolder>`)))
	})
	c := newClient(t, f.url(), nil)
	_, err := c.FindFolders(ctxT(t), Target{}, FolderID{Distinguished: "msgfolderroot"}, false)
	wantClass(t, err, mail.ClassProtocol)
}

func TestSyncFolderItemsResponse(t *testing.T) {
	changes := `<m:Changes>` +
		`<t:Create><t:Message><t:ItemId Id="` + testItemID + `" ChangeKey="` + testItemCK + `"/><t:DateTimeReceived>2026-03-02T09:15:04Z</t:DateTimeReceived><t:Size>30412</t:Size></t:Message></t:Create>` +
		`<t:Create><t:MeetingRequest><t:ItemId Id="` + testItemID2 + `" ChangeKey="DwAAABYAAAA="/><t:DateTimeReceived>2026-03-02T09:16:00Z</t:DateTimeReceived><t:Size>8120</t:Size></t:MeetingRequest></t:Create>` +
		`<t:Update><t:PostItem><t:ItemId Id="U1" ChangeKey="C1"/></t:PostItem></t:Update>` +
		`<t:Delete><t:ItemId Id="D1" ChangeKey="C2"/></t:Delete>` +
		`<t:ReadFlagChange><t:ItemId Id="R1" ChangeKey="C3"/><t:IsRead>true</t:IsRead></t:ReadFlagChange>` +
		`</m:Changes>`
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		if req.Op.at(t, "m:MaxChangesReturned").Text == "7" {
			reply(w, opResp("SyncFolderItems", errMsg("SyncFolderItems", "ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid.", "")))
			return
		}
		reply(w, opResp("SyncFolderItems", okMsg("SyncFolderItems", `<m:SyncState>`+testSyncSt+`</m:SyncState><m:IncludesLastItemInRange>false</m:IncludesLastItemInRange>`+changes)))
	})
	c := newClient(t, f.url(), nil)
	res, err := c.SyncFolderItems(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if res.State != testSyncSt || res.Last || len(res.Changes) != 5 {
		t.Fatalf("result = %+v", res)
	}
	c0 := res.Changes[0]
	if c0.Kind != ChangeCreate || c0.Item.ID.ID != testItemID || c0.Item.ID.ChangeKey != testItemCK || c0.Item.Kind != "Message" ||
		c0.Item.Size != 30412 || !c0.Item.Received.Equal(time.Date(2026, 3, 2, 9, 15, 4, 0, time.UTC)) {
		t.Errorf("create = %+v", c0)
	}
	if c1 := res.Changes[1]; c1.Kind != ChangeCreate || c1.Item.Kind != "MeetingRequest" || c1.Item.Size != 8120 {
		t.Errorf("meeting request = %+v", c1)
	}
	if c2 := res.Changes[2]; c2.Kind != ChangeUpdate || c2.Item.Kind != "PostItem" || c2.Item.ID.ID != "U1" {
		t.Errorf("update = %+v", c2)
	}
	if c3 := res.Changes[3]; c3.Kind != ChangeDelete || c3.Item.ID.ID != "D1" {
		t.Errorf("delete = %+v", c3)
	}
	if c4 := res.Changes[4]; c4.Kind != ChangeReadFlag || c4.Item.ID.ID != "R1" || !c4.IsRead {
		t.Errorf("read flag = %+v", c4)
	}

	_, err = c.SyncFolderItems(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}, "garbage", 7)
	if !errors.Is(err, ErrInvalidSyncState) {
		t.Fatalf("err = %v", err)
	}
}

// SyncFolderItems paging as a caller does it: follow State until Last.
func TestSyncFolderItemsPaging(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		n := 0
		if st := req.Op.Children; len(st) > 2 && short(st[2].Name) == "m:SyncState" {
			n, _ = strconv.Atoi(strings.TrimPrefix(st[2].Text, "state-"))
		}
		last := n == 2
		reply(w, opResp("SyncFolderItems", okMsg("SyncFolderItems", fmt.Sprintf(`<m:SyncState>state-%d</m:SyncState><m:IncludesLastItemInRange>%t</m:IncludesLastItemInRange>`+
			`<m:Changes><t:Create><t:Message><t:ItemId Id="I%d" ChangeKey="K"/></t:Message></t:Create></m:Changes>`, n+1, last, n))))
	})
	c := newClient(t, f.url(), nil)
	state, ids := "", []string{}
	for range 10 {
		res, err := c.SyncFolderItems(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}, state, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range res.Changes {
			ids = append(ids, ch.Item.ID.ID)
		}
		state = res.State
		if res.Last {
			break
		}
	}
	if strings.Join(ids, ",") != "I0,I1,I2" || state != "state-3" {
		t.Fatalf("ids %v state %s", ids, state)
	}
}

func TestFindItemsPaging(t *testing.T) {
	const total = 7
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		view := req.Op.at(t, "m:IndexedPageItemView")
		off, _ := strconv.Atoi(view.attr("Offset"))
		size, _ := strconv.Atoi(view.attr("MaxEntriesReturned"))
		end := min(off+size, total)
		var b strings.Builder
		for i := off; i < end; i++ {
			fmt.Fprintf(&b, `<t:Message><t:ItemId Id="M%d" ChangeKey="K%d"/><t:DateTimeReceived>2026-03-0%dT08:00:00Z</t:DateTimeReceived><t:Size>%d</t:Size></t:Message>`, i, i, i+1, 1000+i)
		}
		// Real servers leave IndexedPagingOffset out sometimes; the client
		// then counts itself.
		attr := ""
		if off == 0 {
			attr = fmt.Sprintf(` IndexedPagingOffset="%d"`, end)
		}
		reply(w, opResp("FindItem", okMsg("FindItem", fmt.Sprintf(`<m:RootFolder%s TotalItemsInView="%d" IncludesLastItemInRange="%t"><t:Items>%s</t:Items></m:RootFolder>`,
			attr, total, end == total, b.String()))))
	})
	c := newClient(t, f.url(), nil)
	var pages [][]ItemInfo
	err := c.FindItems(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 3, func(p []ItemInfo) error {
		pages = append(pages, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 3 || len(pages[0]) != 3 || len(pages[2]) != 1 || pages[2][0].ID.ID != "M6" || pages[1][0].Size != 1003 ||
		!pages[0][1].Received.Equal(time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)) {
		t.Fatalf("pages = %+v", pages)
	}
	offsets := []string{}
	for _, r := range f.requests() {
		offsets = append(offsets, r.Op.at(t, "m:IndexedPageItemView").attr("Offset"))
	}
	if strings.Join(offsets, ",") != "0,3,6" {
		t.Errorf("offsets %v", offsets)
	}

	// fn's error stops the listing and comes back.
	stop := errors.New("enough")
	err = c.FindItems(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}, time.Time{}, 3, func([]ItemInfo) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("err = %v", err)
	}
}

func TestGetHeadersResponse(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		reply(w, opResp("GetItem", okMsg("GetItem", `<m:Items><t:Message><t:ItemId Id="`+testItemID+`" ChangeKey="`+testItemCK+`"/>`+
			`<t:DateTimeReceived>2026-03-02T09:15:04Z</t:DateTimeReceived><t:InternetMessageHeaders>`+
			`<t:InternetMessageHeader HeaderName="Received">from mx.contoso.com by exch01.contoso.local</t:InternetMessageHeader>`+
			`<t:InternetMessageHeader HeaderName="Subject">Quartalsbericht &amp; Planung</t:InternetMessageHeader>`+
			`<t:InternetMessageHeader HeaderName="From">Anna Berg &lt;anna.berg@contoso.com&gt;</t:InternetMessageHeader>`+
			`</t:InternetMessageHeaders></t:Message></m:Items>`)))
	})
	c := newClient(t, f.url(), nil)
	hs, rcv, err := c.GetHeaders(ctxT(t), Target{}, ItemID{ID: testItemID})
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 3 || hs[1] != (Header{"Subject", "Quartalsbericht & Planung"}) || hs[2].Value != "Anna Berg <anna.berg@contoso.com>" {
		t.Errorf("headers = %+v", hs)
	}
	if !rcv.Equal(time.Date(2026, 3, 2, 9, 15, 4, 0, time.UTC)) {
		t.Errorf("received = %v", rcv)
	}
}

func TestSendMIMEErrors(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		reply(w, opResp("CreateItem", errMsg("CreateItem", "ErrorSendAsDenied", "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.", "")))
	})
	c := newClient(t, f.url(), nil)
	err := c.SendMIME(ctxT(t), Target{}, []byte("From: ceo@contoso.com\r\n\r\nx"))
	var re *ResponseError
	if !errors.As(err, &re) || re.Code != "ErrorSendAsDenied" || re.Op != "CreateItem" {
		t.Fatalf("err = %v", err)
	}
	wantClass(t, err, mail.ClassConfig)
}

// A stale change key: fetch the current one and update once more.
func TestAddCategoryStaleChangeKey(t *testing.T) {
	var keys []string
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		switch req.Op.Name.Local {
		case "UpdateItem":
			ck := req.Op.at(t, "m:ItemChanges", "t:ItemChange", "t:ItemId").attr("ChangeKey")
			keys = append(keys, ck)
			if ck != "CQAAAFRESH" {
				reply(w, opResp("UpdateItem", errMsg("UpdateItem", "ErrorStaleObject", "The change key passed in the request does not match the current change key for the item.", "")))
				return
			}
			reply(w, opResp("UpdateItem", okMsg("UpdateItem", `<m:Items><t:Message><t:ItemId Id="`+testItemID+`" ChangeKey="CQAAANEXT"/></t:Message></m:Items>`)))
		case "GetItem":
			reply(w, opResp("GetItem", okMsg("GetItem", `<m:Items><t:Message><t:ItemId Id="`+testItemID+`" ChangeKey="CQAAAFRESH"/></t:Message></m:Items>`)))
		}
	})
	c := newClient(t, f.url(), nil)
	if err := c.AddCategory(ctxT(t), Target{}, ItemID{ID: testItemID, ChangeKey: testItemCK}, "Creatio"); err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != testItemCK+",CQAAAFRESH" {
		t.Errorf("change keys sent: %v", keys)
	}
}

func TestSubscribeUnsubscribeResponses(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		switch req.Op.Name.Local {
		case "Subscribe":
			reply(w, opResp("Subscribe", errMsg("Subscribe", "ErrorExceededSubscriptionCount", "You have exceeded the maximum number of subscriptions.", "")))
		case "Unsubscribe":
			reply(w, opResp("Unsubscribe", errMsg("Unsubscribe", "ErrorSubscriptionNotFound", "The specified subscription was not found.", "")))
		}
	})
	c := newClient(t, f.url(), nil)
	if _, err := c.Subscribe(ctxT(t), Target{}, nil, nil); !errors.Is(err, ErrExceededSubscriptionCount) {
		t.Errorf("Subscribe err = %v", err)
	}
	if err := c.Unsubscribe(ctxT(t), Target{}, testSubID); !errors.Is(err, ErrSubscriptionLost) {
		t.Errorf("Unsubscribe err = %v", err)
	}
}
