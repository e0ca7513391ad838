// SPDX-License-Identifier: Apache-2.0

package ews

// Implementation notes: GetStreamingEvents answers with one HTTP response
// that stays open up to ConnectionTimeout minutes and carries a sequence of
// complete SOAP envelopes (notifications, heartbeats, finally a Closed
// status). Servers differ in the details, all of which the reader accepts:
//
//   - chunk boundaries need not match envelopes: the reader is one
//     xml.Decoder over the whole body, decoding one envelope per Next;
//   - each envelope may or may not start with an <?xml?> declaration;
//   - Notification may be in the messages or the types namespace, and so
//     may the SubscriptionId of ErrorSubscriptionIds;
//   - ConnectionStatus may come before or after Notifications.
//
// Invariants:
//
//   - Nothing of an envelope is returned before all of it was read: a body
//     cut inside an envelope is a ClassConnect error, never a partial event.
//   - Each envelope is bounded (maxEnvelopeBytes); a larger one fails the
//     stream as ClassProtocol.
//   - An idle timer, armed only while Next waits for bytes, cancels the
//     request when no byte came for the idle time (ClassTimeout). There is no
//     overall request timeout below ConnectionTimeout plus a grace minute.
//   - Close (or the caller's context) cancels the request, which ends the
//     connection and every read; the package starts no goroutine per stream.

import (
	"bufio"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Limits of GetStreamingEvents.
const (
	MaxStreamIDs       = 200 // subscriptions per connection
	MaxStreamMinutes   = 30  // ConnectionTimeout
	DefaultStreamIdle  = 90 * time.Second
	maxEnvelopeBytes   = 1 << 20
	streamBuffer       = 512 // the decoder's read-ahead buffer
	decoderReadAhead   = streamBuffer
	streamDeadlineDrag = time.Minute
)

// Event is one mailbox event of a notification. Item events carry ItemID,
// folder events FolderID.
type Event struct {
	// Kind is the event's name without "Event": "NewMail", "Created",
	// "Modified", "Moved", "Copied", "Deleted", "Status",
	// "FreeBusyChanged".
	Kind              string
	ItemID            string
	FolderID          string
	ParentFolderID    string
	OldItemID         string // Moved, Copied
	OldFolderID       string // Moved, Copied
	OldParentFolderID string // Moved, Copied
	Time              time.Time
}

// Notification is the events of one subscription in one message.
type Notification struct {
	SubscriptionID string
	More           bool // MoreEvents: the server has more queued
	Events         []Event
}

// StreamMessage is one response message of the stream.
type StreamMessage struct {
	// Status is the ConnectionStatus: "OK" (a heartbeat may carry only
	// this), "Closed" (the server ends the response; call Stream again), or
	// "" when the message has none.
	Status        string
	Notifications []Notification
	// Err is the message's own error (ResponseClass Error), e.g.
	// ErrorSubscriptionNotFound (errors.Is ErrSubscriptionLost); nil for a
	// success.
	Err error
	// BadIDs are the subscriptions Err applies to (ErrorSubscriptionIds);
	// empty: all of them.
	BadIDs []string
}

// Stream reads the envelopes of one GetStreamingEvents response. Next must
// not be called concurrently; Close may be called from any goroutine.
type Stream struct {
	resp *http.Response
	// ctx is the request's own context, kept to read why it ended
	// (context.Cause: idle timer, Close, deadline, the caller).
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   context.CancelFunc // the hard deadline's
	r      *streamReader
	dec    *xml.Decoder
	queue  []*StreamMessage
	closed bool  // a Closed status was returned: the next Next is io.EOF
	err    error // sticky: what every later Next returns
	once   sync.Once
}

// Stream opens GetStreamingEvents for the given subscriptions (1 to 200,
// all on the backend that Target's affinity routes to) for minutes (1–30,
// default 30). The server may keep the response open that long; idle
// bounds the silence between bytes (default 90 s, twice the usual heartbeat
// interval). ctx governs the whole stream. The caller must Close it.
func (c *Client) Stream(ctx context.Context, t Target, ids []string, minutes int, idle time.Duration) (*Stream, error) {
	const op = "GetStreamingEvents"
	if len(ids) == 0 || len(ids) > MaxStreamIDs {
		return nil, mail.Errorf(mail.ClassInternal, "ews "+op, "%d subscription ids (1 to %d allowed)", len(ids), MaxStreamIDs)
	}
	for _, id := range ids {
		if strings.TrimSpace(id) == "" {
			return nil, mail.Errorf(mail.ClassInternal, "ews "+op, "empty subscription id")
		}
	}
	if minutes <= 0 || minutes > MaxStreamMinutes {
		minutes = MaxStreamMinutes
	}
	if idle <= 0 {
		idle = DefaultStreamIdle
	}
	sctx, cancel := context.WithCancelCause(ctx)
	life := time.Duration(minutes)*time.Minute + streamDeadlineDrag
	sctx, stop := context.WithTimeoutCause(sctx, life, &mail.Error{Class: mail.ClassTimeout, Op: "ews " + op,
		Err: fmt.Errorf("the response outlived its ConnectionTimeout of %d minutes", minutes)})
	idleErr := &mail.Error{Class: mail.ClassTimeout, Op: "ews " + op, Err: fmt.Errorf("no data for %s", idle)}

	payload := c.envelope(t, func(w *xmlw) {
		w.start("m:GetStreamingEvents")
		w.start("m:SubscriptionIds")
		for _, id := range ids {
			w.elem("t:SubscriptionId", strings.TrimSpace(id))
		}
		w.end("m:SubscriptionIds")
		w.elem("m:ConnectionTimeout", strconv.Itoa(minutes))
		w.end("m:GetStreamingEvents")
	})
	// Until the headers arrive (authentication round trips included) the
	// ordinary request timeout applies, or idle if longer.
	wait := time.AfterFunc(max(idle, c.timeout), func() { cancel(idleErr) })
	resp, err := c.post(context.WithValue(sctx, streamKey{}, true), t, op, payload)
	wait.Stop()
	if err != nil {
		stop()
		cancel(context.Canceled)
		return nil, err
	}
	return newStream(sctx, cancel, stop, resp, idle, idleErr), nil
}

// newStream reads the envelopes of resp, whose request runs under ctx.
func newStream(ctx context.Context, cancel context.CancelCauseFunc, stop context.CancelFunc, resp *http.Response, idle time.Duration, idleErr error) *Stream {
	s := &Stream{resp: resp, ctx: ctx, cancel: cancel, stop: stop}
	s.r = &streamReader{r: resp.Body, idle: idle}
	s.r.timer = time.AfterFunc(idle, func() { cancel(idleErr) })
	s.r.timer.Stop()
	// A small buffer of our own: the decoder would otherwise add 4 KiB per
	// stream, and thousands of streams sit idle between short envelopes.
	s.dec = xml.NewDecoder(bufio.NewReaderSize(s.r, streamBuffer))
	return s
}

// Next returns the next response message. After a Closed message it
// returns io.EOF, as it does when the server ends the response cleanly
// between envelopes. A broken, silent, oversized or malformed stream
// returns a classified error; every error (io.EOF included) is final and
// releases the connection.
func (s *Stream) Next() (*StreamMessage, error) {
	if len(s.queue) > 0 {
		m := s.queue[0]
		s.queue = s.queue[1:]
		return m, nil
	}
	if s.err != nil {
		return nil, s.err
	}
	if s.closed {
		return nil, s.fail(io.EOF)
	}
	for {
		var env envelopeXML[streamMsgXML]
		s.r.allow = s.dec.InputOffset() + maxEnvelopeBytes + decoderReadAhead
		if err := s.dec.Decode(&env); err != nil {
			if err == io.EOF && s.r.err == io.EOF {
				return nil, s.fail(io.EOF)
			}
			return nil, s.fail(s.readError(err))
		}
		if f := env.Body.Fault; f != nil {
			e := f.fault()
			e.Status = s.resp.StatusCode
			return nil, s.fail(&mail.Error{Class: codeClass(e.Code), Op: "ews GetStreamingEvents", Err: e})
		}
		if env.Body.Resp == nil {
			return nil, s.fail(mail.Errorf(mail.ClassProtocol, "ews GetStreamingEvents", "envelope without a response"))
		}
		for i := range env.Body.Resp.Messages.List {
			m := env.Body.Resp.Messages.List[i].message()
			s.queue = append(s.queue, m)
			if m.Status == "Closed" {
				s.closed = true
				break // nothing after Closed counts
			}
		}
		if len(s.queue) > 0 {
			return s.Next()
		}
	}
}

// Close ends the stream and its connection. It is safe to call more than
// once and concurrently with Next, which then returns ErrStreamClosed.
func (s *Stream) Close() error {
	s.release(&mail.Error{Class: mail.ClassInternal, Op: "ews GetStreamingEvents", Err: ErrStreamClosed})
	return nil
}

// fail makes err final, releases the connection and returns err.
func (s *Stream) fail(err error) error {
	s.err = err
	s.release(err)
	return err
}

func (s *Stream) release(cause error) {
	s.once.Do(func() {
		s.cancel(cause)
		s.stop()
		s.r.timer.Stop()
		s.resp.Body.Close()
	})
}

// readError classifies a failed Decode: the request's end (idle timer,
// Close, deadline, the caller's cancellation), else as decodeFailure does.
func (s *Stream) readError(err error) error {
	const op = "ews GetStreamingEvents"
	if s.ctx.Err() != nil {
		return ctxError(s.ctx, op, err)
	}
	return decodeFailure(op, s.r.err, err)
}

// streamReader is the response body as the decoder sees it: it arms the
// idle timer while waiting for bytes and refuses to read past allow (the
// current envelope's budget). Only Next's goroutine uses it.
type streamReader struct {
	r     io.Reader
	idle  time.Duration
	timer *time.Timer
	n     int64 // bytes read so far
	allow int64 // n may not pass this
	err   error // the first failed read
}

func (s *streamReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.n >= s.allow {
		s.err = mail.Errorf(mail.ClassProtocol, "ews GetStreamingEvents", "envelope larger than %d bytes", maxEnvelopeBytes)
		return 0, s.err
	}
	p = p[:min(int64(len(p)), s.allow-s.n)]
	s.timer.Reset(s.idle)
	n, err := s.r.Read(p)
	s.timer.Stop()
	s.n += int64(n)
	if err != nil {
		s.err = err
	}
	return n, err
}

// streamMsgXML is a GetStreamingEventsResponseMessage.
type streamMsgXML struct {
	responseMessage
	Notifications struct {
		List []notificationXML `xml:"Notification"`
	} `xml:"Notifications"`
	BadIDs []string `xml:"ErrorSubscriptionIds>SubscriptionId"`
	Status string   `xml:"ConnectionStatus"`
}

type notificationXML struct {
	SubscriptionID    string     `xml:"SubscriptionId"`
	PreviousWatermark string     `xml:"PreviousWatermark"`
	More              string     `xml:"MoreEvents"`
	Events            []eventXML `xml:",any"`
}

type eventXML struct {
	XMLName           xml.Name
	TimeStamp         string `xml:"TimeStamp"`
	ItemID            idXML  `xml:"ItemId"`
	FolderID          idXML  `xml:"FolderId"`
	ParentFolderID    idXML  `xml:"ParentFolderId"`
	OldItemID         idXML  `xml:"OldItemId"`
	OldFolderID       idXML  `xml:"OldFolderId"`
	OldParentFolderID idXML  `xml:"OldParentFolderId"`
}

func (m *streamMsgXML) message() *StreamMessage {
	sm := &StreamMessage{Status: strings.TrimSpace(m.Status), Err: m.check("GetStreamingEvents")}
	for _, id := range m.BadIDs {
		if id = strings.TrimSpace(id); id != "" {
			sm.BadIDs = append(sm.BadIDs, id)
		}
	}
	for i := range m.Notifications.List {
		n := &m.Notifications.List[i]
		out := Notification{SubscriptionID: strings.TrimSpace(n.SubscriptionID), More: isTrue(n.More)}
		for j := range n.Events {
			e := &n.Events[j]
			kind, ok := strings.CutSuffix(e.XMLName.Local, "Event")
			if !ok || kind == "" {
				continue
			}
			out.Events = append(out.Events, Event{
				Kind:              kind,
				ItemID:            e.ItemID.ID,
				FolderID:          e.FolderID.ID,
				ParentFolderID:    e.ParentFolderID.ID,
				OldItemID:         e.OldItemID.ID,
				OldFolderID:       e.OldFolderID.ID,
				OldParentFolderID: e.OldParentFolderID.ID,
				Time:              parseTime(e.TimeStamp),
			})
		}
		sm.Notifications = append(sm.Notifications, out)
	}
	return sm
}
