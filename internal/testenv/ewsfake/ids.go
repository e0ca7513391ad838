// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// Identifiers handed to clients are opaque base64 blobs, as in Exchange, but they
// carry what the fake needs to find the object again plus a short MAC, so that a
// garbled or invented id is told apart from one that merely no longer exists
// (ErrorInvalidIdMalformed vs ErrorItemNotFound, ErrorInvalidSyncStateData).
//
// Layouts (big endian), before the 6-byte MAC:
//
//	item id:    00 03 24 'I' mailbox:u32 item:u64          -> "AAMk…", like EWS item ids
//	folder id:  01 03 24 'F' mailbox:u32 folder:u32        -> "AQMk…", like EWS folder ids
//	sync state: 'S' 1 mailbox:u32 folder:u32 epoch:u32 phase:u8 base:u64
//	            cursorTime:i64 cursorItem:u64 seq:u64
//	watermark:  'W' 1 mailbox:u32 seq:u64
//
// Subscription ids use the layout Exchange 2013+ uses (length-prefixed backend FQDN,
// a GUID and a timestamp) and are looked up in a table instead.

const macLen = 6

var errBadID = errors.New("ewsfake: malformed id")

type codec struct{ key []byte }

func newCodec() codec {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return codec{key: k}
}

func (c codec) seal(b []byte) string {
	m := hmac.New(sha256.New, c.key)
	m.Write(b)
	return base64.StdEncoding.EncodeToString(m.Sum(b)[:len(b)+macLen])
}

func (c codec) open(s string, n int, magic ...byte) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != n+macLen {
		return nil, errBadID
	}
	for i, m := range magic {
		if raw[i] != m {
			return nil, errBadID
		}
	}
	m := hmac.New(sha256.New, c.key)
	m.Write(raw[:n])
	if !hmac.Equal(m.Sum(nil)[:macLen], raw[n:]) {
		return nil, errBadID
	}
	return raw[:n], nil
}

func (c codec) itemID(mbox uint32, item uint64) string {
	b := make([]byte, 16)
	copy(b, []byte{0x00, 0x03, 0x24, 'I'})
	binary.BigEndian.PutUint32(b[4:], mbox)
	binary.BigEndian.PutUint64(b[8:], item)
	return c.seal(b)
}

func (c codec) parseItemID(s string) (mbox uint32, item uint64, err error) {
	b, err := c.open(s, 16, 0x00, 0x03, 0x24, 'I')
	if err != nil {
		return 0, 0, err
	}
	return binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint64(b[8:]), nil
}

func (c codec) folderID(mbox, folder uint32) string {
	b := make([]byte, 12)
	copy(b, []byte{0x01, 0x03, 0x24, 'F'})
	binary.BigEndian.PutUint32(b[4:], mbox)
	binary.BigEndian.PutUint32(b[8:], folder)
	return c.seal(b)
}

func (c codec) parseFolderID(s string) (mbox, folder uint32, err error) {
	b, err := c.open(s, 12, 0x01, 0x03, 0x24, 'F')
	if err != nil {
		return 0, 0, err
	}
	return binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint32(b[8:]), nil
}

// changeKey renders a version number the way Exchange change keys look
// ("CQAAABYAAAA…"): clients must treat them as opaque and only echo them back.
func changeKey(version uint32) string {
	b := make([]byte, 12)
	copy(b, []byte{0x09, 0, 0, 0, 0x16, 0, 0, 0})
	binary.BigEndian.PutUint32(b[8:], version)
	return base64.StdEncoding.EncodeToString(b)
}

// syncState is the position of one client in one folder's change log.
type syncState struct {
	mbox, folder, epoch uint32
	// initial is set while the first full enumeration is being paged through: base is
	// the log position it snapshots, cursor the last item handed out (newest first).
	initial    bool
	base       uint64
	cursorTime int64
	cursorItem uint64
	seq        uint64 // log position consumed (after the initial phase)
}

const syncStateLen = 2 + 4 + 4 + 4 + 1 + 8 + 8 + 8 + 8

func (c codec) syncState(st syncState) string {
	b := make([]byte, syncStateLen)
	b[0], b[1] = 'S', 1
	binary.BigEndian.PutUint32(b[2:], st.mbox)
	binary.BigEndian.PutUint32(b[6:], st.folder)
	binary.BigEndian.PutUint32(b[10:], st.epoch)
	if st.initial {
		b[14] = 1
	}
	binary.BigEndian.PutUint64(b[15:], st.base)
	binary.BigEndian.PutUint64(b[23:], uint64(st.cursorTime))
	binary.BigEndian.PutUint64(b[31:], st.cursorItem)
	binary.BigEndian.PutUint64(b[39:], st.seq)
	return c.seal(b)
}

func (c codec) parseSyncState(s string) (syncState, error) {
	b, err := c.open(s, syncStateLen, 'S', 1)
	if err != nil {
		return syncState{}, err
	}
	return syncState{
		mbox:       binary.BigEndian.Uint32(b[2:]),
		folder:     binary.BigEndian.Uint32(b[6:]),
		epoch:      binary.BigEndian.Uint32(b[10:]),
		initial:    b[14] == 1,
		base:       binary.BigEndian.Uint64(b[15:]),
		cursorTime: int64(binary.BigEndian.Uint64(b[23:])),
		cursorItem: binary.BigEndian.Uint64(b[31:]),
		seq:        binary.BigEndian.Uint64(b[39:]),
	}, nil
}

func (c codec) watermark(mbox uint32, seq uint64) string {
	b := make([]byte, 14)
	b[0], b[1] = 'W', 1
	binary.BigEndian.PutUint32(b[2:], mbox)
	binary.BigEndian.PutUint64(b[6:], seq)
	return c.seal(b)
}

func (c codec) parseWatermark(s string) (mbox uint32, seq uint64, err error) {
	b, err := c.open(s, 14, 'W', 1)
	if err != nil {
		return 0, 0, err
	}
	return binary.BigEndian.Uint32(b[2:]), binary.BigEndian.Uint64(b[6:]), nil
}

// subscriptionID builds an id in the format Exchange 2013+ uses: the backend FQDN
// (length-prefixed, little endian), the constant 16, a random GUID and a timestamp.
// A client that decodes it (some do, to learn the backend) sees a realistic value.
func subscriptionID(fqdn string, now time.Time) string {
	b := make([]byte, 0, 2+len(fqdn)+4+16+8)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(fqdn)))
	b = append(b, fqdn...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	guid := make([]byte, 16)
	_, _ = rand.Read(guid)
	b = append(b, guid...)
	b = binary.LittleEndian.AppendUint64(b, uint64(now.UnixNano()/100))
	return base64.StdEncoding.EncodeToString(b)
}

// newGUID returns a random GUID in its usual text form.
func newGUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, v := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[v>>4], hex[v&0xf])
	}
	return string(out)
}
