// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestFolders(t *testing.T) {
	s, c := newFake(t, Options{})
	u := "/users/" + alice
	sub, err := s.CreateFolder(alice, "inbox", "Projects")
	mustOK(t, err)
	_, err = s.CreateFolder(alice, sub, "Alpha")
	mustOK(t, err)
	_, err = s.CreateFolder(alice, "", "Top")
	mustOK(t, err)

	// Top level: the children of msgfolderroot, paged.
	page := c.call(200, "GET", u+"/mailFolders?$top=5", nil)
	var names []string
	for {
		for _, f := range values(page) {
			names = append(names, str(f, "displayName"))
			if str(f, "parentFolderId") != s.FolderID(alice, "msgfolderroot") {
				t.Errorf("parent of %v", f)
			}
			for _, k := range []string{"id", "childFolderCount", "unreadItemCount", "totalItemCount", "isHidden"} {
				if _, ok := f[k]; !ok {
					t.Errorf("folder lacks %s: %v", k, f)
				}
			}
		}
		next := str(page, "@odata.nextLink")
		if next == "" {
			break
		}
		page = c.call(200, "GET", next, nil)
	}
	want := "Inbox,Sent Items,Drafts,Deleted Items,Junk Email,Archive,Outbox,Top"
	if strings.Join(names, ",") != want {
		t.Errorf("top-level folders: %v", names)
	}

	// By well-known name in both syntaxes, by id, children.
	inbox := c.call(200, "GET", u+"/mailFolders('Inbox')", nil)
	if str(inbox, "id") != s.FolderID(alice, "inbox") || inbox["childFolderCount"] != float64(1) || str(inbox, "displayName") != "Inbox" {
		t.Errorf("inbox: %v", inbox)
	}
	root := c.call(200, "GET", u+"/mailFolders/msgfolderroot", nil)
	if root["childFolderCount"] != float64(8) {
		t.Errorf("root: %v", root)
	}
	kids := values(c.call(200, "GET", u+"/mailFolders/inbox/childFolders", nil))
	if len(kids) != 1 || str(kids[0], "id") != sub {
		t.Errorf("inbox children: %v", kids)
	}
	deep := values(c.call(200, "GET", u+"/mailFolders/inbox/childFolders/"+sub+"/childFolders", nil))
	if len(deep) != 1 || str(deep[0], "displayName") != "Alpha" {
		t.Errorf("grandchildren: %v", deep)
	}
	// Create through the API; a duplicate name conflicts.
	created := c.call(201, "POST", u+"/mailFolders/"+sub+"/childFolders", map[string]any{"displayName": "Beta"})
	if str(created, "parentFolderId") != sub {
		t.Errorf("created: %v", created)
	}
	if resp, body := c.do("POST", u+"/mailFolders/"+sub+"/childFolders", []byte(`{"displayName":"beta"}`)); resp.StatusCode != 409 {
		t.Errorf("duplicate: %d %s", resp.StatusCode, body)
	}
	// Garbled vs unknown ids.
	if resp, body := c.do("GET", u+"/mailFolders/nosuchfolder", nil); resp.StatusCode != 400 || errCode(t, body) != "ErrorInvalidIdMalformed" {
		t.Errorf("garbled folder id: %d %s", resp.StatusCode, body)
	}
	other := s.FolderID(bob, "inbox")
	if resp, body := c.do("GET", u+"/mailFolders/"+other, nil); resp.StatusCode != 400 && resp.StatusCode != 404 {
		t.Errorf("bob's folder in alice's mailbox: %d %s", resp.StatusCode, body)
	}
}

func TestMessages(t *testing.T) {
	s, c := newFake(t, Options{})
	u := "/users/" + alice
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 5 {
		id, err := s.DeliverAt(alice, "inbox", testMessage("Subject "+string(rune('A'+i)), bob, alice), base.Add(time.Duration(i)*time.Hour+300*time.Millisecond))
		mustOK(t, err)
		ids = append(ids, id)
	}

	// A message with its properties; receivedDateTime is whole seconds.
	m := c.call(200, "GET", u+"/messages/"+ids[0], nil, "Prefer", `IdType="ImmutableId"`)
	from, _ := m["from"].(map[string]any)
	ea, _ := from["emailAddress"].(map[string]any)
	if str(m, "id") != ids[0] || str(m, "receivedDateTime") != "2026-03-01T10:00:00Z" || str(m, "subject") != "Subject A" ||
		str(ea, "address") != bob || str(m, "parentFolderId") != s.FolderID(alice, "inbox") || m["isRead"] != false ||
		!strings.HasPrefix(str(m, "@odata.etag"), `W/"`) || str(m, "bodyPreview") != "Hello, "+alice+"." ||
		!strings.HasPrefix(str(m, "internetMessageId"), "<") || str(m, "changeKey") == "" {
		t.Errorf("message: %v", m)
	}
	if _, ok := m["internetMessageHeaders"]; ok {
		t.Error("internetMessageHeaders without $select")
	}
	resp, _ := c.do("GET", u+"/messages/"+ids[0], nil, "Prefer", `IdType="ImmutableId"`)
	if resp.Header.Get("Preference-Applied") != `IdType="ImmutableId"` {
		t.Errorf("Preference-Applied: %q", resp.Header.Get("Preference-Applied"))
	}
	hm := c.call(200, "GET", u+"/messages/"+ids[0]+"?$select=internetMessageHeaders,subject", nil)
	hs, _ := hm["internetMessageHeaders"].([]any)
	if len(hs) != 7 || hm["isRead"] != nil || str(hm, "subject") != "Subject A" {
		t.Errorf("headers: %v", hm)
	}

	// $value is the MIME as delivered.
	resp, body := c.do("GET", u+"/messages/"+ids[1]+"/$value", nil)
	stored, _ := s.Message(alice, ids[1])
	if resp.StatusCode != 200 || !bytes.Equal(body, stored.MIME) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("$value: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// Listing: filter, order, paging with $skip.
	page := c.call(200, "GET", u+"/mailFolders/inbox/messages?$filter=receivedDateTime+ge+2026-03-01T11:00:00Z&$orderby=receivedDateTime+asc&$top=2&$select=subject", nil)
	var subjects []string
	for {
		for _, v := range values(page) {
			subjects = append(subjects, str(v, "subject"))
		}
		next := str(page, "@odata.nextLink")
		if next == "" {
			break
		}
		if !strings.Contains(next, "$skip=") {
			t.Errorf("nextLink: %s", next)
		}
		page = c.call(200, "GET", next, nil)
	}
	if strings.Join(subjects, ",") != "Subject B,Subject C,Subject D,Subject E" {
		t.Errorf("listing: %v", subjects)
	}
	newest := values(c.call(200, "GET", u+"/mailFolders/inbox/messages?$top=1", nil))
	if len(newest) != 1 || str(newest[0], "id") != ids[4] {
		t.Errorf("default order: %v", newest)
	}

	// PATCH categories and isRead.
	p := c.call(200, "PATCH", u+"/messages/"+ids[2], map[string]any{"categories": []string{"Processed", "Blue"}, "isRead": true})
	got, err := s.Message(alice, ids[2])
	mustOK(t, err)
	if strings.Join(got.Categories, ",") != "Processed,Blue" || !got.IsRead || str(p, "changeKey") == str(m, "changeKey") {
		t.Errorf("patched: %+v %v", got, p)
	}
	resp, body = c.do("PATCH", u+"/messages/"+ids[2], []byte(`{"categories":[]}`), "Prefer", "return=minimal")
	if got, _ := s.Message(alice, ids[2]); resp.StatusCode != 204 || len(body) != 0 || len(got.Categories) != 0 ||
		resp.Header.Get("Preference-Applied") != "return=minimal" {
		t.Errorf("PATCH return=minimal: %d %q %+v", resp.StatusCode, body, got)
	}
	if resp, body := c.do("PATCH", u+"/messages/"+ids[2], []byte(`{"nonsense":1}`)); resp.StatusCode != 400 || errCode(t, body) != "RequestBodyRead" {
		t.Errorf("unknown property: %d %s", resp.StatusCode, body)
	}

	// Garbled and gone ids; move and delete.
	if resp, body := c.do("GET", u+"/messages/AAAA", nil); resp.StatusCode != 400 || errCode(t, body) != "ErrorInvalidIdMalformed" {
		t.Errorf("garbled id: %d %s", resp.StatusCode, body)
	}
	moved := c.call(201, "POST", u+"/messages/"+ids[3]+"/move", map[string]any{"destinationId": "archive"})
	if str(moved, "id") != ids[3] || str(moved, "parentFolderId") != s.FolderID(alice, "archive") {
		t.Errorf("moved: %v", moved)
	}
	if resp, _ := c.do("GET", u+"/mailFolders/inbox/messages/"+ids[3], nil); resp.StatusCode != 404 {
		t.Errorf("moved message still in inbox: %d", resp.StatusCode)
	}
	c.call(204, "DELETE", u+"/messages/"+ids[4], nil)
	if got, _ := s.Message(alice, ids[4]); got.FolderID != s.FolderID(alice, "deleteditems") {
		t.Errorf("deleted message in %s", got.FolderID)
	}
	c.call(204, "DELETE", u+"/messages/"+ids[4], nil)
	if resp, body := c.do("GET", u+"/messages/"+ids[4], nil); resp.StatusCode != 404 || errCode(t, body) != "ErrorItemNotFound" {
		t.Errorf("hard-deleted: %d %s", resp.StatusCode, body)
	}
	if st := s.Stats(); st.MIMERequests != 1 || st.ByUser[alice] != st.Requests-int64(0) {
		t.Errorf("stats: %+v", st)
	}
}

func TestSendMail(t *testing.T) {
	s, c := newFake(t, Options{})
	raw := []byte("From: " + alice + "\r\nTo: " + bob + "\r\nBcc: hidden@example.org\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHi Bob.\r\n")
	enc := base64.StdEncoding.EncodeToString(raw)
	// Line-wrapped base64 is fine.
	wrapped := enc[:40] + "\r\n" + enc[40:]
	c.call(202, "POST", "/users/"+alice+"/sendMail", wrapped, "Content-Type", "text/plain")
	sent := s.Sent(alice)
	if len(sent) != 1 || bytes.Contains(sent[0], []byte("Bcc:")) || !bytes.Contains(sent[0], []byte("Message-ID: <")) || !bytes.Contains(sent[0], []byte("Hi Bob.")) {
		t.Fatalf("sent: %q", sent)
	}
	saved, err := s.Messages(alice, "sentitems")
	mustOK(t, err)
	if len(saved) != 1 || saved[0].Subject != "Grüße" || !saved[0].IsRead {
		t.Errorf("saved copy: %+v", saved)
	}
	got, err := s.Messages(bob, "inbox")
	mustOK(t, err)
	if len(got) != 1 || got[0].Subject != "Grüße" || got[0].IsRead {
		t.Errorf("bob's inbox: %+v", got)
	}

	resp, body := c.do("POST", "/users/"+alice+"/sendMail", []byte("not base64!"), "Content-Type", "text/plain")
	if resp.StatusCode != 400 || errCode(t, body) != "ErrorMimeContentInvalidBase64String" {
		t.Errorf("bad base64: %d %s", resp.StatusCode, body)
	}
	spoof := base64.StdEncoding.EncodeToString([]byte("From: ceo@contoso.example\r\nTo: " + bob + "\r\nSubject: x\r\n\r\nx\r\n"))
	if resp, body := c.do("POST", "/users/"+alice+"/sendMail", []byte(spoof), "Content-Type", "text/plain"); resp.StatusCode != 403 || errCode(t, body) != "ErrorSendAsDenied" {
		t.Errorf("send as other: %d %s", resp.StatusCode, body)
	}

	// JSON form, not saved.
	c.call(202, "POST", "/users/"+alice+"/sendMail", map[string]any{
		"message": map[string]any{
			"subject":      "JSON",
			"body":         map[string]any{"contentType": "Text", "content": "Body text"},
			"toRecipients": []any{map[string]any{"emailAddress": map[string]any{"address": "ext@example.org"}}},
		},
		"saveToSentItems": false,
	})
	if sent := s.Sent(alice); len(sent) != 2 || !bytes.Contains(sent[1], []byte("Subject: JSON")) || !bytes.Contains(sent[1], []byte("To: <ext@example.org>")) {
		t.Errorf("JSON send: %q", sent)
	}
	if saved, _ := s.Messages(alice, "sentitems"); len(saved) != 1 {
		t.Errorf("saveToSentItems false saved: %d", len(saved))
	}
}

func TestTranslateExchangeIDs(t *testing.T) {
	s, c := newFake(t, Options{})
	u := "/users/" + alice
	inbox := s.FolderID(alice, "inbox")
	ews := s.EWSFolderID(alice, "inbox")
	// As in Exchange, the EWS form differs from the REST one only in the base64
	// alphabet (+/ instead of -_), so often not at all.
	if ews == "" || strings.NewReplacer("+", "-", "/", "_").Replace(ews) != inbox {
		t.Fatalf("EWS id %q of %q", ews, inbox)
	}
	r := values(c.call(200, "POST", u+"/translateExchangeIds", map[string]any{
		"inputIds": []string{ews, "garbage"}, "sourceIdType": "ewsId", "targetIdType": "restId"}))
	if len(r) != 2 || str(r[0], "sourceId") != ews || str(r[0], "targetId") != inbox || r[1]["errorDetails"] == nil || r[1]["targetId"] != nil {
		t.Errorf("folder: %v", r)
	}
	c.call(200, "GET", u+"/mailFolders/"+str(r[0], "targetId"), nil)

	id, err := s.Deliver(alice, "inbox", testMessage("t", bob, alice))
	mustOK(t, err)
	ewsMsg := s.EWSMessageID(alice, id)
	r = values(c.call(200, "POST", u+"/translateExchangeIds", map[string]any{
		"inputIds": []string{ewsMsg}, "sourceIdType": "ewsId", "targetIdType": "restImmutableEntryId"}))
	if str(r[0], "targetId") != id {
		t.Errorf("EWS to immutable: %v, want %s", r, id)
	}
	// Immutable to REST and back through the entry-id form.
	r = values(c.call(200, "POST", u+"/translateExchangeIds", map[string]any{
		"inputIds": []string{id}, "sourceIdType": "restImmutableEntryId", "targetIdType": "restId"}))
	rest := str(r[0], "targetId")
	if rest == "" || rest == id {
		t.Fatalf("REST id: %v", r)
	}
	c.call(200, "GET", u+"/messages/"+rest, nil)
	r = values(c.call(200, "POST", u+"/translateExchangeIds", map[string]any{
		"inputIds": []string{rest}, "sourceIdType": "restId", "targetIdType": "entryId"}))
	entry := str(r[0], "targetId")
	r = values(c.call(200, "POST", u+"/translateExchangeIds", map[string]any{
		"inputIds": []string{entry}, "sourceIdType": "entryId", "targetIdType": "restImmutableEntryId"}))
	if str(r[0], "targetId") != id {
		t.Errorf("round trip: %v", r)
	}
	// A REST id stops working once the message moves; the immutable id does not.
	mustOK(t, s.Move(alice, id, "archive"))
	if resp, _ := c.do("GET", u+"/messages/"+rest, nil); resp.StatusCode != 404 {
		t.Errorf("stale REST id: %d", resp.StatusCode)
	}
	c.call(200, "GET", u+"/messages/"+id, nil)
	if resp, body := c.do("POST", u+"/translateExchangeIds", []byte(`{"inputIds":["x"],"sourceIdType":"nope","targetIdType":"restId"}`)); resp.StatusCode != 400 {
		t.Errorf("bad format: %d %s", resp.StatusCode, body)
	}
}
