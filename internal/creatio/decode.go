// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// ErrEmptyBody is returned (wrapped in a *RequestError) for a body that is empty
// or only white space.
var ErrEmptyBody = errors.New("creatio: empty body")

// ErrTooLarge is wrapped by the *RequestError of a body beyond its Limits.
var ErrTooLarge = errors.New("creatio: body too large")

// Limits bound what one body may hold, checked while the body is scanned and
// before encoding/json allocates anything: a megabyte of "{}," would otherwise
// become a third of a million structs of a few hundred bytes each. Zero means
// no limit.
type Limits struct {
	MaxValues     int // scalars, objects and arrays in the whole body
	MaxContainers int // objects and arrays in the whole body
	MaxElements   int // elements of a top-level array
}

// Bounds of Creatio's bodies. A credentials object holds about 30 values and 3
// containers; send carries one per recipient, header and attachment.
const (
	// MaxCredentialsPerRequest: Creatio sends one credentials object per
	// create/recreate/update; a few more let scripts register in batches.
	MaxCredentialsPerRequest = 1000
	// MaxIDsPerRequest: Creatio's failover job asks for the state of every
	// mailbox of the instance at once.
	MaxIDsPerRequest = 100_000
)

// DefaultLimits apply to Decode: enough for any body Creatio sends (a send
// with thousands of recipients and attachments included).
var DefaultLimits = Limits{MaxValues: 200_000, MaxContainers: 10_000}

// RequestError is a request from Creatio that this service cannot use: the body
// is not JSON, has the wrong shape or types, or lacks a required field. The HTTP
// layer answers such requests with 400 (except /api/mailbox/validate, which
// should answer 200 with IsValid=false, docs/CREATIO-PROTOCOL.md §8.1). Read it
// with errors.As.
type RequestError struct {
	// Field is the JSON path of the offending property ("Port",
	// "FeatureValues.UseBinaryData"); empty when the body as a whole is wrong.
	Field string
	// Offset is the byte offset of a syntax error in the original body, -1 when
	// the error is not a syntax error.
	Offset int64
	// Msg is the complete, client-safe message. It never contains secrets.
	Msg string
	// Err is the underlying error, if any (ErrEmptyBody, *json.UnmarshalTypeError).
	Err error
}

func (e *RequestError) Error() string { return e.Msg }

func (e *RequestError) Unwrap() error { return e.Err }

func fieldError(field, format string, args ...any) *RequestError {
	return &RequestError{Field: field, Offset: -1, Msg: fmt.Sprintf(format, args...)}
}

// Decode parses a request body from Creatio into v, which must be a non-nil
// pointer. It accepts standard JSON and the Newtonsoft QuoteName=false dialect
// Creatio uses for create/recreate/update/validate/folders
// (docs/CREATIO-PROTOCOL.md §5): bare
// property names, single-quoted strings, a UTF-8 BOM and trailing commas.
// Property names match case-insensitively; unknown properties are ignored so
// that newer Creatio builds can add fields (docs/CREATIO-PROTOCOL.md §4.4).
//
// Every error caused by the body is a *RequestError: syntax errors carry the
// byte offset in the original body, type errors name the field.
func Decode(data []byte, v any) error {
	return DecodeLimited(data, v, DefaultLimits)
}

// DecodeLimited is Decode with explicit limits; a body beyond them is a
// *RequestError wrapping ErrTooLarge.
func DecodeLimited(data []byte, v any, lim Limits) error {
	std, err := toStandardLimited(data, lim)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(std, v); err != nil {
		return mapJSONError(err, v)
	}
	return nil
}

// mapJSONError turns encoding/json's errors into client-facing *RequestError.
func mapJSONError(err error, v any) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		got := te.Value
		if got == "" {
			got = "value"
		}
		want := kindName(te.Type)
		if want == "number" {
			want += " (out of range)" // the only way a JSON number misses a float
		}
		if te.Field == "" {
			root := reflect.TypeOf(v)
			if root != nil && root.Kind() == reflect.Pointer && te.Type == root.Elem() {
				return &RequestError{Offset: -1, Err: err,
					Msg: fmt.Sprintf("creatio: body must be %s, got %s", article(kindName(te.Type)), got)}
			}
			return &RequestError{Offset: -1, Err: err,
				Msg: fmt.Sprintf("creatio: body: cannot use %s as %s", got, want)}
		}
		return &RequestError{Field: te.Field, Offset: -1, Err: err,
			Msg: fmt.Sprintf("creatio: field %s: cannot use %s as %s", te.Field, got, want)}
	}
	var ce base64.CorruptInputError
	if errors.As(err, &ce) {
		// encoding/json does not say which field: only []byte fields are
		// base64, and in Creatio's bodies that is Base64Data.
		return &RequestError{Field: "Base64Data", Offset: -1, Err: err,
			Msg: fmt.Sprintf("creatio: field Base64Data: invalid base64 at byte %d", int64(ce))}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// Unreachable while toStandard is a complete grammar check; kept so a
		// converter bug still yields a 400 and not a 500.
		return &RequestError{Offset: -1, Err: err, Msg: "creatio: invalid JSON: " + se.Error()}
	}
	return err // *json.InvalidUnmarshalError and friends: a programming error
}

// kindName names a Go type in the words a Creatio administrator would use.
func kindName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[FlexInt]():
		return "integer"
	case reflect.TypeFor[FlexBool]():
		return "boolean"
	case base64Type:
		return "base64 string"
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "JSON array"
	case reflect.Struct, reflect.Map:
		return "JSON object"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Pointer:
		return kindName(t.Elem())
	}
	return t.String()
}

func article(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an " + s
	}
	return "a " + s
}

// DecodeCredentialsList decodes the body of create, recreate and update: a JSON
// array of SynchronizationCredentials (Creatio sends exactly one,
// docs/CREATIO-PROTOCOL.md §3.2).
// An empty array is a *RequestError.
func DecodeCredentialsList(data []byte) ([]SynchronizationCredentials, error) {
	var list []SynchronizationCredentials
	lim := DefaultLimits
	lim.MaxElements = MaxCredentialsPerRequest
	if err := DecodeLimited(data, &list, lim); err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fieldError("", "creatio: body must contain at least one credentials object")
	}
	return list, nil
}

// DecodeIDs decodes the body of close and subscriptionsstate: a JSON array of
// at most MaxIDsPerRequest mailbox ids (docs/CREATIO-PROTOCOL.md §3.1 rows 4
// and 5, §3.2). Ids are normalized
// with NormalizeID; blank entries are dropped and duplicates removed, keeping
// the first occurrence. An id that is not 1–128 printable characters is a
// *RequestError naming its position.
func DecodeIDs(data []byte) ([]mail.MailboxID, error) {
	var raw []string
	lim := Limits{MaxValues: MaxIDsPerRequest + 1, MaxContainers: 1, MaxElements: MaxIDsPerRequest}
	if err := DecodeLimited(data, &raw, lim); err != nil {
		return nil, err
	}
	ids := make([]mail.MailboxID, 0, len(raw))
	seen := make(map[mail.MailboxID]bool, len(raw))
	for i, s := range raw {
		id := NormalizeID(s)
		if id == "" || seen[id] {
			continue
		}
		if err := CheckID(string(id)); err != nil {
			return nil, fieldError(fmt.Sprintf("[%d]", i), "creatio: id %d: %v", i, err)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	return ids, nil
}

// NormalizeID trims s and, when it is a GUID (optionally in braces), returns it
// in the lower-case "d" format Creatio itself uses (docs/CREATIO-PROTOCOL.md
// §4.5), so that ids from
// credentials, close and subscriptionsstate compare equal. Other strings are
// returned trimmed but otherwise unchanged.
func NormalizeID(s string) mail.MailboxID {
	s = strings.TrimSpace(s)
	if g, ok := normalizeGUID(s); ok {
		return mail.MailboxID(g)
	}
	return mail.MailboxID(s)
}

// MaxIDLength bounds a mailbox id. Creatio's are 36-character GUIDs; other
// clients may use their own ids, but an id is a key in logs, metrics and Redis.
const MaxIDLength = 128

// CheckID rejects ids that are too long, not UTF-8, or hold control or other
// non-printable characters (they would end up in logs, Redis keys and file
// names). Its messages never quote the id.
func CheckID(id string) error {
	switch {
	case id == "":
		return errors.New("empty")
	case len(id) > MaxIDLength:
		return fmt.Errorf("longer than %d bytes", MaxIDLength)
	case !utf8.ValidString(id):
		return errors.New("not valid UTF-8")
	}
	for _, r := range id {
		if r == utf8.RuneError { // encoding/json's stand-in for broken UTF-8
			return errors.New("not valid UTF-8")
		}
		if !unicode.IsPrint(r) {
			return fmt.Errorf("holds the non-printable character %U", r)
		}
	}
	return nil
}

// normalizeGUID returns s in lower-case "d" format if it is a GUID in "d" or
// "b" ({…}) format.
func normalizeGUID(s string) (string, bool) {
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if len(s) != 36 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", false
		}
	}
	return strings.ToLower(s), true
}
