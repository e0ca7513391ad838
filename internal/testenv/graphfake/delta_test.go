// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"sort"
	"strings"
	"testing"
	"time"
)

// round follows a delta round to its end and returns the items and the delta
// link.
func (c *client) round(link string, hdr ...string) ([]map[string]any, string) {
	c.t.Helper()
	var items []map[string]any
	for range 1000 {
		page := c.call(200, "GET", link, nil, hdr...)
		if str(page, "@odata.context") == "" {
			c.t.Errorf("page lacks @odata.context: %v", page)
		}
		items = append(items, values(page)...)
		next, delta := str(page, "@odata.nextLink"), str(page, "@odata.deltaLink")
		if (next == "") == (delta == "") {
			c.t.Fatalf("page with nextLink %q and deltaLink %q", next, delta)
		}
		if delta != "" {
			if !strings.Contains(delta, "$deltatoken=") {
				c.t.Errorf("deltaLink: %s", delta)
			}
			return items, delta
		}
		if !strings.Contains(next, "$skiptoken=") {
			c.t.Errorf("nextLink: %s", next)
		}
		link = next
	}
	c.t.Fatal("endless round")
	return nil, ""
}

func ids(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		out = append(out, str(it, "id"))
	}
	sort.Strings(out)
	return out
}

func TestDelta(t *testing.T) {
	s, c := newFake(t, Options{})
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var all []string
	for i := range 7 {
		id, err := s.DeliverAt(alice, "inbox", testMessage("m", bob, alice), base.Add(time.Duration(i)*time.Hour))
		mustOK(t, err)
		all = append(all, id)
	}
	_, err := s.Deliver(alice, "archive", testMessage("elsewhere", bob, alice))
	mustOK(t, err)

	// Initial round with a filter, $select and pages of 2: the five messages at or
	// after 12:00, in three pages.
	link := s.URL() + "/users/" + alice + "/mailFolders/inbox/messages/delta?$select=subject,receivedDateTime&$filter=receivedDateTime+ge+2026-03-01T12:00:00Z"
	resp, _ := c.do("GET", link, nil, "Prefer", "odata.maxpagesize=2")
	if resp.Header.Get("Preference-Applied") != "odata.maxpagesize=2" {
		t.Errorf("Preference-Applied: %q", resp.Header.Get("Preference-Applied"))
	}
	items, delta := c.round(link, "Prefer", "odata.maxpagesize=2")
	if got, want := ids(items), ids([]map[string]any{{"id": all[2]}, {"id": all[3]}, {"id": all[4]}, {"id": all[5]}, {"id": all[6]}}); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("initial round: %v, want %v", got, want)
	}
	for _, it := range items {
		if str(it, "@odata.type") != "#microsoft.graph.message" || str(it, "subject") != "m" || it["isRead"] != nil || str(it, "@odata.etag") == "" {
			t.Errorf("item: %v", it)
		}
	}
	if st := s.Stats(); st.DeltaRequests != 4 {
		t.Errorf("DeltaRequests %d", st.DeltaRequests)
	}

	// Nothing changed: an empty round.
	items, delta = c.round(delta)
	if len(items) != 0 {
		t.Errorf("quiet round: %v", items)
	}

	// Changes: a new message (and one too old for the filter), an update, a
	// delete, a move out.
	fresh, err := s.DeliverAt(alice, "inbox", testMessage("new", bob, alice), base.Add(24*time.Hour))
	mustOK(t, err)
	_, err = s.DeliverAt(alice, "inbox", testMessage("old", bob, alice), base.Add(-24*time.Hour))
	mustOK(t, err)
	mustOK(t, s.MarkRead(alice, all[3], true))
	mustOK(t, s.Delete(alice, all[4]))
	mustOK(t, s.Move(alice, all[5], "archive"))
	items, delta = c.round(delta, "Prefer", "odata.maxpagesize=1")
	got := map[string]map[string]any{}
	for _, it := range items {
		got[str(it, "id")] = it
	}
	if len(items) != 4 || got[fresh] == nil || str(got[fresh], "subject") != "new" || got[all[3]] == nil {
		t.Errorf("incremental round: %v", items)
	}
	for _, id := range []string{all[4], all[5]} {
		rm, _ := got[id]["@removed"].(map[string]any)
		if str(rm, "reason") != "deleted" || len(got[id]) != 3 {
			t.Errorf("removed %s: %v", id, got[id])
		}
	}
	// The delta link keeps $select.
	if _, ok := got[fresh]["isRead"]; ok {
		t.Errorf("delta link lost $select: %v", got[fresh])
	}
	if items, _ = c.round(delta); len(items) != 0 {
		t.Errorf("after incremental: %v", items)
	}

	// changeType=created only reports creations.
	_, cdelta := c.round(s.URL() + "/users/" + alice + "/mailFolders('inbox')/messages/delta?changeType=created")
	mustOK(t, s.MarkRead(alice, all[0], true))
	late, err := s.Deliver(alice, "inbox", testMessage("late", bob, alice))
	mustOK(t, err)
	items, _ = c.round(cdelta)
	if len(items) != 1 || str(items[0], "id") != late {
		t.Errorf("changeType=created: %v", items)
	}

	// Garbage and misplaced tokens.
	resp, body := c.do("GET", "/users/"+alice+"/mailFolders/inbox/messages/delta?$deltatoken=bogus", nil)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "Badly formed token") {
		t.Errorf("garbage token: %d %s", resp.StatusCode, body)
	}
	tok := delta[strings.Index(delta, "$deltatoken=")+len("$deltatoken="):]
	if resp, body := c.do("GET", "/users/"+alice+"/mailFolders/archive/messages/delta?$deltatoken="+tok, nil); resp.StatusCode != 400 {
		t.Errorf("token of another folder: %d %s", resp.StatusCode, body)
	}
	if resp, body := c.do("GET", "/users/"+alice+"/mailFolders/inbox/messages/delta?$skiptoken="+tok, nil); resp.StatusCode != 400 {
		t.Errorf("delta token as skip token: %d %s", resp.StatusCode, body)
	}
	if resp, body := c.do("GET", "/users/"+alice+"/mailFolders/inbox/messages/delta?$filter=subject+eq+'x'", nil); resp.StatusCode != 400 {
		t.Errorf("unsupported filter: %d %s", resp.StatusCode, body)
	}
}

func TestDeltaSyncReset(t *testing.T) {
	s, c := newFake(t, Options{DeltaLogLimit: 3})
	for range 3 {
		_, err := s.Deliver(alice, "inbox", testMessage("m", bob, alice))
		mustOK(t, err)
	}
	start := s.URL() + "/users/" + alice + "/mailFolders/inbox/messages/delta?$select=subject"
	items, delta := c.round(start, "Prefer", "odata.maxpagesize=2")
	if len(items) != 3 {
		t.Fatalf("initial: %d", len(items))
	}
	// A skip token of an unfinished round and the delta link both die.
	page := c.call(200, "GET", start, nil, "Prefer", "odata.maxpagesize=1")
	skip := str(page, "@odata.nextLink")
	s.ExpireDeltaTokens(alice)
	for _, link := range []string{delta, skip} {
		resp, body := c.do("GET", link, nil)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != 410 || errCode(t, body) != "syncStateNotFound" || !strings.HasPrefix(loc, s.URL()+"/users/") || strings.Contains(loc, "token") {
			t.Fatalf("expired: %d %q %s", resp.StatusCode, loc, body)
		}
		// The Location starts a working round with the same options.
		items, _ := c.round(loc)
		if len(items) != 3 || items[0]["isRead"] != nil {
			t.Errorf("round from Location: %v", items)
		}
	}

	// More changes than the log holds: the old delta link is gone.
	_, delta = c.round(start)
	for range 4 {
		_, err := s.Deliver(alice, "inbox", testMessage("more", bob, alice))
		mustOK(t, err)
	}
	if resp, _ := c.do("GET", delta, nil); resp.StatusCode != 410 {
		t.Errorf("beyond DeltaLogLimit: %d", resp.StatusCode)
	}
	// A link fresh enough still works.
	_, delta = c.round(start)
	_, err := s.Deliver(alice, "inbox", testMessage("one", bob, alice))
	mustOK(t, err)
	if items, _ := c.round(delta); len(items) != 1 {
		t.Errorf("within the log: %v", items)
	}
}
