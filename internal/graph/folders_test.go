// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func folderJSONOf(id, name string, children int) map[string]any {
	return map[string]any{"id": id, "displayName": name, "parentFolderId": "root", "childFolderCount": children, "totalItemCount": 3}
}

func TestFoldersPagingAndChildFolders(t *testing.T) {
	var srvURL string
	var paths []string
	c, srv := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		if got := r.Header.Get("Prefer"); !strings.Contains(got, `IdType="ImmutableId"`) {
			t.Errorf("Prefer = %q", got)
		}
		if r.Header.Get("client-request-id") == "" {
			t.Errorf("no client-request-id")
		}
		switch r.URL.Path {
		case "/v1.0/users/u@x.com/mailFolders/inbox":
			writeJSON(w, 200, folderJSONOf("F-inbox", "Posteingang", 0))
		case "/v1.0/users/u@x.com/mailFolders":
			if r.URL.Query().Get("$skiptoken") == "" {
				if r.URL.Query().Get("$top") != "100" || !strings.Contains(r.URL.Query().Get("$select"), "childFolderCount") {
					t.Errorf("query %q", r.URL.RawQuery)
				}
				writeJSON(w, 200, map[string]any{
					"value":           []any{folderJSONOf("F-inbox", "Posteingang", 0), folderJSONOf("F-a", "A", 1)},
					"@odata.nextLink": srvURL + "/v1.0/users/u@x.com/mailFolders?$top=100&$skiptoken=p2",
				})
				return
			}
			writeJSON(w, 200, map[string]any{"value": []any{folderJSONOf("F-b", "B", 0)}})
		case "/v1.0/users/u@x.com/mailFolders/F-a/childFolders":
			writeJSON(w, 200, map[string]any{"value": []any{folderJSONOf("F-a1", "A1", 0)}})
		default:
			graphError(w, 404, "ErrorItemNotFound", "not found")
		}
	}))
	srvURL = srv.URL
	fs, err := c.Folders(t.Context(), "u@x.com")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.ID+":"+f.WellKnown)
	}
	// A's child comes right after A, before the second page's B: the
	// walk is depth first after a level's pages are read.
	if want := "[F-inbox:inbox F-a: F-a1: F-b:]"; fmt.Sprint(got) != want {
		t.Fatalf("folders %v, want %s (requests %v)", got, want, paths)
	}
	if fs[0].Total != 3 || fs[1].Children != 1 || fs[0].DisplayName != "Posteingang" {
		t.Errorf("fields not read: %+v", fs[:2])
	}
}

func TestFolderNotFoundIsConfig(t *testing.T) {
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		graphError(w, 404, "ErrorItemNotFound", "The specified object was not found in the store.")
	}))
	_, err := c.Folder(t.Context(), "u@x.com", "AAMkNope")
	requireClass(t, err, mail.ClassConfig)
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoMailbox) {
		t.Fatalf("want ErrNotFound only: %v", err)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.RequestID != "req-1" || ae.Code != "ErrorItemNotFound" {
		t.Fatalf("APIError detail missing: %#v", ae)
	}
}

func TestFoldersNoMailbox(t *testing.T) {
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		graphError(w, 404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
	}))
	_, err := c.Folders(t.Context(), "u@x.com")
	requireClass(t, err, mail.ClassConfig)
	if !errors.Is(err, ErrNoMailbox) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNoMailbox: %v", err)
	}
}

func TestFoldersForeignNextLinkRefused(t *testing.T) {
	var other hits
	otherC, otherSrv := newClient(t, other.wrap(http.NotFoundHandler()))
	_ = otherC
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/inbox") {
			writeJSON(w, 200, folderJSONOf("F-inbox", "Inbox", 0))
			return
		}
		writeJSON(w, 200, map[string]any{
			"value":           []any{folderJSONOf("F-inbox", "Inbox", 0)},
			"@odata.nextLink": otherSrv.URL + "/v1.0/users/u/mailFolders?$skiptoken=x",
		})
	}))
	_, err := c.Folders(t.Context(), "u")
	if !errors.Is(err, ErrLinkRefused) {
		t.Fatalf("want ErrLinkRefused: %v", err)
	}
	requireClass(t, err, mail.ClassProtocol)
	if other.n.Load() != 0 {
		t.Fatal("the other host was contacted")
	}
}
