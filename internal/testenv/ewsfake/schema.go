// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"fmt"
	"strconv"
	"strings"
)

// A light schema check. Exchange validates every request against its XSD and
// answers a violation with an ErrorSchemaValidation fault; the fake checks the
// sequences of the operations it implements (names, order, cardinality) and the
// enumerations and ranges clients most often get wrong. Elements the fake does not
// describe are not checked.

// seqItem is one position in an xs:sequence: one of names, in space, min..max times
// (max < 0: unbounded).
type seqItem struct {
	space    string
	names    []string
	min, max int
}

func one(space string, names ...string) seqItem  { return seqItem{space, names, 1, 1} }
func opt(space string, names ...string) seqItem  { return seqItem{space, names, 0, 1} }
func many(space string, names ...string) seqItem { return seqItem{space, names, 1, -1} }
func anyN(space string, names ...string) seqItem { return seqItem{space, names, 0, -1} }

func (it seqItem) matches(n *node) bool {
	if n.space != it.space {
		return false
	}
	for _, name := range it.names {
		if n.local == name {
			return true
		}
	}
	return false
}

func (it seqItem) String() string {
	qs := make([]string, len(it.names))
	for i, n := range it.names {
		qs[i] = "'" + it.space + ":" + n + "'"
	}
	return strings.Join(qs, ", ")
}

// checkSeq validates the element children of parent against a sequence, with the
// wording .NET's validator (and so Exchange) uses.
func checkSeq(parent *node, seq ...seqItem) error {
	i, count := 0, 0
	for _, k := range parent.kids {
		for {
			if i >= len(seq) {
				return schemaFault(k, "The element '%s' in namespace '%s' has invalid child element '%s' in namespace '%s'.",
					parent.local, parent.space, k.local, k.space)
			}
			if seq[i].matches(k) && (seq[i].max < 0 || count < seq[i].max) {
				count++
				break
			}
			if count < seq[i].min {
				return schemaFault(k, "The element '%s' in namespace '%s' has invalid child element '%s' in namespace '%s'. List of possible elements expected: %s.",
					parent.local, parent.space, k.local, k.space, seq[i])
			}
			i, count = i+1, 0
		}
	}
	for ; i < len(seq); i, count = i+1, 0 {
		if count < seq[i].min {
			return schemaFault(parent, "The element '%s' in namespace '%s' has incomplete content. List of possible elements expected: %s.",
				parent.local, parent.space, seq[i])
		}
	}
	return nil
}

// enumAttr reads an attribute that must be one of values. A missing optional
// attribute yields def.
func enumAttr(n *node, name string, required bool, def string, values ...string) (string, error) {
	v, ok := n.attr(name)
	if !ok {
		if required {
			return "", schemaFault(n, "The required attribute '%s' is missing.", name)
		}
		return def, nil
	}
	for _, x := range values {
		if v == x {
			return v, nil
		}
	}
	return "", schemaFault(n, "The '%s' attribute is invalid - The value '%s' is invalid according to its datatype - The Enumeration constraint failed.", name, v)
}

// enumText reads an element's text that must be one of values.
func enumText(n *node, values ...string) (string, error) {
	v := n.value()
	for _, x := range values {
		if v == x {
			return v, nil
		}
	}
	return "", schemaFault(n, "The '%s:%s' element is invalid - The value '%s' is invalid according to its datatype - The Enumeration constraint failed.", n.space, n.local, v)
}

// intText reads an integer element within [lo, hi].
func intText(n *node, lo, hi int) (int, error) {
	v, err := strconv.Atoi(n.value())
	if err != nil || v < lo || v > hi {
		return 0, schemaFault(n, "The '%s:%s' element is invalid - The value '%s' is invalid according to its datatype - %s.",
			n.space, n.local, n.value(), rangeText(lo, hi))
	}
	return v, nil
}

// intAttr reads an optional integer attribute within [lo, hi].
func intAttr(n *node, name string, required bool, def, lo, hi int) (int, error) {
	s, ok := n.attr(name)
	if !ok {
		if required {
			return 0, schemaFault(n, "The required attribute '%s' is missing.", name)
		}
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, schemaFault(n, "The '%s' attribute is invalid - The value '%s' is invalid according to its datatype - %s.", name, s, rangeText(lo, hi))
	}
	return v, nil
}

func rangeText(lo, hi int) string {
	return fmt.Sprintf("The value must be between %d and %d", lo, hi)
}

// boolText parses xs:boolean.
func boolText(n *node) (bool, error) {
	switch n.value() {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, schemaFault(n, "The '%s:%s' element is invalid - The value '%s' is invalid according to its datatype 'http://www.w3.org/2001/XMLSchema:boolean'.", n.space, n.local, n.value())
}

func boolAttr(n *node, name string) (bool, error) {
	v, ok := n.attr(name)
	switch {
	case !ok || v == "false" || v == "0":
		return false, nil
	case v == "true" || v == "1":
		return true, nil
	}
	return false, schemaFault(n, "The '%s' attribute is invalid - The value '%s' is invalid according to its datatype 'http://www.w3.org/2001/XMLSchema:boolean'.", name, v)
}
