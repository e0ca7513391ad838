// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"strconv"
	"strings"
	"time"
)

// Restrictions (search filters) of FindItem and FindFolder, compiled to predicates.
// Supported: And, Or, Not, Exists, Contains and the six comparisons, on the fields in
// itemFields/folderFields. Any other path is refused with
// ErrorUnsupportedPathForQuery, as Exchange refuses paths it cannot search.

var errUnsupportedPath = &ewsError{"ErrorUnsupportedPathForQuery", "The property path is not supported for this type of query."}

// fieldValue is the value of one property for comparison.
type fieldValue struct {
	s  string
	t  time.Time
	n  int64
	ok bool // the property exists
}

type fieldKind uint8

const (
	kindString fieldKind = iota
	kindTime
	kindInt
	kindBool
)

type field[T any] struct {
	kind fieldKind
	get  func(T) fieldValue
}

var itemFields = map[string]field[*item]{
	"item:DateTimeReceived": {kindTime, func(it *item) fieldValue { return fieldValue{t: it.received, ok: true} }},
	"item:DateTimeCreated":  {kindTime, func(it *item) fieldValue { return fieldValue{t: it.created, ok: true} }},
	"item:DateTimeSent": {kindTime, func(it *item) fieldValue {
		return fieldValue{t: it.hdr.date, ok: !it.hdr.date.IsZero()}
	}},
	"item:Size":      {kindInt, func(it *item) fieldValue { return fieldValue{n: int64(len(it.mime)), ok: true} }},
	"item:Subject":   {kindString, func(it *item) fieldValue { return fieldValue{s: it.hdr.subject, ok: true} }},
	"item:ItemClass": {kindString, func(it *item) fieldValue { return fieldValue{s: it.hdr.itemClass, ok: true} }},
	"message:InternetMessageId": {kindString, func(it *item) fieldValue {
		return fieldValue{s: it.hdr.messageID, ok: it.hdr.messageID != ""}
	}},
	"message:IsRead": {kindBool, func(it *item) fieldValue { return fieldValue{n: b2i(it.read), ok: true} }},
	"item:Categories": {kindString, func(it *item) fieldValue {
		return fieldValue{s: strings.Join(it.categories, "\x00"), ok: len(it.categories) > 0}
	}},
}

var folderFields = map[string]field[*folder]{
	"folder:DisplayName": {kindString, func(f *folder) fieldValue { return fieldValue{s: f.name, ok: true} }},
	"folder:FolderClass": {kindString, func(f *folder) fieldValue { return fieldValue{s: f.class, ok: f.class != ""} }},
	"folder:TotalCount":  {kindInt, func(f *folder) fieldValue { return fieldValue{n: int64(len(f.items)), ok: true} }},
	"folder:UnreadCount": {kindInt, func(f *folder) fieldValue { return fieldValue{n: int64(f.unread), ok: true} }},
	"folder:ChildFolderCount": {kindInt, func(f *folder) fieldValue {
		return fieldValue{n: int64(len(f.kids)), ok: true}
	}},
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func itemRestriction(r *node) (func(*item) bool, error) { return compileRestriction(r, itemFields) }

func folderRestriction(r *node) (func(*folder) bool, error) {
	return compileRestriction(r, folderFields)
}

// compileRestriction compiles a Restriction element. An unsupported path yields an
// *ewsError (per message); a malformed expression a *fault.
func compileRestriction[T any](r *node, fields map[string]field[T]) (func(T) bool, error) {
	if len(r.kids) != 1 {
		return nil, schemaFault(r, "The element 'Restriction' in namespace '%s' must contain exactly one search expression.", r.space)
	}
	return compileExpr(r.kids[0], fields)
}

func compileExpr[T any](n *node, fields map[string]field[T]) (func(T) bool, error) {
	if n.space != nsTypes {
		return nil, schemaFault(n, "Unexpected element '%s' in namespace '%s' in a restriction.", n.local, n.space)
	}
	switch n.local {
	case "And", "Or":
		if len(n.kids) == 0 {
			return nil, schemaFault(n, "The element '%s' in namespace '%s' has incomplete content.", n.local, n.space)
		}
		var subs []func(T) bool
		for _, k := range n.kids {
			p, err := compileExpr(k, fields)
			if err != nil {
				return nil, err
			}
			subs = append(subs, p)
		}
		and := n.local == "And"
		return func(x T) bool {
			for _, p := range subs {
				if p(x) != and {
					return !and
				}
			}
			return and
		}, nil
	case "Not":
		if len(n.kids) != 1 {
			return nil, schemaFault(n, "The element 'Not' in namespace '%s' must contain exactly one search expression.", n.space)
		}
		p, err := compileExpr(n.kids[0], fields)
		if err != nil {
			return nil, err
		}
		return func(x T) bool { return !p(x) }, nil
	case "Exists":
		f, err := pathField(n, fields)
		if err != nil {
			return nil, err
		}
		return func(x T) bool { return f.get(x).ok }, nil
	case "Contains":
		return compileContains(n, fields)
	case "IsEqualTo", "IsNotEqualTo", "IsGreaterThan", "IsGreaterThanOrEqualTo", "IsLessThan", "IsLessThanOrEqualTo":
		return compileCompare(n, fields)
	}
	return nil, schemaFault(n, "The search expression '%s' is not supported by this server.", n.local)
}

// pathField reads the first child of n, which must be a property path.
func pathField[T any](n *node, fields map[string]field[T]) (field[T], error) {
	if len(n.kids) == 0 {
		return field[T]{}, schemaFault(n, "The element '%s' in namespace '%s' has incomplete content.", n.local, n.space)
	}
	p := n.kids[0]
	switch {
	case p.is(nsTypes, "FieldURI"):
		uri, _ := p.attr("FieldURI")
		if f, ok := fields[uri]; ok {
			return f, nil
		}
		return field[T]{}, errUnsupportedPath
	case p.is(nsTypes, "IndexedFieldURI"), p.is(nsTypes, "ExtendedFieldURI"), p.is(nsTypes, "ExceptionFieldURI"):
		return field[T]{}, errUnsupportedPath
	}
	return field[T]{}, schemaFault(p, "The element '%s' in namespace '%s' has invalid child element '%s'.", n.local, n.space, p.local)
}

func compileCompare[T any](n *node, fields map[string]field[T]) (func(T) bool, error) {
	if err := checkSeq(n, one(nsTypes, "FieldURI", "IndexedFieldURI", "ExtendedFieldURI", "ExceptionFieldURI"),
		one(nsTypes, "FieldURIOrConstant")); err != nil {
		return nil, err
	}
	f, err := pathField(n, fields)
	if err != nil {
		return nil, err
	}
	oc := n.child(nsTypes, "FieldURIOrConstant")
	c := oc.child(nsTypes, "Constant")
	if c == nil || len(oc.kids) != 1 {
		return nil, errUnsupportedPath // comparing two properties is not supported here
	}
	raw, ok := c.attr("Value")
	if !ok {
		return nil, schemaFault(c, "The required attribute 'Value' is missing.")
	}
	want, err := parseConstant(c, f.kind, raw)
	if err != nil {
		return nil, err
	}
	op := n.local
	return func(x T) bool {
		v := f.get(x)
		if !v.ok {
			return op == "IsNotEqualTo"
		}
		c := compareValues(f.kind, v, want)
		switch op {
		case "IsEqualTo":
			return c == 0
		case "IsNotEqualTo":
			return c != 0
		case "IsGreaterThan":
			return c > 0
		case "IsGreaterThanOrEqualTo":
			return c >= 0
		case "IsLessThan":
			return c < 0
		}
		return c <= 0
	}, nil
}

func compileContains[T any](n *node, fields map[string]field[T]) (func(T) bool, error) {
	if err := checkSeq(n, one(nsTypes, "FieldURI", "IndexedFieldURI", "ExtendedFieldURI", "ExceptionFieldURI"),
		one(nsTypes, "Constant")); err != nil {
		return nil, err
	}
	f, err := pathField(n, fields)
	if err != nil {
		return nil, err
	}
	if f.kind != kindString {
		return nil, errUnsupportedPath
	}
	want, _ := n.child(nsTypes, "Constant").attr("Value")
	mode, err := enumAttr(n, "ContainmentMode", false, "Substring", "FullString", "Prefixed", "Substring", "PrefixOnWords", "ExactPhrase")
	if err != nil {
		return nil, err
	}
	cmp, _ := n.attr("ContainmentComparison")
	fold := strings.Contains(cmp, "IgnoreCase") || strings.Contains(cmp, "Loose")
	if fold {
		want = strings.ToLower(want)
	}
	return func(x T) bool {
		v := f.get(x)
		if !v.ok {
			return false
		}
		s := v.s
		if fold {
			s = strings.ToLower(s)
		}
		switch mode {
		case "FullString":
			return s == want
		case "Prefixed":
			return strings.HasPrefix(s, want)
		case "PrefixOnWords":
			for _, w := range strings.Fields(s) {
				if strings.HasPrefix(w, want) {
					return true
				}
			}
			return false
		}
		return strings.Contains(s, want)
	}, nil
}

func parseConstant(n *node, kind fieldKind, raw string) (fieldValue, error) {
	switch kind {
	case kindTime:
		t, err := parseDateTime(raw)
		if err != nil {
			return fieldValue{}, schemaFault(n, "The value '%s' is not a valid xs:dateTime.", raw)
		}
		return fieldValue{t: t, ok: true}, nil
	case kindInt:
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fieldValue{}, schemaFault(n, "The value '%s' is not a valid integer.", raw)
		}
		return fieldValue{n: v, ok: true}, nil
	case kindBool:
		switch raw {
		case "true", "1":
			return fieldValue{n: 1, ok: true}, nil
		case "false", "0":
			return fieldValue{n: 0, ok: true}, nil
		}
		return fieldValue{}, schemaFault(n, "The value '%s' is not a valid xs:boolean.", raw)
	}
	return fieldValue{s: raw, ok: true}, nil
}

// parseDateTime reads xs:dateTime; a value without a zone is taken as UTC.
func parseDateTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	_, err := time.Parse(time.RFC3339Nano, s)
	return time.Time{}, err
}

func compareValues(kind fieldKind, a, b fieldValue) int {
	switch kind {
	case kindTime:
		return a.t.Compare(b.t)
	case kindInt, kindBool:
		switch {
		case a.n < b.n:
			return -1
		case a.n > b.n:
			return 1
		}
		return 0
	}
	return strings.Compare(strings.ToLower(a.s), strings.ToLower(b.s))
}
