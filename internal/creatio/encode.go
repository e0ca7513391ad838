// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"bytes"
	"encoding/json"
)

// Marshal encodes a DTO as the standard JSON Creatio expects from callbacks and
// responses (exact, case-sensitive names, docs/CREATIO-PROTOCOL.md §11.2).
// Unlike json.Marshal it leaves '<', '>' and '&' unescaped: HTML bodies and
// "Name <addr>" strings are full of them and \u003c triples their size for
// nothing, since any JSON reader, Creatio's included, accepts them literally.
// No trailing newline.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
