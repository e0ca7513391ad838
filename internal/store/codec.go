// SPDX-License-Identifier: Apache-2.0

package store

// Implementation notes: compact record encodings for the Redis store.
//
// Mailbox and status records use the protocol-buffers wire format (varint and
// length-delimited fields only), written by hand with encoding/binary: no schema
// compiler, about half the size of JSON with short names, field order free,
// unknown fields skipped, so records evolve additively (new field numbers only;
// never reuse a number). `protoc --decode_raw` reads a plaintext record for
// debugging. Zero values are omitted.
//
// A cursor is text, "uidvalidity:lastuid:lastdate:fence" in decimal (lastdate in
// Unix seconds), because the fencing Lua script must read the fence: it is the
// last field.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

const (
	wireVarint = 0
	wireBytes  = 2
)

// Field numbers of the mailbox record. Never renumber; add new ones.
const (
	mbKind            = 2
	mbServerType      = 3
	mbHost            = 4
	mbPort            = 5
	mbUseSSL          = 6
	mbSecure          = 7
	mbUserName        = 8
	mbPassword        = 9
	mbAccessToken     = 10
	mbUseOAuth        = 11
	mbFolderIDs       = 12
	mbEndpoint        = 13
	mbUser            = 14
	mbWorkspace       = 15
	mbTimeZone        = 16
	mbSenderAddress   = 17
	mbContext         = 18
	mbSubscriptionTTL = 19
	mbFeature         = 20 // repeated entry {1: key, 2: bool}
	mbExtra           = 21 // repeated entry {1: key, 2: value}
	mbClient          = 22
	mbWebhookURL      = 23
	mbWebhookSecret   = 24
	mbWebhookEvents   = 25 // repeated
	mbWebhookRaw      = 26
	mbWebhookInline   = 27 // zigzag
	mbSMTP            = 28 // {1: host, 2: port, 3: secure, 4: user, 5: password}
	mbOAuth2          = 29 // {1: token URL, 2: client id, 3: client secret, 4: refresh token, 5: scope (repeated)}
)

// Field numbers of the status record.
const (
	stState       = 1
	stErrorClass  = 2
	stLastError   = 3
	stNode        = 4
	stSince       = 5 // Unix milliseconds, zigzag
	stRetryAt     = 6
	stLastEventAt = 7
	stDelivered   = 8
	stFolder      = 9 // repeated
	stKind        = 10
	stTransport   = 11
	stPush        = 12
)

var errCorrupt = errors.New("corrupt record")

type encoder struct{ b []byte }

func (e *encoder) tag(field, wire int) {
	e.b = binary.AppendUvarint(e.b, uint64(field)<<3|uint64(wire))
}

func (e *encoder) uint(field int, v uint64) {
	if v != 0 {
		e.tag(field, wireVarint)
		e.b = binary.AppendUvarint(e.b, v)
	}
}

// int writes a signed value zigzag-encoded, as protobuf's sint64.
func (e *encoder) int(field int, v int64) { e.uint(field, uint64(v<<1)^uint64(v>>63)) }

func (e *encoder) bool(field int, v bool) {
	if v {
		e.uint(field, 1)
	}
}

func (e *encoder) str(field int, s string) {
	if s != "" {
		e.bytes(field, []byte(s))
	}
}

// bytes writes a length-delimited field even when empty (map entries need it).
func (e *encoder) bytes(field int, b []byte) {
	e.tag(field, wireBytes)
	e.b = binary.AppendUvarint(e.b, uint64(len(b)))
	e.b = append(e.b, b...)
}

type decoder struct {
	b   []byte
	err error
}

// next reads the next field's tag; false at the end or on error.
func (d *decoder) next() (field, wire int, ok bool) {
	if d.err != nil || len(d.b) == 0 {
		return 0, 0, false
	}
	t := d.rawVarint()
	if d.err != nil {
		return 0, 0, false
	}
	if t>>3 == 0 || t>>3 > math.MaxInt32 {
		d.err = errCorrupt
		return 0, 0, false
	}
	return int(t >> 3), int(t & 7), true
}

func (d *decoder) rawVarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(wire int) uint64 {
	if wire != wireVarint {
		d.err = errCorrupt
		return 0
	}
	return d.rawVarint()
}

func (d *decoder) int(wire int) int64 {
	u := d.varint(wire)
	return int64(u>>1) ^ -int64(u&1)
}

func (d *decoder) bytes(wire int) []byte {
	if wire != wireBytes {
		d.err = errCorrupt
		return nil
	}
	n := d.rawVarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errCorrupt
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) str(wire int) string { return string(d.bytes(wire)) }

// skip passes over a field of a number this version does not know.
func (d *decoder) skip(wire int) {
	switch wire {
	case wireVarint:
		d.rawVarint()
	case wireBytes:
		d.bytes(wire)
	case 1: // fixed64
		d.fixed(8)
	case 5: // fixed32
		d.fixed(4)
	default:
		d.err = errCorrupt
	}
}

func (d *decoder) fixed(n int) {
	if len(d.b) < n {
		d.err = errCorrupt
		return
	}
	d.b = d.b[n:]
}

// intField narrows a decoded value to int, flagging overflow.
func (d *decoder) intField(v int64) int {
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.err = errCorrupt
		return 0
	}
	return int(v)
}

// encodeMailbox encodes everything but the id, which is the record's key.
func encodeMailbox(m *mail.Mailbox) []byte {
	e := encoder{b: make([]byte, 0, 512)}
	e.int(mbKind, int64(m.Kind))
	e.str(mbServerType, m.ServerType)
	e.str(mbHost, m.Host)
	e.int(mbPort, int64(m.Port))
	e.bool(mbUseSSL, m.UseSSL)
	e.int(mbSecure, int64(m.Secure))
	e.str(mbUserName, m.UserName)
	e.str(mbPassword, m.Password)
	e.str(mbAccessToken, m.AccessToken)
	e.bool(mbUseOAuth, m.UseOAuth)
	for _, f := range m.FolderIDs {
		e.bytes(mbFolderIDs, []byte(f)) // kept even when empty: position matters
	}
	e.str(mbEndpoint, m.Endpoint)
	e.str(mbUser, m.User)
	e.str(mbWorkspace, m.Workspace)
	e.str(mbTimeZone, m.TimeZone)
	e.str(mbSenderAddress, m.SenderAddress)
	e.str(mbContext, m.Context)
	e.int(mbSubscriptionTTL, int64(m.SubscriptionTTL))
	for _, k := range slices.Sorted(maps.Keys(m.Features)) {
		var en encoder
		en.bytes(1, []byte(k))
		en.bool(2, m.Features[k])
		e.bytes(mbFeature, en.b)
	}
	for _, k := range slices.Sorted(maps.Keys(m.Extra)) {
		var en encoder
		en.bytes(1, []byte(k))
		en.str(2, m.Extra[k])
		e.bytes(mbExtra, en.b)
	}
	e.str(mbClient, m.Client)
	e.str(mbWebhookURL, m.WebhookURL)
	e.str(mbWebhookSecret, m.WebhookSecret)
	for _, ev := range m.WebhookEvents {
		e.str(mbWebhookEvents, ev)
	}
	e.bool(mbWebhookRaw, m.WebhookRaw)
	e.int(mbWebhookInline, int64(m.WebhookInlineMax))
	if s := m.SMTP; s != nil {
		var en encoder
		en.str(1, s.Host)
		en.int(2, int64(s.Port))
		en.int(3, int64(s.Secure))
		en.str(4, s.UserName)
		en.str(5, s.Password)
		e.bytes(mbSMTP, en.b)
	}
	if o := m.OAuth2; o != nil {
		var en encoder
		en.str(1, o.TokenURL)
		en.str(2, o.ClientID)
		en.str(3, o.ClientSecret)
		en.str(4, o.RefreshToken)
		for _, s := range o.Scopes {
			en.bytes(5, []byte(s))
		}
		e.bytes(mbOAuth2, en.b)
	}
	return e.b
}

func decodeMailbox(id mail.MailboxID, b []byte) (*mail.Mailbox, error) {
	m := &mail.Mailbox{ID: id}
	d := decoder{b: b}
	for {
		field, wire, ok := d.next()
		if !ok {
			break
		}
		switch field {
		case mbKind:
			m.Kind = mail.ServerKind(d.intField(d.int(wire)))
		case mbServerType:
			m.ServerType = d.str(wire)
		case mbHost:
			m.Host = d.str(wire)
		case mbPort:
			m.Port = d.intField(d.int(wire))
		case mbUseSSL:
			m.UseSSL = d.varint(wire) != 0
		case mbSecure:
			m.Secure = mail.SecureOption(d.intField(d.int(wire)))
		case mbUserName:
			m.UserName = d.str(wire)
		case mbPassword:
			m.Password = d.str(wire)
		case mbAccessToken:
			m.AccessToken = d.str(wire)
		case mbUseOAuth:
			m.UseOAuth = d.varint(wire) != 0
		case mbFolderIDs:
			m.FolderIDs = append(m.FolderIDs, d.str(wire))
		case mbEndpoint:
			m.Endpoint = d.str(wire)
		case mbUser:
			m.User = d.str(wire)
		case mbWorkspace:
			m.Workspace = d.str(wire)
		case mbTimeZone:
			m.TimeZone = d.str(wire)
		case mbSenderAddress:
			m.SenderAddress = d.str(wire)
		case mbContext:
			m.Context = d.str(wire)
		case mbSubscriptionTTL:
			m.SubscriptionTTL = d.intField(d.int(wire))
		case mbFeature:
			k, v := decodeEntry(&d, d.bytes(wire))
			if m.Features == nil {
				m.Features = make(map[string]bool)
			}
			m.Features[k] = v != ""
		case mbExtra:
			k, v := decodeEntry(&d, d.bytes(wire))
			if m.Extra == nil {
				m.Extra = make(map[string]string)
			}
			m.Extra[k] = v
		case mbClient:
			m.Client = d.str(wire)
		case mbWebhookURL:
			m.WebhookURL = d.str(wire)
		case mbWebhookSecret:
			m.WebhookSecret = d.str(wire)
		case mbWebhookEvents:
			m.WebhookEvents = append(m.WebhookEvents, d.str(wire))
		case mbWebhookRaw:
			m.WebhookRaw = d.varint(wire) != 0
		case mbWebhookInline:
			m.WebhookInlineMax = d.intField(d.int(wire))
		case mbSMTP:
			m.SMTP = decodeServer(&d, d.bytes(wire))
		case mbOAuth2:
			m.OAuth2 = decodeOAuth2(&d, d.bytes(wire))
		default:
			d.skip(wire)
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

// nested calls f with each field of the record b nested in outer; fields f
// does not take (false) are skipped, and a corrupt record corrupts outer.
func (outer *decoder) nested(b []byte, f func(d *decoder, field, wire int) bool) {
	d := decoder{b: b}
	for {
		field, wire, ok := d.next()
		if !ok {
			break
		}
		if !f(&d, field, wire) {
			d.skip(wire)
		}
	}
	if d.err != nil && outer.err == nil {
		outer.err = d.err
	}
}

// decodeEntry reads a map entry {1: key, 2: value}; a bool value comes back as
// "1" for true and "" for false.
func decodeEntry(outer *decoder, b []byte) (key, value string) {
	outer.nested(b, func(d *decoder, field, wire int) bool {
		switch {
		case field == 1:
			key = d.str(wire)
		case field == 2 && wire == wireVarint:
			if d.varint(wire) != 0 {
				value = "1"
			}
		case field == 2:
			value = d.str(wire)
		default:
			return false
		}
		return true
	})
	return key, value
}

// decodeServer reads a native account's SMTP server record.
func decodeServer(outer *decoder, b []byte) *mail.Server {
	s := &mail.Server{}
	outer.nested(b, func(d *decoder, field, wire int) bool {
		switch field {
		case 1:
			s.Host = d.str(wire)
		case 2:
			s.Port = d.intField(d.int(wire))
		case 3:
			s.Secure = mail.SecureOption(d.intField(d.int(wire)))
		case 4:
			s.UserName = d.str(wire)
		case 5:
			s.Password = d.str(wire)
		default:
			return false
		}
		return true
	})
	return s
}

// decodeOAuth2 reads a native account's OAuth client record.
func decodeOAuth2(outer *decoder, b []byte) *mail.OAuth2 {
	o := &mail.OAuth2{}
	outer.nested(b, func(d *decoder, field, wire int) bool {
		switch field {
		case 1:
			o.TokenURL = d.str(wire)
		case 2:
			o.ClientID = d.str(wire)
		case 3:
			o.ClientSecret = d.str(wire)
		case 4:
			o.RefreshToken = d.str(wire)
		case 5:
			o.Scopes = append(o.Scopes, d.str(wire))
		default:
			return false
		}
		return true
	})
	return o
}

func encodeStatus(st mail.Status) []byte {
	e := encoder{b: make([]byte, 0, 128)}
	e.str(stState, st.State)
	e.str(stErrorClass, st.ErrorClass)
	e.str(stLastError, truncateUTF8(st.LastError, MaxLastError))
	e.str(stNode, st.Node)
	e.int(stSince, unixMilli(st.Since))
	e.int(stRetryAt, unixMilli(st.RetryAt))
	e.int(stLastEventAt, unixMilli(st.LastEventAt))
	e.uint(stDelivered, st.Delivered)
	for _, f := range st.Folders {
		e.bytes(stFolder, []byte(f))
	}
	e.uint(stKind, uint64(st.Kind))
	e.str(stTransport, st.Transport)
	e.str(stPush, st.Push)
	return e.b
}

func decodeStatus(b []byte) (mail.Status, error) {
	var st mail.Status
	d := decoder{b: b}
	for {
		field, wire, ok := d.next()
		if !ok {
			break
		}
		switch field {
		case stState:
			st.State = d.str(wire)
		case stErrorClass:
			st.ErrorClass = d.str(wire)
		case stLastError:
			st.LastError = d.str(wire)
		case stNode:
			st.Node = d.str(wire)
		case stSince:
			st.Since = fromUnixMilli(d.int(wire))
		case stRetryAt:
			st.RetryAt = fromUnixMilli(d.int(wire))
		case stLastEventAt:
			st.LastEventAt = fromUnixMilli(d.int(wire))
		case stDelivered:
			st.Delivered = d.varint(wire)
		case stFolder:
			st.Folders = append(st.Folders, d.str(wire))
		case stKind:
			st.Kind = mail.ServerKind(d.varint(wire))
		case stTransport:
			st.Transport = d.str(wire)
		case stPush:
			st.Push = d.str(wire)
		default:
			d.skip(wire)
		}
	}
	if d.err != nil {
		return mail.Status{}, d.err
	}
	return st, nil
}

// encodeCursor renders "<data>:<fence>". The fence is the last field, so the
// fenced write (scripts/put_cursor.lua) finds it whatever the data holds.
// IMAP cursors are "uidvalidity:uid:date", so the stored text is exactly what
// releases before opaque cursors wrote: those read back unchanged.
func encodeCursor(c mail.Cursor) string {
	return c.Data + ":" + strconv.FormatUint(c.Fence, 10)
}

func decodeCursor(s string) (mail.Cursor, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return mail.Cursor{}, fmt.Errorf("%w: cursor has no fence", errCorrupt)
	}
	fence, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil {
		return mail.Cursor{}, fmt.Errorf("%w: cursor fence: %w", errCorrupt, err)
	}
	return mail.Cursor{Data: s[:i], Fence: fence}, nil
}
