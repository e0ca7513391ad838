// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
)

var base64Type = reflect.TypeFor[Base64]()

// Base64 is attachment content, base64 in JSON. It marshals like []byte;
// decoding goes straight from the quoted JSON text to the bytes, without the
// unquoted copy encoding/json makes for []byte: a send with 35 MB of
// attachments would otherwise hold 47 MB more for the length of the request.
type Base64 []byte

// UnmarshalJSON decodes a JSON string of standard base64 (padding optional,
// as .NET's Convert.FromBase64String reads it) or null.
func (b *Base64) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*b = nil
		return nil
	}
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return &json.UnmarshalTypeError{Value: "non-string", Type: base64Type}
	}
	text := data[1 : len(data)-1]
	for _, c := range text {
		if c == '\\' { // an escaped '/' ("\/"): rare, take the slow path
			var s string
			if err := json.Unmarshal(data, &s); err != nil {
				return err
			}
			text = []byte(s)
			break
		}
	}
	// Padding is optional: strip it and decode unpadded (line breaks, which
	// the decoder skips, would make a length check unreliable).
	for len(text) > 0 && text[len(text)-1] == '=' {
		text = text[:len(text)-1]
	}
	enc := base64.RawStdEncoding
	out := make([]byte, enc.DecodedLen(len(text)))
	n, err := enc.Decode(out, text)
	if err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return ce
		}
		return err
	}
	*b = out[:n]
	return nil
}
