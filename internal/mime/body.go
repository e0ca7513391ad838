// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Body selection notes.
//
// Libraries that pick the bodies for you concatenate every text/plain part of
// a multipart/mixed message, including the plain alternative of a nested
// multipart, and file parts as attachments, inlines or "other parts" by rules
// that drop some of them. We walk the part tree (tree.go) ourselves instead:
//
//  1. Leaves are visited in document order (pre-order).
//  2. A leaf is a body candidate when it is text/plain or text/html (or has no
//     Content-Type, RFC 2045 §5.2), is not Content-Disposition: attachment and
//     has no file name (the root is exempt from the file-name rule).
//  3. The first candidate of each type is that body. A later candidate of the
//     same type is appended when it is a sibling of the first under a
//     non-alternative multipart: Apple Mail splits a body around inline images
//     that way (empty pieces add nothing). Any other candidate is an
//     attachment.
//  4. Every other leaf is an attachment, in document order; message/rfc822
//     stays whole, and its body is not merged into ours.

// maxNameRunes caps synthesized and sanitized file names: file systems allow
// 255 bytes and Cyrillic takes two bytes per rune.
const maxNameRunes = 120

// collector holds the leaves and problems of a part tree.
type collector struct {
	root     *part
	leaves   []*part
	warnings []string
}

// collect lists the warnings of t: those of each part in document order,
// then those about the whole message.
func collect(t *tree) *collector {
	c := &collector{root: t.root, leaves: t.leaves}
	for _, p := range t.parts {
		for _, w := range p.warnings {
			c.warnings = append(c.warnings, "part "+p.id()+": "+w)
		}
	}
	c.warnings = append(c.warnings, t.warnings...)
	return c
}

// fallbackCharset returns the charset to decode raw 8-bit header bytes with:
// the first legacy charset a text part declares, else the one detected in the
// first text part that is not UTF-8. A body is a far larger sample than a
// subject line, and the same mailer wrote both.
func (c *collector) fallbackCharset() string {
	for _, p := range c.leaves {
		if !isTextType(p.contentType) {
			continue
		}
		if cs := p.params["charset"]; !isUTF8Family(cs) {
			if enc, _ := lookupCharset(cs); enc != nil {
				return cs
			}
		}
	}
	for _, p := range c.leaves {
		if isTextType(p.contentType) && !utf8.Valid(p.content) {
			return detectCharset(p.content, p.contentType == "text/html")
		}
	}
	return ""
}

// assembler fills the body and attachments of a message from collected parts.
type assembler struct {
	msg      *mail.Message
	opts     Options
	dec      *headerDecoder
	warnings []string
	cids     map[string]bool // cid: references in the HTML body, lower-case
}

// bodies picks the text and HTML bodies (see the notes above) and returns the
// leaves that remain attachments.
func (a *assembler) bodies(c *collector) []*part {
	var first [2]*part // text, HTML
	var parts [2][]string
	var rest []*part
	for _, p := range c.leaves {
		kind := bodyKind(p, p == c.root)
		if kind < 0 {
			rest = append(rest, p)
			continue
		}
		switch f := first[kind]; {
		case f == nil:
			first[kind] = p
		case p.parent != nil && p.parent == f.parent && p.parent.contentType != "multipart/alternative":
			// A continuation of the first: appended below.
		default:
			rest = append(rest, p)
			continue
		}
		if p.unparsed != "" && p.unparsed != unparsedNoPart { // that one is reported already
			a.warn(p, p.unparsed+"; kept as text")
		}
		s, w := decodeText(p.content, p.params["charset"], kind == 1)
		if w != "" {
			a.warn(p, w)
		}
		if s = strings.TrimPrefix(s, "\uFEFF"); s != "" {
			parts[kind] = append(parts[kind], s) // no separator for empty pieces
		}
	}
	a.msg.Text = strings.Join(parts[0], "\n")
	a.msg.HTML = strings.Join(parts[1], "\n")
	return rest
}

// bodyKind returns 0 for a text/plain body candidate, 1 for text/html and -1
// for anything that is not a body.
func bodyKind(p *part, isRoot bool) int {
	if p.disposition == "attachment" || p.fileName != "" && !isRoot {
		return -1
	}
	switch {
	case p.contentType == "text/html":
		return 1
	case p.contentType == "text/plain", p.contentType == "":
		return 0
	case strings.HasPrefix(p.contentType, "multipart/"):
		return 0 // no boundary: the best we can do is show it
	}
	return -1
}

// attachments appends every remaining leaf as an attachment.
func (a *assembler) attachments(leaves []*part) {
	for _, p := range leaves {
		cid := contentID(p)
		if len(p.content) == 0 && p.fileName == "" && cid == "" {
			continue // an empty filler part, such as a blank alternative
		}
		ct := p.contentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		att := mail.Attachment{
			Name:        a.attachmentName(p, ct, len(a.msg.Attachments)+1),
			ContentType: ct,
			ContentID:   cid,
			Data:        p.content,
		}
		// Inline means shown inside the HTML body, which is all the client
		// does with inline parts: a part whose Content-ID the HTML never
		// names is an attachment whatever its disposition says, or it would
		// be shown nowhere.
		if cid != "" {
			att.Inline = a.referenced(cid)
		}
		if limit := a.opts.MaxAttachmentBytes; limit > 0 && int64(len(p.content)) > limit {
			att.Data = nil
			a.warnings = append(a.warnings,
				fmt.Sprintf("attachment %q of %d bytes exceeds limit", att.Name, len(p.content)))
		}
		a.msg.Attachments = append(a.msg.Attachments, att)
	}
}

// referenced reports whether the HTML body refers to cid (RFC 2392).
func (a *assembler) referenced(cid string) bool {
	if a.cids == nil {
		a.cids = cidRefs(a.msg.HTML)
	}
	return a.cids[strings.ToLower(cid)]
}

// warn records a problem with part p.
func (a *assembler) warn(p *part, msg string) {
	a.warnings = append(a.warnings, "part "+p.id()+": "+msg)
}

// contentID returns the Content-ID without angle brackets and otherwise as
// sent: URL-unescaping it, as some libraries do, turns a "+" into a space.
func contentID(p *part) string {
	v := strings.TrimSpace(p.rawID)
	v = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">"))
	return validUTF8([]byte(v))
}

// isTextType reports whether a part's content is text for charset purposes.
func isTextType(ct string) bool {
	return ct == "" || strings.HasPrefix(ct, "text/")
}
