// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// FlexInt is an integer that also decodes from a JSON string ("993"), from a
// number with a zero fraction (993.0) and from null or "" (no-op / zero). .NET
// writers and hand-made requests disagree on these forms; the field's meaning
// does not change. It encodes as a plain JSON number.
type FlexInt int64

// UnmarshalJSON implements json.Unmarshaler. Any other form is a
// *json.UnmarshalTypeError, which Decode reports with the field name.
func (n *FlexInt) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil // like encoding/json: null leaves the value unchanged
	}
	text, isString, err := scalarText(b)
	if err != nil {
		return err
	}
	if isString && strings.TrimSpace(text) == "" {
		*n = 0
		return nil
	}
	v, ok := parseInt(strings.TrimSpace(text))
	if !ok {
		return flexTypeError(b, isString, reflect.TypeFor[FlexInt]())
	}
	*n = FlexInt(v)
	return nil
}

// parseInt accepts a decimal integer or a JSON number with an integral value
// that fits in int64.
func parseInt(s string) (int64, bool) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

// FlexBool is a boolean that also decodes from the strings "true"/"false" in any
// case (.NET's Boolean.ToString gives "True"), from 0/1 and "0"/"1", and from
// null or "" (no-op / false). It encodes as a plain JSON boolean.
type FlexBool bool

// UnmarshalJSON implements json.Unmarshaler. Any other form is a
// *json.UnmarshalTypeError, which Decode reports with the field name.
func (v *FlexBool) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "null":
		return nil
	case "true", "1":
		*v = true
		return nil
	case "false", "0":
		*v = false
		return nil
	}
	text, isString, err := scalarText(b)
	if err != nil {
		return err
	}
	if isString {
		switch s := strings.TrimSpace(text); {
		case s == "" || s == "0" || strings.EqualFold(s, "false"):
			*v = false
			return nil
		case s == "1" || strings.EqualFold(s, "true"):
			*v = true
			return nil
		}
	}
	return flexTypeError(b, isString, reflect.TypeFor[FlexBool]())
}

// scalarText returns the text of a JSON string literal (unescaped) or of any
// other literal as is. b is one complete, valid JSON value (encoding/json
// guarantees that for UnmarshalJSON).
func scalarText(b []byte) (text string, isString bool, err error) {
	if len(b) == 0 || b[0] != '"' {
		return string(b), false, nil
	}
	if !strings.ContainsRune(string(b), '\\') {
		return string(b[1 : len(b)-1]), true, nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", true, err
	}
	return s, true, nil
}

// flexTypeError describes b the way encoding/json does ("number", "object"),
// adding the text of short scalars so the client sees what it sent.
func flexTypeError(b []byte, isString bool, t reflect.Type) error {
	var what string
	switch {
	case isString:
		what = "string " + mail.Excerpt(string(b), 32)
	case b[0] == '{':
		what = "object"
	case b[0] == '[':
		what = "array"
	case b[0] == 't' || b[0] == 'f':
		what = "boolean " + string(b)
	default:
		what = "number " + mail.Excerpt(string(b), 32)
	}
	return &json.UnmarshalTypeError{Value: what, Type: t}
}
