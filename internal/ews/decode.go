// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Responses are decoded with encoding/xml into the structs below. Tags name
// elements without a namespace wherever servers disagree on it (m: or t:
// Notification, SubscriptionId) and match any prefix; the struct fields make
// the reading order-insensitive. encoding/xml expands no external entities and
// refuses nesting deeper than 10,000 elements; the byte budget of every
// response bounds the rest.

// checker is a response message that can tell its own failure.
type checker interface{ check(op string) error }

// responseMessage is the part every XxxResponseMessage shares.
type responseMessage struct {
	Class  string     `xml:"ResponseClass,attr"`
	Text   string     `xml:"MessageText"`
	Code   string     `xml:"ResponseCode"`
	Values []valueXML `xml:"MessageXml>Value"`
}

// valueXML is a t:Value Name="…" of MessageXml.
type valueXML struct {
	Name string `xml:"Name,attr"`
	Text string `xml:",chardata"`
}

// check returns the message's failure as a classified *ResponseError. A
// Warning that says NoError is a success.
func (m responseMessage) check(op string) error {
	code := strings.TrimSpace(m.Code)
	switch {
	case m.Class == "Success":
		return nil
	case m.Class == "Warning" && (code == "" || code == "NoError"):
		return nil
	case m.Class != "Error" && m.Class != "Warning":
		return mail.Errorf(mail.ClassProtocol, "ews "+op, "response message with unknown ResponseClass %q", excerpt(m.Class))
	}
	e := &ResponseError{Op: op, Code: excerpt(code), Text: m.Text}
	for _, v := range m.Values {
		switch v.Name {
		case "InnerErrorResponseCode":
			e.Inner = excerpt(v.Text)
		case "InnerErrorMessageText":
			e.Text += " / " + v.Text
		case "BackOffMilliseconds":
			e.BackOff = millis(v.Text)
		}
	}
	e.Text = excerpt(e.Text)
	e.Class = codeClass(e.effective())
	return &mail.Error{Class: e.Class, Op: "ews " + op, Err: e}
}

// envelopeXML is a response envelope whose operation response holds
// messages of type T.
type envelopeXML[T any] struct {
	XMLName xml.Name `xml:"http://schemas.xmlsoap.org/soap/envelope/ Envelope"`
	Body    struct {
		Fault *faultXML `xml:"http://schemas.xmlsoap.org/soap/envelope/ Fault"`
		Resp  *struct {
			Messages struct {
				List []T `xml:",any"`
			} `xml:"ResponseMessages"`
		} `xml:",any"`
	} `xml:"http://schemas.xmlsoap.org/soap/envelope/ Body"`
}

// faultXML is a SOAP 1.1 fault as Exchange sends it: unqualified faultcode
// and faultstring, and a detail with the EWS code (e:), the message and
// MessageXml (t:) with BackOffMilliseconds or schema-violation details.
type faultXML struct {
	Code   string `xml:"faultcode"`
	String string `xml:"faultstring"`
	Detail struct {
		Code      string     `xml:"ResponseCode"`
		Message   string     `xml:"Message"`
		Values    []valueXML `xml:"MessageXml>Value"`
		Violation string     `xml:"MessageXml>Violation"`
	} `xml:"detail"`
}

func (f *faultXML) fault() *Fault {
	e := &Fault{Code: strings.TrimSpace(f.Detail.Code), Text: f.String}
	if e.Code == "" {
		// "a:ErrorServerBusy" or "s:Client": the local part.
		c := strings.TrimSpace(f.Code)
		e.Code = c[strings.LastIndexByte(c, ':')+1:]
	}
	if e.Text == "" {
		e.Text = f.Detail.Message
	}
	if f.Detail.Violation != "" {
		e.Text += " / " + f.Detail.Violation
	}
	for _, v := range f.Detail.Values {
		if v.Name == "BackOffMilliseconds" {
			e.BackOff = millis(v.Text)
		}
	}
	e.Code, e.Text = excerpt(e.Code), excerpt(e.Text)
	return e
}

// errNotSOAP is a body that is not a SOAP envelope of the expected shape.
var errNotSOAP = errors.New("response is not a SOAP envelope")

// parseEnvelope reads a response envelope: its fault, or its messages.
func parseEnvelope[T any](data []byte) (*Fault, []T, error) {
	var env envelopeXML[T]
	if err := xml.Unmarshal(trimBOM(data), &env); err != nil {
		return nil, nil, errors.Join(errNotSOAP, syntaxOnly(err))
	}
	if env.Body.Fault != nil {
		return env.Body.Fault.fault(), nil, nil
	}
	if env.Body.Resp == nil {
		return nil, nil, errNotSOAP
	}
	return nil, env.Body.Resp.Messages.List, nil
}

// syntaxOnly keeps the position of an XML error but not its text, which
// can quote the server's bytes at length.
func syntaxOnly(err error) error {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return errors.New("XML syntax error on line " + strconv.Itoa(se.Line))
	}
	return errors.New(excerpt(err.Error()))
}

// decodeMessages decodes the response of op and returns its messages, or the
// fault or the first failed message as an error.
func decodeMessages[T checker](op string, data []byte) ([]T, error) {
	f, msgs, err := parseEnvelope[T](data)
	switch {
	case err != nil:
		return nil, &mail.Error{Class: mail.ClassProtocol, Op: "ews " + op, Err: err}
	case f != nil:
		f.Status = 200
		return nil, &mail.Error{Class: codeClass(f.Code), Op: "ews " + op, Err: f}
	case len(msgs) == 0:
		return nil, mail.Errorf(mail.ClassProtocol, "ews "+op, "response without a response message")
	}
	for _, m := range msgs {
		if err := m.check(op); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// idXML is an ItemId, FolderId or similar element.
type idXML struct {
	ID        string `xml:"Id,attr"`
	ChangeKey string `xml:"ChangeKey,attr"`
}

// itemXML is any item element (Message, MeetingRequest, PostItem, …) with
// the properties the listener asks for.
type itemXML struct {
	XMLName  xml.Name
	ItemID   idXML  `xml:"ItemId"`
	Received string `xml:"DateTimeReceived"`
	Size     string `xml:"Size"`
}

// ItemInfo is what a listing says about an item.
type ItemInfo struct {
	ID ItemID
	// Kind is the item's element name: "Message", "MeetingRequest",
	// "MeetingResponse", "MeetingCancellation", "PostItem", "Item", …
	Kind     string
	Received time.Time // DateTimeReceived, zero when not sent
	Size     int64     // bytes, 0 when not sent
}

func (x *itemXML) info() ItemInfo {
	size, _ := strconv.ParseInt(strings.TrimSpace(x.Size), 10, 64)
	return ItemInfo{
		ID:       ItemID{ID: x.ItemID.ID, ChangeKey: x.ItemID.ChangeKey},
		Kind:     x.XMLName.Local,
		Received: parseTime(x.Received),
		Size:     max(size, 0),
	}
}

// parseTime reads an xs:dateTime; one without a zone is UTC, which is what
// Exchange means when it leaves the zone out. Unreadable: the zero time.
func parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t
	}
	return time.Time{}
}

// millis reads a count of milliseconds, capped at an hour.
func millis(s string) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Millisecond, time.Hour)
}

// trimBOM drops a UTF-8 byte-order mark, which encoding/xml refuses.
func trimBOM(b []byte) []byte { return bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) }
