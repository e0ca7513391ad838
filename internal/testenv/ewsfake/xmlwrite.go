// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"bytes"
	"strings"
)

// xw builds response XML. Names carry their prefix ("t:Message"); the namespace
// declarations are written once on the response element, like Exchange does.
type xw struct{ bytes.Buffer }

// open writes a start tag; attrs are name, value pairs.
func (w *xw) open(name string, attrs ...string) {
	w.WriteByte('<')
	w.WriteString(name)
	w.attrs(attrs)
	w.WriteByte('>')
}

func (w *xw) end(name string) {
	w.WriteString("</")
	w.WriteString(name)
	w.WriteByte('>')
}

// empty writes a self-closing element.
func (w *xw) empty(name string, attrs ...string) {
	w.WriteByte('<')
	w.WriteString(name)
	w.attrs(attrs)
	w.WriteString("/>")
}

// leaf writes an element holding escaped text.
func (w *xw) leaf(name, text string, attrs ...string) {
	w.open(name, attrs...)
	w.text(text)
	w.end(name)
}

func (w *xw) attrs(attrs []string) {
	for i := 0; i+1 < len(attrs); i += 2 {
		w.WriteByte(' ')
		w.WriteString(attrs[i])
		w.WriteString(`="`)
		w.WriteString(attrEscaper.Replace(attrs[i+1]))
		w.WriteByte('"')
	}
}

func (w *xw) text(s string) { w.WriteString(textEscaper.Replace(dropInvalidXML(s))) }

var (
	textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#xD;")
	attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "\n", "&#xA;", "\r", "&#xD;", "\t", "&#x9;")
)

// dropInvalidXML removes characters XML 1.0 cannot carry (control characters from a
// broken MIME header would otherwise make the whole response unparsable).
func dropInvalidXML(s string) string {
	ok := true
	for _, r := range s {
		if !validXMLRune(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	return strings.Map(func(r rune) rune {
		if validXMLRune(r) {
			return r
		}
		return -1
	}, s)
}

func validXMLRune(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}
