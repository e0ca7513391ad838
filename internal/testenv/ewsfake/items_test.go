// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"
)

const alice = "alice@ewsfake.test"

func deliverN(t *testing.T, s *Server, n int, prefix string) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id, err := s.Deliver(alice, "inbox", testMessage(prefix+itoa(i), "x@example.org", alice))
		mustOK(t, err)
		ids = append(ids, id)
		time.Sleep(2 * time.Millisecond) // distinct DateTimeReceived (millisecond precision)
	}
	return ids
}

func TestGetItemMIMEAndErrors(t *testing.T) {
	s, c := newFake(t, Options{})
	mime := testMessage("hello", "x@example.org", alice)
	id, err := s.Deliver(alice, "inbox", mime)
	mustOK(t, err)
	gone := deliverN(t, s, 1, "gone")[0]
	mustOK(t, s.Delete(alice, gone))

	env, raw := c.call(`<msg:GetItem><msg:ItemShape><typ:BaseShape>IdOnly</typ:BaseShape><typ:IncludeMimeContent>true</typ:IncludeMimeContent>` +
		`<typ:AdditionalProperties><typ:FieldURI FieldURI="item:Subject"/><typ:FieldURI FieldURI="item:Size"/><typ:FieldURI FieldURI="item:DateTimeReceived"/>` +
		`<typ:FieldURI FieldURI="item:InternetMessageHeaders"/><typ:FieldURI FieldURI="item:Categories"/><typ:FieldURI FieldURI="message:InternetMessageId"/>` +
		`</typ:AdditionalProperties></msg:ItemShape><msg:ItemIds><typ:ItemId Id="` + id + `"/><typ:ItemId Id="` + gone + `"/>` +
		`<typ:ItemId Id="bm9wZQ=="/></msg:ItemIds></msg:GetItem>`)
	ms := messages(t, env)
	if len(ms) != 3 {
		t.Fatalf("%d messages", len(ms))
	}
	checkCode(t, ms[0], "NoError")
	checkCode(t, ms[1], "ErrorItemNotFound")
	checkCode(t, ms[2], "ErrorInvalidIdMalformed")
	msg := path(ms[0], "Items", "Message")
	if got := kidNames(msg); !slices.Equal(got, []string{"MimeContent", "ItemId", "Subject", "DateTimeReceived", "Size", "InternetMessageHeaders", "InternetMessageId"}) {
		t.Errorf("message children %v", got)
	}
	if !strings.Contains(raw, `<t:MimeContent CharacterSet="UTF-8">`) {
		t.Errorf("MimeContent rendering: %s", raw)
	}
	got, err := base64.StdEncoding.DecodeString(path(msg, "MimeContent").value())
	mustOK(t, err)
	if !bytes.Equal(got, mime) {
		t.Errorf("MIME round trip differs")
	}
	if path(msg, "Size").value() != itoa(len(mime)) || path(msg, "Subject").value() != "hello" {
		t.Errorf("properties: %s", raw)
	}
	it, err := s.Item(alice, id)
	mustOK(t, err)
	if path(msg, "InternetMessageId").value() != it.InternetMessageID || it.InternetMessageID == "" {
		t.Errorf("InternetMessageId %q vs %q", path(msg, "InternetMessageId").value(), it.InternetMessageID)
	}
	if ts := path(msg, "DateTimeReceived").value(); ts != it.Received.UTC().Format("2006-01-02T15:04:05Z") {
		t.Errorf("DateTimeReceived %s", ts)
	}
	if h := path(msg, "InternetMessageHeaders").kids[2]; h.value() != "hello" {
		t.Errorf("third header %v", h.attrs)
	}

	// Default shape, millisecond precision on request.
	c.header = `<typ:DateTimePrecision>Milliseconds</typ:DateTimePrecision>`
	env, _ = c.call(`<msg:GetItem><msg:ItemShape><typ:BaseShape>Default</typ:BaseShape></msg:ItemShape>` +
		`<msg:ItemIds><typ:ItemId Id="` + id + `"/></msg:ItemIds></msg:GetItem>`)
	msg = path(single(t, env, "NoError"), "Items", "Message")
	if path(msg, "MimeContent") != nil || path(msg, "From") == nil || path(msg, "IsRead").value() != "false" {
		t.Errorf("default shape: %v", kidNames(msg))
	}
	if ts := path(msg, "DateTimeReceived").value(); len(ts) != len("2006-01-02T15:04:05.000Z") {
		t.Errorf("DateTimeReceived with DateTimePrecision: %s", ts)
	}
}

func TestFindItemRestrictionSortPaging(t *testing.T) {
	s, c := newFake(t, Options{})
	ids := deliverN(t, s, 5, "m")
	third, err := s.Item(alice, ids[2])
	mustOK(t, err)
	since := third.Received.Format(time.RFC3339Nano)

	find := func(extra string) *node {
		env, _ := c.call(`<msg:FindItem Traversal="Shallow"><msg:ItemShape><typ:BaseShape>IdOnly</typ:BaseShape>` +
			`<typ:AdditionalProperties><typ:FieldURI FieldURI="item:Subject"/><typ:FieldURI FieldURI="item:DateTimeReceived"/></typ:AdditionalProperties>` +
			`</msg:ItemShape>` + extra + `<msg:ParentFolderIds><typ:DistinguishedFolderId Id="inbox"/></msg:ParentFolderIds></msg:FindItem>`)
		return single(t, env, "NoError").child(nsMsg, "RootFolder")
	}
	subjects := func(root *node) []string {
		var out []string
		for _, m := range path(root, "Items").kids {
			out = append(out, path(m, "Subject").value())
		}
		return out
	}
	if got := subjects(find("")); !slices.Equal(got, []string{"m4", "m3", "m2", "m1", "m0"}) {
		t.Errorf("default order %v, want newest first", got)
	}
	restr := func(op string) string {
		return `<msg:Restriction><typ:` + op + `><typ:FieldURI FieldURI="item:DateTimeReceived"/><typ:FieldURIOrConstant>` +
			`<typ:Constant Value="` + since + `"/></typ:FieldURIOrConstant></typ:` + op + `></msg:Restriction>`
	}
	asc := `<msg:SortOrder><typ:FieldOrder Order="Ascending"><typ:FieldURI FieldURI="item:DateTimeReceived"/></typ:FieldOrder></msg:SortOrder>`
	if got := subjects(find(restr("IsGreaterThanOrEqualTo") + asc)); !slices.Equal(got, []string{"m2", "m3", "m4"}) {
		t.Errorf(">= ascending: %v", got)
	}
	if got := subjects(find(restr("IsGreaterThan"))); !slices.Equal(got, []string{"m4", "m3"}) {
		t.Errorf("> : %v", got)
	}
	root := find(`<msg:IndexedPageItemView MaxEntriesReturned="2" Offset="2" BasePoint="Beginning"/>`)
	if got := subjects(root); !slices.Equal(got, []string{"m2", "m1"}) {
		t.Errorf("page: %v", got)
	}
	for attr, want := range map[string]string{"TotalItemsInView": "5", "IncludesLastItemInRange": "false", "IndexedPagingOffset": "4"} {
		if v, _ := root.attr(attr); v != want {
			t.Errorf("%s=%s, want %s", attr, v, want)
		}
	}
	// An unsupported property path is refused per message, not silently ignored.
	env, _ := c.call(`<msg:FindItem Traversal="Shallow"><msg:ItemShape><typ:BaseShape>IdOnly</typ:BaseShape></msg:ItemShape>` +
		`<msg:Restriction><typ:IsEqualTo><typ:FieldURI FieldURI="calendar:Start"/><typ:FieldURIOrConstant><typ:Constant Value="x"/></typ:FieldURIOrConstant></typ:IsEqualTo></msg:Restriction>` +
		`<msg:ParentFolderIds><typ:DistinguishedFolderId Id="inbox"/></msg:ParentFolderIds></msg:FindItem>`)
	single(t, env, "ErrorUnsupportedPathForQuery")
}

func TestSyncFolderItems(t *testing.T) {
	s, c := newFake(t, Options{})
	ids := deliverN(t, s, 5, "m")
	sync := func(state string, max int) (changes []*node, next string, last bool) {
		t.Helper()
		st := ""
		if state != "" {
			st = `<msg:SyncState>` + state + `</msg:SyncState>`
		}
		env, _ := c.call(`<msg:SyncFolderItems><msg:ItemShape><typ:BaseShape>IdOnly</typ:BaseShape><typ:AdditionalProperties>` +
			`<typ:FieldURI FieldURI="item:DateTimeReceived"/><typ:FieldURI FieldURI="item:Size"/><typ:FieldURI FieldURI="message:InternetMessageId"/>` +
			`</typ:AdditionalProperties></msg:ItemShape><msg:SyncFolderId><typ:DistinguishedFolderId Id="inbox"/></msg:SyncFolderId>` +
			st + `<msg:MaxChangesReturned>` + itoa(max) + `</msg:MaxChangesReturned></msg:SyncFolderItems>`)
		m := single(t, env, "NoError")
		if got := kidNames(m); !slices.Equal(got, []string{"ResponseCode", "SyncState", "IncludesLastItemInRange", "Changes"}) {
			t.Fatalf("message children %v", got)
		}
		return m.child(nsMsg, "Changes").kids, m.child(nsMsg, "SyncState").value(), m.child(nsMsg, "IncludesLastItemInRange").value() == "true"
	}
	idOf := func(ch *node) string {
		n := path(ch, "ItemId")
		if n == nil {
			n = path(ch, "Message", "ItemId")
		}
		id, _ := n.attr("Id")
		return id
	}

	// Initial sync: everything as Create, newest first, paged by 2.
	var got []string
	state := ""
	for range 3 {
		changes, next, last := sync(state, 2)
		for _, ch := range changes {
			if ch.local != "Create" || path(ch, "Message", "InternetMessageId") == nil || path(ch, "Message", "Size") == nil {
				t.Fatalf("initial change %s %v", ch.local, kidNames(path(ch, "Message")))
			}
			got = append(got, idOf(ch))
		}
		state = next
		if last != (len(got) == 5) {
			t.Fatalf("IncludesLastItemInRange=%v after %d", last, len(got))
		}
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Fatalf("initial sync order %v, want newest first %v", got, want)
	}
	if changes, _, last := sync(state, 10); len(changes) != 0 || !last {
		t.Fatalf("re-sync with no changes: %d, %v", len(changes), last)
	}

	// Incremental: every kind of change.
	fresh := deliverN(t, s, 1, "fresh")[0]
	mustOK(t, s.MarkRead(alice, ids[0], true))
	c.call(`<msg:UpdateItem ConflictResolution="AlwaysOverwrite" MessageDisposition="SaveOnly"><msg:ItemChanges><typ:ItemChange>` +
		`<typ:ItemId Id="` + ids[1] + `"/><typ:Updates><typ:SetItemField><typ:FieldURI FieldURI="item:Categories"/>` +
		`<typ:Message><typ:Categories><typ:String>Red</typ:String></typ:Categories></typ:Message></typ:SetItemField></typ:Updates>` +
		`</typ:ItemChange></msg:ItemChanges></msg:UpdateItem>`)
	mustOK(t, s.Delete(alice, ids[2]))
	moved, err := s.Move(alice, ids[3], "junkemail")
	mustOK(t, err)
	changes, state2, last := sync(state, 512)
	var kinds []string
	for _, ch := range changes {
		kinds = append(kinds, ch.local+":"+idOf(ch))
	}
	wantKinds := []string{"Create:" + fresh, "ReadFlagChange:" + ids[0], "Update:" + ids[1], "Delete:" + ids[2], "Delete:" + ids[3]}
	if !slices.Equal(kinds, wantKinds) || !last {
		t.Errorf("incremental = %v (last %v), want %v", kinds, last, wantKinds)
	}
	if path(changes[1], "IsRead").value() != "true" {
		t.Errorf("ReadFlagChange IsRead: %v", kidNames(changes[1]))
	}
	if moved == ids[3] {
		t.Errorf("moved item kept its id")
	}

	// Bad states: garbage, another folder's state, states invalidated by the knob.
	bad := func(st, folder string) {
		t.Helper()
		env, _ := c.call(`<msg:SyncFolderItems><msg:ItemShape><typ:BaseShape>IdOnly</typ:BaseShape></msg:ItemShape>` +
			`<msg:SyncFolderId><typ:DistinguishedFolderId Id="` + folder + `"/></msg:SyncFolderId><msg:SyncState>` + st +
			`</msg:SyncState><msg:MaxChangesReturned>10</msg:MaxChangesReturned></msg:SyncFolderItems>`)
		single(t, env, "ErrorInvalidSyncStateData")
	}
	bad("H4sIAAAAAAAEAO29B2AcSZYlJi9tynt", "inbox")
	bad(state2, "junkemail")
	mustOK(t, s.InvalidateSyncStates(alice))
	bad(state2, "inbox")
	if _, _, last := sync("", 512); !last {
		t.Errorf("fresh sync after invalidation")
	}

	code, _ := c.fault(`<msg:SyncFolderItems><msg:ItemShape><typ:BaseShape>IdOnly</typ:BaseShape></msg:ItemShape>` +
		`<msg:SyncFolderId><typ:DistinguishedFolderId Id="inbox"/></msg:SyncFolderId><msg:MaxChangesReturned>513</msg:MaxChangesReturned></msg:SyncFolderItems>`)
	if code != "ErrorSchemaValidation" {
		t.Errorf("MaxChangesReturned 513: %s", code)
	}
}

func TestCreateItemSendAndSave(t *testing.T) {
	s, c := newFake(t, Options{})
	mustOK(t, s.AddMailbox("bob@ewsfake.test", "", "pw-bob"))

	// MIME, SendAndSaveCopy: empty m:Items, a copy in sentitems, delivery to bob.
	mime := "From: alice@ewsfake.test\r\nTo: Bob <bob@ewsfake.test>, someone@example.org\r\nBcc: hidden@example.org\r\nSubject: via MIME\r\n\r\nbody\r\n"
	env, raw := c.call(`<msg:CreateItem MessageDisposition="SendAndSaveCopy"><msg:SavedItemFolderId><typ:DistinguishedFolderId Id="sentitems"/></msg:SavedItemFolderId>` +
		`<msg:Items><typ:Message><typ:MimeContent CharacterSet="UTF-8">` + base64.StdEncoding.EncodeToString([]byte(mime)) +
		`</typ:MimeContent></typ:Message></msg:Items></msg:CreateItem>`)
	single(t, env, "NoError")
	if !strings.Contains(raw, `<m:ResponseCode>NoError</m:ResponseCode><m:Items/></m:CreateItemResponseMessage>`) {
		t.Errorf("SendAndSaveCopy must answer an empty m:Items: %s", raw)
	}
	sent, err := s.Sent(alice)
	mustOK(t, err)
	if len(sent) != 1 || bytes.Contains(sent[0], []byte("hidden@")) || !bytes.Contains(sent[0], []byte("Message-ID: <")) {
		t.Errorf("transmitted: %q", sent)
	}
	copies, err := s.Items(alice, "sentitems")
	mustOK(t, err)
	if len(copies) != 1 || copies[0].Subject != "via MIME" || !bytes.Contains(copies[0].MIME, []byte("Bcc: hidden@")) {
		t.Errorf("sent items: %+v", copies)
	}
	inbox, err := s.Items("bob@ewsfake.test", "inbox")
	mustOK(t, err)
	if len(inbox) != 1 || inbox[0].IsRead || !bytes.HasPrefix(inbox[0].MIME, []byte("Received: ")) {
		t.Errorf("bob's inbox: %+v", inbox)
	}

	// Structured, SaveOnly: a draft whose id comes back.
	env, _ = c.call(`<msg:CreateItem MessageDisposition="SaveOnly"><msg:Items><typ:Message><typ:Subject>draft</typ:Subject>` +
		`<typ:Body BodyType="Text">hi</typ:Body><typ:ToRecipients><typ:Mailbox><typ:EmailAddress>bob@ewsfake.test</typ:EmailAddress></typ:Mailbox></typ:ToRecipients>` +
		`</typ:Message></msg:Items></msg:CreateItem>`)
	id, _ := path(single(t, env, "NoError"), "Items", "Message", "ItemId").attr("Id")
	draft, err := s.Item(alice, id)
	mustOK(t, err)
	if !draft.IsDraft || draft.FolderID != s.FolderID(alice, "drafts") || !bytes.Contains(draft.MIME, []byte("To: <bob@ewsfake.test>")) {
		t.Errorf("draft %+v\n%s", draft, draft.MIME)
	}

	// Wrong child order inside the message is a schema violation.
	code, _ := c.fault(`<msg:CreateItem MessageDisposition="SaveOnly"><msg:Items><typ:Message><typ:Body BodyType="Text">x</typ:Body>` +
		`<typ:Subject>late</typ:Subject></typ:Message></msg:Items></msg:CreateItem>`)
	if code != "ErrorSchemaValidation" {
		t.Errorf("out-of-order message: %s", code)
	}
	// No disposition for a message: per-message error.
	env, _ = c.call(`<msg:CreateItem><msg:Items><typ:Message><typ:Subject>x</typ:Subject></typ:Message></msg:Items></msg:CreateItem>`)
	single(t, env, "ErrorMessageDispositionRequired")
}

func TestUpdateItemCategories(t *testing.T) {
	s, c := newFake(t, Options{})
	id := deliverN(t, s, 1, "x")[0]
	it, err := s.Item(alice, id)
	mustOK(t, err)
	update := func(ck, op string) *node {
		env, _ := c.call(`<msg:UpdateItem ConflictResolution="NeverOverwrite" MessageDisposition="SaveOnly"><msg:ItemChanges><typ:ItemChange>` +
			`<typ:ItemId Id="` + id + `" ChangeKey="` + ck + `"/><typ:Updates><typ:` + op + `><typ:FieldURI FieldURI="item:Categories"/>` +
			`<typ:Message><typ:Categories><typ:String>Blue</typ:String></typ:Categories></typ:Message></typ:` + op + `></typ:Updates>` +
			`</typ:ItemChange></msg:ItemChanges></msg:UpdateItem>`)
		return messages(t, env)[0]
	}
	m := update(it.ChangeKey, "AppendToItemField")
	checkCode(t, m, "NoError")
	newCK, _ := path(m, "Items", "Message", "ItemId").attr("ChangeKey")
	if newCK == it.ChangeKey || path(m, "ConflictResults", "Count").value() != "0" {
		t.Errorf("change key not bumped or conflict results missing: %v", kidNames(m))
	}
	checkCode(t, update(it.ChangeKey, "AppendToItemField"), "ErrorIrresolvableConflict")
	checkCode(t, update(newCK, "AppendToItemField"), "NoError")
	got, err := s.Item(alice, id)
	mustOK(t, err)
	if !slices.Equal(got.Categories, []string{"Blue"}) {
		t.Errorf("categories %v", got.Categories)
	}
	if code, _ := c.fault(`<msg:UpdateItem><msg:ItemChanges/></msg:UpdateItem>`); code != "ErrorSchemaValidation" {
		t.Errorf("missing ConflictResolution: %s", code)
	}
}
