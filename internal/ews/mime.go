// SPDX-License-Identifier: Apache-2.0

package ews

// Implementation notes: a message comes base64-encoded inside one XML text
// node (t:MimeContent), megabytes long. encoding/xml would buffer that node
// whole, and then the decoded copy, so GetMIME parses only the envelope up to
// the start of t:MimeContent with an xml.Decoder and decodes the base64
// straight from the same buffered reader:
//
//   - The decoder reads through a *bufio.Reader, an io.ByteReader, so it adds
//     no buffering of its own and stops right after the '>' of the start tag;
//     what follows in the bufio.Reader is the text node.
//   - The response message's ResponseClass (an attribute of the element that
//     comes before the item) is checked on the way: an error message is
//     decoded whole (it is small) and returned as its error.
//   - The text ends at the first '<'; base64 never contains one. Line
//     breaks and blanks are skipped; anything else outside the alphabet
//     (an entity reference included) fails the decode.
//   - At limit decoded bytes the rest is not read: the message is returned
//     with its header block only and the connection is closed.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/mime"
)

// MIME is a downloaded message.
type MIME struct {
	// Raw is the RFC 5322 message; when Truncated, its header block only
	// (through the blank line that ends it).
	Raw []byte
	// Truncated: the message was larger than the limit.
	Truncated bool
}

// maxMIMEPrefix bounds the envelope before t:MimeContent (a few hundred
// bytes in practice; an error response a few KiB).
const maxMIMEPrefix = 1 << 20

// GetMIME downloads the item's MIME content, at most limit bytes of it
// (DefaultMaxMIME when limit <= 0); a larger message comes back Truncated
// with its header only. An item that is gone fails with ErrNotFound.
func (c *Client) GetMIME(ctx context.Context, t Target, id ItemID, limit int64) (*MIME, error) {
	const op = "GetItem"
	if id.ID == "" {
		return nil, mail.Errorf(mail.ClassConfig, "ews "+op, "empty item id")
	}
	if limit <= 0 {
		limit = DefaultMaxMIME
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	payload := c.envelope(t, func(w *xmlw) {
		w.start("m:GetItem")
		w.start("m:ItemShape")
		w.elem("t:BaseShape", "IdOnly")
		w.elem("t:IncludeMimeContent", "true")
		w.end("m:ItemShape")
		w.start("m:ItemIds")
		w.itemID(ItemID{ID: id.ID}) // a read needs no version
		w.end("m:ItemIds")
		w.end("m:GetItem")
	})
	m, err := c.getMIME(ctx, t, payload, limit)
	if err != nil && ctx.Err() == nil && mail.ClassOf(err) == mail.ClassConnect {
		m, err = c.getMIME(ctx, t, payload, limit)
	}
	return m, err
}

func (c *Client) getMIME(ctx context.Context, t Target, payload []byte, limit int64) (*MIME, error) {
	const op = "GetItem"
	resp, err := c.post(ctx, t, op, payload)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	lr := &budgetReader{r: resp.Body, n: maxMIMEPrefix}
	br := bufio.NewReaderSize(lr, 16<<10)
	hint := int64(64 << 10)
	if resp.ContentLength > 0 {
		hint = resp.ContentLength / 4 * 3
	}
	// The base64 of limit bytes, with room for line breaks and the rest of
	// the envelope.
	m, err := readMIME(br, op, limit, min(hint, limit), func() { lr.n = limit/3*4 + limit/8 + maxMIMEPrefix })
	if err != nil {
		return nil, readError(ctx, op, lr, err)
	}
	if !m.Truncated {
		// The rest of the envelope is a few hundred bytes; reading it lets
		// the connection (and its NTLM authentication) be reused.
		io.CopyN(io.Discard, br, drainLimit)
	}
	return m, nil
}

// readMIME reads a GetItem response from br up to the end of the first
// t:MimeContent. hint sizes the output; atMIME is called when the base64
// starts.
func readMIME(br *bufio.Reader, op string, limit, hint int64, atMIME func()) (*MIME, error) {
	d := xml.NewDecoder(br)
	for {
		tok, err := d.Token()
		if err != nil {
			if err == io.EOF {
				return nil, mail.Errorf(mail.ClassProtocol, "ews "+op, "response without MimeContent")
			}
			return nil, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case se.Name.Space == nsSOAP && se.Name.Local == "Fault":
			var f faultXML
			if err := d.DecodeElement(&f, &se); err != nil {
				return nil, err
			}
			e := f.fault()
			e.Status = 200
			return nil, &mail.Error{Class: codeClass(e.Code), Op: "ews " + op, Err: e}
		case se.Name.Space == nsMsg && strings.HasSuffix(se.Name.Local, "ResponseMessage"):
			if attr(se, "ResponseClass") == "Success" {
				continue
			}
			var m responseMessage
			if err := d.DecodeElement(&m, &se); err != nil {
				return nil, err
			}
			if err := m.check(op); err != nil {
				return nil, err
			}
			return nil, mail.Errorf(mail.ClassProtocol, "ews "+op, "warning response without MimeContent")
		case se.Name.Space == nsTypes && se.Name.Local == "MimeContent":
			atMIME()
			return readBase64(br, op, limit, hint)
		}
	}
}

// readBase64 decodes the text node at the start of br up to its closing
// tag, or until more than limit bytes are decoded.
func readBase64(br *bufio.Reader, op string, limit, hint int64) (*MIME, error) {
	out := make([]byte, 0, hint)
	var carry [4]byte // an incomplete quantum left over from the last chunk
	nc := 0
	for {
		chunk, err := br.ReadSlice('<')
		end := err == nil
		switch {
		case end:
			chunk = chunk[:len(chunk)-1]
		case err == io.EOF:
			return nil, io.ErrUnexpectedEOF
		case err != bufio.ErrBufferFull:
			return nil, err
		}
		src := compactBase64(chunk)
		if nc > 0 {
			k := copy(carry[nc:], src)
			nc, src = nc+k, src[k:]
			if nc < 4 {
				if end {
					return nil, mail.Errorf(mail.ClassProtocol, "ews "+op, "MimeContent ends inside a base64 group")
				}
				continue
			}
			if out, err = appendBase64(out, carry[:]); err != nil {
				return nil, mail.Wrap(mail.ClassProtocol, "ews "+op, err)
			}
			nc = 0
		}
		full := len(src) / 4 * 4
		if out, err = appendBase64(out, src[:full]); err != nil {
			return nil, mail.Wrap(mail.ClassProtocol, "ews "+op, err)
		}
		nc = copy(carry[:], src[full:])
		if int64(len(out)) > limit {
			return &MIME{Raw: bytes.Clone(mime.HeaderBlock(out[:limit])), Truncated: true}, nil
		}
		if end {
			if nc != 0 {
				return nil, mail.Errorf(mail.ClassProtocol, "ews "+op, "MimeContent ends inside a base64 group")
			}
			if b, err := br.ReadByte(); err != nil || b != '/' {
				return nil, mail.Errorf(mail.ClassProtocol, "ews "+op, "MimeContent holds markup")
			}
			if len(out) == 0 {
				return nil, mail.Errorf(mail.ClassProtocol, "ews "+op, "empty MimeContent")
			}
			return &MIME{Raw: out}, nil
		}
	}
}

// compactBase64 removes line breaks and blanks from b in place; the
// alphabet is left to the decoder to check. Lines are found with
// bytes.IndexByte, so a text without blanks costs a few vector scans.
func compactBase64(b []byte) []byte {
	if bytes.IndexByte(b, '\n') < 0 && !hasBlank(b) {
		return b
	}
	out := b[:0] // writes never pass the read position
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte{'\n'})
		if hasBlank(line) {
			for _, c := range line {
				if c != '\r' && c != ' ' && c != '\t' {
					out = append(out, c)
				}
			}
		} else {
			out = append(out, line...)
		}
		b = rest
	}
	return out
}

func hasBlank(b []byte) bool {
	return bytes.IndexByte(b, '\r') >= 0 || bytes.IndexByte(b, ' ') >= 0 || bytes.IndexByte(b, '\t') >= 0
}

// appendBase64 decodes src (whole quanta) onto out.
func appendBase64(out, src []byte) ([]byte, error) {
	if len(src) == 0 {
		return out, nil
	}
	need := base64.StdEncoding.DecodedLen(len(src))
	out = slices.Grow(out, need)
	n, err := base64.StdEncoding.Decode(out[len(out):len(out)+need], src)
	if err != nil {
		return out, errors.New("MimeContent: invalid base64")
	}
	return out[:len(out)+n], nil
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// budgetReader fails reads past n bytes and keeps the first read error, so
// that a failure inside encoding/xml can be told apart: the network's,
// the budget's or the server's bad XML.
type budgetReader struct {
	r   io.Reader
	n   int64 // bytes still allowed
	err error
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		b.err = &mail.Error{Class: mail.ClassProtocol, Op: "ews GetItem", Err: errors.New("response over its byte budget")}
		return 0, b.err
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	if err != nil && b.err == nil {
		b.err = err
	}
	return n, err
}

// readError classifies a failure while reading a response through lr.
func readError(ctx context.Context, op string, lr *budgetReader, err error) error {
	var me *mail.Error
	switch {
	case ctx.Err() != nil:
		return ctxError(ctx, "ews "+op, err)
	case errors.As(err, &me):
		return err
	}
	return decodeFailure("ews "+op, lr.err, err)
}

// decodeFailure classifies err, the failure of an XML decoder reading a
// response whose own first read error was readErr (nil if none): the byte
// budget, the connection, a response that ends inside the document, or the
// server's bad XML.
func decodeFailure(op string, readErr, err error) error {
	var (
		me *mail.Error
		se *xml.SyntaxError
	)
	switch {
	case errors.As(readErr, &me):
		return readErr
	case readErr != nil && readErr != io.EOF:
		return Classify(op, readErr)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &se) && se.Msg == "unexpected EOF":
		return mail.Errorf(mail.ClassConnect, op, "the response ended inside an XML document")
	}
	return &mail.Error{Class: mail.ClassProtocol, Op: op, Err: syntaxOnly(err)}
}
