// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxDepth bounds element nesting in requests; real requests stay below 20.
const maxDepth = 64

// node is one element of a parsed request, with its name resolved to a namespace URI,
// so that lookups never depend on the prefixes a client chose.
type node struct {
	space, local string
	attrs        []xml.Attr
	kids         []*node
	text         strings.Builder // character data directly inside this element
	line, col    int             // position of the start tag, for schema violation reports
}

// syntaxError is malformed XML; it becomes an ErrorSchemaValidation fault.
type syntaxError struct {
	line, col int
	msg       string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("line %d position %d: %s", e.line, e.col, e.msg)
}

// parseXML reads one XML document and returns its root element. Only UTF-8 is accepted,
// which is what every EWS client sends.
func parseXML(r io.Reader) (*node, error) {
	d := xml.NewDecoder(r)
	d.Strict = true
	d.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		if strings.EqualFold(label, "utf-8") || strings.EqualFold(label, "us-ascii") {
			return in, nil
		}
		return nil, fmt.Errorf("unsupported encoding %q", label)
	}
	var stack []*node
	var root *node
	for {
		line, col := d.InputPos()
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &syntaxError{line: line, col: col, msg: err.Error()}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, &syntaxError{line: line, col: col, msg: "elements nested too deeply"}
			}
			if root != nil && len(stack) == 0 {
				return nil, &syntaxError{line: line, col: col, msg: "more than one root element"}
			}
			n := &node{space: t.Name.Space, local: t.Name.Local, line: line, col: col}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				n.attrs = append(n.attrs, a)
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(t)
			} else if strings.TrimSpace(string(t)) != "" {
				return nil, &syntaxError{line: line, col: col, msg: "text outside the root element"}
			}
		}
	}
	if root == nil {
		return nil, &syntaxError{line: 1, col: 1, msg: "no root element"}
	}
	return root, nil
}

func (n *node) is(space, local string) bool { return n != nil && n.space == space && n.local == local }

// child returns the first child with that name, or nil.
func (n *node) child(space, local string) *node {
	if n == nil {
		return nil
	}
	for _, k := range n.kids {
		if k.space == space && k.local == local {
			return k
		}
	}
	return nil
}

// children returns every child with that name.
func (n *node) children(space, local string) []*node {
	var out []*node
	if n == nil {
		return nil
	}
	for _, k := range n.kids {
		if k.space == space && k.local == local {
			out = append(out, k)
		}
	}
	return out
}

// attr returns an unqualified attribute, the form every EWS attribute takes.
func (n *node) attr(local string) (string, bool) {
	if n == nil {
		return "", false
	}
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// value is the element's text with surrounding white space removed (xs:string values
// in EWS requests never carry meaningful outer white space; MIME base64 is wrapped).
func (n *node) value() string {
	if n == nil {
		return ""
	}
	return strings.TrimSpace(n.text.String())
}
