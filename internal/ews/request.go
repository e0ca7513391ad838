// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"bytes"
	"encoding/xml"
	"strings"
)

// The namespaces of EWS SOAP. Real servers use http://, whatever some
// published samples say.
const (
	nsSOAP   = "http://schemas.xmlsoap.org/soap/envelope/"
	nsMsg    = "http://schemas.microsoft.com/exchange/services/2006/messages"
	nsTypes  = "http://schemas.microsoft.com/exchange/services/2006/types"
	nsErrors = "http://schemas.microsoft.com/exchange/services/2006/errors"
)

// xmlw writes a request document. Element names are constants of this
// package, written with the prefixes the envelope declares (s:, m:, t:);
// every attribute value and text goes through xml.EscapeText. The writers
// call it in schema order: Exchange rejects children out of sequence.
type xmlw struct{ b bytes.Buffer }

// start writes <name a="v" ...>; attrs are name/value pairs.
func (w *xmlw) start(name string, attrs ...string) {
	w.b.WriteByte('<')
	w.b.WriteString(name)
	w.attrs(attrs)
	w.b.WriteByte('>')
}

// empty writes <name a="v" .../>.
func (w *xmlw) empty(name string, attrs ...string) {
	w.b.WriteByte('<')
	w.b.WriteString(name)
	w.attrs(attrs)
	w.b.WriteString("/>")
}

func (w *xmlw) end(name string) {
	w.b.WriteString("</")
	w.b.WriteString(name)
	w.b.WriteByte('>')
}

// elem writes <name>text</name>.
func (w *xmlw) elem(name, text string) {
	w.start(name)
	w.text(text)
	w.end(name)
}

func (w *xmlw) text(s string) { xml.EscapeText(&w.b, []byte(s)) }

func (w *xmlw) attrs(a []string) {
	for i := 0; i+1 < len(a); i += 2 {
		if a[i+1] == "" && a[i] == "ChangeKey" {
			continue // optional everywhere; an empty one is refused
		}
		w.b.WriteByte(' ')
		w.b.WriteString(a[i])
		w.b.WriteString(`="`)
		w.text(a[i+1])
		w.b.WriteByte('"')
	}
}

// envelope renders a request: the SOAP header with the server version and
// the impersonation of t, and the body body writes.
func (c *Client) envelope(t Target, body func(w *xmlw)) []byte {
	var w xmlw
	w.b.Grow(1024)
	w.b.WriteString(`<?xml version="1.0" encoding="utf-8"?>`)
	w.start("s:Envelope", "xmlns:s", nsSOAP, "xmlns:m", nsMsg, "xmlns:t", nsTypes)
	w.start("s:Header")
	w.empty("t:RequestServerVersion", "Version", c.version)
	if t.Impersonate != "" {
		w.start("t:ExchangeImpersonation")
		w.start("t:ConnectingSID")
		w.elem("t:SmtpAddress", t.Impersonate)
		w.end("t:ConnectingSID")
		w.end("t:ExchangeImpersonation")
	}
	w.end("s:Header")
	w.start("s:Body")
	body(&w)
	w.end("s:Body")
	w.end("s:Envelope")
	return w.b.Bytes()
}

// FolderID names a folder: by id (and optionally change key), or by its
// well-known name (Distinguished, e.g. "inbox", "msgfolderroot",
// "sentitems"), which wins when both are set.
type FolderID struct {
	ID            string
	ChangeKey     string
	Distinguished string
}

func (f FolderID) empty() bool { return f.ID == "" && f.Distinguished == "" }

// folderID writes f as t:DistinguishedFolderId or t:FolderId.
func (w *xmlw) folderID(f FolderID) {
	if f.Distinguished != "" {
		w.empty("t:DistinguishedFolderId", "Id", strings.ToLower(f.Distinguished))
		return
	}
	w.empty("t:FolderId", "Id", f.ID, "ChangeKey", f.ChangeKey)
}

// ItemID names an item; ChangeKey names a version of it and may be empty.
type ItemID struct {
	ID        string
	ChangeKey string
}

func (w *xmlw) itemID(id ItemID) {
	w.empty("t:ItemId", "Id", id.ID, "ChangeKey", id.ChangeKey)
}

// fieldURIs writes t:AdditionalProperties with the given property paths.
func (w *xmlw) fieldURIs(uris ...string) {
	w.start("t:AdditionalProperties")
	for _, u := range uris {
		w.empty("t:FieldURI", "FieldURI", u)
	}
	w.end("t:AdditionalProperties")
}
