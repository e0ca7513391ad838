// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
)

// Identifiers handed to clients are opaque base64 blobs, as in Exchange Online, but
// they carry what the fake needs to find the object again plus a short MAC, so that
// a garbled or invented id is told apart from one that merely no longer exists
// (ErrorInvalidIdMalformed vs ErrorItemNotFound), and so that delta tokens need no
// server-side state.
//
// Layouts (big endian) before the 6-byte MAC:
//
//	message, default id:  00 03 24 'M' mailbox:u32 message:u64 gen:u32   -> "AAMk…"
//	message, immutable:   00 09 00 2e 00 00 'I' 00 mailbox:u32 message:u64 -> "AAkALgAA…"
//	folder:               01 03 24 'F' mailbox:u32 folder:u32             -> "AQMk…"
//
// gen counts the moves of a message: a default (REST) id names the message in one
// folder and stops working when it moves, while its immutable id does not, as
// documented for Outlook. The REST form is base64url with padding; the EWS form of
// the same id is the same bytes in standard base64 (Exchange's two alphabets), so
// translateExchangeIds between them only re-encodes. The entry-id forms use
// base64url without padding followed by the number of padding characters removed.

const macLen = 6

var errBadID = errors.New("graphfake: malformed id")

// codec seals and opens ids, delta tokens and access tokens with one random key.
type codec struct{ key []byte }

func newCodec() codec {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return codec{key: k}
}

func (c codec) mac(b []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(b)
	return m.Sum(nil)
}

func (c codec) seal(b []byte) []byte { return append(b, c.mac(b)[:macLen]...) }

func (c codec) open(raw []byte, n int, magic []byte) ([]byte, error) {
	if len(raw) != n+macLen || len(magic) > n {
		return nil, errBadID
	}
	for i, m := range magic {
		if raw[i] != m {
			return nil, errBadID
		}
	}
	if !hmac.Equal(c.mac(raw[:n])[:macLen], raw[n:]) {
		return nil, errBadID
	}
	return raw[:n], nil
}

var (
	magicMsg       = []byte{0x00, 0x03, 0x24, 'M'}
	magicImmutable = []byte{0x00, 0x09, 0x00, 0x2e, 0x00, 0x00, 'I', 0x00}
	magicFolder    = []byte{0x01, 0x03, 0x24, 'F'}
)

const (
	msgIDLen       = 4 + 4 + 8 + 4
	immutableIDLen = 8 + 4 + 8
	folderIDLen    = 4 + 4 + 4
)

// objRef is what an id names.
type objRef struct {
	folder    bool
	immutable bool
	mbox      uint32
	num       uint64 // message or folder number
	gen       uint32 // moves of a message, default ids only
}

func (c codec) raw(r objRef) []byte {
	switch {
	case r.folder:
		b := append([]byte{}, magicFolder...)
		b = binary.BigEndian.AppendUint32(b, r.mbox)
		b = binary.BigEndian.AppendUint32(b, uint32(r.num))
		return c.seal(b)
	case r.immutable:
		b := append([]byte{}, magicImmutable...)
		b = binary.BigEndian.AppendUint32(b, r.mbox)
		b = binary.BigEndian.AppendUint64(b, r.num)
		return c.seal(b)
	}
	b := append([]byte{}, magicMsg...)
	b = binary.BigEndian.AppendUint32(b, r.mbox)
	b = binary.BigEndian.AppendUint64(b, r.num)
	b = binary.BigEndian.AppendUint32(b, r.gen)
	return c.seal(b)
}

func (c codec) parseRaw(raw []byte) (objRef, error) {
	if b, err := c.open(raw, msgIDLen, magicMsg); err == nil {
		return objRef{mbox: binary.BigEndian.Uint32(b[4:]), num: binary.BigEndian.Uint64(b[8:]), gen: binary.BigEndian.Uint32(b[16:])}, nil
	}
	if b, err := c.open(raw, immutableIDLen, magicImmutable); err == nil {
		return objRef{immutable: true, mbox: binary.BigEndian.Uint32(b[8:]), num: binary.BigEndian.Uint64(b[12:])}, nil
	}
	if b, err := c.open(raw, folderIDLen, magicFolder); err == nil {
		return objRef{folder: true, mbox: binary.BigEndian.Uint32(b[4:]), num: uint64(binary.BigEndian.Uint32(b[8:]))}, nil
	}
	return objRef{}, errBadID
}

// idFormat is an exchangeIdFormat of translateExchangeIds.
type idFormat uint8

const (
	fmtRest idFormat = iota
	fmtRestImmutable
	fmtEWS
	fmtEntry
	fmtImmutableEntry
)

var idFormatNames = map[string]idFormat{
	"restid":               fmtRest,
	"restimmutableentryid": fmtRestImmutable,
	"ewsid":                fmtEWS,
	"entryid":              fmtEntry,
	"immutableentryid":     fmtImmutableEntry,
}

// id renders r in the REST alphabet (what Graph hands out).
func (c codec) id(r objRef) string { return base64.URLEncoding.EncodeToString(c.raw(r)) }

// parseID opens an id in the REST alphabet.
func (c codec) parseID(s string) (objRef, error) {
	raw, err := base64.URLEncoding.DecodeString(s)
	if err != nil {
		return objRef{}, errBadID
	}
	return c.parseRaw(raw)
}

// format renders r in one of the translateExchangeIds formats. Folders have no
// immutable form: their ids never change.
func (c codec) format(r objRef, f idFormat) string {
	if f == fmtRestImmutable || f == fmtImmutableEntry {
		if !r.folder {
			r.immutable, r.gen = true, 0
		}
	} else if r.immutable {
		// An immutable id translated to a mutable format: the message's current
		// default id is what Exchange would give; the caller fixes gen.
		r.immutable = false
	}
	raw := c.raw(r)
	switch f {
	case fmtEWS:
		return base64.StdEncoding.EncodeToString(raw)
	case fmtEntry, fmtImmutableEntry:
		s := base64.URLEncoding.EncodeToString(raw)
		t := strings.TrimRight(s, "=")
		return t + strconv.Itoa(len(s)-len(t))
	}
	return base64.URLEncoding.EncodeToString(raw)
}

// parseFormat opens an id given in format f.
func (c codec) parseFormat(s string, f idFormat) (objRef, error) {
	var raw []byte
	var err error
	switch f {
	case fmtEWS:
		raw, err = base64.StdEncoding.DecodeString(s)
	case fmtEntry, fmtImmutableEntry:
		if s == "" {
			return objRef{}, errBadID
		}
		n := s[len(s)-1]
		if n < '0' || n > '2' {
			return objRef{}, errBadID
		}
		raw, err = base64.URLEncoding.DecodeString(s[:len(s)-1] + strings.Repeat("=", int(n-'0')))
	default:
		raw, err = base64.URLEncoding.DecodeString(s)
	}
	if err != nil {
		return objRef{}, errBadID
	}
	r, err := c.parseRaw(raw)
	if err != nil {
		return objRef{}, err
	}
	if r.immutable != (f == fmtRestImmutable || f == fmtImmutableEntry) && !r.folder {
		return objRef{}, errBadID
	}
	return r, nil
}

// changeKey renders a version the way Exchange change keys look ("CQAAABYAAAA…").
func changeKey(mbox uint32, version uint32) string {
	b := []byte{0x09, 0, 0, 0, 0x16, 0, 0, 0}
	b = binary.BigEndian.AppendUint32(b, mbox)
	b = binary.BigEndian.AppendUint32(b, version)
	return base64.StdEncoding.EncodeToString(b)
}

// newGUID returns a random GUID in its usual text form.
func newGUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatGUID(b)
}

func formatGUID(b []byte) string {
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, v := range b[:16] {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[v>>4], hex[v&0xf])
	}
	return string(out)
}

// isGUID tells whether s is a GUID in its usual text form.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// sealToken seals variable-length state (delta and skip tokens) into base64url
// without padding, behind a two-byte magic naming its kind, so that a skip token
// cannot pass as a delta token.
func (c codec) sealToken(kind byte, b []byte) string {
	raw := append([]byte{'T', kind}, b...)
	return base64.RawURLEncoding.EncodeToString(c.seal(raw))
}

// openToken checks and opens a token sealed by sealToken with the same kind.
func (c codec) openToken(kind byte, s string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) < 2+macLen {
		return nil, errBadID
	}
	b, err := c.open(raw, len(raw)-macLen, []byte{'T', kind})
	if err != nil {
		return nil, err
	}
	return b[2:], nil
}
