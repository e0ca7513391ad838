// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Each operation's request, as the server receives it: element names,
// namespaces, schema order and values.

// envelopeOK checks what every request has: headers, SOAP header.
func envelopeOK(t *testing.T, r *soapReq, version string) {
	t.Helper()
	if got := r.Header.Get("Content-Type"); got != "text/xml; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(r.Header.Get("client-request-id")) {
		t.Errorf("client-request-id = %q, want a GUID", r.Header.Get("client-request-id"))
	}
	if r.Header.Get("return-client-request-id") != "true" {
		t.Error("return-client-request-id missing")
	}
	if short(r.Doc.Name) != "s:Envelope" {
		t.Fatalf("root = %s", short(r.Doc.Name))
	}
	wantNames(t, r.Doc, "s:Header", "s:Body")
	if v := r.Doc.at(t, "s:Header", "t:RequestServerVersion").attr("Version"); v != version {
		t.Errorf("RequestServerVersion = %q, want %q", v, version)
	}
}

func TestRequestGetFolderAndFindFolder(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		switch req.Op.Name.Local {
		case "GetFolder":
			reply(w, opResp("GetFolder", okMsg("GetFolder", `<m:Folders><t:Folder><t:FolderId Id="`+testFolder+`" ChangeKey="`+testFolCK+`"/></t:Folder></m:Folders>`),
				okMsg("GetFolder", `<m:Folders><t:Folder><t:FolderId Id="x" ChangeKey="y"/></t:Folder></m:Folders>`)))
		default:
			reply(w, opResp("FindFolder", okMsg("FindFolder", `<m:RootFolder TotalItemsInView="0" IncludesLastItemInRange="true"><t:Folders/></m:RootFolder>`)))
		}
	})
	c := newClient(t, f.url(), nil)
	if _, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}, FolderID{ID: testFolder, ChangeKey: testFolCK}); err != nil {
		t.Fatal(err)
	}
	r := f.last(t)
	envelopeOK(t, r, DefaultVersion)
	if short(r.Op.Name) != "m:GetFolder" {
		t.Fatalf("op = %s", short(r.Op.Name))
	}
	wantNames(t, r.Op, "m:FolderShape", "m:FolderIds")
	wantNames(t, r.Op.at(t, "m:FolderShape"), "t:BaseShape", "t:AdditionalProperties")
	props := r.Op.at(t, "m:FolderShape", "t:AdditionalProperties")
	var uris []string
	for _, c := range props.Children {
		uris = append(uris, c.attr("FieldURI"))
	}
	if got := strings.Join(uris, ","); got != "folder:DisplayName,folder:FolderClass,folder:ParentFolderId,folder:ChildFolderCount,folder:TotalCount" {
		t.Errorf("folder properties = %s", got)
	}
	ids := r.Op.at(t, "m:FolderIds")
	wantNames(t, ids, "t:DistinguishedFolderId", "t:FolderId")
	if ids.Children[0].attr("Id") != "inbox" || ids.Children[1].attr("Id") != testFolder || ids.Children[1].attr("ChangeKey") != testFolCK {
		t.Errorf("folder ids = %+v", ids.Children)
	}

	if _, err := c.FindFolders(ctxT(t), Target{}, FolderID{Distinguished: "msgfolderroot"}, true); err != nil {
		t.Fatal(err)
	}
	r = f.last(t)
	if short(r.Op.Name) != "m:FindFolder" || r.Op.attr("Traversal") != "Deep" {
		t.Fatalf("op = %s Traversal=%q", short(r.Op.Name), r.Op.attr("Traversal"))
	}
	wantNames(t, r.Op, "m:FolderShape", "m:IndexedPageFolderView", "m:ParentFolderIds")
	view := r.Op.at(t, "m:IndexedPageFolderView")
	if view.attr("Offset") != "0" || view.attr("BasePoint") != "Beginning" || view.attr("MaxEntriesReturned") == "" {
		t.Errorf("view = %+v", view.Attr)
	}
	if r.Op.at(t, "m:ParentFolderIds", "t:DistinguishedFolderId").attr("Id") != "msgfolderroot" {
		t.Error("parent folder")
	}
}

func TestRequestSyncFolderItems(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		reply(w, opResp("SyncFolderItems", okMsg("SyncFolderItems", `<m:SyncState>S2</m:SyncState><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange><m:Changes/>`)))
	})
	c := newClient(t, f.url(), nil)
	if _, err := c.SyncFolderItems(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}, testSyncSt, 9999); err != nil {
		t.Fatal(err)
	}
	r := f.last(t)
	wantNames(t, r.Op, "m:ItemShape", "m:SyncFolderId", "m:SyncState", "m:MaxChangesReturned")
	wantNames(t, r.Op.at(t, "m:ItemShape"), "t:BaseShape", "t:AdditionalProperties")
	if r.Op.at(t, "m:ItemShape", "t:BaseShape").Text != "IdOnly" {
		t.Error("BaseShape")
	}
	props := r.Op.at(t, "m:ItemShape", "t:AdditionalProperties")
	if len(props.Children) != 2 || props.Children[0].attr("FieldURI") != "item:DateTimeReceived" || props.Children[1].attr("FieldURI") != "item:Size" {
		t.Errorf("properties %v", props.Children)
	}
	if r.Op.at(t, "m:SyncState").Text != testSyncSt {
		t.Error("sync state not sent verbatim")
	}
	if r.Op.at(t, "m:MaxChangesReturned").Text != "512" {
		t.Errorf("MaxChangesReturned = %s, want the clamp 512", r.Op.at(t, "m:MaxChangesReturned").Text)
	}

	// The first sync has no SyncState element at all.
	if _, err := c.SyncFolderItems(ctxT(t), Target{}, FolderID{ID: testFolder}, "", 0); err != nil {
		t.Fatal(err)
	}
	r = f.last(t)
	wantNames(t, r.Op, "m:ItemShape", "m:SyncFolderId", "m:MaxChangesReturned")
	if r.Op.at(t, "m:MaxChangesReturned").Text != "1" {
		t.Error("MaxChangesReturned lower clamp")
	}
	if fid := r.Op.at(t, "m:SyncFolderId", "t:FolderId"); fid.attr("Id") != testFolder || fid.Attr[len(fid.Attr)-1].Name.Local == "ChangeKey" {
		t.Errorf("folder id %v (an empty ChangeKey must be left out)", fid.Attr)
	}
}

func TestRequestFindItem(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		reply(w, opResp("FindItem", okMsg("FindItem", `<m:RootFolder TotalItemsInView="0" IncludesLastItemInRange="true"><t:Items/></m:RootFolder>`)))
	})
	c := newClient(t, f.url(), nil)
	since := time.Date(2026, 3, 1, 8, 30, 0, 0, time.FixedZone("CET", 3600))
	if err := c.FindItems(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}, since, 50, func([]ItemInfo) error { return nil }); err != nil {
		t.Fatal(err)
	}
	r := f.last(t)
	if r.Op.attr("Traversal") != "Shallow" {
		t.Error("Traversal")
	}
	wantNames(t, r.Op, "m:ItemShape", "m:IndexedPageItemView", "m:Restriction", "m:SortOrder", "m:ParentFolderIds")
	view := r.Op.at(t, "m:IndexedPageItemView")
	if view.attr("MaxEntriesReturned") != "50" || view.attr("Offset") != "0" || view.attr("BasePoint") != "Beginning" {
		t.Errorf("view %v", view.Attr)
	}
	ge := r.Op.at(t, "m:Restriction", "t:IsGreaterThanOrEqualTo")
	wantNames(t, ge, "t:FieldURI", "t:FieldURIOrConstant")
	if ge.Children[0].attr("FieldURI") != "item:DateTimeReceived" {
		t.Error("restriction field")
	}
	if v := ge.at(t, "t:FieldURIOrConstant", "t:Constant").attr("Value"); v != "2026-03-01T07:30:00Z" {
		t.Errorf("restriction value %q, want UTC", v)
	}
	fo := r.Op.at(t, "m:SortOrder", "t:FieldOrder")
	if fo.attr("Order") != "Ascending" || fo.at(t, "t:FieldURI").attr("FieldURI") != "item:DateTimeReceived" {
		t.Error("sort order")
	}

	// No restriction without a start time.
	if err := c.FindItems(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}, time.Time{}, 0, func([]ItemInfo) error { return nil }); err != nil {
		t.Fatal(err)
	}
	wantNames(t, f.last(t).Op, "m:ItemShape", "m:IndexedPageItemView", "m:SortOrder", "m:ParentFolderIds")
}

func TestRequestGetItem(t *testing.T) {
	mime := base64.StdEncoding.EncodeToString([]byte("Subject: hi\r\n\r\nbody\r\n"))
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		reply(w, opResp("GetItem", okMsg("GetItem", `<m:Items><t:Message><t:MimeContent CharacterSet="UTF-8">`+mime+`</t:MimeContent><t:ItemId Id="`+testItemID+`" ChangeKey="`+testItemCK+`"/>`+
			`<t:DateTimeReceived>2026-03-01T07:30:00Z</t:DateTimeReceived><t:InternetMessageHeaders/></t:Message></m:Items>`)))
	})
	c := newClient(t, f.url(), nil)
	if _, err := c.GetMIME(ctxT(t), Target{}, ItemID{ID: testItemID, ChangeKey: testItemCK}, 0); err != nil {
		t.Fatal(err)
	}
	r := f.last(t)
	wantNames(t, r.Op, "m:ItemShape", "m:ItemIds")
	wantNames(t, r.Op.at(t, "m:ItemShape"), "t:BaseShape", "t:IncludeMimeContent")
	if r.Op.at(t, "m:ItemShape", "t:IncludeMimeContent").Text != "true" {
		t.Error("IncludeMimeContent")
	}
	if id := r.Op.at(t, "m:ItemIds", "t:ItemId"); id.attr("Id") != testItemID {
		t.Error("item id")
	}

	if _, _, err := c.GetHeaders(ctxT(t), Target{}, ItemID{ID: testItemID}); err != nil {
		t.Fatal(err)
	}
	r = f.last(t)
	wantNames(t, r.Op.at(t, "m:ItemShape"), "t:BaseShape", "t:AdditionalProperties")
	props := r.Op.at(t, "m:ItemShape", "t:AdditionalProperties")
	if props.Children[0].attr("FieldURI") != "item:InternetMessageHeaders" || props.Children[1].attr("FieldURI") != "item:DateTimeReceived" {
		t.Error("header properties")
	}
}

func TestRequestCreateItem(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		reply(w, opResp("CreateItem", okMsg("CreateItem", `<m:Items/>`)))
	})
	c := newClient(t, f.url(), nil)
	raw := []byte("From: anna.berg@contoso.com\r\nTo: b@contoso.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n<&> body\r\n")
	if err := c.SendMIME(ctxT(t), Target{Impersonate: testMailbox}, raw); err != nil {
		t.Fatal(err)
	}
	r := f.last(t)
	if r.Op.attr("MessageDisposition") != "SendAndSaveCopy" {
		t.Error("MessageDisposition")
	}
	wantNames(t, r.Op, "m:SavedItemFolderId", "m:Items")
	if r.Op.at(t, "m:SavedItemFolderId", "t:DistinguishedFolderId").attr("Id") != "sentitems" {
		t.Error("saved item folder")
	}
	mc := r.Op.at(t, "m:Items", "t:Message", "t:MimeContent")
	got, err := base64.StdEncoding.DecodeString(mc.Text)
	if err != nil || string(got) != string(raw) {
		t.Errorf("MimeContent does not round-trip: %v", err)
	}
}

func TestRequestUpdateItem(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		reply(w, opResp("UpdateItem", okMsg("UpdateItem", `<m:Items><t:Message><t:ItemId Id="`+testItemID+`" ChangeKey="CQAAABYAAACWc2pYJ3tTRYRb5mPzg7CIAAAbMnyg"/></t:Message></m:Items><m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>`)))
	})
	c := newClient(t, f.url(), nil)
	if err := c.AddCategory(ctxT(t), Target{}, ItemID{ID: testItemID, ChangeKey: testItemCK}, `Creatio "synced" <1>`); err != nil {
		t.Fatal(err)
	}
	r := f.last(t)
	if r.Op.attr("MessageDisposition") != "SaveOnly" || r.Op.attr("ConflictResolution") != "AutoResolve" {
		t.Errorf("attributes %v", r.Op.Attr)
	}
	ch := r.Op.at(t, "m:ItemChanges", "t:ItemChange")
	wantNames(t, ch, "t:ItemId", "t:Updates")
	if ch.at(t, "t:ItemId").attr("ChangeKey") != testItemCK {
		t.Error("change key")
	}
	app := ch.at(t, "t:Updates", "t:AppendToItemField")
	wantNames(t, app, "t:FieldURI", "t:Message")
	if app.at(t, "t:FieldURI").attr("FieldURI") != "item:Categories" {
		t.Error("field")
	}
	if got := app.at(t, "t:Message", "t:Categories", "t:String").Text; got != `Creatio "synced" <1>` {
		t.Errorf("category = %q", got)
	}
}

func TestRequestSubscribeUnsubscribeStream(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		switch req.Op.Name.Local {
		case "Subscribe":
			reply(w, opResp("Subscribe", okMsg("Subscribe", `<m:SubscriptionId>`+testSubID+`</m:SubscriptionId>`)))
		case "Unsubscribe":
			reply(w, opResp("Unsubscribe", okMsg("Unsubscribe", "")))
		case "GetStreamingEvents":
			reply(w, streamEnv(streamMsg("", "Closed")))
		}
	})
	c := newClient(t, f.url(), nil)
	id, err := c.Subscribe(ctxT(t), Target{}, []FolderID{{Distinguished: "inbox"}, {ID: testFolder}}, []string{"NewMail", EventCreated})
	if err != nil || id != testSubID {
		t.Fatalf("Subscribe = %q, %v", id, err)
	}
	r := f.last(t)
	wantNames(t, r.Op, "m:StreamingSubscriptionRequest")
	sr := r.Op.at(t, "m:StreamingSubscriptionRequest")
	if sr.attr("SubscribeToAllFolders") != "" {
		t.Error("SubscribeToAllFolders with folders")
	}
	wantNames(t, sr, "t:FolderIds", "t:EventTypes")
	wantNames(t, sr.at(t, "t:FolderIds"), "t:DistinguishedFolderId", "t:FolderId")
	ev := sr.at(t, "t:EventTypes")
	wantNames(t, ev, "t:EventType", "t:EventType")
	if ev.Children[0].Text != "NewMailEvent" || ev.Children[1].Text != "CreatedEvent" {
		t.Error("event types")
	}

	if _, err := c.Subscribe(ctxT(t), Target{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	sr = f.last(t).Op.at(t, "m:StreamingSubscriptionRequest")
	if sr.attr("SubscribeToAllFolders") != "true" {
		t.Error("SubscribeToAllFolders")
	}
	wantNames(t, sr, "t:EventTypes")
	if _, err := c.Subscribe(ctxT(t), Target{}, nil, []string{"Bogus"}); err == nil {
		t.Error("unknown event type accepted")
	}

	if err := c.Unsubscribe(ctxT(t), Target{}, testSubID); err != nil {
		t.Fatal(err)
	}
	r = f.last(t)
	wantNames(t, r.Op, "m:SubscriptionId")
	if r.Op.Children[0].Text != testSubID {
		t.Error("unsubscribe id")
	}

	s, err := c.Stream(ctxT(t), Target{}, []string{testSubID, "second"}, 45, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r = f.last(t)
	wantNames(t, r.Op, "m:SubscriptionIds", "m:ConnectionTimeout")
	wantNames(t, r.Op.at(t, "m:SubscriptionIds"), "t:SubscriptionId", "t:SubscriptionId")
	if r.Op.at(t, "m:ConnectionTimeout").Text != "30" {
		t.Error("ConnectionTimeout not clamped to 30")
	}
	if _, err := c.Stream(ctxT(t), Target{}, make([]string, 201), 1, 0); err == nil {
		t.Error("201 ids accepted")
	}
}

// Ids, addresses and values from outside are escaped, never spliced in.
func TestRequestEscaping(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		reply(w, opResp("SyncFolderItems", okMsg("SyncFolderItems", `<m:SyncState>S</m:SyncState><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>`)))
	})
	c := newClient(t, f.url(), nil)
	evil := `x"/><t:Evil a="&amp;`
	if _, err := c.SyncFolderItems(ctxT(t), Target{Impersonate: "a&b<c>@contoso.com"}, FolderID{ID: evil, ChangeKey: "ck'<"}, "st</m:SyncState>", 10); err != nil {
		t.Fatal(err)
	}
	r := f.last(t)
	if got := r.Op.at(t, "m:SyncFolderId", "t:FolderId").attr("Id"); got != evil {
		t.Errorf("Id = %q", got)
	}
	if got := r.Op.at(t, "m:SyncState").Text; got != "st</m:SyncState>" {
		t.Errorf("SyncState = %q", got)
	}
	if got := r.Doc.at(t, "s:Header", "t:ExchangeImpersonation", "t:ConnectingSID", "t:SmtpAddress").Text; got != "a&b<c>@contoso.com" {
		t.Errorf("SmtpAddress = %q", got)
	}
	if _, err := c.GetFolder(ctxT(t), Target{Impersonate: "a@b\r\nX-Evil: 1"}, FolderID{Distinguished: "inbox"}); err == nil {
		t.Error("an address with CR LF was accepted")
	}
}
