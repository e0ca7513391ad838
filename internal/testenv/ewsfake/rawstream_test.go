// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rawStream is a GetStreamingEvents response read straight off a TCP connection, so
// that chunk boundaries are visible (net/http would hide them).
type rawStream struct {
	t      testing.TB
	conn   net.Conn
	br     *bufio.Reader
	status int
	header textproto.MIMEHeader
}

// openRawStream posts GetStreamingEvents for ids as user (Basic) and reads the
// response head. extra are additional request header lines.
func openRawStream(t testing.TB, s *Server, user, pass string, ids []string, extra ...string) *rawStream {
	t.Helper()
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(`<t:SubscriptionId>` + id + `</t:SubscriptionId>`)
	}
	body := `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="` + nsSOAP + `" xmlns:m="` + nsMsg + `" xmlns:t="` + nsTypes + `">` +
		`<s:Header><t:RequestServerVersion Version="Exchange2013"/></s:Header><s:Body><m:GetStreamingEvents><m:SubscriptionIds>` +
		sb.String() + `</m:SubscriptionIds><m:ConnectionTimeout>30</m:ConnectionTimeout></m:GetStreamingEvents></s:Body></s:Envelope>`
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.BaseURL(), "http://"))
	mustOK(t, err)
	t.Cleanup(func() { conn.Close() })
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	req := "POST /ews/exchange.asmx HTTP/1.1\r\nHost: " + conn.RemoteAddr().String() + "\r\nAuthorization: Basic " + auth +
		"\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	for _, h := range extra {
		req += h + "\r\n"
	}
	_, err = io.WriteString(conn, req+"\r\n"+body)
	mustOK(t, err)
	rs := &rawStream{t: t, conn: conn, br: bufio.NewReader(conn)}
	mustOK(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	tp := textproto.NewReader(rs.br)
	line, err := tp.ReadLine()
	mustOK(t, err)
	if _, err := fmt.Sscanf(line, "HTTP/1.1 %d", &rs.status); err != nil {
		t.Fatalf("status line %q", line)
	}
	rs.header, err = tp.ReadMIMEHeader()
	mustOK(t, err)
	return rs
}

// errCut is a connection closed between chunks, without the terminating chunk.
var errCut = errors.New("connection closed without the terminating chunk")

// chunk reads one chunk of a chunked body; io.EOF at the terminating zero chunk.
// A connection cut inside a chunk yields the partial data and io.ErrUnexpectedEOF;
// one cut between chunks errCut.
func (rs *rawStream) chunk(timeout time.Duration) ([]byte, error) {
	_ = rs.conn.SetReadDeadline(time.Now().Add(timeout))
	line, err := rs.br.ReadString('\n')
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return nil, errCut
	}
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
	if err != nil {
		return nil, fmt.Errorf("chunk size line %q: %w", line, err)
	}
	data := make([]byte, n)
	k, err := io.ReadFull(rs.br, data)
	if err != nil {
		return data[:k], io.ErrUnexpectedEOF
	}
	if crlf, err := rs.br.ReadString('\n'); err != nil || crlf != "\r\n" {
		return data, fmt.Errorf("chunk not followed by CRLF: %q %v", crlf, err)
	}
	if n == 0 {
		return nil, io.EOF
	}
	return data, nil
}

// envelope reads the next chunk and parses it as one complete SOAP envelope,
// returning its GetStreamingEventsResponseMessage.
func (rs *rawStream) envelope(timeout time.Duration) (msg *node, raw []byte) {
	rs.t.Helper()
	raw, err := rs.chunk(timeout)
	if err != nil {
		rs.t.Fatalf("reading chunk: %v", err)
	}
	env, err := parseXML(bytes.NewReader(raw))
	if err != nil {
		rs.t.Fatalf("chunk is not one complete XML document: %v\n%s", err, raw)
	}
	ms := messages(rs.t, env)
	if len(ms) != 1 || ms[0].local != "GetStreamingEventsResponseMessage" {
		rs.t.Fatalf("unexpected messages in %s", raw)
	}
	return ms[0], raw
}

// answer reads a refusal, which comes as one envelope, with Content-Length or
// chunked.
func (rs *rawStream) answer() (msg *node, raw []byte) {
	rs.t.Helper()
	if rs.header.Get("Transfer-Encoding") == "chunked" {
		return rs.envelope(2 * time.Second)
	}
	n, err := strconv.Atoi(rs.header.Get("Content-Length"))
	mustOK(rs.t, err)
	raw = make([]byte, n)
	_, err = io.ReadFull(rs.br, raw)
	mustOK(rs.t, err)
	env, err := parseXML(bytes.NewReader(raw))
	mustOK(rs.t, err)
	ms := messages(rs.t, env)
	return ms[0], raw
}

// subscribe creates a streaming subscription on the inbox (or all folders).
func (c *soapClient) subscribe(allFolders bool) string {
	c.t.Helper()
	req := `<msg:StreamingSubscriptionRequest><typ:FolderIds><typ:DistinguishedFolderId Id="inbox"/></typ:FolderIds>`
	if allFolders {
		req = `<msg:StreamingSubscriptionRequest SubscribeToAllFolders="true">`
	}
	env, _ := c.call(`<msg:Subscribe>` + req +
		`<typ:EventTypes><typ:EventType>NewMailEvent</typ:EventType><typ:EventType>CreatedEvent</typ:EventType>` +
		`<typ:EventType>ModifiedEvent</typ:EventType><typ:EventType>MovedEvent</typ:EventType><typ:EventType>DeletedEvent</typ:EventType>` +
		`</typ:EventTypes></msg:StreamingSubscriptionRequest></msg:Subscribe>`)
	return single(c.t, env, "NoError").child(nsMsg, "SubscriptionId").value()
}

func status(m *node) string { return m.child(nsMsg, "ConnectionStatus").value() }
