// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message"
)

// Transfer encoding notes.
//
// go-message decodes base64 and quoted-printable with the standard library,
// which stops at the first byte it does not accept. Mailers send worse: line
// breaks in the middle of base64 quanta, junk characters, padded chunks glued
// together, raw control characters and unescaped "=" in quoted-printable,
// lines longer than the decoder's 4 KiB line buffer. When strict decoding
// fails, the raw bytes are cleaned so that the standard decoders accept them,
// and decoded again; the part then carries a warning.

// maxQPLine is where repairQP breaks long lines: the RFC 5322 line limit,
// well below the 4 KiB line buffer of mime/quotedprintable.
const maxQPLine = 998

// transferDecode undoes the Content-Transfer-Encoding of a leaf's raw bytes.
// The result never aliases raw. The warning is "" unless the encoding was
// unknown (the content is then kept as is) or damaged.
func transferDecode(encoding string, raw []byte) ([]byte, string) {
	encoding = strings.ToLower(strings.Trim(encoding, "\"' \t;"))
	content, err := goMessageDecode(encoding, raw)
	switch {
	case err == nil:
		return content, ""
	case message.IsUnknownEncoding(err):
		return bytes.Clone(raw), fmt.Sprintf("unknown Content-Transfer-Encoding %q; content kept encoded", encoding)
	case encoding == "base64":
		return lenientBase64(raw), fmt.Sprintf("malformed base64 (%v); invalid characters skipped", err)
	case encoding == "quoted-printable":
		repaired, err2 := goMessageDecode(encoding, repairQP(raw))
		if err2 != nil {
			return repaired, fmt.Sprintf("malformed quoted-printable (%v); decoded up to %v", err, err2)
		}
		return repaired, fmt.Sprintf("malformed quoted-printable (%v); repaired", err)
	}
	return content, fmt.Sprintf("content cut short: %v", err)
}

// goMessageDecode decodes raw with go-message's transfer decoding. On a
// decoding error it returns what was decoded before it.
func goMessageDecode(encoding string, raw []byte) ([]byte, error) {
	var h message.Header
	h.Set("Content-Transfer-Encoding", encoding)
	// Without Content-Type the entity is text/plain without charset, so
	// go-message leaves the charset alone (charset.go handles it).
	e, err := message.New(h, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	size := len(raw)
	if encoding == "base64" {
		size = base64.RawStdEncoding.DecodedLen(len(raw))
	}
	return readAll(e.Body, size)
}

// readAll is io.ReadAll for content of at most size bytes.
func readAll(r io.Reader, size int) ([]byte, error) {
	b := make([]byte, 0, size+1) // +1: the read that returns io.EOF
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// lenientBase64 decodes damaged base64 with encoding/base64 after removing
// everything outside the alphabet. Padding ends a chunk: some encoders glue
// padded chunks together. A chunk's lone last character, which carries no
// whole byte, is dropped.
func lenientBase64(raw []byte) []byte {
	out := make([]byte, 0, base64.RawStdEncoding.DecodedLen(len(raw)))
	chunk := make([]byte, 0, len(raw))
	flush := func() {
		if len(chunk)%4 == 1 {
			chunk = chunk[:len(chunk)-1]
		}
		out, _ = base64.RawStdEncoding.AppendDecode(out, chunk) // cannot fail on the alphabet
		chunk = chunk[:0]
	}
	for _, c := range raw {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
			chunk = append(chunk, c)
		case c == '=' && len(chunk)%4 >= 2:
			flush()
		}
	}
	flush()
	return out
}

// repairQP rewrites quoted-printable so that mime/quotedprintable accepts
// it: control characters and an "=" that starts neither an escape nor a soft
// line break are escaped, a soft line break at the very end is dropped, and
// lines are broken with soft line breaks before maxQPLine.
func repairQP(raw []byte) []byte {
	const hexDigits = "0123456789ABCDEF"
	out := make([]byte, 0, len(raw)+len(raw)/32+16)
	lineLen := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		var token []byte
		switch {
		case c == '\n':
			out = append(out, c)
			lineLen = 0
			continue
		case c == '\r':
			out = append(out, c) // part of the line break, or passed through
			continue
		case c == '=' && i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]):
			token = raw[i : i+3]
			i += 2
		case c == '=':
			rest := bytes.TrimLeft(raw[i+1:], " \t")
			switch {
			case len(rest) == 0:
				continue // a soft line break at the end
			case rest[0] == '\n' || bytes.HasPrefix(rest, []byte("\r\n")):
				token = raw[i : len(raw)-len(rest)] // a soft line break
				i += len(token) - 1
			default:
				token = []byte("=3D")
			}
		case c < ' ' && c != '\t' || c == 0x7f:
			token = []byte{'=', hexDigits[c>>4], hexDigits[c&0xf]}
		default:
			token = raw[i : i+1]
		}
		if lineLen+len(token) > maxQPLine {
			out = append(out, "=\r\n"...)
			lineLen = 0
		}
		out = append(out, token...)
		lineLen += len(token)
	}
	return out
}
