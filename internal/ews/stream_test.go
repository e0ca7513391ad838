// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

const xmlDecl = `<?xml version="1.0" encoding="utf-8"?>`

// streamEnv is one envelope of the stream, without an XML declaration.
func streamEnv(msgs ...string) string {
	return `<soap11:Envelope xmlns:soap11="http://schemas.xmlsoap.org/soap/envelope/"><soap11:Header>` +
		`<ServerVersionInfo xmlns="http://schemas.microsoft.com/exchange/services/2006/types" MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6"/>` +
		`</soap11:Header><soap11:Body><m:GetStreamingEventsResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" ` +
		`xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages>` +
		strings.Join(msgs, "") + `</m:ResponseMessages></m:GetStreamingEventsResponse></soap11:Body></soap11:Envelope>`
}

// streamMsg is a success message with inner (notifications) and a status.
func streamMsg(inner, status string) string {
	s := `<m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>` + inner
	if status != "" {
		s += `<m:ConnectionStatus>` + status + `</m:ConnectionStatus>`
	}
	return s + `</m:GetStreamingEventsResponseMessage>`
}

// newMailNotification is what one new message produces: Created and NewMail
// for the item, Modified for the Inbox.
func newMailNotification(prefix, sub, item string) string {
	return `<` + prefix + `:Notification><t:SubscriptionId>` + sub + `</t:SubscriptionId>` +
		`<t:CreatedEvent><t:TimeStamp>2026-03-02T09:15:04Z</t:TimeStamp><t:ItemId Id="` + item + `" ChangeKey="` + testItemCK + `"/><t:ParentFolderId Id="` + testFolder + `" ChangeKey="` + testFolCK + `"/></t:CreatedEvent>` +
		`<t:NewMailEvent><t:TimeStamp>2026-03-02T09:15:04Z</t:TimeStamp><t:ItemId Id="` + item + `" ChangeKey="` + testItemCK + `"/><t:ParentFolderId Id="` + testFolder + `" ChangeKey="` + testFolCK + `"/></t:NewMailEvent>` +
		`<t:ModifiedEvent><t:TimeStamp>2026-03-02T09:15:04Z</t:TimeStamp><t:FolderId Id="` + testFolder + `" ChangeKey="` + testFolCK + `"/><t:ParentFolderId Id="` + testRoot + `" ChangeKey="AQAAAA=="/><t:UnreadCount>1</t:UnreadCount></t:ModifiedEvent>` +
		`</` + prefix + `:Notification>`
}

// streamServer answers GetStreamingEvents with the given body parts, each
// flushed as its own chunk, then runs after (nil: end the response).
func streamServer(t *testing.T, parts []string, after func(w http.ResponseWriter, r *http.Request)) *fakeEWS {
	return newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		fl := w.(http.Flusher)
		for _, p := range parts {
			io.WriteString(w, p)
			fl.Flush()
		}
		if after != nil {
			after(w, r)
		}
	})
}

// split cuts s into pieces of n bytes.
func split(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func openStream(t *testing.T, f *fakeEWS, idle time.Duration) *Stream {
	t.Helper()
	c := newClient(t, f.url(), nil)
	s, err := c.Stream(ctxT(t), Target{}, []string{testSubID}, 30, idle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func next(t *testing.T, s *Stream) *StreamMessage {
	t.Helper()
	m, err := s.Next()
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return m
}

func wantEOF(t *testing.T, s *Stream) {
	t.Helper()
	for range 2 { // and it stays so
		if m, err := s.Next(); err != io.EOF {
			t.Fatalf("Next = %+v, %v; want io.EOF", m, err)
		}
	}
}

// Chunks of 7 bytes: no chunk boundary matches an envelope's.
func TestStreamSplitChunks(t *testing.T) {
	body := xmlDecl + streamEnv(streamMsg("", "OK")) +
		"\r\n" + streamEnv(streamMsg(`<m:Notifications>`+newMailNotification("m", testSubID, testItemID)+`</m:Notifications>`, "OK")) +
		xmlDecl + streamEnv(streamMsg("", "Closed"))
	s := openStream(t, streamServer(t, split(body, 7), nil), 5*time.Second)

	if m := next(t, s); m.Status != "OK" || len(m.Notifications) != 0 || m.Err != nil {
		t.Fatalf("heartbeat = %+v", m)
	}
	m := next(t, s)
	if len(m.Notifications) != 1 || m.Notifications[0].SubscriptionID != testSubID {
		t.Fatalf("notification = %+v", m)
	}
	ev := m.Notifications[0].Events
	if len(ev) != 3 || ev[0].Kind != "Created" || ev[1].Kind != "NewMail" || ev[2].Kind != "Modified" {
		t.Fatalf("events = %+v", ev)
	}
	if ev[1].ItemID != testItemID || ev[1].ParentFolderID != testFolder || !ev[1].Time.Equal(time.Date(2026, 3, 2, 9, 15, 4, 0, time.UTC)) {
		t.Errorf("NewMail = %+v", ev[1])
	}
	if ev[2].FolderID != testFolder || ev[2].ItemID != "" || ev[2].ParentFolderID != testRoot {
		t.Errorf("Modified = %+v", ev[2])
	}
	if m := next(t, s); m.Status != "Closed" {
		t.Fatalf("want Closed, got %+v", m)
	}
	wantEOF(t, s)
}

// The variants servers produce: t:Notification, ConnectionStatus first,
// StatusEvent heartbeats, MoreEvents, Moved events, a declaration on each
// envelope, and a clean end without Closed.
func TestStreamVariants(t *testing.T) {
	moved := `<t:Notification><t:SubscriptionId>` + testSubID + `</t:SubscriptionId><t:PreviousWatermark>AQAAAA==</t:PreviousWatermark><t:MoreEvents>true</t:MoreEvents>` +
		`<t:MovedEvent><t:TimeStamp>2026-03-02T09:20:00.123Z</t:TimeStamp><t:ItemId Id="` + testItemID2 + `"/><t:ParentFolderId Id="P2"/><t:OldItemId Id="` + testItemID + `"/><t:OldParentFolderId Id="` + testFolder + `"/></t:MovedEvent>` +
		`</t:Notification>`
	status := `<m:Notification><t:SubscriptionId>` + testSubID + `</t:SubscriptionId><t:StatusEvent><t:Watermark>AQAAAB==</t:Watermark></t:StatusEvent></m:Notification>`
	first := `<m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:ConnectionStatus>OK</m:ConnectionStatus>` +
		`<m:Notifications>` + moved + `</m:Notifications></m:GetStreamingEventsResponseMessage>`
	body := xmlDecl + streamEnv(first) + xmlDecl + streamEnv(streamMsg(`<m:Notifications>`+status+`</m:Notifications>`, ""))
	s := openStream(t, streamServer(t, []string{body}, nil), 5*time.Second)

	m := next(t, s)
	if m.Status != "OK" || len(m.Notifications) != 1 || !m.Notifications[0].More {
		t.Fatalf("first = %+v", m)
	}
	e := m.Notifications[0].Events
	if len(e) != 1 || e[0].Kind != "Moved" || e[0].ItemID != testItemID2 || e[0].OldItemID != testItemID || e[0].OldParentFolderID != testFolder {
		t.Fatalf("moved = %+v", e)
	}
	if e[0].Time.Nanosecond() != 123e6 {
		t.Errorf("fractional time lost: %v", e[0].Time)
	}
	m = next(t, s)
	if m.Status != "" || len(m.Notifications) != 1 || m.Notifications[0].Events[0].Kind != "Status" {
		t.Fatalf("status heartbeat = %+v", m)
	}
	wantEOF(t, s)
}

func TestStreamSubscriptionError(t *testing.T) {
	for _, ns := range []string{"m", "t"} {
		t.Run(ns, func(t *testing.T) {
			msg := `<m:GetStreamingEventsResponseMessage ResponseClass="Error"><m:MessageText>Subscription not found.</m:MessageText>` +
				`<m:ResponseCode>ErrorSubscriptionNotFound</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>` +
				`<m:ErrorSubscriptionIds><` + ns + `:SubscriptionId>` + testSubID + `</` + ns + `:SubscriptionId></m:ErrorSubscriptionIds>` +
				`<m:ConnectionStatus>Closed</m:ConnectionStatus></m:GetStreamingEventsResponseMessage>`
			s := openStream(t, streamServer(t, []string{xmlDecl + streamEnv(msg)}, nil), 5*time.Second)
			m := next(t, s)
			if m.Status != "Closed" || !errors.Is(m.Err, ErrSubscriptionLost) || len(m.BadIDs) != 1 || m.BadIDs[0] != testSubID {
				t.Fatalf("message = %+v", m)
			}
			wantClass(t, m.Err, mail.ClassProtocol)
			wantEOF(t, s)
		})
	}
}

// A body cut inside an envelope is a connection failure and never yields
// the partial envelope's events.
func TestStreamCutMidEnvelope(t *testing.T) {
	full := streamEnv(streamMsg(`<m:Notifications>`+newMailNotification("m", testSubID, testItemID)+`</m:Notifications>`, "OK"))
	half := full[:len(full)/2]
	for name, after := range map[string]func(http.ResponseWriter, *http.Request){
		"abort": func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }, // no final chunk
		"clean": nil,                                                                      // a proper end of the body, but inside the envelope
	} {
		t.Run(name, func(t *testing.T) {
			s := openStream(t, streamServer(t, []string{xmlDecl + streamEnv(streamMsg("", "OK")), half}, after), 5*time.Second)
			if m := next(t, s); m.Status != "OK" {
				t.Fatal(m)
			}
			m, err := s.Next()
			if m != nil {
				t.Fatalf("partial envelope returned: %+v", m)
			}
			wantClass(t, err, mail.ClassConnect)
			if _, err2 := s.Next(); err2 != err {
				t.Errorf("error not final: %v then %v", err, err2)
			}
		})
	}
}

// No byte for the idle time: a timeout, and the connection is closed.
func TestStreamIdleTimeout(t *testing.T) {
	gone := make(chan struct{})
	f := streamServer(t, []string{xmlDecl + streamEnv(streamMsg("", "OK"))}, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // stall until the client hangs up
		close(gone)
	})
	s := openStream(t, f, 300*time.Millisecond)
	time.Sleep(500 * time.Millisecond) // the caller being slow is not idleness
	if m := next(t, s); m.Status != "OK" {
		t.Fatal(m)
	}
	start := time.Now()
	_, err := s.Next()
	wantClass(t, err, mail.ClassTimeout)
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("timed out after %v", d)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the server never saw the connection close")
	}
}

func TestStreamOversizedEnvelope(t *testing.T) {
	huge := streamEnv(streamMsg(`<m:Notifications><m:Notification><t:SubscriptionId>`+strings.Repeat("A", 2<<20)+`</t:SubscriptionId></m:Notification></m:Notifications>`, "OK"))
	s := openStream(t, streamServer(t, []string{xmlDecl + streamEnv(streamMsg("", "OK")), huge}, nil), 5*time.Second)
	next(t, s)
	_, err := s.Next()
	wantClass(t, err, mail.ClassProtocol)
	if !strings.Contains(err.Error(), "envelope larger than") {
		t.Errorf("err = %v", err)
	}
}

// Close from another goroutine ends a Next that waits for data.
func TestStreamCloseUnblocksNext(t *testing.T) {
	gone := make(chan struct{})
	f := streamServer(t, []string{xmlDecl + streamEnv(streamMsg("", "OK"))}, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		close(gone)
	})
	s := openStream(t, f, time.Minute)
	next(t, s)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Next()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrStreamClosed) {
			t.Errorf("err = %v, want ErrStreamClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still blocked after Close")
	}
	<-gone
	s.Close() // idempotent
}

// The caller's context governs the stream.
func TestStreamContextCancel(t *testing.T) {
	f := streamServer(t, []string{xmlDecl + streamEnv(streamMsg("", "OK"))}, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	c := newClient(t, f.url(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := c.Stream(ctx, Target{}, []string{testSubID}, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next(t, s)
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = s.Next()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	wantClass(t, err, mail.ClassInternal)
}

// Faults: as the whole response (HTTP 500), and as an envelope in the stream.
func TestStreamFaults(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, busyFault("2500"))
	})
	c := newClient(t, f.url(), nil)
	_, err := c.Stream(ctxT(t), Target{}, []string{testSubID}, 30, 0)
	if !errors.Is(err, ErrServerBusy) {
		t.Fatalf("err = %v", err)
	}
	if d, ok := BackOff(err); !ok || d != 2500*time.Millisecond {
		t.Errorf("BackOff = %v %v", d, ok)
	}

	fault := busyFault("1000")
	fault = fault[strings.Index(fault, "<s:Envelope"):]
	s := openStream(t, streamServer(t, []string{xmlDecl + streamEnv(streamMsg("", "OK")), fault}, nil), 5*time.Second)
	next(t, s)
	_, err = s.Next()
	if !errors.Is(err, ErrServerBusy) {
		t.Fatalf("err = %v", err)
	}
}

func TestStreamConnectionCountExceeded(t *testing.T) {
	msg := `<m:GetStreamingEventsResponseMessage ResponseClass="Error"><m:MessageText>You have exceeded the available concurrent connections for your account.  Try again once your other requests have completed.</m:MessageText>` +
		`<m:ResponseCode>ErrorExceededConnectionCount</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:ConnectionStatus>Closed</m:ConnectionStatus></m:GetStreamingEventsResponseMessage>`
	s := openStream(t, streamServer(t, []string{xmlDecl + streamEnv(msg)}, nil), 5*time.Second)
	m := next(t, s)
	if !errors.Is(m.Err, ErrExceededConnectionCount) || errors.Is(m.Err, ErrSubscriptionLost) {
		t.Fatalf("err = %v", m.Err)
	}
	if !strings.Contains(m.Err.Error(), "exceeded the available concurrent connections") {
		t.Errorf("text lost: %v", m.Err)
	}
}

// Not an envelope at all.
func TestStreamGarbage(t *testing.T) {
	s := openStream(t, streamServer(t, []string{"<html><body>Service Unavailable</body></html>"}, nil), 5*time.Second)
	_, err := s.Next()
	wantClass(t, err, mail.ClassProtocol)
}

// Opening and closing streams leaves no goroutine behind.
func TestStreamNoGoroutineLeak(t *testing.T) {
	f := streamServer(t, []string{xmlDecl + streamEnv(streamMsg("", "OK"))}, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	c := newClient(t, f.url(), nil)
	open := func() {
		s, err := c.Stream(ctxT(t), Target{}, []string{testSubID}, 1, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		next(t, s)
		s.Close()
	}
	open() // warm up the transport
	c.CloseIdleConnections()
	base := runtime.NumGoroutine()
	for range 20 {
		open()
	}
	c.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before", runtime.NumGoroutine(), base)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FuzzStream feeds arbitrary bytes to the envelope reader: it must never
// panic, hang or return a message after an error.
func FuzzStream(f *testing.F) {
	f.Add(xmlDecl + streamEnv(streamMsg(`<m:Notifications>`+newMailNotification("m", testSubID, testItemID)+`</m:Notifications>`, "OK")) + streamEnv(streamMsg("", "Closed")))
	f.Add(streamEnv(streamMsg("", "OK"))[:100])
	f.Add(busyFault("10"))
	f.Fuzz(func(t *testing.T, body string) {
		ctx, cancel := context.WithCancelCause(context.Background())
		resp := &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(body))}
		s := newStream(ctx, cancel, func() {}, resp, time.Minute, errors.New("idle"))
		defer s.Close()
		for range 1000 {
			m, err := s.Next()
			if err != nil {
				if err != io.EOF && mail.ClassOf(err) == mail.ClassInternal {
					t.Fatalf("unclassified error %v", err)
				}
				return
			}
			if m == nil {
				t.Fatal("nil message without error")
			}
		}
	})
}
