// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// Structure notes.
//
// go-message reads the multipart structure (textproto.MultipartReader) and
// undoes transfer encodings (transfer.go); media types, file names and
// charsets stay ours, because go-message's strict media type parser loses
// parts that mail clients show. The tree is read in one streaming pass:
//
//   - The top-level header comes from scanHeader, which tolerates what
//     go-message's textproto.ReadHeader refuses (lines without colon, 8-bit
//     field names); part headers come from go-message.
//   - A nested multipart reads straight from its parent's part, so no part
//     is copied before it is decoded. Each leaf is read whole (its raw bytes
//     are needed again when lenient decoding has to take over) into one
//     scratch buffer shared by all leaves.
//   - At most maxMultiparts multiparts are opened per message, and at most
//     maxParts parts are read. Every nesting level scans the bytes below it
//     once more, so the cap bounds the work of hostile nesting to
//     maxMultiparts passes over the input; deeper multiparts are leaves.
//   - go-message gives up on a multipart at the first part header it cannot
//     read, and expects every delimiter line in the line ending style of the
//     first. The parts before a failure are kept, and the message is read
//     once more if repairPartHeaders finds something to repair.
//   - A multipart in which go-message finds no part is kept as a leaf with
//     its raw body (at the top, parse keeps the body as text).
//   - Part ids number the tree as enmime did, so that warnings keep their
//     form: the root is "0", its parts "1", "2", their parts "1.1", and a
//     multipart below the root is "1.0".

const (
	// maxMultiparts bounds the multiparts opened per message; see the notes
	// above. Real mail nests a handful of levels.
	maxMultiparts = 16
	// maxParts bounds the parts read per message: each costs a few hundred
	// bytes of bookkeeping, and a hostile message packs a part into every
	// seven bytes.
	maxParts = 10000
)

// errNoPart reports a multipart body without any part.
var errNoPart = errors.New("no part found")

// part is one node of the MIME tree.
type part struct {
	parent *part
	path   string // position below the root: "", "1", "1.2"

	contentType string            // lower-case, without parameters; "" if a part has none
	params      map[string]string // Content-Type parameters
	disposition string            // lower-case Content-Disposition type
	fileName    string            // as sent: not yet decoded
	encoding    string            // Content-Transfer-Encoding
	rawType     string            // header values as sent, for names.go
	rawDisp     string
	rawID       string

	multipart    bool   // read as a multipart: its parts are the children
	unparsed     string // why a multipart/* part is a leaf; "" otherwise
	unterminated bool   // a multipart whose closing delimiter is missing
	content      []byte // a leaf's decoded content
	warnings     []string
}

// id returns the part's position as enmime numbered it.
func (p *part) id() string {
	switch {
	case p.parent == nil:
		return "0"
	case p.multipart:
		return p.path + ".0"
	}
	return p.path
}

func (p *part) warn(msg string) {
	p.warnings = append(p.warnings, msg)
}

// mimeFields are the header fields that shape a part.
type mimeFields struct {
	contentType, disposition, contentID, encoding string
}

func partFields(h *textproto.Header) mimeFields {
	return mimeFields{
		contentType: h.Get("Content-Type"),
		disposition: h.Get("Content-Disposition"),
		contentID:   h.Get("Content-Id"),
		encoding:    h.Get("Content-Transfer-Encoding"),
	}
}

// tree is the MIME structure of one message. It is built on one goroutine.
type tree struct {
	root       *part
	parts      []*part  // in document order, a multipart before its parts
	leaves     []*part  // in document order
	warnings   []string // about the message as a whole
	multiparts int      // multiparts opened
	capped     bool     // a multipart was left unparsed for maxMultiparts
	full       bool     // parts were dropped for maxParts
	boundaries []string // of the multiparts opened, for repairPartHeaders
	broken     bool     // go-message gave up on some multipart
	scratch    []byte   // raw bytes of the leaf being read
	bodySize   int      // bounds the scratch buffer
}

// readStructure reads the MIME tree of a message whose header is h and whose
// body starts at bodyStart. A non-nil error means the structure is unusable
// and the body is best shown as text; the tree is then still returned when
// there is one, for its charset hints.
func readStructure(h header, bodyStart int, raw []byte) (*tree, error) {
	if h == nil && bodyStart == 0 {
		return nil, errors.New("no header fields")
	}
	body := raw[bodyStart:]
	t, err := readTree(h, body)
	if !t.broken && !mixedDelimiters(body, t.boundaries) {
		return t, err
	}
	fixed, n := repairPartHeaders(body, t.boundaries)
	if n == 0 {
		return t, err
	}
	t, err = readTree(h, fixed)
	t.warnings = append(t.warnings, fmt.Sprintf("multipart structure repaired (%d lines)", n))
	return t, err
}

// readTree reads the tree once.
func readTree(h header, body []byte) (*tree, error) {
	// The scratch buffer holds one leaf at a time, and no leaf is longer than
	// the body: sized once, it never grows (doubling from small cost a large
	// message twice its size in garbage).
	t := &tree{scratch: make([]byte, 0, len(body)), bodySize: len(body)}
	t.root = t.newPart(nil, "", mimeFields{
		contentType: h.get("Content-Type"),
		disposition: h.get("Content-Disposition"),
		contentID:   h.get("Content-ID"),
		encoding:    h.get("Content-Transfer-Encoding"),
	})
	if t.root.rawType == "" {
		t.root.contentType = "text/plain" // RFC 2045 §5.2
	}
	if !t.open(t.root) {
		t.leaf(t.root, body)
		return t, nil
	}
	err := t.readMultipart(t.root, bytes.NewReader(body), nil)
	if t.capped {
		t.warnings = append(t.warnings, fmt.Sprintf("more than %d multiparts; the rest kept unparsed", maxMultiparts))
	}
	if err != nil {
		return t, fmt.Errorf("%s %q", unparsedNoPart, t.root.params["boundary"])
	}
	return t, nil
}

// newPart records a part whose header has been read.
func (t *tree) newPart(parent *part, path string, f mimeFields) *part {
	p := &part{parent: parent, path: path, encoding: f.encoding,
		rawType: f.contentType, rawDisp: f.disposition, rawID: f.contentID}
	p.contentType, p.params = parseMediaType(f.contentType)
	if !strings.Contains(p.contentType, "/") {
		p.contentType = "" // invalid: the default applies (RFC 2045 §5.2)
	}
	if p.contentType == "" && p.params["boundary"] != "" {
		p.contentType = "multipart/mixed" // "Content-Type: boundary=…"; RFC 2046 §5.1.3
	}
	disposition, dparams := parseMediaType(f.disposition)
	p.disposition = disposition
	p.fileName = dparams["filename"]
	if p.fileName == "" {
		p.fileName = p.params["name"]
	}
	if p.fileName == "" {
		p.fileName = p.params["file"]
	}
	if p.fileName == "" {
		// mime.ParseMediaType drops RFC 2231 values in charsets other than
		// UTF-8; names.go decodes them.
		p.fileName = rfc2231Param(p.rawDisp, "filename")
	}
	if p.fileName == "" {
		p.fileName = rfc2231Param(p.rawType, "name")
	}
	t.parts = append(t.parts, p)
	return p
}

// Reasons for a multipart/* leaf; bodies() reports them.
const (
	unparsedNoBoundary = "multipart without boundary"
	unparsedDeep       = "multipart nested too deeply"
	unparsedNoPart     = "no part found for boundary"
)

// open reports whether p is a multipart to read part by part, counting it
// against maxMultiparts; otherwise p is a leaf.
func (t *tree) open(p *part) bool {
	if !strings.HasPrefix(p.contentType, "multipart/") {
		return false
	}
	switch {
	case p.params["boundary"] == "":
		p.unparsed = unparsedNoBoundary
		return false
	case t.multiparts >= maxMultiparts:
		p.unparsed = unparsedDeep
		t.capped = true
		return false
	}
	t.multiparts++
	t.boundaries = append(t.boundaries, p.params["boundary"])
	p.multipart = true
	return true
}

// readMultipart reads the parts of multipart p from r. It returns errNoPart
// when r holds no part; rec, when not nil, records r until the first part is
// found, to keep such a body as a leaf.
func (t *tree) readMultipart(p *part, r io.Reader, rec *recorder) error {
	mr := textproto.NewMultipartReader(r, p.params["boundary"])
	for n := 1; ; n++ {
		tp, err := mr.NextPart()
		switch {
		case err == io.EOF && n > 1:
			return nil
		case err != nil && n == 1:
			// Only a preamble, or only a closing delimiter, or an
			// unreadable first part header.
			t.broken = t.broken || err != io.EOF
			return errNoPart
		case errors.Is(err, io.ErrUnexpectedEOF):
			t.unterminated(p) // the enclosing part ended in a part header
			return nil
		case err != nil:
			if !p.unterminated {
				// The part before ended at a delimiter line, so this is
				// go-message refusing the part header or the line after.
				t.broken = true
				p.warn(fmt.Sprintf("multipart read stopped: %s", collapseSpace(err.Error())))
			}
			return nil
		case len(t.parts) >= maxParts:
			if !t.full {
				t.full = true
				t.warnings = append(t.warnings, fmt.Sprintf("more than %d parts; the rest dropped", maxParts))
			}
			return nil
		}
		if rec != nil {
			rec.stop()
			rec = nil
		}
		path := strconv.Itoa(n)
		if p.path != "" {
			path = p.path + "." + path
		}
		child := t.newPart(p, path, partFields(&tp.Header))
		src := &errReader{r: tp}
		t.readPart(child, src)
		if errors.Is(src.err, io.ErrUnexpectedEOF) {
			t.unterminated(p)
		}
	}
}

// unterminated records that multipart p lacks its closing delimiter.
func (t *tree) unterminated(p *part) {
	if p.unterminated {
		return
	}
	p.unterminated = true
	t.broken = true // perhaps a delimiter in the other line ending style
	// The wording is enmime's, which older warnings carry.
	p.warn(fmt.Sprintf("[W] Missing Boundary: Boundary %q was not closed correctly", p.params["boundary"]))
}

// readPart reads one part of a multipart, and any parts nested in it.
func (t *tree) readPart(p *part, src *errReader) {
	if !t.open(p) {
		t.leaf(p, t.readRaw(src))
		return
	}
	rec := &recorder{r: src}
	if err := t.readMultipart(p, rec, rec); err != nil {
		p.multipart = false
		p.unparsed = unparsedNoPart
		p.warn(fmt.Sprintf("%s %q; kept unparsed", unparsedNoPart, p.params["boundary"]))
		t.leaves = append(t.leaves, p)
		p.content = rec.buf
	}
	// Drain what follows the closing delimiter, so that src sees whether the
	// enclosing part was terminated.
	_, _ = io.Copy(io.Discard, src)
}

// leaf records a leaf and decodes its content from raw, which it does not
// retain.
func (t *tree) leaf(p *part, raw []byte) {
	t.leaves = append(t.leaves, p)
	if p.unparsed != "" {
		// go-message does not decode multiparts either (RFC 2045 §6.4).
		p.content = bytes.Clone(raw)
		return
	}
	content, warning := transferDecode(p.encoding, raw)
	p.content = content
	if warning != "" {
		p.warn(warning)
	}
}

// readRaw reads r into the scratch buffer, which stays valid until the next
// call.
func (t *tree) readRaw(r io.Reader) []byte {
	buf := t.scratch[:0]
	for {
		if len(buf) == cap(buf) {
			// Double, but no leaf is longer than the body.
			buf = slices.Grow(buf, max(min(cap(buf), t.bodySize-cap(buf)), 4<<10))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			break
		}
	}
	t.scratch = buf
	return buf
}

// errReader remembers the error that ended a read other than io.EOF: a part
// without closing delimiter ends in io.ErrUnexpectedEOF.
type errReader struct {
	r   io.Reader
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// recorder keeps a copy of what is read through it until stop is called.
type recorder struct {
	r       io.Reader
	buf     []byte
	stopped bool
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if !r.stopped {
		r.buf = append(r.buf, p[:n]...)
	}
	return n, err
}

func (r *recorder) stop() {
	r.stopped, r.buf = true, nil
}

// repairPartHeaders rewrites a multipart body so that go-message can read
// it. A header block (what follows a delimiter line of one of boundaries, up
// to an empty line) is read the way scanHeader reads the top-level header: a
// line without colon after a field becomes a continuation, a line with a
// colon but no valid field name is dropped, and a block that does not start
// with a field has no header at all (its empty line is missing). Delimiter
// lines take the line ending of the first one, which go-message expects of
// all. Nothing else changes. It returns the new body and the number of lines
// changed.
func repairPartHeaders(body []byte, boundaries []string) ([]byte, int) {
	out := make([]byte, 0, len(body)+64)
	crlf := []byte("\r\n")
	var style []byte // line ending of the first delimiter line
	inHeader, inField := false, false
	changed := 0
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line = body[:i+1]
		}
		body = body[len(line):]
		text := bytes.TrimRight(line, "\r\n")
		if delim, final := delimiterLine(text, boundaries); delim || final {
			out, changed = appendDelimiter(out, line, text, &style, inHeader, changed)
			inHeader, inField = delim, false
			continue
		}
		switch {
		case !inHeader:
		case len(text) == 0:
			inHeader = false
		case !inField && !validFieldName(text):
			out = append(out, crlf...) // the body starts here
			inHeader = false
			changed++
		case text[0] == ' ' || text[0] == '\t':
		case validFieldName(text):
			inField = true
		case bytes.IndexByte(text, ':') < 0:
			out = append(out, ' ')
			changed++
		default:
			changed++
			continue
		}
		out = append(out, line...)
	}
	return out, changed
}

// appendDelimiter appends a delimiter line for repairPartHeaders: in the
// line ending style of the first one, after the line break before it in the
// same style (go-message in CRLF mode looks for "\r\n--boundary"), and after
// an empty line if it interrupts a header block.
func appendDelimiter(out, line, text []byte, style *[]byte, inHeader bool, changed int) ([]byte, int) {
	ending := line[len(text):]
	if len(ending) > 0 {
		want := []byte("\n")
		if len(ending) > 1 {
			want = []byte("\r\n")
		}
		if *style == nil {
			*style = want
		}
		if !bytes.Equal(ending, *style) {
			ending = *style
			changed++
		}
	}
	if n := len(out); len(*style) == 2 && n > 0 && out[n-1] == '\n' && (n == 1 || out[n-2] != '\r') {
		out = append(out[:n-1], '\r', '\n')
		changed++
	}
	if inHeader {
		out = append(out, "\r\n"...) // a part without header or body
		changed++
	}
	out = append(out, text...)
	return append(out, ending...), changed
}

// mixedDelimiters reports whether the delimiter lines of a boundary follow
// line breaks of both styles. go-message reads only the style of the first
// delimiter line, and in CRLF mode misses the others without an error.
func mixedDelimiters(body []byte, boundaries []string) bool {
	for _, b := range boundaries {
		lf := bytes.Count(body, []byte("\n--"+b))
		crlf := bytes.Count(body, []byte("\r\n--"+b))
		if crlf > 0 && crlf < lf {
			return true
		}
	}
	return false
}

// delimiterLine reports whether line (without line break) is a delimiter
// line or a closing delimiter line of one of boundaries (RFC 2046 §5.1.1).
func delimiterLine(line []byte, boundaries []string) (delim, final bool) {
	if !bytes.HasPrefix(line, []byte("--")) {
		return false, false
	}
	for _, b := range boundaries {
		rest, ok := bytes.CutPrefix(line[2:], []byte(b))
		if !ok {
			continue
		}
		if r, ok := bytes.CutPrefix(rest, []byte("--")); ok && len(bytes.Trim(r, " \t")) == 0 {
			return false, true
		}
		if len(bytes.Trim(rest, " \t")) == 0 {
			return true, false
		}
	}
	return false, false
}
