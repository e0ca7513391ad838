// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"time"
	"unicode/utf16"

	"golang.org/x/crypto/md4"
)

// Server side of NTLMv2 (MS-NLMP). The fake issues a CHALLENGE with a random server
// challenge and target information, and verifies the client's NTProofStr:
//
//	NT hash      = MD4(UTF-16LE(password))
//	NTLMv2 hash  = HMAC-MD5(NT hash, UTF-16LE(UPPER(user) + domain))
//	NTProofStr   = HMAC-MD5(NTLMv2 hash, server challenge || blob)
//
// where the NT response is NTProofStr followed by the blob. NTLMv1 responses (24
// bytes), anonymous logins, signing and sealing are not supported; no session key is
// derived, because nothing is signed.

const ntlmSignature = "NTLMSSP\x00"

// Negotiate flags (MS-NLMP 2.2.2.5).
const (
	flagUnicode          = 0x00000001
	flagRequestTarget    = 0x00000004
	flagSign             = 0x00000010
	flagNTLM             = 0x00000200
	flagAlwaysSign       = 0x00008000
	flagTargetTypeDomain = 0x00010000
	flagExtendedSession  = 0x00080000
	flagTargetInfo       = 0x00800000
	flagVersion          = 0x02000000
	flag128              = 0x20000000
	flag56               = 0x80000000
)

// Names the fake's "domain controller" reports in the challenge.
const (
	ntlmDomain      = "EWSFAKE"
	ntlmComputer    = "MBX01"
	ntlmDNSDomain   = "ewsfake.test"
	ntlmDNSComputer = "mbx01.ewsfake.test"
)

var (
	errNoChallenge     = errors.New("AUTHENTICATE without a preceding NEGOTIATE on this connection")
	errNTLMUnknownUser = errors.New("unknown user")
	errNTLMBadResponse = errors.New("NTLMv2 response does not match the password")
	errNTLMMalformed   = errors.New("malformed AUTHENTICATE message")
	errNTLMv1          = errors.New("NTLMv1 response (only NTLMv2 is accepted)")
)

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, v := range u {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return b
}

func fromUTF16le(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// newChallenge builds a CHALLENGE answering the client's NEGOTIATE and returns the
// server challenge with it. Flags the client offered and the fake can honour are
// echoed; key exchange and LM keys are never offered (go-ntlmssp refuses both).
func newChallenge(negotiate []byte) (challenge, msg []byte) {
	var clientFlags uint32
	if len(negotiate) >= 16 {
		clientFlags = le32(negotiate[12:])
	}
	flags := clientFlags&(flagUnicode|flagSign|flagAlwaysSign|flagExtendedSession|flag128|flag56|flagVersion) |
		flagUnicode | flagRequestTarget | flagNTLM | flagTargetTypeDomain | flagTargetInfo | flagVersion
	challenge = make([]byte, 8)
	_, _ = rand.Read(challenge)

	target := utf16le(ntlmDomain)
	var info []byte
	av := func(id uint16, v []byte) {
		info = binary.LittleEndian.AppendUint16(info, id)
		info = binary.LittleEndian.AppendUint16(info, uint16(len(v)))
		info = append(info, v...)
	}
	av(2, utf16le(ntlmDomain))      // MsvAvNbDomainName
	av(1, utf16le(ntlmComputer))    // MsvAvNbComputerName
	av(4, utf16le(ntlmDNSDomain))   // MsvAvDnsDomainName
	av(3, utf16le(ntlmDNSComputer)) // MsvAvDnsComputerName
	av(5, utf16le(ntlmDNSDomain))   // MsvAvDnsTreeName
	ts := make([]byte, 8)
	binary.LittleEndian.PutUint64(ts, fileTime(time.Now()))
	av(7, ts)  // MsvAvTimestamp
	av(0, nil) // MsvAvEOL

	const header = 56 // fixed fields including the 8-byte version
	msg = make([]byte, header, header+len(target)+len(info))
	copy(msg, ntlmSignature)
	binary.LittleEndian.PutUint32(msg[8:], 2)
	putField(msg[12:], len(target), header)
	binary.LittleEndian.PutUint32(msg[20:], flags)
	copy(msg[24:], challenge)
	putField(msg[40:], len(info), header+len(target))
	// Version: Windows Server 2019 (10.0.17763), NTLM revision 15.
	copy(msg[48:], []byte{10, 0, 0x63, 0x45, 0, 0, 0, 15})
	msg = append(msg, target...)
	msg = append(msg, info...)
	return challenge, msg
}

func putField(b []byte, n, off int) {
	binary.LittleEndian.PutUint16(b, uint16(n))
	binary.LittleEndian.PutUint16(b[2:], uint16(n))
	binary.LittleEndian.PutUint32(b[4:], uint32(off))
}

// fileTime converts to Windows FILETIME (100 ns since 1601).
func fileTime(t time.Time) uint64 {
	return uint64(t.UnixNano()/100) + 116444736000000000
}

type authenticateMsg struct {
	user, domain, workstation string
	ntResponse                []byte
}

func parseAuthenticate(b []byte) (authenticateMsg, error) {
	var am authenticateMsg
	if len(b) < 64 {
		return am, errNTLMMalformed
	}
	field := func(off int) ([]byte, error) {
		n, o := int(le16(b[off:])), int(le32(b[off+4:]))
		if o < 0 || n < 0 || o+n > len(b) {
			return nil, errNTLMMalformed
		}
		return b[o : o+n], nil
	}
	flags := le32(b[60:])
	str := func(off int) (string, error) {
		v, err := field(off)
		if err != nil {
			return "", err
		}
		if flags&flagUnicode != 0 {
			return fromUTF16le(v), nil
		}
		return string(v), nil
	}
	var err error
	if am.ntResponse, err = field(20); err != nil {
		return am, err
	}
	if am.domain, err = str(28); err != nil {
		return am, err
	}
	if am.user, err = str(36); err != nil {
		return am, err
	}
	if am.workstation, err = str(44); err != nil {
		return am, err
	}
	if am.user == "" {
		return am, errors.New("anonymous NTLM login")
	}
	if len(am.ntResponse) <= 24 {
		return am, errNTLMv1
	}
	return am, nil
}

func verifyNTLMv2(password string, am authenticateMsg, challenge []byte) bool {
	h := md4.New()
	h.Write(utf16le(password))
	ntHash := h.Sum(nil)
	m := hmac.New(md5.New, ntHash)
	m.Write(utf16le(strings.ToUpper(am.user) + am.domain))
	v2 := m.Sum(nil)
	proof, blob := am.ntResponse[:16], am.ntResponse[16:]
	m = hmac.New(md5.New, v2)
	m.Write(challenge)
	m.Write(blob)
	return hmac.Equal(m.Sum(nil), proof)
}
