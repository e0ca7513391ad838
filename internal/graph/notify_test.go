// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

const changeNotification = `{"value":[{
  "subscriptionId":"7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
  "subscriptionExpirationDateTime":"2026-03-03T11:00:00.0000000-08:00",
  "changeType":"created",
  "resource":"Users/u-id/Messages/AAMkAGUw=",
  "resourceData":{"@odata.type":"#Microsoft.Graph.Message","@odata.id":"Users/u-id/Messages/AAMkAGUw=","@odata.etag":"W/\"CQAAABYAAADkr\"","id":"AAMkAGUw="},
  "clientState":"secret-state",
  "tenantId":"84bd8158-6d4d-4958-8b9f-9d6445542f95",
  "encryptedContent":null,
  "futureField":{"x":[1,2,3]}
}],"validationTokens":["abc"]}`

const lifecycleNotification = `{"value":[
 {"subscriptionId":"s1","subscriptionExpirationDateTime":"2026-03-03T11:00:00Z","tenantId":"t","clientState":"cs","lifecycleEvent":"reauthorizationRequired"},
 {"subscriptionId":"s2","tenantId":"t","clientState":"cs","lifecycleEvent":"subscriptionRemoved"},
 {"subscriptionId":"s3","tenantId":"t","clientState":"cs","lifecycleEvent":"missed"}]}`

func TestParseNotifications(t *testing.T) {
	ns, err := ParseNotifications(strings.NewReader(changeNotification), 0)
	if err != nil || len(ns) != 1 {
		t.Fatalf("ParseNotifications = %v, %v", ns, err)
	}
	n := ns[0]
	want := Notification{
		SubscriptionID: "7f105c7d-2dc5-4530-97cd-4e7ae6534c07", ClientState: "secret-state",
		TenantID: "84bd8158-6d4d-4958-8b9f-9d6445542f95", ChangeType: "created",
		Resource: "Users/u-id/Messages/AAMkAGUw=", MessageID: "AAMkAGUw=",
		SubscriptionExpires: time.Date(2026, 3, 3, 19, 0, 0, 0, time.UTC),
	}
	if !n.SubscriptionExpires.Equal(want.SubscriptionExpires) {
		t.Errorf("expires %v", n.SubscriptionExpires)
	}
	n.SubscriptionExpires = want.SubscriptionExpires
	if n != want {
		t.Errorf("got  %+v\nwant %+v", n, want)
	}

	ns, err = ParseNotifications(strings.NewReader(lifecycleNotification), 0)
	if err != nil || len(ns) != 3 {
		t.Fatalf("lifecycle: %v, %v", ns, err)
	}
	for i, ev := range []string{LifecycleReauthorizationRequired, LifecycleSubscriptionRemoved, LifecycleMissed} {
		if ns[i].LifecycleEvent != ev || ns[i].ChangeType != "" || ns[i].ClientState != "cs" {
			t.Errorf("lifecycle %d: %+v", i, ns[i])
		}
	}

	if ns, err := ParseNotifications(strings.NewReader(`{"value":[]}`), 0); err != nil || len(ns) != 0 {
		t.Errorf("empty collection: %v, %v", ns, err)
	}
}

func TestParseNotificationsBounds(t *testing.T) {
	item := `{"subscriptionId":"s","changeType":"created"}`
	many := func(n int) string {
		return `{"value":[` + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + `]}`
	}
	if ns, err := ParseNotifications(strings.NewReader(many(MaxNotifications)), 1<<20); err != nil || len(ns) != MaxNotifications {
		t.Fatalf("%d notifications: %v", MaxNotifications, err)
	}
	for name, tc := range map[string]struct {
		body  string
		limit int64
	}{
		"too many":           {many(MaxNotifications + 1), 1 << 20},
		"too large":          {changeNotification, 100},
		"many tiny":          {`{"value":[` + strings.TrimSuffix(strings.Repeat("{},", 100000), ",") + `]}`, 1 << 20},
		"not JSON":           {"validationToken=x", 0},
		"array":              {`[` + item + `]`, 0},
		"no value":           {`{"other":1}`, 0},
		"null value":         {`{"value":null}`, 0},
		"two values":         {`{"value":[],"value":[]}`, 0},
		"no subscription id": {`{"value":[{"changeType":"created"}]}`, 0},
		"no change type":     {`{"value":[{"subscriptionId":"s"}]}`, 0},
		"wrong type":         {`{"value":[{"subscriptionId":5,"changeType":"created"}]}`, 0},
		"trailing data":      {`{"value":[]} {}`, 0},
		"truncated":          {`{"value":[` + item, 0},
		"empty":              {``, 0},
	} {
		_, err := ParseNotifications(strings.NewReader(tc.body), tc.limit)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		requireClass(t, err, mail.ClassProtocol)
	}
}

func TestValidationToken(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		tok            string
		ok             bool
	}{
		{"POST", "/hook?validationToken=Validation%3A+Testing+client+application+reachability", "Validation: Testing client application reachability", true},
		{"GET", "/hook?validationToken=abc%20def", "abc def", true},
		{"POST", "/hook?x=%zz&validationToken=abc", "abc", true},
		{"POST", "/hook", "", false},
		{"PUT", "/hook?validationToken=abc", "", false},
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		tok, ok := ValidationToken(r)
		if tok != tc.tok || ok != tc.ok {
			t.Errorf("%s %s: %q, %v", tc.method, tc.target, tok, ok)
		}
	}
}

func TestValidationResponse(t *testing.T) {
	tok := "Validation: Testing client application reachability for subscription Request-Id: 7a5b3f2a <b>"
	w := httptest.NewRecorder()
	ValidationResponse(w, tok)
	if w.Code != 200 || w.Body.String() != tok || w.Header().Get("Content-Type") != "text/plain" ||
		w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("%d %q %v", w.Code, w.Body.String(), w.Header())
	}
	for _, bad := range []string{"", strings.Repeat("a", MaxValidationToken+1), "a\r\nSet-Cookie: x", "\xff\xfe"} {
		w := httptest.NewRecorder()
		ValidationResponse(w, bad)
		if w.Code != http.StatusBadRequest || strings.Contains(w.Body.String(), bad) && bad != "" {
			t.Errorf("token %.20q: %d %q", bad, w.Code, w.Body.String())
		}
	}
	w = httptest.NewRecorder()
	ValidationResponse(w, strings.Repeat("a", MaxValidationToken))
	if w.Code != 200 {
		t.Errorf("a token of %d bytes refused", MaxValidationToken)
	}
}

func ExampleParseNotifications() {
	const clientState = "the subscription's random client state"
	mux := http.NewServeMux()
	mux.HandleFunc("/graph/notify", func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := ValidationToken(r); ok {
			ValidationResponse(w, tok)
			return
		}
		ns, err := ParseNotifications(r.Body, 0)
		if err != nil {
			http.Error(w, "bad notification", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted) // answer within 3 s, then act
		for _, n := range ns {
			if n.ClientState != clientState {
				continue // not from Graph
			}
			fmt.Println(n.SubscriptionID, n.ChangeType, n.LifecycleEvent)
		}
	})
}

// What MarshalNotifications writes, ParseNotifications reads back as it was.
func TestMarshalNotificationsRoundTrip(t *testing.T) {
	exp := time.Date(2026, 12, 9, 10, 0, 0, 0, time.UTC)
	in := []Notification{
		{SubscriptionID: "sub-1", ClientState: "0123abcd", TenantID: "t", ChangeType: "created",
			Resource: "Users/u/Messages/m", MessageID: "m", SubscriptionExpires: exp},
		{SubscriptionID: "sub-2", ClientState: "s", LifecycleEvent: LifecycleReauthorizationRequired},
	}
	out, err := ParseNotifications(bytes.NewReader(MarshalNotifications(in)), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}
}
