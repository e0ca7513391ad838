// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

const fullEmailBody = `{"SubscriptionInfo":{"MailboxId":"mb-1","SysAdminUnit":"Supervisor"},
 "Emails":[{"Subject":"one","MessageId":"<1@x>"},{"Subject":"two","MessageId":"<2@x>"}]}`

func TestCollectorRecordsAndAnswersLikeWCF(t *testing.T) {
	t.Parallel()
	c := NewCollectorT(t)
	if !strings.HasSuffix(c.Endpoint(), "/0/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail") {
		t.Fatalf("Endpoint() = %s", c.Endpoint())
	}
	var hooked atomic.Int32
	c.OnRequest(func(Request) { hooked.Add(1) })

	if code, body := post(t, c.Endpoint(), fullEmailBody); code != http.StatusOK || body != "" {
		t.Fatalf("ProcessFullEmail -> %d %q, want 200 with empty body", code, body)
	}
	if code, _ := post(t, c.URL(OpProcessMailboxState), `{"MailboxId":"mb-1","Avaliable":true}`); code != http.StatusOK {
		t.Fatalf("ProcessMailboxState -> %d", code)
	}
	if code, _ := post(t, c.URL(OpProcessBinarySerializedEmail), "\x00\x01binary"); code != http.StatusOK {
		t.Fatalf("ProcessBinarySerializedEmail -> %d", code)
	}
	if code, _ := post(t, strings.Replace(c.Endpoint(), "/0/", "/", 1), "{}"); code != http.StatusNotFound {
		t.Fatalf("path without /0 -> %d, want 404", code)
	}
	resp, err := http.Get(c.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET -> %d, want 405", resp.StatusCode)
	}

	all := c.Requests("")
	if len(all) != 5 || int(hooked.Load()) != 5 {
		t.Fatalf("recorded %d requests, hook saw %d, want 5 each:\n%s", len(all), hooked.Load(), c.Summary())
	}
	for i, r := range all {
		if r.Seq != i+1 || r.Time.IsZero() {
			t.Errorf("request %d: Seq %d, Time %v", i, r.Seq, r.Time)
		}
	}
	st := c.Requests(OpProcessMailboxState)
	if len(st) != 1 || st[0].JSON["Avaliable"] != true || st[0].Status != http.StatusOK {
		t.Fatalf("ProcessMailboxState recorded as %+v", st)
	}
	if bin := c.Requests(OpProcessBinarySerializedEmail); len(bin) != 1 || bin[0].JSON != nil || string(bin[0].Body) != "\x00\x01binary" {
		t.Fatalf("binary request recorded as %+v", bin)
	}
	if r := all[3]; r.Op != "/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail" || r.Status != http.StatusNotFound {
		t.Fatalf("unknown path recorded as Op %q status %d", r.Op, r.Status)
	}
	if r := all[4]; r.Op != OpProcessFullEmail || r.Method != http.MethodGet || r.Status != http.StatusMethodNotAllowed {
		t.Fatalf("GET recorded as %+v", r)
	}

	emails := c.Emails()
	if len(emails) != 2 || emails[0].Data["Subject"] != "one" || emails[1].Data["MessageId"] != "<2@x>" {
		t.Fatalf("Emails() = %+v", emails)
	}
	if emails[0].Subscription["MailboxId"] != "mb-1" || emails[0].Seq != 1 {
		t.Fatalf("Emails()[0] = %+v", emails[0])
	}
}

func TestCollectorFailures(t *testing.T) {
	t.Parallel()
	c := NewCollectorT(t)

	c.FailNext(OpProcessFullEmail, 2, http.StatusServiceUnavailable)
	c.SetFailure(OpAny, http.StatusInternalServerError)
	for i, want := range []int{503, 503, 500} {
		if code, _ := post(t, c.Endpoint(), fullEmailBody); code != want {
			t.Fatalf("ProcessFullEmail #%d -> %d, want %d", i+1, code, want)
		}
	}
	if code, _ := post(t, c.URL(OpRefreshToken), "{}"); code != 500 {
		t.Fatalf("RefreshToken under SetFailure(OpAny) -> %d, want 500", code)
	}
	c.ClearFailure(OpAny)
	if code, _ := post(t, c.Endpoint(), fullEmailBody); code != 200 {
		t.Fatalf("after ClearFailure -> %d, want 200", code)
	}
	// Only the accepted request's emails count as delivered.
	if n := len(c.Emails()); n != 2 {
		t.Fatalf("Emails() has %d entries, want the 2 of the accepted request", n)
	}
	if n := len(c.Requests(OpProcessFullEmail)); n != 4 {
		t.Fatalf("recorded %d ProcessFullEmail requests, want 4", n)
	}
}

func TestCollectorDelayAndWaitFor(t *testing.T) {
	t.Parallel()
	c := NewCollectorT(t)
	c.SetDelay(OpProcessFullEmail, 300*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		resp, err := http.Post(c.Endpoint(), "application/json", strings.NewReader(fullEmailBody))
		if err == nil {
			resp.Body.Close()
		}
		done <- time.Since(start)
	}()
	// The request is visible as soon as it arrives, before the delayed answer.
	got, err := c.WaitForEmails(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("WaitForEmails returned %d emails", len(got))
	}
	if took := <-done; took < 300*time.Millisecond {
		t.Fatalf("response after %v, want the 300 ms delay", took)
	}

	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if err := c.WaitFor(short, func(r []Request) bool { return len(r) > 1 }); err == nil {
		t.Fatal("WaitFor on a condition that never holds returned nil")
	}
}
